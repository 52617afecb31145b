"""One detector's key lands on the same partition number whichever RDMT service produced it."""

from __future__ import annotations

import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from quixstreams.kafka import Producer as QuixProducer

from rdmt_core.geometry import DETECTORS
from rdmt_core.kafka.settings import KafkaSettings

PARTITIONS = 6


def _partitions_of(produce, topic: str) -> dict[str, int]:
    landed: dict[str, int] = {}

    def on_delivery(err, msg) -> None:
        assert err is None, err
        landed[msg.key().decode()] = msg.partition()

    produce(topic, landed, on_delivery)
    return landed


def test_librdkafka_services_and_quixstreams_services_hash_keys_alike(kafka_bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topics = [f"partitioning-{uuid.uuid4().hex[:8]}-{n}" for n in ("rdmt", "quix")]
    for future in admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics]).values():
        future.result(30)

    ours = Producer(KafkaSettings(bootstrap_servers=kafka_bootstrap).producer("test"))

    def produce_ours(topic, landed, on_delivery) -> None:
        for detector in DETECTORS:
            ours.produce(topic, key=detector.encode(), value=b"x", on_delivery=on_delivery)
        ours.flush(30)

    quix = QuixProducer(broker_address=kafka_bootstrap)

    def produce_quix(topic, landed, on_delivery) -> None:
        for detector in DETECTORS:
            quix.produce(topic, key=detector.encode(), value=b"x", on_delivery=on_delivery)
        quix.flush(30)

    by_ours = _partitions_of(produce_ours, topics[0])
    by_quix = _partitions_of(produce_quix, topics[1])
    assert set(by_ours) == set(DETECTORS)
    assert by_ours == by_quix
    assert len(set(by_ours.values())) > 1, "18 detectors spread over the partitions"
