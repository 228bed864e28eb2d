"""Server outages mid-run: the Kafka broker restarted, Redis (AOF) restarted; and
servers unreachable when a worker or a client starts."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

from tests.chaos.conftest import RigFactory
from tests.chaos.harness import Driver, Summary, Worker, states_of, summarize, wait_finished, wait_ready
from tests.chaos.servers import ROOT, KafkaCluster, RedisServer, own
from tests.ports import free_ports

pytestmark = [pytest.mark.chaos, pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

TASKS = 600
RATE = 40.0
OUTAGE = 6.0


#: A client script that keeps sending through the outage: its stderr is what a user sees.
CLIENT = """
import os, sys, time
from tests.apps.chaos_app import work
print("ready", flush=True)
while not os.path.exists(sys.argv[1]):
    work.delay(-1, 0.0)
    time.sleep(0.2)
"""


def _outage_run(r_name: str, rig: RigFactory, kafka: KafkaCluster, redis_server: RedisServer,
                stop: object, start: object) -> tuple[str, list[Worker]]:
    """The scenario; returns the client script's stderr and the workers (for their logs)."""
    r = rig(kafka.bootstrap, redis_server.url)
    fleet = r.fleet
    t0 = time.time()
    workers = [fleet.start() for _ in range(3)]
    wait_ready(r.app, [w.name for w in workers], fleet=fleet)
    driver = Driver(lambda n: r.module.work.delay(n, 0.02).id, TASKS, RATE)
    driver.start()
    done_file = r.fleet.logdir / "client.stop"
    client = subprocess.Popen([sys.executable, "-c", CLIENT, str(done_file)], cwd=ROOT, env=r.env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    own(client)
    try:
        assert client.stdout is not None and client.stdout.readline().strip() == b"ready"
        time.sleep(TASKS / RATE / 3)
        stop()  # type: ignore[operator]
        time.sleep(OUTAGE)
    finally:
        start()  # type: ignore[operator]
    driver.finish(120)
    r.app.flush(60)
    done = wait_finished(r.ledger, driver.sent, timeout=180, app=r.app)
    done_file.touch()  # the client sent through the outage and after it: it may stop
    client_err = client.communicate(timeout=60)[1].decode(errors="replace")
    summary = summarize(r_name, driver.sent, r.ledger.entries(), states_of(r.app, driver.sent), fleet,
                        started_at=t0, send_errors=len(driver.errors),
                        note=f"3 workers, {TASKS} tasks at {RATE:.0f}/s, {OUTAGE:.0f}s outage")
    summary.report()
    print(summary.line())
    assert done and not summary.lost, summary.line() + "\n" + fleet.logs()
    assert not driver.errors, f"{summary.line()}: .delay() raised: {driver.errors[:3]}"
    assert not summary.twice, summary.line()
    assert not fleet.check_exits(), summary.line() + "\n" + fleet.logs()
    return client_err, workers


def _noise(text: str) -> list[str]:
    """Log lines at WARNING or above (a client's stderr, a worker's log file)."""
    return [line for line in text.splitlines()
            if line.strip() and not re.search(r"\b(INFO|DEBUG)\b", line)]


@pytest.mark.timeout(400)
def test_kafka_broker_restart(rig: RigFactory, chaos_kafka: KafkaCluster, chaos_redis: RedisServer) -> None:
    node = chaos_kafka.nodes[0]

    def start() -> None:
        if not node.alive():
            node.start()
        chaos_kafka.wait_ready()

    client_err, workers = _outage_run("kafka broker restart", rig, chaos_kafka, chaos_redis, node.stop,
                                      start)
    # Outage noise: one warning when the link is lost and one when it is back, in a client
    # and in each worker; librdkafka's repeated connection errors are not forwarded.
    noise = _noise(client_err)
    assert len(noise) == 2, "client stderr:\n" + client_err[-3000:]
    assert "lost the connection to Kafka" in noise[0] and "restored" in noise[1], noise
    for w in workers:
        log = w.logfile.read_text(errors="replace")
        kafka_lines = [line for line in _noise(log) if "Kafka" in line or "broker" in line]
        lost = [line for line in kafka_lines if "lost" in line]
        back = [line for line in kafka_lines if "restored" in line]
        assert len(lost) == 1 and len(back) == 1 and len(kafka_lines) == 2, \
            f"worker {w.name}:\n" + "\n".join(kafka_lines[:20])


@pytest.mark.timeout(400)
def test_redis_restart_with_aof(rig: RigFactory, chaos_kafka: KafkaCluster, chaos_redis: RedisServer) -> None:
    def start() -> None:
        if not chaos_redis.alive():
            chaos_redis.start()

    # SIGKILL: a crash; with appendfsync always nothing acknowledged is lost
    _outage_run("redis restart (AOF, SIGKILL)", rig, chaos_kafka, chaos_redis,
                lambda: chaos_redis.stop(signal.SIGKILL), start)


BOUND = 60.0  # seconds within which an unreachable server must be reported


@pytest.mark.timeout(180)
def test_redis_unreachable_at_worker_start(rig: RigFactory, chaos_kafka: KafkaCluster) -> None:
    dead = f"redis://127.0.0.1:{free_ports(1)[0]}/0"
    r = rig(chaos_kafka.bootstrap, dead)
    t0 = time.monotonic()
    worker = r.fleet.start("nobackend")
    worker.proc.wait(BOUND + 30)
    took = time.monotonic() - t0
    err = worker.errfile.read_text()
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    Summary("redis unreachable at worker start", note=f"worker exited {worker.proc.returncode} "
            f"after {took:.1f}s: {errors[-1] if errors else '?'}").report()
    assert worker.proc.returncode != 0
    assert took < BOUND, f"took {took:.0f} s"
    assert "Traceback" not in err, err
    # the banner, then exactly one error line naming the backend
    assert len(errors) == 1 and "redis" in errors[0].lower(), err
    assert err.strip().endswith(errors[0].strip()), err


@pytest.mark.timeout(180)
def test_kafka_unreachable_at_client_start(rig: RigFactory, chaos_redis: RedisServer) -> None:
    dead = f"127.0.0.1:{free_ports(1)[0]}"
    r = rig(dead, chaos_redis.url)
    script = ("from tests.apps.chaos_app import work\n"
              "from yadtq import BrokerUnavailable\n"
              "try:\n"
              "    work.delay(1).get(timeout=120)\n"
              "except BrokerUnavailable as exc:\n"
              "    print('BrokerUnavailable:', exc)\n"
              "    raise SystemExit(3)\n")
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=r.env, stdin=subprocess.DEVNULL,
                         capture_output=True, timeout=BOUND + 60)
    took = time.monotonic() - t0
    stdout = out.stdout.decode()
    stderr = out.stderr.decode()
    Summary("kafka unreachable at client start", note=f".delay().get() raised after {took:.1f}s: "
            f"{stdout.strip()}").report()
    assert out.returncode == 3, f"rc={out.returncode} after {took:.0f} s\n{stdout}\n{stderr[-3000:]}"
    assert took < BOUND, f"took {took:.0f} s"
    assert len(stdout.strip().splitlines()) == 1, stdout
    assert len(stderr.strip().splitlines()) <= 2, f"noise on stderr:\n{stderr[-3000:]}"
