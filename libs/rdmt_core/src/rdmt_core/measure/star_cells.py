"""Stars grouped into the cells of the three scales, and per-cell statistics (astrometry, psf_shape).

Positions are frame pixel coordinates (pixel centres on integers); a cell is an
amplifier strip (0..31) or a super-pixel (0..1023, row-major) of the frame.
"""

from __future__ import annotations

import numpy as np

from ..geometry import GRID, N_AMPLIFIERS, N_SUPERPIXELS
from .blockstats import ScaleValues


def scale_cells(x: np.ndarray, y: np.ndarray, side: int) -> dict[str, np.ndarray]:
    """0-based cell index of each position at each scale: amplifier index (0..31), super-pixel (0..1023)."""
    cell = side // GRID
    col = np.clip(np.floor(np.asarray(x) + 0.5).astype(np.int64) // cell, 0, GRID - 1)
    row = np.clip(np.floor(np.asarray(y) + 0.5).astype(np.int64) // cell, 0, GRID - 1)
    return {"detector": np.zeros(col.size, dtype=np.int64), "amplifier": col, "superpixel": row * GRID + col}


_N_CELLS = {"detector": 1, "amplifier": N_AMPLIFIERS, "superpixel": N_SUPERPIXELS}


def counts_at_scales(groups: dict[str, np.ndarray]) -> ScaleValues:
    """Number of positions in each cell of each scale."""
    counts = {s: np.bincount(g, minlength=_N_CELLS[s]).astype(np.float64) for s, g in groups.items()}
    return ScaleValues(float(counts["detector"][0]), counts["amplifier"], counts["superpixel"])


def sparse_superpixels(groups: dict[str, np.ndarray], least: int, what: str) -> str | None:
    """Why no super-pixel has a value, when none holds ``least`` positions (else None).

    For the ``SUPERPIXEL_NOTE`` of a star monitor, so its report says it once instead of drawing
    empty maps: ``"at most 3 stars in a super-pixel, 5 needed"``.
    """
    most = int(np.bincount(groups["superpixel"], minlength=N_SUPERPIXELS).max())
    return None if most >= least else f"at most {most} {what} in a super-pixel, {least} needed"


def binned(values: np.ndarray, index: np.ndarray, n_cells: int, statistic: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell ``mean``, ``rms`` or ``median`` of ``values`` grouped by ``index``; and the counts.

    Cells without values are NaN. The median of an even count is the mean of the two middle values.
    """
    count = np.bincount(index, minlength=n_cells)
    out = np.full(n_cells, np.nan)
    has = count > 0
    if statistic == "mean":
        out[has] = np.bincount(index, weights=values, minlength=n_cells)[has] / count[has]
    elif statistic == "rms":
        out[has] = np.sqrt(np.bincount(index, weights=values * values, minlength=n_cells)[has] / count[has])
    elif statistic == "median":
        order = np.lexsort((values, index))
        ordered = values[order]
        start = np.concatenate([[0], np.cumsum(count)[:-1]])
        lo = start + (count - 1) // 2
        hi = start + count // 2
        out[has] = 0.5 * (ordered[lo[has]] + ordered[hi[has]])
    else:
        raise ValueError(f"unknown statistic {statistic!r}")
    return out, count


def stat_at_scales(
    values: np.ndarray, groups: dict[str, np.ndarray], statistic: str, min_detector: int, min_cell: int
) -> ScaleValues:
    """A per-cell statistic at the three scales; NaN in cells with fewer values than the minimum.

    ``min_detector`` applies to the detector, ``min_cell`` to amplifiers and super-pixels.
    """
    out = {}
    for scale, index in groups.items():
        value, count = binned(values, index, _N_CELLS[scale], statistic)
        out[scale] = np.where(count >= (min_detector if scale == "detector" else min_cell), value, np.nan)
    return ScaleValues(float(out["detector"][0]), out["amplifier"], out["superpixel"])


def nan_at_scales() -> ScaleValues:
    """A metric with no value anywhere."""
    return ScaleValues(float("nan"), np.full(N_AMPLIFIERS, np.nan), np.full(N_SUPERPIXELS, np.nan))


def detector_only(value: float) -> ScaleValues:
    """A metric defined at the detector scale only (NaN at the others)."""
    return ScaleValues(float(value), np.full(N_AMPLIFIERS, np.nan), np.full(N_SUPERPIXELS, np.nan))
