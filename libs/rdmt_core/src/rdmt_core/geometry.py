"""Detector geometry: how the three metric scales map onto a WFI array.

A WFI H4RG-10 detector is read as a 4096x4096 array. RDMT summarises every
metric at three scales:

* ``detector``: the whole array, one value (cell 0);
* ``amplifier``: 32 readout amplifiers, each a 128-column strip, numbered
  1..32 from array column 0 (the left of the array);
* ``superpixel``: a 32x32 grid of 128x128-pixel cells, numbered 0..1023 in
  row-major order from array index ``[0, 0]``: cell = 32 * block_row + block_col.

That is 1 + 32 + 1024 = 1,057 values per metric per detector.

Level-2 images are 4088x4088: the 4-pixel reference border is removed. RDMT
places such an array back into the full 4096x4096 frame (science pixel
``[y, x]`` is frame pixel ``[y + 4, x + 4]``), with the border marked invalid.
Amplifiers and super-pixels therefore keep their frame definition: amplifier 1
and 32 hold 124 science columns, amplifiers 2..31 hold 128, and the super-pixels
on the edge of the grid hold 124 rows or columns of science pixels.

Reduced-size arrays (used by the unit tests) follow the same rules with
``N/32``-pixel cells; the side must be divisible by 32.

This module does geometry only: no statistics, no I/O.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

N_AMPLIFIERS = 32
GRID = 32  # super-pixels per side
N_SUPERPIXELS = GRID * GRID
FULL_SIDE = 4096
SCALES = ("detector", "amplifier", "superpixel")
DETECTORS = tuple(f"WFI{i:02d}" for i in range(1, 19))  # the 18 WFI detectors


def detector_number(detector: str) -> int:
    """1..18 for ``WFI01``..``WFI18`` (seeds each detector's synthetic structure)."""
    if detector not in DETECTORS:
        raise ValueError(f"unknown detector {detector!r}; expected one of WFI01..WFI18")
    return int(detector[3:])


@dataclass(frozen=True)
class Geometry:
    """Shape of a frame and of the science area inside it.

    Parameters
    ----------
    side : int
        Side of the full frame in pixels (4096 for a real detector).
    border : int
        Width of the reference-pixel border excluded from the science array
        (0 for reference files, 4 for Level-2 images).
    """

    side: int
    border: int = 0

    def __post_init__(self) -> None:
        if self.side % GRID:
            raise ValueError(f"frame side {self.side} is not divisible by {GRID}")
        if not 0 <= 2 * self.border < self.side:
            raise ValueError(f"border {self.border} does not fit a {self.side}-pixel frame")

    @property
    def cell(self) -> int:
        """Side of a super-pixel, and width of an amplifier strip, in pixels."""
        return self.side // GRID

    @property
    def science_side(self) -> int:
        return self.side - 2 * self.border

    def science_mask(self) -> np.ndarray:
        """Boolean frame-shaped mask, True on science pixels."""
        mask = np.zeros((self.side, self.side), dtype=bool)
        b = self.border
        mask[b : self.side - b, b : self.side - b] = True
        return mask

    def pixels_per_cell(self) -> dict[str, np.ndarray]:
        """Science pixels in each cell of each scale (used to scale count limits); computed once per geometry."""
        return _pixels_per_cell(self.side, self.border)


@functools.cache
def _pixels_per_cell(side: int, border: int) -> dict[str, np.ndarray]:
    geometry = Geometry(side, border)
    cell = geometry.cell
    per_superpixel = geometry.science_mask().reshape(GRID, cell, GRID, cell).sum(axis=(1, 3))
    counts = {
        "detector": np.array([per_superpixel.sum()], dtype=np.int64),
        "amplifier": per_superpixel.sum(axis=0).astype(np.int64),
        "superpixel": per_superpixel.ravel().astype(np.int64),
    }
    for array in counts.values():
        array.flags.writeable = False  # shared by every caller
    return counts


def geometry_for(shape: tuple[int, ...], border: int = 0) -> Geometry:
    """Geometry of a square science array of ``shape`` with ``border`` removed."""
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"expected a square 2-D array, got shape {tuple(shape)}")
    return Geometry(side=shape[0] + 2 * border, border=border)


def to_frame(science: np.ndarray, geometry: Geometry, fill: float | bool | int) -> np.ndarray:
    """Place a science array into its full frame, filling the border with ``fill``."""
    if geometry.border == 0:
        return science
    frame = np.full((geometry.side, geometry.side), fill, dtype=science.dtype)
    b = geometry.border
    frame[b : geometry.side - b, b : geometry.side - b] = science
    return frame


def cells(scale: str) -> np.ndarray:
    """Cell numbers of a scale: [0], 1..32 or 0..1023."""
    if scale == "detector":
        return np.array([0], dtype=np.int32)
    if scale == "amplifier":
        return np.arange(1, N_AMPLIFIERS + 1, dtype=np.int32)
    if scale == "superpixel":
        return np.arange(N_SUPERPIXELS, dtype=np.int32)
    raise ValueError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")


def superpixel_of(row: int, col: int, side: int = FULL_SIDE) -> int:
    """Super-pixel cell holding frame pixel ``[row, col]``."""
    cell = side // GRID
    return (row // cell) * GRID + col // cell


def amplifier_of(col: int, side: int = FULL_SIDE) -> int:
    """Amplifier (1..32) reading frame column ``col``."""
    return col // (side // N_AMPLIFIERS) + 1
