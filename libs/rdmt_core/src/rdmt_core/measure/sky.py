"""The smooth sky background of a Level-2 frame and the mask of its sources.

Shared by the background and 1/f monitors. :func:`background_model` fits a
smooth background (per amplifier strip: sigma-clipped super-pixel levels
interpolated along the rows, plus a slope along the columns) to a regular
subsample of the frame; :func:`find_sources` masks 4x4 blocks around the pixels
and blocks standing out of it. Pure numpy, on frames in DN/s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import GRID
from .blockstats import superpixel_rows
from .clipped import clip_sorted, sorted_rows

RATE_UNIT = "DN/s"  # unit of Level-2 image data

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
