"""Vectorised statistics at the three scales (detector, amplifier, super-pixel).

Pure numpy: arrays in, per-scale values out. Non-finite values (NaN, +-inf) are
ignored everywhere. Percentiles are exact, with numpy's default ``linear``
interpolation (the same numbers as ``np.nanpercentile``): each scale is sorted
once (NaNs sort to the end of each row) and every requested percentile is read
from the sorted rows. Means and standard deviations (population, ``ddof=0``)
are computed per super-pixel in float64 and combined exactly into amplifier and
detector values, so the pixel data is summed only once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..geometry import GRID, N_AMPLIFIERS, N_SUPERPIXELS


@dataclass(frozen=True)
class ScaleValues:
    """One metric's values at the three scales."""

    detector: float
    amplifier: np.ndarray  # shape (32,), amplifier 1..32
    superpixel: np.ndarray  # shape (1024,), cell 0..1023

    def at(self, scale: str) -> np.ndarray:
        """Values of ``scale`` as a float64 array (length 1, 32 or 1024)."""
        if scale == "detector":
            return np.array([self.detector], dtype=np.float64)
        return np.asarray(getattr(self, scale), dtype=np.float64)


def _check_frame(values: np.ndarray) -> int:
    if values.ndim != 2 or values.shape[0] != values.shape[1] or values.shape[0] % GRID:
        raise ValueError(f"expected a square frame with a side divisible by {GRID}, got {values.shape}")
    return values.shape[0] // GRID


def superpixel_rows(frame: np.ndarray) -> np.ndarray:
    """Copy of ``frame`` with one super-pixel per row: shape (1024, cell*cell)."""
    cell = _check_frame(frame)
    return frame.reshape(GRID, cell, GRID, cell).swapaxes(1, 2).reshape(N_SUPERPIXELS, cell * cell)


def amplifier_rows(frame: np.ndarray) -> np.ndarray:
    """Copy of ``frame`` with one amplifier strip per row: shape (32, side*cell)."""
    cell = _check_frame(frame)
    side = frame.shape[0]
    return frame.reshape(side, N_AMPLIFIERS, cell).swapaxes(0, 1).reshape(N_AMPLIFIERS, side * cell)


def count_at_scales(mask: np.ndarray) -> ScaleValues:
    """Number of True pixels in each cell of each scale."""
    cell = _check_frame(mask)
    grid = mask.reshape(GRID, cell, GRID, cell).sum(axis=(1, 3), dtype=np.int64)
    return ScaleValues(
        detector=float(grid.sum()),
        amplifier=grid.sum(axis=0).astype(np.float64),
        superpixel=grid.ravel().astype(np.float64),
    )


def _percentiles_of_sorted(sorted_rows: np.ndarray, n_valid: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Linear-interpolated percentiles of rows sorted with their NaNs last.

    Returns an array of shape (len(qs), n_rows); NaN where a row has no valid value.
    """
    n_rows = sorted_rows.shape[0]
    out = np.full((len(qs), n_rows), np.nan)
    has = n_valid > 0
    rows = np.nonzero(has)[0]
    if rows.size == 0:
        return out
    last = n_valid[has] - 1
    for i, q in enumerate(qs):
        position = (q / 100.0) * last
        lo = np.floor(position).astype(np.int64)
        hi = np.minimum(lo + 1, last)
        frac = position - lo
        below = sorted_rows[rows, lo].astype(np.float64)
        above = sorted_rows[rows, hi].astype(np.float64)
        # numpy's lerp form, so results match np.nanpercentile to rounding.
        value = below + (above - below) * frac
        out[i, rows] = np.where(frac >= 0.5, above - (above - below) * (1 - frac), value)
    return out


@dataclass(frozen=True)
class Distribution:
    """Count, mean, standard deviation and percentiles of a frame at three scales."""

    count: ScaleValues
    mean: ScaleValues
    std: ScaleValues
    percentiles: dict[float, ScaleValues]


def distribution_at_scales(frame: np.ndarray, qs: Sequence[float]) -> Distribution:
    """Count, mean, std (ddof=0) and exact percentiles ``qs`` of the finite pixels.

    Parameters
    ----------
    frame : ndarray
        Square 2-D float array, side divisible by 32. Non-finite pixels are ignored.
    qs : sequence of float
        Percentiles in [0, 100].
    """
    _check_frame(frame)
    values = np.asarray(frame, dtype=np.float32) if frame.dtype != np.float64 else frame
    finite = np.isfinite(values)
    n_bad = finite.size - np.count_nonzero(finite)
    if n_bad and np.count_nonzero(np.isnan(values)) != n_bad:  # infinities: treat like NaN
        values = np.where(finite, values, np.nan)

    by_cell = superpixel_rows(values)
    by_cell.sort(axis=1)  # NaNs last; by_cell is our own copy
    n_cell = count_at_scales(finite).superpixel.astype(np.int64)

    all_qs = list(qs) if 50.0 in qs else [*qs, 50.0]
    pct_sp = _percentiles_of_sorted(by_cell, n_cell, all_qs)
    # Per-cell moments around the cell median, which keeps the float64 sums well conditioned.
    median = pct_sp[all_qs.index(50.0)]
    shift = np.nan_to_num(median).astype(by_cell.dtype)[:, None]
    deviation = np.subtract(by_cell, shift, out=by_cell)
    width = deviation.shape[1]
    for row in np.nonzero(n_cell < width)[0]:  # NaNs sit at the end of each sorted row
        deviation[row, n_cell[row] :] = 0.0
    s1 = deviation.sum(axis=1, dtype=np.float64)
    s2 = np.einsum("ij,ij->i", deviation, deviation, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cell_mean = s1 / n_cell
        cell_m2 = np.maximum(s2 - s1 * cell_mean, 0.0)
        cell_mean = cell_mean + np.nan_to_num(median)
    del by_cell, deviation

    mean_sp, m2_sp = np.where(n_cell > 0, cell_mean, np.nan), np.where(n_cell > 0, cell_m2, 0.0)
    amp_groups = np.arange(N_SUPERPIXELS) % GRID  # amplifier index (0-based) of each cell
    n_amp, mean_amp, m2_amp = combine(n_cell, mean_sp, m2_sp, amp_groups, N_AMPLIFIERS)
    n_det, mean_det, m2_det = combine(n_cell, mean_sp, m2_sp, np.zeros(N_SUPERPIXELS, dtype=int), 1)

    by_amp = amplifier_rows(values)
    by_amp.sort(axis=1)
    pct_amp = _percentiles_of_sorted(by_amp, n_amp, qs)
    pct_det = _percentiles_of_sorted_union(by_amp, n_amp, qs)
    del by_amp

    with np.errstate(invalid="ignore", divide="ignore"):
        std_sp = np.sqrt(m2_sp / n_cell)
        std_amp = np.sqrt(m2_amp / n_amp)
        std_det = np.sqrt(m2_det / n_det)
    return Distribution(
        count=ScaleValues(float(n_det[0]), n_amp.astype(np.float64), n_cell.astype(np.float64)),
        mean=ScaleValues(float(mean_det[0]), mean_amp, mean_sp),
        std=ScaleValues(float(std_det[0]), std_amp, np.where(n_cell > 0, std_sp, np.nan)),
        percentiles={q: ScaleValues(float(pct_det[i, 0]), pct_amp[i], pct_sp[i]) for i, q in enumerate(qs)},
    )


def sortable(values: np.ndarray) -> np.ndarray:
    """Map floats to unsigned integers with the same order (IEEE-754 sign-magnitude trick)."""
    utype = np.uint32 if values.dtype.itemsize == 4 else np.uint64
    bits = values.view(utype)
    sign = utype(1) << utype(8 * values.dtype.itemsize - 1)
    return np.where(bits & sign, ~bits, bits | sign)


def from_sortable(key: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The floats of ``dtype`` whose :func:`sortable` keys are ``key`` (its inverse)."""
    utype = key.dtype.type
    sign = utype(1) << utype(8 * np.dtype(dtype).itemsize - 1)
    return np.where(key & sign, key & ~sign, ~key).view(dtype)


def _order_statistic_of_union(rows: np.ndarray, counts: np.ndarray, rank: int) -> float:
    """The ``rank``-th smallest (0-based) finite value of the union of rows sorted with NaNs last.

    Bisection over the ordered integer image of the floats; each step counts with one
    ``searchsorted`` per row, so the union is never sorted or copied. Exact.
    """
    filled = np.nonzero(counts > 0)[0]
    low = sortable(rows[filled, 0].min(keepdims=True))[0]
    high = sortable(rows[filled, counts[filled] - 1].max(keepdims=True))[0]
    while low < high:
        middle = low + (high - low) // 2
        value = from_sortable(np.array([middle]), rows.dtype)[0]
        count = sum(int(np.searchsorted(rows[r], value, side="right")) for r in filled)
        if count >= rank + 1:
            high = middle
        else:
            low = middle + 1
    return float(from_sortable(np.array([low]), rows.dtype)[0])


def _percentiles_of_sorted_union(rows: np.ndarray, counts: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Percentiles of all values of rows sorted with NaNs last (shape (len(qs), 1))."""
    out = np.full((len(qs), 1), np.nan)
    n_valid = int(counts.sum())
    if n_valid == 0:
        return out
    cache: dict[int, float] = {}

    def stat(rank: int) -> float:
        if rank not in cache:
            cache[rank] = _order_statistic_of_union(rows, counts, rank)
        return cache[rank]

    for i, q in enumerate(qs):
        position = (q / 100.0) * (n_valid - 1)
        lo = int(np.floor(position))
        hi = min(lo + 1, n_valid - 1)
        frac = position - lo
        below, above = stat(lo), stat(hi)
        out[i, 0] = above - (above - below) * (1 - frac) if frac >= 0.5 else below + (above - below) * frac
    return out


def combine(
    n: np.ndarray, mean: np.ndarray, m2: np.ndarray, group: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exactly combine per-cell (count, mean, M2) into per-group values (Chan et al.)."""
    n_group = np.bincount(group, weights=n, minlength=n_groups)
    safe_mean = np.where(n > 0, mean, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_group = np.bincount(group, weights=n * safe_mean, minlength=n_groups) / n_group
    spread = n * (safe_mean - np.nan_to_num(mean_group)[group]) ** 2
    m2_group = np.bincount(group, weights=m2 + spread, minlength=n_groups)
    mean_group = np.where(n_group > 0, mean_group, np.nan)
    return n_group.astype(np.int64), mean_group, m2_group
