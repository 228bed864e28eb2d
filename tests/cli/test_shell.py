"""``yadtq shell``: the real shell driven through a pseudo-terminal, against a real worker.

The pexpect tests spawn ``python -m yadtq.cli shell -A tests.apps.shell_app`` on a SQLite
database in a temporary directory (with a ``yadtq worker`` subprocess where results are
needed); every wait has a deadline. A few in-process tests cover the parsing helpers and
the ``tasks``/``view`` logic on ``memory://``.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pexpect
import pytest
from rich.console import Console

from tests.apps import shell_app
from tests.worker.procs import ROOT, running_workers, wait_ready, worker_env
from yadtq import YADTQ
from yadtq.cli.shell import Shell, check_arguments, parse_arguments, split_line, task_usage
from yadtq.contrib.pytest import on_memory
from yadtq.worker.main import Worker

APP = "tests.apps.shell_app"
WORKER = "shell-w0"
#: Seconds any single expectation may take (a shell start imports the app and rich).
TIMEOUT = 30.0
TASK_ID = r"[0-9a-f]{32}"
#: Escape sequences, carriage returns and bells: what the terminal adds to the text.
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[@-Z\\-_]|[\r\x07]")


@dataclass
class Cluster:
    """A SQLite database that shells (and perhaps a worker) share, and an app to inspect it."""

    directory: Path
    env: dict[str, str]
    app: YADTQ


def make_cluster(directory: Path) -> Cluster:
    url = f"sqlite:///{directory / 'shell.db'}"
    env = worker_env(url, url, directory)
    env.pop("YADTQ_APP", None)
    env.update(YADTQ_HISTORY=str(directory / "history"), HOME=str(directory), INPUTRC=os.devnull,
               TERM="xterm", COLUMNS="200", LINES="50")
    return Cluster(directory, env, YADTQ("probe", broker=url, backend=url))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A database with one ``tests.apps.shell_app`` worker serving it."""
    cluster = make_cluster(tmp_path_factory.mktemp("shell-served"))
    try:
        with running_workers(1, APP, cluster.env, cluster.directory, prefix="shell-w") as workers:
            wait_ready(workers, cluster.app.get_worker_status)
            yield cluster
    finally:
        cluster.app.close()


@pytest.fixture
def idle(tmp_path: Path) -> Iterator[Cluster]:
    """A fresh database no worker serves: sent tasks stay queued."""
    cluster = make_cluster(tmp_path)
    try:
        yield cluster
    finally:
        cluster.app.close()


class Session:
    """A shell on a pseudo-terminal, read as plain text (escape sequences removed)."""

    def __init__(self, cluster: Cluster) -> None:
        self.child = pexpect.spawn(sys.executable, ["-m", "yadtq.cli", "shell", "-A", APP], cwd=str(ROOT),
                                   env=cluster.env, dimensions=(50, 200), encoding="utf-8",
                                   codec_errors="replace", timeout=TIMEOUT)
        self.raw = ""
        self.pos = 0  # how far expect() has consumed the plain text
        self.expect(r"yadtq shell · app shell-test")
        self.prompt()

    @property
    def text(self) -> str:
        return ANSI.sub("", self.raw)

    def expect(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        """Wait for ``pattern`` in the text after the last match; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            match = regex.search(self.text, self.pos)
            if match is not None:
                self.pos = match.end()
                return match
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} within {timeout} s; output since last match:\n"
                                     f"{self.text[self.pos:]}")
            try:
                self.raw += self.child.read_nonblocking(4096, timeout=min(0.2, timeout))
            except pexpect.TIMEOUT:
                pass
            except pexpect.EOF:
                raise AssertionError(f"shell ended while waiting for {pattern!r}:\n{self.text[self.pos:]}"
                                     ) from None

    def prompt(self) -> None:
        self.expect(r"yadtq> ")

    def interrupt(self) -> None:
        """Ctrl-C, then the fresh prompt. A SIGINT that races readline's read is only
        acted on at the next key, so if no prompt comes, send Ctrl-E (end of line),
        a key that runs nothing."""
        self.child.sendintr()
        try:
            self.expect(r"yadtq> ", timeout=3.0)
        except AssertionError:
            self.child.send("\x05")
            self.prompt()

    def run(self, line: str) -> str:
        """Send a line and return what it printed, up to the next prompt."""
        self.child.send(line + "\r")
        start = self.pos
        self.prompt()
        output = self.text[start:self.pos - len("yadtq> ")]
        return output.split("\n", 1)[1] if "\n" in output else ""  # drop the echoed line

    def submit(self, line: str) -> str:
        match = re.search(rf"#\d+ ({TASK_ID})\n", self.run(line))
        assert match is not None, line
        return match[1]

    def error(self, line: str) -> str:
        """Send a line that must fail: returns its one ``error: ...`` line."""
        output = self.run(line)
        lines = [item for item in output.splitlines() if item.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), output
        return lines[0]

    def exit_status(self, timeout: float = TIMEOUT) -> Optional[int]:
        """Wait for the shell to end; its exit status."""
        self.child.expect(pexpect.EOF, timeout=timeout)
        self.child.close()
        return self.child.exitstatus  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


@pytest.fixture
def shells() -> Iterator[list[Session]]:
    """Sessions a test opens, closed for sure at the end."""
    opened: list[Session] = []
    yield opened
    for session in opened:
        session.close()


def open_shell(cluster: Cluster, shells: list[Session]) -> Session:
    session = Session(cluster)
    shells.append(session)
    return session


def row(output: str, number: int) -> list[str]:
    """The cells of row ``number`` of a printed ``tasks`` table."""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells and cells[0] == str(number):
            return cells
    raise AssertionError(f"no row {number} in:\n{output}")


def wait_for_state(session: Session, number: int, state: str, timeout: float = TIMEOUT) -> list[str]:
    """Re-issue ``tasks`` until row ``number`` shows ``state``; that row's cells."""
    deadline = time.monotonic() + timeout
    while True:
        cells = row(session.run("tasks"), number)
        if cells[4] == state:
            return cells
        if time.monotonic() > deadline:
            raise AssertionError(f"task #{number} still {cells[4]} after {timeout} s")
        time.sleep(0.1)


def field(output: str, name: str) -> str:
    """The value of a ``view`` line ``name   value``."""
    match = re.search(rf"^{name} +(.*?) *$", output, re.MULTILINE)
    assert match is not None, f"no {name} in:\n{output}"
    return match[1]


# --------------------------------------------------------------------------- through a terminal


def test_submit_list_view_exit(served: Cluster, shells: list[Session]) -> None:
    session = open_shell(served, shells)
    task_id = session.submit("add 2 3")
    cells = wait_for_state(session, 1, "success")
    assert cells[1:4] == [task_id, "add", "2, 3"]
    assert cells[5] == "5"

    view = session.run("view 1")
    assert field(view, "id") == task_id
    assert field(view, "status") == "success"
    assert field(view, "result") == "5"
    assert field(view, "worker") == WORKER
    for name in ("queued", "started", "finished"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", field(view, name)), view
    assert re.fullmatch(r"[\d.]+ (ms|s)", field(view, "runtime")), view
    # 8 characters: a shorter part of digits only would be read as a number (#N).
    assert session.run(f"view {task_id[-8:]}") == view

    session.child.send("exit\r")
    assert session.exit_status() == 0


def test_failed_task_shows_its_error(served: Cluster, shells: list[Session]) -> None:
    session = open_shell(served, shells)
    task_id = session.submit("divide 1 0")
    waited = session.run("wait 1 30")
    assert re.search(rf"#1 {task_id} failed ZeroDivisionError: division by zero", waited), waited
    assert wait_for_state(session, 1, "failed")[5] == "ZeroDivisionError: division by zero"
    view = session.run(f"view {task_id}")
    assert field(view, "status") == "failed"
    assert field(view, "error") == "ZeroDivisionError: division by zero"
    assert field(view, "worker") == WORKER
    assert "Traceback (most recent call last)" in view and "return x / y" in view
    session.child.sendeof()
    assert session.exit_status() == 0


def test_keywords_and_bound_tasks(served: Cluster, shells: list[Session]) -> None:
    session = open_shell(served, shells)
    session.submit('greet bob punctuation="?"')
    bound_id = session.submit("whoami tag")
    assert wait_for_state(session, 1, "success")[5] == '"hello bob?"'
    assert wait_for_state(session, 2, "success")[5].startswith('"tag:')
    assert field(session.run("view 2"), "result") == f'"tag:{bound_id}"'
    workers = session.run("workers")
    assert WORKER in workers and "alive" in workers
    session.child.send("quit\r")
    assert session.exit_status() == 0


def test_bad_input_is_one_line_and_the_shell_goes_on(idle: Cluster, shells: list[Session]) -> None:
    session = open_shell(idle, shells)
    assert session.error("add 1") == "error: missing a required argument: 'y' (usage: add x y)"
    assert session.error("add 1 2 3") == "error: too many positional arguments (usage: add x y)"
    assert session.error("whoami 1 2") == "error: too many positional arguments (usage: whoami tag)"
    assert session.error("add x=1 y=2 z=3").startswith("error: got an unexpected keyword argument 'z'")
    assert session.error("frobnicate 1") == ("error: unknown command or task 'frobnicate': "
                                             "type help for commands and tasks")
    assert "did you mean add?" in session.error("ad 1 2")
    assert session.error("add [1, 2") == "error: unclosed bracket (missing ']')"
    assert session.error("view 7") == "error: no task #7 in this session (none sent yet)"
    assert session.error("tasks please") == "error: tasks takes no arguments"
    assert session.error("wait 1 soon") == "error: SECONDS must be a number, not 'soon'"
    assert idle.app.broker.depth("default") == 0  # nothing was sent

    session.submit("add 1 2")
    assert session.error("wait 1 0").startswith("error: task ")  # not ready: no worker
    assert idle.app.broker.depth("default") == 1

    help_text = session.run("help")
    for word in ("tasks", "view ID|N", "workers", "reset", "exit", "add x y", "greet name [punctuation='!']",
                 "whoami tag", "divide x y"):
        assert word in help_text, word
    assert "view ID|N" in session.run("help view")

    session.interrupt()  # Ctrl-C at the prompt cancels the line, not the shell
    session.child.send("add 4 ")
    session.expect(r"add 4 $")
    session.interrupt()  # the half-typed "add 4" is dropped: nothing is sent
    assert re.fullmatch(TASK_ID, session.submit("add 5 5"))
    assert idle.app.broker.depth("default") == 2
    session.child.sendeof()
    assert session.exit_status() == 0


def test_tab_completion_and_history(idle: Cluster, shells: list[Session]) -> None:
    session = open_shell(idle, shells)
    session.child.send("ad\t")
    session.expect(r"add $", timeout=10)
    session.child.send("2 3\r")
    first = session.expect(rf"#1 ({TASK_ID})\n")[1]
    session.prompt()
    session.child.send("wor\t")
    session.expect(r"workers $", timeout=10)
    session.child.send("\r")
    session.expect(r"no workers have reported yet")
    session.prompt()
    session.child.send("tests.apps.shell_app.gr\t")
    session.expect(r"tests\.apps\.shell_app\.greet $", timeout=10)
    session.child.send("ann pun\t")
    session.expect(r"ann punctuation=$", timeout=10)
    session.child.send('"?"\r')
    second = session.expect(rf"#2 ({TASK_ID})\n")[1]
    session.prompt()
    session.child.send("view \t\t")  # several candidates: Tab twice lists them
    listed = session.expect(r"view \n(.+)\n", timeout=10)[1]
    assert set(listed.split()) == {"1", "2", first, second}
    session.child.send("2\r")
    session.expect(r'args +"ann", punctuation="\?"')
    session.prompt()
    session.child.send("exit\r")
    assert session.exit_status() == 0

    history = (idle.directory / "history").read_text().splitlines()
    assert history[-5:] == ["add 2 3", "workers ", 'tests.apps.shell_app.greet ann punctuation="?"',
                            "view 2", "exit"]

    again = open_shell(idle, shells)  # the history is read back: Up recalls the last line
    again.child.send("\x1b[A\x1b[A\x1b[A")
    again.expect(r'tests\.apps\.shell_app\.greet ann punctuation="\?"$', timeout=10)
    again.child.send("\r")
    again.expect(rf"#1 {TASK_ID}\n")
    again.prompt()  # keys sent before readline reads again may be lost, as on any terminal
    again.child.sendeof()
    assert again.exit_status() == 0


def test_history_write_failure_is_tolerated(idle: Cluster, shells: list[Session]) -> None:
    idle.env["YADTQ_HISTORY"] = str(idle.directory / "missing" / "history")
    session = open_shell(idle, shells)
    session.run("help")
    session.child.send("exit\r")
    session.expect(r"warning: history not saved to ")
    assert session.exit_status() == 0


def test_reset_purges_only_on_yes(idle: Cluster, shells: list[Session]) -> None:
    session = open_shell(idle, shells)
    session.submit("add 1 2")
    session.submit("add 3 4")
    assert idle.app.broker.depth("default") == 2

    session.child.send("reset\r")
    session.expect(r"cleared 2 tasks from the list\n")
    session.expect(r"also purge queued tasks from queue default\? \[y/N\] $")
    session.child.send("n\r")
    session.prompt()
    assert idle.app.broker.depth("default") == 2
    assert "no tasks sent in this session yet" in session.run("tasks")

    session.child.send("reset\r")
    session.expect(r"cleared 0 tasks from the list\n")
    session.expect(r"\[y/N\] $")
    session.child.send("y\r")
    session.expect(r"purged 2 tasks\n")
    session.prompt()
    assert idle.app.broker.depth("default") == 0
    session.child.send("exit\r")
    assert session.exit_status() == 0
    history = (idle.directory / "history").read_text().splitlines()
    assert "y" not in history and "n" not in history  # answers are not commands


def test_piped_commands(idle: Cluster) -> None:
    script = "# a comment\nadd 2 3\n\nnope\ntasks\nreset\ny\nexit\nadd 9 9\n"
    proc = subprocess.run([sys.executable, "-m", "yadtq.cli", "shell", "-A", APP], input=script, cwd=ROOT,
                          env=idle.env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "yadtq> " not in proc.stdout
    assert re.search(rf"^#1 {TASK_ID}$", proc.stdout, re.MULTILINE), proc.stdout
    assert "#2" not in proc.stdout  # nothing runs after exit
    assert "1 tasks: 1 queued" in proc.stdout
    assert "purged 1 task\n" in proc.stdout
    banner, *errors = proc.stderr.splitlines()
    assert banner.startswith("yadtq shell · app ") and "help lists commands" in banner
    assert errors == ["error: unknown command or task 'nope': type help for commands and tasks"]
    assert "yadtq shell" not in proc.stdout  # stdout carries only what the commands print


def test_piped_output_is_not_wrapped_at_80_columns(idle: Cluster) -> None:
    env = {k: v for k, v in idle.env.items() if k != "COLUMNS"}
    proc = subprocess.run([sys.executable, "-m", "yadtq.cli", "shell", "-A", APP],
                          input='add 2 3\nadd [1, 2, 3, 4, 5, 6, 7, 8] "a long string argument"\ntasks\n',
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    (row,) = [line for line in proc.stdout.splitlines() if "a long string argument" in line]
    assert len(row) > 80 and re.search(TASK_ID, row), proc.stdout
    assert len(proc.stderr.splitlines()) == 1  # the banner, on one line however long


def test_bad_app_is_one_line(idle: Cluster) -> None:
    proc = subprocess.run([sys.executable, "-m", "yadtq.cli", "shell", "-A", "tests.apps.no_such_app"],
                          input="", cwd=ROOT, env=idle.env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: cannot import app module") and proc.stderr.count("\n") == 1


# --------------------------------------------------------------------------- in process


def test_split_line() -> None:
    assert split_line('add [1, 2] "a b" x={"k": 1}') == ["add", "[1, 2]", '"a b"', 'x={"k": 1}']
    assert split_line("greet bob's  'x y'") == ["greet", "bob's", "'x y'"]
    assert split_line('f "a \\" b" (1, [2])') == ["f", '"a \\" b"', "(1, [2])"]
    assert split_line("   ") == []
    for bad, message in [('f "x', "unterminated string"), ("f [1, 2", "unclosed bracket"),
                         ("f 1]", "unbalanced"), ("f [1)", "unbalanced")]:
        with pytest.raises(ValueError, match=message):
            split_line(bad)


def test_parse_arguments() -> None:
    assert parse_arguments(["2", "1.5", '"3"', "bob", "[1, 2]", "x=4", 'y="a=b"']) == (
        (2, 1.5, "3", "bob", [1, 2]), {"x": 4, "y": "a=b"})
    assert parse_arguments(['"k=v"']) == (("k=v",), {})
    with pytest.raises(ValueError, match="follows keyword"):
        parse_arguments(["x=1", "2"])
    with pytest.raises(ValueError, match="given twice"):
        parse_arguments(["x=1", "x=2"])


def test_check_arguments_and_usage() -> None:
    check_arguments(shell_app.add, (1,), {"y": 2})
    check_arguments(shell_app.whoami, ("t",), {})  # bound: the task itself is not an argument
    with pytest.raises(ValueError, match=r"missing a required argument: 'tag' \(usage: whoami tag\)"):
        check_arguments(shell_app.whoami, (), {})
    assert task_usage(shell_app.greet) == "greet name [punctuation='!']"
    assert task_usage(shell_app.add, "tests.apps.shell_app.add") == "tests.apps.shell_app.add x y"


def recording_shell(app: YADTQ) -> tuple[Shell, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    shell = Shell(app, interactive=False, console=Console(file=out, width=200, highlight=False),
                  errors=Console(file=err, width=200, highlight=False))
    return shell, out, err


@pytest.fixture
def memory_shell() -> Iterator[tuple[Shell, io.StringIO, io.StringIO]]:
    with on_memory(shell_app.app) as app:
        yield recording_shell(app)


def take(stream: io.StringIO) -> str:
    text = stream.getvalue()
    stream.seek(0)
    stream.truncate()
    return text


def test_view_by_part_of_an_id_and_other_ids(memory_shell: tuple[Shell, io.StringIO, io.StringIO]) -> None:
    shell, out, err = memory_shell
    for line in ("add 1 1", "divide 4 2", "greet ann"):
        assert shell.onecmd(line) is False
    ids = [item.id for item in shell.session]
    worker = Worker(shell.app, name="memory-shell", concurrency=2).start()
    try:
        for task_id in ids:
            shell.app.AsyncResult(task_id).get(timeout=10)
    finally:
        worker.stop(timeout=30)
    take(out)
    shell.onecmd(f"view {ids[1][-10:]}")  # the end: ids of one session begin alike
    assert field(take(out), "result") == "2.0"
    shell.onecmd(f"view {ids[2][:20]}")
    assert field(take(out), "result") == '"hello ann!"'
    shell.onecmd("view #3")
    assert field(take(out), "result") == '"hello ann!"'
    other = shell.app.send_task("tests.apps.shell_app.add", (0, 0)).id
    shell.onecmd(f"view {other}")  # sent elsewhere, not yet taken: unknown to the backend
    assert take(err).startswith(f"error: no task {other} is known")
    shell.onecmd(f"wait {ids[0]} 1")
    assert re.search(rf"#1 {ids[0]} success 2\n", take(out))
    assert shell.onecmd("tasks") is False
    assert "3 tasks: 3 success" in take(out)
    assert not err.getvalue()
    assert shell.onecmd("exit") is True


def test_unexpected_errors_do_not_end_the_shell(memory_shell: tuple[Shell, io.StringIO, io.StringIO],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    shell, _, err = memory_shell

    def broken(*args: Any) -> Any:
        raise RuntimeError("backend exploded")

    monkeypatch.setattr(shell.app.backend, "workers", broken)
    assert shell.onecmd("workers") is False
    assert take(err) == "error: RuntimeError: backend exploded\n"
    assert shell.onecmd("view ") is False
    assert take(err) == "error: usage: view ID|N\n"
