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
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .. import states
from ..exceptions import NotRegistered, YADTQError
from ..settings import redact_url
from .calls import check_arguments, task_signature, task_usage
from .loading import load_app
from .options import app_option
from .render import STATE_STYLES, format_error, one_line, print_worker_table, styled
from .shell_parsing import parse_arguments, split_line
from .shell_views import Submitted, outcome_text, shell_console, task_detail, tasks_table
from .waiting import flush

if TYPE_CHECKING:
    from ..app import YADTQ
    from ..task import Task
    from ..transports.base import TaskRecord

#: Also importable from here (the shell's parts, for tests and embedding).
__all__ = ["Shell", "Submitted", "check_arguments", "parse_arguments", "shell", "split_line",
           "task_usage"]

PROMPT = "yadtq> "
HISTORY_ENV = "YADTQ_HISTORY"
HISTORY_FILE = "~/.yadtq_history"
HISTORY_LENGTH = 1000

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

# --------------------------------------------------------------------------- the shell


class Shell(cmd.Cmd):
    """The command loop. :meth:`run` reads until ``exit`` or end of input."""

    def __init__(self, app: YADTQ, *, interactive: Optional[bool] = None,
                 console: Optional[Console] = None, errors: Optional[Console] = None) -> None:
        super().__init__()
        self.app = app
        self.interactive = sys.stdin.isatty() if interactive is None else interactive
        self.prompt = PROMPT if self.interactive else ""
        self.console = console or shell_console(stderr=False)
        self.errors = errors or shell_console(stderr=True)
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
        self.console.print(tasks_table(self.session, records, self._label))

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
        """The task ``arg`` names: a number from ``tasks``, an id, or any unique part of an id
        (ids begin with the time they were made: their ends tell a session's apart)."""
        words = arg.split()
        ref = words[0].lstrip("#") if len(words) == 1 else ""
        if not ref:
            raise ValueError(f"usage: {COMMANDS[command][0]}")
        if ref.isdigit() and 1 <= int(ref) <= len(self.session):
            item = self.session[int(ref) - 1]
            return item.id, item
        if ref.isdigit() and len(ref) < 8:  # a number, never a part of an id that happens to be digits
            raise ValueError(f"no task #{ref} in this session" + (
                f" (1-{len(self.session)})" if self.session else " (none sent yet)"))
        matches = [item for item in self.session if ref in item.id]
        if len(matches) == 1:
            return matches[0].id, matches[0]
        if len(matches) > 1 and not any(item.id == ref for item in matches):
            raise ValueError(f"{ref!r} matches {len(matches)} tasks of this session: give more of the id")
        return ref, next((item for item in matches if item.id == ref), None)

    def _print_task(self, task_id: str, item: Optional[Submitted], record: Optional[TaskRecord]) -> None:
        for part in task_detail(task_id, item, record):
            self.console.print(part)

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
