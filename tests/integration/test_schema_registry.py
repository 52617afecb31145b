"""The Confluent wire format with a real schema registry (Apicurio, deploy/registry/registry.sh).

1. The codec registers each writer schema once per subject (``<topic>-value``), frames messages with
   the registry's id, and reads both framings; Confluent's own deserializer reads what it writes.
2. With ``RDMT_SCHEMA_REGISTRY_URL`` set, ``rdmt publish``, a librdkafka service (ingest) and a
   quixstreams service (evaluator) produce Confluent-framed messages that Confluent's deserializer
   decodes with the registry; the evaluator reads both framings.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from rdmt_core import avro
from rdmt_core.avro import SchemaError
from rdmt_core.config import load_config
from rdmt_core.evaluators import History
from rdmt_core.kafka.schema_registry import Codec
from rdmt_core.kafka.settings import SchemaRegistrySettings
from rdmt_core.monitors import get_monitor
from rdmt_core.records import FileIdentity
from rdmt_core.results import file_result
from rdmt_core.synthetic import dark_arrays, write_dark_delivery
from rdmt_core.wire import metric_record

from .services import RDMT, Pipeline

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
        "report_url": None, "replay": False, "late": False,
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
    schema_registry_url: str, client: SchemaRegistryClient, kafka_bootstrap: str, tmp_path: Path,
) -> None:
    pipeline = Pipeline(kafka_bootstrap, tmp_path / "run", webhook_url="")
    registry_env = pipeline.env | {"RDMT_SCHEMA_REGISTRY_URL": schema_registry_url}
    prefix = pipeline.prefix

    def read(suffix: str, n: int) -> list[bytes]:
        topic = pipeline.reader(suffix, decode=False)
        return topic.read_until(lambda r: len(r) >= n, f"{n} messages", logs=pipeline.log_tails)

    try:
        for service in ("ingest", "evaluator"):
            pipeline.start(service, RDMT_SCHEMA_REGISTRY_URL=schema_registry_url)
        # rdmt publish -> events.crds -> ingest (librdkafka runner) -> requests.dark
        files = write_dark_delivery(tmp_path / "d", datetime(2026, 4, 1), side=128, detectors=("WFI01", "WFI02"))
        subprocess.run([RDMT, "publish", "crds", "--delivery-id", "CRDS-REG", "--context", "roman_0001.pmap",
                        *map(str, files)], env=registry_env, check=True, capture_output=True, timeout=TIMEOUT_S)
        [event] = read("events.crds", 1)
        events_topic, requests_topic = pipeline.topic("events.crds"), pipeline.topic("requests.dark")
        request_values = read("requests.dark", 2)
        for topic, values in ((events_topic, [event]), (requests_topic, request_values)):
            latest = client.get_latest_version(f"{topic}-value")
            for value in values:
                assert value[:1] == b"\x00" and int.from_bytes(value[1:5], "big") == latest.schema_id, topic
        assert _confluent_decode(client, events_topic, event)["delivery_id"] == "CRDS-REG"
        decoded = [_confluent_decode(client, requests_topic, v) for v in request_values]
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
        values = read("evaluations", 2)
        evaluations_topic = pipeline.topic("evaluations")
        latest = client.get_latest_version(f"{evaluations_topic}-value")
        assert all(v[:1] == b"\x00" and int.from_bytes(v[1:5], "big") == latest.schema_id for v in values)
        decoded = [_confluent_decode(client, evaluations_topic, v) for v in values]
        assert sorted(r["detector"] for r in decoded) == ["WFI01", "WFI02"]
        assert all(r["delivery_id"] == "reg-1" and r["evaluations"] for r in decoded)
        with _codec(schema_registry_url) as codec:
            assert codec.decode(values[0], "evaluation_record").record["file_key"] == decoded[0]["file_key"]
        dead = pipeline.reader("deadletter", decode=False)
        time.sleep(1)
        assert dead.consumer.poll(1.0) is None, "nothing may be dead-lettered"
    finally:
        pipeline.stop_all()
