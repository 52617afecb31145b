"""The notifier's DeliveryGrouper on heartbeat ticks, with a dict for quixstreams' state store."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from rdmt_core import avro
from rdmt_core.alerts import format_alert
from rdmt_core.kafka import delivery_groups
from rdmt_core.kafka.delivery_groups import OPEN, TICK, DeliveryGrouper, tick_every_s
from rdmt_core.kafka.settings import ServiceOptions

TIMEOUT_S = 60.0


class Store:
    """One partition's store: ``(prefix, key) -> value``, and every write in order."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], Any] = {}
        self.writes: list[tuple[str, str]] = []

    def as_state(self, prefix: str) -> SimpleNamespace:
        def get(key: str, default: Any = None) -> Any:
            return self.data.get((prefix, key), default)

        def set_(key: str, value: Any) -> None:
            self.data[prefix, key] = value
            self.writes.append((prefix, key))

        return SimpleNamespace(get=get, set=set_)


class Clock:
    def __init__(self, now_s: float) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def grouper(monkeypatch: pytest.MonkeyPatch) -> tuple[DeliveryGrouper, Store, Clock]:
    store, clock = Store(), Clock(1000.0)
    checkpoint = SimpleNamespace(get_store_transaction=lambda stream_id, partition: store)
    grouped = SimpleNamespace(processing_context=SimpleNamespace(checkpoint=checkpoint), stream_id="s")
    monkeypatch.setattr(delivery_groups, "message_context", lambda: SimpleNamespace(partition=0))
    options = ServiceOptions(alert_timeout_s=TIMEOUT_S)
    return DeliveryGrouper(grouped, options, report_url=None, clock=clock), store, clock  # type: ignore[arg-type]


def _summary(delivery: str, detector: str, failing: bool) -> dict[str, Any]:
    return {
        "delivery_id": delivery, "n_files_in_delivery": 3, "release": "live", "monitor": "dark",
        "detector": detector, "file_key": f"{delivery}/{detector}.asdf",
        "fail_counts": {"soc": 1} if failing else {},
        "failures": [["dark_rate_mean", "soc", "detector", 1, "7 DN/s is above the soc limit 1 DN/s"]] if failing
        else [],
    }  # fmt: skip


def _feed(grouper: DeliveryGrouper, store: Store, key: str, value: dict[str, Any]) -> list[dict]:
    return grouper(value, key, 0, None, store.as_state(key))


def test_a_tick_closes_the_overdue_delivery_and_keeps_no_state(grouper) -> None:
    grouper, store, clock = grouper
    assert _feed(grouper, store, "D1", _summary("D1", "WFI01", failing=True)) == []
    assert _feed(grouper, store, "D1", _summary("D1", "WFI02", failing=False)) == []  # 2 of 3: WFI03 is lost
    writes = len(store.writes)

    clock.now_s += TIMEOUT_S - 1
    assert _feed(grouper, store, TICK, {"tick_ms": 0}) == []  # not yet overdue
    assert len(store.writes) == writes  # a tick that closes nothing writes nothing

    clock.now_s += 1
    [alert] = _feed(grouper, store, TICK, {"tick_ms": 0})
    avro.catalog().validate("alert", alert)
    assert alert["delivery_id"] == "D1" and (alert["n_files"], alert["n_files_expected"]) == (2, 3)
    assert [d["detector"] for d in alert["detectors"]] == ["WFI01"]  # the tick is not a result
    assert "Only 2 of 3 results" in format_alert(alert).text
    assert store.data[OPEN, "open"] == {}
    assert store.data["D1", "group"] == {
        "closed": True, "n_results": 2, "alerted": True, "n_expected": 3,
        "seen": ["dark|D1/WFI01.asdf", "dark|D1/WFI02.asdf"],  # so a late result is told from a redelivered one
    }  # fmt: skip

    clock.now_s += 10 * TIMEOUT_S
    assert _feed(grouper, store, TICK, {"tick_ms": 0}) == []  # closed stays closed
    assert not any(TICK in (prefix, key) for prefix, key in store.data)  # no state under the tick's key


def test_a_failing_result_after_the_delivery_closed_gets_a_follow_up_alert(grouper) -> None:
    """The evaluator was down longer than the alert timeout: its late results still alert, once each."""
    grouper, store, clock = grouper
    assert _feed(grouper, store, "D1", _summary("D1", "WFI01", failing=False)) == []
    clock.now_s += TIMEOUT_S
    assert _feed(grouper, store, TICK, {"tick_ms": 0}) == []  # closed with 1 of 3 results, nothing failed

    [late] = _feed(grouper, store, "D1", _summary("D1", "WFI02", failing=True))
    avro.catalog().validate("alert", late)
    assert late["late"] is True and late["delivery_id"] == "D1"
    assert (late["n_files"], late["n_files_expected"]) == (1, 3)
    assert [d["detector"] for d in late["detectors"]] == ["WFI02"]
    text = format_alert(late)
    assert "Follow-up" in text.text and "1 late result)" in text.title
    assert _feed(grouper, store, "D1", _summary("D1", "WFI02", failing=True)) == []  # redelivered: once only
    assert _feed(grouper, store, "D1", _summary("D1", "WFI03", failing=False)) == []  # late but clean
    assert store.data["D1", "group"]["n_results"] == 3
    assert _feed(grouper, store, "D1", _summary("D1", "WFI01", failing=True)) == []  # grouped before closing


def test_a_tick_leaves_deliveries_within_the_timeout_open(grouper) -> None:
    grouper, store, clock = grouper
    _feed(grouper, store, "D1", _summary("D1", "WFI01", failing=True))
    clock.now_s += TIMEOUT_S / 2
    _feed(grouper, store, "D2", _summary("D2", "WFI01", failing=True))
    clock.now_s += TIMEOUT_S / 2
    [alert] = _feed(grouper, store, TICK, {"tick_ms": 0})
    assert alert["delivery_id"] == "D1"
    assert set(store.data[OPEN, "open"]) == {"D2"}
    assert _feed(grouper, store, "D2", _summary("D2", "WFI02", failing=False)) == []  # D2 still grouping


def test_ticks_every_quarter_of_the_timeout_but_at_most_every_second() -> None:
    assert tick_every_s(ServiceOptions(alert_timeout_s=900)) == 225
    assert tick_every_s(ServiceOptions(alert_timeout_s=2)) == 1
