"""Finding the app a command names: ``-A module`` or ``-A module:attribute``."""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

from ..exceptions import ConfigurationError

if TYPE_CHECKING:
    from ..app import YADTQ


def load_app(path: str) -> YADTQ:
    """Import ``module`` or ``module:attr`` and return its :class:`YADTQ` instance.

    With a bare module, the attribute ``app`` wins, else the only YADTQ instance in it.

    Raises:
        ConfigurationError: the module cannot be imported or holds no (or several) apps.
    """
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
    if len(apps) == 1:
        return apps[0]
    if not apps:
        raise ConfigurationError(f"module {module_name!r} has no YADTQ app")
    raise ConfigurationError(f"module {module_name!r} has several YADTQ apps: use -A {module_name}:NAME")
