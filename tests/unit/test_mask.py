"""The mask monitor: flag counts and the operable fraction against plain numpy loops over the cells."""

from __future__ import annotations

import numpy as np
import pytest
from roman_datamodels import dqflags

from rdmt_core.monitors.mask import MaskMonitor, MaskOptions
from rdmt_core.monitors.mask.examples import reference_arrays
from rdmt_core.monitors.mask.metrics import mask_metrics
from rdmt_core.monitors.mask.options import MASK_FLAGS, count_metric

INOPERABLE = dqflags.pixel.DO_NOT_USE | dqflags.pixel.DEAD | dqflags.pixel.HOT | dqflags.pixel.NON_SCIENCE
REFERENCE = dqflags.pixel.REFERENCE_PIXEL


def _values(result) -> dict:
    return {m.spec.name: m.values for m in result.metrics}


def _expected(dq: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Counts and operable fractions by looping over super-pixel blocks and amplifier strips."""
    side = dq.shape[0]
    cell = side // 32
    wide = dq.astype(np.int64)

    def cell_values(block: np.ndarray) -> dict[str, float]:
        out = {count_metric(f): float(np.count_nonzero(block & int(dqflags.pixel[f]))) for f in MASK_FLAGS}
        science = (block & REFERENCE) == 0
        n_science = np.count_nonzero(science)
        operable = np.count_nonzero(science & ((block & INOPERABLE) == 0))
        out["operable_fraction"] = operable / n_science if n_science else np.nan
        return out

    detector = cell_values(wide)
    amplifiers = [cell_values(wide[:, a * cell : (a + 1) * cell]) for a in range(32)]
    superpixels = [
        cell_values(wide[by * cell : (by + 1) * cell, bx * cell : (bx + 1) * cell])
        for by in range(32)
        for bx in range(32)
    ]
    return {
        name: {
            "detector": np.array([detector[name]]),
            "amplifier": np.array([a[name] for a in amplifiers]),
            "superpixel": np.array([s[name] for s in superpixels]),
        }
        for name in detector
    }


def _spoiled(side: int = 256) -> np.ndarray:
    dq = reference_arrays("WFI05", side, delivery_seed=3)["dq"]
    cell = side // 32
    dq[2 * cell : 3 * cell, 4 * cell : 5 * cell] |= REFERENCE  # a whole super-pixel of reference pixels: no fraction
    dq[100, 101] |= dqflags.pixel.NON_SCIENCE | dqflags.pixel.BAD_REF_PIXEL | dqflags.pixel.UNRELIABLE_RESET
    dq[7, 9] |= dqflags.pixel.SATURATED  # an exposure flag: counted by no metric, harmless
    return dq


def test_counts_and_operable_fraction_match_plain_numpy_at_every_scale():
    dq = _spoiled()
    got = _values(mask_metrics(dq, MaskOptions()))
    for name, scales in _expected(dq).items():
        for scale, expected in scales.items():
            np.testing.assert_allclose(got[name].at(scale), expected, rtol=1e-12, err_msg=f"{name} {scale}")
    assert np.isnan(got["operable_fraction"].superpixel[2 * 32 + 4])
    assert got["n_reference_pixel"].detector == np.count_nonzero(dq & REFERENCE)


def test_a_signed_dq_array_counts_the_sign_bit_as_reference_pixel():
    dq = _spoiled(128)
    signed = dq.view(np.int32)
    assert (signed < 0).any()
    unsigned = _values(mask_metrics(dq, MaskOptions()))
    as_signed = _values(mask_metrics(signed, MaskOptions()))
    for name in unsigned:
        np.testing.assert_array_equal(unsigned[name].superpixel, as_signed[name].superpixel)


def test_the_options_choose_the_inoperable_and_reference_flags():
    dq = np.zeros((64, 64), np.uint32)
    dq[0, 0] = dqflags.pixel.WARM
    dq[1, 1] = dqflags.pixel.REFERENCE_PIXEL | dqflags.pixel.DEAD  # a reference pixel: left out
    default = _values(mask_metrics(dq, MaskOptions()))
    assert default["operable_fraction"].detector == 1.0
    warm = _values(mask_metrics(dq, MaskOptions(inoperable_flags=("WARM",), reference_flags=())))
    assert warm["operable_fraction"].detector == pytest.approx(1 - 1 / 4096)
    with pytest.raises(ValueError, match="unknown DQ flag"):
        MaskOptions(inoperable_flags=("DEAD", "BROKEN"))


def test_the_dead_cluster_is_found_where_injected():
    clean = _values(MaskMonitor.compute(MaskMonitor.example_arrays(512, 1), MaskOptions(), {}))
    bad = _values(MaskMonitor.compute(MaskMonitor.example_arrays(512, 1, anomaly=True), MaskOptions(), {}))
    new = (bad["n_dead"].superpixel - clean["n_dead"].superpixel).reshape(32, 32)
    # 96x96 from pixel (128, 128): super-pixels 8..13 of 16 pixels, rows and columns, filled
    rows, cols = np.nonzero(new)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (8, 13, 8, 13)
    assert bad["n_dead"].detector - clean["n_dead"].detector == new.sum()
    assert new[8:14, 8:14].sum() <= 96 * 96 and new[8:14, 8:14].min() > 200
    assert bad["operable_fraction"].superpixel.reshape(32, 32)[10, 10] == 0.0


def test_reference_arrays_have_the_models_arrays_and_dtypes():
    from roman_datamodels import datamodels as dm

    model = dm.MaskRefModel.create_fake_data(shape=(64, 64))
    arrays = reference_arrays("WFI11", 64, delivery_seed=1)
    assert model.meta.reftype in MaskMonitor.reftypes
    assert set(arrays) == {"dq"}
    assert arrays["dq"].dtype == model.dq.dtype
    model.dq = arrays["dq"]
    dq = arrays["dq"]
    assert np.all(dq[:4] & REFERENCE) and np.all(dq[:, -4:] & REFERENCE) and not np.any(dq[4:-4, 4:-4] & REFERENCE)


def test_flagged_fraction_is_realistic_and_the_defects_stay_put():
    one, two = (reference_arrays("WFI02", 512, delivery_seed=s)["dq"] for s in (1, 2))
    science = one[4:-4, 4:-4]
    assert 0.001 < np.count_nonzero(science) / science.size < 0.01
    dead = dqflags.pixel.DEAD
    np.testing.assert_array_equal(one & dead, two & dead)  # the same dead pixels in every delivery
    assert not np.array_equal(one, two)  # telegraph and warm pixels are found intermittently


@pytest.mark.slow
def test_full_size_counts_match_plain_numpy():
    dq = reference_arrays("WFI13", 4096, delivery_seed=1, anomaly=True)["dq"]
    got = _values(mask_metrics(dq, MaskOptions()))
    for flag in ("DEAD", "HOT", "WARM", "TELEGRAPH"):
        bit = int(dqflags.pixel[flag])
        grid = (dq.reshape(32, 128, 32, 128) & bit).astype(bool).sum(axis=(1, 3))
        np.testing.assert_array_equal(got[count_metric(flag)].superpixel, grid.ravel())
        np.testing.assert_array_equal(got[count_metric(flag)].amplifier, grid.sum(axis=0))
