"""The streaming services as separate processes on the real broker: ingest -> monitor -> metric records.

Each test uses its own topic prefix, starts ``rdmt service ...`` subprocesses and always stops them.
The test process publishes events and reads the output topics with an assigned (group-less) consumer.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer

from rdmt_core import avro
from rdmt_core.cli.publish import archive_event, crds_delivery, publish
from rdmt_core.geometry import DETECTORS
from rdmt_core.monitors import registered_monitors
from rdmt_core.synthetic import Anomaly, write_dark_delivery

from .services import Pipeline

RDMT = str(Path(sys.executable).with_name("rdmt"))
USEAFTER = datetime(2026, 1, 1)
N_VALUES = 1 + 32 + 1024
TIMEOUT_S = 60


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def env(kafka_bootstrap: str, prefix: str) -> dict[str, str]:
    return os.environ | {"RDMT_KAFKA_BOOTSTRAP": kafka_bootstrap, "RDMT_TOPIC_PREFIX": prefix}


@pytest.fixture
def services(kafka_bootstrap: str, prefix: str, tmp_path: Path) -> Iterator[Pipeline]:
    """The harness's services under ``prefix`` (topics created), always stopped."""
    running = Pipeline(kafka_bootstrap, tmp_path / "run", webhook_url="", prefix=prefix)
    try:
        yield running
    finally:
        running.stop_all()


@pytest.fixture
def reader(services: Pipeline):
    return services.reader


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_crds_delivery_of_18_darks_gives_18_metric_records(
    services: Pipeline, reader, env: dict[str, str], tmp_path: Path
) -> None:
    files = write_dark_delivery(tmp_path / "d1", USEAFTER, side=256, delivery_seed=1,
                                anomalies={"WFI07": Anomaly(dark_scale=2.0)})
    services.start("ingest")
    services.start("monitor")
    services.wait_ready("monitor")
    port = services.ports["monitor"]
    subprocess.run([RDMT, "publish", "crds", "--delivery-id", "CRDS-0001", "--context", "roman_0001.pmap",
                    *map(str, files)], env=env, check=True, capture_output=True, timeout=TIMEOUT_S)

    metrics = reader("metrics")
    records = metrics.read(lambda r: len(r) >= 18)
    assert len(records) == 18, services.log_tails()
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
    services: Pipeline, reader, kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    files = write_dark_delivery(tmp_path / "d", USEAFTER, side=256,
                                detectors=("WFI01", "WFI02", "WFI03", "WFI04", "WFI05", "WFI06"))
    truncated, vanished = files[3], files[4]
    first = crds_delivery("CRDS-A", "roman_0001.pmap", files[:5])
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) * 2 // 3])  # the tree is intact, the array blocks are cut
    vanished.unlink()
    second = crds_delivery("CRDS-B", "roman_0002.pmap", files[5:])
    # a reference type no monitor reads (aperture corrections)
    second["files"].append({"uri": "/data/apcorr.asdf", "reftype": "APCORR", "detector": "WFI06", "useafter": USEAFTER})
    unknown = archive_event(files[0], monitor="nosuch")

    services.start("ingest")
    services.start("monitor")
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    crds, archive = f"{prefix}.events.crds", f"{prefix}.events.archive"
    publish(producer, crds, "crds_delivery", [("CRDS-A", first)])
    producer.produce(crds, key=b"garbage", value=b"not an avro message")
    publish(producer, archive, "archive_event", [("WFI01", unknown)])
    publish(producer, crds, "crds_delivery", [("CRDS-B", second)])

    metrics = reader("metrics").read(lambda r: len(r) >= 4)
    assert sorted(r["detector"] for r in metrics) == ["WFI01", "WFI02", "WFI03", "WFI06"], services.log_tails()
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
    assert any(str(truncated) in e and "looks truncated or damaged" in e for e in errors), errors
    assert any(str(vanished) in e and "file not found" in e for e in errors), errors
    for record in by_type["rdmt_core.errors.InputError"]:
        assert record["service"] == "rdmt-monitor-dark" and record["topic"] == f"{prefix}.requests.dark"
        assert avro.decode(record["value"], "monitor_request").record["delivery_id"] == "CRDS-A"

    reasons = sorted(r["error"] for r in unrouted)
    assert len(reasons) == 2
    assert "no monitor for reftype 'APCORR'" in reasons[0] and "/data/apcorr.asdf" in reasons[0]
    assert f"unknown monitor 'nosuch' (known: {', '.join(sorted(registered_monitors()))})" in reasons[1]
    assert {r["topic"] for r in unrouted} == {crds, archive}


def test_monitor_killed_in_the_middle_of_a_delivery_loses_no_detector(
    services: Pipeline, reader, env: dict[str, str], tmp_path: Path
) -> None:
    # Larger files so the delivery takes long enough to be interrupted; classic protocol with a static
    # member id so the restarted member takes its partitions back at once (see settings.py).
    files = write_dark_delivery(tmp_path / "d1", USEAFTER, side=1024, delivery_seed=3)
    services.start("ingest")
    victim = services.start("monitor")  # the harness starts monitors with a static member id
    services.wait_ready("monitor")
    subprocess.run([RDMT, "publish", "crds", "--delivery-id", "CRDS-K", "--context", "roman_0003.pmap",
                    *map(str, files)], env=env, check=True, capture_output=True, timeout=TIMEOUT_S)

    metrics = reader("metrics")
    metrics.read(lambda r: len(r) >= 1)
    victim.send_signal(signal.SIGSTOP)  # freeze it at once, wherever it is, then kill it there
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    before = {r["detector"] for r in metrics.read(lambda r: False, timeout_s=0.5)}
    assert 1 <= len(before) < 18, "the monitor finished before it was killed: use larger files"

    services.start("monitor")
    records = metrics.read(lambda r: {x["detector"] for x in r} >= set(DETECTORS))
    assert {r["detector"] for r in records} == set(DETECTORS), services.log_tails()
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
