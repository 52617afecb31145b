"""The reference-pixel border of a reference file, left out of the super-pixels before they are sorted.

A WFI reference file covers the whole 4096 x 4096 frame, including the reference pixels: a border
``reference_border`` pixels wide on every edge (rows and columns 0-3 and 4092-4095). Their values
(0, NaN or anything else) are not measurements of the detector's light-sensitive pixels. The gain,
readnoise and saturation monitors read ``data`` without relying on a DQ flag to find them, so they
set them to NaN in the super-pixel rows (the copy that is sorted anyway: no extra frame copy) and
subtract them from every pixel count. The cells stay the 32 amplifiers and 1,024 super-pixels of
the full frame; the edge cells just have fewer pixels. The border is the same number of pixels at
any frame size (4 in the examples at 256 or 512 as at 4096).

Shared by the three monitors (imported only when a file is measured); its natural home is
``rdmt_core.measure``.
"""

from __future__ import annotations

import numpy as np

from ...geometry import GRID
from ...measure.blockstats import superpixel_rows
from ...measure.grouped import SortedRows


def check_border(side: int, border: int) -> None:
    """ValueError unless a ``border``-pixel border leaves science pixels in a ``side``-pixel frame."""
    if not 0 <= 2 * border < side:
        raise ValueError(f"reference_border {border} does not fit a {side} x {side} frame")


def border_pixels_per_superpixel(side: int, border: int) -> np.ndarray:
    """Reference-border pixels in each of the 1,024 super-pixels (row-major), int64."""
    check_border(side, border)
    cell = side // GRID
    coordinate = np.arange(side)
    inside = ((coordinate >= border) & (coordinate < side - border)).reshape(GRID, cell).sum(axis=1)
    return (cell * cell - np.outer(inside, inside)).ravel().astype(np.int64)


def in_border(flat_index: np.ndarray, side: int, border: int) -> np.ndarray:
    """True where a flat pixel index of a ``side`` x ``side`` frame lies in the border."""
    y, x = np.divmod(flat_index, side)
    return (np.minimum(y, side - 1 - y) < border) | (np.minimum(x, side - 1 - x) < border)


def sorted_superpixels(data: np.ndarray, border: int, nan_at: np.ndarray | None = None) -> SortedRows:
    """The 1,024 super-pixels of ``data`` sorted, with the border and the flat indices ``nan_at`` set to NaN.

    Like :meth:`SortedRows.of_superpixels` (float32 unless ``data`` is float64); the NaNs are written
    into the super-pixel copy, through a frame-shaped view of it, before the sort.
    """
    side = data.shape[0]
    check_border(side, border)
    values = np.asarray(data, dtype=np.float64 if data.dtype == np.float64 else np.float32)
    rows = superpixel_rows(values)
    if np.shares_memory(rows, data):  # a view (1-pixel super-pixels): never write into the caller's data
        rows = rows.copy()
    cell = side // GRID
    frame = rows.reshape(GRID, GRID, cell, cell).transpose(0, 2, 1, 3)  # [i, y, j, x] = data[i*cell+y, j*cell+x]
    for edge in (*range(border), *range(side - border, side)):
        frame[edge // cell, edge % cell] = np.nan  # a frame row
        frame[:, :, edge // cell, edge % cell] = np.nan  # a frame column
    if nan_at is not None and nan_at.size:
        y, x = np.divmod(nan_at, side)
        frame[y // cell, y % cell, x // cell, x % cell] = np.nan
    return SortedRows.sort(rows)
