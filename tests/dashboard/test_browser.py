"""The dashboard in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, which scripts/test.sh installs) driven by Selenium, against a live
``yadtq worker`` process on SQLite.

Screenshots of every page go to ``$YADTQ_TEST_ARTEFACTS/dashboard/`` (default: the
pytest temporary directory); docs/img/ holds copies.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.cli.conftest import Cli, wait_for
from tests.dashboard.conftest import Client
from yadtq import YADTQ, states

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = os.environ.get("YADTQ_TEST_ARTEFACTS")
    path = (Path(base) if base else tmp_path_factory.getbasetemp() / "artefacts") / "dashboard"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (CHROMIUM and CHROMEDRIVER):
        message = ("headless Chromium needs Debian's chromium and chromium-driver "
                   "(scripts/test.sh installs them)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1360,900", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def cluster(cli: Cli, serve_dashboard: Callable[..., Client]) -> Iterator[tuple[YADTQ, str]]:
    """A ``yadtq worker`` process on SQLite, and a dashboard of the same database."""
    cli.start_worker("-A", "examples.math_app", "-c", "2", name="browser-worker")
    url = cli.env["YADTQ_BROKER_URL"]
    app = YADTQ("math", broker=url, backend=url)
    try:
        yield app, serve_dashboard(app).base
    finally:
        app.close()


def wait_page(driver: Any, condition: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception:  # the page re-rendered under us: look again
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def text_of(driver: Any, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def click(driver: Any, css: str) -> bool:
    """Click the element (pages re-render live: a stale element is looked up again)."""
    driver.find_element(By.CSS_SELECTOR, css).click()
    return True


def short(task_id: str) -> str:
    """A task id as the pages show it (``shortId`` in ``app.js``): first and last six."""
    return f"{task_id[:6]}…{task_id[-6:]}"


def shoot(driver: Any, artefacts: Path, name: str) -> None:
    driver.execute_script("document.getElementById('toast').classList.add('hidden');")
    driver.save_screenshot(str(artefacts / f"{name}.png"))


def _stand_in(*args: Any) -> None:
    """Registers a worker's task name in this process, to build signatures (never run here)."""


def test_dashboard_in_a_browser(cluster: tuple[YADTQ, str], browser: Any, artefacts: Path) -> None:
    app, base = cluster
    first = app.send_task("examples.math_app.add", (2, 3))
    assert first.get(timeout=60) == 5

    # The queues page, then a task finishing: the counts move without a reload.
    browser.get(base + "/#/queues")
    wait_page(browser, lambda: text_of(browser, "#card-succeeded .value") == "1", "the queues page")
    browser.execute_script("window.__notReloaded = true;")
    second = app.send_task("examples.math_app.multiply", (6, 7))
    assert second.get(timeout=60) == 42
    wait_page(browser, lambda: text_of(browser, "#card-succeeded .value") == "2", "a live count update")
    assert browser.execute_script("return window.__notReloaded === true;")
    app.send_task("examples.math_app.divide", (1, 0)).get(timeout=60, propagate=False)
    wait_page(browser, lambda: text_of(browser, "#card-failed .value") == "1", "the failure counted")
    wait_page(browser, lambda: "Collecting" not in text_of(browser, "#main"), "the rates chart")
    shoot(browser, artefacts, "queues")

    # The tasks page lists a task submitted while it is open, live.
    browser.get(base + "/#/tasks")
    wait_page(browser, lambda: short(first.id) in text_of(browser, "#task-results"), "the task list")
    browser.execute_script("window.__notReloaded = true;")
    third = app.send_task("examples.math_app.sub", (10, 4))
    assert third.get(timeout=60) == 6
    wait_page(browser, lambda: short(third.id) in text_of(browser, "#task-results"), "a new task in the list")
    assert browser.execute_script("return window.__notReloaded === true;")
    shoot(browser, artefacts, "tasks")

    # Its detail shows its arguments (a success: saved when it started), its result and
    # its state history.
    wait_page(browser, lambda: click(browser, f'a[href="#/task/{third.id}"]'), "the link to the task")
    wait_page(browser, lambda: text_of(browser, "#task-result") == "6", "the result on the detail page")
    wait_page(browser, lambda: text_of(browser, "#task-args") == "(10, 4)", "the arguments of a success")
    wait_page(browser, lambda: all(s in text_of(browser, ".timeline") for s in ("processing", "success")),
              "the state history")

    # A chain's first step lists its child; the child's page links back to its parent.
    add = app.task(name="examples.math_app.add")(_stand_in)
    multiply = app.task(name="examples.math_app.multiply")(_stand_in)
    chained = (add.s(2, 3) | multiply.s(4)).apply_async()
    assert chained.get(timeout=60) == 20
    assert chained.parent is not None
    browser.get(base + f"/#/task/{chained.parent.id}")
    wait_page(browser, lambda: short(chained.id) in text_of(browser, "#task-children"), "the chain's child")
    wait_page(browser, lambda: "success" in text_of(browser, "#task-children"), "the child's state")
    shoot(browser, artefacts, "task")
    wait_page(browser, lambda: click(browser, f'#task-children a[href="#/task/{chained.id}"]'),
              "the link to the child")
    wait_page(browser, lambda: short(chained.parent.id) in text_of(browser, "#task-parent"),
              "the parent link")
    assert text_of(browser, "#task-args") == "(5, 4)"

    # A revoke from the page: a task waiting for its countdown never runs.
    later = app.send_task("examples.math_app.add", (1, 1), countdown=3600)
    browser.get(base + f"/#/task/{later.id}")
    wait_page(browser, lambda: click(browser, f'[data-revoke="{later.id}"]'), "the revoke button")
    wait_page(browser, lambda: app.AsyncResult(later.id).state == states.REVOKED, "the revoke")
    wait_page(browser, lambda: "revoked" in text_of(browser, "h1"), "the page to show revoked")

    # Workers, schedules and dead letters render, for the screenshots.
    browser.get(base + "/#/workers")
    wait_page(browser, lambda: "browser-worker" in text_of(browser, "#main"), "the workers page")
    shoot(browser, artefacts, "workers")
    browser.get(base + "/#/schedules")
    wait_page(browser, lambda: "Schedules" in text_of(browser, "h1"), "the schedules page")
    shoot(browser, artefacts, "schedules")
    app.send_task("examples.math_app.square", (3,))  # no worker registers it
    wait_for(lambda: app.broker.list_dead_letters(), 60, "a dead letter")
    browser.get(base + "/#/dead-letters")
    wait_page(browser, lambda: "not registered" in text_of(browser, "#main"), "the dead-letters page")
    shoot(browser, artefacts, "dead-letters")
    assert sorted(p.name for p in artefacts.glob("*.png")) == [
        "dead-letters.png", "queues.png", "schedules.png", "task.png", "tasks.png", "workers.png"]
