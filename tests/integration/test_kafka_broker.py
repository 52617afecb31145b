"""Round trip through a real Kafka broker: topic admin, keyed produce, group consume, offset-by-timestamp.

The broker comes from the ``kafka_bootstrap`` fixture (tests/kafka_broker.py, deploy/kafka/broker.sh).
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import (
    OFFSET_END,
    TIMESTAMP_CREATE_TIME,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

N = 100
STEP_MS = 1000  # one message per second of (synthetic) event time
TIMEOUT_S = 30


def _consume(consumer: Consumer, count: int) -> list[Message]:
    messages: list[Message] = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(messages) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        messages.append(msg)
    return messages


def test_produce_consume_and_offsets_for_times(kafka_bootstrap: str) -> None:
    topic = f"rdmt-test-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(TIMEOUT_S)
    try:
        # Produce N keyed messages with explicit, strictly increasing CreateTime timestamps in the past.
        base_ms = int(time.time() * 1000) - 10 * N * STEP_MS
        delivered: list[tuple[int, bytes]] = []
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                errors.append(err)
            else:
                delivered.append((msg.offset(), msg.key()))

        producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True, "linger.ms": 5})
        for i in range(N):
            producer.produce(
                topic,
                key=f"detector-{i % 18 + 1:02d}".encode(),
                value=f"event-{i:03d}".encode(),
                timestamp=base_ms + i * STEP_MS,
                on_delivery=on_delivery,
            )
        assert producer.flush(TIMEOUT_S) == 0
        assert errors == []
        assert [offset for offset, _ in sorted(delivered)] == list(range(N))

        # Consume everything back, in order, through a consumer group.
        group = f"rdmt-test-group-{uuid.uuid4().hex[:12]}"
        consumer = Consumer(
            {
                "bootstrap.servers": kafka_bootstrap,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        try:
            consumer.subscribe([topic])
            messages = _consume(consumer, N)
            assert len(messages) == N
            assert [m.offset() for m in messages] == list(range(N))
            assert [m.key() for m in messages] == [f"detector-{i % 18 + 1:02d}".encode() for i in range(N)]
            assert [m.value() for m in messages] == [f"event-{i:03d}".encode() for i in range(N)]
            expected_ts = [(TIMESTAMP_CREATE_TIME, base_ms + i * STEP_MS) for i in range(N)]
            assert [m.timestamp() for m in messages] == expected_ts

            consumer.commit(asynchronous=False)
            (committed,) = consumer.committed([TopicPartition(topic, 0)], timeout=TIMEOUT_S)
            assert committed.offset == N

            # Offset-by-timestamp (what replay relies on): the earliest offset whose timestamp >= the query.
            # One lookup per call: librdkafka merges repeats of a partition within one offsets_for_times call
            # and answers all of them with a single timestamp's result.
            queries = {
                base_ms - 1: 0,  # before the first message
                base_ms + 42 * STEP_MS: 42,  # exactly a message's timestamp
                base_ms + 42 * STEP_MS - STEP_MS // 2: 42,  # between two messages
                base_ms + (N - 1) * STEP_MS: N - 1,  # the last message
                base_ms + N * STEP_MS: OFFSET_END,  # after the last message: -1
            }
            found = [consumer.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=TIMEOUT_S)[0] for ts in queries]
            assert [tp.error for tp in found] == [None] * len(queries)
            assert [tp.offset for tp in found] == list(queries.values())
        finally:
            consumer.close()

        # Replay from a looked-up offset with an assigned (not subscribed) consumer.
        replay = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"{group}-replay"})
        try:
            (start,) = replay.offsets_for_times([TopicPartition(topic, 0, base_ms + 90 * STEP_MS)], timeout=TIMEOUT_S)
            replay.assign([start])
            tail = _consume(replay, N - 90)
            assert [m.value() for m in tail] == [f"event-{i:03d}".encode() for i in range(90, N)]
        finally:
            replay.close()
    finally:
        admin.delete_topics([topic])[topic].result(TIMEOUT_S)
