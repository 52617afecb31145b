"""The saturation monitor: metrics against plain numpy loops, the region of lost dynamic range, flags, the
reference border, full size."""

from __future__ import annotations

import numpy as np
import pytest
from roman_datamodels import dqflags

from rdmt_core.monitors import get_monitor
from rdmt_core.monitors.saturation import SaturationOptions
from rdmt_core.monitors.saturation.examples import DROP, REFERENCE_BORDER, example_arrays, reference_arrays
from rdmt_core.monitors.saturation.metrics import saturation_metrics

from .reference_checks import FULL_SIZE_DETECTORS, check_deliveries, evaluate, fails

MONITOR = get_monitor("saturation")
NO_SAT_CHECK = int(dqflags.pixel.NO_SAT_CHECK)
DO_NOT_USE = int(dqflags.pixel.DO_NOT_USE)
REFERENCE_PIXEL = int(dqflags.pixel.REFERENCE_PIXEL)
DEFAULT_MASK = NO_SAT_CHECK | DO_NOT_USE | REFERENCE_PIXEL


def _values(result) -> dict:
    return {m.spec.name: m.values for m in result.metrics}


def _science(side: int, border: int = REFERENCE_BORDER) -> np.ndarray:
    """True on the pixels inside the reference border."""
    science = np.zeros((side, side), dtype=bool)
    science[border : side - border, border : side - border] = True
    return science


def _plain(data: np.ndarray, dq: np.ndarray, low_fraction: float, mask_bits: int) -> dict[str, dict[str, np.ndarray]]:
    """Each metric at each scale by loops over the amplifier strips and super-pixel blocks (border left out)."""
    c = data.shape[0] // 32
    science = _science(data.shape[0])
    blocks = {
        "detector": [(slice(None), slice(None))],
        "amplifier": [(slice(None), slice(a * c, (a + 1) * c)) for a in range(32)],
        "superpixel": [(slice(i * c, (i + 1) * c), slice(j * c, (j + 1) * c)) for i in range(32) for j in range(32)],
    }
    used = np.isfinite(data) & ((dq & mask_bits) == 0) & science
    threshold = low_fraction * np.median(data[used])
    out = {}
    for scale, cells in blocks.items():
        values = [data[b][used[b]] for b in cells]
        values = [v if v.size else np.array([np.nan]) for v in values]
        out[scale] = {
            "saturation_median": np.array([np.median(v) for v in values]),
            "saturation_p1": np.array([np.percentile(v, 1) for v in values]),
            "n_low_saturation": np.array([np.count_nonzero(v < threshold) for v in values]),
            "n_no_sat_check": np.array([np.count_nonzero(((dq[b] & NO_SAT_CHECK) != 0) & science[b]) for b in cells]),
        }
    return out


@pytest.mark.parametrize(("side", "detector", "seed"), [(256, "WFI03", 1), (512, "WFI14", 2)])
def test_metrics_at_the_three_scales_match_plain_numpy(side, detector, seed):
    arrays = reference_arrays(detector, side, seed)
    got = _values(saturation_metrics(arrays["data"], arrays["dq"], SaturationOptions()))
    for scale, metrics in _plain(arrays["data"], arrays["dq"], 0.8, DEFAULT_MASK).items():
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
    for scale, metrics in _plain(data, dq, 0.8, DEFAULT_MASK).items():
        for name, expected in metrics.items():
            np.testing.assert_allclose(got[name].at(scale), expected, rtol=1e-6, err_msg=f"{name} {scale}")
    assert np.isnan(got["saturation_median"].superpixel[0]) and got["n_low_saturation"].superpixel[0] == 0
    # NO_SAT_CHECK pixels hold 0: counted as low saturation once they are no longer masked
    unmasked = _values(saturation_metrics(data, dq, SaturationOptions(mask_dq_flags=("DO_NOT_USE",))))
    extra = unmasked["n_low_saturation"].detector - got["n_low_saturation"].detector
    assert extra == np.count_nonzero(((dq & NO_SAT_CHECK) != 0) & ((dq & DO_NOT_USE) == 0) & _science(256))
    assert "flagged" in result.notes["used pixels"]
    # a flagged reference pixel inside the border option's frame is left out by its flag
    narrow = SaturationOptions(reference_border=0)
    assert _values(saturation_metrics(data, dq, narrow))["saturation_p1"].amplifier[0] == pytest.approx(
        got["saturation_p1"].amplifier[0], rel=1e-3
    )


@pytest.mark.parametrize("side", [256, 512])
def test_the_reference_border_changes_no_metric(side):
    """A border of 0 or NaN, flagged or not (even NO_SAT_CHECK), gives the metrics of the frame with a normal one."""
    arrays = reference_arrays("WFI10", side, 2)
    data, dq = arrays["data"], arrays["dq"]
    border = ~_science(side)
    assert (data[border] == 0).all() and (dq[border] == REFERENCE_PIXEL).all()  # the examples' reference pixels
    normal_data, normal_dq = data.copy(), dq.copy()
    normal_data[border], normal_dq[border] = np.nanmedian(data[~border]), 0  # a border like the science pixels
    expected = _values(saturation_metrics(normal_data, normal_dq, SaturationOptions()))
    for fill, flags in ((0.0, REFERENCE_PIXEL), (0.0, 0), (np.nan, 0), (0.0, NO_SAT_CHECK), (1.0e6, DO_NOT_USE)):
        odd_data, odd_dq = normal_data.copy(), normal_dq.copy()
        odd_data[border], odd_dq[border] = fill, flags
        got = _values(saturation_metrics(odd_data, odd_dq, SaturationOptions()))
        for name, values in expected.items():
            for scale in ("detector", "amplifier", "superpixel"):
                np.testing.assert_array_equal(got[name].at(scale), values.at(scale), err_msg=f"{fill} {name} {scale}")
    # the old default (no REFERENCE_PIXEL, no border option) counted the border as low saturation
    old = _values(
        saturation_metrics(
            data, dq, SaturationOptions(mask_dq_flags=("DO_NOT_USE", "NO_SAT_CHECK"), reference_border=0)
        )
    )
    assert old["n_low_saturation"].detector == expected["n_low_saturation"].detector + np.count_nonzero(border)


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
    result = evaluate("saturation", "WFI01", side, 1, anomaly=True)
    failing = [b for b in result.evaluations if b.metric == "n_low_saturation" and b.scale == "superpixel"]
    assert set(failing[0].cells[fails(failing[0])].tolist()) == region


def test_reference_arrays_fit_the_saturation_model():
    from roman_datamodels import datamodels as dm

    arrays = reference_arrays("WFI18", 64, 1)
    model = dm.SaturationRefModel.create_fake_data(shape=(64, 64))
    assert set(arrays) == {"data", "dq"}
    assert arrays["data"].dtype == model.data.dtype and arrays["dq"].dtype == model.dq.dtype
    assert 55000 < np.nanmedian(arrays["data"]) < 65535


def test_clean_deliveries_pass_and_the_anomaly_fails_at_512():
    check_deliveries("saturation", 512, "superpixel")


@pytest.mark.slow
def test_clean_deliveries_pass_and_the_anomaly_fails_at_full_size():
    # three detectors at full size; all 18 are checked at full size by `RDMT_REFERENCE_SIDE=4096
    # RDMT_REFERENCE_DETECTORS=all pytest tests/integration/test_reference_deliveries.py` and the demo
    check_deliveries("saturation", 4096, "superpixel", FULL_SIZE_DETECTORS)
