"""Configuration from a module or object, task routes, and discovering ``tasks`` modules
(at once, or in set-up steps deferred until the app is finalized).

Helpers that :class:`yadtq.app.YADTQ` and the CLI's app loader call; no transport
code here.
"""

from __future__ import annotations
import __future__

import fnmatch
import importlib
import importlib.util
import inspect
import logging
import pkgutil
import threading
from collections.abc import Collection, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from .exceptions import ConfigurationError
from .settings import FIELDS, Settings, coerce, eager_in_memory, validate

if TYPE_CHECKING:
    from .app import YADTQ

logger = logging.getLogger(__name__)

#: The module each package's tasks live in (``-A package`` imports them).
TASKS_MODULE = "tasks"


def import_object(path: str) -> Any:
    """``module`` or ``module:attribute`` (``module.attribute`` also works for an attribute).

    Raises:
        ConfigurationError: nothing importable by that name.
    """
    module_name, _, attr = path.partition(":")
    try:
        module: Any = importlib.import_module(module_name)
    except ImportError as exc:
        head, _, tail = module_name.rpartition(".")
        if attr or not head:
            raise ConfigurationError(f"cannot import {path!r}: {exc}") from None
        module, attr = import_object(head), tail  # "pkg.mod.settings": an attribute
        if not hasattr(module, attr):
            raise ConfigurationError(f"cannot import {path!r}: {exc}") from None
    if not attr:
        return module
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigurationError(f"{module_name!r} has no attribute {attr!r}") from None


def settings_from_object(obj: Any, namespace: Optional[str] = None) -> dict[str, Any]:
    """The settings an object holds: its lower-case attributes (or keys, for a mapping).

    Modules, classes and functions among them (a settings module's imports and
    helpers) are skipped; any other lower-case name must be a setting. With a
    ``namespace`` (``"YADTQ"``), only names starting ``YADTQ_`` are read, each naming
    the setting in upper case (``YADTQ_BROKER_URL`` is ``broker_url``), as in a Django
    settings module; every such name must be a setting.

    Raises:
        ConfigurationError: an unknown setting name, a value of the wrong type, or the
            object cannot be read (Django not configured, say).
    """
    source = obj
    if isinstance(obj, str):
        obj = import_object(obj)
    try:
        if namespace is not None:
            return _namespaced(obj, namespace, source if isinstance(source, str) else _describe(obj))
        items: list[tuple[str, Any]] = (
            list(obj.items()) if isinstance(obj, Mapping) else [(n, getattr(obj, n)) for n in dir(obj)])
    except ConfigurationError:
        raise
    except Exception as exc:  # e.g. django's ImproperlyConfigured on first access
        raise ConfigurationError(f"cannot read settings from {source!r}: {type(exc).__name__}: "
                                 f"{exc}") from None
    found: dict[str, Any] = {}
    unknown: list[str] = []
    for name, value in items:
        if not isinstance(name, str) or name.startswith("_") or name != name.lower():
            continue
        if (inspect.ismodule(value) or inspect.isclass(value) or callable(value)
                or isinstance(value, __future__._Feature)):  # "from __future__ import annotations"
            continue
        if name not in FIELDS:
            unknown.append(name)
            continue
        found[name] = coerce(name, value)
    if unknown:
        raise ConfigurationError(f"unknown setting(s) in {_describe(obj)}: {', '.join(sorted(unknown))}")
    return found


def configured(settings: Settings, obj: Any, namespace: Optional[str],
               explicit: Collection[str]) -> tuple[Settings, list[str]]:
    """``settings`` with what ``obj`` sets (:func:`settings_from_object`) but the names in
    ``explicit`` (given to ``YADTQ(...)``); and the names it set, sorted.

    Raises:
        ConfigurationError: an unknown setting, a bad value, or an import failing.
    """
    values = {k: v for k, v in settings_from_object(obj, namespace).items() if k not in explicit}
    updated = eager_in_memory(settings.replace(**values))
    validate(updated)
    return updated, sorted(values)


def check_transports_kept(current: Settings, updated: Settings, broker_open: bool,
                          backend_open: bool) -> None:
    """Refuse new settings that change a transport the app already opened.

    Raises:
        ConfigurationError: the URL of an open transport changes, or the namespace
            while either is open.
    """
    in_use = broker_open or backend_open
    if ((broker_open and updated.broker_url != current.broker_url)
            or (backend_open and updated.backend_url != current.backend_url)
            or (in_use and updated.namespace != current.namespace)):
        raise ConfigurationError("config_from_object changes a transport already in use: "
                                 "configure the app before sending tasks")


def _namespaced(obj: Any, namespace: str, where: str) -> dict[str, Any]:
    """The ``<NAMESPACE>_<SETTING>`` names of ``obj`` as settings (see :func:`settings_from_object`)."""
    if not namespace or not namespace.isidentifier():
        raise ConfigurationError(f"bad settings namespace {namespace!r}: use a name such as 'YADTQ'")
    prefix = f"{namespace}_"
    names = list(obj) if isinstance(obj, Mapping) else dir(obj)
    found: dict[str, Any] = {}
    unknown: list[str] = []
    for name in names:
        if not isinstance(name, str) or not name.startswith(prefix):
            continue
        setting = name[len(prefix):].lower()
        if setting not in FIELDS:
            unknown.append(name)
            continue
        found[setting] = coerce(setting, obj[name] if isinstance(obj, Mapping) else getattr(obj, name))
    if unknown:
        raise ConfigurationError(f"unknown setting(s) in {where}: {', '.join(sorted(unknown))} "
                                 f"(settings are named {prefix}<SETTING>, e.g. {prefix}BROKER_URL)")
    return found


def _describe(obj: Any) -> str:
    if inspect.ismodule(obj):
        return f"module {obj.__name__}"
    return type(obj).__name__


def route(routes: Mapping[str, str], name: str) -> Optional[str]:
    """The queue ``task_routes`` sends task ``name`` to: an exact name first, then the
    first glob (``fnmatch``: ``*``, ``?``, ``[...]``) that matches, in the order given."""
    queue = routes.get(name)
    if queue is not None:
        return queue
    for pattern, target in routes.items():
        if fnmatch.fnmatchcase(name, pattern):
            return target
    return None


def discover_tasks(app: YADTQ, packages: Optional[Union[Sequence[str], Callable[[], Sequence[str]]]],
                   related_name: str) -> None:
    """What ``app.autodiscover_tasks(packages, related_name)`` does: import each package's
    tasks modules now, those of a function's packages when the app is finalized, or
    without packages those of Django's installed apps.

    Raises:
        ConfigurationError: a ``tasks`` module fails to import; no packages given
            and Django is not installed.
    """
    if packages is None:
        from .contrib.django import discover_installed_apps

        discover_installed_apps(app, related_name)
        return
    if callable(packages):  # read late: e.g. lambda: settings.INSTALLED_APPS
        getter = packages
        app.on_finalize(lambda: app.autodiscover_tasks(getter(), related_name))
        return
    for package in packages:
        autodiscover(package, related_name)


class DeferredSteps:
    """Set-up steps deferred until the app is finalized (``YADTQ.on_finalize``), run once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._steps: list[Callable[[], None]] = []
        self._done = False

    def add(self, step: Callable[[], None]) -> None:
        """Run ``step`` when :meth:`run` is called, or now if it was."""
        with self._lock:
            if not self._done:
                self._steps.append(step)
                return
        step()

    def run(self) -> None:
        """Run the steps added so far, once; a second call does nothing.

        Raises:
            ConfigurationError: a step failed.
        """
        with self._lock:
            if self._done:
                return
            self._done = True
            steps, self._steps = self._steps, []
        for step in steps:
            step()


def autodiscover(package: str, related_name: str = TASKS_MODULE) -> list[ModuleType]:
    """Import ``package.tasks`` and the ``tasks`` module of each of its sub-packages
    (one level down, like Django apps). Missing ones are skipped.

    Raises:
        ConfigurationError: a ``tasks`` module exists but fails to import.
    """
    try:
        root = importlib.import_module(package)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import package {package!r}: {exc}") from None
    candidates = [package]
    for info in pkgutil.iter_modules(getattr(root, "__path__", [])):
        if info.ispkg:
            candidates.append(f"{package}.{info.name}")
    found = [import_if_present(f"{name}.{related_name}") for name in candidates]
    return [module for module in found if module is not None]


def import_if_present(target: str) -> Optional[ModuleType]:
    """Import module ``target`` if it exists (``None`` if it does not).

    Raises:
        ConfigurationError: it exists but fails to import.
    """
    try:
        exists = importlib.util.find_spec(target) is not None
    except (ImportError, ValueError):
        exists = False
    if not exists:
        return None
    try:
        module = importlib.import_module(target)
    except Exception as exc:
        raise ConfigurationError(f"importing {target} failed: {type(exc).__name__}: {exc}") from None
    logger.debug("discovered tasks module %s", target)
    return module
