"""Replay's pure part: a live request becomes a request of the release, with ids that cannot collide."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rdmt_core import avro
from rdmt_core.cli.replay import replay, replayed


def test_replayed_request_carries_the_release_and_new_ids():
    live = avro.catalog().samples("monitor_request", "1.0")[0]
    now = datetime(2026, 11, 1, tzinfo=UTC)
    again = replayed(live, "dr1", now)
    assert again["release"] == "dr1" and again["requested_at"] == now and again["attempt"] == 1
    assert again["request_id"] == f"dr1:{live['request_id']}" and again["delivery_id"] == f"dr1:{live['delivery_id']}"
    assert {
        k: v for k, v in again.items() if k not in {"release", "request_id", "delivery_id", "attempt", "requested_at"}
    } == {k: v for k, v in live.items() if k not in {"release", "request_id", "delivery_id", "attempt", "requested_at"}}
    avro.catalog().validate("monitor_request", again)


def test_a_replay_needs_its_own_release_name():
    with pytest.raises(ValueError, match="other than 'live'"):
        replay(None, ["dark"], datetime(2026, 1, 1), datetime(2026, 2, 1), "live")  # type: ignore[arg-type]
