"""The Confluent wire format with a real schema registry (Apicurio, deploy/registry/registry.sh).

1. The codec registers each writer schema once per subject (``<topic>-value``), frames messages with
   the registry's id, and reads both framings; Confluent's own deserializer reads what it writes.
2. With ``RDMT_SCHEMA_REGISTRY_URL`` set, ``rdmt publish``, a librdkafka service (ingest) and a
   quixstreams service (evaluator) produce Confluent-framed messages that Confluent's deserializer
   decodes with the registry; the evaluator reads both framings.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from rdmt_core import avro
from rdmt_core.avro import SchemaError
from rdmt_core.config import load_config
from rdmt_core.evaluators import History
from rdmt_core.kafka.schema_registry import Codec
from rdmt_core.kafka.settings import SchemaRegistrySettings
from rdmt_core.kafka.topics import create_topics, topic_specs
from rdmt_core.monitors import get_monitor
from rdmt_core.records import FileIdentity
from rdmt_core.results import file_result
from rdmt_core.synthetic import dark_arrays, write_dark_delivery
from rdmt_core.wire import metric_record

from .services import RDMT, stop_processes

TIMEOUT_S = 60


def _codec(url: str) -> Codec:
    """A codec with a registry client of its own (close it: ``with``)."""
    return Codec.from_settings(SchemaRegistrySettings(url=url))


@pytest.fixture
def client(schema_registry_url: str) -> Iterator[SchemaRegistryClient]:
    """Confluent's registry client, independent of RDMT's code."""
    with SchemaRegistryClient({"url": schema_registry_url}) as registry:
        yield registry


def _confluent_decode(client: SchemaRegistryClient, topic: str, value: bytes) -> dict:
    """What Confluent's own Avro deserializer reads from ``value`` (writer schema from the registry)."""
    return AvroDeserializer(client)(value, SerializationContext(topic, MessageField.VALUE))


def _encode(url: str, topic: str, name: str, record: dict) -> bytes:
    with _codec(url) as codec:
        return codec.encode(topic, name, record)


def _alert() -> dict:
    return {
        "alert_id": str(uuid.uuid4()), "delivery_id": "CRDS-R1", "release": "live", "monitors": ["dark"],
        "created_at": datetime(2026, 5, 1, 12, tzinfo=UTC), "n_files": 18, "n_files_expected": 18,
        "detectors": [{"detector": "WFI07", "n_failed_files": 1, "fail_counts": {"mission": 3},
                       "top_failures": []}],
        "report_url": None, "replay": False,
    }  # fmt: skip


def test_codec_registers_once_frames_with_the_id_and_reads_both_framings(
    schema_registry_url: str, client: SchemaRegistryClient
) -> None:
    topic = f"reg-{uuid.uuid4().hex[:8]}.alerts"
    record = _alert()

    framed = _encode(schema_registry_url, topic, "alert", record)
    schema_id = int.from_bytes(framed[1:5], "big")
    assert framed[:1] == b"\x00" and framed[5:] == avro.catalog().body("alert", record)
    registered = client.get_latest_version(f"{topic}-value")
    assert registered.schema_id == schema_id and registered.version == 1
    assert _encode(schema_registry_url, topic, "alert", record)[:5] == framed[:5]  # a fresh cache: same id
    assert client.get_versions(f"{topic}-value") == [1]  # registered once

    assert _confluent_decode(client, topic, framed) == record
    foreign = client.register_schema(f"{topic}-other-value", Schema(
        '{"type": "record", "name": "Other", "fields": [{"name": "x", "type": "int"}]}', "AVRO"))  # fmt: skip
    with _codec(schema_registry_url) as fresh:
        assert fresh.decode(framed, "alert").record == record
        assert fresh.decode(avro.encode("alert", record), "alert").record == record  # single-object framing too
        with pytest.raises(SchemaError, match="expected a metric_record message, got alert"):
            fresh.decode(framed, "metric_record")
        with pytest.raises(SchemaError, match=r"schema id 987654.*not found"):
            fresh.decode(b"\x00" + (987654).to_bytes(4, "big") + framed[5:])
        with pytest.raises(SchemaError, match=rf"schema id {foreign} .* is not a schema in"):
            fresh.decode(b"\x00" + foreign.to_bytes(4, "big") + b"\x02")
    with pytest.raises(SchemaError, match="pass schema_ids"):
        Codec().decode(framed)  # without a registry the Confluent framing cannot be read


# -- services ---------------------------------------------------------------------------------------


class Topic:
    """Every partition of one topic from the beginning, without a consumer group: raw values."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"raw-{uuid.uuid4().hex}",
                                  "enable.auto.commit": False, "isolation.level": "read_committed"})  # fmt: skip
        partitions = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self.values: list[bytes] = []

    def read(self, n: int, logs: str | Path) -> list[bytes]:
        deadline = time.monotonic() + TIMEOUT_S
        while len(self.values) < n:
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(Path(logs).glob("*.log")))
                pytest.fail(f"{len(self.values)} of {n} messages on {self.topic} after {TIMEOUT_S} s\n{tails}")
            msg = self.consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                self.values.append(msg.value())
        return self.values

    def close(self) -> None:
        self.consumer.close()


@pytest.fixture
def registry_env(kafka_bootstrap: str, schema_registry_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    prefix = f"reg{uuid.uuid4().hex[:8]}"
    create_topics(AdminClient({"bootstrap.servers": kafka_bootstrap}), prefix, topic_specs())
    yield {k: v for k, v in os.environ.items() if not k.startswith("RDMT_")} | {
        "RDMT_KAFKA_BOOTSTRAP": kafka_bootstrap, "RDMT_TOPIC_PREFIX": prefix,
        "RDMT_SCHEMA_REGISTRY_URL": schema_registry_url, "RDMT_STATE_DIR": str(tmp_path / "state"),
    }  # fmt: skip


def _metric_records(n: int) -> list[dict]:
    config, dark = load_config(), get_monitor("dark")
    records = []
    for i, detector in enumerate(("WFI01", "WFI02", "WFI03")[:n]):
        rate, _, dq = dark_arrays(detector, side=128, delivery_seed=i)
        identity = FileIdentity(f"synthetic://{detector}", "DARK", detector, datetime(2026, 4, 1))
        result = file_result(dark, {"dark_slope": rate, "dq": dq}, identity, config, History(), "run-reg")
        records.append(metric_record(result, {"delivery_id": "reg-1", "n_files_in_delivery": n}, datetime.now(UTC)))
    return records


def test_services_produce_in_the_confluent_wire_format(
    registry_env: dict[str, str], schema_registry_url: str, client: SchemaRegistryClient, kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    prefix = registry_env["RDMT_TOPIC_PREFIX"]
    logs = tmp_path / "logs"
    logs.mkdir()
    procs: list[subprocess.Popen] = []
    readers: list[Topic] = []
    try:
        for service in ("ingest", "evaluator"):
            with (logs / f"{service}.log").open("wb") as log:
                procs.append(subprocess.Popen([RDMT, "service", service], env=registry_env, stdout=log,
                                              stderr=subprocess.STDOUT))  # fmt: skip
        # rdmt publish -> events.crds -> ingest (librdkafka runner) -> requests.dark
        files = write_dark_delivery(tmp_path / "d", datetime(2026, 4, 1), side=128, detectors=("WFI01", "WFI02"))
        subprocess.run([RDMT, "publish", "crds", "--delivery-id", "CRDS-REG", "--context", "roman_0001.pmap",
                        *map(str, files)], env=registry_env, check=True, capture_output=True, timeout=TIMEOUT_S)
        [event] = (events := Topic(kafka_bootstrap, f"{prefix}.events.crds")).read(1, logs)
        readers.append(events)
        requests = Topic(kafka_bootstrap, f"{prefix}.requests.dark")
        readers.append(requests)
        for topic, values in ((events.topic, [event]), (requests.topic, requests.read(2, logs))):
            latest = client.get_latest_version(f"{topic}-value")
            for value in values:
                assert value[:1] == b"\x00" and int.from_bytes(value[1:5], "big") == latest.schema_id, topic
        assert _confluent_decode(client, events.topic, event)["delivery_id"] == "CRDS-REG"
        decoded = [_confluent_decode(client, requests.topic, v) for v in requests.values]
        assert sorted(r["detector"] for r in decoded) == ["WFI01", "WFI02"]
        assert {r["delivery_id"] for r in decoded} == {"CRDS-REG"}

        # metrics in both framings -> evaluator (quixstreams) -> evaluations in the Confluent framing
        first, second = _metric_records(2)
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        metrics_topic = f"{prefix}.metrics"
        producer.produce(metrics_topic, _encode(schema_registry_url, metrics_topic, "metric_record", first),
                         key=first["detector"])  # fmt: skip
        producer.produce(metrics_topic, avro.encode("metric_record", second), key=second["detector"])
        producer.flush(10)
        evaluations = Topic(kafka_bootstrap, f"{prefix}.evaluations")
        readers.append(evaluations)
        values = evaluations.read(2, logs)
        latest = client.get_latest_version(f"{evaluations.topic}-value")
        assert all(v[:1] == b"\x00" and int.from_bytes(v[1:5], "big") == latest.schema_id for v in values)
        decoded = [_confluent_decode(client, evaluations.topic, v) for v in values]
        assert sorted(r["detector"] for r in decoded) == ["WFI01", "WFI02"]
        assert all(r["delivery_id"] == "reg-1" and r["evaluations"] for r in decoded)
        with _codec(schema_registry_url) as codec:
            assert codec.decode(values[0], "evaluation_record").record["file_key"] == decoded[0]["file_key"]
        dead = Topic(kafka_bootstrap, f"{prefix}.deadletter")
        readers.append(dead)
        time.sleep(1)
        assert dead.consumer.poll(1.0) is None, "nothing may be dead-lettered"
    finally:
        stop_processes(procs)
        for reader in readers:
            reader.close()
