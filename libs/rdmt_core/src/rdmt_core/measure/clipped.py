"""Exact sigma-clipped statistics of sorted rows, at the three scales.

The clipping is astropy's ``sigma_clipped_stats`` with its defaults (centre the
median, spread the population standard deviation, bounds inclusive, each
iteration clipping the values kept by the previous one, until nothing changes or
``maxiters`` iterations), applied independently to every row of a 2-D array, or
to the union of several rows. Pure numpy: arrays in, statistics out.

Why sorted rows: in a sorted row the values kept by any clipping interval form
one index window ``[lo, hi)``. The median of a window is read by index; new
bounds become new window ends by a vectorised binary search; and the sums that
give the mean and standard deviation are updated by subtracting the few values
trimmed off the window ends instead of summing the row again. So each row is
sorted once and summed once, whatever the number of iterations.

A union of rows (the detector as the union of its 32 amplifier strips) has its
median found by bisection over the ordered integer image of the floats, counting
with one ``searchsorted`` per row, so the union is never merged or copied. For arbitrary unions of
rows, several scales in one pass (an amplifier as the union of its super-pixel rows), see
:mod:`rdmt_core.measure.grouped`, which clips by the same rule and uses this module's searches and sums.
Non-finite values (NaN, +-inf) are ignored everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import GRID, N_AMPLIFIERS, N_SUPERPIXELS
from .blockstats import ScaleValues, amplifier_rows, combine, from_sortable, sortable, superpixel_rows

SIGMA = 3.0  # astropy's default clipping bound, in standard deviations
MAXITERS = 5  # astropy's default number of clipping iterations
# Remove the trimmed values' sums from the window's sums only while the remainder keeps at least
# this fraction of the squared deviations; below it (a window of a few values under huge outliers)
# the window is summed again, so float64 cancellation never decides a bound.
REFRESH_FRACTION = 1e-8


@dataclass(frozen=True)
class ClippedStats:
    """Sigma-clipped statistics of groups of sorted rows (one group per row unless a union was asked for).

    ``lo`` and ``hi`` are the kept index windows of the rows; statistics are NaN where a group
    has no finite value.
    """

    count: np.ndarray  # int64, values kept per group
    mean: np.ndarray  # float64
    median: np.ndarray  # float64
    std: np.ndarray  # float64, population (ddof=0)
    n_valid: np.ndarray  # int64, finite values per group before clipping
    lo: np.ndarray  # int64, per row
    hi: np.ndarray  # int64, per row
    iterations: int


def sorted_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort ``rows`` (our own copy is sorted in place) with non-finite values last; return them and the counts.

    Parameters
    ----------
    rows : ndarray
        2-D float array, one sample per row; it is modified (infinities become NaN, then sorted).

    Returns
    -------
    rows : ndarray
        The same array, each row sorted ascending with its NaNs at the end.
    n_valid : ndarray
        Finite values per row (int64).
    """
    rows.sort(axis=1)
    n_valid = _first_nan(rows)
    # infinities sort next to the finite values: -inf first in a row, +inf just before its NaNs
    ends = rows[np.arange(rows.shape[0]), np.maximum(n_valid - 1, 0)]
    infinite = (rows[:, 0] == -np.inf) | ((ends == np.inf) & (n_valid > 0))
    for r in np.nonzero(infinite)[0]:  # rare: treat them as NaN, as everywhere else
        rows[r, ~np.isfinite(rows[r])] = np.nan
        rows[r].sort()
        n_valid[r] = np.count_nonzero(np.isfinite(rows[r]))
    return rows, n_valid


def _first_nan(rows: np.ndarray) -> np.ndarray:
    """Index of the first NaN of each row sorted with its NaNs last (the row length when it has none)."""
    n_rows, width = rows.shape
    lo, hi = np.zeros(n_rows, dtype=np.int64), np.full(n_rows, width, dtype=np.int64)
    index = np.arange(n_rows)
    while (active := lo < hi).any():
        middle = (lo + hi) // 2
        nan = np.isnan(rows[index, np.minimum(middle, width - 1)])
        lo = np.where(active & ~nan, middle + 1, lo)
        hi = np.where(active & nan, middle, hi)
    return lo


def search_windows(
    rows: np.ndarray, row_ids: np.ndarray, lo: np.ndarray, hi: np.ndarray, value: np.ndarray, right: bool
) -> np.ndarray:
    """For rows ``row_ids``, the first index in ``[lo, hi)`` whose value is >= ``value`` (> with ``right``)."""
    lo, hi = lo.copy(), hi.copy()
    last = rows.shape[1] - 1
    active = lo < hi
    while active.any():
        middle = (lo + hi) // 2
        probe = rows[row_ids, np.minimum(middle, last)]
        go_right = (probe <= value) if right else (probe < value)
        lo = np.where(active & go_right, middle + 1, lo)
        hi = np.where(active & ~go_right, middle, hi)
        active = lo < hi
    return lo


def window_sums(rows: np.ndarray, row_ids: np.ndarray, starts: np.ndarray, stops: np.ndarray, shift: np.ndarray):
    """Sums of ``x - shift`` and ``(x - shift)**2`` over ``rows[r, start:stop]`` for each (r, start, stop), float64."""
    lengths = np.maximum(stops - starts, 0)
    total = int(lengths.sum())
    out1 = np.zeros(len(row_ids))
    out2 = np.zeros(len(row_ids))
    if total == 0:
        return out1, out2
    segment = np.repeat(np.arange(len(row_ids)), lengths)
    offsets = np.cumsum(lengths) - lengths
    flat = row_ids[segment] * rows.shape[1] + starts[segment] + (np.arange(total) - offsets[segment])
    values = rows.ravel()[flat].astype(np.float64) - shift[segment]
    out1 = np.bincount(segment, weights=values, minlength=len(row_ids))
    out2 = np.bincount(segment, weights=values * values, minlength=len(row_ids))
    return out1, out2


def _union_select(rows: np.ndarray, lo: np.ndarray, hi: np.ndarray, rank: int) -> float:
    """The ``rank``-th smallest (0-based) value of the union of the windows ``rows[r, lo[r]:hi[r]]``. Exact."""
    filled = np.nonzero(hi > lo)[0]
    low = sortable(rows[filled, lo[filled]].min(keepdims=True))[0]
    high = sortable(rows[filled, hi[filled] - 1].max(keepdims=True))[0]
    windows = [rows[r, lo[r] : hi[r]] for r in filled]
    while low < high:
        middle = low + (high - low) // 2
        value = from_sortable(np.array([middle]), rows.dtype)[0]
        count = sum(int(np.searchsorted(w, value, side="right")) for w in windows)
        if count >= rank + 1:
            high = middle
        else:
            low = middle + 1
    return float(from_sortable(np.array([low]), rows.dtype)[0])


def _medians(rows: np.ndarray, lo: np.ndarray, hi: np.ndarray, union: bool) -> np.ndarray:
    """Median of each row's window, or (``union``) the one median of all windows together."""
    n = hi - lo
    if union:
        total = int(n.sum())
        if total == 0:
            return np.array([np.nan])
        below = _union_select(rows, lo, hi, (total - 1) // 2)
        above = below if total % 2 else _union_select(rows, lo, hi, total // 2)
        return np.array([(below + above) / 2.0])
    out = np.full(rows.shape[0], np.nan)
    has = np.nonzero(n > 0)[0]
    below = rows[has, lo[has] + (n[has] - 1) // 2].astype(np.float64)
    above = rows[has, lo[has] + n[has] // 2].astype(np.float64)
    out[has] = (below + above) / 2.0
    return out


def clip_sorted(
    rows: np.ndarray,
    n_valid: np.ndarray,
    sigma: float = SIGMA,
    maxiters: int = MAXITERS,
    union: bool = False,
    moments: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> ClippedStats:
    """Sigma-clipped count, mean, median and std of each sorted row, or of the union of all rows.

    Parameters
    ----------
    rows : ndarray
        2-D float array, each row sorted ascending with its ``n_valid`` finite values first
        (as :func:`sorted_rows` leaves it). Not modified.
    n_valid : ndarray
        Finite values per row.
    sigma : float
        Clipping bound in standard deviations, on both sides; values with
        ``|x - median| <= sigma * std`` are kept.
    maxiters : int
        Largest number of clipping iterations.
    union : bool
        Clip the union of all rows as one sample (one group) instead of each row on its own.
    moments : tuple of ndarray, optional
        Per row ``(n, mean, M2)`` of its finite values when already known (saves one pass over
        ``rows``); ``M2`` is the sum of squared deviations from the mean.

    Returns
    -------
    ClippedStats
        One entry per row, or one entry when ``union``.
    """
    n_rows = rows.shape[0]
    lo = np.zeros(n_rows, dtype=np.int64)
    hi = np.asarray(n_valid, dtype=np.int64).copy()
    group = np.zeros(n_rows, dtype=np.int64) if union else np.arange(n_rows)
    n_groups = 1 if union else n_rows
    centre = np.nan_to_num(_medians(rows, lo, hi, union))
    shift = centre[group]  # the sums of each row are kept about its group's first median (well conditioned)
    n0, mean0, m20 = (np.asarray(m, dtype=np.float64) for m in (moments or row_moments(rows, n_valid)))
    offset = np.where(n0 > 0, mean0 - shift, 0.0)
    s1, s2 = n0 * offset, np.where(n0 > 0, m20, 0.0) + n0 * offset**2
    iterations = 0
    active = np.ones(n_groups, dtype=bool)
    for _ in range(maxiters):
        count, mean, std = group_moments(hi - lo, s1, s2, group, n_groups, centre)
        median = _medians(rows, lo, hi, union)
        with np.errstate(invalid="ignore"):
            low_bound = (median - sigma * std)[group]
            high_bound = (median + sigma * std)[group]
        live = active[group] & (hi > lo)
        new_lo, new_hi = lo.copy(), hi.copy()
        if live.any():
            r = np.nonzero(live)[0]
            new_lo[r] = search_windows(rows, r, lo[r], hi[r], low_bound[r], right=False)
            new_hi[r] = search_windows(rows, r, new_lo[r], hi[r], high_bound[r], right=True)
        changed = (new_lo != lo) | (new_hi != hi)
        iterations += 1
        if not changed.any():
            break
        r = np.nonzero(changed)[0]
        ids = np.concatenate([r, r])
        starts = np.concatenate([lo[r], new_hi[r]])
        stops = np.concatenate([new_lo[r], hi[r]])
        t1, t2 = window_sums(rows, ids, starts, stops, shift[ids])
        s1[r] -= t1[: len(r)] + t1[len(r) :]
        before = s2[r].copy()
        s2[r] -= t2[: len(r)] + t2[len(r) :]
        lo, hi = new_lo, new_hi
        refresh = r[(s2[r] < REFRESH_FRACTION * before) | (s2[r] < 0)]
        if refresh.size:
            s1[refresh], s2[refresh] = window_sums(rows, refresh, lo[refresh], hi[refresh], shift[refresh])
        active = np.bincount(group[r], minlength=n_groups) > 0
    count, mean, std = group_moments(hi - lo, s1, s2, group, n_groups, centre)
    median = _medians(rows, lo, hi, union)
    n_group_valid = np.bincount(group, weights=np.asarray(n_valid, dtype=np.float64), minlength=n_groups)
    return ClippedStats(
        count=count,
        mean=mean,
        median=np.where(count > 0, median, np.nan),
        std=std,
        n_valid=n_group_valid.astype(np.int64),
        lo=lo,
        hi=hi,
        iterations=iterations,
    )


def row_moments(rows: np.ndarray, n_valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count, mean and ``M2`` (sum of squared deviations from the mean) of each sorted row's finite values.

    One pass, in float64 about each row's median, so the sums stay well conditioned.
    """
    n = np.asarray(n_valid, dtype=np.int64)
    shift = np.nan_to_num(_medians(rows, np.zeros_like(n), n, union=False)).astype(rows.dtype)
    deviation = np.subtract(rows, shift[:, None])
    for r in np.nonzero(n < rows.shape[1])[0]:  # NaNs sit at the end of each sorted row
        deviation[r, n[r] :] = 0.0
    s1 = deviation.sum(axis=1, dtype=np.float64)
    s2 = np.einsum("ij,ij->i", deviation, deviation, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        offset = np.where(n > 0, s1 / n, 0.0)
    return n, shift.astype(np.float64) + offset, np.maximum(s2 - s1 * offset, 0.0)


def group_moments(
    n: np.ndarray, s1: np.ndarray, s2: np.ndarray, group: np.ndarray, n_groups: int, centre: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count, mean and std (ddof=0) of each group from its rows' shifted sums."""
    if n_groups == len(group):
        count, g1, g2 = n.astype(np.int64), s1, s2
    else:
        count = np.bincount(group, weights=n, minlength=n_groups).astype(np.int64)
        g1 = np.bincount(group, weights=s1, minlength=n_groups)
        g2 = np.bincount(group, weights=s2, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        offset = g1 / count
        var = np.maximum(g2 / count - offset * offset, 0.0)
    has = count > 0
    return count, np.where(has, centre + offset, np.nan), np.where(has, np.sqrt(var), np.nan)


def sigma_clipped_stats(
    values: np.ndarray, sigma: float = SIGMA, maxiters: int = MAXITERS
) -> tuple[float, float, float]:
    """Mean, median and std of the sigma-clipped finite ``values`` (any shape), like astropy's function."""
    dtype = np.float64 if np.asarray(values).dtype == np.float64 else np.float32
    rows, n_valid = sorted_rows(np.array(values, dtype=dtype).reshape(1, -1))
    stats = clip_sorted(rows, n_valid, sigma, maxiters)
    return float(stats.mean[0]), float(stats.median[0]), float(stats.std[0])


@dataclass(frozen=True)
class ClippedScales:
    """Sigma-clipped statistics of a frame at the three scales."""

    count: ScaleValues  # values kept by the clipping
    n_valid: ScaleValues  # finite values before clipping
    mean: ScaleValues
    median: ScaleValues
    std: ScaleValues


def clipped_at_scales(frame: np.ndarray, sigma: float = SIGMA, maxiters: int = MAXITERS) -> ClippedScales:
    """Sigma-clipped statistics of each super-pixel, amplifier strip and of the detector.

    Each scale is clipped on its own pixels (an amplifier is not a combination of its
    super-pixels' clipped values). Super-pixels and amplifier strips are each sorted once;
    the detector is the union of the sorted amplifier strips. The first sums of the amplifiers
    and the detector are combined exactly from the super-pixels' sums.

    Parameters
    ----------
    frame : ndarray
        Square 2-D float array, side divisible by 32. Non-finite pixels are ignored.
    sigma, maxiters : float, int
        As for :func:`clip_sorted`.
    """
    values = np.asarray(frame, dtype=np.float32) if frame.dtype != np.float64 else frame
    cells, n_cell = sorted_rows(superpixel_rows(values))
    n_cell, mean_cell, m2_cell = row_moments(cells, n_cell)
    cell_stats = clip_sorted(cells, n_cell, sigma, maxiters, moments=(n_cell, mean_cell, m2_cell))
    del cells
    amp_of_cell = np.arange(N_SUPERPIXELS) % GRID
    n_amp, mean_amp, m2_amp = combine(n_cell, mean_cell, m2_cell, amp_of_cell, N_AMPLIFIERS)
    strips, n_strip = sorted_rows(amplifier_rows(values))
    amp_stats = clip_sorted(strips, n_strip, sigma, maxiters, moments=(n_amp, mean_amp, m2_amp))
    detector = clip_sorted(strips, n_strip, sigma, maxiters, union=True, moments=(n_amp, mean_amp, m2_amp))
    del strips

    def scale(attribute: str) -> ScaleValues:
        return ScaleValues(
            float(getattr(detector, attribute)[0]),
            getattr(amp_stats, attribute).astype(np.float64),
            getattr(cell_stats, attribute).astype(np.float64),
        )

    return ClippedScales(
        count=scale("count"), n_valid=scale("n_valid"), mean=scale("mean"), median=scale("median"), std=scale("std")
    )
