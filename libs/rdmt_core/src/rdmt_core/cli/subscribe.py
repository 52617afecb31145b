"""A small subscriber: decode the messages of any RDMT topic and print them as JSON lines.

The example for subscribers of the public alert topic (docs/topics.md). It reads without joining a
consumer group's offsets: no commit, a throw-away group id, so it disturbs no service.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from confluent_kafka import Consumer

from ..avro import SchemaError
from ..kafka.schema_registry import PLAIN, Codec, RegistryError
from ..kafka.settings import KafkaSettings


def to_json(value: Any) -> Any:
    """A decoded record as JSON data: timestamps as ISO 8601, bytes as base64, NaN as null."""
    if isinstance(value, Mapping):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float) and value != value:
        return None
    return value


def matches(record: Mapping[str, Any], monitor: str | None, detector: str | None) -> bool:
    """Does ``record`` concern ``monitor`` and ``detector``? Records without such a field pass."""
    if monitor is not None:
        if "monitor" in record and record["monitor"] != monitor:
            return False
        if "monitors" in record and monitor not in record["monitors"]:
            return False
    if detector is not None:
        detector = detector.upper()
        if "detector" in record and isinstance(record["detector"], str) and record["detector"] != detector:
            return False
        if "detectors" in record and all(d.get("detector") != detector for d in record["detectors"]):
            return False
    return True


def messages(
    kafka: KafkaSettings, topic: str, from_beginning: bool, idle_timeout_s: float | None, codec: Codec = PLAIN
) -> Iterator[dict[str, Any]]:
    """Decoded messages of ``topic`` as JSON-ready dicts, until ``idle_timeout_s`` passes without one.

    ``codec`` decodes both framings; without a registry, a Confluent-framed message is an error line.
    """
    conf = kafka.common() | {
        "group.id": f"rdmt-subscribe-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest" if from_beginning else "latest",
        "group.protocol": kafka.group_protocol,
        "fetch.wait.max.ms": 100,
    }
    consumer = Consumer(conf)
    try:
        consumer.subscribe([topic])
        last = time.monotonic()
        while idle_timeout_s is None or time.monotonic() - last < idle_timeout_s:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            last = time.monotonic()
            if msg.error() is not None:
                yield {"topic": topic, "error": msg.error().str()}
                continue
            where = {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset()}
            try:
                decoded = codec.decode(msg.value())
            except (SchemaError, RegistryError) as exc:
                yield where | {"error": str(exc)}
                continue
            yield where | {"schema": decoded.name, "version": decoded.version, "record": to_json(decoded.record)}
    finally:
        consumer.close()


def print_messages(
    kafka: KafkaSettings, topic: str, monitor: str | None, detector: str | None, from_beginning: bool,
    max_messages: int | None, idle_timeout_s: float | None, echo: Any = print, codec: Codec = PLAIN,
) -> int:
    """Print matching messages as JSON lines; return how many were printed."""
    n = 0
    for message in messages(kafka, topic, from_beginning, idle_timeout_s, codec):
        if "record" in message and not matches(message["record"], monitor, detector):
            continue
        echo(json.dumps(message))
        n += 1
        if max_messages is not None and n >= max_messages:
            break
    return n
