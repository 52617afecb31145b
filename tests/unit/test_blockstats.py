"""Known-answer tests of the per-scale statistics against direct numpy computations."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rdmt_core.geometry import amplifier_of, geometry_for, superpixel_of, to_frame
from rdmt_core.measure.blockstats import amplifier_rows, count_at_scales, distribution_at_scales, superpixel_rows

QS = (50.0, 95.0, 99.0)


def _frame(side: int = 256, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = rng.normal(0.005, 0.001, (side, side)).astype(np.float32)
    frame[rng.random(frame.shape) < 0.01] = np.nan
    cell = side // 32
    frame[:cell, :cell] = np.nan  # super-pixel 0 has no finite pixel
    frame[5 * cell : 6 * cell, 3 * cell] = np.inf  # non-finite, ignored like NaN
    return frame


def _direct(rows: np.ndarray, fn) -> np.ndarray:
    rows = np.where(np.isfinite(rows), rows, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
        return fn(rows)


@pytest.mark.parametrize("side", [256, 512])
def test_distribution_matches_numpy_at_every_scale(side):
    frame = _frame(side)
    got = distribution_at_scales(frame, QS)
    for scale, rows in (
        ("superpixel", superpixel_rows(frame)),
        ("amplifier", amplifier_rows(frame)),
        ("detector", frame.reshape(1, -1)),
    ):
        np.testing.assert_allclose(
            got.mean.at(scale), _direct(rows, lambda r: np.nanmean(r, axis=1)), rtol=1e-6
        )
        np.testing.assert_allclose(
            got.std.at(scale), _direct(rows, lambda r: np.nanstd(r, axis=1)), rtol=1e-5
        )
        for q in QS:
            expected = _direct(rows, lambda r, q=q: np.nanpercentile(r, q, axis=1))
            np.testing.assert_allclose(got.percentiles[q].at(scale), expected, rtol=1e-6)
        np.testing.assert_array_equal(got.count.at(scale), np.isfinite(rows).sum(axis=1))


def test_empty_super_pixel_gives_nan_not_an_error():
    got = distribution_at_scales(_frame(), QS)
    assert np.isnan(got.mean.superpixel[0]) and np.isnan(got.percentiles[99.0].superpixel[0])
    assert got.count.superpixel[0] == 0
    assert np.isfinite(got.mean.superpixel[1:]).all()


def test_large_offset_keeps_std_precise():
    rng = np.random.default_rng(0)
    frame = (1.0e4 + rng.normal(0, 1e-2, (256, 256))).astype(np.float64)
    got = distribution_at_scales(frame, QS)
    np.testing.assert_allclose(got.std.detector, np.std(frame), rtol=1e-6)


def test_counts_follow_cell_numbering():
    mask = np.zeros((256, 256), dtype=bool)
    mask[17, 250] = True  # cell side 8: super-pixel row 2, column 31; amplifier 32
    mask[0, 0] = True
    counts = count_at_scales(mask)
    assert counts.detector == 2
    assert counts.superpixel[superpixel_of(17, 250, side=256)] == 1 == counts.superpixel[2 * 32 + 31]
    assert counts.amplifier[amplifier_of(250, side=256) - 1] == 1 and amplifier_of(250, side=256) == 32
    assert counts.amplifier[0] == 1 and counts.superpixel.sum() == 2


def test_level2_arrays_sit_in_the_full_frame():
    science = np.ones((248, 248), dtype=np.float32)  # 256 frame less a 4-pixel border
    geometry = geometry_for(science.shape, border=4)
    frame = to_frame(science, geometry, np.nan)
    got = distribution_at_scales(frame, QS)
    pixels = geometry.pixels_per_cell()
    np.testing.assert_array_equal(got.count.at("amplifier"), pixels["amplifier"])
    assert pixels["amplifier"][0] == 4 * 248 and pixels["amplifier"][1] == 8 * 248  # amp 1 loses 4 columns
    assert pixels["superpixel"][0] == 16 and pixels["superpixel"][33] == 64
    assert got.count.detector == 248 * 248


def test_rejects_frames_that_do_not_split_into_32_cells():
    with pytest.raises(ValueError, match="divisible by 32"):
        distribution_at_scales(np.zeros((100, 100), dtype=np.float32), QS)
