"""Gain metrics of a GAIN reference file: a pure function of ``data``.

Reads ``data``, the gain of each pixel in e/DN, of the whole frame; the ``reference_border`` pixels
at each edge (the reference pixels) are left out of every metric and count (:mod:`.border`). The
super-pixels are sorted once; the percentiles
of the amplifier strips and of the detector (unions of super-pixel rows) are read from those sorted
rows, exactly (:mod:`rdmt_core.measure.grouped`).
"""

from __future__ import annotations

import numpy as np

from ...measure.blockstats import ScaleValues
from ...measure.grouped import percentiles_at_scales, sum_at_scales
from ...records import Metric
from ..base import MonitorResult
from .border import border_pixels_per_superpixel, sorted_superpixels
from .options import METRICS, GainOptions

PERCENTILES = (1.0, 50.0, 99.0)


def gain_metrics(data: np.ndarray, options: GainOptions) -> MonitorResult:
    """All gain metrics at the three scales.

    Parameters
    ----------
    data : ndarray
        Gain in e/DN, a square frame (side divisible by 32) including its reference pixels. Non-finite
        pixels are left out of the statistics and counted in ``n_bad_gain``; the reference border is
        left out of both.
    options : GainOptions
        The largest physical gain and the width of the reference border.
    """
    border = options.reference_border
    cells = sorted_superpixels(data, border)
    p = percentiles_at_scales(cells, PERCENTILES)
    n_finite = int(cells.n_valid.sum())
    in_border = border_pixels_per_superpixel(data.shape[0], border)
    # bad: not finite (the cell's science pixels minus its finite ones), <= 0, or above max_gain; counted in the
    # sorted rows, where the border is NaN
    not_finite = cells.rows.shape[1] - in_border - cells.n_valid
    not_positive = cells.count_below(0.0, inclusive=True)
    too_high = cells.n_valid - cells.count_below(options.max_gain, inclusive=True)
    bad = sum_at_scales(not_finite + not_positive + too_high)
    del cells
    median = p[50.0]
    with np.errstate(invalid="ignore", divide="ignore"):
        offset = ScaleValues(
            np.nan, median.amplifier / median.detector - 1.0, median.superpixel / median.detector - 1.0
        )
    values = {
        "gain_median": median,
        "gain_p1": p[1.0],
        "gain_p99": p[99.0],
        "n_bad_gain": bad,
        "gain_amp_offset": offset,
    }
    notes = {
        "bad gain": f"NaN, infinite, <= 0 or > {options.max_gain:g} e/DN",
        "finite pixels": f"{n_finite} of {data.size - int(in_border.sum())}",
        "reference border": f"{border} pixels at each edge left out ({int(in_border.sum())} pixels)",
    }
    return MonitorResult([Metric(spec, values[spec.name]) for spec in METRICS], notes)
