"""The bias monitor: every metric at its scales against plain numpy loops over the cells; the anomaly."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.stats import sigma_clipped_stats
from roman_datamodels import dqflags

from rdmt_core.monitors.bias import BiasMonitor, BiasOptions
from rdmt_core.monitors.bias.examples import reference_arrays
from rdmt_core.monitors.bias.metrics import bias_metrics

LEFT_OUT = dqflags.pixel.DO_NOT_USE | dqflags.pixel.REFERENCE_PIXEL


def _values(result) -> dict:
    return {m.spec.name: m.values for m in result.metrics}


def _clipped_std(v: np.ndarray) -> float:
    """The reference clipping: the std of astropy's ``sigma_clipped_stats`` (3 sigma, 5 iterations)."""
    return float(sigma_clipped_stats(v.astype(np.float64))[2]) if v.size else np.nan


def _rms(profile: np.ndarray) -> float:
    profile = profile[np.isfinite(profile)]
    return float(np.sqrt(np.mean((profile - profile.mean()) ** 2)))


def _mean(x: np.ndarray, axis: int) -> np.ndarray:
    """Mean of the finite values along ``axis``; NaN where there is none (without numpy's warning)."""
    finite = np.isfinite(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(finite, x, 0.0).sum(axis=axis) / finite.sum(axis=axis)


def _used(data: np.ndarray, dq: np.ndarray) -> np.ndarray:
    """``data`` in float64 with NaN where a pixel is left out (flagged or not finite)."""
    out = data.astype(np.float64)
    out[((dq & LEFT_OUT) != 0) | ~np.isfinite(data)] = np.nan
    return out


def _expected(data: np.ndarray, dq: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    used = _used(data, dq)
    side = data.shape[0]
    cell = side // 32

    def finite(block: np.ndarray) -> np.ndarray:
        return block[np.isfinite(block)]

    sp_median, sp_std = np.full(1024, np.nan), np.full(1024, np.nan)
    for by in range(32):
        for bx in range(32):
            block = finite(used[by * cell : (by + 1) * cell, bx * cell : (bx + 1) * cell])
            if block.size:
                sp_median[by * 32 + bx] = np.median(block)
                sp_std[by * 32 + bx] = _clipped_std(block)
    amp = {k: np.full(32, np.nan) for k in ("median", "std", "even", "odd", "rows", "cols")}
    for a in range(32):
        strip = used[:, a * cell : (a + 1) * cell]
        v = finite(strip)
        amp["median"][a], amp["std"][a] = np.median(v), _clipped_std(v)
        amp["even"][a], amp["odd"][a] = np.median(finite(strip[:, 0::2])), np.median(finite(strip[:, 1::2]))
        amp["rows"][a] = _rms(_mean(strip, axis=1))
        amp["cols"][a] = _rms(_mean(strip, axis=0))
    every = finite(used)
    offset = amp["even"] - amp["odd"]
    return {
        "bias_median": {"detector": np.median(every), "amplifier": amp["median"], "superpixel": sp_median},
        "bias_std": {"detector": _clipped_std(every), "amplifier": amp["std"], "superpixel": sp_std},
        "bias_even_median": {"amplifier": amp["even"]},
        "bias_odd_median": {"amplifier": amp["odd"]},
        "bias_even_odd_offset": {"detector": np.max(np.abs(offset)), "amplifier": offset},
        "bias_row_profile_rms": {"detector": _rms(_mean(used, axis=1)), "amplifier": amp["rows"]},
        "bias_column_profile_rms": {"detector": _rms(_mean(used, axis=0)), "amplifier": amp["cols"]},
    }


def _spoiled(side: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Example superbias with extra NaN, +inf, flagged outliers and a wholly flagged super-pixel."""
    arrays = reference_arrays("WFI03", side, delivery_seed=4)
    data, dq = arrays["data"], arrays["dq"]
    data[40, 41] = np.inf  # not finite, not flagged: left out
    data[50, 60] = np.nan
    data[70, 70] = 60000.0  # flagged DO_NOT_USE: left out although finite
    dq[70, 70] |= dqflags.pixel.DO_NOT_USE
    cell = side // 32
    dq[5 * cell : 6 * cell, 7 * cell : 8 * cell] |= dqflags.pixel.DO_NOT_USE  # super-pixel 167: no value
    return data, dq


def test_metrics_match_plain_numpy_at_every_scale():
    data, dq = _spoiled()
    got = _values(bias_metrics(data, dq, BiasOptions()))
    for metric, scales in _expected(data, dq).items():
        for scale, expected in scales.items():
            value = got[metric].at(scale)
            # medians are exact; the clipped std sums in float64; the profiles sum rows of float32 in float32
            rtol = 1e-9 if "median" in metric or "offset" in metric else 1e-6 if "std" in metric else 1e-4
            np.testing.assert_allclose(
                value, np.atleast_1d(expected), rtol=rtol, atol=1e-6, err_msg=f"{metric} {scale}"
            )
    assert np.isnan(got["bias_median"].superpixel[5 * 32 + 7]) and np.isnan(got["bias_std"].superpixel[5 * 32 + 7])
    # metrics not defined at a scale are NaN there
    assert np.isnan(got["bias_even_median"].detector) and np.isnan(got["bias_row_profile_rms"].superpixel).all()


def test_left_out_pixels_do_not_move_the_statistics():
    data, dq = _spoiled(128)
    base = _values(bias_metrics(data, dq, BiasOptions()))
    wild = data.copy()
    flagged = (dq & LEFT_OUT) != 0
    wild[flagged] = -1.0e6  # any value under a DO_NOT_USE or REFERENCE_PIXEL flag is ignored
    moved = _values(bias_metrics(wild, dq, BiasOptions()))
    for name in base:
        for scale in ("detector", "amplifier", "superpixel"):
            np.testing.assert_array_equal(base[name].at(scale), moved[name].at(scale))


def test_the_even_odd_anomaly_is_found_in_amplifier_5_only():
    clean = _values(BiasMonitor.compute(BiasMonitor.example_arrays(512, 1), BiasOptions(), {}))
    bad = _values(BiasMonitor.compute(BiasMonitor.example_arrays(512, 1, anomaly=True), BiasOptions(), {}))
    change = bad["bias_even_odd_offset"].amplifier - clean["bias_even_odd_offset"].amplifier
    assert change[4] == pytest.approx(-60.0, abs=1.0)  # odd columns of amplifier 5 raised by 60 DN
    assert np.all(np.abs(np.delete(change, 4)) < 0.5)
    assert bad["bias_even_odd_offset"].detector > 50 > clean["bias_even_odd_offset"].detector


def test_an_amplifier_offset_shows_in_the_amplifier_median_and_the_detector_column_profile():
    arrays = reference_arrays("WFI02", 256, delivery_seed=1)
    data, dq = arrays["data"], arrays["dq"]
    before = _values(bias_metrics(data, dq, BiasOptions()))
    data[:, 8 * 3 : 8 * 4] += 300.0  # amplifier 4 of a 256-pixel frame (8-column strips)
    after = _values(bias_metrics(data, dq, BiasOptions()))
    assert after["bias_median"].amplifier[3] - before["bias_median"].amplifier[3] == pytest.approx(300.0, abs=0.01)
    assert after["bias_column_profile_rms"].detector != before["bias_column_profile_rms"].detector


def test_a_frame_whose_side_is_not_divisible_by_64_is_refused():
    with pytest.raises(ValueError, match="divisible by 64"):
        bias_metrics(np.zeros((96, 96), np.float32), np.zeros((96, 96), np.uint32), BiasOptions())


def test_reference_arrays_have_the_models_arrays_and_dtypes():
    from roman_datamodels import datamodels as dm

    model = dm.SuperbiasRefModel.create_fake_data(shape=(64, 64))
    arrays = reference_arrays("WFI18", 64, delivery_seed=2)
    assert model.meta.reftype in BiasMonitor.reftypes
    for name, array in arrays.items():
        assert array.dtype == getattr(model, name).dtype and array.shape == (64, 64)
        setattr(model, name, array)
    again = reference_arrays("WFI18", 64, delivery_seed=3)
    np.testing.assert_array_equal(arrays["dq"], again["dq"])  # the detector's bad pixels: every delivery
    assert not np.array_equal(arrays["data"], again["data"], equal_nan=True)  # its noise: not


@pytest.mark.slow
def test_full_size_matches_plain_numpy_for_the_detector_and_amplifiers():
    arrays = reference_arrays("WFI09", 4096, delivery_seed=1)
    data, dq = arrays["data"], arrays["dq"]
    got = _values(bias_metrics(data, dq, BiasOptions()))
    used = _used(data, dq)
    every = used[np.isfinite(used)]
    assert got["bias_median"].detector == pytest.approx(np.median(every), rel=1e-9)
    assert got["bias_std"].detector == pytest.approx(_clipped_std(every), rel=1e-6)
    for a in (0, 17, 31):
        strip = used[:, a * 128 : (a + 1) * 128]
        even = strip[:, 0::2]
        assert got["bias_even_median"].amplifier[a] == pytest.approx(np.median(even[np.isfinite(even)]), rel=1e-9)
        assert got["bias_column_profile_rms"].amplifier[a] == pytest.approx(_rms(_mean(strip, axis=0)), rel=1e-4)
