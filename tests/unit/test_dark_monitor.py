"""The dark monitor: pixel classes, metric names, and the registry walk."""

from __future__ import annotations

import numpy as np
import pytest
from roman_datamodels import dqflags

from rdmt_core.geometry import N_AMPLIFIERS, N_SUPERPIXELS
from rdmt_core.monitors import Monitor, get_monitor, monitors_for, registered_monitors
from rdmt_core.monitors.dark import DarkOptions
from rdmt_core.monitors.dark.metrics import dark_metrics
from rdmt_core.pixel_masks import derived_specs
from rdmt_core.synthetic import dark_arrays


def _values(result) -> dict:
    return {m.spec.name: m.values for m in result.metrics}


def test_pixel_classes_from_thresholds_when_dq_sets_none():
    rate = np.full((64, 64), 0.005, dtype=np.float32)
    rate[0, 0:3] = [0.0, -0.1, 0.0009]  # dead (below 0.001)
    rate[10, 10:12] = [0.02, 0.0999]  # warm: [0.02, 0.1)
    rate[20, 20:23] = [0.1, 5.0, np.inf]  # hot: >= 0.1 (inf is not finite: ignored by stats, but >= hot)
    rate[30, 30] = np.nan  # in no class
    got = _values(dark_metrics(rate, np.zeros(rate.shape, np.uint32), DarkOptions()))
    assert got["n_dead_pixels"].detector == 3
    assert got["n_warm_pixels"].detector == 2
    assert got["n_hot_pixels"].detector == 3
    assert got["n_dead_pixels"].superpixel[0] == 2 and got["n_dead_pixels"].superpixel[1] == 1


def test_pixel_classes_from_dq_when_the_file_sets_them():
    rate = np.full((64, 64), 0.005, dtype=np.float32)
    rate[5, 5] = 3.0  # would be hot by threshold, but the file's DQ decides
    dq = np.zeros(rate.shape, np.uint32)
    dq[1, 1] = dqflags.pixel.DEAD
    dq[2, 2] = dqflags.pixel.HOT | dqflags.pixel.DO_NOT_USE
    dq[3, 3] = dqflags.pixel.WARM
    result = dark_metrics(rate, dq, DarkOptions())
    got = _values(result)
    assert (got["n_dead_pixels"].detector, got["n_hot_pixels"].detector, got["n_warm_pixels"].detector) == (
        1,
        1,
        1,
    )
    assert "DQ" in result.notes["pixel classes"]
    forced = _values(dark_metrics(rate, dq, DarkOptions(pixel_classes_from="thresholds")))
    assert forced["n_hot_pixels"].detector == 1 and forced["n_dead_pixels"].detector == 0


def test_rates_known_answers():
    rate, _, dq = dark_arrays("WFI03", side=256, delivery_seed=4)
    got = _values(dark_metrics(rate, dq, DarkOptions()))
    finite = rate[np.isfinite(rate)]
    assert got["dark_rate_mean"].detector == pytest.approx(finite.mean(dtype=np.float64), rel=1e-6)
    assert got["dark_rate_median"].detector == pytest.approx(np.median(finite), rel=1e-6)
    assert got["dark_rate_p99"].detector == pytest.approx(np.percentile(finite, 99), rel=1e-6)
    assert got["dark_rate_std"].detector == pytest.approx(finite.std(dtype=np.float64), rel=1e-6)
    np.testing.assert_array_equal(got["dark_rate_median"].superpixel, got["dark_rate_p50"].superpixel)
    assert got["n_hot_pixels"].detector == np.count_nonzero(dq & dqflags.pixel.HOT)


def test_options_must_be_ordered():
    with pytest.raises(ValueError, match="dead_below < warm_from < hot_from"):
        DarkOptions(warm_from=0.5, hot_from=0.1)


@pytest.mark.parametrize("name", sorted(registered_monitors()))
def test_every_registered_monitor_gives_1057_values_per_metric(name):
    monitor = get_monitor(name)
    arrays = monitor.example_arrays(side=256, seed=1)
    result = monitor.compute(arrays, monitor.options_model(), monitor.example_context(side=256, seed=1))
    # the metrics added after measuring (pixel changes since the previous file, cross-file checks) are not computed
    derived = derived_specs(monitor.name, monitor.tracked_pixels)
    assert [m.spec.name for m in result.metrics] == [s.name for s in monitor.metric_specs if s not in derived]
    for metric in result.metrics:
        sizes = [len(metric.values.at(s)) for s in ("detector", "amplifier", "superpixel")]
        assert sizes == [1, N_AMPLIFIERS, N_SUPERPIXELS]
        assert sum(sizes) == 1057
    assert all(monitor in monitors_for(kind) for kind in monitor.reftypes | monitor.model_types)


def test_registry_rejects_a_duplicate_name():
    with pytest.raises(TypeError, match="already registered"):

        class AnotherDark(Monitor):
            name = "dark"
            reftypes = frozenset({"DARK"})


def test_the_image_monitor_base_is_shared_not_registered():
    from rdmt_core.monitors import ImageMonitor

    assert ImageMonitor not in registered_monitors().values()
    level2 = [m for m in registered_monitors().values() if issubclass(m, ImageMonitor)]
    assert sorted(m.name for m in level2) == ["astrometry", "background", "one_over_f", "psf_shape"]
    assert all(m.border == 4 and m.accepts("ImageModel") and not m.accepts("DARK") for m in level2)
