"""The gain monitor: metrics against plain numpy loops, the amplifier whose gain jumped, bad values, the
reference border, full size."""

from __future__ import annotations

import numpy as np
import pytest

from rdmt_core.monitors import get_monitor
from rdmt_core.monitors.gain import GainOptions
from rdmt_core.monitors.gain.examples import (
    JUMP,
    JUMP_AMPLIFIER,
    REFERENCE_BORDER,
    example_arrays,
    reference_arrays,
)
from rdmt_core.monitors.gain.metrics import gain_metrics

from .reference_checks import FULL_SIZE_DETECTORS, check_deliveries, evaluate, fails

MONITOR = get_monitor("gain")


def _values(result) -> dict:
    return {m.spec.name: m.values for m in result.metrics}


def _science(side: int, border: int = REFERENCE_BORDER) -> np.ndarray:
    """True on the pixels inside the reference border."""
    science = np.zeros((side, side), dtype=bool)
    science[border : side - border, border : side - border] = True
    return science


def _plain(frame: np.ndarray, max_gain: float) -> dict[str, dict[str, np.ndarray]]:
    """Each metric at each scale by loops over the amplifier strips and super-pixel blocks (border left out)."""
    side = frame.shape[0]
    c = side // 32
    blocks = {
        "detector": [(slice(None), slice(None))],
        "amplifier": [(slice(None), slice(a * c, (a + 1) * c)) for a in range(32)],
        "superpixel": [(slice(i * c, (i + 1) * c), slice(j * c, (j + 1) * c)) for i in range(32) for j in range(32)],
    }
    science = _science(side)
    parts = {scale: [frame[b][science[b]] for b in cells] for scale, cells in blocks.items()}
    detector_median = np.median(parts["detector"][0][np.isfinite(parts["detector"][0])])
    out = {}
    for scale, cells in parts.items():
        good = [p[np.isfinite(p)] for p in cells]
        good = [g if g.size else np.array([np.nan]) for g in good]
        median = np.array([np.median(g) for g in good])
        out[scale] = {
            "gain_median": median,
            "gain_p1": np.array([np.percentile(g, 1) for g in good]),
            "gain_p99": np.array([np.percentile(g, 99) for g in good]),
            "n_bad_gain": np.array(
                [p.size - np.count_nonzero(np.isfinite(p) & (p > 0) & (p <= max_gain)) for p in cells]
            ),
        }
        if scale != "detector":
            out[scale]["gain_amp_offset"] = median / detector_median - 1.0
    return out


@pytest.mark.parametrize(("side", "detector", "seed"), [(256, "WFI02", 1), (512, "WFI17", 5)])
def test_metrics_at_the_three_scales_match_plain_numpy(side, detector, seed):
    frame = reference_arrays(detector, side, seed)["data"]
    got = _values(gain_metrics(frame, GainOptions()))
    for scale, metrics in _plain(frame, 5.0).items():
        for name, expected in metrics.items():
            np.testing.assert_allclose(got[name].at(scale), expected, rtol=1e-6, atol=1e-7, err_msg=f"{name} {scale}")
    assert np.isnan(got["gain_amp_offset"].detector)


def test_nan_infinite_and_non_physical_values():
    frame = reference_arrays("WFI09", 256, 3)["data"]
    frame[0:8, 0:8] = np.nan  # super-pixel 0: no finite pixel (16 inside the border)
    frame[100, 100], frame[101, 101], frame[102, 102] = np.inf, -np.inf, -1.0
    frame[103, 103], frame[104, 104] = 0.0, 7.0  # 0 and above max_gain (5)
    frame[105, 105] = 5.0  # at max_gain: physical
    got = _values(gain_metrics(frame, GainOptions()))
    for scale, metrics in _plain(frame, 5.0).items():
        for name, expected in metrics.items():
            value = got[name].at(scale)
            if scale == "superpixel" and name != "n_bad_gain":
                assert np.isnan(value[0]), name
                value, expected = value[1:], expected[1:]
            np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-7, err_msg=f"{name} {scale}")
    assert got["n_bad_gain"].superpixel[0] == 16
    original = reference_arrays("WFI09", 256, 3)["data"]
    bad = ~(np.isfinite(original) & (original > 0) & (original <= 5.0)) & _science(256)
    assert got["n_bad_gain"].detector == np.count_nonzero(bad) - np.count_nonzero(bad[0:8, 0:8]) + 16 + 5


@pytest.mark.parametrize("side", [256, 512])
def test_the_reference_border_changes_no_metric(side):
    """A border of 0, NaN or inf gives the metrics of the frame with a normal border; without the option, not."""
    frame = reference_arrays("WFI04", side, 2)["data"]
    border = ~_science(side)
    assert (frame[border] == 0).all()  # the examples' reference pixels
    normal = frame.copy()
    normal[border] = np.nanmedian(frame[~border])  # a border like the science pixels
    expected = _values(gain_metrics(normal, GainOptions()))
    for fill in (0.0, np.nan, np.inf, -1.0):
        odd = normal.copy()
        odd[border] = fill
        got = _values(gain_metrics(odd, GainOptions()))
        for name, values in expected.items():
            for scale in ("detector", "amplifier", "superpixel"):
                np.testing.assert_array_equal(got[name].at(scale), values.at(scale), err_msg=f"{fill} {name} {scale}")
    unbordered = _values(gain_metrics(frame, GainOptions(reference_border=0)))
    assert unbordered["n_bad_gain"].detector == expected["n_bad_gain"].detector + np.count_nonzero(border)
    assert unbordered["gain_p1"].amplifier[0] == 0.0 != expected["gain_p1"].amplifier[0]


def test_a_border_wider_than_half_the_frame_is_refused():
    with pytest.raises(ValueError, match="reference_border 32 does not fit"):
        gain_metrics(np.ones((64, 64), dtype=np.float32), GainOptions(reference_border=32))


def test_the_gain_jump_is_found_on_its_amplifier():
    clean = _values(MONITOR.compute(example_arrays(512, 2), GainOptions(), {}))
    jumped = _values(MONITOR.compute(example_arrays(512, 2, anomaly=True), GainOptions(), {}))
    ratio = jumped["gain_median"].amplifier / clean["gain_median"].amplifier
    assert ratio[JUMP_AMPLIFIER - 1] == pytest.approx(JUMP, rel=1e-4)
    assert np.delete(ratio, JUMP_AMPLIFIER - 1) == pytest.approx(1.0)
    offset = jumped["gain_amp_offset"].amplifier
    assert np.argmax(np.abs(offset)) == JUMP_AMPLIFIER - 1 and offset[JUMP_AMPLIFIER - 1] > 0.05
    result = evaluate("gain", "WFI01", 512, 2, anomaly=True)
    failing = {(b.metric, b.scale): set(b.cells[fails(b)].tolist()) for b in result.evaluations if fails(b).any()}
    assert failing[("gain_amp_offset", "amplifier")] == {JUMP_AMPLIFIER}
    columns = {cell % 32 for cell in failing[("gain_amp_offset", "superpixel")]}
    assert columns == {JUMP_AMPLIFIER - 1} and len(failing[("gain_amp_offset", "superpixel")]) == 32


def test_reference_arrays_fit_the_gain_model():
    from roman_datamodels import datamodels as dm

    arrays = reference_arrays("WFI12", 64, 1)
    model = dm.GainRefModel.create_fake_data(shape=(64, 64))
    assert set(arrays) == {"data"} and arrays["data"].dtype == model.data.dtype == np.float32
    model.data = arrays["data"]
    assert 1.7 < np.nanmedian(model.data) < 2.1


def test_clean_deliveries_pass_and_the_anomaly_fails_at_512():
    check_deliveries("gain", 512, "amplifier")


@pytest.mark.slow
def test_clean_deliveries_pass_and_the_anomaly_fails_at_full_size():
    # three detectors at full size; all 18 are checked at full size by `RDMT_REFERENCE_SIDE=4096
    # RDMT_REFERENCE_DETECTORS=all pytest tests/integration/test_reference_deliveries.py` and the demo
    check_deliveries("gain", 4096, "amplifier", FULL_SIZE_DETECTORS)
