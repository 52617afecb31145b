"""Dark reference-file monitor (reftype DARK).

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

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from roman_datamodels import dqflags

from ..blockstats import count_at_scales, distribution_at_scales
from ..data_access import ArraySpec
from ..records import Metric, MetricSpec
from .base import Context, Monitor, MonitorResult

DEAD = int(dqflags.pixel.DEAD)
HOT = int(dqflags.pixel.HOT)
WARM = int(dqflags.pixel.WARM)
RATE_UNIT = "DN/s"
PERCENTILES = (50.0, 95.0, 99.0)


class DarkOptions(BaseModel):
    """Options of the dark monitor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pixel_classes_from: Literal["auto", "dq", "thresholds"] = Field(
        "auto",
        description="Source of dead/hot/warm classes: DQ flags if the file sets any (auto), or always one.",
    )
    dead_below: float = Field(1.0e-3, description="Dark rate (DN/s) below which a finite pixel is dead.")
    warm_from: float = Field(0.02, description="Dark rate (DN/s) from which a pixel is warm.")
    hot_from: float = Field(0.1, description="Dark rate (DN/s) from which a pixel is hot (no longer warm).")

    @model_validator(mode="after")
    def _ordered(self) -> DarkOptions:
        if not self.dead_below < self.warm_from < self.hot_from:
            raise ValueError(
                f"need dead_below < warm_from < hot_from, got {self.dead_below}, {self.warm_from}, {self.hot_from}"
            )
        return self


def _rate(name: str, description: str) -> MetricSpec:
    return MetricSpec(name, RATE_UNIT, description)


METRICS = (
    _rate("dark_rate_mean", "Mean dark rate of finite pixels"),
    _rate("dark_rate_median", "Median dark rate of finite pixels"),
    _rate("dark_rate_std", "Standard deviation (ddof=0) of the dark rate of finite pixels"),
    _rate("dark_rate_p50", "50th percentile of the dark rate (linear interpolation)"),
    _rate("dark_rate_p95", "95th percentile of the dark rate (linear interpolation)"),
    _rate("dark_rate_p99", "99th percentile of the dark rate (linear interpolation)"),
    MetricSpec("n_dead_pixels", "pixels", "Number of dead pixels", extensive=True),
    MetricSpec("n_hot_pixels", "pixels", "Number of hot pixels", extensive=True),
    MetricSpec("n_warm_pixels", "pixels", "Number of warm pixels", extensive=True),
)


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
    return MonitorResult([Metric(spec, values[spec.name]) for spec in METRICS], notes)


class DarkMonitor(Monitor):
    """Dark current, its distribution and dead/hot/warm pixel counts of DARK reference files."""

    name = "dark"
    title = "Dark reference file"
    reftypes = frozenset({"DARK"})
    arrays = {"dark_slope": ArraySpec("f"), "dq": ArraySpec("ui")}  # noqa: RUF012
    options_model = DarkOptions
    metric_specs = METRICS

    @classmethod
    def example_arrays(cls, side: int, seed: int) -> dict[str, np.ndarray]:
        from ..synthetic import dark_arrays

        dark_slope, _, dq = dark_arrays("WFI01", side, delivery_seed=seed)
        return {"dark_slope": dark_slope, "dq": dq}

    @classmethod
    def compute(cls, arrays: dict[str, np.ndarray], options: BaseModel, context: Context) -> MonitorResult:
        assert isinstance(options, DarkOptions)
        return dark_metrics(arrays["dark_slope"], arrays["dq"], options)
