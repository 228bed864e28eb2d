"""``yadtq shell``: an interactive client that submits tasks by name and follows them.

A :class:`cmd.Cmd` reads the lines: with a terminal, through :mod:`readline` (history in
``~/.yadtq_history`` or ``$YADTQ_HISTORY``, tab completion of commands and task names);
with piped input, one command a line. A line that is no command is a task call,
``add 2 3``. Every error a line causes is printed as one ``error: ...`` line and the
shell reads on.
"""

from __future__ import annotations

import cmd
import contextlib
import difflib
import inspect
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .. import states
from ..envelope import unpack
from ..exceptions import NotRegistered, YADTQError
from ..settings import redact_url
from .calls import check_arguments, task_signature, task_usage
from .loading import load_app
from .options import app_option
from .render import (
    STATE_STYLES,
    format_call,
    format_error,
    format_value,
    one_line,
    print_worker_table,
    styled,
)
from .tasks import flush, parse_arg

if TYPE_CHECKING:
    from ..app import YADTQ
    from ..task import Task
    from ..transports.base import TaskRecord

PROMPT = "yadtq> "
HISTORY_ENV = "YADTQ_HISTORY"
HISTORY_FILE = "~/.yadtq_history"
HISTORY_LENGTH = 1000
#: Results and errors in the ``tasks`` list are cut to this many characters.
SHORT_WIDTH = 60

#: name -> (usage, summary), in the order ``help`` lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "tasks": ("tasks", "this session's tasks with their live status"),
    "view": ("view ID|N", "one task in full: status, result or error, retries, worker, timings"),
    "wait": ("wait ID|N [SECONDS]", "wait for a task to finish (Ctrl-C stops waiting)"),
    "workers": ("workers", "the workers with their status and counts"),
    "reset": ("reset", "clear this session's task list; then offer to purge queued tasks"),
    "help": ("help [COMMAND|TASK]", "this help, or one command's or task's"),
    "exit": ("exit, quit, Ctrl-D", "leave the shell"),
}
ALIASES = {"quit": "exit"}

_KEYWORD = re.compile(r"([A-Za-z_]\w*)=(.*)", re.DOTALL)
_CLOSING = {"[": "]", "{": "}", "(": ")"}


# --------------------------------------------------------------------------- parsing


def split_line(line: str) -> list[str]:
    """Split a line at whitespace outside quotes and brackets; tokens keep their quotes.

    ``add [1, 2] "a b" x={"k": 1}`` -> ``["add", "[1, 2]", '"a b"', 'x={"k": 1}']``. A quote
    opens a string only at the start of a token, after ``=`` or inside brackets, so
    ``greet bob's`` is two plain words.

    Raises:
        ValueError: an unterminated string or unbalanced bracket.
    """
    tokens: list[str] = []
    current: list[str] = []
    expected: list[str] = []  # closing brackets still owed, innermost last
    quote: Optional[str] = None
    escaped = False
    for char in line:
        if quote is not None:
            current.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
            continue
        if char.isspace() and not expected:
            if current:
                tokens.append("".join(current))
                current = []
            continue
        if char in "\"'" and (not current or expected or current[-1] == "="):
            quote = char
        elif char in _CLOSING:
            expected.append(_CLOSING[char])
        elif char in ")]}" and (not expected or expected.pop() != char):
            raise ValueError(f"unbalanced {char!r}")
        current.append(char)
    if quote is not None:
        raise ValueError(f"unterminated string (missing {quote})")
    if expected:
        raise ValueError(f"unclosed bracket (missing {expected[-1]!r})")
    if current:
        tokens.append("".join(current))
    return tokens


def parse_arguments(tokens: list[str]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Task arguments from tokens: ``NAME=VALUE`` is a keyword argument, anything else positional.

    Values are read as ``yadtq submit`` reads them (:func:`yadtq.cli.tasks.parse_arg`): JSON,
    else a Python literal, else the text itself. Quote a positional ``"a=b"`` to send it as a string.

    Raises:
        ValueError: a positional argument after a keyword argument, or a repeated keyword.
    """
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for token in tokens:
        match = _KEYWORD.fullmatch(token)
        if match is not None:
            if match[1] in kwargs:
                raise ValueError(f"keyword argument {match[1]} given twice")
            kwargs[match[1]] = parse_arg(match[2])
        elif kwargs:
            raise ValueError(f"positional argument {token} follows keyword arguments")
        else:
            args.append(parse_arg(token))
    return tuple(args), kwargs


# --------------------------------------------------------------------------- formatting


def format_time(timestamp: Optional[float]) -> str:
    """Epoch seconds as local ``YYYY-MM-DD HH:MM:SS.mmm`` (``-`` for none)."""
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def format_duration(seconds: float) -> str:
    """``0.0042`` -> ``"4.2 ms"``, ``2.5`` -> ``"2.50 s"``, ``125`` -> ``"2m 5s"``."""
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m {secs}s"


def clip(text: str, width: int = SHORT_WIDTH) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    text = one_line(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def decoded_result(record: TaskRecord) -> str:
    """A successful task's result, formatted like ``yadtq result`` prints it."""
    if record.result is None:
        return format_value(None)
    try:
        return format_value(unpack(record.result))
    except YADTQError as exc:
        return f"<undecodable result: {one_line(str(exc))}>"


def outcome_text(record: Optional[TaskRecord], *, width: Optional[int] = SHORT_WIDTH) -> Text:
    """What a task came to, or where it is: result, error, worker or due time."""
    def cut(text: str) -> str:
        return clip(text, width) if width else text

    if record is None:
        return Text("")
    now = time.time()
    if record.state == states.SUCCESS:
        return Text(cut(decoded_result(record)))
    error = format_error(record.error.type, record.error.message) if record.error else ""
    if record.state == states.FAILED:
        return Text(cut(error or "failed"), style="red")
    if record.state == states.REVOKED:
        return Text(cut(record.error.message if record.error else "revoked"), style="magenta")
    if record.state == states.PROCESSING:
        return Text(f"on {record.worker}" if record.worker else "", style="dim")
    due = ""
    if record.eta:
        due = f"due in {format_duration(record.eta - now)}" if record.eta > now else "due now"
    if record.state == states.RETRYING:
        parts = [f"retry {record.retries}", due, error]
        return Text(cut(", ".join(part for part in parts if part)), style="yellow")
    return Text(due, style="dim")


# --------------------------------------------------------------------------- the shell


@dataclass(frozen=True)
class Submitted:
    """A task sent from this session."""

    id: str
    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str = ""
    #: When the shell sent it (the backend records no state before a worker takes it).
    sent: float = 0.0


class Shell(cmd.Cmd):
    """The command loop. :meth:`run` reads until ``exit`` or end of input."""

    def __init__(self, app: YADTQ, *, interactive: Optional[bool] = None,
                 console: Optional[Console] = None, errors: Optional[Console] = None) -> None:
        super().__init__()
        self.app = app
        self.interactive = sys.stdin.isatty() if interactive is None else interactive
        self.prompt = PROMPT if self.interactive else ""
        self.console = console or _console(stderr=False)
        self.errors = errors or _console(stderr=True)
        self.session: list[Submitted] = []
        self._readline: Any = None

    # ------------------------------------------------------------------ loop
    def run(self) -> None:
        """Print the banner (on stderr when stdout is no terminal: piped output carries only
        what the commands print), then read and run lines until ``exit``, ``quit`` or end of
        input."""
        (self.console if self.console.is_terminal else self.errors).print(self.banner(), soft_wrap=True)
        if self.interactive:
            self._start_readline()
        try:
            while True:
                try:
                    line = input(self.prompt)
                except EOFError:
                    if self.interactive:
                        self.console.print()
                    return
                except KeyboardInterrupt:  # Ctrl-C cancels the line being typed
                    self.console.print()
                    continue
                if self.onecmd(line):
                    return
        finally:
            self._save_history()

    def banner(self) -> Text:
        settings = self.app.settings
        names = ", ".join(self.task_names(short=True)) or "none"
        return Text.assemble(
            ("yadtq shell", "bold"), f" · app {self.app.name} · broker {redact_url(settings.broker_url)}"
            f" · backend {redact_url(settings.backend_url)} · tasks: {names} · ", ("help", "bold"),
            " lists commands")

    def onecmd(self, line: str) -> bool:
        """Run one line; any error it raises is one ``error: ...`` line, never the end of the shell."""
        try:
            return bool(super().onecmd(line))
        except KeyboardInterrupt:
            self.fail("interrupted")
        except (YADTQError, ValueError) as exc:
            self.fail(one_line(str(exc)) or type(exc).__name__)
        except Exception as exc:  # the shell never dies on input
            self.fail(format_error(type(exc).__name__, str(exc)))
        return False

    def fail(self, message: str) -> None:
        self.errors.print(Text(f"error: {message}", style="red"), soft_wrap=True)

    def emptyline(self) -> bool:
        return False  # cmd.Cmd would repeat the last command

    def parseline(self, line: str) -> tuple[Optional[str], Optional[str], str]:
        """``(command, rest, line)``; the command is ``""`` for a task call (see :meth:`default`)."""
        line = line.strip()
        if not line or line.startswith("#"):  # a comment is an empty line
            return None, None, ""
        if line.startswith("?"):
            line = "help " + line[1:]
        word, *rest = line.split(None, 1)
        word = ALIASES.get(word, word)
        if word in COMMANDS:
            return word, rest[0] if rest else "", line
        return "", line, line

    # ------------------------------------------------------------------ task calls
    def default(self, line: str) -> None:
        """A line that is no command: ``TASK [ARG...] [NAME=VALUE...]`` sends a task."""
        name, *tokens = split_line(line)
        task = self.find_task(name)
        args, kwargs = parse_arguments(tokens)
        check_arguments(task, args, kwargs)
        result = self.app.send_task(task.name, args, kwargs)
        flush(self.app)
        queue = task.options.queue or self.app.settings.default_queue
        self.session.append(Submitted(result.id, task.name, args, kwargs, queue, time.time()))
        self.console.print(Text.assemble((f"#{len(self.session)} ", "dim"), result.id))

    def find_task(self, name: str) -> Task[Any, Any]:
        """The task ``name`` names (full name or unambiguous short name).

        Raises:
            NotRegistered: no such command or task, or an ambiguous short name.
        """
        try:
            return self.app.resolve(name)
        except NotRegistered:
            if any(task.__name__ == name for task in self.app.tasks.values()):
                raise  # an ambiguous short name: the message lists the full names
        close = difflib.get_close_matches(name, [*COMMANDS, *self.task_names()], n=1, cutoff=0.7)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise NotRegistered(f"unknown command or task {name!r}{hint}: "
                            "type help for commands and tasks") from None

    def display_name(self, task: Task[Any, Any]) -> str:
        """The task's short name, or its full name if the short one is ambiguous."""
        shorts = [other for other in self.app.tasks.values() if other.__name__ == task.__name__]
        return task.__name__ if len(shorts) == 1 else task.name

    def task_names(self, *, short: bool = False) -> list[str]:
        """Names a task can be called by: unambiguous short names, and (unless ``short``)
        full names; with ``short``, one name per task (the full name where the short one
        is ambiguous)."""
        counts = Counter(task.__name__ for task in self.app.tasks.values())
        names: list[str] = []
        for full, task in sorted(self.app.tasks.items()):
            if counts[task.__name__] == 1:
                names.append(task.__name__)
                if short or full == task.__name__:
                    continue
            names.append(full)
        return sorted(names)

    # ------------------------------------------------------------------ commands
    def do_tasks(self, arg: str) -> None:
        """List the tasks sent from this session: number, id, task, arguments, live status,
        and the result or error in short. Use `view N` for one in full."""
        self._no_arguments("tasks", arg)
        if not self.session:
            self.console.print(Text("no tasks sent in this session yet", style="dim"))
            return
        records = self.app.backend.get([item.id for item in self.session])
        table = Table(title="Tasks", title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("id", no_wrap=True)
        table.add_column("task")
        table.add_column("args", overflow="fold")
        table.add_column("status")
        table.add_column("result", overflow="fold")
        for number, (item, record) in enumerate(zip(self.session, records), start=1):
            state = record.state if record is not None else states.QUEUED
            table.add_row(str(number), item.id, self._label(item.name),
                          Text(clip(format_call(item.args, item.kwargs))), styled(state, STATE_STYLES),
                          outcome_text(record))
        counts = Counter(record.state if record is not None else states.QUEUED for record in records)
        table.caption = f"{len(records)} tasks: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        self.console.print(table)

    def do_view(self, arg: str) -> None:
        """Show one task in full. N is its number in `tasks`; an id may be cut to any
        prefix unique among this session's tasks; other tasks' full ids work too."""
        task_id, item = self._target(arg, "view")
        record = self.app.backend.get([task_id])[0]
        if record is None and item is None:
            raise ValueError(f"no task {task_id} is known (not yet taken by a worker, or its record expired)")
        self._print_task(task_id, item, record)

    def do_wait(self, arg: str) -> None:
        """Wait until the task finishes (at most SECONDS), then show its status and result.
        Ctrl-C stops waiting."""
        words = arg.split()
        if len(words) not in (1, 2):
            raise ValueError("usage: wait ID|N [SECONDS]")
        timeout: Optional[float] = None
        if len(words) == 2:
            try:
                timeout = float(words[1])
            except ValueError:
                raise ValueError(f"SECONDS must be a number, not {words[1]!r}") from None
            if not timeout >= 0:
                raise ValueError("SECONDS must not be negative")
        task_id, item = self._target(words[0], "wait")
        handle = self.app.AsyncResult(task_id)
        handle.get(timeout=timeout, propagate=False)  # raises yadtq.TimeoutError
        record = handle.info
        state = record.state if record is not None else states.QUEUED
        number = f"#{self.session.index(item) + 1} " if item is not None else ""
        self.console.print(Text.assemble((number, "dim"), task_id, " ", styled(state, STATE_STYLES), " ",
                                         outcome_text(record, width=None)))

    def do_workers(self, arg: str) -> None:
        """List the workers: status (alive, unresponsive, offline), last heartbeat, counts."""
        self._no_arguments("workers", arg)
        print_worker_table(self.app.get_worker_status(), console=self.console)

    def do_reset(self, arg: str) -> None:
        """Clear the task list `tasks` shows (the tasks themselves go on). Then ask whether to
        also drop every task waiting in the app's queues, whoever sent it; only `y` does."""
        self._no_arguments("reset", arg)
        count = len(self.session)
        self.session = []
        self.console.print(f"cleared {count} task{'s' if count != 1 else ''} from the list")
        queues = sorted({self.app.settings.default_queue} | {
            task.options.queue for task in self.app.tasks.values() if task.options.queue})
        plural = "s" if len(queues) > 1 else ""
        if not self.ask(f"also purge queued tasks from queue{plural} {', '.join(queues)}? [y/N] "):
            return
        dropped = [self.app.purge(queue) for queue in queues]
        total = sum(n for n in dropped if n > 0)
        unknown = " (and an unknown number more)" if any(n < 0 for n in dropped) else ""
        self.console.print(f"purged {total} task{'s' if total != 1 else ''}{unknown}")

    def do_help(self, arg: str) -> None:
        """List the commands and the registered tasks, or show one of them in detail."""
        name = ALIASES.get(arg.strip(), arg.strip())
        if name in COMMANDS:
            usage, summary = COMMANDS[name]
            self.console.print(Text(usage, style="bold"))
            self.console.print(one_line(inspect.getdoc(getattr(self, f"do_{name}")) or summary))
            return
        if name:
            task = self.find_task(name)
            self.console.print(Text(task_usage(task, name), style="bold"),
                               Text(f"({task.name})", style="dim"))
            if task.__doc__:
                self.console.print(inspect.cleandoc(task.__doc__))
            return
        commands = Table.grid(padding=(0, 2))
        commands.add_row(Text("TASK [ARG...] [NAME=VALUE...]", style="bold"), "send a task; prints its id")
        for usage, summary in COMMANDS.values():
            commands.add_row(Text(usage, style="bold"), summary)
        self.console.print(Text("Commands", style="bold underline"), commands, "")
        tasks = Table.grid(padding=(0, 2))
        for name in self.task_names(short=True):
            task = self.app.resolve(name)
            summary = inspect.cleandoc(task.__doc__).splitlines()[0] if task.__doc__ else ""
            tasks.add_row(Text(task_usage(task, name), style="bold"), summary)
        self.console.print(Text("Tasks", style="bold underline"),
                           tasks if self.app.tasks else Text("none registered", style="dim"), "")
        self.console.print(Text(
            'Arguments are JSON (2, 1.5, "text", [1, 2], {"a": 1}) or Python literals; anything else '
            "is a string. Tab completes commands and task names.", style="dim"))

    def do_exit(self, arg: str) -> bool:
        """Leave the shell (also: quit, Ctrl-D)."""
        return True

    # ------------------------------------------------------------------ helpers
    def ask(self, question: str) -> bool:
        """A yes/no question on the next input line; only ``y``/``yes`` is yes."""
        try:
            answer = input(question)
        except (EOFError, KeyboardInterrupt):
            self.console.print()
            return False
        if not self.interactive:
            self.console.print(answer, highlight=False)  # the answer came from a pipe: show it
        if self._readline is not None and answer.strip():  # keep answers out of the history
            length = self._readline.get_current_history_length()
            if length and self._readline.get_history_item(length) == answer:
                self._readline.remove_history_item(length - 1)
        return answer.strip().lower() in ("y", "yes")

    def _no_arguments(self, command: str, arg: str) -> None:
        if arg.strip():
            raise ValueError(f"{command} takes no arguments")

    def _label(self, name: str) -> str:
        task = self.app.tasks.get(name)
        return self.display_name(task) if task is not None else name

    def _target(self, arg: str, command: str) -> tuple[str, Optional[Submitted]]:
        """The task ``arg`` names: a number from ``tasks``, an id, or a unique id prefix."""
        words = arg.split()
        ref = words[0].lstrip("#") if len(words) == 1 else ""
        if not ref:
            raise ValueError(f"usage: {COMMANDS[command][0]}")
        if ref.isdigit() and 1 <= int(ref) <= len(self.session):
            item = self.session[int(ref) - 1]
            return item.id, item
        if ref.isdigit() and len(ref) < 8:  # a number, never an id prefix that happens to be digits
            raise ValueError(f"no task #{ref} in this session" + (
                f" (1-{len(self.session)})" if self.session else " (none sent yet)"))
        matches = [item for item in self.session if item.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0].id, matches[0]
        if len(matches) > 1 and not any(item.id == ref for item in matches):
            raise ValueError(f"{ref!r} matches {len(matches)} tasks of this session: give more of the id")
        return ref, next((item for item in matches if item.id == ref), None)

    def _print_task(self, task_id: str, item: Optional[Submitted], record: Optional[TaskRecord]) -> None:
        state = record.state if record is not None else states.QUEUED
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column(overflow="fold")
        grid.add_row("id", task_id)
        name = record.name if record is not None and record.name else (item.name if item else "?")
        grid.add_row("task", name)
        if item is not None:
            grid.add_row("args", format_call(item.args, item.kwargs) or "(none)")
        grid.add_row("status", styled(state, STATE_STYLES))
        if record is not None and record.state == states.SUCCESS:
            grid.add_row("result", decoded_result(record))
        elif record is not None and record.error is not None:
            grid.add_row("error", Text(format_error(record.error.type, record.error.message), style="red"))
        elif record is not None and record.state not in states.READY_STATES:
            grid.add_row("", outcome_text(record, width=None))
        grid.add_row("retries", str(record.retries if record is not None else 0))
        grid.add_row("worker", (record.worker if record is not None else None) or "-")
        grid.add_row("queue", (record.queue if record is not None else None) or (item.queue if item else "-"))
        history = record.history if record is not None else ()
        sent = [ts for ts in (item.sent if item else None, history[0][1] if history else None) if ts]
        queued = min(sent) if sent else None
        started = next((ts for s, ts, _ in history if s == states.PROCESSING), None)
        last_start = record.timestamp(states.PROCESSING) if record is not None else None
        finished = record.timestamp(state) if record is not None and state in states.READY_STATES else None
        grid.add_row("queued", format_time(queued))
        grid.add_row("started", format_time(started))
        grid.add_row("finished", format_time(finished))
        if finished is not None and last_start is not None:
            grid.add_row("runtime", format_duration(max(0.0, finished - last_start)))
        if finished is not None and queued is not None:
            grid.add_row("total", format_duration(max(0.0, finished - queued)))
        if len(history) > 1:
            grid.add_row("history", "\n".join(
                f"{format_time(ts)}  {s:<10}  {w or ''}".rstrip() for s, ts, w in history))
        self.console.print(grid)
        if record is not None and record.error is not None and record.error.traceback:
            self.console.print(Text("traceback", style="bold"))
            self.console.print(Text(record.error.traceback.rstrip(), style="dim"))

    # ------------------------------------------------------------------ completion and history
    def completenames(self, text: str, *ignored: Any) -> list[str]:
        names = [*COMMANDS, *ALIASES, *self.task_names()]
        return [f"{name} " for name in sorted(set(names)) if name.startswith(text)]

    def complete_help(self, text: str, *ignored: Any) -> list[str]:
        return self.completenames(text)

    def complete_view(self, text: str, *ignored: Any) -> list[str]:
        refs = [str(n) for n in range(1, len(self.session) + 1)] + [item.id for item in self.session]
        return [f"{ref} " for ref in refs if ref.startswith(text)]

    complete_wait = complete_view

    def completedefault(self, text: str, line: str, *ignored: Any) -> list[str]:
        """After a task name: its keyword names, as ``name=``."""
        try:
            signature = task_signature(self.find_task(line.split()[0]))
        except (YADTQError, IndexError):
            return []
        if signature is None:
            return []
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return [f"{p.name}=" for p in signature.parameters.values()
                if p.kind in kinds and p.name.startswith(text)]

    def _complete(self, text: str, state: int) -> Optional[str]:
        match: object = self.complete(text, state)  # typeshed says list[str]; it is one match
        return match if isinstance(match, str) else None

    def _start_readline(self) -> None:
        try:
            import readline
        except ImportError:  # no line editing on this platform; input() still works
            return
        self._readline = readline
        readline.set_completer(self._complete)
        readline.set_completer_delims(" \t\n")
        if "libedit" in (readline.__doc__ or ""):
            readline.parse_and_bind("bind ^I rl_complete")
        else:
            readline.parse_and_bind("tab: complete")
        readline.set_history_length(HISTORY_LENGTH)
        with contextlib.suppress(OSError, ValueError):  # none yet, or unreadable: start afresh
            readline.read_history_file(history_path())

    def _save_history(self) -> None:
        if self._readline is None:
            return
        path = history_path()
        try:
            self._readline.write_history_file(path)
        except (OSError, ValueError) as exc:
            self.errors.print(Text(f"warning: history not saved to {path}: {one_line(str(exc))}",
                                   style="yellow"), soft_wrap=True)


#: Width of the shell's output when it goes to no terminal and ``COLUMNS`` is unset: wide
#: enough that no table row is wrapped (tables take only the width they need).
PIPED_WIDTH = 1000


def _console(*, stderr: bool) -> Console:
    """A console on stdout or stderr; when that is no terminal, lines are not wrapped at 80
    columns (unless ``COLUMNS`` asks for a width)."""
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console = Console(stderr=stderr, highlight=False, width=PIPED_WIDTH)
    return console


def history_path() -> str:
    """``$YADTQ_HISTORY``, else ``~/.yadtq_history``."""
    return str(Path(os.environ.get(HISTORY_ENV) or HISTORY_FILE).expanduser())


@click.command("shell")
@app_option
def shell(app_path: str) -> None:
    """An interactive client: send tasks by name and follow them.

    \b
    At the yadtq> prompt:
      add 2 3              send a task (any registered task, by short or full name);
                           arguments as in `yadtq submit`, keywords as name=value
      tasks                this session's tasks with their live status
      view N|ID            one task in full (status, result or error, timings)
      wait N|ID [SECONDS]  wait for a task to finish
      workers              the workers
      reset                clear the task list (and, if you say y, purge queued tasks)
      help                 commands and tasks; exit, quit or Ctrl-D to leave

    History is kept in ~/.yadtq_history (or $YADTQ_HISTORY); Tab completes commands
    and task names. Without a terminal, commands are read one a line from stdin.
    """
    app = load_app(app_path)
    try:
        Shell(app).run()
    finally:
        app.close()
