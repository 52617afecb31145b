"""Replay: reprocess a time range of monitor requests under a release name.

The requests of ``[from, to)`` are found with the broker's offset-by-timestamp lookup on every
partition of each monitor's request topic, read without a consumer group (nothing is committed, no
service is disturbed), and produced again with ``release`` set to the new name and request and
delivery ids prefixed by it. The services treat them like any request: results carry the release,
so the original and reprocessed metrics sit side by side in the store; the evaluator keeps a history
per release; the notifier does not notify replays unless asked.

librdkafka merges several timestamps for one partition in a single ``offsets_for_times`` call into
one lookup, so each bound is looked up in a call of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

from ..avro import SchemaError
from ..kafka.schema_registry import PLAIN, Codec
from ..kafka.settings import StreamingSettings
from ..kafka.topics import requests_suffix

LOOKUP_TIMEOUT_S = 15.0


def replayed(request: Mapping[str, Any], release: str, now: datetime) -> dict[str, Any]:
    """The replay of one ``monitor_request`` under ``release`` (pure)."""
    return dict(
        request,
        release=release,
        request_id=f"{release}:{request['request_id']}",
        delivery_id=f"{release}:{request['delivery_id']}",
        attempt=1,
        requested_at=now,
    )


@dataclass(frozen=True)
class ReplaySummary:
    topics: dict[str, int]  # topic -> requests replayed
    skipped: int  # messages in the range that were not monitor requests

    @property
    def total(self) -> int:
        return sum(self.topics.values())


def _millis(moment: datetime) -> int:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def _offset_at(consumer: Consumer, topic: str, partition: int, moment: datetime) -> int:
    """First offset whose timestamp is >= ``moment``; the end of the partition when there is none."""
    found = consumer.offsets_for_times([TopicPartition(topic, partition, _millis(moment))], LOOKUP_TIMEOUT_S)[0]
    if found.offset >= 0:
        return found.offset
    return consumer.get_watermark_offsets(TopicPartition(topic, partition), LOOKUP_TIMEOUT_S)[1]


def _range(consumer: Consumer, topic: str, start: datetime, end: datetime) -> Iterator[tuple[int, int, int]]:
    metadata = consumer.list_topics(topic, LOOKUP_TIMEOUT_S).topics[topic]
    if metadata.error is not None:
        raise RuntimeError(f"topic {topic}: {metadata.error}")
    for partition in sorted(metadata.partitions):
        first, stop = _offset_at(consumer, topic, partition, start), _offset_at(consumer, topic, partition, end)
        if first < stop:
            yield partition, first, stop


def read_requests(
    consumer: Consumer, topic: str, start: datetime, end: datetime, codec: Codec = PLAIN
) -> Iterator[tuple[bytes | None, dict[str, Any] | None]]:
    """(key, request) of every message of ``topic`` produced in ``[start, end)``; request None if undecodable."""
    for partition, first, stop in _range(consumer, topic, start, end):
        consumer.assign([TopicPartition(topic, partition, first)])
        position = first
        while position < stop:
            msg = consumer.poll(LOOKUP_TIMEOUT_S)
            if msg is None:
                raise RuntimeError(f"{topic}[{partition}]: no message at offset {position} within {LOOKUP_TIMEOUT_S} s")
            if msg.error():
                continue
            position = msg.offset() + 1
            try:
                yield msg.key(), dict(codec.decode(msg.value(), "monitor_request").record)
            except SchemaError:
                yield msg.key(), None
        consumer.assign([TopicPartition(topic, partition, OFFSET_END)])


def replay(
    settings: StreamingSettings, monitors: Iterable[str], start: datetime, end: datetime, release: str
) -> ReplaySummary:
    """Produce again, under ``release``, the requests of ``monitors`` produced in ``[start, end)``."""
    if not release or release == "live":
        raise ValueError("a replay needs a release name other than 'live'")
    kafka = settings.kafka
    consumer = Consumer(kafka.common() | {"group.id": f"rdmt-replay-{release}", "enable.auto.commit": False})
    producer = Producer(kafka.producer("rdmt-replay"))
    codec = Codec.from_settings(settings.schema_registry)
    counts: dict[str, int] = {}
    skipped = 0
    now = datetime.now(UTC)
    try:
        for monitor in monitors:
            topic = f"{settings.topic_prefix}.{requests_suffix(monitor)}"
            counts[topic] = 0
            for key, request in list(read_requests(consumer, topic, start, end, codec)):
                if request is None or request.get("release") != "live":
                    skipped += 1  # undecodable, or itself a replay: only live requests are reprocessed
                    continue
                value = codec.encode(topic, "monitor_request", replayed(request, release, now))
                producer.produce(topic, key=key, value=value)
                counts[topic] += 1
        if producer.flush(60) != 0:
            raise RuntimeError("replay: some requests were not delivered within 60 s")
    finally:
        consumer.close()
        codec.close()
    return ReplaySummary(counts, skipped)
