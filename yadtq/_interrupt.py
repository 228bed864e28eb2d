"""A Ctrl-C while the ``yadtq`` command starts up ends it without a traceback.

The command's own guard (``cli.YadtqGroup``) turns Ctrl-C into exit status 130, but
only once the command runs: importing yadtq, click, rich and the transports' clients
takes a moment first, and an interrupt then would print the traceback of whatever
import it hit. So, in a process that *is* the command (its console script, or
``python -m yadtq`` / ``python -m yadtq.cli``) and only there, an uncaught
``KeyboardInterrupt`` is reported by one empty line; the interpreter still ends
the process by SIGINT, which a shell shows as status 130. Importing yadtq as a
library changes nothing.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType
from typing import Any, Callable, Optional

ExceptHook = Callable[[type[BaseException], BaseException, Optional[TracebackType]], Any]

#: What ``python -m`` runs when the process is the yadtq command.
_CLI_MODULES = ("yadtq", "yadtq.cli")


def is_cli_process() -> bool:
    """Whether this process was started as the ``yadtq`` command."""
    if os.path.basename(sys.argv[0] if sys.argv else "") in ("yadtq", "yadtq.exe"):
        return True
    original = list(getattr(sys, "orig_argv", ()))  # Python 3.10+: the interpreter's own argv
    for index, word in enumerate(original[:-1]):
        if word == "-m":
            return original[index + 1] in _CLI_MODULES
    return False


_installed: list[ExceptHook] = []


def quiet_interrupts_at_start() -> None:
    """In the ``yadtq`` command's process, report an uncaught Ctrl-C without a traceback."""
    if not is_cli_process() or sys.excepthook in _installed:
        return
    previous: ExceptHook = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: Optional[TracebackType]) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.stderr.write("\n")
            return
        previous(kind, value, tb)

    _installed.append(hook)
    sys.excepthook = hook
