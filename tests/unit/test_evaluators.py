"""Each evaluator gives each status for the right reason."""

from __future__ import annotations

import numpy as np
import pytest

from rdmt_core.config import (
    ChangeEvaluatorConfig,
    EvaluatorsConfig,
    ScaleLimit,
    TrendEvaluatorConfig,
    load_config,
)
from rdmt_core.evaluators import (
    History,
    evaluate_absolute,
    evaluate_change,
    evaluate_metrics,
    evaluate_trend,
    scaled_limit,
)
from rdmt_core.geometry import Geometry
from rdmt_core.measure.blockstats import ScaleValues
from rdmt_core.monitors.dark.options import METRICS
from rdmt_core.records import Metric, MetricSpec

RATE = MetricSpec("dark_rate_mean", "DN/s", "mean")
COUNT = MetricSpec("n_hot_pixels", "pixels", "hot", extensive=True)
PIXELS = Geometry(4096).pixels_per_cell()


def test_absolute_statuses_and_reasons():
    values = np.array([0.5, 0.95, 1.5, np.nan])
    status, reason = evaluate_absolute("mission", values, np.full(4, 1.0), 0.9, "DN/s")
    assert list(status) == ["pass", "caution", "fail", "incomplete"]
    assert "above the mission limit 1 DN/s" in reason[2]
    assert reason[3].startswith("no value")


def test_count_limits_scale_with_pixel_count_unless_configured():
    assert scaled_limit(1_000_000, COUNT, "detector", PIXELS)[0] == 1_000_000
    np.testing.assert_allclose(scaled_limit(1_000_000, COUNT, "amplifier", PIXELS), 1_000_000 / 32)
    np.testing.assert_allclose(scaled_limit(1_000_000, COUNT, "superpixel", PIXELS), 1_000_000 / 1024)
    np.testing.assert_allclose(scaled_limit(1.0, RATE, "superpixel", PIXELS), 1.0)  # rates do not scale
    explicit = ScaleLimit(detector=10, superpixel=3)
    np.testing.assert_allclose(scaled_limit(explicit, COUNT, "superpixel", PIXELS), 3)
    np.testing.assert_allclose(scaled_limit(explicit, COUNT, "amplifier", PIXELS), 10 / 32)
    level2 = Geometry(4096, border=4).pixels_per_cell()
    assert scaled_limit(1024.0, COUNT, "superpixel", level2)[0] == pytest.approx(1024 * 124 * 124 / 4088**2)


def test_change_statuses():
    config = ChangeEvaluatorConfig(tolerance=0.1, caution_fraction=0.5)
    values = np.array([1.0, 1.07, 1.2, 0.5, 3.0, np.nan, 5.0])
    previous = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, np.nan])
    status, reason, reference = evaluate_change(values, previous, config, min_abs=0.0)
    assert list(status) == ["pass", "caution", "fail", "fail", "fail", "incomplete", "incomplete"]
    assert "changed +20.0% from 1 to 1.2" in reason[2]
    np.testing.assert_array_equal(reference[:5], previous[:5])
    status, *_ = evaluate_change(np.array([3.0]), np.array([1.0]), config, min_abs=2.0)
    assert status[0] == "pass"  # a change of 2 pixels is within min_abs_change


def test_change_is_incomplete_without_a_previous_delivery():
    status, reason, reference = evaluate_change(np.ones(3), None, ChangeEvaluatorConfig(), 0.0)
    assert set(status) == {"incomplete"} and reason[0] == "no previous delivery" and np.isnan(reference).all()


def test_trend_is_quiet_until_enough_history_then_flags_outliers():
    config = TrendEvaluatorConfig(min_history=5, caution_z=3, fail_z=5, min_sigma_fraction=0.0)
    rng = np.random.default_rng(0)
    history = 1.0 + 0.01 * rng.standard_normal((4, 3))
    status, reason, _ = evaluate_trend(np.array([1.0, 5.0, 1.0]), history, config, 0.0)
    assert set(status) == {"incomplete"} and "4 of 5 deliveries" in reason[1]
    history = 1.0 + 0.01 * rng.standard_normal((8, 3))
    mad_sigma = 1.4826 * np.median(np.abs(history[:, 0] - np.median(history[:, 0])))
    values = np.median(history, axis=0) + np.array([0.0, 4.0, 100.0]) * np.array(
        [mad_sigma, mad_sigma, mad_sigma]
    )
    status, reason, reference = evaluate_trend(values, history, config, 0.0)
    assert status[0] == "pass" and status[2] == "fail"
    np.testing.assert_allclose(reference, np.median(history, axis=0))
    assert reason[2].startswith("z = +")


def test_evaluate_metrics_covers_every_metric_scale_and_evaluator():
    config = load_config().evaluators_for("dark", "WFI01")
    metrics = [Metric(spec, ScaleValues(0.005, np.full(32, 0.005), np.full(1024, 0.005))) for spec in METRICS]
    blocks = evaluate_metrics(metrics, config, History(), PIXELS)
    keys = {(b.evaluator, b.metric, b.scale) for b in blocks}
    # dark_rate_std has no absolute limit by default: change and trend only
    assert ("mission", "dark_rate_std", "detector") not in keys
    assert ("change", "dark_rate_std", "superpixel") in keys
    assert len(keys) == len(blocks) == 3 * (8 * 4 + 2)
    mission = next(
        b for b in blocks if (b.evaluator, b.metric, b.scale) == ("mission", "n_hot_pixels", "superpixel")
    )
    assert mission.threshold == pytest.approx(1_000_000 / 1024)


def test_disabled_evaluators_give_no_rows():
    config = EvaluatorsConfig.model_validate({"change": {"enabled": False}, "trend": {"enabled": False}})
    metrics = [Metric(RATE, ScaleValues(0.005, np.zeros(32), np.zeros(1024)))]
    assert evaluate_metrics(metrics, config, History(), PIXELS) == []


def _only_absolute(**mission: object) -> EvaluatorsConfig:
    return EvaluatorsConfig.model_validate(
        {"mission": mission, "soc": {"enabled": False}, "change": {"enabled": False}, "trend": {"enabled": False}}
    )


def test_lower_and_upper_limits_give_one_block_with_the_worse_verdict_per_cell():
    level = MetricSpec("background_level", "DN/s", "level")
    config = _only_absolute(limits={"background_level": 2.0}, lower_limits={"background_level": 0.5})
    amplifier = np.array([0.3, 0.52, 1.0, 1.9, 2.5, np.nan] + [1.0] * 26)
    blocks = evaluate_metrics([Metric(level, ScaleValues(1.0, amplifier, np.ones(1024)))], config, History(), PIXELS)
    assert {(b.evaluator, b.scale) for b in blocks} == {("mission", s) for s in ("detector", "amplifier", "superpixel")}
    amp = next(b for b in blocks if b.scale == "amplifier")
    # 0.52 < 0.5 + 0.1 * 0.5 is close to the lower limit; 1.9 > 0.9 * 2 is close to the upper one
    assert list(amp.status[:6]) == ["fail", "caution", "pass", "caution", "fail", "incomplete"]
    assert list(amp.reference[:5]) == [0.5, 0.5, 2.0, 2.0, 2.0]
    assert "below the mission lower limit 0.5" in amp.reason[0]
    assert "above the mission limit 2" in amp.reason[4]


def test_two_sided_metrics_are_compared_by_magnitude():
    offset = MetricSpec("offset_ra_mean", "arcsec", "mean RA offset", two_sided=True)
    config = _only_absolute(limits={"offset_ra_mean": 0.05})
    values = ScaleValues(-0.06, np.array([0.06, -0.01] + [0.0] * 30), np.zeros(1024))
    blocks = evaluate_metrics([Metric(offset, values)], config, History(), PIXELS)
    detector = next(b for b in blocks if b.scale == "detector")
    amp = next(b for b in blocks if b.scale == "amplifier")
    assert detector.status[0] == "fail" and "(magnitude)" in detector.reason[0]
    assert list(amp.status[:2]) == ["fail", "pass"]


def test_metrics_are_evaluated_only_at_their_scales():
    common = MetricSpec("common_mode_ratio", "", "common mode", scales=("detector",))
    config = EvaluatorsConfig.model_validate({"mission": {"limits": {"common_mode_ratio": 3.0}}})
    values = ScaleValues(1.0, np.full(32, np.nan), np.full(1024, np.nan))
    blocks = evaluate_metrics([Metric(common, values)], config, History(), PIXELS)
    assert {b.scale for b in blocks} == {"detector"}
    assert {b.evaluator for b in blocks} == {"mission", "change", "trend"}
