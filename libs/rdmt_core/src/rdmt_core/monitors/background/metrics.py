"""Background metrics of a Level-2 image (pure, no I/O).

Reads ``data`` (DN/s) and ``dq``; pixels whose DQ has any of ``mask_dq_flags``
set, and non-finite pixels (the NaN reference-pixel border of the frame), are
ignored. The numerical core, :func:`background_metrics`, is a pure function.

* ``background_level``: sigma-clipped median of each cell's pixels (DN/s);
* ``background_rms``: sigma-clipped standard deviation, the pixel-to-pixel
  spatial RMS about the level (DN/s);
* ``background_rejected_fraction``: fraction of the finite pixels the clipping
  rejected (stars, defects);
* ``background_jump``: the level step at an amplifier boundary, measured on the
  ``jump_width`` columns on each side of it so that a smooth gradient adds only
  ``gradient * jump_width``: per amplifier n >= 2 the step from amplifier n - 1,
  per super-pixel the step from its left neighbour over the super-pixel's rows
  (amplifier 1 and column 0, without a left neighbour, repeat the step at their
  right boundary), for the detector the step of largest magnitude (signed).
  Each jump's 1-sigma uncertainty is ``sqrt(pi / 2) * sqrt(s_l^2 / n_l + s_r^2 / n_r)``
  (the standard error of a difference of medians; ``s`` the clipped RMS and ``n``
  the kept pixels of each side); a jump less precise than ``jump_precision`` is
  NaN, so too few unmasked pixels (a crowded field, a small image) is
  ``incomplete``, not a false step.

The clipping is astropy's ``sigma_clipped_stats`` (see :mod:`rdmt_core.measure.clipped`), done
on each scale's own pixels, after masking 4x4 blocks around sources
(:func:`rdmt_core.measure.sky.find_sources`) unless ``mask_sources`` is false.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...geometry import GRID, N_AMPLIFIERS, N_SUPERPIXELS
from ...measure.blockstats import ScaleValues, count_at_scales
from ...measure.clipped import ClippedStats, clip_sorted, clipped_at_scales, sorted_rows
from ...measure.dq import NO_USABLE_PIXEL, masked_data
from ...measure.sky import SOURCE_BLOCK, find_sources, source_blocks_problem
from ...records import Metric
from ..base import MonitorResult
from .options import METRICS, BackgroundOptions

MEDIAN_ERROR = float(np.sqrt(np.pi / 2.0))  # standard error of a normal sample's median, in sigma / sqrt(n)


def edge_levels(frame: np.ndarray, width: int, sigma: float, maxiters: int) -> dict[str, ClippedStats]:
    """Clipped statistics of the first and last ``width`` columns of every amplifier strip.

    Returns ``first_cell``/``last_cell`` (1024 super-pixels, over the super-pixel's rows) and
    ``first_amp``/``last_amp`` (32 strips, over all rows).
    """
    side = frame.shape[0]
    cell = side // GRID
    strips = frame.reshape(side, N_AMPLIFIERS, cell)
    out = {}
    for name, columns in (("first", slice(0, width)), ("last", slice(cell - width, cell))):
        edge = strips[:, :, columns]
        by_cell = edge.reshape(GRID, cell, GRID, width).transpose(0, 2, 1, 3).reshape(N_SUPERPIXELS, cell * width)
        by_amp = edge.transpose(1, 0, 2).reshape(N_AMPLIFIERS, side * width)
        for scale, rows in (("cell", by_cell), ("amp", by_amp)):
            ordered, n_valid = sorted_rows(np.array(rows))
            out[f"{name}_{scale}"] = clip_sorted(ordered, n_valid, sigma, maxiters)
    return out


def median_error(stats: ClippedStats) -> np.ndarray:
    """1-sigma uncertainty of each clipped median: ``sqrt(pi / 2) * std / sqrt(count)`` (NaN without pixels)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(stats.count > 0, MEDIAN_ERROR * stats.std / np.sqrt(stats.count), np.nan)


@dataclass(frozen=True)
class Jumps:
    """Steps across amplifier boundaries at the three scales, their uncertainties, and what was too imprecise."""

    values: ScaleValues  # DN/s; NaN where a side has no pixel or the uncertainty is above the precision
    error: ScaleValues  # DN/s, 1 sigma of every measured step (the detector's: of the step it holds)
    imprecise: dict[str, int]  # amplifier, superpixel: cells with a step whose uncertainty is above the precision


def amplifier_jumps(edges: dict[str, ClippedStats], precision: float = np.inf) -> Jumps:
    """Steps across amplifier boundaries (right side minus left side) at the three scales.

    Amplifier n >= 2 (super-pixel column c >= 1) holds the step at its left boundary; amplifier 1
    (column 0), which has no left neighbour, holds the step at its right boundary, so every cell
    has a value. The detector holds the step of largest magnitude (signed) among the precise ones.
    A step's uncertainty combines the :func:`median_error` of its two sides; a step whose
    uncertainty is above ``precision`` is NaN, as is one where a side has no finite pixel.
    """

    def steps(first: ClippedStats, last: ClippedStats, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        right, left = first.median.reshape(shape)[..., 1:], last.median.reshape(shape)[..., :-1]
        error = np.hypot(median_error(first).reshape(shape)[..., 1:], median_error(last).reshape(shape)[..., :-1])
        both = (right - left, error)
        return tuple(np.concatenate([v[..., :1], v], axis=-1) for v in both)

    amp, amp_error = steps(edges["first_amp"], edges["last_amp"], (N_AMPLIFIERS,))
    cell, cell_error = steps(edges["first_cell"], edges["last_cell"], (GRID, GRID))
    cell, cell_error = cell.ravel(), cell_error.ravel()
    imprecise = {}
    for scale, (value, error) in {"amplifier": (amp, amp_error), "superpixel": (cell, cell_error)}.items():
        with np.errstate(invalid="ignore"):
            too_wide = np.isfinite(value) & ~(error <= precision)
        value[too_wide] = np.nan
        imprecise[scale] = int(too_wide.sum())
    boundary, boundary_error = amp[1:], amp_error[1:]  # 31 boundaries, 1|2 .. 31|32
    finite = np.flatnonzero(np.isfinite(boundary))
    worst = finite[np.argmax(np.abs(boundary[finite]))] if finite.size else None
    detector = float(boundary[worst]) if worst is not None else float("nan")
    detector_error = float(boundary_error[worst]) if worst is not None else float("nan")
    return Jumps(
        ScaleValues(detector, amp, cell),
        ScaleValues(detector_error, amp_error, cell_error),
        imprecise,
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
    cell = frame.shape[0] // GRID
    width = min(options.jump_width, cell // 2)
    jumps = None
    if width >= 1:
        jumps = amplifier_jumps(edge_levels(frame, width, sigma, maxiters), options.jump_precision)

    def rejected(scale: str) -> np.ndarray:
        n_valid, kept = finite.at(scale), stats.count.at(scale)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n_valid > 0, 1.0 - kept / n_valid, np.nan)

    fraction = ScaleValues(float(rejected("detector")[0]), rejected("amplifier"), rejected("superpixel"))
    values = {
        "background_level": stats.median,
        "background_rms": stats.std,
        "background_rejected_fraction": fraction,
        "background_jump": jumps.values if jumps is not None else _nan_values(),
    }
    notes = {
        **_status(stats, fraction),
        "clipping": f"sigma-clipped statistics: {sigma:g} sigma about the median, at most {maxiters} iterations",
        "jump": f"clipped medians of the {width} columns on each side of each amplifier boundary",
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
    if jumps is not None and any(jumps.imprecise.values()):
        notes["jump precision"] = _precision_note(jumps, options.jump_precision)
    return MonitorResult([Metric(spec, values[spec.name]) for spec in METRICS], notes)


def _precision_note(jumps: Jumps, precision: float) -> str:
    """Which jumps were not measured for want of precision, and why."""
    scales = (("superpixel", N_SUPERPIXELS, "super-pixel"), ("amplifier", N_AMPLIFIERS, "amplifier"))
    counts = [f"{jumps.imprecise[s]} of {size} {name} jumps" for s, size, name in scales if jumps.imprecise[s]]
    return (
        f"{' and '.join(counts)} not measured (NaN): their 1-sigma uncertainty, sqrt(pi/2) x clipped rms / "
        f"sqrt(kept pixels) on each side, is above jump_precision {precision:g} DN/s; too few pixels beside the "
        "boundary are left after masking sources (a crowded field) or the image is small"
    )


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
