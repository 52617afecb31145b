"""What the dark monitor takes and gives: its options and its metrics (names, units, descriptions).

No numpy work and no heavy import here: the configuration validates the options from this module.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...records import MetricSpec

RATE_UNIT = "DN/s"
# the pixel classes whose masks the monitor returns: n_new_/n_recovered_ hot and dead since the previous dark
TRACKED_PIXELS = ("hot", "dead")


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
