"""Read-noise metrics of a READNOISE reference file: a pure function of ``data``.

Reads ``data``, the read noise of each pixel in DN. The super-pixels are sorted once
(:mod:`.scales`); percentiles and sigma-clipped statistics of the amplifier strips and of the
detector are read from those sorted rows, exactly.
"""

from __future__ import annotations

import numpy as np

from ...geometry import N_SUPERPIXELS
from ...measure.blockstats import ScaleValues
from ...records import Metric
from ..base import MonitorResult
from .options import METRICS, ReadnoiseOptions
from .scales import SortedCells, at_scales, clipped_from_cells, count_sorted, percentiles_at_scales

PERCENTILES = (50.0, 99.0)


def readnoise_metrics(data: np.ndarray, options: ReadnoiseOptions) -> MonitorResult:
    """All read-noise metrics at the three scales.

    Parameters
    ----------
    data : ndarray
        Read noise in DN, a square frame (side divisible by 32). Non-finite pixels are ignored.
    options : ReadnoiseOptions
        Noisy-pixel factor and sigma-clipping settings.
    """
    cells = SortedCells.of(data)
    p = percentiles_at_scales(cells, PERCENTILES)
    clipped = clipped_from_cells(cells, options.clip_sigma, options.clip_maxiters)
    n_finite = int(cells.n_valid.sum())
    threshold = options.noisy_factor * p[50.0].detector
    if np.isfinite(threshold):  # finite pixels above the threshold, counted in the sorted super-pixels
        noisy = at_scales(cells.n_valid - count_sorted(cells, threshold, inclusive=True))
    else:
        noisy = _nan_counts()
    del cells
    amp_medians = p[50.0].amplifier
    spread = float(np.nanmax(amp_medians) - np.nanmin(amp_medians)) if np.isfinite(amp_medians).any() else np.nan
    values = {
        "readnoise_median": p[50.0],
        "readnoise_mean": clipped.mean,
        "readnoise_std": clipped.std,
        "readnoise_p99": p[99.0],
        "n_noisy_pixels": noisy,
        "readnoise_amp_spread": ScaleValues(spread, np.full(32, np.nan), np.full(N_SUPERPIXELS, np.nan)),
    }
    notes = {
        "noisy pixels": f"read noise > {options.noisy_factor:g} x detector median = {threshold:.4g} DN",
        "finite pixels": f"{n_finite} of {data.size}",
    }
    return MonitorResult([Metric(spec, values[spec.name]) for spec in METRICS], notes)


def _nan_counts() -> ScaleValues:
    return ScaleValues(np.nan, np.full(32, np.nan), np.full(N_SUPERPIXELS, np.nan))
