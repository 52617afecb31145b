"""Saturation metrics of a SATURATION reference file: a pure function of ``data`` and ``dq``.

Reads ``data``, the saturation level of each pixel in DN, and ``dq``. Pixels flagged with any of
``mask_dq_flags`` (default DO_NOT_USE and NO_SAT_CHECK: their level is not a measurement) and
non-finite pixels are left out of the statistics and of the low-saturation count. The super-pixels
are sorted once; the percentiles of the amplifier strips and of the detector (unions of super-pixel
rows) are read from those sorted rows, exactly (:mod:`rdmt_core.measure.grouped`).
"""

from __future__ import annotations

import numpy as np

from ...geometry import GRID, N_SUPERPIXELS
from ...measure.dq import flagged_pixels, masked_data
from ...measure.grouped import SortedRows, percentiles_at_scales, sum_at_scales
from ...records import Metric
from ..base import MonitorResult
from .options import METRICS, SaturationOptions

PERCENTILES = (1.0, 50.0)


def saturation_metrics(data: np.ndarray, dq: np.ndarray, options: SaturationOptions) -> MonitorResult:
    """All saturation metrics at the three scales.

    Parameters
    ----------
    data : ndarray
        Saturation level in DN, a square frame (side divisible by 32). Non-finite pixels are ignored.
    dq : ndarray
        Data-quality flags (``roman_datamodels.dqflags.pixel``), same shape.
    options : SaturationOptions
        Low-saturation fraction and the DQ flags of pixels to leave out.
    """
    used, n_masked = masked_data(data, dq, options.mask_dq_flags)
    cells = SortedRows.of_superpixels(used)
    p = percentiles_at_scales(cells, PERCENTILES)
    n_used = int(cells.n_valid.sum())
    threshold = options.low_fraction * p[50.0].detector
    if np.isfinite(threshold):  # used pixels below the threshold, counted in the sorted super-pixels
        low = sum_at_scales(cells.count_below(threshold, inclusive=False))
    else:
        low = sum_at_scales(np.full(N_SUPERPIXELS, np.nan))
    del cells
    side = data.shape[0]
    unchecked = flagged_pixels(dq, ("NO_SAT_CHECK",))
    cell = side // GRID
    cell_of = (unchecked // side // cell) * GRID + (unchecked % side) // cell
    no_check = sum_at_scales(np.bincount(cell_of, minlength=N_SUPERPIXELS))
    values = {
        "saturation_median": p[50.0],
        "saturation_p1": p[1.0],
        "n_low_saturation": low,
        "n_no_sat_check": no_check,
    }
    notes = {
        "low saturation": f"below {options.low_fraction:g} x detector median = {threshold:.6g} DN",
        "used pixels": f"{n_used} of {data.size} (finite and not flagged {', '.join(options.mask_dq_flags)}; "
        f"{n_masked} flagged)",
    }
    return MonitorResult([Metric(spec, values[spec.name]) for spec in METRICS], notes)
