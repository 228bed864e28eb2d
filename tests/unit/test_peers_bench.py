"""benchmarks/peers: argument checks and the table, without installing any peer or timing anything."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.timeout(30)

PEERS = Path(__file__).resolve().parents[2] / "benchmarks" / "peers"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"peers_{name}", PEERS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(PEERS))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(PEERS))
    return module


compare = _load("compare")


def _round(system: str, scale: float, rnd: int) -> dict[str, object]:
    out = {"system": system, "round": rnd, "enqueue_per_s": 1000 * scale, "end_to_end_per_s": 100 * scale,
           "rt_p50_ms": 4 / scale, "rt_p99_ms": 8 / scale, "worker_cpu_s_per_10k": 20 / scale,
           "idle_cpu_pct": 0.5, "idle_rss_mb": 40.0}
    if system.startswith("yadtq"):  # only yadtq has a bulk send
        out["bulk_per_s"] = 5000 * scale
    return out


def test_table_shows_medians_and_ratios_against_targets() -> None:
    results = [_round("yadtq-kafka", 10, 1), _round("yadtq-kafka", 12, 2), _round("yadtq-kafka", 100, 3),
               _round("huey", 1, 1), _round("huey", 1, 2), _round("huey", 1, 3),
               {"system": "rq", "round": 1, "error": "RuntimeError: boom"}]
    text = compare.render(results, title="T")
    lines = text.splitlines()
    assert lines[0] == "T"
    kafka_row = next(line for line in lines if line.startswith("| yadtq, Kafka + Redis |"))
    assert "| 12,000 | 60,000 | 1,200 |" in kafka_row  # median of 10x, 12x, 100x
    huey_row = next(line for line in lines if line.startswith("| Huey"))
    assert "| 1,000 | — | 100 |" in huey_row
    bulk = next(line for line in lines if line.startswith("| bulk send (send_many) vs Huey's enqueue |"))
    assert "60.00x" in bulk and bulk.endswith("| yes |")  # against Huey's one-by-one enqueue
    ratio = next(line for line in lines if line.startswith("| end to end vs Huey |"))
    assert "12.00x" in ratio and ratio.endswith("| yes |")
    p50 = next(line for line in lines if line.startswith("| round trip p50 vs Huey |"))
    assert "0.08x" in p50 and p50.endswith("| yes |")
    idle = next(line for line in lines if line.startswith("| idle worker CPU, % of a core |"))
    assert idle.endswith("| no |")  # 0.5 % is over the 0.3 % bound
    celery = next(line for line in lines if line.startswith("| end to end vs Celery-on-Kafka |"))
    assert celery.endswith("| — |")  # Celery not measured: no verdict
    assert "- rq: RuntimeError: boom" in lines
    assert not any(line.startswith("| RQ") for line in lines)


def test_arguments_are_checked() -> None:
    args = compare.parse_args(["--kafka", "h:1", "--redis", "redis://h:2/0", "--systems", "huey,yadtq-sqlite",
                               "--rounds", "3"])
    assert args.systems == ["huey", "yadtq-sqlite"] and args.rounds == 3 and args.tasks == 3000
    with pytest.raises(SystemExit):
        compare.parse_args(["--kafka", "h:1", "--redis", "r", "--systems", "huey,nosuch"])
    with pytest.raises(SystemExit):
        compare.parse_args(["--kafka", "h:1", "--redis", "r", "--rounds", "0"])
    with pytest.raises(SystemExit):
        compare.parse_args(["--redis", "r"])  # --kafka is required


@pytest.mark.parametrize("warm_up", [True, False])
def test_round_0_runs_every_system_once_uncounted(monkeypatch: pytest.MonkeyPatch, warm_up: bool) -> None:
    ran: list[str] = []

    def run_one(args: object, system: str, tmp: str) -> dict[str, object]:
        ran.append(system)
        return _round(system, 1.0, 0)

    monkeypatch.setattr(compare, "run_one", run_one)
    said: list[str] = []
    systems = ["huey", "celery-kafka", "yadtq-kafka"]
    argv = ["--kafka", "h:1", "--redis", "redis://h:2/0", "--systems", ",".join(systems), "--rounds", "2",
            *([] if warm_up else ["--no-warm-up"])]
    assert compare.main(argv, say=said.append) == 0
    assert ran == systems * (3 if warm_up else 2)
    assert sum("round 0 (not counted)" in line for line in said) == (3 if warm_up else 0)


@pytest.mark.parametrize("argv, code, says", [
    (["--help"], 0, "usage: compare.py"),
    (["--rounds", "0"], 2, "must be positive"),
    (["--systems", "nosuch"], 2, "unknown system(s): nosuch"),
])
def test_run_sh_answers_help_and_bad_options_before_provisioning(argv: list[str], code: int,
                                                                  says: str) -> None:
    # No servers named: run.sh would start its own after the check (it must not get there).
    env = {k: v for k, v in os.environ.items() if k not in ("YADTQ_TEST_KAFKA", "YADTQ_TEST_REDIS")}
    env["YADTQ_SERVICES_DIR"] = "/nonexistent/yadtq-services"  # provisioning here would fail loudly
    env["PEERS_VENV"] = "/nonexistent/peers-venv"  # so would installing the peers
    done = subprocess.run(["bash", str(PEERS / "run.sh"), *argv], capture_output=True, text=True,
                          timeout=25, env=env)
    assert done.returncode == code, done.stderr
    assert says in done.stdout + done.stderr
    assert "installing" not in done.stderr and "services:" not in done.stderr


def test_progress_says_when_a_consumer_group_was_slow_to_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    settling = {"huey": {}, "celery-kafka": {"settled": True, "settle_s": 24.2},
                "yadtq-kafka": {"settled": True, "settle_s": 0.06}, "yadtq-sqlite": {}}
    settling["dramatiq"] = {"settled": False, "settle_s": 120.4}  # as if it had a group

    def run_one(args: object, system: str, tmp: str) -> dict[str, object]:
        return {**_round(system, 1.0, 0), **settling[system]}

    monkeypatch.setattr(compare, "run_one", run_one)
    said: list[str] = []
    argv = ["--kafka", "h:1", "--redis", "redis://h:2/0", "--systems", ",".join(settling), "--rounds", "1",
            "--no-warm-up"]
    assert compare.main(argv, say=said.append) == 0
    progress = {line.split()[3].rstrip(":"): line for line in said if line.startswith("peers: round 1 ")}
    assert "consumer group settled after 24 s" in progress["celery-kafka"]
    assert "consumer group NOT settled after 120 s" in progress["dramatiq"]
    assert all("consumer group" not in progress[s] for s in ("huey", "yadtq-kafka", "yadtq-sqlite"))
