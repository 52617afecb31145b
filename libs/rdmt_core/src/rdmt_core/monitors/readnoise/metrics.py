"""Read-noise metrics of a READNOISE reference file: a pure function of ``data``.

Reads ``data``, the read noise of each pixel in DN, of the whole frame; the ``reference_border``
pixels at each edge (the reference pixels) are left out of every metric and count
(:mod:`rdmt_core.monitors.gain.border`). The super-pixels are sorted once; an amplifier
strip is the union of its 32 super-pixel rows and the detector the union of all 1,024, and the
percentiles and sigma-clipped statistics (astropy's rules) of every cell of the three scales are
read from those sorted rows, exactly (:mod:`rdmt_core.measure.grouped`).
"""

from __future__ import annotations

import numpy as np

from ...geometry import N_SUPERPIXELS
from ...measure.blockstats import ScaleValues
from ...measure.grouped import clip, percentiles, sum_at_scales, superpixel_scales, to_scales
from ...records import Metric
from ..base import MonitorResult
from ..gain.border import border_pixels_per_superpixel, sorted_superpixels
from .options import METRICS, ReadnoiseOptions

PERCENTILES = (50.0, 99.0)


def readnoise_metrics(data: np.ndarray, options: ReadnoiseOptions) -> MonitorResult:
    """All read-noise metrics at the three scales.

    Parameters
    ----------
    data : ndarray
        Read noise in DN, a square frame (side divisible by 32) including its reference pixels.
        Non-finite pixels and the reference border are ignored.
    options : ReadnoiseOptions
        Noisy-pixel factor, sigma-clipping settings and the width of the reference border.
    """
    border = options.reference_border
    cells = sorted_superpixels(data, border)
    scales, parts = superpixel_scales()
    p = {q: to_scales(v, parts) for q, v in percentiles(cells, scales, PERCENTILES).items()}
    clipped = clip(cells, scales, options.clip_sigma, options.clip_maxiters)
    n_finite = int(cells.n_valid.sum())
    threshold = options.noisy_factor * p[50.0].detector
    if np.isfinite(threshold):  # finite pixels above the threshold, counted in the sorted super-pixels
        noisy = sum_at_scales(cells.n_valid - cells.count_below(threshold, inclusive=True))
    else:
        noisy = _nan_counts()
    del cells
    n_border = int(border_pixels_per_superpixel(data.shape[0], border).sum())
    amp_medians = p[50.0].amplifier
    spread = float(np.nanmax(amp_medians) - np.nanmin(amp_medians)) if np.isfinite(amp_medians).any() else np.nan
    values = {
        "readnoise_median": p[50.0],
        "readnoise_mean": to_scales(clipped.mean, parts),
        "readnoise_std": to_scales(clipped.std, parts),
        "readnoise_p99": p[99.0],
        "n_noisy_pixels": noisy,
        "readnoise_amp_spread": ScaleValues(spread, np.full(32, np.nan), np.full(N_SUPERPIXELS, np.nan)),
    }
    notes = {
        "noisy pixels": f"read noise > {options.noisy_factor:g} x detector median = {threshold:.4g} DN",
        "finite pixels": f"{n_finite} of {data.size - n_border}",
        "reference border": f"{border} pixels at each edge left out ({n_border} pixels)",
    }
    return MonitorResult([Metric(spec, values[spec.name]) for spec in METRICS], notes)


def _nan_counts() -> ScaleValues:
    return ScaleValues(np.nan, np.full(32, np.nan), np.full(N_SUPERPIXELS, np.nan))
