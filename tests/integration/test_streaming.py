"""The streaming services as separate processes on the real broker: ingest -> monitor -> metric records.

Each test uses its own topic prefix, starts ``rdmt service ...`` subprocesses and always stops them.
The test process publishes events and reads the output topics with an assigned (group-less) consumer.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from rdmt_core import avro
from rdmt_core.cli.publish import archive_event, crds_delivery, publish
from rdmt_core.geometry import DETECTORS
from rdmt_core.monitors import registered_monitors
from rdmt_core.synthetic import Anomaly, write_dark_delivery

from .services import stop_processes

RDMT = str(Path(sys.executable).with_name("rdmt"))
USEAFTER = datetime(2026, 1, 1)
N_VALUES = 1 + 32 + 1024
TIMEOUT_S = 60


class Services:
    """``rdmt service ...`` subprocesses sharing one topic prefix; logs in ``tmp_path``."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: list[subprocess.Popen] = []

    def start(self, *args: str, **env: str) -> subprocess.Popen:
        with (self.logs / f"{'-'.join(args)}-{len(self.procs)}.log").open("wb") as log:  # the child keeps its fd
            proc = subprocess.Popen([RDMT, "service", *args], env=self.env | env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        stop_processes(self.procs, timeout_s=15)

    def log_tail(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.logs.glob("*.log")))


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def env(kafka_bootstrap: str, prefix: str) -> dict[str, str]:
    return os.environ | {"RDMT_KAFKA_BOOTSTRAP": kafka_bootstrap, "RDMT_TOPIC_PREFIX": prefix}


@pytest.fixture
def services(env: dict[str, str], tmp_path: Path) -> Iterator[Services]:
    subprocess.run([RDMT, "topics", "create"], env=env, check=True, capture_output=True, timeout=TIMEOUT_S)
    logs = tmp_path / "logs"
    logs.mkdir()
    running = Services(env, logs)
    try:
        yield running
    finally:
        running.stop_all()


class Reader:
    """Reads every partition of a topic from the beginning, without a consumer group's offsets."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex}",
                                  "enable.auto.commit": False, "fetch.wait.max.ms": 20})
        partitions = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self.records: list[dict] = []

    def read(self, until, timeout_s: float = TIMEOUT_S) -> list[dict]:
        """Read until ``until(records)`` is true or ``timeout_s`` passes; return the records so far."""
        deadline = time.monotonic() + timeout_s
        while not until(self.records) and time.monotonic() < deadline:
            msg = self.consumer.poll(0.1)
            if msg is not None and msg.error() is None:
                self.records.append(avro.decode(msg.value()).record)
        return self.records

    def close(self) -> None:
        self.consumer.close()


@pytest.fixture
def reader(kafka_bootstrap: str, prefix: str) -> Iterator:
    opened: list[Reader] = []

    def open_reader(suffix: str) -> Reader:
        opened.append(Reader(kafka_bootstrap, f"{prefix}.{suffix}"))
        return opened[-1]

    yield open_reader
    for r in opened:
        r.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def _wait_ready(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if _get(f"http://127.0.0.1:{port}/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"service on port {port} not ready after {timeout_s} s")


def test_crds_delivery_of_18_darks_gives_18_metric_records(
    services: Services, reader, env: dict[str, str], tmp_path: Path
) -> None:
    files = write_dark_delivery(tmp_path / "d1", USEAFTER, side=256, delivery_seed=1,
                                anomalies={"WFI07": Anomaly(dark_scale=2.0)})
    port = _free_port()
    services.start("ingest")
    services.start("monitor", "--monitor", "dark", "--metrics-port", str(port))
    _wait_ready(port)
    subprocess.run([RDMT, "publish", "crds", "--delivery-id", "CRDS-0001", "--context", "roman_0001.pmap",
                    *map(str, files)], env=env, check=True, capture_output=True, timeout=TIMEOUT_S)

    metrics = reader("metrics")
    records = metrics.read(lambda r: len(r) >= 18)
    assert len(records) == 18, services.log_tail()
    records = metrics.read(lambda r: len(r) > 18, timeout_s=1.0)  # and no more
    assert len(records) == 18
    assert sorted(r["detector"] for r in records) == sorted(DETECTORS)
    for record in records:
        assert (record["monitor"], record["kind"], record["release"]) == ("dark", "DARK", "live")
        assert (record["delivery_id"], record["n_files_in_delivery"]) == ("CRDS-0001", 18)
        assert len(record["metrics"]) == 9
        assert all(1 + len(m["amplifier"]) + len(m["superpixel"]) == N_VALUES for m in record["metrics"])
    mean = {r["detector"]: next(m["detector"] for m in r["metrics"] if m["metric"] == "dark_rate_mean")
            for r in records}
    others = [v for d, v in mean.items() if d != "WFI07"]
    assert mean["WFI07"] > 1.5 * max(others)  # the anomalous detector stands out
    assert reader("deadletter").read(lambda r: False, timeout_s=0.5) == []

    status, text = _get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200 and 'rdmt_messages_out_total{service="rdmt-monitor-dark"' in text
    assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200

    out = subprocess.run([RDMT, "subscribe", "--topic", "metrics", "--detector", "WFI07", "--from-beginning",
                          "--max", "1", "--timeout", "20"], env=env, check=True, capture_output=True, text=True,
                         timeout=TIMEOUT_S)
    (line,) = out.stdout.splitlines()
    printed = json.loads(line)
    assert printed["schema"] == "metric_record" and printed["record"]["detector"] == "WFI07"


def test_poison_inputs_end_in_dead_letter_or_unrouted_and_good_ones_are_processed(
    services: Services, reader, kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    files = write_dark_delivery(tmp_path / "d", USEAFTER, side=256,
                                detectors=("WFI01", "WFI02", "WFI03", "WFI04", "WFI05", "WFI06"))
    truncated, vanished = files[3], files[4]
    first = crds_delivery("CRDS-A", "roman_0001.pmap", files[:5])
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) * 2 // 3])  # the tree is intact, the array blocks are cut
    vanished.unlink()
    second = crds_delivery("CRDS-B", "roman_0002.pmap", files[5:])
    second["files"].append({"uri": "/data/flat.asdf", "reftype": "FLAT", "detector": "WFI06", "useafter": USEAFTER})
    unknown = archive_event(files[0], monitor="nosuch")

    services.start("ingest")
    services.start("monitor", "--monitor", "dark")
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    crds, archive = f"{prefix}.events.crds", f"{prefix}.events.archive"
    publish(producer, crds, "crds_delivery", [("CRDS-A", first)])
    producer.produce(crds, key=b"garbage", value=b"not an avro message")
    publish(producer, archive, "archive_event", [("WFI01", unknown)])
    publish(producer, crds, "crds_delivery", [("CRDS-B", second)])

    metrics = reader("metrics").read(lambda r: len(r) >= 4)
    assert sorted(r["detector"] for r in metrics) == ["WFI01", "WFI02", "WFI03", "WFI06"], services.log_tail()
    dead = reader("deadletter").read(lambda r: len(r) >= 3)
    unrouted = reader("unrouted").read(lambda r: len(r) >= 2)

    by_type: dict[str, list[dict]] = {}
    for record in dead:
        by_type.setdefault(record["error_type"], []).append(record)
    assert sorted((t, len(v)) for t, v in by_type.items()) == [
        ("rdmt_core.avro.SchemaError", 1), ("rdmt_core.errors.InputError", 2)
    ], dead
    (garbage,) = by_type["rdmt_core.avro.SchemaError"]
    assert garbage["value"] == b"not an avro message" and garbage["key"] == b"garbage"
    assert garbage["topic"] == crds and garbage["service"] == "rdmt-ingest"
    assert "not Avro single-object encoded" in garbage["error"]
    errors = sorted(r["error"] for r in by_type["rdmt_core.errors.InputError"])
    assert any(str(truncated) in e and "cannot read array" in e for e in errors), errors
    assert any(str(vanished) in e and "file not found" in e for e in errors), errors
    for record in by_type["rdmt_core.errors.InputError"]:
        assert record["service"] == "rdmt-monitor-dark" and record["topic"] == f"{prefix}.requests.dark"
        assert avro.decode(record["value"], "monitor_request").record["delivery_id"] == "CRDS-A"

    reasons = sorted(r["error"] for r in unrouted)
    assert len(reasons) == 2
    assert "no monitor for reftype 'FLAT'" in reasons[0] and "/data/flat.asdf" in reasons[0]
    assert f"unknown monitor 'nosuch' (known: {', '.join(sorted(registered_monitors()))})" in reasons[1]
    assert {r["topic"] for r in unrouted} == {crds, archive}


def test_monitor_killed_in_the_middle_of_a_delivery_loses_no_detector(
    services: Services, reader, env: dict[str, str], tmp_path: Path
) -> None:
    # Larger files so the delivery takes long enough to be interrupted; classic protocol with a static
    # member id so the restarted member takes its partitions back at once (see settings.py).
    files = write_dark_delivery(tmp_path / "d1", USEAFTER, side=1024, delivery_seed=3)
    static = {"RDMT_KAFKA_GROUP_PROTOCOL": "classic", "RDMT_KAFKA_GROUP_INSTANCE_ID": "monitor-0"}
    port = _free_port()
    services.start("ingest")
    victim = services.start("monitor", "--monitor", "dark", "--metrics-port", str(port), **static)
    _wait_ready(port)
    subprocess.run([RDMT, "publish", "crds", "--delivery-id", "CRDS-K", "--context", "roman_0003.pmap",
                    *map(str, files)], env=env, check=True, capture_output=True, timeout=TIMEOUT_S)

    metrics = reader("metrics")
    metrics.read(lambda r: len(r) >= 1)
    victim.send_signal(signal.SIGSTOP)  # freeze it at once, wherever it is, then kill it there
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    before = {r["detector"] for r in metrics.read(lambda r: False, timeout_s=0.5)}
    assert 1 <= len(before) < 18, "the monitor finished before it was killed: use larger files"

    services.start("monitor", "--monitor", "dark", **static)
    records = metrics.read(lambda r: {x["detector"] for x in r} >= set(DETECTORS))
    assert {r["detector"] for r in records} == set(DETECTORS), services.log_tail()
    assert all(r["delivery_id"] == "CRDS-K" and len(r["metrics"]) == 9 for r in records)
    shutil.rmtree(tmp_path / "d1")


def test_topics_create_is_idempotent_and_sets_partitions_and_retention(env: dict[str, str], prefix: str) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource

    from rdmt_core.kafka.topics import topic_specs

    first = subprocess.run([RDMT, "topics", "create"], env=env, check=True, capture_output=True, text=True)
    again = subprocess.run([RDMT, "topics", "create"], env=env, check=True, capture_output=True, text=True)
    specs = topic_specs()
    assert sorted(first.stdout.split()) == sorted(["created"] * len(specs) + [s.name(prefix) for s in specs])
    assert sorted(again.stdout.split()) == sorted(["exists"] * len(specs) + [s.name(prefix) for s in specs])
    admin = AdminClient({"bootstrap.servers": env["RDMT_KAFKA_BOOTSTRAP"]})
    listed = admin.list_topics(timeout=10).topics
    for spec in specs:
        assert len(listed[spec.name(prefix)].partitions) == spec.partitions
    resource = ConfigResource(ConfigResource.Type.TOPIC, f"{prefix}.requests.dark")
    config = admin.describe_configs([resource])[resource].result(10)
    assert config["retention.ms"].value == str(7 * 24 * 3600 * 1000)
    assert config["cleanup.policy"].value == "delete"
