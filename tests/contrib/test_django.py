"""``yadtq.contrib.django`` with a small real Django project (tests/django_project/) and a
real ``yadtq worker`` process on the SQLite transport."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from yadtq import YADTQ
from yadtq.exceptions import ConfigurationError, SerializationError

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "tests" / "django_project"

try:
    import django
except ImportError:  # pragma: no cover - the test extra installs Django
    if os.environ.get("CI"):
        raise
    pytest.skip("Django is not installed (pip install 'yadtq[django]')", allow_module_level=True)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The Django project set up in this process (its database migrated), and the
    environment a worker process of it needs."""
    from django.apps import apps

    if apps.ready:
        pytest.skip("Django was already set up in this process by another test")
    base = tmp_path_factory.mktemp("django")
    env = {"DJANGO_SETTINGS_MODULE": "djproj.settings", "DJPROJ_DATABASE": str(base / "db.sqlite3"),
           "DJPROJ_QUEUE": f"sqlite:///{base / 'queue.db'}"}
    saved = {name: os.environ.get(name) for name in [*env, "TZ"]}  # Django sets TZ from TIME_ZONE
    os.environ.update(env)
    sys.path.insert(0, str(PROJECT))
    try:
        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        worker_env = {k: v for k, v in os.environ.items() if not k.startswith("YADTQ_")}
        worker_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(PROJECT)])
        yield {**worker_env, "LOGDIR": str(base)}
    finally:
        sys.path.remove(str(PROJECT))
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        time.tzset()


@pytest.fixture(scope="module")
def project_app(project: dict[str, str]) -> YADTQ:
    from djproj import app

    return app


def _start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = Path(env["LOGDIR"]) / "worker.log"
    return subprocess.Popen(
        [sys.executable, "-m", "yadtq", "worker", "-A", "djproj", "-c", "1", "-n", "django-worker",
         "--logfile", str(log)],
        cwd=PROJECT, env={k: v for k, v in env.items() if k != "LOGDIR"},
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    if proc.stderr is not None:
        proc.stderr.close()


def test_settings_come_from_django_settings(project_app: YADTQ, project: dict[str, str]) -> None:
    assert project_app.settings.broker_url == project["DJPROJ_QUEUE"]
    assert project_app.settings.backend_url == project["DJPROJ_QUEUE"]
    assert project_app.settings.default_queue == "djnotes"
    assert project_app.settings.result_expires == 3600
    # The project's package is imported while Django reads its settings: discovery waits
    # for finalize(), which yadtq commands (the worker) call.
    project_app.finalize()
    assert "djnotes.tasks.read_note" in project_app.tasks  # autodiscovered in installed apps


def test_unknown_namespaced_setting_is_a_clear_error() -> None:
    app = YADTQ("x", broker="memory://", backend="memory://")
    with pytest.raises(ConfigurationError, match="YADTQ_BROKER_URLL"):
        app.config_from_object({"YADTQ_BROKER_URLL": "x", "OTHER": 1}, namespace="YADTQ")
    app.config_from_object({"YADTQ_DEFAULT_QUEUE": "q", "DEBUG": True, "lower": 1}, namespace="YADTQ")
    assert app.settings.default_queue == "q"


def test_unserializable_argument_fails_at_the_call(project_app: YADTQ) -> None:
    from djnotes.tasks import read_note

    with pytest.raises(SerializationError):
        read_note.delay_on_commit(object())  # type: ignore[arg-type]


def test_sent_only_when_the_transaction_commits(project_app: YADTQ, project: dict[str, str]) -> None:
    from django.db import transaction
    from djnotes.models import Note, Reading
    from djnotes.tasks import read_note

    queue = project_app.settings.default_queue
    worker = _start_worker(project)
    try:
        class Rollback(Exception):
            pass

        with pytest.raises(Rollback), transaction.atomic():
            gone = Note.objects.create(text="rolled back")
            read_note.delay_on_commit(gone.pk)
            assert project_app.broker.depth(queue) == 0
            raise Rollback

        task_id = "django-commit-" + os.urandom(4).hex()
        with transaction.atomic():
            note = Note.objects.create(text="committed")
            read_note.apply_async_on_commit((note.pk,), task_id=task_id)
            assert project_app.broker.depth(queue) == 0  # not before the commit
        result: Any = project_app.AsyncResult(task_id)
        assert result.get(timeout=90) == "committed"  # the worker sees the committed row
        # One worker running one task at a time in queue order: a message sent at the
        # rollback would have run before this one.
        assert list(Reading.objects.values_list("note_id", flat=True)) == [note.pk]
        deadline = time.monotonic() + 60  # the delivery is marked done just after the result
        while project_app.broker.depth(queue):
            assert time.monotonic() < deadline, "a message is still queued"
            time.sleep(0.05)
    finally:
        _stop(worker)
    assert worker.returncode == 0


def test_outside_a_transaction_it_sends_at_once(project_app: YADTQ) -> None:
    from djnotes.tasks import read_note

    queue = project_app.settings.default_queue
    before = project_app.broker.depth(queue) or 0
    read_note.delay_on_commit(10**9)
    deadline = time.monotonic() + 30
    while (project_app.broker.depth(queue) or 0) <= before:
        assert time.monotonic() < deadline, "nothing was sent"
        time.sleep(0.05)
    project_app.purge(queue)


def test_without_django_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "django", None)  # as if not installed
    app = YADTQ("x", broker="memory://", backend="memory://")

    @app.task
    def nothing() -> None:
        pass

    with pytest.raises(ConfigurationError, match=r"yadtq\[django\]"):
        nothing.delay_on_commit()
    with pytest.raises(ConfigurationError, match=r"yadtq\[django\]"):
        app.autodiscover_tasks()


def test_example_project_runs(tmp_path: Path) -> None:
    """examples/django_app as docs/django.md runs it: migrate, a worker, place_order."""
    example = ROOT / "examples" / "django_app"
    queue = f"sqlite:///{tmp_path / 'yadtq.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YADTQ_", "DJANGO_"))}
    env.update({"SHOP_DATABASE": str(tmp_path / "shop.sqlite3"), "YADTQ_BROKER_URL": queue,
                "YADTQ_BACKEND_URL": queue, "PYTHONPATH": str(ROOT)})
    migrate = subprocess.run([sys.executable, "manage.py", "migrate"], cwd=example, env=env,
                             capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stderr
    worker = subprocess.Popen(
        [sys.executable, "-m", "yadtq", "worker", "-A", "shop", "-Q", "orders", "-c", "2",
         "--logfile", str(tmp_path / "worker.log")],
        cwd=example, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        placed = subprocess.run([sys.executable, "manage.py", "place_order", "book"], cwd=example,
                                env=env, capture_output=True, text=True, timeout=150)
    finally:
        _stop(worker)
    assert placed.returncode == 0, placed.stderr
    assert "order 1 (book) confirmed (confirmed in the database: True)" in placed.stdout
