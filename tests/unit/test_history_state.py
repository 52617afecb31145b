"""The evaluator's history window and the metric-record conversions (no broker)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from rdmt_core.evaluators import History
from rdmt_core.history import (
    HistoryWindow,
    pack_values,
    to_millis,
    unpack_values,
    values_of,
)
from rdmt_core.monitors import get_monitor
from rdmt_core.wire import metric_entries, metrics_from_record


def _values(level: float) -> dict:
    return {
        ("dark_rate_mean", "detector"): np.array([level]),
        ("dark_rate_mean", "amplifier"): np.full(32, level),
        ("dark_rate_mean", "superpixel"): np.full(1024, level),
    }


def _t(day: int) -> datetime:
    return datetime(2026, 1, day, tzinfo=UTC)


def _levels(history: History) -> list[float]:
    return list(history.values[("dark_rate_mean", "detector")][:, 0]) if history.values else []


def test_metric_record_round_trip() -> None:
    dark = get_monitor("dark")
    metrics = dark.compute(dark.example_arrays(256, seed=3), dark.options_model(), {}).metrics
    record = {"monitor": "dark", "file_key": "DARK/WFI01/x", "metrics": metric_entries(metrics)}
    back = metrics_from_record(record)
    assert [m.spec for m in back] == [m.spec for m in metrics]  # description restored from the registry
    for a, b in zip(metrics, back, strict=True):
        for scale in ("detector", "amplifier", "superpixel"):
            np.testing.assert_array_equal(a.values.at(scale), b.values.at(scale))


def test_metric_record_with_wrong_cell_count_is_rejected() -> None:
    entry = {"metric": "m", "unit": "DN/s", "extensive": False, "detector": 1.0, "amplifier": [1.0] * 31,
             "superpixel": [1.0] * 1024}  # fmt: skip
    with pytest.raises(ValueError, match="31 amplifier values, expected 32"):
        metrics_from_record({"monitor": "dark", "file_key": "DARK/WFI01/x", "metrics": [entry]})


def test_pack_round_trip_keeps_nan() -> None:
    values = _values(0.005)
    values["dark_rate_mean", "superpixel"][7] = np.nan
    back = unpack_values(pack_values(values))
    assert back.keys() == values.keys()
    for name in values:
        np.testing.assert_array_equal(back[name], values[name])


def test_history_before_is_ordered_by_time_and_excludes_the_file() -> None:
    window = HistoryWindow(capacity=5)
    window.add("k3", _t(3), _values(3.0))
    window.add("k1", _t(1), _values(1.0))  # late: goes before k3
    window.add("k2", _t(2), _values(2.0))
    assert [d.file_key for d in window.deliveries] == ["k1", "k2", "k3"]
    assert _levels(window.history_before(_t(3), "k3")) == [1.0, 2.0]
    assert _levels(window.history_before(_t(9), "k2")) == [1.0, 3.0]
    assert window.history_before(_t(1), "k1").previous("dark_rate_mean", "detector") is None


def test_redelivery_replaces_and_is_idempotent() -> None:
    window = HistoryWindow(capacity=3)
    window.add("k1", _t(1), _values(1.0))
    assert window.add("k1", _t(1), _values(1.5)) == []
    assert len(window) == 1
    assert _levels(window.history_before(_t(2), "k2")) == [1.5]


def test_capacity_drops_the_oldest() -> None:
    window = HistoryWindow(capacity=2)
    assert window.add("k1", _t(1), _values(1.0)) == []
    assert window.add("k2", _t(2), _values(2.0)) == []
    assert window.add("k3", _t(3), _values(3.0)) == ["k1"]
    assert window.add("k0", datetime(2025, 12, 31, tzinfo=UTC), _values(0.0)) == ["k0"]  # older than all kept
    assert [d.file_key for d in window.deliveries] == ["k2", "k3"]


def test_rebuilt_from_index_and_blobs() -> None:
    window = HistoryWindow(capacity=4)
    blobs = {}
    for day in (2, 1, 3):
        key = f"k{day}"
        window.add(key, _t(day), _values(float(day)))
        blobs[key] = pack_values(window.values(key))
    again = HistoryWindow.from_index(4, window.index(), lambda key: unpack_values(blobs[key]))
    assert again.index() == window.index() == [[to_millis(_t(d)), f"k{d}"] for d in (1, 2, 3)]
    assert _levels(again.history_before(_t(3), "k3")) == [1.0, 2.0]


def test_values_of_metrics_feed_the_history() -> None:
    dark = get_monitor("dark")
    metrics = dark.compute(dark.example_arrays(256, seed=1), dark.options_model(), {}).metrics
    window = HistoryWindow(capacity=2)
    window.add("k1", _t(1), values_of(metrics))
    history = window.history_before(_t(2), "k2")
    np.testing.assert_array_equal(history.previous(metrics[0].spec.name, "superpixel"), metrics[0].values.superpixel)
