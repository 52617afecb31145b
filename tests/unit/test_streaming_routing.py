"""Routing rules, failure decisions, settings and the runner's per-message handling, without a broker."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rdmt_services.ingest.service import outputs

from rdmt_core import avro
from rdmt_core.cli.subscribe import matches, to_json
from rdmt_core.errors import ConfigError, InputError, StoreError
from rdmt_core.kafka import topics_doc
from rdmt_core.kafka.deadletters import Origin, backoff_s, error_type, is_permanent, one_line, should_retry
from rdmt_core.kafka.observability import JsonLines
from rdmt_core.kafka.runner import Inbound, Output, ServiceRunner
from rdmt_core.kafka.settings import RetrySettings, StreamingSettings, streaming_settings
from rdmt_core.kafka.topics import spec_for, table, topic_specs
from rdmt_core.routing import RoutingRules, route_archive, route_crds

NOW = datetime(2026, 3, 1, tzinfo=UTC)
USEAFTER = datetime(2026, 1, 1, tzinfo=UTC)
KNOWN = {"dark"}


def _delivery(*files: tuple[str, str, str]) -> dict:
    return {
        "delivery_id": "CRDS-1",
        "context": "roman_0001.pmap",
        "files": [{"uri": u, "reftype": r, "detector": d, "useafter": USEAFTER} for u, r, d in files],
        "accepted_at": NOW,
    }


def _archive(monitor: str | None = None, exposure_type: str = "WFI_IMAGE") -> dict:
    return {
        "uri": "/data/l2/wfi07_cal.asdf", "kind": "ImageModel", "detector": "WFI07", "exposure_type": exposure_type,
        "exposure_start": USEAFTER, "monitor": monitor, "release": None, "event_time": NOW,
    }


def test_crds_delivery_gives_one_request_per_file_and_monitor() -> None:
    delivery = _delivery(("/d/a.asdf", "DARK", "WFI01"), ("/d/b.asdf", "dark", "wfi02"))
    routed = route_crds(delivery, RoutingRules(), KNOWN, "live", NOW)
    assert routed.unrouted == []
    assert [(r["uri"], r["monitor"], r["detector"], r["kind"]) for r in routed.requests] == [
        ("/d/a.asdf", "dark", "WFI01", "DARK"), ("/d/b.asdf", "dark", "WFI02", "DARK")
    ]
    for request in routed.requests:
        avro.catalog().validate("monitor_request", request)
        assert request["delivery_id"] == "CRDS-1" and request["n_files_in_delivery"] == 2
        assert request["attempt"] == 1 and request["file_time"] == USEAFTER
    again = route_crds(delivery, RoutingRules(), KNOWN, "live", NOW)
    assert [r["request_id"] for r in again.requests] == [r["request_id"] for r in routed.requests]
    assert len({r["request_id"] for r in routed.requests}) == 2


def test_crds_files_without_a_monitor_or_with_an_unknown_one_are_unrouted() -> None:
    rules = RoutingRules(reftypes={"DARK": ["dark"], "FLAT": ["flat"]})
    delivery = _delivery(("/d/a.asdf", "DARK", "WFI01"), ("/d/f.asdf", "FLAT", "WFI01"), ("/d/m.asdf", "MASK", "WFI01"))
    routed = route_crds(delivery, rules, KNOWN, "live", NOW)
    assert [r["uri"] for r in routed.requests] == ["/d/a.asdf"]
    assert routed.requests[0]["n_files_in_delivery"] == 1
    assert len(routed.unrouted) == 2
    assert "/d/f.asdf" in routed.unrouted[0] and "unknown monitor 'flat' (known: dark)" in routed.unrouted[0]
    assert "/d/m.asdf" in routed.unrouted[1] and "no monitor for reftype 'MASK'" in routed.unrouted[1]


def test_archive_event_routes_to_its_monitor_or_by_exposure_type() -> None:
    named = route_archive(_archive(monitor="dark"), RoutingRules(), KNOWN, "live", NOW)
    assert [(r["monitor"], r["exposure_type"], r["kind"]) for r in named.requests] == [
        ("dark", "WFI_IMAGE", "ImageModel")
    ]
    # one exposure's 18 detector images form one burst: one delivery id, 18 results expected per monitor
    assert named.requests[0]["delivery_id"] == "exposure:WFI_IMAGE:2026-01-01T00:00:00.000"
    assert named.requests[0]["n_files_in_delivery"] == 18
    other_detector = route_archive(
        _archive(monitor="dark") | {"uri": "/data/l2/wfi08_cal.asdf", "detector": "WFI08"}, RoutingRules(), KNOWN,
        "live", NOW,
    )
    assert other_detector.requests[0]["delivery_id"] == named.requests[0]["delivery_id"]
    assert other_detector.requests[0]["request_id"] != named.requests[0]["request_id"]
    by_rule = route_archive(_archive(), RoutingRules(exposure_types={"WFI_IMAGE": ["dark"]}), KNOWN, "r2", NOW)
    assert [r["release"] for r in by_rule.requests] == ["r2"]
    none = route_archive(_archive(), RoutingRules(exposure_types={}), KNOWN, "live", NOW)
    assert none.requests == [] and "no monitor for exposure type 'WFI_IMAGE'" in none.unrouted[0]
    unknown = route_archive(_archive(monitor="nosuch"), RoutingRules(), KNOWN, "live", NOW)
    assert unknown.requests == [] and "unknown monitor 'nosuch'" in unknown.unrouted[0]


def test_ingest_outputs_put_requests_on_the_monitor_topic_and_reasons_on_unrouted() -> None:
    delivery = _delivery(("/d/a.asdf", "DARK", "WFI01"), ("/d/m.asdf", "MASK", "WFI03"))
    routed = route_crds(delivery, RoutingRules(), KNOWN, "live", NOW)
    origin = Origin("p.events.crds", 0, 41, b"CRDS-1", b"\xc3\x01raw")
    out = outputs(routed, Inbound(origin, avro.Decoded("crds_delivery", "1.0", delivery)), "p", NOW)
    assert [(o.topic, o.key, o.schema) for o in out] == [
        ("p.requests.dark", "WFI01", "monitor_request"), ("p.unrouted", "CRDS-1", "dead_letter")
    ]
    unrouted = out[1].record
    avro.catalog().validate("dead_letter", unrouted)
    assert (unrouted["topic"], unrouted["offset"], unrouted["value"]) == ("p.events.crds", 41, b"\xc3\x01raw")


def test_permanent_and_transient_errors() -> None:
    retry = RetrySettings(max_attempts=3, backoff_initial_s=0.5, backoff_max_s=1.5)
    assert is_permanent(InputError("/d/a.asdf", "file not found"))
    assert is_permanent(avro.SchemaError("not Avro")) and is_permanent(ConfigError("unknown monitor"))
    timeout = InputError("s3://b/a.asdf", "cannot read")
    timeout.__cause__ = TimeoutError("read timed out")
    assert not is_permanent(timeout)
    assert not is_permanent(StoreError("down")) and not is_permanent(OSError("timed out"))
    assert should_retry(OSError(), 2, retry) and not should_retry(OSError(), 3, retry)
    assert not should_retry(InputError("x", "corrupt"), 1, retry)
    assert [backoff_s(a, retry) for a in (1, 2, 3, 4)] == [0.5, 1.0, 1.5, 1.5]
    assert error_type(InputError("x", "y")) == "rdmt_core.errors.InputError"
    assert error_type(OSError()) == "OSError"
    assert one_line(InputError("/d/a.asdf", "file not found")) == "/d/a.asdf: file not found"
    assert one_line(ValueError("bad\nmore")) == "ValueError: bad"


def _runner(process, max_attempts: int = 3) -> tuple[ServiceRunner, list[float]]:
    waits: list[float] = []

    def sleep(seconds: float) -> bool:
        waits.append(seconds)
        return False

    settings = StreamingSettings(topic_prefix="p", retry=RetrySettings(max_attempts=max_attempts))
    runner = ServiceRunner("rdmt-test", settings, "g", {"p.events.crds": "crds_delivery"}, process, sleep=sleep)
    return runner, waits


def _origin(value: bytes | None) -> Origin:
    return Origin("p.events.crds", 2, 7, b"CRDS-1", value)


def _value() -> bytes:
    return avro.encode("crds_delivery", _delivery(("/d/a.asdf", "DARK", "WFI01")))


def _decode_dead(encoded) -> dict:
    assert encoded.topic == "p.deadletter" and encoded.key == b"CRDS-1"
    return avro.decode(encoded.value, "dead_letter").record


def test_runner_retries_transient_errors_with_backoff_then_succeeds() -> None:
    calls = []

    def process(inbound: Inbound) -> list[Output]:
        calls.append(inbound.message.record["delivery_id"])
        if len(calls) < 3:
            raise OSError("read timed out")
        return [Output("p.metrics", "WFI01", "crds_delivery", inbound.message.record)]

    runner, waits = _runner(process)
    (out,) = runner.handle(_origin(_value()))
    assert out.topic == "p.metrics" and out.key == b"WFI01"
    assert calls == ["CRDS-1"] * 3 and waits == [0.5, 1.0]


def test_runner_dead_letters_after_the_last_attempt_and_at_once_for_permanent_errors() -> None:
    def flaky(inbound: Inbound) -> list[Output]:
        raise OSError("read timed out")

    runner, waits = _runner(flaky)
    dead = _decode_dead(runner.handle(_origin(_value()))[0])
    assert (dead["attempts"], dead["error_type"], dead["error"]) == (3, "OSError", "OSError: read timed out")
    assert (dead["topic"], dead["partition"], dead["offset"], dead["value"]) == ("p.events.crds", 2, 7, _value())
    assert dead["service"] == "rdmt-test" and len(waits) == 2

    def corrupt(inbound: Inbound) -> list[Output]:
        raise InputError("/d/a.asdf", "cannot read array 'dark_slope' (ValueError: truncated)")

    runner, waits = _runner(corrupt)
    dead = _decode_dead(runner.handle(_origin(_value()))[0])
    assert dead["attempts"] == 1 and waits == []
    assert dead["error"] == "/d/a.asdf: cannot read array 'dark_slope' (ValueError: truncated)"
    assert dead["error_type"] == "rdmt_core.errors.InputError"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"not avro at all", "not Avro single-object encoded"),
        (None, "tombstone"),
        (b"\xc3\x01" + b"\x00" * 8 + b"x", "unknown schema fingerprint"),
    ],
)
def test_runner_dead_letters_messages_it_cannot_decode(value: bytes | None, reason: str) -> None:
    runner, _ = _runner(lambda inbound: pytest.fail("must not be called"))
    dead = _decode_dead(runner.handle(_origin(value))[0])
    assert reason in dead["error"] and dead["error_type"] == "rdmt_core.avro.SchemaError"


def test_runner_dead_letters_a_message_of_the_wrong_schema() -> None:
    runner, _ = _runner(lambda inbound: pytest.fail("must not be called"))
    wrong = avro.encode("archive_event", _archive())
    dead = _decode_dead(runner.handle(_origin(wrong))[0])
    assert "expected a crds_delivery message, got archive_event" in dead["error"]


def test_settings_from_file_section_and_environment_never_show_the_password() -> None:
    env = {"RDMT_KAFKA_BOOTSTRAP": "k1:9093,k2:9093", "RDMT_TOPIC_PREFIX": "test42",
           "RDMT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "RDMT_KAFKA_SASL_PASSWORD": "hunter2"}
    section = {"kafka": {"sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "rdmt", "ssl_ca_location": "/ca.pem"},
               "routing": {"exposure_types": {"WFI_DARK": ["dark"]}}}
    settings = streaming_settings(section, env)
    assert settings.topic_prefix == "test42"
    # reference types route by the registry (the section sets only exposure types)
    assert settings.routing.reftypes["DARK"] == ["dark"] and settings.routing.reftypes["FLAT"] == ["flat"]
    conf = settings.kafka.consumer("g", "c")
    assert conf["bootstrap.servers"] == "k1:9093,k2:9093" and conf["sasl.password"] == "hunter2"
    assert conf["enable.auto.offset.store"] is False and conf["max.poll.interval.ms"] >= 600_000
    assert conf["ssl.ca.location"] == "/ca.pem" and conf["security.protocol"] == "SASL_SSL"
    assert settings.kafka.producer("p")["enable.idempotence"] is True
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.kafka.describe())
    with pytest.raises(ConfigError, match="sasl_password must not be in a file"):
        streaming_settings({"kafka": {"sasl_password": "x"}}, {})
    with pytest.raises(ConfigError, match="group_protocol"):
        streaming_settings({}, {"RDMT_KAFKA_GROUP_PROTOCOL": "eager"})


def test_service_config_file_holds_both_the_monitor_config_and_the_streaming_section(tmp_path: Path) -> None:
    from rdmt_core.kafka.settings import load_service_config

    path = tmp_path / "service.yaml"
    path.write_text("release: r7\nstreaming:\n  topic_prefix: abc\n  retry:\n    max_attempts: 2\n")
    config, settings = load_service_config(path)
    assert config.release == "r7" and settings.retry.max_attempts == 2
    path.write_text("relase: r7\n")
    with pytest.raises(ConfigError, match=str(path)):
        load_service_config(path)


def test_topics_are_listed_once_and_documented() -> None:
    specs = topic_specs(["dark"])
    names = [s.name("rdmt") for s in specs]
    assert len(names) == len(set(names))
    assert {"rdmt.events.crds", "rdmt.events.archive", "rdmt.requests.dark", "rdmt.unrouted", "rdmt.metrics",
            "rdmt.evaluations", "rdmt.alerts", "rdmt.deadletter"} <= set(names)
    assert spec_for("requests.dark", specs).key == "detector"
    assert spec_for("alerts", specs).public
    for spec in specs:
        avro.schema(spec.schema)
        assert spec.broker_config()["retention.ms"] == str(spec.retention_days * 24 * 3600 * 1000)
    assert table("x", specs)[1][0] == "x.events.crds"
    assert topics_doc.PAGE.read_text() == topics_doc.render(), (
        "docs/topics.md is stale: run python -m rdmt_core.kafka.topics_doc"
    )


def test_subscriber_filters_and_json() -> None:
    record = {"monitor": "dark", "detector": "WFI07", "value": b"\x00\x01", "when": NOW, "x": float("nan")}
    assert matches(record, "dark", "wfi07") and not matches(record, "flat", None)
    assert not matches(record, None, "WFI01")
    alert = {"monitors": ["dark"], "detectors": [{"detector": "WFI07"}]}
    assert matches(alert, "dark", "WFI07") and not matches(alert, None, "WFI08")
    assert to_json(record) == {"monitor": "dark", "detector": "WFI07", "value": "AAE=",
                               "when": "2026-03-01T00:00:00+00:00", "x": None}


def test_json_lines_log_format() -> None:
    import json

    record = logging.makeLogRecord({"name": "rdmt.x", "levelname": "INFO", "msg": "hello %s", "args": ("you",),
                                    "attempt": 2})
    entry = json.loads(JsonLines("rdmt-test").format(record))
    assert entry["message"] == "hello you" and entry["service"] == "rdmt-test" and entry["attempt"] == 2
