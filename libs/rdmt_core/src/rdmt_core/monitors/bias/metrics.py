"""Bias metrics of a SUPERBIAS reference file: a pure function of ``data`` and ``dq``.

Reads ``data`` (DN) and ``dq``; ``err`` is not used. Pixels with any of ``mask_dq_flags`` and
non-finite pixels are left out of every metric.

The frame is copied once into *column-parity rows*: one row per (column parity, super-pixel),
2,048 rows, each sorted once. A super-pixel is the union of its two rows, an amplifier's even
(odd) columns the union of its 32 even (odd) rows, an amplifier the union of 64 rows and the
detector of all 2,048; medians and the sigma-clipped std (astropy's rules: median and std of the
kept values recomputed each iteration) are exact statistics of those unions
(:mod:`rdmt_core.measure.grouped`). The row and column profiles are means over the used pixels.
"""

from __future__ import annotations

import numpy as np

from ...geometry import GRID, N_AMPLIFIERS, N_SUPERPIXELS
from ...measure.blockstats import ScaleValues
from ...measure.dq import flagged_pixels
from ...measure.grouped import Grouping, SortedRows, clip, moments_of_sums, percentiles, row_sums
from ...records import Metric
from ..base import MonitorResult
from .options import METRICS, BiasOptions

N_ROWS = 2 * N_SUPERPIXELS  # column-parity rows: parity * 1024 + super-pixel


def parity_rows(frame: np.ndarray) -> np.ndarray:
    """Copy of ``frame`` with one row per (column parity, super-pixel): shape (2048, cell*cell/2).

    Row ``p * 1024 + s`` holds the pixels of super-pixel ``s`` in frame columns of parity ``p``.
    """
    side = frame.shape[0]
    if frame.ndim != 2 or frame.shape[1] != side or side % (2 * GRID):
        raise ValueError(f"expected a square frame with a side divisible by {2 * GRID}, got {frame.shape}")
    cell = side // GRID
    out = np.empty((2, GRID, GRID, cell, cell // 2), dtype=frame.dtype)
    for parity in (0, 1):
        np.copyto(out[parity], frame[:, parity::2].reshape(GRID, cell, GRID, cell // 2).swapaxes(1, 2))
    return out.reshape(N_ROWS, -1)


def groupings() -> dict[str, Grouping]:
    """The unions of column-parity rows: super-pixels, amplifiers, amplifier parities, detector."""
    rows = np.arange(N_ROWS)
    column = rows % GRID  # amplifier (0-based) of the row's super-pixel
    parity = rows // N_SUPERPIXELS
    return {
        "superpixel": Grouping.by_label(rows % N_SUPERPIXELS, N_SUPERPIXELS),
        "amplifier": Grouping.by_label(column, N_AMPLIFIERS),
        "detector": Grouping.by_label(np.zeros(N_ROWS, dtype=np.int64), 1),
        "parity": Grouping.by_label(parity * N_AMPLIFIERS + column, 2 * N_AMPLIFIERS),  # even amps, then odd
    }


def _rms(profile: np.ndarray, axis: int) -> np.ndarray:
    """Population standard deviation of the finite profile values along ``axis`` (NaN when none)."""
    finite = np.isfinite(profile)
    n = finite.sum(axis=axis)
    filled = np.where(finite, profile, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=axis) / n
        deviation = np.where(finite, profile - np.expand_dims(mean, axis), 0.0)
        return np.where(n > 0, np.sqrt((deviation**2).sum(axis=axis) / n), np.nan)


def bad_pixels(data: np.ndarray, dq: np.ndarray, flags: tuple[str, ...]) -> np.ndarray:
    """Flat indices of the pixels left out: DQ-flagged with any of ``flags``, or not finite. Sorted, unique."""
    bad = flagged_pixels(dq, flags)
    if not np.isfinite(np.add.reduce(data, axis=None)):  # one cheap pass finds whether any is non-finite
        both = np.sort(np.concatenate([bad, np.flatnonzero(~np.isfinite(data))]))
        bad = both[np.concatenate([[True], np.diff(both) != 0])] if both.size else both
    return bad


def profiles_rms(rows: np.ndarray, bad: np.ndarray, side: int) -> tuple[ScaleValues, ScaleValues]:
    """Row- and column-profile RMS of the detector and of each amplifier (super-pixels: NaN).

    ``rows`` are the frame's :func:`parity_rows` (unsorted) with its left-out pixels (flat frame
    indices ``bad``) set to 0. A row profile value is the mean of a row's used pixels over the cell's
    columns (a whole row for the detector, the amplifier's columns for an amplifier); a column profile
    value the mean of a column's used pixels over all rows. The RMS is taken about the profile's mean,
    over the rows (columns) with a used pixel.
    """
    cell = side // GRID
    blocks = rows.reshape(2, GRID, GRID, cell, cell // 2)  # parity, block row, block column, row, column
    row_sum = blocks.sum(axis=4).sum(axis=0, dtype=np.float64)  # (block row, amplifier, row)
    row_sum = row_sum.transpose(0, 2, 1).reshape(side, N_AMPLIFIERS)
    col_sum = blocks.sum(axis=1, dtype=np.float64).sum(axis=2)  # (parity, amplifier, column pair)
    col_sum = col_sum.transpose(1, 2, 0).reshape(side)
    strip = side // N_AMPLIFIERS
    y, x = np.divmod(bad, side)
    row_n = strip - np.bincount(y * N_AMPLIFIERS + x // strip, minlength=side * N_AMPLIFIERS).reshape(side, -1)
    col_n = side - np.bincount(x, minlength=side)
    with np.errstate(invalid="ignore", divide="ignore"):
        row_amp = np.where(row_n > 0, row_sum / row_n, np.nan)
        row_det = row_sum.sum(axis=1) / row_n.sum(axis=1)
        col = np.where(col_n > 0, col_sum / col_n, np.nan)
    nan_sp = np.full(N_SUPERPIXELS, np.nan)
    rows_rms = ScaleValues(float(_rms(row_det, 0)), _rms(row_amp, 0), nan_sp)
    cols_rms = ScaleValues(float(_rms(col, 0)), _rms(col.reshape(N_AMPLIFIERS, strip), 1), nan_sp)
    return rows_rms, cols_rms


def _parity_positions(bad: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column in :func:`parity_rows` of the frame pixels with flat indices ``bad``."""
    cell = side // GRID
    y, x = np.divmod(bad, side)
    row = (x % 2) * N_SUPERPIXELS + (y // cell) * GRID + x // cell
    return row, (y % cell) * (cell // 2) + (x % cell) // 2


def bias_metrics(data: np.ndarray, dq: np.ndarray, options: BiasOptions) -> MonitorResult:
    """All bias metrics at their scales.

    Parameters
    ----------
    data : ndarray
        Superbias in DN, a square frame (side divisible by 64). Non-finite pixels are ignored.
    dq : ndarray
        Data-quality flags, same shape; pixels with any of ``options.mask_dq_flags`` are ignored.
    options : BiasOptions
        Masked flags and sigma clipping of the std.
    """
    side = data.shape[0]
    bad = bad_pixels(data, dq, options.mask_dq_flags)
    rows = parity_rows(np.asarray(data, dtype=np.float64 if data.dtype == np.float64 else np.float32))
    where = _parity_positions(bad, side)
    rows[where] = 0  # the zeros of left-out pixels add nothing to the sums
    row_rms, col_rms = profiles_rms(rows, bad, side)
    sums = row_sums(rows)  # of the used pixels: the zeros add nothing
    rows[where] = np.nan
    sorted_ = SortedRows.sort(rows)
    n_valid = sorted_.n_valid
    g = groupings()
    everything, parts = Grouping.concat(g["superpixel"], g["amplifier"], g["detector"], g["parity"])
    median = percentiles(sorted_, everything, (50.0,))[50.0]
    sp, amp, det, parity = (median[p] for p in parts)
    scaled, _ = Grouping.concat(g["superpixel"], g["amplifier"], g["detector"])
    clipped = clip(
        sorted_,
        scaled,
        options.clip_sigma,
        options.clip_maxiters,
        moments=moments_of_sums(n_valid, *sums),
        median=np.concatenate([sp, amp, det]),
        with_median=False,  # the std is the metric
    )
    std = clipped.std
    del rows, sorted_

    nan_sp = np.full(N_SUPERPIXELS, np.nan)
    even, odd = parity[:N_AMPLIFIERS], parity[N_AMPLIFIERS:]
    offset = even - odd
    largest = float(np.max(np.abs(offset[np.isfinite(offset)]))) if np.isfinite(offset).any() else float("nan")
    by_name = {
        "bias_median": ScaleValues(float(det[0]), amp, sp),
        "bias_std": ScaleValues(float(std[-1]), std[N_SUPERPIXELS:-1], std[:N_SUPERPIXELS]),
        "bias_even_median": ScaleValues(float("nan"), even, nan_sp),
        "bias_odd_median": ScaleValues(float("nan"), odd, nan_sp),
        "bias_even_odd_offset": ScaleValues(largest, offset, nan_sp),
        "bias_row_profile_rms": row_rms,
        "bias_column_profile_rms": col_rms,
    }
    flags = ", ".join(options.mask_dq_flags) or "none"
    notes = {
        "pixels used": f"{int(n_valid.sum())} of {data.size} (left out: DQ {flags} or non-finite)",
        "clipping": f"std sigma-clipped at {options.clip_sigma:g} sigma (astropy's rules: median and std recomputed "
        f"each iteration), {clipped.iterations} iteration(s)",
    }
    return MonitorResult([Metric(spec, by_name[spec.name]) for spec in METRICS], notes)
