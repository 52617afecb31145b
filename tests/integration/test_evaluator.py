"""The evaluator and notifier services as separate processes on the real broker.

Three detectors, two deliveries; in the second, WFI02's dark current is raised by 50%. The
evaluator's ``change`` evaluations are incomplete in the first delivery and fail for WFI02 in the
second, also when the evaluator was killed (SIGTERM or SIGKILL) between the deliveries and lost its
state directory: the history comes back from the changelog topic. The notifier sends exactly one
alert and one webhook POST for the second delivery. A message that is not Avro, or has no value
(a tombstone), goes to the dead-letter topic and the partition moves on. Outputs carry the time
they were produced, not the input's timestamp. Both services count what they did on
``/metrics``: messages in and out per topic, dead letters, processing times and their consumer lag.
"""

from __future__ import annotations

import shutil
import signal
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from prometheus_client.parser import text_string_to_metric_families

from rdmt_core import avro
from rdmt_core.config import load_config
from rdmt_core.evaluators import History
from rdmt_core.kafka.topics import spec_for
from rdmt_core.monitors import get_monitor
from rdmt_core.records import FileIdentity
from rdmt_core.results import file_result
from rdmt_core.synthetic import Anomaly, dark_arrays
from rdmt_core.wire import metric_record

from .services import Pipeline, Webhook

DETECTORS = ("WFI01", "WFI02", "WFI03")
RAISED = "WFI02"
TIMEOUT_S = 60


def _metric_records(day: int) -> list[dict]:
    """Delivery ``d<day>``: one dark metric record per detector (256x256 synthetic arrays)."""
    config, dark = load_config(), get_monitor("dark")
    records = []
    for detector in DETECTORS:
        scale = 1.5 if (day == 2 and detector == RAISED) else 1.0
        rate, _, dq = dark_arrays(detector, side=256, delivery_seed=day, anomaly=Anomaly(dark_scale=scale))
        identity = FileIdentity(f"synthetic://{detector}/{day}", "DARK", detector, datetime(2026, day, 1))
        result = file_result(dark, {"dark_slope": rate, "dq": dq}, identity, config, History(), f"run-{day}")
        request = {"delivery_id": f"d{day}", "n_files_in_delivery": len(DETECTORS)}
        records.append(metric_record(result, request, datetime.now(UTC)))
    return records


class Services:
    """The evaluator and the notifier of a :class:`~.services.Pipeline`, raw producers, and readers of the outputs."""

    def __init__(self, bootstrap: str, tmp_path: Path, webhook_url: str | None = None) -> None:
        self.pipeline = Pipeline(bootstrap, tmp_path / "pipeline", webhook_url or "")
        self.prefix = self.pipeline.prefix
        self.state_dir = Path(self.pipeline.env["RDMT_STATE_DIR"])
        self.producer = Producer({"bootstrap.servers": bootstrap})
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"{self.prefix}-test", "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        })  # fmt: skip
        self.consumer.subscribe([f"{self.prefix}.{t}" for t in ("evaluations", "alerts", "deadletter")])
        self.received: dict[str, list[dict]] = {"evaluation_record": [], "alert": [], "dead_letter": []}
        self.timestamps: dict[str, list[int]] = {name: [] for name in self.received}  # Kafka timestamps, ms

    def start(self, service: str) -> int:
        """Start ``rdmt service <service>``; the port of its /metrics."""
        self.pipeline.start(service)
        return self.pipeline.ports[service]

    def produce(self, records: list[dict], timestamp_ms: int = 0) -> None:
        """Produce metric records, with ``timestamp_ms`` as their Kafka timestamp (0: now)."""
        for record in records:
            value = avro.encode("metric_record", record)
            self.producer.produce(f"{self.prefix}.metrics", value, key=record["detector"], timestamp=timestamp_ms)
        self.producer.flush(10)

    def wait_for(self, name: str, n: int, timeout_s: float = TIMEOUT_S) -> list[dict]:
        """Read the output topics until ``n`` records of ``name`` have arrived in all."""
        deadline = time.monotonic() + timeout_s
        while len(self.received[name]) < n:
            if time.monotonic() > deadline:
                pytest.fail(f"{len(self.received[name])} of {n} {name} records after {timeout_s} s\n{self.log_tails()}")
            self.poll(1.0)
        return self.received[name]

    def poll(self, timeout_s: float) -> None:
        message = self.consumer.poll(timeout_s)
        if message is not None and not message.error() and message.value() is not None:
            decoded = avro.decode(message.value())
            self.received[decoded.name].append(decoded.record)
            self.timestamps[decoded.name].append(message.timestamp()[1])

    def drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.poll(0.5)

    def log_tails(self) -> str:
        return self.pipeline.log_tails(30)

    def close(self) -> None:
        self.pipeline.stop_all()
        self.consumer.close()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _scrape(port: int) -> Samples:
    """Every sample of a service's ``/metrics``: (name, labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}  # fmt: skip


def _value(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels`` (0 when there is none)."""
    return sum(v for (n, have), v in samples.items() if n == name and set(labels.items()) <= have)


def _series(samples: Samples, name: str, **labels: str) -> list[dict[str, str]]:
    return [dict(have) for (n, have), _ in samples.items() if n == name and set(labels.items()) <= have]


def _wait_metrics(port: int, done, what: str, services: Services, timeout_s: float = 40) -> Samples:
    """Scrape ``port`` until ``done(samples)``; fail with the last scrape after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        samples = _scrape(port)
        if done(samples):
            return samples
        if time.monotonic() > deadline:
            shown = "\n".join(f"{n} {dict(labels)} {v}" for (n, labels), v in sorted(samples.items(), key=str)
                              if n.startswith("rdmt_"))  # fmt: skip
            pytest.fail(f"{what} not seen on /metrics after {timeout_s} s\n{shown}\n{services.log_tails()}")
        time.sleep(0.5)


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    """A local Slack-compatible webhook: its URL and the JSON bodies POSTed to it."""
    hook = Webhook()
    try:
        yield hook.url, hook.posts
    finally:
        hook.close()


def _change(evaluation: dict) -> str:
    [block] = [b for b in evaluation["evaluations"] if b["evaluator"] == "change"
               and b["metric"] == "dark_rate_mean" and b["scale"] == "detector"]  # fmt: skip
    return block["status"][0]


def _changes(evaluations: list[dict], delivery: str) -> dict[str, str]:
    return {e["detector"]: _change(e) for e in evaluations if e["delivery_id"] == delivery}


def test_evaluations_dead_letter_and_one_alert(kafka_bootstrap: str, tmp_path: Path, webhook) -> None:
    url, posts = webhook
    services = Services(kafka_bootstrap, tmp_path, webhook_url=url)
    try:
        evaluator_port = services.start("evaluator")
        notifier_port = services.start("notifier")
        # Inputs stamped a day ago: the outputs must carry the time they were produced, not the input's.
        published_ms = round(time.time() * 1000)
        day_ago_ms = published_ms - 86_400_000
        services.produce(_metric_records(1), timestamp_ms=day_ago_ms)
        services.producer.produce(f"{services.prefix}.metrics", b"not avro at all", key=b"WFI01",
                                  timestamp=day_ago_ms)  # fmt: skip
        services.producer.produce(f"{services.prefix}.metrics", None, key=b"WFI02")  # tombstones: no value
        services.producer.produce(f"{services.prefix}.evaluations", None, key=b"WFI03")
        services.produce(_metric_records(2), timestamp_ms=day_ago_ms)

        evaluations = services.wait_for("evaluation_record", 6)
        assert _changes(evaluations, "d1") == dict.fromkeys(DETECTORS, "incomplete")
        assert _changes(evaluations, "d2") == {"WFI01": "pass", "WFI02": "fail", "WFI03": "pass"}
        dead = {(d["service"], d["topic"].removeprefix(f"{services.prefix}."), d["error_type"], d["value"]): d["error"]
                for d in services.wait_for("dead_letter", 3)}  # fmt: skip
        assert sorted(dead) == [
            ("rdmt-evaluator", "metrics", "ValueError", None),
            ("rdmt-evaluator", "metrics", "rdmt_core.avro.SchemaError", b"not avro at all"),
            ("rdmt-notifier", "evaluations", "ValueError", None),
        ]
        assert "not Avro single-object encoded" in dead["rdmt-evaluator", "metrics", "rdmt_core.avro.SchemaError",
                                                        b"not avro at all"]  # fmt: skip
        assert "tombstone (no value)" in dead["rdmt-notifier", "evaluations", "ValueError", None]

        [alert] = services.wait_for("alert", 1)
        deadline = time.monotonic() + 15
        while not posts and time.monotonic() < deadline:
            time.sleep(0.2)
        services.drain(4)  # nothing more may come: no second alert, no second POST
        assert len(services.received["alert"]) == 1 and len(services.received["evaluation_record"]) == 6
        assert alert["delivery_id"] == "d2" and alert["n_files"] == alert["n_files_expected"] == 3
        assert not alert["replay"]
        assert RAISED in [d["detector"] for d in alert["detectors"]]
        assert len(posts) == 1, services.log_tails()
        assert "d2" in posts[0]["text"] and RAISED in posts[0]["text"]
        now_ms = round(time.time() * 1000)
        for name, stamps in services.timestamps.items():
            assert all(published_ms <= ts <= now_ms for ts in stamps), (name, published_ms, stamps, now_ms)
        _check_evaluator_metrics(evaluator_port, services)
        _check_notifier_metrics(notifier_port, services)
    finally:
        services.close()


def _check_evaluator_metrics(port: int, services: Services) -> None:
    """8 metric-topic messages in (6 records, 1 not Avro, 1 tombstone): 6 evaluations, 2 dead letters; lag 0."""
    service = {"service": "rdmt-evaluator"}
    metrics, evaluations, dead = (f"{services.prefix}.{t}" for t in ("metrics", "evaluations", "deadletter"))
    n_partitions = spec_for("metrics").partitions
    samples = _wait_metrics(
        port, lambda s: len(_series(s, "rdmt_consumer_lag", **service)) == n_partitions
        and _value(s, "rdmt_consumer_lag", **service) == 0, "consumer lag 0 on every metrics partition", services,
    )  # fmt: skip
    assert _value(samples, "rdmt_messages_in_total", **service, topic=metrics) == 8
    assert _value(samples, "rdmt_messages_in_total", **service) == 8  # and nothing else
    assert _value(samples, "rdmt_messages_out_total", **service, topic=evaluations) == 6
    assert _value(samples, "rdmt_messages_out_total", **service, topic=dead) == 2
    for error_type in ("rdmt_core.avro.SchemaError", "ValueError"):
        assert _value(samples, "rdmt_failures_total", **service, error_type=error_type, outcome="dead_letter") == 1
    assert _value(samples, "rdmt_failures_total", **service) == 2
    # The tombstone skips the deserializer, where the clock starts: counted in, not timed.
    assert _value(samples, "rdmt_processing_seconds_count", **service, topic=metrics) == 7
    assert 0 < _value(samples, "rdmt_processing_seconds_sum", **service, topic=metrics) < 60
    assert {s["topic"] for s in _series(samples, "rdmt_consumer_lag", **service)} == {metrics}
    assert _value(samples, "rdmt_assigned_partitions", **service) >= n_partitions


def _check_notifier_metrics(port: int, services: Services) -> None:
    """7 evaluations-topic messages in (1 a tombstone, dead-lettered), 6 through the repartition topic;
    1 alert out, and in again to be sent."""
    service = {"service": "rdmt-notifier"}
    evaluations, alerts = f"{services.prefix}.evaluations", f"{services.prefix}.alerts"
    samples = _wait_metrics(
        port, lambda s: _value(s, "rdmt_processing_seconds_count", **service, topic=alerts) >= 1
        and len(_series(s, "rdmt_consumer_lag", **service, topic=evaluations)) == spec_for("evaluations").partitions,
        "the alert processed and the lag of every evaluations partition", services,
    )  # fmt: skip
    inputs = {s["topic"]: _value(samples, "rdmt_messages_in_total", **service, topic=s["topic"])
              for s in _series(samples, "rdmt_messages_in_total", **service)}  # fmt: skip
    [repartition] = [t for t in inputs if t not in (evaluations, alerts)]
    assert "repartition" in repartition
    assert inputs == {evaluations: 7, repartition: 6, alerts: 1}
    outputs = {s["topic"]: _value(samples, "rdmt_messages_out_total", **service, topic=s["topic"])
               for s in _series(samples, "rdmt_messages_out_total", **service)}  # fmt: skip
    assert outputs == {repartition: 6, alerts: 1, f"{services.prefix}.deadletter": 1}
    assert _value(samples, "rdmt_processing_seconds_count", **service, topic=evaluations) == 6
    assert _value(samples, "rdmt_processing_seconds_count", **service, topic=repartition) == 6
    assert _value(samples, "rdmt_processing_seconds_count", **service, topic=alerts) == 1
    assert _value(samples, "rdmt_failures_total", **service) == 1
    assert _value(samples, "rdmt_failures_total", **service, error_type="ValueError", outcome="dead_letter") == 1
    # The evaluator writes in transactions: the commit marker after a partition's last record stays
    # behind the committed offset, so a partition the notifier has finished shows 0 or 1.
    lags = [_value(samples, "rdmt_consumer_lag", **service, topic=evaluations, partition=str(p))
            for p in range(spec_for("evaluations").partitions)]  # fmt: skip
    assert all(lag in (0, 1) for lag in lags), lags


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_history_survives_restart_without_local_state(kafka_bootstrap: str, tmp_path: Path, sig: int) -> None:
    services = Services(kafka_bootstrap, tmp_path)
    try:
        services.start("evaluator")
        services.produce(_metric_records(1))
        services.wait_for("evaluation_record", 3)  # read_committed: the state changelog is committed too
        services.pipeline.stop("evaluator", sig)
        shutil.rmtree(services.state_dir)

        services.start("evaluator")
        services.produce(_metric_records(2))
        evaluations = services.wait_for("evaluation_record", 6)
        services.drain(2)
        assert len(services.received["evaluation_record"]) == 6  # nothing evaluated twice
        assert _changes(evaluations, "d2") == {"WFI01": "pass", "WFI02": "fail", "WFI03": "pass"}
    finally:
        services.close()
