"""Opt-in tier: a real ClickHouse server and Kafka broker started with testcontainers.

Run with ``make test-containers`` on a machine with a Docker engine. Without one, every test here
reports itself as not run (skipped with the reason); the Maven-started broker and chDB carry the
main suite. The store tests are the chDB ones again, against a server through clickhouse-connect.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from rdmt_core.monitors import get_monitor
from rdmt_core.store import open_store
from rdmt_core.synthetic import dark_arrays

from .. import builders


def _docker_or_skip() -> None:
    """Skip, saying why, unless a Docker engine answers (``docker info``)."""
    if shutil.which("docker") is None:
        pytest.skip("containers tier not run: no docker command")
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30, check=False)
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["docker info failed"])[-1]
        pytest.skip(f"containers tier not run: no Docker engine ({reason[:120]})")


@pytest.fixture(scope="module")
def clickhouse_url() -> Iterator[str]:
    _docker_or_skip()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from testcontainers.community.clickhouse import ClickHouseContainer
    with ClickHouseContainer("clickhouse/clickhouse-server:25.8", port=8123, username="rdmt", password="rdmt",
                             dbname="rdmt") as server:
        yield f"clickhouse://rdmt:rdmt@{server.get_container_host_ip()}:{server.get_exposed_port(8123)}/rdmt"


@pytest.fixture(scope="module")
def kafka_container_bootstrap() -> Iterator[str]:
    _docker_or_skip()
    from testcontainers.community.kafka import KafkaContainer

    with KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft() as kafka:
        yield kafka.get_bootstrap_server()


def _result(seed: int = 1, run_id: str = "run-a"):
    rate, _, dq = dark_arrays("WFI05", side=256, delivery_seed=seed)
    when = datetime(2026, seed, 1, tzinfo=UTC)
    return builders.dark_result(rate, "WFI05", f"/data/WFI05_{seed}.asdf", when, run_id, dq=dq)


def test_server_store_round_trip_and_idempotence(clickhouse_url):
    result = _result()
    with open_store(clickhouse_url) as store:
        assert store.write(result) is True
        assert store.write(result) is False
        rows = store.sql("SELECT count() AS n FROM rdmt.metrics WHERE run_id = 'run-a'")
        assert int(rows.n[0]) == len(get_monitor("dark").metric_specs) * 1057
        assert store.write(dataclasses.replace(_result(seed=2), run_id="run-b"))
        later = _result(seed=3)
        history = store.history("dark", "WFI05", "live", later.identity.file_time, later.identity.file_key, 10)
        assert history.values[("dark_rate_mean", "detector")].shape == (2, 1)


def test_topics_on_a_container_broker(kafka_container_bootstrap):
    from confluent_kafka.admin import AdminClient

    from rdmt_core.kafka.topics import create_topics, topic_specs

    admin = AdminClient({"bootstrap.servers": kafka_container_bootstrap})
    first = create_topics(admin, "tc", topic_specs())
    again = create_topics(admin, "tc", topic_specs())
    assert set(first.values()) == {"created"} and set(again.values()) == {"exists"}
