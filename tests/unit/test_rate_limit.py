"""The notifier's rate limit: a sliding window, with a count of what was held back."""

from __future__ import annotations

import pytest

from rdmt_core.alerts import RateLimit


def test_sliding_window_holds_back_the_excess_and_counts_it():
    limit = RateLimit(max_per_window=2, window_s=60.0)
    assert limit.allow(0.0) and limit.allow(10.0)
    assert not limit.allow(20.0) and not limit.allow(59.0)
    assert limit.held_back == 2
    assert limit.allow(60.0)  # the first one left the window
    assert limit.take_held_back() == 2 and limit.held_back == 0
    assert not limit.allow(65.0)
    assert limit.allow(70.0)  # the second one (t=10) left the window


def test_a_limit_allows_at_least_one():
    with pytest.raises(ValueError, match="at least 1"):
        RateLimit(0)
