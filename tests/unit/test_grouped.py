"""measure.grouped: order statistics and clipped statistics of unions of sorted rows, against numpy and astropy."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.stats import sigma_clipped_stats

from rdmt_core.measure import grouped
from rdmt_core.measure.grouped import Grouping, SortedRows

QS = (0.0, 1.0, 37.5, 50.0, 99.0, 100.0)


def _trial(rng: np.random.Generator, trial: int) -> np.ndarray:
    """16 rows with ties, signed zeros, far-apart rows, outliers and NaN, float32 or float64."""
    x = rng.normal(0, 1, (16, int(rng.integers(1, 80)))).astype(np.float32 if trial % 2 else np.float64)
    if trial % 3 == 0:
        x = np.round(x * 2) * np.where(rng.random(x.shape) < 0.5, 1, -1)  # ties and -0.0 beside +0.0
    if trial % 5 == 0:
        x += (np.arange(16) % 3)[:, None] * 5  # groups whose rows are far apart
    if trial % 7 == 0:
        x[0, :3] = 50  # outliers to clip
    x[rng.random(x.shape) < 0.2] = np.nan
    if trial % 4 == 0:
        x[1, 0], x[2, -1] = np.inf, -np.inf  # left out like NaN
    return x


def _grouping(rng: np.random.Generator) -> Grouping:
    """Every row in one of 5 groups and again in one of 3 (a row in two groups, as super-pixel and amplifier)."""
    rows = np.arange(16)
    first = Grouping.by_label(rng.integers(0, 5, 16), 5)
    second = Grouping(rows, rng.integers(0, 3, 16), 3)
    return Grouping.concat(first, second)[0]


@pytest.mark.parametrize("gather", [3, 1024])
def test_percentiles_and_clipped_stats_match_numpy_and_astropy(gather, monkeypatch):
    monkeypatch.setattr(grouped, "GATHER", gather)  # rank a few values early, or only at the end
    rng = np.random.default_rng(5)
    for trial in range(60):
        x = _trial(rng, trial)
        data = SortedRows.sort(x.copy())
        g = _grouping(rng)
        got = grouped.percentiles(data, g, QS)
        clipped = grouped.clip(data, g)
        for k in range(g.n_groups):
            v = x[g.row_ids[g.group == k]]
            v = v[np.isfinite(v)].astype(np.float64)
            for q in QS:
                expected = np.percentile(v, q) if v.size else np.nan
                np.testing.assert_allclose(got[q][k], expected, rtol=1e-6, atol=1e-6, err_msg=f"{trial} {q} {k}")
            expected = sigma_clipped_stats(v) if v.size else (np.nan, np.nan, np.nan)
            actual = (clipped.mean[k], clipped.median[k], clipped.std[k])
            np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6, err_msg=f"{trial} {k}")
            assert clipped.n_valid[k] == v.size


def test_select_gives_each_rank_and_the_next():
    rng = np.random.default_rng(8)
    x = rng.integers(0, 20, (6, 30)).astype(np.float32)  # many ties
    data = SortedRows.sort(x.copy())
    g = Grouping.by_label(np.array([0, 0, 1, 1, 1, 2]), 3)
    lo, hi = data.full_windows(g)
    for rank in (0, 7, 59, 89):
        first, second = grouped.select(data, g, lo, hi, np.array([rank, rank, rank]))
        for k in range(3):
            v = np.sort(x[g.group == k].ravel())
            if rank < v.size:
                assert (first[k], second[k]) == (v[rank], v[min(rank + 1, v.size - 1)])
            else:
                assert np.isnan(first[k]) and np.isnan(second[k])


def test_counts_below_a_value_and_the_three_scales():
    rng = np.random.default_rng(2)
    frame = rng.normal(10, 2, (128, 128)).astype(np.float32)
    frame[:4, :4] = np.nan  # super-pixel 0 empty
    cells = SortedRows.of_superpixels(frame)
    below = grouped.sum_at_scales(cells.count_below(10.0, inclusive=False))
    assert below.detector == np.count_nonzero(frame < 10.0)
    assert below.amplifier[3] == np.count_nonzero(frame[:, 12:16] < 10.0)
    p = grouped.percentiles_at_scales(cells, (50.0,))[50.0]
    assert p.detector == pytest.approx(np.nanmedian(frame), rel=1e-7)
    assert p.amplifier[5] == pytest.approx(np.nanmedian(frame[:, 20:24]), rel=1e-7)
    assert np.isnan(p.superpixel[0]) and p.superpixel[33] == pytest.approx(np.median(frame[4:8, 4:8]), rel=1e-7)
