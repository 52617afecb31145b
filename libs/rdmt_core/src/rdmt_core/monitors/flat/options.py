"""What the flat monitor takes and gives: its options and its metrics (names, units, descriptions).

No numpy work and no heavy import here: the configuration validates the options from this module.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...measure.dq import known_dq_flags
from ...records import MetricSpec

UNIT = "dimensionless"


class FlatOptions(BaseModel):
    """Options of the flat monitor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mask_dq_flags: tuple[str, ...] = Field(
        ("DO_NOT_USE", "REFERENCE_PIXEL"),
        description="DQ flags (roman_datamodels.dqflags.pixel names) of pixels left out of the flat statistics.",
    )
    clip_sigma: float = Field(3.0, gt=0, description="Sigma-clipping bound of the std, in standard deviations.")
    clip_maxiters: int = Field(5, ge=1, description="Largest number of sigma-clipping iterations of the std.")

    @field_validator("mask_dq_flags")
    @classmethod
    def _known_flags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return known_dq_flags(value)


METRICS = (
    MetricSpec("flat_median", UNIT, "Median of the flat of the unmasked finite pixels"),
    MetricSpec("flat_std", UNIT, "Sigma-clipped standard deviation (ddof=0) of the flat, clipped about the median"),
    MetricSpec("flat_p1", UNIT, "1st percentile of the flat (linear interpolation)"),
    MetricSpec("flat_p99", UNIT, "99th percentile of the flat (linear interpolation)"),
    MetricSpec("n_low_qe", "pixels", "Number of pixels flagged LOW_QE", extensive=True),
)
