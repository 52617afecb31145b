"""Saturation metrics of a SATURATION reference file: a pure function of ``data`` and ``dq``.

Reads ``data``, the saturation level of each pixel in DN, and ``dq``, of the whole frame. The
``reference_border`` pixels at each edge (the reference pixels, whatever their DQ) are left out of
every metric (:mod:`rdmt_core.monitors.gain.border`). Pixels flagged with any of ``mask_dq_flags``
(default DO_NOT_USE, NO_SAT_CHECK and REFERENCE_PIXEL: their level is not a measurement) and
non-finite pixels are left out of the statistics and of the low-saturation count. The super-pixels
are sorted once; the percentiles of the amplifier strips and of the detector (unions of super-pixel
rows) are read from those sorted rows, exactly (:mod:`rdmt_core.measure.grouped`).
"""

from __future__ import annotations

import numpy as np

from ...geometry import GRID, N_SUPERPIXELS
from ...measure.dq import flagged_pixels
from ...measure.grouped import percentiles_at_scales, sum_at_scales
from ...records import Metric
from ..base import MonitorResult
from ..gain.border import border_pixels_per_superpixel, in_border, sorted_superpixels
from .options import METRICS, SaturationOptions

PERCENTILES = (1.0, 50.0)


def saturation_metrics(data: np.ndarray, dq: np.ndarray, options: SaturationOptions) -> MonitorResult:
    """All saturation metrics at the three scales.

    Parameters
    ----------
    data : ndarray
        Saturation level in DN, a square frame (side divisible by 32) including its reference pixels.
        Non-finite pixels are ignored.
    dq : ndarray
        Data-quality flags (``roman_datamodels.dqflags.pixel``), same shape.
    options : SaturationOptions
        Low-saturation fraction, the DQ flags of pixels to leave out and the width of the reference border.
    """
    side, border = data.shape[0], options.reference_border
    masked = flagged_pixels(dq, options.mask_dq_flags)
    masked = masked[~in_border(masked, side, border)]  # flagged science pixels (the border is left out anyway)
    cells = sorted_superpixels(data, border, nan_at=masked)
    p = percentiles_at_scales(cells, PERCENTILES)
    n_used = int(cells.n_valid.sum())
    threshold = options.low_fraction * p[50.0].detector
    if np.isfinite(threshold):  # used pixels below the threshold, counted in the sorted super-pixels
        low = sum_at_scales(cells.count_below(threshold, inclusive=False))
    else:
        low = sum_at_scales(np.full(N_SUPERPIXELS, np.nan))
    del cells
    unchecked = flagged_pixels(dq, ("NO_SAT_CHECK",))
    unchecked = unchecked[~in_border(unchecked, side, border)]
    cell = side // GRID
    cell_of = (unchecked // side // cell) * GRID + (unchecked % side) // cell
    no_check = sum_at_scales(np.bincount(cell_of, minlength=N_SUPERPIXELS))
    n_border = int(border_pixels_per_superpixel(side, border).sum())
    values = {
        "saturation_median": p[50.0],
        "saturation_p1": p[1.0],
        "n_low_saturation": low,
        "n_no_sat_check": no_check,
    }
    notes = {
        "low saturation": f"below {options.low_fraction:g} x detector median = {threshold:.6g} DN",
        "used pixels": f"{n_used} of {data.size - n_border} (finite and not flagged "
        f"{', '.join(options.mask_dq_flags)}; {masked.size} flagged)",
        "reference border": f"{border} pixels at each edge left out ({n_border} pixels)",
    }
    return MonitorResult([Metric(spec, values[spec.name]) for spec in METRICS], notes)
