"""Dark metrics of a DARK reference file: a pure function of ``dark_slope`` and ``dq``.

Reads ``dark_slope`` (DN/s) and ``dq``; ``dark_slope_error`` is not used by any
metric. The numerical core, :func:`dark_metrics`, is a pure function.

Pixel classes (``n_dead_pixels``, ``n_hot_pixels``, ``n_warm_pixels``):

* from the DQ array when the file sets any of the DEAD, HOT or WARM flags
  (``roman_datamodels.dqflags.pixel``): a pixel is in a class when its flag is
  set, whatever its rate;
* otherwise from the dark rate of non-NaN pixels (+inf counts as hot): dead when
  ``rate < dead_below``, warm when ``warm_from <= rate < hot_from``, hot when
  ``rate >= hot_from`` (so warm and hot never overlap).

``pixel_classes_from`` forces one source (``dq`` or ``thresholds``).
"""

from __future__ import annotations

import numpy as np
from roman_datamodels import dqflags

from ...measure.blockstats import count_at_scales, distribution_at_scales
from ...records import Metric
from ..base import MonitorResult
from .options import METRICS, TRACKED_PIXELS, DarkOptions

DEAD = int(dqflags.pixel.DEAD)
HOT = int(dqflags.pixel.HOT)
WARM = int(dqflags.pixel.WARM)
PERCENTILES = (50.0, 95.0, 99.0)


def pixel_class_masks(
    dark_slope: np.ndarray, dq: np.ndarray, options: DarkOptions
) -> tuple[dict[str, np.ndarray], str]:
    """Boolean dead/hot/warm masks and the source used ("dq" or "thresholds")."""
    source = options.pixel_classes_from
    flags = np.bitwise_and(dq, DEAD | HOT | WARM) if source != "thresholds" else None
    if source == "auto":
        source = "dq" if flags.any() else "thresholds"
    if source == "dq":
        masks = {
            "dead": np.bitwise_and(flags, DEAD) != 0,
            "hot": np.bitwise_and(flags, HOT) != 0,
            "warm": np.bitwise_and(flags, WARM) != 0,
        }
    else:
        with np.errstate(invalid="ignore"):  # NaN compares False: NaN pixels are in no class
            hot = dark_slope >= options.hot_from
            masks = {
                "dead": dark_slope < options.dead_below,
                "hot": hot,
                "warm": (dark_slope >= options.warm_from) & ~hot,
            }
    return masks, source


def dark_metrics(dark_slope: np.ndarray, dq: np.ndarray, options: DarkOptions) -> MonitorResult:
    """All dark metrics at the three scales.

    Parameters
    ----------
    dark_slope : ndarray
        Dark rate in DN/s, a square frame (side divisible by 32). Non-finite pixels are ignored.
    dq : ndarray
        Data-quality flags, same shape.
    options : DarkOptions
        Pixel-class thresholds and source.
    """
    distribution = distribution_at_scales(dark_slope, PERCENTILES)
    masks, source = pixel_class_masks(dark_slope, dq, options)
    p = distribution.percentiles
    values = {
        "dark_rate_mean": distribution.mean,
        "dark_rate_median": p[50.0],
        "dark_rate_std": distribution.std,
        "dark_rate_p50": p[50.0],
        "dark_rate_p95": p[95.0],
        "dark_rate_p99": p[99.0],
        "n_dead_pixels": count_at_scales(masks["dead"]),
        "n_hot_pixels": count_at_scales(masks["hot"]),
        "n_warm_pixels": count_at_scales(masks["warm"]),
    }
    notes = {
        "pixel classes": (
            "DQ flags DEAD, HOT, WARM"
            if source == "dq"
            else f"dark-rate thresholds: dead < {options.dead_below:g}, "
            f"warm >= {options.warm_from:g}, hot >= {options.hot_from:g} DN/s"
        ),
        "finite pixels": f"{int(distribution.count.detector)} of {dark_slope.size}",
    }
    tracked = {c: masks[c] for c in TRACKED_PIXELS}  # their changes since the previous dark: rdmt_core.pixel_masks
    return MonitorResult([Metric(spec, values[spec.name]) for spec in METRICS], notes, masks=tracked)
