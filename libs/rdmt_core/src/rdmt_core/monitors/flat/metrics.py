"""Flat metrics of a FLAT reference file: a pure function of ``data`` and ``dq``.

Reads ``data`` (dimensionless, normalised near 1) and ``dq``; ``err`` is not used. Pixels with any of
``mask_dq_flags`` and non-finite pixels are left out of the statistics (``n_low_qe`` counts DQ flags
of every pixel).

The frame is copied once into super-pixel rows (1,024 rows), each sorted once; an amplifier is the
union of its 32 rows and the detector of all 1,024. Percentiles and the sigma-clipped std (astropy's
rules: median and std of the kept values recomputed each iteration) are exact statistics of those
unions (:mod:`rdmt_core.measure.grouped`).
"""

from __future__ import annotations

import numpy as np

from ...geometry import GRID, N_SUPERPIXELS
from ...measure.blockstats import ScaleValues, superpixel_rows
from ...measure.dq import flagged_pixels
from ...measure.grouped import SortedRows, clip, moments_of_sums, percentiles, row_sums, superpixel_scales, to_scales
from ...records import Metric
from ..base import MonitorResult
from ..bias.metrics import bad_pixels
from .options import METRICS, FlatOptions

PERCENTILES = (1.0, 50.0, 99.0)


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
    sums = row_sums(rows)  # the zeros of left-out pixels add nothing
    rows[where] = np.nan
    cells = SortedRows.sort(rows)
    n_valid = cells.n_valid
    g, parts = superpixel_scales()
    p = percentiles(cells, g, PERCENTILES)
    moments = moments_of_sums(n_valid, *sums)
    clipped = clip(
        cells, g, options.clip_sigma, options.clip_maxiters, moments=moments, median=p[50.0], with_median=False
    )  # the std is the metric
    del rows, cells
    values = {
        "flat_median": to_scales(p[50.0], parts),
        "flat_std": to_scales(clipped.std, parts),
        "flat_p1": to_scales(p[1.0], parts),
        "flat_p99": to_scales(p[99.0], parts),
        "n_low_qe": cell_counts(flagged_pixels(dq, ("LOW_QE",)), side),
    }
    flags = ", ".join(options.mask_dq_flags) or "none"
    notes = {
        "pixels used": f"{int(n_valid.sum())} of {data.size} (left out: DQ {flags} or non-finite)",
        "clipping": f"std sigma-clipped at {options.clip_sigma:g} sigma (astropy's rules: median and std recomputed "
        f"each iteration), {clipped.iterations} iteration(s)",
    }
    return MonitorResult([Metric(spec, values[spec.name]) for spec in METRICS], notes)
