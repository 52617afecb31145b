"""The one Kafka harness: the streaming pipeline as separate processes on the real broker, for tests and benchmarks.

:class:`Pipeline` owns one topic prefix, one configuration file (store, outputs), one state directory
and the ``rdmt service ...`` processes of one run; it always stops them (:meth:`Pipeline.stop_all`).
:class:`Reader` reads a topic from the beginning without a consumer group (read committed), keeping
where each record was. :func:`committed` and :func:`end_offsets` tell how far a service's group has
got, which is how a test knows the pipeline has settled. :class:`Webhook` is a local Slack-compatible
webhook that records the POSTs it receives.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from rdmt_core import avro
from rdmt_core.kafka.topics import create_topics, topic_specs

RDMT = str(Path(sys.executable).with_name("rdmt"))
TIMEOUT_S = 90
SERVICES = ("ingest", "monitor", "evaluator", "sink", "notifier")
# Classic protocol with a static member id: a monitor restarted after SIGKILL takes its partitions back at
# once (with the consumer protocol it would wait out the session; see docs/streaming.md).
STATIC_MONITOR = {"RDMT_KAFKA_GROUP_PROTOCOL": "classic", "RDMT_KAFKA_GROUP_INSTANCE_ID": "monitor"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], Any], what: str, timeout_s: float = TIMEOUT_S,
               logs: Callable[[], str] = lambda: "", every_s: float = 0.2) -> Any:
    """Poll ``condition`` until it returns something true; fail with ``what`` and the logs after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}\n{logs()}", pytrace=False)
        time.sleep(every_s)


def stop_processes(procs: list[subprocess.Popen], timeout_s: float = 20) -> None:
    """SIGTERM every running process (resumed first if stopped), wait, and SIGKILL those still running."""
    running = [p for p in procs if p.poll() is None]
    for proc in running:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
    for proc in running:
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class Webhook:
    """A Slack-compatible webhook on 127.0.0.1: ``url`` and the JSON bodies POSTed to it (``posts``)."""

    def __init__(self) -> None:
        posts: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.posts = posts
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class Received:
    partition: int
    offset: int
    record: Any  # the decoded record (a dict), or the raw bytes
    timestamp_ms: int  # the message's Kafka timestamp


class Reader:
    """Every partition of a topic from the beginning, without a consumer group (read committed)."""

    def __init__(self, bootstrap: str, topic: str, decode: bool = True) -> None:
        """``decode=False`` keeps each message's raw bytes as its record (e.g. Confluent-framed values)."""
        self.topic = topic
        self.decode = decode
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex}", "enable.auto.commit": False,
            "isolation.level": "read_committed", "fetch.wait.max.ms": 50,
        })  # fmt: skip
        partitions = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self.received: list[Received] = []

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r.record for r in self.received]

    def poll(self, timeout_s: float = 0.1) -> bool:
        """Read what is there within ``timeout_s``; True if a record arrived."""
        msg = self.consumer.poll(timeout_s)
        if msg is None or msg.error() is not None:
            return False
        record = avro.decode(msg.value()).record if self.decode else msg.value()
        self.received.append(Received(msg.partition(), msg.offset(), record, msg.timestamp()[1]))
        return True

    def read_until(self, until: Callable[[list[dict]], bool], what: str, timeout_s: float = TIMEOUT_S,
                   logs: Callable[[], str] = lambda: "") -> list[dict[str, Any]]:
        """Read until ``until(records)``; fail with ``what`` and the logs after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not until(self.records):
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout_s} s waiting for {what} on {self.topic} "
                            f"({len(self.received)} records)\n{logs()}", pytrace=False)
            self.poll()
        return self.records

    def read(self, until: Callable[[list[dict]], bool], timeout_s: float = TIMEOUT_S) -> list[dict[str, Any]]:
        """Read until ``until(records)`` or ``timeout_s`` (no failure: the caller asserts); the records so far."""
        deadline = time.monotonic() + timeout_s
        while not until(self.records) and time.monotonic() < deadline:
            self.poll()
        return self.records

    def drain(self, quiet_s: float = 2.0, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Read until nothing has arrived for ``quiet_s`` seconds."""
        deadline = time.monotonic() + timeout_s
        last = time.monotonic()
        while time.monotonic() - last < quiet_s and time.monotonic() < deadline:
            if self.poll():
                last = time.monotonic()
        return self.records

    def next_offsets(self) -> dict[int, int]:
        """Per partition with records: the offset after the last record read."""
        ends: dict[int, int] = {}
        for r in self.received:
            ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
        return ends

    def close(self) -> None:
        self.consumer.close()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """High watermark of every partition of ``topic``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"watermarks-{uuid.uuid4().hex}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                for p in partitions}  # fmt: skip
    finally:
        consumer.close()


def committed(admin: AdminClient, group: str, topic: str, partitions: list[int]) -> dict[int, int]:
    """The offsets ``group`` has committed on ``topic`` (negative: none yet)."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    request = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])]
    [future] = admin.list_consumer_group_offsets(request, request_timeout=10).values()
    return {tp.partition: tp.offset for tp in future.result().topic_partitions}


class Pipeline:
    """One run of the five services under a unique topic prefix, with its store, outputs and logs."""

    def __init__(self, bootstrap: str, root: Path, webhook_url: str, ecsv: bool = True, *,
                 prefix: str | None = None, config: dict[str, Any] | None = None) -> None:
        """``config`` is merged over the default configuration file (store, outputs, notify)."""
        self.bootstrap = bootstrap
        self.root = root
        self.prefix = prefix or f"e2e-{uuid.uuid4().hex[:10]}"
        self.logs = root / "logs"
        self.logs.mkdir(parents=True)
        self.store_url = f"chdb://{root / 'store'}"
        self.config = root / "rdmt.yaml"
        self.config.write_text(yaml.safe_dump({
            "store_url": self.store_url,
            "output_dir": str(root / "out"),
            "outputs": {"store": True, "ecsv": ecsv, "report": False, "notify": True},
            # The monitors read only under input roots: the test's directory, and the temporary directory that
            # holds pytest's module-scoped inputs (tmp_path_factory) beside it.
            "inputs": {"roots": [str(root.parent), tempfile.gettempdir()]},
        } | (config or {})))  # fmt: skip
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        create_topics(self.admin, self.prefix, topic_specs())
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RDMT_")} | {
            "RDMT_KAFKA_BOOTSTRAP": bootstrap,
            "RDMT_TOPIC_PREFIX": self.prefix,
            "RDMT_STATE_DIR": str(root / "state"),
            "RDMT_SLACK_WEBHOOK_URL": webhook_url,
        }
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}
        self.log_paths: dict[str, Path] = {}
        self._started: list[subprocess.Popen] = []
        self.readers: list[Reader] = []

    def topic(self, suffix: str) -> str:
        return f"{self.prefix}.{suffix}"

    def group(self, service: str) -> str:
        return f"{self.prefix}.monitor.dark" if service == "monitor" else f"{self.prefix}.{service}"

    # -- processes --------------------------------------------------------------------------------

    def start(self, service: str, name: str | None = None, monitor: str = "dark", **env: str) -> subprocess.Popen:
        """Start ``rdmt service <service>`` (``monitor``'s monitor service for ``monitor``) with /readyz on a free port.

        ``name`` (default: the service) names the process in :attr:`procs`, :attr:`ports` and the logs, so
        several members of one group can run (``monitor-1``, ``monitor-2``); a monitor's static member id
        is its name.
        """
        name = name or service
        args = ["monitor", "--monitor", monitor] if service == "monitor" else [service]
        static = STATIC_MONITOR | {"RDMT_KAFKA_GROUP_INSTANCE_ID": name} if service == "monitor" else {}
        port = free_port()
        log_path = self.logs / f"{len(self._started) + 1:02d}-{name}.log"
        with log_path.open("wb") as log:  # the child keeps its fd
            proc = subprocess.Popen(
                [RDMT, "service", *args, "--config", str(self.config), "--metrics-port", str(port)],
                env=self.env | static | env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self._started.append(proc)
        self.procs[name], self.ports[name], self.log_paths[name] = proc, port, log_path
        return proc

    def check_running(self) -> None:
        """Fail, with the logs, if a process of the pipeline has exited."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with status {proc.returncode}\n{self.log_tails()}", pytrace=False)

    def start_all(self) -> None:
        for service in SERVICES:
            self.start(service)
        for service in SERVICES:
            self.wait_ready(service)

    def wait_ready(self, service: str, timeout_s: float = TIMEOUT_S) -> None:
        def ready() -> bool:
            proc = self.procs[service]
            if proc.poll() is not None:
                pytest.fail(f"{service} exited with status {proc.returncode}\n{self.log_tails()}", pytrace=False)
            try:
                url = f"http://127.0.0.1:{self.ports[service]}/readyz"
                with urllib.request.urlopen(url, timeout=2) as response:
                    return response.status == 200
            except (OSError, urllib.error.HTTPError):
                return False

        wait_until(ready, f"{service} to be ready", timeout_s, self.log_tails)

    def stop(self, service: str, sig: int = signal.SIGTERM, timeout_s: float = 30) -> int:
        """Signal ``service`` and wait for it; its exit status."""
        proc = self.procs[service]
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(sig)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
                pytest.fail(f"{service} did not stop within {timeout_s} s of {sig!r}\n{self.log_tails()}",
                            pytrace=False)
        return proc.returncode

    def kill(self, service: str) -> None:
        """Freeze ``service`` at once, wherever it is, then SIGKILL it there."""
        proc = self.procs[service]
        proc.send_signal(signal.SIGSTOP)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        """Stop every process this pipeline started (also the ones replaced), close the readers."""
        stop_processes(self._started)
        for reader in self.readers:
            reader.close()
        self.readers.clear()

    def log_tails(self, lines: int = 25) -> str:
        return "\n".join(f"--- {p.name} ---\n" + "\n".join(p.read_text(errors="replace").splitlines()[-lines:])
                         for p in sorted(self.logs.glob("*.log")))  # fmt: skip

    # -- Kafka --------------------------------------------------------------------------------------

    def reader(self, suffix: str, decode: bool = True) -> Reader:
        self.readers.append(Reader(self.bootstrap, self.topic(suffix), decode))
        return self.readers[-1]

    def publish_crds(self, delivery_id: str, files: list[Path]) -> None:
        subprocess.run([RDMT, "publish", "crds", "--delivery-id", delivery_id, "--context", "roman_0001.pmap",
                        *map(str, files)], env=self.env, check=True, capture_output=True, timeout=TIMEOUT_S)

    def wait_committed(self, service: str, suffix: str, targets: dict[int, int] | None = None,
                       timeout_s: float = TIMEOUT_S) -> None:
        """Wait until ``service``'s group has committed ``targets`` (default: the end of the topic) on ``suffix``."""
        topic = self.topic(suffix)
        wanted = end_offsets(self.bootstrap, topic) if targets is None else targets
        wanted = {p: o for p, o in wanted.items() if o > 0}

        def done() -> bool:
            if not wanted:
                return True
            have = committed(self.admin, self.group(service), topic, sorted(wanted))
            return all(have.get(p, -1) >= o for p, o in wanted.items())

        wait_until(done, f"{service} to commit {wanted} on {topic}", timeout_s, self.log_tails, every_s=0.5)
