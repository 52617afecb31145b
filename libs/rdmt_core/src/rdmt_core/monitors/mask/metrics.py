"""Mask metrics of a MASK reference file: a pure function of ``dq``.

Only the non-zero DQ pixels are examined (a mask flags ~0.1-1 % of a detector plus its reference
border): their flags are unpacked into a (pixels x flags) boolean matrix, in chunks, and counted per
super-pixel and flag with one ``bincount``; amplifiers and the detector are sums of super-pixels.
"""

from __future__ import annotations

import numpy as np
from roman_datamodels import dqflags

from ...geometry import GRID, N_SUPERPIXELS
from ...measure.blockstats import ScaleValues
from ...records import Metric
from ..base import MonitorResult
from .options import MASK_FLAGS, METRICS, MaskOptions, count_metric

BITS = np.array([int(dqflags.pixel[name]) for name in MASK_FLAGS], dtype=np.int64)
CHUNK = 1 << 20  # non-zero pixels unpacked at a time (bounds the memory of the unpacked flags)


def _bits(names: tuple[str, ...]) -> int:
    out = 0
    for name in names:
        out |= int(dqflags.pixel[name])
    return out


def _scales(per_cell: np.ndarray) -> ScaleValues:
    """Super-pixel counts (1024,) summed to amplifiers (grid columns) and the detector."""
    grid = per_cell.reshape(GRID, GRID)
    return ScaleValues(float(grid.sum()), grid.sum(axis=0).astype(np.float64), per_cell.astype(np.float64))


def flag_counts(dq: np.ndarray, bits: np.ndarray, inoperable: int = 0, reference: int = 0) -> np.ndarray:
    """Pixels per super-pixel with each of ``bits`` set: int64 array (1024, len(bits) + 1).

    The last column counts the pixels with any of ``inoperable`` and none of ``reference``.

    Parameters
    ----------
    dq : ndarray
        Square integer DQ frame, side divisible by 32 (a signed array's sign bit is bit 31).
    bits : ndarray
        One DQ bit value per column of the result.
    """
    side = dq.shape[0]
    if dq.ndim != 2 or dq.shape[1] != side or side % GRID:
        raise ValueError(f"expected a square frame with a side divisible by {GRID}, got {dq.shape}")
    cell = side // GRID
    n_flags = len(bits) + 1
    counts = np.zeros(N_SUPERPIXELS * n_flags, dtype=np.int64)
    nonzero = np.flatnonzero(dq.astype(bool))
    for start in range(0, nonzero.size, CHUNK):
        index = nonzero[start : start + CHUNK]
        values = dq.reshape(-1)[index].astype(np.int64)
        y, x = np.divmod(index, side)
        superpixel = (y // cell) * GRID + x // cell
        has = np.empty((index.size, n_flags), dtype=bool)
        np.not_equal(values[:, None] & bits[None, :], 0, out=has[:, :-1])  # the unpacked flags
        has[:, -1] = ((values & inoperable) != 0) & ((values & reference) == 0)
        slot = superpixel[:, None] * n_flags + np.arange(n_flags)[None, :]
        counts += np.bincount(slot[has], minlength=N_SUPERPIXELS * n_flags)
    return counts.reshape(N_SUPERPIXELS, n_flags)


def mask_metrics(dq: np.ndarray, options: MaskOptions) -> MonitorResult:
    """Pixel counts per flag and the operable fraction at the three scales.

    Parameters
    ----------
    dq : ndarray
        The MASK file's DQ flags (``roman_datamodels.dqflags.pixel`` bits), a square frame with a
        side divisible by 32.
    options : MaskOptions
        Which flags make a pixel inoperable and which mark reference pixels.
    """
    inoperable, reference = _bits(options.inoperable_flags), _bits(options.reference_flags)
    # extra columns: reference pixels, and inoperable science pixels (a combination, so counted apart)
    counts = flag_counts(dq, np.append(BITS, reference), inoperable, reference)
    cell_pixels = (dq.shape[0] // GRID) ** 2
    values = {count_metric(flag): _scales(counts[:, i]) for i, flag in enumerate(MASK_FLAGS)}
    n_reference, n_bad = counts[:, -2], counts[:, -1]
    science = _scales(cell_pixels - n_reference)
    bad = _scales(n_bad)
    with np.errstate(invalid="ignore", divide="ignore"):
        values["operable_fraction"] = ScaleValues(
            1.0 - bad.detector / science.detector if science.detector else float("nan"),
            np.where(science.amplifier > 0, 1.0 - bad.amplifier / science.amplifier, np.nan),
            np.where(science.superpixel > 0, 1.0 - bad.superpixel / science.superpixel, np.nan),
        )
    flagged = int(np.count_nonzero(np.any(counts[:, :-2], axis=1)))
    notes = {
        "operable": f"science pixels without {', '.join(options.inoperable_flags) or 'any flag'}; "
        f"reference pixels ({', '.join(options.reference_flags) or 'none'}) left out: {int(n_reference.sum())}",
        "flagged super-pixels": f"{flagged} of {N_SUPERPIXELS} have a flagged pixel",
    }
    return MonitorResult([Metric(spec, values[spec.name]) for spec in METRICS], notes, masks=flag_masks(dq))


def flag_masks(dq: np.ndarray) -> dict[str, np.ndarray]:
    """One boolean image per flag of ``MASK_FLAGS``, by lower-case name (from the non-zero DQ pixels only)."""
    nonzero = np.flatnonzero(dq.astype(bool))
    values = dq.reshape(-1)[nonzero].astype(np.int64)
    masks = {}
    for flag, bit in zip(MASK_FLAGS, BITS, strict=True):
        mask = np.zeros(dq.size, dtype=bool)
        mask[nonzero[(values & bit) != 0]] = True
        masks[flag.lower()] = mask.reshape(dq.shape)
    return masks
