"""The flat monitor: every metric at every scale against plain numpy loops over the cells; the anomaly."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.stats import sigma_clipped_stats
from roman_datamodels import dqflags

from rdmt_core.monitors.flat import FlatMonitor, FlatOptions
from rdmt_core.monitors.flat.examples import reference_arrays
from rdmt_core.monitors.flat.metrics import flat_metrics

LEFT_OUT = dqflags.pixel.DO_NOT_USE | dqflags.pixel.REFERENCE_PIXEL


def _values(result) -> dict:
    return {m.spec.name: m.values for m in result.metrics}


def _clipped_std(v: np.ndarray) -> float:
    """The reference clipping: the std of astropy's ``sigma_clipped_stats`` (3 sigma, 5 iterations)."""
    return float(sigma_clipped_stats(v.astype(np.float64))[2]) if v.size else np.nan


def _cell(values: np.ndarray, dq: np.ndarray) -> dict[str, float]:
    v = values[((dq & LEFT_OUT) == 0) & np.isfinite(values)].astype(np.float64)
    low_qe = float(np.count_nonzero(dq & dqflags.pixel.LOW_QE))
    if v.size == 0:
        return {"flat_median": np.nan, "flat_std": np.nan, "flat_p1": np.nan, "flat_p99": np.nan, "n_low_qe": low_qe}
    return {
        "flat_median": np.median(v),
        "flat_std": _clipped_std(v),
        "flat_p1": np.percentile(v, 1),
        "flat_p99": np.percentile(v, 99),
        "n_low_qe": low_qe,
    }


def _expected(data: np.ndarray, dq: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    side = data.shape[0]
    c = side // 32
    detector = _cell(data, dq)
    amps = [_cell(data[:, a * c : (a + 1) * c], dq[:, a * c : (a + 1) * c]) for a in range(32)]
    cells = [
        _cell(data[y * c : (y + 1) * c, x * c : (x + 1) * c], dq[y * c : (y + 1) * c, x * c : (x + 1) * c])
        for y in range(32)
        for x in range(32)
    ]
    return {
        name: {
            "detector": np.array([detector[name]]),
            "amplifier": np.array([a[name] for a in amps]),
            "superpixel": np.array([s[name] for s in cells]),
        }
        for name in detector
    }


def _spoiled(side: int = 256) -> tuple[np.ndarray, np.ndarray]:
    arrays = reference_arrays("WFI06", side, delivery_seed=2, optical_element="F087")
    data, dq = arrays["data"], arrays["dq"]
    data[30, 31] = -np.inf  # not finite, not flagged: left out
    data[60, 61] = np.nan
    data[90, 91] = 50.0  # flagged DO_NOT_USE: left out although finite
    dq[90, 91] |= dqflags.pixel.DO_NOT_USE
    c = side // 32
    dq[9 * c : 10 * c, 3 * c : 4 * c] |= dqflags.pixel.DO_NOT_USE  # super-pixel 291: no value
    return data, dq


def test_metrics_match_plain_numpy_at_every_scale():
    data, dq = _spoiled()
    got = _values(flat_metrics(data, dq, FlatOptions()))
    for name, scales in _expected(data, dq).items():
        for scale, expected in scales.items():
            rtol = 1e-6 if name == "flat_std" else 1e-9  # percentiles are exact; the std sums in float64
            np.testing.assert_allclose(got[name].at(scale), expected, rtol=rtol, atol=1e-9, err_msg=f"{name} {scale}")
    assert np.isnan(got["flat_median"].superpixel[9 * 32 + 3])


def test_left_out_pixels_do_not_move_the_statistics():
    data, dq = _spoiled(128)
    base = _values(flat_metrics(data, dq, FlatOptions()))
    wild = data.copy()
    wild[(dq & LEFT_OUT) != 0] = 1.0e9
    moved = _values(flat_metrics(wild, dq, FlatOptions()))
    for name in base:
        for scale in ("detector", "amplifier", "superpixel"):
            np.testing.assert_array_equal(base[name].at(scale), moved[name].at(scale))


def test_the_low_qe_patch_is_found_where_injected():
    clean = _values(FlatMonitor.compute(FlatMonitor.example_arrays(512, 1), FlatOptions(), {}))
    bad = _values(FlatMonitor.compute(FlatMonitor.example_arrays(512, 1, anomaly=True), FlatOptions(), {}))
    dropped = (clean["flat_p1"].superpixel - bad["flat_p1"].superpixel).reshape(32, 32)
    rows, cols = np.nonzero(dropped > 0.1)
    # a 100x100 patch from pixel (256, 256): super-pixels 16..22 (16-pixel cells), the last partly
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (16, 22, 16, 22)
    assert np.all(bad["flat_p1"].superpixel.reshape(32, 32)[16:22, 16:22] < 0.7)
    assert bad["flat_median"].superpixel.reshape(32, 32)[18, 18] < 0.7 < clean["flat_median"].superpixel.min()


def test_the_optical_element_changes_the_pattern_mildly_and_the_defects_not_at_all():
    blue = reference_arrays("WFI04", 256, delivery_seed=1, optical_element="F062")
    red = reference_arrays("WFI04", 256, delivery_seed=1, optical_element="F213")
    np.testing.assert_array_equal(blue["dq"], red["dq"])
    sci = np.s_[4:-4, 4:-4]
    used = ((blue["dq"][sci] & LEFT_OUT) == 0) & np.isfinite(blue["data"][sci])
    ratio = blue["data"][sci][used] / red["data"][sci][used]
    assert 0.9 < np.median(ratio) < 1.1 and np.std(ratio) < 0.05
    science = blue["data"][sci][(blue["dq"][sci] & LEFT_OUT) == 0]
    assert np.nanmedian(science) == pytest.approx(1.0, abs=0.002)
    assert 0.01 < np.nanstd(science) < 0.05


def test_reference_arrays_have_the_models_arrays_and_dtypes():
    from roman_datamodels import datamodels as dm

    model = dm.FlatRefModel.create_fake_data(shape=(64, 64))
    arrays = reference_arrays("WFI14", 64, delivery_seed=1)
    assert model.meta.reftype in FlatMonitor.reftypes
    assert set(arrays) == {"data", "err", "dq"}
    for name, array in arrays.items():
        assert array.dtype == getattr(model, name).dtype and array.shape == (64, 64)
        setattr(model, name, array)


@pytest.mark.slow
def test_full_size_matches_plain_numpy_for_the_detector_and_amplifiers():
    arrays = reference_arrays("WFI16", 4096, delivery_seed=1, anomaly=True)
    data, dq = arrays["data"], arrays["dq"]
    got = _values(flat_metrics(data, dq, FlatOptions()))
    expected = _cell(data, dq)
    for name, value in expected.items():
        assert got[name].detector == pytest.approx(value, rel=1e-6 if name == "flat_std" else 1e-9)
    for a in (0, 16, 31):
        strip = np.s_[:, a * 128 : (a + 1) * 128]
        for name, value in _cell(data[strip], dq[strip]).items():
            assert got[name].amplifier[a] == pytest.approx(value, rel=1e-6 if name == "flat_std" else 1e-9)
