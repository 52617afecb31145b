"""The readnoise monitor: metrics against plain numpy loops, the noisy amplifier, NaN pixels, the reference
border, full size."""

from __future__ import annotations

import numpy as np
import pytest

from rdmt_core.monitors import get_monitor
from rdmt_core.monitors.readnoise import ReadnoiseOptions
from rdmt_core.monitors.readnoise.examples import (
    NOISY_AMPLIFIER,
    REFERENCE_BORDER,
    example_arrays,
    reference_arrays,
)
from rdmt_core.monitors.readnoise.metrics import readnoise_metrics

from .reference_checks import FULL_SIZE_DETECTORS, check_deliveries, evaluate, fails

MONITOR = get_monitor("readnoise")
# Percentiles are exact; the clipped moments are summed from float32 deviations (rdmt_core.measure.clipped)
RTOL = {"readnoise_median": 1e-6, "readnoise_p99": 1e-6, "readnoise_amp_spread": 1e-6, "n_noisy_pixels": 0}
RTOL |= {"readnoise_mean": 1e-6, "readnoise_std": 2e-5}


def _values(result) -> dict:
    return {m.spec.name: m.values for m in result.metrics}


def _amplifiers(frame: np.ndarray) -> list[np.ndarray]:
    width = frame.shape[1] // 32
    return [frame[:, a * width : (a + 1) * width] for a in range(32)]


def _superpixels(frame: np.ndarray) -> list[np.ndarray]:
    c = frame.shape[0] // 32
    return [frame[i * c : (i + 1) * c, j * c : (j + 1) * c] for i in range(32) for j in range(32)]


def _clipped(values: np.ndarray, sigma: float = 3.0, maxiters: int = 5) -> tuple[float, float, float]:
    """Mean, median, std of the sigma-clipped finite values: each pass clips what the previous one kept."""
    kept = values[np.isfinite(values)].astype(np.float64)
    if kept.size == 0:
        return np.nan, np.nan, np.nan
    for _ in range(maxiters):
        median, std = np.median(kept), kept.std()
        keep = np.abs(kept - median) <= sigma * std
        if keep.all():
            break
        kept = kept[keep]
    return kept.mean(), np.median(kept), kept.std()


def _without_border(frame: np.ndarray, border: int = REFERENCE_BORDER) -> np.ndarray:
    """A copy of ``frame`` with NaN (skipped by every plain statistic below) in the reference border."""
    out = np.full_like(frame, np.nan)
    out[border:-border, border:-border] = frame[border:-border, border:-border]
    return out


def _plain(frame: np.ndarray, noisy_factor: float) -> dict[str, dict[str, np.ndarray]]:
    """Each metric at each scale by loops over the amplifier strips and super-pixel blocks (border left out)."""
    frame = _without_border(frame)
    finite = frame[np.isfinite(frame)]
    threshold = noisy_factor * np.median(finite)
    out: dict[str, dict[str, np.ndarray]] = {}
    for scale, parts in (("detector", [frame]), ("amplifier", _amplifiers(frame)), ("superpixel", _superpixels(frame))):
        good = [p[np.isfinite(p)] for p in parts]
        good = [g if g.size else np.array([np.nan]) for g in good]
        clipped = np.array([_clipped(g) for g in good])
        out[scale] = {
            "readnoise_median": np.array([np.median(g) for g in good]),
            "readnoise_p99": np.array([np.percentile(g, 99) for g in good]),
            "readnoise_mean": clipped[:, 0],
            "readnoise_std": clipped[:, 2],
            "n_noisy_pixels": np.array([np.count_nonzero(p[np.isfinite(p)] > threshold) for p in parts]),
        }
    amp_medians = out["amplifier"]["readnoise_median"]
    out["detector"]["readnoise_amp_spread"] = np.array([amp_medians.max() - amp_medians.min()])
    return out


@pytest.mark.parametrize(("side", "detector", "seed"), [(256, "WFI01", 1), (512, "WFI11", 4)])
def test_metrics_at_the_three_scales_match_plain_numpy(side, detector, seed):
    frame = reference_arrays(detector, side, seed)["data"]
    got = _values(readnoise_metrics(frame, ReadnoiseOptions()))
    for scale, metrics in _plain(frame, 2.0).items():
        for name, expected in metrics.items():
            np.testing.assert_allclose(got[name].at(scale), expected, rtol=RTOL[name], err_msg=f"{name} {scale}")
    assert (
        np.isnan(got["readnoise_amp_spread"].amplifier).all() and np.isnan(got["readnoise_amp_spread"].superpixel).all()
    )


def test_nan_and_infinite_pixels_are_left_out_and_an_empty_cell_is_nan():
    frame = reference_arrays("WFI05", 256, 2)["data"]
    frame[0:8, 0:8] = np.nan  # super-pixel 0 empty
    frame[100, 100], frame[101, 101], frame[200, 5] = np.inf, -np.inf, np.nan
    got = _values(readnoise_metrics(frame, ReadnoiseOptions(noisy_factor=1.5)))
    for scale, metrics in _plain(frame, 1.5).items():
        for name, expected in metrics.items():
            value = got[name].at(scale)
            if scale == "superpixel":
                assert np.isnan(value[0]) or name == "n_noisy_pixels", name
                value, expected = value[1:], expected[1:]
            np.testing.assert_allclose(value, expected, rtol=RTOL[name], err_msg=f"{name} {scale}")
    assert got["n_noisy_pixels"].superpixel[0] == 0
    n_finite = np.count_nonzero(np.isfinite(_without_border(frame)))
    assert readnoise_metrics(frame, ReadnoiseOptions()).notes["finite pixels"] == f"{n_finite} of {248 * 248}"


@pytest.mark.parametrize("side", [256, 512])
def test_the_reference_border_changes_no_metric(side):
    """A border of 0, NaN or inf gives the metrics of the frame with a normal border; without the option, not."""
    frame = reference_arrays("WFI08", side, 1)["data"]
    border = np.isnan(_without_border(np.zeros_like(frame)))
    assert (frame[border] == 0).all()  # the examples' reference pixels
    normal = frame.copy()
    normal[border] = np.nanmedian(frame[~border])  # a border like the science pixels
    expected = _values(readnoise_metrics(normal, ReadnoiseOptions()))
    for fill in (0.0, np.nan, np.inf, 1.0e4):
        odd = normal.copy()
        odd[border] = fill
        got = _values(readnoise_metrics(odd, ReadnoiseOptions()))
        for name, values in expected.items():
            for scale in ("detector", "amplifier", "superpixel"):
                np.testing.assert_array_equal(got[name].at(scale), values.at(scale), err_msg=f"{fill} {name} {scale}")
    unbordered = _values(readnoise_metrics(frame, ReadnoiseOptions(reference_border=0)))
    assert unbordered["readnoise_median"].superpixel[0] < 0.97 * expected["readnoise_median"].superpixel[0]


def test_the_noisy_amplifier_is_found_where_it_is_injected():
    clean = _values(MONITOR.compute(example_arrays(512, 3), ReadnoiseOptions(), {}))
    noisy = _values(MONITOR.compute(example_arrays(512, 3, anomaly=True), ReadnoiseOptions(), {}))
    ratio = noisy["readnoise_median"].amplifier / clean["readnoise_median"].amplifier
    assert ratio[NOISY_AMPLIFIER - 1] == pytest.approx(1.5, rel=1e-3)
    assert np.delete(ratio, NOISY_AMPLIFIER - 1) == pytest.approx(1.0)
    assert np.argmax(noisy["readnoise_median"].amplifier) == NOISY_AMPLIFIER - 1
    assert noisy["readnoise_amp_spread"].detector > 1.5 > 0.9 * 1.5 > clean["readnoise_amp_spread"].detector
    result = evaluate("readnoise", "WFI01", 512, 3, anomaly=True)
    failing_amps = {
        int(c) for b in result.evaluations if b.scale == "amplifier" for c in b.cells[fails(b)]
    }  # fmt: skip
    assert failing_amps <= {NOISY_AMPLIFIER}


def test_delivery_structure_is_fixed_and_noise_is_not():
    a, b = reference_arrays("WFI03", 256, 1)["data"], reference_arrays("WFI03", 256, 2)["data"]
    other = reference_arrays("WFI04", 256, 1)["data"]
    assert a.dtype == np.float32 and a.shape == (256, 256)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    assert not np.array_equal(np.isnan(a), np.isnan(other))
    measured = np.isfinite(a) & (a > 0)  # the reference border holds 0
    ratio = b[measured] / a[measured]
    assert 0.01 < ratio.std() < 0.05  # the 2 % estimation scatter of each delivery, twice
    assert 5.0 <= np.nanmedian(a) <= 7.5


def test_clean_deliveries_pass_and_the_anomaly_fails_at_512():
    check_deliveries("readnoise", 512, "detector", change_passes=True)


@pytest.mark.slow
def test_clean_deliveries_pass_and_the_anomaly_fails_at_full_size():
    # three detectors at full size; all 18 are checked at full size by `RDMT_REFERENCE_SIDE=4096
    # RDMT_REFERENCE_DETECTORS=all pytest tests/integration/test_reference_deliveries.py` and the demo
    check_deliveries("readnoise", 4096, "detector", FULL_SIZE_DETECTORS, change_passes=True)
