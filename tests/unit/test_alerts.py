"""Alert grouping and the evaluator's record step (no broker)."""

from __future__ import annotations

from datetime import UTC, datetime

from rdmt_core import avro
from rdmt_core.alerts import (
    add_result,
    alert_record,
    format_alert,
    is_complete,
    is_overdue,
    result_summary,
)
from rdmt_core.config import load_config
from rdmt_core.evaluators import History
from rdmt_core.history import HistoryWindow, evaluate_record, window_capacity
from rdmt_core.monitors import get_monitor
from rdmt_core.records import FileIdentity
from rdmt_core.results import file_result
from rdmt_core.synthetic import Anomaly, dark_arrays
from rdmt_core.wire import metric_record

DETECTORS = ("WFI01", "WFI02", "WFI03")
CONFIG = load_config()


def _metric_record(detector: str, day: int, scale: float = 1.0, delivery: str = "d", release: str = "live") -> dict:
    rate, _, dq = dark_arrays(detector, side=256, delivery_seed=day, anomaly=Anomaly(dark_scale=scale))
    identity = FileIdentity(f"mem://{detector}", "DARK", detector, datetime(2026, 1, day))
    config = load_config(release=release)
    result = file_result(get_monitor("dark"), {"dark_slope": rate, "dq": dq}, identity, config, History(), "run")
    request = {"delivery_id": f"{delivery}{day}", "n_files_in_delivery": len(DETECTORS)}
    # Through Avro, as the evaluator reads it.
    return avro.decode(avro.encode("metric_record", metric_record(result, request, datetime.now(UTC)))).record


def _change(evaluation: dict, metric: str = "dark_rate_mean") -> str:
    [block] = [b for b in evaluation["evaluations"] if b["evaluator"] == "change" and b["metric"] == metric
               and b["scale"] == "detector"]  # fmt: skip
    return block["status"][0]


def _two_deliveries(release: str = "live") -> tuple[list[dict], list[dict]]:
    windows = {d: HistoryWindow(window_capacity(CONFIG, "dark", d)) for d in DETECTORS}
    out: tuple[list[dict], list[dict]] = ([], [])
    for i, day in enumerate((1, 2)):
        for detector in DETECTORS:
            record = _metric_record(detector, day, 1.5 if (day == 2 and detector == "WFI02") else 1.0, release=release)
            evaluation, values = evaluate_record(record, CONFIG, windows[detector])
            avro.catalog().validate("evaluation_record", evaluation)
            windows[detector].add(record["file_key"], record["file_time"], values)
            out[i].append(evaluation)
    return out


def test_change_needs_the_previous_delivery_and_finds_the_raised_detector() -> None:
    first, second = _two_deliveries()
    assert [_change(e) for e in first] == ["incomplete"] * 3
    assert [_change(e) for e in second] == ["pass", "fail", "pass"]


def test_one_alert_per_delivery_with_the_failing_detector() -> None:
    _, second = _two_deliveries()
    group = None
    for i, evaluation in enumerate(second):
        summary = result_summary(evaluation)
        group = add_result(group, summary, now_ms=1000 + i)
        group = add_result(group, summary, now_ms=2000)  # a redelivered result changes nothing
        assert is_complete(group) == (i == len(second) - 1)
    assert group is not None and group["first_seen_ms"] == 1000
    alert = alert_record(group)
    assert alert is not None
    avro.catalog().validate("alert", alert)
    assert alert["n_files"] == alert["n_files_expected"] == 3 and not alert["replay"]
    wfi02 = next(d for d in alert["detectors"] if d["detector"] == "WFI02")
    assert wfi02["fail_counts"]["change"] > 0
    assert wfi02["top_failures"][0]["scale"] == "detector"
    assert "changed +" in wfi02["top_failures"][0]["reason"]
    note = format_alert(alert)
    assert "WFI02" in note.failed_detectors and "d2" in note.title and "changed +" in note.text


def test_no_alert_without_failures_and_replays_are_flagged() -> None:
    first, _ = _two_deliveries(release="reprocess-2026a")
    group = None
    for evaluation in first:
        evaluation = evaluation | {"evaluations": [b for b in evaluation["evaluations"] if b["evaluator"] == "change"]}
        group = add_result(group, result_summary(evaluation), now_ms=0)
    assert group is not None and alert_record(group) is None
    failing = {
        "evaluator": "soc", "metric": "dark_rate_mean", "scale": "detector", "cells": [0], "status": ["fail"],
        "reference": [0.5], "threshold": 0.5, "reason": ["0.6 DN/s is above the soc limit 0.5 DN/s"],
    }  # fmt: skip
    group = add_result(group, result_summary(first[0] | {"evaluations": [failing]}), now_ms=0)
    alert = alert_record(group)
    assert alert is not None and alert["replay"] and alert["release"] == "reprocess-2026a"
    assert "[replay, release reprocess-2026a]" in format_alert(alert).title


def test_an_incomplete_delivery_is_overdue_after_the_timeout() -> None:
    _, second = _two_deliveries()
    group = add_result(None, result_summary(second[1]), now_ms=10_000)
    assert not is_complete(group)
    assert not is_overdue(group, now_ms=69_999, timeout_s=60)
    assert is_overdue(group, now_ms=70_000, timeout_s=60)
    alert = alert_record(group)
    assert alert is not None and (alert["n_files"], alert["n_files_expected"]) == (1, 3)
    assert "Only 1 of 3 results" in format_alert(alert).text
