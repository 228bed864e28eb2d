"""Server outages mid-run: the Kafka broker restarted, Redis (AOF) restarted; and
servers unreachable when a worker or a client starts."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tests.chaos.conftest import RigFactory
from tests.chaos.harness import Driver, Summary, states_of, summarize, wait_finished, wait_ready
from tests.chaos.servers import ROOT, KafkaCluster, RedisServer, free_ports

pytestmark = [pytest.mark.chaos, pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

TASKS = 600
RATE = 40.0
OUTAGE = 6.0


def _outage_run(r_name: str, rig: RigFactory, kafka: KafkaCluster, redis_server: RedisServer,
                stop: object, start: object) -> None:
    r = rig(kafka.bootstrap, redis_server.url)
    fleet = r.fleet
    t0 = time.time()
    workers = [fleet.start() for _ in range(3)]
    wait_ready(r.app, [w.name for w in workers], fleet=fleet)
    driver = Driver(lambda n: r.module.work.delay(n, 0.02).id, TASKS, RATE)
    driver.start()
    try:
        time.sleep(TASKS / RATE / 3)
        stop()  # type: ignore[operator]
        time.sleep(OUTAGE)
    finally:
        start()  # type: ignore[operator]
    driver.finish(120)
    r.app.flush(60)
    done = wait_finished(r.ledger, driver.sent, timeout=180, app=r.app)
    summary = summarize(r_name, driver.sent, r.ledger.entries(), states_of(r.app, driver.sent), fleet,
                        started_at=t0, send_errors=len(driver.errors),
                        note=f"3 workers, {TASKS} tasks at {RATE:.0f}/s, {OUTAGE:.0f}s outage")
    summary.report()
    print(summary.line())
    assert done and not summary.lost, summary.line() + "\n" + fleet.logs()
    assert not driver.errors, f"{summary.line()}: .delay() raised: {driver.errors[:3]}"
    assert not summary.twice, summary.line()
    assert not fleet.check_exits(), summary.line() + "\n" + fleet.logs()


@pytest.mark.timeout(400)
def test_kafka_broker_restart(rig: RigFactory, chaos_kafka: KafkaCluster, chaos_redis: RedisServer) -> None:
    node = chaos_kafka.nodes[0]

    def start() -> None:
        if not node.alive():
            node.start()
        chaos_kafka.wait_ready()

    _outage_run("kafka broker restart", rig, chaos_kafka, chaos_redis, node.stop, start)


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
