"""Residual 1/f noise metrics of a Level-2 image (pure, no I/O).

Reads ``data`` (DN/s) and ``dq``. The numerical core, :func:`one_over_f_metrics`,
is a pure function; the readout model is :func:`rdmt_core.synthetic_l2.readout_order`.

The readout model: each of the 32 amplifiers reads its 128-column strip row by
row from row 0, odd-numbered amplifiers from low to high column and
even-numbered ones from high to low, all 32 at the same time. 1/f noise is
correlated along that order: over one row of a strip (128 samples) it is almost
constant, from row to row it wanders.

Light on the sky is not read in any order: a star's Airy rings, spikes and wide
wings look the same whichever way the image is read, and in a crowded field
their light beyond any source mask adds low-frequency power to the row means as
1/f noise would (tens of sigma on clean realistic images). The monitor
therefore compares each **tile** (a super-pixel: ``cell`` rows of one strip)
read in the readout order with the same pixels read in the orthogonal order:

1. mask: DQ-flagged and non-finite pixels (the NaN border), pixels farther than
   ``clip_sigma`` from the smooth background, and 4x4 blocks around sources
   (:func:`rdmt_core.measure.sky.find_sources`);
2. per tile, the **row means** (readout order binned by one row) and the
   **column means** (the orthogonal order), each less a count-weighted line;
3. the periodogram of both in the tile bins ``bins`` (cycles per tile), each
   divided by its expected white level (pixel variance times the sum of 1 / count);
4. per bin ``u = (P_row - P_col) / (P_row + P_col)``: for white noise, and for
   any light seen alike in both orders, the two powers have the same
   distribution and ``u`` is symmetric about 0 (uniform on [-1, 1], variance 1/3,
   for exponential powers); readout 1/f noise raises only ``P_row``. A bin whose
   mean power exceeds ``weight_cap`` times white (a star's residual light) is
   down-weighted by ``w = weight_cap / power``, which depends on ``P_row + P_col``
   only and so keeps the mean 0;
5. the significance of ``sum(w u)`` over an amplifier's tiles (or all tiles, or
   the common mode's tile rows): the null variance is the larger of the white
   value ``sum(w^2) / 3`` and the tiles' own scatter (then a Student t, converted
   to a Gaussian-equivalent z).

The common mode is each tile row's row series (and column series) averaged over
its 32 strips, read at the same time, tested the same way. The row-series
spectra of the previous version of this monitor are still computed for the
report's figure (``extras``), not for the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...geometry import GRID, N_AMPLIFIERS, N_SUPERPIXELS
from ...measure.blockstats import ScaleValues
from ...measure.dq import NO_USABLE_PIXEL, flagged_pixels
from ...measure.sky import SOURCE_BLOCK, Sources, find_sources, source_blocks_problem
from ...measure.spectra import band_power, detrend, white_fraction
from ...records import Metric
from ..base import MonitorResult
from .options import METRICS, OneOverFOptions

MIN_FILLED = 0.75  # fraction of a tile's rows and of its columns with data (the border leaves 124 of 128, 12 of 16)
TILE_DEGREE = 1  # a line per tile series: a gradient is removed alike from both orders (a constant alone is not)


def _kept_deviation(
    frame: np.ndarray, clip_sigma: float, source_sigma: float, ignored: np.ndarray | None
) -> tuple[Sources, np.ndarray, np.ndarray]:
    """The frame less its smooth background, zero where not kept, the kept mask (side, 32, cell) and the sources."""
    side = frame.shape[0]
    cell = side // GRID
    sources = find_sources(frame, source_sigma)
    deviation = sources.deviation
    row_spread = np.repeat(sources.spread, cell, axis=0).astype(frame.dtype)[:, :, None]  # (row, strip, 1)
    with np.errstate(invalid="ignore"):
        kept = np.abs(deviation) <= clip_sigma * row_spread
    n_blocks = sources.blocks.shape[0]
    kept.reshape(n_blocks, SOURCE_BLOCK, n_blocks, SOURCE_BLOCK)[...] &= ~sources.blocks[:, None, :, None]
    if ignored is not None:
        kept.reshape(-1)[ignored] = False
    np.copyto(deviation, 0.0, where=~kept)  # our own array: no second copy of the frame
    return sources, deviation, kept


def _row_means(sources: Sources, deviation: np.ndarray, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row and strip: background level plus the mean kept deviation (NaN if none kept), and the counts."""
    sums = deviation.sum(axis=2, dtype=np.float64)
    counts = np.count_nonzero(kept, axis=2).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sources.level + sums / counts, np.nan)
    return means, counts


def row_series(
    frame: np.ndarray, clip_sigma: float, source_sigma: float, ignored: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Background-corrected mean of the kept pixels of every row of every amplifier strip, and their number.

    Deviations are taken from the smooth background of :func:`.sky.find_sources`. A pixel
    is kept when finite, within ``clip_sigma`` of its super-pixel's standard deviation, and not in
    a block masked around a source (``source_sigma``). Each row's value is the background level of
    its strip at that row plus the mean kept deviation, so neither a gradient along the row nor
    the columns a star masked change it. ``ignored`` holds flat indices of pixels never kept
    (DQ-flagged); they can still mark a source.

    Returns ``means`` (32, side) float64, NaN where no pixel was kept, ``counts`` (32, side)
    int64 (``readout_order(frame)`` binned by one row), and each strip's pixel noise (32,): the
    median of its super-pixels' clipped standard deviations (0 for a constant strip).
    """
    sources, deviation, kept = _kept_deviation(frame, clip_sigma, source_sigma, ignored)
    means, counts = _row_means(sources, deviation, kept)
    return means.T, counts.T, np.median(sources.spread, axis=0)


@dataclass(frozen=True)
class TileSeries:
    """The two orders of every tile (super-pixel): its row means and its column means, detrended.

    ``rows`` and ``columns`` are (32 tile rows, 32 strips, cell) residuals after a count-weighted
    straight line; ``fitted`` (32, 32) the tiles measured: at least :data:`MIN_FILLED` of their rows
    and of their columns hold data, and their pixel noise is not 0;
    ``row_white`` and ``column_white`` (32, 32) the expected white-noise power of one periodogram
    bin of each order before detrending (pixel variance times the sum of 1 / count over the values
    with data): a tile the NaN border or a mask cuts has fewer values in one order than the other.
    """

    rows: np.ndarray
    columns: np.ndarray
    fitted: np.ndarray
    row_white: np.ndarray
    column_white: np.ndarray


def tile_series(
    sources: Sources, deviation: np.ndarray, kept: np.ndarray, row_means: np.ndarray, row_counts: np.ndarray
) -> TileSeries:
    """Row means (readout order binned by one row) and column means (the orthogonal order) of every tile.

    A tile is a super-pixel: ``cell`` rows of one amplifier's strip. Its row series is the strip's
    row means over those rows (background level plus mean kept deviation, as :func:`row_series`);
    its column series the mean kept deviation of each column over those rows (the background level
    is subtracted pixel by pixel and its linear gradient across the strip is removed by the line),
    so the light of a star, seen the same whichever way the tile is read, gives both the same
    power, and readout noise, constant along a row, only the row series.
    """
    n_rows = row_means.shape[0]
    cell = n_rows // GRID
    column_sums = deviation.reshape(GRID, cell, GRID, cell).sum(axis=1, dtype=np.float64)
    column_counts = np.count_nonzero(kept.reshape(GRID, cell, GRID, cell), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        column_means = np.where(column_counts > 0, column_sums / column_counts, 0.0)
        inverse_rows = np.where(row_counts > 0, 1.0 / row_counts, 0.0)
        inverse_columns = np.where(column_counts > 0, 1.0 / column_counts, 0.0)
    rows = np.nan_to_num(row_means).reshape(GRID, cell, GRID).transpose(0, 2, 1).reshape(-1, cell)
    counts = row_counts.reshape(GRID, cell, GRID).transpose(0, 2, 1).reshape(-1, cell)
    row_residual, row_fitted = detrend(rows, counts, TILE_DEGREE)
    column_residual, column_fitted = detrend(
        column_means.reshape(-1, cell), column_counts.reshape(-1, cell), TILE_DEGREE
    )
    variance = sources.spread.astype(np.float64) ** 2
    row_white = variance * inverse_rows.reshape(GRID, cell, GRID).sum(axis=1)
    column_white = variance * inverse_columns.sum(axis=2)
    # a tile needs data in most rows and columns: the white fraction the line leaves is computed for a full series
    enough = (np.count_nonzero(counts, axis=1) >= MIN_FILLED * cell) & (
        np.count_nonzero(column_counts.reshape(-1, cell), axis=1) >= MIN_FILLED * cell
    )
    fitted = (row_fitted & column_fitted & enough).reshape(GRID, GRID) & (row_white > 0) & (column_white > 0)
    return TileSeries(
        row_residual.reshape(GRID, GRID, cell),
        column_residual.reshape(GRID, GRID, cell),
        fitted,
        row_white,
        column_white,
    )


def order_test(
    row_power: np.ndarray, column_power: np.ndarray, valid: np.ndarray, cap: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per bin: ``u = (P_row - P_col) / (P_row + P_col)`` and its weight; per tile their weighted sums.

    ``row_power`` and ``column_power`` (..., bins) are the two orders' periodogram powers, each
    divided by its expected white level, and ``valid`` (...) the tiles measured. For independent
    exponential powers of equal mean (white noise, or any light seen alike in both orders) ``u``
    is uniform on [-1, 1] (mean 0, variance 1/3) and independent of ``P_row + P_col``, so a weight
    ``min(1, cap / mean power)`` that depends on the sum only (it mutes bins dominated by a star's
    residual light) keeps the mean 0. Returns ``u``, the weights, and per tile ``sum(w u)`` and
    ``sum(w^2)``.
    """
    total = row_power + column_power
    use = valid[..., None] & (total > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = np.where(use, (row_power - column_power) / total, 0.0)
        weight = np.where(use, np.minimum(1.0, cap / (0.5 * total)), 0.0)
    return u, weight, (weight * u).sum(axis=-1), (weight**2).sum(axis=-1)


def tile_significance(sums: np.ndarray, squares: np.ndarray, valid: np.ndarray, axis) -> np.ndarray:
    """Gaussian-equivalent significance of the summed ``w u`` of the tiles along ``axis``.

    The null variance is the larger of the white-noise value (``sum(w^2) / 3``) and the tiles'
    own scatter (sum of squared deviations from their mean, times ``n / (n - 1)``): light that
    differs between the two orders in single tiles (a diffraction spike across a tile) widens the
    scatter rather than adding significance. With the tiles' scatter the sum is a Student t
    statistic with ``n - 1`` degrees of freedom, converted to a Gaussian-equivalent ``z``.
    """
    from scipy import special

    n = np.count_nonzero(valid, axis=axis)
    total = np.where(valid, sums, 0.0).sum(axis=axis)
    theory = np.where(valid, squares, 0.0).sum(axis=axis) / 3.0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n
        centred = np.where(valid, sums - np.expand_dims(mean, axis), 0.0)
        scatter = n / np.maximum(n - 1, 1) * (centred**2).sum(axis=axis)
        t = total / np.sqrt(np.maximum(theory, scatter))
        tail = special.stdtr(np.maximum(n - 1, 1), -t)  # P(T > t)
        z = np.where(scatter > theory, -special.ndtri(np.clip(tail, 1e-300, 1.0)), t)
    return np.where((n > 1) & (theory > 0), z, np.nan)


def one_over_f_metrics(data: np.ndarray, dq: np.ndarray, options: OneOverFOptions) -> MonitorResult:
    """Readout-order over orthogonal-order power of every tile, tested per amplifier, pooled and for the common mode.

    Parameters
    ----------
    data : ndarray
        Level-2 rates in DN/s placed in the full frame (square, side divisible by 128; the
        reference-pixel border is NaN).
    dq : ndarray
        Data-quality flags, same shape; pixels with any of ``options.mask_dq_flags`` are ignored.
    options : OneOverFOptions
        Masking, tile bins, weight cap and the row-spectrum (figure) bands.
    """
    if problem := source_blocks_problem(data.shape[0]):
        return _result({}, {"status": f"{problem} (all metrics NaN)"})
    flagged = flagged_pixels(dq, options.mask_dq_flags)
    sources, deviation, kept = _kept_deviation(data, options.clip_sigma, options.source_sigma, flagged)
    means, counts = _row_means(sources, deviation, kept)  # (side, 32)
    rows = np.flatnonzero(counts.any(axis=1))
    notes = {"readout model": _READOUT_NOTE, "masking": _masking_note(counts, data, flagged.size, options)}
    if rows.size < options.min_rows:
        status = NO_USABLE_PIXEL if rows.size == 0 else f"only {rows.size} rows with data"
        notes["status"] = f"{status}: need {options.min_rows} rows for a spectrum (all metrics NaN)"
        return _result({}, notes)
    cell = data.shape[0] // GRID
    first, last = options.bins
    # The Nyquist bin is real-valued (1 degree of freedom: its u has variance 1/2, not 1/3): bins stop below it
    usable_last = min(last, cell // 2 - 1)
    if first > usable_last:
        notes["status"] = (
            f"bins {options.bins} do not fit {cell}-row tiles (at most {cell // 2 - 1}, below the Nyquist "
            "frequency): choose smaller bins"
        )
        return _result({}, notes)
    if usable_last < last:
        notes["bins"] = (
            f"bins {first}-{last} limited to {first}-{usable_last}: {cell}-row tiles (below the Nyquist bin)"
        )
        options = options.model_copy(update={"bins": (first, usable_last)})
        last = usable_last
    tiles = tile_series(sources, deviation, kept, means, counts)
    valid = tiles.fitted
    if not valid.any():
        notes["status"] = "no noise: the kept pixels are constant (white level 0), so no power ratio is defined"
        return _result({}, notes)
    fraction = white_fraction(cell, TILE_DEGREE)[first : last + 1]  # white power kept per bin by the line
    with np.errstate(invalid="ignore", divide="ignore"):
        row_white = np.where(valid, tiles.row_white, np.inf)[..., None] * fraction
        column_white = np.where(valid, tiles.column_white, np.inf)[..., None] * fraction
    row_power = np.abs(np.fft.rfft(tiles.rows, axis=-1)[..., first : last + 1]) ** 2 / row_white
    column_power = np.abs(np.fft.rfft(tiles.columns, axis=-1)[..., first : last + 1]) ** 2 / column_white
    _, _, sums, squares = order_test(row_power, column_power, valid, options.weight_cap)
    # the common mode: each tile row's series averaged over its strips (read at the same time), both orders
    n_strips = np.count_nonzero(valid, axis=1)
    common_valid = n_strips > 0
    scale = np.where(common_valid, 1.0 / np.maximum(n_strips, 1), 0.0)[:, None]
    common_rows = (tiles.rows * valid[..., None]).sum(axis=1) * scale
    common_columns = (tiles.columns * valid[..., None]).sum(axis=1) * scale
    common_row_white = np.where(valid, tiles.row_white, 0.0).sum(axis=1)[:, None] * scale**2 * fraction
    common_column_white = np.where(valid, tiles.column_white, 0.0).sum(axis=1)[:, None] * scale**2 * fraction
    with np.errstate(invalid="ignore", divide="ignore"):
        common_row_power = np.abs(np.fft.rfft(common_rows, axis=-1)[:, first : last + 1]) ** 2 / common_row_white
        common_column_power = (
            np.abs(np.fft.rfft(common_columns, axis=-1)[:, first : last + 1]) ** 2 / common_column_white
        )
    common_row_power = np.where(common_valid[:, None], common_row_power, 0.0)
    common_column_power = np.where(common_valid[:, None], common_column_power, 0.0)
    _, _, common_sums, common_squares = order_test(
        common_row_power, common_column_power, common_valid, options.weight_cap
    )
    in_tiles = valid[..., None]
    row_total = (row_power * in_tiles).sum(axis=(0, 2))
    column_total = (column_power * in_tiles).sum(axis=(0, 2))
    noisy = valid.any(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(noisy, row_total / column_total, np.nan)
        pooled = float(row_total.sum() / column_total.sum())
        common_ratio = float(
            (common_row_power * common_valid[:, None]).sum() / (common_column_power * common_valid[:, None]).sum()
        )
    values = {
        "one_over_f_power_ratio": (pooled, ratio),
        "one_over_f_significance": (
            float(tile_significance(sums.ravel(), squares.ravel(), valid.ravel(), 0)),
            tile_significance(sums, squares, valid, 0),
        ),
        "one_over_f_common_power_ratio": (common_ratio, None),
        "one_over_f_common_significance": (
            float(tile_significance(common_sums, common_squares, common_valid, 0)),
            None,
        ),
    }
    notes["test"] = _test_note(cell, options, int(valid.sum()))
    notes["summary"] = _summary(values, noisy)
    extras = _row_spectra(means, counts, rows, options)
    if extras is None:
        notes["spectra"] = "no row-series spectra (figure): choose a smaller low_band for this image size"
    return _result(values, notes, extras)


def _row_spectra(means: np.ndarray, counts: np.ndarray, rows: np.ndarray, options: OneOverFOptions) -> dict | None:
    """The row series' spectra over their white level (the report's figure; not used by the metrics)."""
    span = slice(rows[0], rows[-1] + 1)  # the science rows; the NaN border rows are left out
    residual, fitted = detrend(means.T[:, span], counts.T[:, span], options.detrend_degree)
    try:
        amps = band_power(residual, options.low_band, options.white_band_start, options.detrend_degree)
    except ValueError:
        return None
    noisy = fitted & (amps["white"] > 0)
    if not noisy.any():
        return None
    common = band_power(
        residual[noisy].mean(axis=0, keepdims=True), options.low_band, options.white_band_start, options.detrend_degree
    )
    white = np.where(noisy[:, None], amps["white"][:, None], np.nan)
    common_white = float(common["white"][0])
    return {
        "frequency": np.arange(amps["power"].shape[1], dtype=np.float64),  # cycles per frame
        "amplifier_power": amps["power"] / white,
        "common_power": common["power"][0] / common_white if common_white > 0 else common["power"][0],
        "low_bins": amps["low_bins"],
        "white_bins": amps["white_bins"],
    }


_READOUT_NOTE = (
    "each amplifier reads its strip row by row from row 0 (odd amplifiers from low to high column, even ones from "
    "high to low), all 32 at once; the readout series is binned by one row (mean of the row's kept pixels), "
    "so frequencies run from 1 cycle per frame to 0.5 cycles per row"
)


def _masking_note(counts: np.ndarray, frame: np.ndarray, n_flagged: int, options: OneOverFOptions) -> str:
    kept = int(counts.sum())
    finite = int(np.count_nonzero(np.isfinite(frame)))
    flagged = f", {n_flagged} more ignored for DQ flags {', '.join(options.mask_dq_flags)}" if n_flagged else ""
    return (
        f"{kept} of {finite} finite pixels kept within {options.clip_sigma:g} sigma of the smooth background "
        f"({finite - kept} masked as sources, within 4x4 blocks, or as outliers{flagged})"
    )


def _test_note(cell: int, options: OneOverFOptions, n_tiles: int) -> str:
    first, last = options.bins
    periods = ", ".join(f"{cell / j:.3g}" for j in range(first, last + 1))
    return (
        f"{n_tiles} tiles of {cell}x{cell} pixels (one per super-pixel); bins {first}-{last} of each tile "
        f"(periods of {periods} rows) in readout order (row means) against the orthogonal order (column means), "
        f"both less a straight line; bins above {options.weight_cap:g} times the white level muted"
    )


def _summary(values: dict[str, tuple], noisy: np.ndarray) -> str:
    pooled, per_amp = values["one_over_f_significance"]
    common = values["one_over_f_common_significance"][0]
    measured = np.isfinite(per_amp)
    if measured.any():
        worst = int(np.nanargmax(per_amp))
        largest = f"largest amplifier significance {per_amp[worst]:.1f} sigma (amplifier {worst + 1})"
    else:
        largest = "no amplifier with two tiles of data"
    missing = int((~measured).sum())
    return f"measured: {largest}, pooled {pooled:.1f} sigma, common mode {common:.1f} sigma" + (
        "" if not missing else f"; {missing} amplifier(s) without two tiles of data"
    )


def _result(values: dict[str, tuple], notes: dict[str, str], extras: dict[str, np.ndarray] | None = None):
    metrics = []
    for spec in METRICS:
        detector, amplifier = values.get(spec.name, (np.nan, None))
        metrics.append(
            Metric(
                spec,
                ScaleValues(
                    float(detector),
                    np.full(N_AMPLIFIERS, np.nan) if amplifier is None else np.asarray(amplifier, dtype=np.float64),
                    np.full(N_SUPERPIXELS, np.nan),
                ),
            )
        )
    return MonitorResult(metrics, notes, extras or {})
