"""Task names: the same name whether the defining module is imported or run as a script."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Optional


def module_name(module: str) -> str:
    """The name a worker imports ``module`` under; differs from ``module`` only for ``__main__``.

    ``python -m pkg.mod`` gives ``pkg.mod`` (from the module spec); ``python path/mod.py``
    gives the dotted path from the outermost package directory holding the file (each
    with an ``__init__.py``), so ``python examples/math_app.py`` names its tasks
    ``examples.math_app.*``, as ``yadtq worker -A examples.math_app`` does.
    """
    if module != "__main__":
        return module
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":
        return str(spec.name)
    filename: Optional[str] = getattr(main, "__file__", None)
    if not filename:
        return module  # an interactive session: nothing to import it by
    path = Path(filename).resolve()
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").exists():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts)


def default_task_name(fn: Callable[..., Any]) -> str:
    """``module.qualname`` of a task function, the module named as a worker imports it."""
    return f"{module_name(fn.__module__)}.{fn.__qualname__}"
