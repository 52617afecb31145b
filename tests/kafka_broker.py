"""Pytest plugin: a real single-node Kafka broker for the test session.

``kafka_bootstrap`` returns ``RDMT_KAFKA_BOOTSTRAP`` when it is set (CI started a broker with
``deploy/kafka/broker.sh start``); otherwise it starts one with that script in a temporary directory and
stops it when the session ends. A broker that cannot start fails the tests that use it (no skip), with the
tail of the broker log in the failure. See docs/kafka-broker.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .daemons import Daemon, running

REPO = Path(__file__).resolve().parents[1]
BOOTSTRAP_ENV = "RDMT_KAFKA_BOOTSTRAP"
BROKER = Daemon(
    what="Kafka broker",
    script=REPO / "deploy" / "kafka" / "broker.sh",
    ready_line=f"{BOOTSTRAP_ENV}=",
    logs=("logs/server.log", "logs/broker.out"),
    start_timeout_s=600,  # the first start resolves ~45 MB of jars from Maven Central; later ones take seconds
)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a running Kafka 4.x broker (KRaft, single node, auto topic creation off)."""
    existing = os.environ.get(BOOTSTRAP_ENV)
    if existing:
        yield existing
        return
    with running(BROKER, tmp_path_factory.mktemp("kafka")) as bootstrap:
        yield bootstrap
