"""Finding the app a command names: ``-A module`` or ``-A module:attribute``."""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

from ..config import autodiscover
from ..exceptions import ConfigurationError

if TYPE_CHECKING:
    from ..app import YADTQ


def load_app(path: str) -> YADTQ:
    """Import ``module`` or ``module:attr`` and return its :class:`YADTQ` instance.

    With a bare module, the attribute ``app`` wins, else the only YADTQ instance in it.
    A package also gets its ``tasks`` modules imported (autodiscovery: ``pkg.tasks``
    and ``pkg.<sub-package>.tasks``), and its app may live in one of them.

    The app is then finalized (:meth:`YADTQ.finalize`: Django's deferred task discovery).

    Raises:
        ConfigurationError: the module cannot be imported or holds no (or several) apps.
    """
    app = _find_app(path)
    app.finalize()
    return app


def _find_app(path: str) -> YADTQ:
    from ..app import YADTQ

    if not path:
        raise ConfigurationError("no app given: use -A module or -A module:attribute")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if getattr(exc, "name", None) and module_name.startswith(exc.name or "\0"):
            raise ConfigurationError(f"cannot import app module {module_name!r}: {exc}") from None
        raise ConfigurationError(f"importing {module_name!r} failed: {exc}") from None
    except Exception as exc:
        raise ConfigurationError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    # A package: import its tasks modules (and its sub-packages'), as Celery's -A does.
    discovered = autodiscover(module_name) if hasattr(module, "__path__") else []
    if attr:
        try:
            app = getattr(module, attr)
        except AttributeError:
            raise ConfigurationError(f"module {module_name!r} has no attribute {attr!r}") from None
        if not isinstance(app, YADTQ):
            raise ConfigurationError(f"{path} is a {type(app).__name__}, not a YADTQ app")
        return app
    candidate = getattr(module, "app", None)
    if isinstance(candidate, YADTQ):
        return candidate
    apps = [v for v in vars(module).values() if isinstance(v, YADTQ)]
    if not apps:  # a package whose app lives in one of its tasks modules
        apps = list({id(v): v for found in discovered for v in vars(found).values()
                     if isinstance(v, YADTQ)}.values())
    if len(apps) == 1:
        return apps[0]
    if not apps:
        raise ConfigurationError(f"module {module_name!r} has no YADTQ app")
    raise ConfigurationError(f"module {module_name!r} has several YADTQ apps: use -A {module_name}:NAME")
