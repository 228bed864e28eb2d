"""Django integration (the ``yadtq[django]`` extra; docs/django.md).

- ``app.config_from_object("django.conf:settings", namespace="YADTQ")`` reads the
  ``YADTQ_*`` settings of the Django project (``yadtq.config``);
- ``app.autodiscover_tasks()`` imports each installed app's ``tasks`` module once
  Django's app registry is ready (:func:`discover_installed_apps`);
- ``task.delay_on_commit(...)`` / ``task.apply_async_on_commit(...)`` send a task only
  after the surrounding database transaction commits (:func:`on_commit`).

Django is imported only when one of these is used: without it installed, the
rest of yadtq works and these raise :class:`~yadtq.exceptions.ConfigurationError`.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional

from .. import signals
from ..config import import_if_present
from ..exceptions import ConfigurationError

if TYPE_CHECKING:
    from ..app import YADTQ

logger = logging.getLogger(__name__)

_INSTALL_HINT = "install Django (pip install 'yadtq[django]')"


def _django() -> Any:
    try:
        import django
    except ImportError:
        raise ConfigurationError(f"this needs Django: {_INSTALL_HINT}") from None
    return django


def discover_installed_apps(app: YADTQ, related_name: str = "tasks") -> None:
    """Import ``<app>.<related_name>`` of each of Django's installed apps.

    At once when Django's app registry is ready; else when the app is finalized
    (:meth:`YADTQ.finalize`, which ``yadtq`` commands call after loading the app),
    setting Django up first (``django.setup()``) as a worker process must. A project
    whose package imports the app (the usual layout) is imported while Django reads
    its settings, before the registry is ready: there the web process registers the
    tasks its code imports, and ``app.finalize()`` (in an ``AppConfig.ready``)
    registers them all. Once finalized, database connections that are broken or past
    ``CONN_MAX_AGE`` are closed around every task run, as Django does around every
    request.

    Raises:
        ConfigurationError: Django is not installed, or a ``tasks`` module fails to import.
    """
    _django()
    from django.apps import apps as registry

    if registry.ready:
        _import_tasks(related_name)
    app.on_finalize(lambda: _set_up(related_name))


def _set_up(related_name: str) -> None:
    django = _django()
    from django.apps import apps as registry

    if not registry.ready:
        try:
            django.setup()
        except Exception as exc:  # ImproperlyConfigured: no DJANGO_SETTINGS_MODULE, bad settings
            raise ConfigurationError(f"cannot set Django up: {type(exc).__name__}: {exc}") from None
    _import_tasks(related_name)
    _manage_connections()


def _import_tasks(related_name: str) -> None:
    from django.apps import apps as registry

    for config in registry.get_app_configs():
        import_if_present(f"{config.name}.{related_name}")


_connections_managed = threading.Event()


def _manage_connections() -> None:
    """Close broken or expired database connections before and after each task
    (``django.db.close_old_connections``), in the thread that runs it."""
    if _connections_managed.is_set():
        return
    _connections_managed.set()
    signals.task_prerun.connect(_close_old_connections)
    signals.task_postrun.connect(_close_old_connections)


def _close_old_connections(**_: Any) -> None:
    from django.db import close_old_connections, connections

    # Never inside a transaction (a task run eagerly in a request's atomic block):
    # closing its connection would break it.
    if any(conn.in_atomic_block for conn in connections.all()):
        return
    close_old_connections()


def on_commit(send: Callable[[], Any], using: Optional[str] = None) -> None:
    """Call ``send`` once the current transaction of database ``using`` commits; at
    once outside a transaction; never if it rolls back (``transaction.on_commit``).

    Raises:
        ConfigurationError: Django is not installed or not configured.
    """
    _django()
    from django.core.exceptions import ImproperlyConfigured
    from django.db import transaction

    try:
        transaction.on_commit(send, using=using)
    except ImproperlyConfigured as exc:
        raise ConfigurationError(f"delay_on_commit needs a configured Django project: {exc}") from None
