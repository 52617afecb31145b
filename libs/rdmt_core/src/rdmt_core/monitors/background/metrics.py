"""Background metrics of a Level-2 image (pure, no I/O).

Reads ``data`` (DN/s) and ``dq``; pixels whose DQ has any of ``mask_dq_flags``
set, and non-finite pixels (the NaN reference-pixel border of the frame), are
ignored. The numerical core, :func:`background_metrics`, is a pure function.

* ``background_level``: sigma-clipped median of each cell's pixels (DN/s);
* ``background_rms``: sigma-clipped standard deviation, the pixel-to-pixel
  spatial RMS about the level (DN/s);
* ``background_rejected_fraction``: fraction of the finite pixels the clipping
  rejected (stars, defects);
* ``background_jump``: the level step at an amplifier boundary (DN/s), from the
  clipped means of the ``jump_width`` columns on each side of it, each side
  extrapolated to the boundary along its strip's own slope (the slope between
  the strip's first and last ``jump_width`` columns), so a smooth gradient adds
  nothing to first order: per amplifier n >= 2 the step from amplifier n - 1,
  per super-pixel the step from its left neighbour over the super-pixel's rows
  (amplifier 1 and column 0, without a left neighbour, repeat the step at their
  right boundary), for the detector the step of the most significant boundary;
* ``background_jump_error``: its 1-sigma standard error (DN/s): the white-noise
  error propagated from each band's clipped rms and kept pixels, times the
  boundary's correlated-noise factor, and for an amplifier step also by an
  allowance for neighbouring super-pixel steps being alike (long-memory 1/f;
  see :func:`correlated_noise_factor`);
* ``background_jump_significance``: jump / error (sigma, signed);
* ``background_jump_fraction``: jump / the sky level at the boundary (detector
  and amplifiers).

The clipping is astropy's ``sigma_clipped_stats`` (see :mod:`rdmt_core.measure.clipped`), done
on each scale's own pixels, after masking 4x4 blocks around sources
(:func:`rdmt_core.measure.sky.find_sources`) unless ``mask_sources`` is false.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ...geometry import GRID, N_AMPLIFIERS, N_SUPERPIXELS
from ...measure.blockstats import ScaleValues, count_at_scales
from ...measure.clipped import ClippedStats, clip_sorted, clipped_at_scales, sigma_clipped_stats, sorted_rows
from ...measure.dq import NO_USABLE_PIXEL, masked_data
from ...measure.sky import SOURCE_BLOCK, find_sources, source_blocks_problem
from ...records import Metric
from ..base import MonitorResult
from .options import METRICS, BackgroundOptions

# std of a unit normal clipped at 3 of its own clipped std (iterated): a clipped std reads this low
CLIPPED_NORMAL_STD = 0.9846
MIN_CELLS_FOR_SCATTER = 8  # super-pixel steps along a boundary needed to measure their scatter
MAD_TO_STD = 1.4826  # std of a normal over its median absolute deviation
CHI2_1_MEDIAN = 0.455  # median of a chi-square with 1 degree of freedom
HALVES_WHITE_99 = 1.53  # 99th percentile of sqrt(median of 31 chi-square(1) / 0.455): white noise
MAX_CORRELATION = 0.9  # largest lag-1 correlation of neighbouring super-pixel steps allowed for (n_eff >= n / 19)


def edge_levels(frame: np.ndarray, width: int, sigma: float, maxiters: int) -> dict[str, ClippedStats]:
    """Clipped statistics of the first and last ``width`` columns of every amplifier strip.

    Returns ``first``/``last``: 1024 super-pixels each, over the super-pixel's rows.
    """
    side = frame.shape[0]
    cell = side // GRID
    strips = frame.reshape(side, N_AMPLIFIERS, cell)
    out = {}
    for name, columns in (("first", slice(0, width)), ("last", slice(cell - width, cell))):
        edge = strips[:, :, columns]
        by_cell = edge.reshape(GRID, cell, GRID, width).transpose(0, 2, 1, 3).reshape(N_SUPERPIXELS, cell * width)
        ordered, n_valid = sorted_rows(np.array(by_cell))
        out[name] = clip_sorted(ordered, n_valid, sigma, maxiters)
    return out


def band_counts(finite: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Finite pixels of the first and last ``width`` columns of each super-pixel (1024 each)."""
    side = finite.shape[0]
    cell = side // GRID
    strips = finite.reshape(GRID, cell, N_AMPLIFIERS, cell)
    first = strips[:, :, :, :width].sum(axis=(1, 3), dtype=np.int64).ravel()
    last = strips[:, :, :, cell - width :].sum(axis=(1, 3), dtype=np.int64).ravel()
    return first, last


def minimum_kept(
    edges: dict[str, ClippedStats], band_pixels: tuple[np.ndarray, np.ndarray], min_kept: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels each super-pixel band must keep: ``min_kept`` x its finite pixels x the median kept fraction.

    The median kept fraction of all bands (about 1 in a sparse field, 0.1 in a crowded one) makes
    the test relative: a band keeping less than half of what a typical band keeps sits beside a
    bright star whose halo reaches beyond its mask.
    """
    kept = np.concatenate([edges["first"].count, edges["last"].count])
    finite = np.concatenate(band_pixels)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = kept[finite > 0] / finite[finite > 0]
    typical = float(np.median(fraction)) if fraction.size else 0.0
    return min_kept * typical * band_pixels[0], min_kept * typical * band_pixels[1]


def mean_error(stats: ClippedStats, min_count: np.ndarray | float = 2) -> np.ndarray:
    """1-sigma uncertainty of each clipped mean, ``std / sqrt(count)``; NaN below ``min_count`` (and 2) kept pixels."""
    with np.errstate(invalid="ignore", divide="ignore"):
        enough = (stats.count >= np.maximum(min_count, 2)) & (stats.count > 0)
        return np.where(enough, stats.std / np.sqrt(np.maximum(stats.count, 1)), np.nan)


@dataclass(frozen=True)
class Jumps:
    """Steps across amplifier boundaries at the three scales, their uncertainties and significances."""

    values: ScaleValues  # DN/s, right minus left, extrapolated to the boundary
    error: ScaleValues  # DN/s, 1 sigma (white error x correlated-noise factor; amplifiers: x the allowance)
    significance: ScaleValues  # values / error
    fraction: ScaleValues  # values / the sky level at the boundary (super-pixels: NaN)
    white_error: ScaleValues  # DN/s, the white-noise error alone
    noise_factor: np.ndarray  # (31,) correlated-noise factor of each boundary 1|2 .. 31|32 (>= 1)
    correlation: np.ndarray  # (31,) lag-1 correlation of neighbouring super-pixel steps (amplifier errors)


def boundary_steps(
    first: ClippedStats,
    last: ClippedStats,
    shape: tuple[int, ...],
    cell: int,
    width: int,
    min_count: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps at the 31 boundaries between strips (last axis of ``shape``), their white errors and levels.

    Each strip's level near its left (right) edge is the clipped mean of its first (last) ``width``
    columns; its slope along the row is their difference over the ``cell - width`` columns between
    the bands' centres. Each side is extrapolated by half a band (``width / 2`` columns) to the
    boundary along its own strip's slope:
    ``step = F_r - L_l - a (L_l - F_l) - a (L_r - F_r)`` with ``a = (width / 2) / (cell - width)``,
    whose white-noise variance is ``(1 + a)^2 (eF_r^2 + eL_l^2) + a^2 (eF_l^2 + eL_r^2)``.
    A band keeping fewer than ``min_count`` (first, last) pixels has no level: its steps are NaN.
    Returns (steps, white errors, sky level at the boundary), each of shape ``shape[:-1] + (31,)``.
    """
    f, lv = first.mean.reshape(shape), last.mean.reshape(shape)
    min_first, min_last = min_count if min_count is not None else (2, 2)
    ef, el = mean_error(first, min_first).reshape(shape), mean_error(last, min_last).reshape(shape)
    a = (width / 2.0) / (cell - width)
    f_l, f_r, l_l, l_r = f[..., :-1], f[..., 1:], lv[..., :-1], lv[..., 1:]
    step = f_r - l_l - a * (l_l - f_l) - a * (l_r - f_r)
    variance = (1 + a) ** 2 * (ef[..., 1:] ** 2 + el[..., :-1] ** 2) + a**2 * (ef[..., :-1] ** 2 + el[..., 1:] ** 2)
    with np.errstate(invalid="ignore"):
        error = np.sqrt(variance)
    step = np.where(np.isfinite(error), step, np.nan)
    return step, error, 0.5 * (f_r + l_l)


def _mad_std(values: np.ndarray) -> np.ndarray:
    """Per row, the standard deviation of a normal from the median absolute deviation (NaNs ignored)."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows without a finite value: NaN
        centre = np.nanmedian(values, axis=-1, keepdims=True)
        return MAD_TO_STD * np.nanmedian(np.abs(values - centre), axis=-1)


@dataclass(frozen=True)
class BoundaryNoise:
    """How the super-pixel steps along each boundary scatter beyond their white errors."""

    factor: np.ndarray  # (31,) correlated-noise factor (>= 1): multiplies every error of the boundary
    correlation: np.ndarray  # (31,) lag-1 correlation of neighbouring super-pixel steps (0 to MAX_CORRELATION)
    amplifier_factor: np.ndarray  # (31,) sqrt((1 + rho) / (1 - rho)): more on the amplifier step's error


def correlated_noise_factor(cell_steps: np.ndarray, cell_error: np.ndarray, amp_steps: np.ndarray) -> BoundaryNoise:
    """Per boundary, how much more the super-pixel steps along it scatter than their white errors say.

    ``cell_steps`` and ``cell_error`` are (32 rows, 31 boundaries), ``amp_steps`` (31,). The
    deviations of the super-pixel steps from the boundary's amplifier step, in units of their white
    errors, give two estimates of the noise beyond white per boundary:

    * their spread: sigma-clipped (3 sigma: a local step or a star's residual is left out), std
      corrected for the clipping;
    * the differences between neighbouring super-pixels along the boundary: the median absolute
      deviation of the differences, over sqrt(2). A change point (a step over only some of the
      rows) moves one difference, so it does not raise this estimate, while it raises the spread
      (half the rows at +s/2, half at -s/2).

    The boundary's own factor is the smaller of the two: a boundary whose steps scatter beyond white
    noise *from one super-pixel to the next* (an amplifier noisier than the others), not one with a
    step over part of its rows. The factor is that where it is beyond the 99 % range of a white-noise
    estimate from as many steps (``1 + 2.6 / sqrt(2 (n - 1))``, 1.33 for 32), otherwise the pooled
    spread of all boundaries (a partial step at one boundary is a few of 992 deviations, clipped),
    and never below 1.

    Noise correlated over many rows (readout 1/f with power at periods of the frame and longer)
    makes neighbouring super-pixel steps alike: their mean, the amplifier step, then varies more
    than ``factor / sqrt(n)`` says. The lag-1 correlation ``rho = 1 - (s_diff / s_dev)^2`` (MADs of
    the differences over sqrt 2 and of the deviations: a change point moves neither much) is taken
    as the median over the boundaries (a partial step at one boundary does not change it), from 0
    to ``MAX_CORRELATION``, and the amplifier error is multiplied by ``sqrt((1 + rho) / (1 - rho))``
    (the effective number of independent steps ``n (1 - rho) / (1 + rho)``).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        deviation = (cell_steps - amp_steps[None, :]) / cell_error
    by_boundary = np.ascontiguousarray(deviation.T)  # (31, 32)
    ordered, n_valid = sorted_rows(by_boundary.copy())
    own = clip_sorted(ordered, n_valid)
    finite = deviation[np.isfinite(deviation)]
    pooled_factor = sigma_clipped_stats(finite)[2] / CLIPPED_NORMAL_STD if finite.size >= MIN_CELLS_FOR_SCATTER else 1.0
    spread = own.std / CLIPPED_NORMAL_STD
    neighbour = _mad_std(np.diff(by_boundary, axis=1)) / np.sqrt(2.0)
    own_factor = np.fmin(spread, neighbour)
    with np.errstate(invalid="ignore", divide="ignore"):
        beyond_white = own_factor > 1.0 + 2.6 / np.sqrt(2.0 * (own.count - 1))
    use_own = (own.count >= MIN_CELLS_FOR_SCATTER) & beyond_white & np.isfinite(own_factor)
    factor = np.where(use_own, own_factor, 1.0)
    factor = np.maximum(factor, max(pooled_factor if np.isfinite(pooled_factor) else 1.0, 1.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = 1.0 - (neighbour / _mad_std(by_boundary)) ** 2
    rho = np.where(own.count >= MIN_CELLS_FOR_SCATTER, rho, np.nan)
    typical = float(np.nanmedian(rho)) if np.isfinite(rho).any() else 0.0
    typical = float(np.clip(typical, 0.0, MAX_CORRELATION))
    correlation = np.full(factor.shape, typical)
    halves = _halves_factor(by_boundary)
    amplifier = np.maximum(np.sqrt((1.0 + correlation) / (1.0 - correlation)), halves / factor)
    return BoundaryNoise(factor, correlation, amplifier)


def _halves_factor(deviation: np.ndarray) -> np.ndarray:
    """The amplifier step's error from the difference of the two halves of each boundary, pooled (>= 1).

    ``deviation`` (31 boundaries, 32 steps) in units of the steps' white errors. The mean of each
    half's ``n / 2`` steps; ``(difference)^2 / 4`` estimates the variance of the amplifier step
    (``1 / n`` for white noise), whatever the correlation within the halves. The median over the
    boundaries (a step over part of one boundary's rows does not move it), over the median of a
    chi-square with 1 degree of freedom (0.455), relative to white noise: the factor the amplifier
    step's white error needs at least. Taken where beyond the 99 % range of white noise (1.53 for
    31 boundaries), otherwise 1, so it costs white noise nothing. Power at periods much longer
    than the frame (an offset of each amplifier constant over the frame) is beyond any estimate
    from one frame: what the halves see of it is all that is allowed for.
    """
    n_boundaries, n = deviation.shape
    half = n // 2
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a half without a measured step: NaN
        means = np.nanmean(deviation[:, : 2 * half].reshape(n_boundaries, 2, half), axis=2)
    q = (means[:, 0] - means[:, 1]) ** 2 / 4.0 * n
    q = q[np.isfinite(q)]
    if q.size < MIN_CELLS_FOR_SCATTER:
        return np.ones(n_boundaries)
    halves = float(np.sqrt(np.median(q) / CHI2_1_MEDIAN))
    return np.full(n_boundaries, halves if halves > HALVES_WHITE_99 else 1.0)


def amplifier_jumps(
    edges: dict[str, ClippedStats], cell: int, width: int, min_count: tuple[np.ndarray, np.ndarray] | None = None
) -> Jumps:
    """Steps across amplifier boundaries (right side minus left side) at the three scales, with their errors.

    Amplifier n >= 2 (super-pixel column c >= 1) holds the step at its left boundary; amplifier 1
    (column 0), which has no left neighbour, holds the step at its right boundary, so every cell
    has a value. A super-pixel step (:func:`boundary_steps`) is NaN where a band keeps fewer than
    ``min_count`` (first, last; per super-pixel) pixels. An amplifier step is the inverse-variance
    weighted mean of the measured super-pixel steps along its boundary (so the super-pixels left out
    beside a bright star are left out of it too), its white error ``1 / sqrt(sum of weights)``.
    The error of every step is its white-noise error times the boundary's
    :func:`correlated_noise_factor`; an amplifier step's error also times the allowance for
    correlated neighbouring steps (``amplifier_factor``: the 32 steps are not independent). The
    detector holds the step (error, significance, fraction) of the boundary with the largest
    significance in magnitude.
    """
    cells, cell_white, cell_sky = boundary_steps(edges["first"], edges["last"], (GRID, GRID), cell, width, min_count)
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(np.isfinite(cells), 1.0 / cell_white**2, 0.0)
        total = weight.sum(axis=0)
        amp = np.where(total > 0, (weight * np.nan_to_num(cells)).sum(axis=0) / total, np.nan)
        amp_sky = np.where(total > 0, (weight * np.nan_to_num(cell_sky)).sum(axis=0) / total, np.nan)
        amp_white = np.where(total > 0, 1.0 / np.sqrt(total), np.nan)
    noise = correlated_noise_factor(cells, cell_white, amp)
    factor = noise.factor
    amp_error, cell_error = amp_white * factor * noise.amplifier_factor, cell_white * factor[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        amp_z, cell_z = amp / amp_error, cells / cell_error
        amp_fraction = np.where(amp_sky > 0, amp / amp_sky, np.nan)

    def per_amp(v: np.ndarray) -> np.ndarray:  # 31 boundaries -> 32 amplifiers (1 repeats 1|2)
        return np.concatenate([v[..., :1], v], axis=-1)

    finite = np.flatnonzero(np.isfinite(amp_z))
    worst = finite[np.argmax(np.abs(amp_z[finite]))] if finite.size else None

    def scales(boundary: np.ndarray, per_cell: np.ndarray | None) -> ScaleValues:
        detector = float(boundary[worst]) if worst is not None else float("nan")
        superpixel = per_amp(per_cell).ravel() if per_cell is not None else np.full(N_SUPERPIXELS, np.nan)
        return ScaleValues(detector, per_amp(boundary), superpixel)

    return Jumps(
        values=scales(amp, cells),
        error=scales(amp_error, cell_error),
        significance=scales(amp_z, cell_z),
        fraction=scales(amp_fraction, None),
        white_error=scales(amp_white, cell_white),
        noise_factor=factor,
        correlation=noise.correlation,
    )


def background_metrics(data: np.ndarray, dq: np.ndarray, options: BackgroundOptions) -> MonitorResult:
    """All background metrics at the three scales.

    Parameters
    ----------
    data : ndarray
        Level-2 rates in DN/s placed in the full frame (square, side divisible by 32; the
        reference-pixel border is NaN). Non-finite pixels are ignored.
    dq : ndarray
        Data-quality flags, same shape; pixels with any of ``options.mask_dq_flags`` are ignored.
    options : BackgroundOptions
        Clipping and jump settings.
    """
    frame, n_flagged = masked_data(data, dq, options.mask_dq_flags)
    finite = count_at_scales(np.isfinite(frame))
    cell = frame.shape[0] // GRID
    width = min(options.jump_width, cell // 2)
    band_pixels = band_counts(np.isfinite(frame), width) if width >= 1 else None
    if options.mask_sources and (problem := source_blocks_problem(frame.shape[0])):
        return MonitorResult(
            [Metric(spec, _nan_values()) for spec in METRICS], {"status": f"{problem} (all metrics NaN)"}
        )
    if options.mask_sources:
        blocks = find_sources(frame, options.source_sigma).blocks[:, None, :, None]
        n_blocks = blocks.shape[0]
        tiles = frame.reshape(n_blocks, SOURCE_BLOCK, n_blocks, SOURCE_BLOCK)
        frame = np.where(blocks, np.asarray(np.nan, dtype=frame.dtype), tiles).reshape(frame.shape)
    sigma, maxiters = options.clip_sigma, options.clip_maxiters
    stats = clipped_at_scales(frame, sigma, maxiters)
    jumps = None
    if band_pixels is not None:
        edges = edge_levels(frame, width, sigma, maxiters)
        jumps = amplifier_jumps(edges, cell, width, minimum_kept(edges, band_pixels, options.jump_min_kept))

    def rejected(scale: str) -> np.ndarray:
        n_valid, kept = finite.at(scale), stats.count.at(scale)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n_valid > 0, 1.0 - kept / n_valid, np.nan)

    fraction = ScaleValues(float(rejected("detector")[0]), rejected("amplifier"), rejected("superpixel"))
    nan = _nan_values()
    values = {
        "background_level": stats.median,
        "background_rms": stats.std,
        "background_rejected_fraction": fraction,
        "background_jump": jumps.values if jumps else nan,
        "background_jump_error": jumps.error if jumps else nan,
        "background_jump_significance": jumps.significance if jumps else nan,
        "background_jump_fraction": jumps.fraction if jumps else nan,
    }
    notes = {
        **_status(stats, fraction),
        "clipping": f"sigma-clipped statistics: {sigma:g} sigma about the median, at most {maxiters} iterations",
        "jump": f"clipped means of the {width} columns on each side of each amplifier boundary, each extrapolated "
        "to the boundary along its strip's slope (from the strip's first and last bands)",
        "finite pixels": f"{int(finite.detector)} of {data.size}"
        + (f" ({n_flagged} more ignored for DQ flags {', '.join(options.mask_dq_flags)})" if n_flagged else ""),
        "sources": (
            f"{int(finite.detector - stats.n_valid.detector)} finite pixels masked around sources "
            f"(a pixel, or a 4x4 block's mean, {options.source_sigma:g} sigma above the smooth background; "
            "masked in 4x4 blocks grown by one block)"
            if options.mask_sources
            else "sources not masked (mask_sources: false): only the clipping rejects them"
        ),
    }
    if width < options.jump_width:
        notes["jump"] += f" (jump_width {options.jump_width} reduced to half the {cell}-column strip)"
    if jumps is not None:
        notes["jump noise"] = _noise_note(jumps)
        n_short = int(np.isnan(jumps.values.superpixel).sum())
        if n_short:
            notes["jump pixels"] = (
                f"{n_short} of {N_SUPERPIXELS} super-pixel jumps not measured (NaN): a band of one of the two "
                f"super-pixels keeps less than jump_min_kept {options.jump_min_kept:g} of what a typical band keeps "
                "after masking sources (a bright star's halo beyond its mask would fake a step)"
            )
    return MonitorResult([Metric(spec, values[spec.name]) for spec in METRICS], notes)


def _noise_note(jumps: Jumps) -> str:
    """How the errors were inflated for noise correlated along the rows (readout 1/f), if at all."""
    factor = jumps.noise_factor
    text = (
        f"white-noise error of an amplifier step {_median(jumps.white_error.amplifier):.3g} DN/s (median); "
        f"the super-pixel steps along the 31 boundaries scatter {np.median(factor):.3g} times (median; "
        f"largest {np.max(factor):.3g}) their white errors, and every error is multiplied by its boundary's factor"
    )
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant image: 0 / 0
        per_amp = np.concatenate([factor[:1], factor])
        allowance = _median(jumps.error.amplifier / (jumps.white_error.amplifier * per_amp))
    if allowance > 1.01:
        text += (
            f"; neighbouring super-pixel steps are alike (lag-1 correlation {np.median(jumps.correlation):.2f}), "
            f"so the amplifier errors are {allowance:.3g} times more (not 32 independent steps)"
        )
    if np.median(factor) > 1.5:
        text += ": noise correlated along the rows (readout 1/f?) is judged by the one_over_f monitor, not here"
    return text


def _median(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else float("nan")


def _nan_values() -> ScaleValues:
    return ScaleValues(float("nan"), np.full(N_AMPLIFIERS, np.nan), np.full(N_SUPERPIXELS, np.nan))


def _status(stats, fraction: ScaleValues) -> dict[str, str]:
    """``status`` when the image could not be measured as usual (as every monitor says it), else ``summary``."""
    if stats.n_valid.detector == 0:
        return {"status": f"{NO_USABLE_PIXEL}: nothing to measure (all metrics NaN)"}
    if stats.std.detector == 0:
        return {
            "status": f"constant image: every kept pixel is {stats.median.detector:g} DN/s, so the rms is 0 (no noise)"
        }
    return {
        "summary": f"measured: level {stats.median.detector:.6g} DN/s, rms {stats.std.detector:.6g} DN/s, "
        f"{fraction.detector:.2%} of the finite pixels masked as sources or rejected by the clipping"
    }
