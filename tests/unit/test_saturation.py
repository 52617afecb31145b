"""The saturation monitor: metrics against plain numpy loops, the region of lost dynamic range, flags, full size."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from roman_datamodels import dqflags

from rdmt_core.config import load_config
from rdmt_core.evaluators import History
from rdmt_core.geometry import DETECTORS
from rdmt_core.monitors import get_monitor
from rdmt_core.monitors.saturation import SaturationOptions
from rdmt_core.monitors.saturation.examples import DROP, example_arrays, reference_arrays
from rdmt_core.monitors.saturation.metrics import saturation_metrics
from rdmt_core.records import FileIdentity, Status
from rdmt_core.results import file_result

MONITOR = get_monitor("saturation")
NO_SAT_CHECK = int(dqflags.pixel.NO_SAT_CHECK)
DO_NOT_USE = int(dqflags.pixel.DO_NOT_USE)


def _values(result) -> dict:
    return {m.spec.name: m.values for m in result.metrics}


def _plain(data: np.ndarray, dq: np.ndarray, low_fraction: float, mask_bits: int) -> dict[str, dict[str, np.ndarray]]:
    """Each metric at each scale by loops over the amplifier strips and super-pixel blocks."""
    c = data.shape[0] // 32
    blocks = {
        "detector": [(slice(None), slice(None))],
        "amplifier": [(slice(None), slice(a * c, (a + 1) * c)) for a in range(32)],
        "superpixel": [(slice(i * c, (i + 1) * c), slice(j * c, (j + 1) * c)) for i in range(32) for j in range(32)],
    }
    used = np.isfinite(data) & ((dq & mask_bits) == 0)
    threshold = low_fraction * np.median(data[used])
    out = {}
    for scale, cells in blocks.items():
        values = [data[b][used[b]] for b in cells]
        values = [v if v.size else np.array([np.nan]) for v in values]
        out[scale] = {
            "saturation_median": np.array([np.median(v) for v in values]),
            "saturation_p1": np.array([np.percentile(v, 1) for v in values]),
            "n_low_saturation": np.array([np.count_nonzero(v < threshold) for v in values]),
            "n_no_sat_check": np.array([np.count_nonzero(dq[b] & NO_SAT_CHECK) for b in cells]),
        }
    return out


@pytest.mark.parametrize(("side", "detector", "seed"), [(256, "WFI03", 1), (512, "WFI14", 2)])
def test_metrics_at_the_three_scales_match_plain_numpy(side, detector, seed):
    arrays = reference_arrays(detector, side, seed)
    got = _values(saturation_metrics(arrays["data"], arrays["dq"], SaturationOptions()))
    for scale, metrics in _plain(arrays["data"], arrays["dq"], 0.8, NO_SAT_CHECK | DO_NOT_USE).items():
        for name, expected in metrics.items():
            np.testing.assert_allclose(got[name].at(scale), expected, rtol=1e-6, err_msg=f"{name} {scale}")


def test_flagged_and_nan_pixels_are_left_out():
    arrays = reference_arrays("WFI06", 256, 4)
    data, dq = arrays["data"], arrays["dq"]
    assert np.count_nonzero(dq & NO_SAT_CHECK) > 0 and (data[(dq & NO_SAT_CHECK) != 0] == 0).all()
    data[0:8, 0:8] = 100.0
    dq[0:8, 0:8] |= DO_NOT_USE  # super-pixel 0: every pixel flagged
    data[50, 50], data[51, 51] = np.nan, np.inf  # not flagged, not finite
    result = saturation_metrics(data, dq, SaturationOptions())
    got = _values(result)
    for scale, metrics in _plain(data, dq, 0.8, NO_SAT_CHECK | DO_NOT_USE).items():
        for name, expected in metrics.items():
            np.testing.assert_allclose(got[name].at(scale), expected, rtol=1e-6, err_msg=f"{name} {scale}")
    assert np.isnan(got["saturation_median"].superpixel[0]) and got["n_low_saturation"].superpixel[0] == 0
    # NO_SAT_CHECK pixels hold 0: counted as low saturation once they are no longer masked
    unmasked = _values(saturation_metrics(data, dq, SaturationOptions(mask_dq_flags=("DO_NOT_USE",))))
    extra = unmasked["n_low_saturation"].detector - got["n_low_saturation"].detector
    assert extra == np.count_nonzero(((dq & NO_SAT_CHECK) != 0) & ((dq & DO_NOT_USE) == 0))
    assert "flagged" in result.notes["used pixels"]


def test_unknown_flag_names_are_rejected():
    with pytest.raises(ValueError, match="unknown DQ flag"):
        SaturationOptions(mask_dq_flags=("NO_SATCHECK",))


def test_the_low_region_is_found_where_it_is_injected():
    side = 512
    clean = _values(MONITOR.compute(example_arrays(side, 1), SaturationOptions(), {}))
    low = _values(MONITOR.compute(example_arrays(side, 1, anomaly=True), SaturationOptions(), {}))
    start, size, c = side // 4, side // 8, side // 32
    region = {(start // c + i) * 32 + start // c + j for i in range(size // c) for j in range(size // c)}
    changed = set(np.nonzero(low["saturation_median"].superpixel != clean["saturation_median"].superpixel)[0].tolist())
    assert changed == region
    ratio = low["saturation_median"].superpixel[sorted(region)] / clean["saturation_median"].superpixel[sorted(region)]
    np.testing.assert_allclose(ratio, DROP, rtol=1e-3)
    assert (low["n_low_saturation"].superpixel[sorted(region)] == c * c).all()
    result = _evaluate("WFI01", side, 1, anomaly=True)
    failing = [b for b in result.evaluations if b.metric == "n_low_saturation" and b.scale == "superpixel"]
    assert set(failing[0].cells[_fails(failing[0])].tolist()) == region


def test_reference_arrays_fit_the_saturation_model():
    from roman_datamodels import datamodels as dm

    arrays = reference_arrays("WFI18", 64, 1)
    model = dm.SaturationRefModel.create_fake_data(shape=(64, 64))
    assert set(arrays) == {"data", "dq"}
    assert arrays["data"].dtype == model.data.dtype and arrays["dq"].dtype == model.dq.dtype
    assert 55000 < np.nanmedian(arrays["data"]) < 65535


def _fails(block) -> np.ndarray:
    return np.asarray(block.status, dtype=str) == Status.FAIL.value


def _evaluate(detector: str, side: int, seed: int, anomaly: bool = False, history: History | None = None):
    identity = FileIdentity(f"/x/{detector}.asdf", "SATURATION", detector, datetime(2027, 1, 1 + seed, tzinfo=UTC))
    arrays = reference_arrays(detector, side, seed, anomaly)
    return file_result(MONITOR, arrays, identity, load_config(), history or History(), "test")


def _failing(result) -> set[str]:
    return {f"{b.evaluator}/{b.metric}/{b.scale}" for b in result.evaluations if _fails(b).any()}


def _as_history(result) -> History:
    return History({(m.spec.name, s): m.values.at(s)[None, :] for m in result.metrics for s in m.spec.scales})


def check_deliveries(side: int) -> None:
    """Clean deliveries 1 and 2 of every detector fail nothing (empty history, and 2 against 1), the region fails."""
    for detector in DETECTORS:
        first = _evaluate(detector, side, 1)
        second = _evaluate(detector, side, 2, history=_as_history(first))
        assert not _failing(first) and not _failing(second), (detector, _failing(first), _failing(second))
        assert any(b.evaluator == "change" for b in second.evaluations)
    assert f"soc/{MONITOR.anomaly.metric}/superpixel" in _failing(_evaluate("WFI01", side, 1, anomaly=True))


def test_clean_deliveries_pass_and_the_anomaly_fails_at_512():
    check_deliveries(512)


@pytest.mark.slow
def test_clean_deliveries_pass_and_the_anomaly_fails_at_full_size():
    check_deliveries(4096)
