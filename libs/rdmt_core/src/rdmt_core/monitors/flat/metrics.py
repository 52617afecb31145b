"""Flat metrics of a FLAT reference file: a pure function of ``data`` and ``dq``.

Reads ``data`` (dimensionless, normalised near 1) and ``dq``; ``err`` is not used. Pixels with any of
``mask_dq_flags`` and non-finite pixels are left out of the statistics (``n_low_qe`` counts DQ flags
of every pixel).

The frame is copied once into super-pixel rows (1,024 rows), each sorted once; an amplifier is the
union of its 32 rows and the detector of all 1,024. Percentiles and the clipped spread are exact
order statistics of those unions (:mod:`rdmt_core.monitors.bias.sorted_groups`).
"""

from __future__ import annotations

import numpy as np

from ...geometry import GRID, N_AMPLIFIERS, N_SUPERPIXELS
from ...measure.blockstats import ScaleValues, superpixel_rows
from ...measure.clipped import sorted_rows
from ...measure.dq import flagged_pixels
from ...records import Metric
from ..base import MonitorResult
from ..bias.metrics import bad_pixels
from ..bias.sorted_groups import Grouping, clipped_std, percentiles, row_sums
from .options import METRICS, FlatOptions

PERCENTILES = (1.0, 50.0, 99.0)


def groupings() -> tuple[Grouping, list[slice]]:
    """Super-pixels (one row each), amplifiers (32 rows), the detector (all rows), as one grouping."""
    rows = np.arange(N_SUPERPIXELS)
    return Grouping.concat(
        Grouping(rows, rows, N_SUPERPIXELS),
        Grouping(rows, rows % GRID, N_AMPLIFIERS),
        Grouping(rows, np.zeros(N_SUPERPIXELS, dtype=np.int64), 1),
    )


def _scales(values: np.ndarray, parts: list[slice]) -> ScaleValues:
    sp, amp, det = (values[p] for p in parts)
    return ScaleValues(float(det[0]), amp, sp)


def cell_counts(index: np.ndarray, side: int) -> ScaleValues:
    """Pixels per cell at the three scales of the frame pixels with flat indices ``index``."""
    cell = side // GRID
    y, x = np.divmod(index, side)
    grid = np.bincount((y // cell) * GRID + x // cell, minlength=N_SUPERPIXELS).reshape(GRID, GRID)
    return ScaleValues(float(grid.sum()), grid.sum(axis=0).astype(np.float64), grid.ravel().astype(np.float64))


def flat_metrics(data: np.ndarray, dq: np.ndarray, options: FlatOptions) -> MonitorResult:
    """All flat metrics at the three scales.

    Parameters
    ----------
    data : ndarray
        Flat field (dimensionless), a square frame with a side divisible by 32. Non-finite pixels
        are ignored.
    dq : ndarray
        Data-quality flags, same shape; pixels with any of ``options.mask_dq_flags`` are ignored by
        the statistics.
    options : FlatOptions
        Masked flags and sigma clipping of the std.
    """
    side = data.shape[0]
    cell = side // GRID
    bad = bad_pixels(data, dq, options.mask_dq_flags)
    rows = superpixel_rows(np.asarray(data, dtype=np.float64 if data.dtype == np.float64 else np.float32))
    y, x = np.divmod(bad, side)
    where = ((y // cell) * GRID + x // cell, (y % cell) * cell + x % cell)
    rows[where] = 0
    sums = row_sums(rows, np.full(N_SUPERPIXELS, rows.shape[1]))  # the zeros of left-out pixels add nothing
    rows[where] = np.nan
    rows, n_valid = sorted_rows(rows)
    g, parts = groupings()
    p = percentiles(rows, n_valid, g, PERCENTILES)
    clipped = clipped_std(rows, n_valid, sums, g, p[50.0], options.clip_sigma, options.clip_maxiters)
    del rows
    values = {
        "flat_median": _scales(p[50.0], parts),
        "flat_std": _scales(clipped.std, parts),
        "flat_p1": _scales(p[1.0], parts),
        "flat_p99": _scales(p[99.0], parts),
        "n_low_qe": cell_counts(flagged_pixels(dq, ("LOW_QE",)), side),
    }
    flags = ", ".join(options.mask_dq_flags) or "none"
    notes = {
        "pixels used": f"{int(n_valid.sum())} of {data.size} (left out: DQ {flags} or non-finite)",
        "clipping": f"std clipped at {options.clip_sigma:g} sigma about the median, {clipped.iterations} iteration(s)",
    }
    return MonitorResult([Metric(spec, values[spec.name]) for spec in METRICS], notes)
