"""Logging set-up for the command line; the library itself never configures logging."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any, Optional

from ..exceptions import ConfigurationError

TEXT_FORMAT = "[%(asctime)s] %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")
#: Record attributes (passed as ``extra=``) copied into JSON lines when present.
EXTRA_FIELDS = ("task_id", "task", "duration", "traceback", "worker")

_installed: Optional[logging.Handler] = None


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``ts``, ``level``, ``logger``, ``message``, and task fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:  # formatted already (a record a process-pool child sent)
            entry["exc_info"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


#: ANSI colours of level names on a terminal.
LEVEL_COLOURS = {"DEBUG": "\033[2m", "INFO": "\033[32m", "WARNING": "\033[33m", "ERROR": "\033[31m",
                 "CRITICAL": "\033[1;31m"}
RESET = "\033[0m"


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT`` lines; a failed task's remote traceback follows its line. With
    ``colour`` (a terminal that is not ``NO_COLOR``), level names are coloured."""

    def __init__(self, colour: bool = False) -> None:
        super().__init__(TEXT_FORMAT)
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if self.colour and record.levelname in LEVEL_COLOURS:
            shown = f"] {record.levelname} "
            text = text.replace(shown, f"] {LEVEL_COLOURS[record.levelname]}{record.levelname}{RESET} ", 1)
        traceback = getattr(record, "traceback", None)
        return f"{text}\n{traceback.rstrip()}" if traceback else text


def wants_colour(stream: Any) -> bool:
    """Colour for a terminal, unless ``NO_COLOR`` is set (https://no-color.org)."""
    import os

    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR")


def parse_level(level: str) -> int:
    """``"info"`` -> ``logging.INFO``; also accepts a number.

    Raises:
        ConfigurationError: not a level name or number.
    """
    text = level.strip()
    if text.isdigit():
        return int(text)
    value = logging.getLevelName(text.upper())
    if not isinstance(value, int):
        raise ConfigurationError(
            f"unknown log level {level!r} (use debug, info, warning, error or critical)")
    return value


def configure_logging(level: str = "info", logfile: Optional[str] = None, fmt: str = "text") -> int:
    """Send log records at ``level`` and above to stderr, or to ``logfile``, as text or JSON.

    Calling it again replaces the handler it installed before; handlers others put on
    the root logger (a test runner's, say) are left alone.

    Returns:
        The numeric level.

    Raises:
        ConfigurationError: an unknown level or format, or a log file that cannot be opened.
    """
    numeric = parse_level(level)
    if fmt not in FORMATS:
        raise ConfigurationError(f"unknown log format {fmt!r} (use text or json)")
    handler: logging.Handler
    if logfile:
        try:
            handler = logging.FileHandler(logfile, encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"cannot open log file {logfile!r}: {exc.strerror or exc}") from None
    else:
        handler = logging.StreamHandler(sys.stderr)
    colour = not logfile and wants_colour(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(colour))
    global _installed
    root = logging.getLogger()
    if _installed is not None:
        root.removeHandler(_installed)
        _installed.close()
    root.addHandler(handler)
    _installed = handler
    root.setLevel(numeric)
    logging.captureWarnings(True)
    return numeric
