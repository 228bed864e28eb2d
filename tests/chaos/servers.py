"""Kafka nodes and Redis servers that the chaos suite owns: it stops, kills and
restarts them by pid, on the same ports and data, without touching the shared
servers of the rest of the suite.

The jars and tools come from ``scripts/services.sh install`` (same cache, same
Kafka version). One node is a combined KRaft broker+controller; a cluster of
three has three voters, replication factor 3 and ``min.insync.replicas=2``.

Run by hand (prints export lines, then keeps the servers up until Ctrl-C)::

    python3 -m tests.chaos.servers --brokers 3
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Optional

from tests.ports import free_ports

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 120.0

_quiet = logging.getLogger("tests.chaos.servers.kafka-client")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False
_quiet.setLevel(logging.CRITICAL)

#: Every process the chaos suite starts (servers and workers), killed by pid at
#: interpreter exit or on SIGTERM if still running.
_OWNED: list[subprocess.Popen[bytes]] = []


@atexit.register
def _kill_owned() -> None:
    for proc in _OWNED:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _on_sigterm(signum: int, frame: Any) -> None:
    _kill_owned()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def own(proc: subprocess.Popen[bytes]) -> None:
    """Kill ``proc`` by pid when this process exits or is SIGTERMed (atexit alone
    does not run on SIGTERM)."""
    if not _OWNED and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        with contextlib.suppress(ValueError):  # not the main thread: atexit only
            signal.signal(signal.SIGTERM, _on_sigterm)
    _OWNED.append(proc)


def kafka_lib() -> Path:
    """The Kafka jar directory, fetched (and java/mvn/redis installed) on first use."""
    out = subprocess.run(["bash", str(ROOT / "scripts" / "services.sh"), "install"], check=True,
                         stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    return Path(out.stdout.decode().strip().splitlines()[-1])


def _stop(proc: Optional[subprocess.Popen[bytes]], sig: int, timeout: float = 30.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class KafkaNode:
    """One KRaft node (broker and controller) on fixed ports, restartable on its data."""

    def __init__(self, lib: Path, root: Path, node_id: int, port: int, cport: int) -> None:
        self.lib = lib
        self.node_id = node_id
        self.port = port
        self.cport = cport
        self.dir = root / f"node{node_id}"
        self.props = self.dir / "server.properties"
        self.proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def configure(self, voters: str, replicas: int) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        isr = min(2, replicas)
        self.props.write_text(f"""\
process.roles=broker,controller
node.id={self.node_id}
controller.quorum.voters={voters}
listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.cport}
advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={self.dir / "data"}
num.partitions=4
default.replication.factor={replicas}
min.insync.replicas={isr}
offsets.topic.replication.factor={replicas}
offsets.topic.num.partitions=4
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={isr}
share.coordinator.state.topic.replication.factor={replicas}
share.coordinator.state.topic.min.isr={isr}
group.initial.rebalance.delay.ms=0
""")
        (self.dir / "log4j.properties").write_text(f"""\
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={self.dir / "server.log"}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
""")

    def _jvm(self, *extra: str) -> list[str]:
        return ["java", f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
                "-Dlog4j2.statusLoggerLevel=OFF", *extra, "-cp", f"{self.lib}/*"]

    def format(self, cluster_id: str) -> subprocess.Popen[bytes]:
        """Start formatting the node's storage (wait on the returned process)."""
        with open(self.dir / "kafka.out", "ab") as out:
            return subprocess.Popen(
                [*self._jvm("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"),
                 "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.props)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out)

    def start(self) -> None:
        assert not self.alive(), f"kafka node {self.node_id} already runs"
        with open(self.dir / "kafka.out", "ab") as out:
            self.proc = subprocess.Popen(
                [*self._jvm("-Xmx384m", "-Xms96m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                            "-Djava.awt.headless=true", f"-Dkafka.logs.dir={self.dir}"),
                 "kafka.Kafka", str(self.props)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        own(self.proc)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the node by its pid (SIGKILL for a crash)."""
        _stop(self.proc, sig)


class KafkaCluster:
    """``size`` combined KRaft nodes on 127.0.0.1 (replication factor ``size``)."""

    def __init__(self, size: int = 1, root: Optional[Path] = None, lib: Optional[Path] = None) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix=f"yadtq-chaos-kafka{size}-"))
        self.size = size
        lib = lib or kafka_lib()
        ports = free_ports(2 * size)
        self.nodes = [KafkaNode(lib, self.root, i + 1, ports[2 * i], ports[2 * i + 1]) for i in range(size)]
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.cport}" for n in self.nodes)
        for node in self.nodes:
            node.configure(voters, size)

    @property
    def bootstrap(self) -> str:
        return ",".join(n.address for n in self.nodes)

    def start(self) -> KafkaCluster:
        # KRaft cluster ids are 16 bytes in URL-safe base64.
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        formats = [node.format(cluster_id) for node in self.nodes]
        for node, proc in zip(self.nodes, formats):
            if proc.wait(120) != 0:
                raise RuntimeError(f"kafka storage format failed; see {node.dir}/kafka.out")
        for node in self.nodes:
            node.start()
        self.wait_ready()
        return self

    def node(self, node_id: int) -> KafkaNode:
        return next(n for n in self.nodes if n.node_id == node_id)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Every running node answers metadata itself and lists all running nodes, and the
        group coordinator answers."""
        from confluent_kafka.admin import AdminClient

        running = [n for n in self.nodes if n.alive()]
        want = {n.node_id for n in running}
        deadline = time.monotonic() + timeout
        pending = list(running)
        while pending:
            node = pending[0]
            if not node.alive():
                raise RuntimeError(f"kafka node {node.node_id} exited; see {node.dir}/kafka.out")
            try:
                admin = AdminClient({"bootstrap.servers": node.address,
                                     "socket.connection.setup.timeout.ms": 2000}, logger=_quiet)
                if want <= set(admin.list_topics(timeout=5).brokers):
                    admin.describe_consumer_groups(["chaos-warmup"], request_timeout=5)[
                        "chaos-warmup"].result()
                    pending.pop(0)
                    continue
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"kafka not ready within {timeout} s; see {self.root}")
            time.sleep(0.2)

    def leaders(self, topic: str) -> dict[int, int]:
        """partition -> leader node id of ``topic``."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap}, logger=_quiet)
        md = admin.list_topics(topic, timeout=10)
        return {p.id: p.leader for p in md.topics[topic].partitions.values()}

    def close(self) -> None:
        for node in self.nodes:
            _stop(node.proc, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """A Redis on a fixed port with AOF (fsync always), restartable on its data."""

    def __init__(self, root: Optional[Path] = None, aof: bool = True) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="yadtq-chaos-redis-"))
        self.port = free_ports(1)[0]
        self.aof = aof
        self.proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0) -> RedisServer:
        if shutil.which("redis-server") is None:
            kafka_lib()  # services.sh install also installs redis-server
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--daemonize", "no", "--dir", str(self.root), "--logfile", str(self.root / "redis.log")]
        if self.aof:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        own(self.proc)
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if client.ping():
                        return self
                except redis.RedisError:
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis did not start on {self.port}; see {self.root}/redis.log")
                time.sleep(0.05)
        finally:
            client.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        _stop(self.proc, sig)

    def close(self) -> None:
        _stop(self.proc, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--brokers", type=int, default=3)
    parser.add_argument("--no-redis", action="store_true")
    ns = parser.parse_args(argv)
    kafka = KafkaCluster(ns.brokers).start()
    redis_server: Any = None if ns.no_redis else RedisServer().start()
    print(f"export YADTQ_TEST_KAFKA={kafka.bootstrap}")
    if redis_server is not None:
        print(f"export YADTQ_TEST_REDIS={redis_server.url}")
    for node in kafka.nodes:
        print(f"# kafka node {node.node_id}: pid {node.proc.pid if node.proc else '-'} on {node.address}")
    sys.stdout.flush()
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        kafka.close()
        if redis_server is not None:
            redis_server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
