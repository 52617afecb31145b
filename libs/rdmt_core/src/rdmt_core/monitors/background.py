"""Background monitor of Level-2 images (model type ImageModel).

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

The clipping is astropy's ``sigma_clipped_stats`` (see :mod:`.clipped`), done
on each scale's own pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from roman_datamodels import dqflags

from ..blockstats import ScaleValues, count_at_scales, superpixel_rows
from ..data_access import ArraySpec
from ..geometry import GRID, N_AMPLIFIERS, N_SUPERPIXELS
from ..records import Metric, MetricSpec
from .base import Context, Monitor, MonitorResult, ReportFigure
from .clipped import clip_sorted, clipped_at_scales, sorted_rows

if TYPE_CHECKING:
    from pathlib import Path

    from ..records import FileResult

RATE_UNIT = "DN/s"


class BackgroundOptions(BaseModel):
    """Options of the background monitor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clip_sigma: float = Field(3.0, gt=0, description="Sigma-clipping bound in standard deviations (both sides).")
    clip_maxiters: int = Field(5, ge=1, description="Largest number of sigma-clipping iterations.")
    jump_width: int = Field(
        16, ge=1, description="Columns on each side of an amplifier boundary used for the jump (at most half a strip)."
    )
    mask_sources: bool = Field(True, description="Mask 4x4 blocks around sources before the statistics.")
    source_sigma: float = Field(
        5.0, gt=0, description="A pixel, or a 4x4 block's mean, this many sigma above the background marks a source."
    )
    mask_dq_flags: tuple[str, ...] = Field(
        ("DO_NOT_USE",), description="DQ flags (roman_datamodels.dqflags.pixel names) of pixels to ignore."
    )

    @field_validator("mask_dq_flags")
    @classmethod
    def _known_flags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return known_dq_flags(value)


def known_dq_flags(names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` if each is a DQ flag of ``roman_datamodels.dqflags.pixel``; ValueError naming the unknown ones."""
    unknown = [n for n in names if n not in dqflags.pixel.__members__]
    if unknown:
        raise ValueError(f"unknown DQ flag(s) {', '.join(unknown)}; see roman_datamodels.dqflags.pixel")
    return tuple(names)


def dq_bits(flags: tuple[str, ...]) -> int:
    """The DQ bit mask of the named ``roman_datamodels.dqflags.pixel`` flags."""
    bits = 0
    for name in flags:
        bits |= int(dqflags.pixel[name])
    return bits


def flagged_pixels(dq: np.ndarray, flags: tuple[str, ...]) -> np.ndarray:
    """Flat indices of the pixels whose DQ has any of ``flags`` (only non-zero DQ values are examined)."""
    bits = dq_bits(flags)
    # flatnonzero of a boolean array is far faster than of an integer one
    nonzero = np.flatnonzero(dq.astype(bool)) if bits else np.empty(0, dtype=np.intp)
    return nonzero[(dq.ravel()[nonzero] & bits) != 0]


def masked_data(data: np.ndarray, dq: np.ndarray, flags: tuple[str, ...]) -> tuple[np.ndarray, int]:
    """``data`` with NaN where ``dq`` has any of ``flags`` (a copy only when needed), and how many were set."""
    flagged = flagged_pixels(dq, flags)
    if flagged.size == 0:
        return data, 0
    out = np.array(data, copy=True)
    out.ravel()[flagged] = np.nan
    return out, int(flagged.size)


SOURCE_BLOCK = 4  # pixels: sources are masked in blocks of 4x4, grown by one block
_LEVEL_SAMPLES = 16  # per side of a super-pixel: the smooth background comes from a 16x16 subsample


@dataclass(frozen=True)
class Sources:
    """The smooth background of a frame and the 4x4 blocks masked around its sources.

    ``level`` (side, 32) is each strip's background at each row, ``profile`` (32, cell) its slope
    along the row (zero at the strip's centre), ``spread`` (32, 32) each super-pixel's clipped
    standard deviation (0 without data), ``deviation`` (side, 32, cell) the frame less the
    background (a new array the caller may overwrite), ``blocks`` (side/4, side/4) the masked blocks.
    """

    level: np.ndarray
    profile: np.ndarray
    spread: np.ndarray
    deviation: np.ndarray
    blocks: np.ndarray

    def pixels(self) -> np.ndarray:
        """Frame-shaped boolean mask, True on pixels of masked blocks."""
        return np.repeat(np.repeat(self.blocks, SOURCE_BLOCK, axis=0), SOURCE_BLOCK, axis=1)


def source_blocks_problem(side: int) -> str:
    """Why a frame of ``side`` cannot be masked in 4x4 blocks aligned with its super-pixels ("" if it can)."""
    if side % (GRID * SOURCE_BLOCK):
        return (
            f"a {side}-pixel frame has {side // GRID}-pixel super-pixels: the 4x4 source blocks need a side "
            f"divisible by {GRID * SOURCE_BLOCK}"
        )
    return ""


def find_sources(frame: np.ndarray, source_sigma: float, sigma: float = 3.0) -> Sources:
    """Smooth background and source mask of a frame (square, side divisible by 128).

    A pixel more than ``source_sigma`` standard deviations above the background, or a 4x4 block
    whose mean is ``source_sigma`` times its own noise (sigma / 4) above it (the faint wings of a
    star), marks its block; every marked block and its 8 neighbours are masked, at least 4 pixels
    around every source pixel. The background is :func:`background_model` (``sigma`` clipping).
    """
    side = frame.shape[0]
    cell = side // GRID
    level, profile, spread = background_model(frame, sigma)
    spread = np.nan_to_num(spread)
    deviation = np.subtract(frame.reshape(side, GRID, cell), level.astype(frame.dtype)[:, :, None])
    deviation -= profile.astype(frame.dtype)[None, :, :]
    row_spread = np.repeat(spread, cell, axis=0).astype(frame.dtype)[:, :, None]
    block_spread = np.repeat(np.repeat(spread, cell // SOURCE_BLOCK, 0), cell // SOURCE_BLOCK, 1)
    with np.errstate(invalid="ignore"):
        bright = _any_in_blocks(deviation > source_sigma * row_spread)
        faint = _block_sums(deviation) > source_sigma * SOURCE_BLOCK * block_spread
    marked = bright | faint
    grown = marked.copy()
    grown[1:] |= marked[:-1]
    grown[:-1] |= marked[1:]
    blocks = grown.copy()
    blocks[:, 1:] |= grown[:, :-1]
    blocks[:, :-1] |= grown[:, 1:]
    return Sources(level, profile, spread, deviation, blocks)


def background_model(frame: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smooth background of a frame, from a regular subsample (at most 16x16 pixels per super-pixel).

    Returns ``level`` (side, 32): each strip's sigma-clipped super-pixel levels interpolated
    linearly in the row number between super-pixel centres; ``profile`` (32, cell): each strip's
    slope along x (a line through its columns' clipped medians), zero at the strip's centre; and
    ``spread`` (32, 32): the clipped standard deviation of each super-pixel (NaN without data).
    The slope is fitted to the columns' clipped medians of the subsample less the row level.
    The background at ``[row, strip, column]`` is ``level[row, strip] + profile[strip, column]``.
    """
    side = frame.shape[0]
    cell = side // GRID
    step = max(1, cell // _LEVEL_SAMPLES)
    sample = np.ascontiguousarray(frame[step // 2 :: step, step // 2 :: step])
    rows, n_valid = sorted_rows(superpixel_rows(sample))
    cells = clip_sorted(rows, n_valid, sigma)
    level_grid = cells.median.reshape(GRID, GRID)
    level = _interpolated_rows(level_grid, cell)
    # columns' medians about the row level, so a gradient along y (and stars on it) does not tilt them
    centred = sample - np.repeat(level[step // 2 :: step], cell // step, axis=1).astype(sample.dtype)
    columns, n_column = sorted_rows(np.ascontiguousarray(centred.T))
    column_level = clip_sorted(columns, n_column, sigma).median.reshape(GRID, -1)
    x = step // 2 + step * np.arange(column_level.shape[1]) - (cell - 1) / 2.0
    known = np.isfinite(column_level)
    with np.errstate(invalid="ignore", divide="ignore"):
        x_mean = (known * x).sum(axis=1, keepdims=True) / known.sum(axis=1, keepdims=True)
        dx = np.where(known, x - x_mean, 0.0)
        slope = (dx * np.nan_to_num(column_level)).sum(axis=1) / (dx * dx).sum(axis=1)
    profile = np.nan_to_num(slope)[:, None] * (np.arange(cell) - (cell - 1) / 2.0)
    return level, profile, cells.std.reshape(GRID, GRID)


def _interpolated_rows(level_grid: np.ndarray, cell: int) -> np.ndarray:
    """Per strip, super-pixel levels (block row, strip) interpolated linearly to every row, shape (rows, strips).

    Extrapolated linearly beyond the first and last centres (a gradient continues to the edge);
    super-pixels without a level are skipped; a strip with one level is constant, with none 0.
    """
    n_grid = level_grid.shape[0]
    rows = np.arange(n_grid * cell, dtype=np.float64)
    centres = (np.arange(n_grid) + 0.5) * cell - 0.5
    out = np.zeros((rows.size, level_grid.shape[1]))
    for strip in range(level_grid.shape[1]):
        known = np.flatnonzero(np.isfinite(level_grid[:, strip]))
        if known.size == 1:
            out[:, strip] = level_grid[known[0], strip]
        elif known.size > 1:
            x, y = centres[known], level_grid[known, strip]
            inside = np.interp(rows, x, y)
            low = y[0] + (rows - x[0]) * (y[1] - y[0]) / (x[1] - x[0])
            high = y[-1] + (rows - x[-1]) * (y[-1] - y[-2]) / (x[-1] - x[-2])
            out[:, strip] = np.where(rows < x[0], low, np.where(rows > x[-1], high, inside))
    return out


def _block_sums(values: np.ndarray) -> np.ndarray:
    """Sums of the 4x4 blocks of a square frame (any shape with its size); NaN where a block holds a NaN."""
    side = int(np.sqrt(values.size))
    n_blocks = side // SOURCE_BLOCK
    # adding strided slices is much faster than a reduction over an axis of length 4
    quads = values.reshape(side, n_blocks, SOURCE_BLOCK)
    columns = quads[:, :, 0] + quads[:, :, 1]
    columns += quads[:, :, 2]
    columns += quads[:, :, 3]
    rows = columns.reshape(n_blocks, SOURCE_BLOCK, n_blocks)
    out = rows[:, 0] + rows[:, 1]
    out += rows[:, 2]
    out += rows[:, 3]
    return out


def _any_in_blocks(mask: np.ndarray) -> np.ndarray:
    """Which 4x4 blocks of a square boolean frame (any shape with its size) hold a True pixel."""
    side = int(np.sqrt(mask.size))
    # 4 booleans side by side are one 32-bit word: a block row is non-zero when any of them is True
    words = np.ascontiguousarray(mask).reshape(side, side).view(np.uint32)
    rows = words.reshape(side // SOURCE_BLOCK, SOURCE_BLOCK, side // SOURCE_BLOCK)
    return (rows[:, 0] | rows[:, 1] | rows[:, 2] | rows[:, 3]) != 0


METRICS = (
    MetricSpec("background_level", RATE_UNIT, "Sigma-clipped median of the pixels (the background level)"),
    MetricSpec("background_rms", RATE_UNIT, "Sigma-clipped standard deviation (ddof=0) of the pixels"),
    MetricSpec(
        "background_rejected_fraction",
        "fraction",
        "Fraction of the finite pixels masked as sources or rejected by the clipping",
    ),
    MetricSpec(
        "background_jump",
        RATE_UNIT,
        "Level step from the left neighbour at the amplifier boundary (near-boundary columns; amplifier 1: "
        "the step to its right neighbour); detector: the largest step",
        two_sided=True,
    ),
)


def edge_levels(frame: np.ndarray, width: int, sigma: float, maxiters: int) -> dict[str, np.ndarray]:
    """Clipped medians of the first and last ``width`` columns of every amplifier strip.

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
            out[f"{name}_{scale}"] = clip_sorted(ordered, n_valid, sigma, maxiters).median
    return out


def amplifier_jumps(edges: dict[str, np.ndarray]) -> ScaleValues:
    """Steps across amplifier boundaries (right side minus left side) at the three scales.

    Amplifier n >= 2 (super-pixel column c >= 1) holds the step at its left boundary; amplifier 1
    (column 0), which has no left neighbour, holds the step at its right boundary, so every cell
    has a value. The detector holds the step of largest magnitude (signed). NaN where a side of a
    boundary has no finite pixel.
    """
    boundary = edges["first_amp"][1:] - edges["last_amp"][:-1]  # 31 boundaries, 1|2 .. 31|32
    amp = np.concatenate([boundary[:1], boundary])
    first = edges["first_cell"].reshape(GRID, GRID)
    last = edges["last_cell"].reshape(GRID, GRID)
    cell_boundary = first[:, 1:] - last[:, :-1]
    cell = np.concatenate([cell_boundary[:, :1], cell_boundary], axis=1)
    finite = np.isfinite(boundary)
    detector = float(boundary[finite][np.argmax(np.abs(boundary[finite]))]) if finite.any() else float("nan")
    return ScaleValues(detector, amp, cell.ravel())


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
    jumps = amplifier_jumps(edge_levels(frame, width, sigma, maxiters)) if width >= 1 else _nan_values()

    def rejected(scale: str) -> np.ndarray:
        n_valid, kept = finite.at(scale), stats.count.at(scale)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n_valid > 0, 1.0 - kept / n_valid, np.nan)

    fraction = ScaleValues(float(rejected("detector")[0]), rejected("amplifier"), rejected("superpixel"))
    values = {
        "background_level": stats.median,
        "background_rms": stats.std,
        "background_rejected_fraction": fraction,
        "background_jump": jumps,
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
    return MonitorResult([Metric(spec, values[spec.name]) for spec in METRICS], notes)


def _nan_values() -> ScaleValues:
    return ScaleValues(float("nan"), np.full(N_AMPLIFIERS, np.nan), np.full(N_SUPERPIXELS, np.nan))


def _status(stats, fraction: ScaleValues) -> dict[str, str]:
    """``status`` when the image could not be measured as usual (as every monitor says it), else ``summary``."""
    if stats.n_valid.detector == 0:
        return {"status": "no finite pixel: nothing to measure (all metrics NaN)"}
    if stats.std.detector == 0:
        return {
            "status": f"constant image: every kept pixel is {stats.median.detector:g} DN/s, so the rms is 0 (no noise)"
        }
    return {
        "summary": f"measured: level {stats.median.detector:.6g} DN/s, rms {stats.std.detector:.6g} DN/s, "
        f"{fraction.detector:.2%} of the finite pixels masked as sources or rejected by the clipping"
    }


class BackgroundMonitor(Monitor):
    """Sigma-clipped background level, its RMS and amplifier jumps of Level-2 images."""

    name = "background"
    title = "Background level and amplifier jumps"
    model_types = frozenset({"ImageModel"})
    arrays = {"data": ArraySpec("f"), "dq": ArraySpec("ui")}  # noqa: RUF012
    border = 4
    options_model = BackgroundOptions
    metric_specs = METRICS

    @classmethod
    def example_arrays(cls, side: int, seed: int) -> dict[str, np.ndarray]:
        return level2_example_frame(side, seed)

    @classmethod
    def compute(cls, arrays: dict[str, np.ndarray], options: BaseModel, context: Context) -> MonitorResult:
        assert isinstance(options, BackgroundOptions)
        return background_metrics(arrays["data"], arrays["dq"], options)

    @classmethod
    def report_figures(cls, result: FileResult, directory: Path, stem: str) -> list[ReportFigure]:
        path = directory / f"{stem}_background_map.png"
        caption = draw_background_map(result, path)
        return [ReportFigure(path, "Background level and amplifier jumps", caption)]


def level2_example_frame(side: int, seed: int) -> dict[str, np.ndarray]:
    """A synthetic Level-2 image (WFI01, default scene) in its full ``side`` frame with a NaN border."""
    from ..geometry import Geometry, to_frame
    from ..synthetic_l2 import BORDER, L2Scene, field_catalog, l2_arrays

    scene = L2Scene(seed=seed)
    arrays, *_ = l2_arrays("WFI01", field_catalog(scene, side, ("WFI01",)), scene, side)
    geometry = Geometry(side, BORDER)
    return {"data": to_frame(arrays["data"], geometry, np.nan), "dq": to_frame(arrays["dq"], geometry, 0)}


def draw_background_map(result: FileResult, path: Path) -> str:
    """Draw the super-pixel level map with flagged amplifier jumps marked; return the caption.

    Amplifier boundaries whose jump is at caution or fail are drawn as full-height lines,
    super-pixels whose step from their left neighbour is flagged as short segments on that
    boundary (red fail, amber caution). Drawn from the metrics and evaluations only.
    """
    from matplotlib.figure import Figure

    from ..outputs.figures import _MAP_COLOURS, colour_range
    from ..outputs.html import STATUS_LINE
    from ..outputs.verdicts import worst_severity
    from ..records import Status

    metrics = {m.spec.name: m.values for m in result.metrics}
    level = metrics["background_level"].at("superpixel")
    jumps = metrics["background_jump"]
    blocks = [b for b in result.evaluations if b.metric == "background_jump"]
    figure = Figure(figsize=(6.4, 5.4), dpi=100)
    axes = figure.add_axes((0.1, 0.15, 0.68, 0.74))
    image = axes.imshow(level.reshape(GRID, GRID), origin="lower", interpolation="nearest", cmap=_MAP_COLOURS)
    image.set_clim(*colour_range(level, count=True))  # the full range: a gradient across the detector is real
    figure.colorbar(image, cax=figure.add_axes((0.82, 0.15, 0.035, 0.74)), extend="neither").set_label(RATE_UNIT)
    marked = {Status.CAUTION: 0, Status.FAIL: 0}
    amp_severity = worst_severity([b for b in blocks if b.scale == "amplifier"], "amplifier")
    cell_severity = worst_severity([b for b in blocks if b.scale == "superpixel"], "superpixel").reshape(GRID, GRID)
    for status in marked:
        colour = STATUS_LINE[status]
        for amp in np.flatnonzero(amp_severity == status.severity):  # amp index 0..31; boundary on its left
            axes.axvline(max(amp, 1) - 0.5, color=colour, linewidth=2.0)  # amplifier 1 holds boundary 1|2
            axes.text(
                max(amp, 1) - 0.5,
                GRID - 0.2,
                f"{jumps.amplifier[amp]:+.3g}",
                color=colour,
                fontsize=7,
                ha="center",
                va="bottom",
            )
            marked[status] += 1
        rows, cols = np.nonzero(cell_severity == status.severity)
        if rows.size:
            axes.vlines(np.maximum(cols, 1) - 0.5, rows - 0.5, rows + 0.5, colors=colour, linewidth=3.0)
    axes.set_xlim(-0.5, GRID - 0.5)
    axes.set_xlabel("super-pixel column (amplifier - 1)")
    axes.set_ylabel("super-pixel row")
    axes.set_title(f"{result.identity.detector} background level (sigma-clipped median)", fontsize=10, pad=14)
    figure.savefig(path, pil_kwargs={"compress_level": 1})
    largest = (
        f"largest amplifier step {jumps.detector:+.4g} DN/s" if np.isfinite(jumps.detector) else "no amplifier step"
    )
    return (
        f"Sigma-clipped background level of each super-pixel (DN/s). Amplifier boundaries with a jump at fail "
        f"({marked[Status.FAIL]}) or caution ({marked[Status.CAUTION]}) are drawn as red or amber lines with the "
        f"step in DN/s; short segments mark super-pixels whose step from their left neighbour is flagged; {largest}."
    )
