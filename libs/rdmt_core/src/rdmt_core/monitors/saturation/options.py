"""What the saturation monitor takes and gives: its options and its metrics (names, units, descriptions).

No numpy work and no heavy import here: the configuration validates the options from this module.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...measure.dq import known_dq_flags
from ...records import MetricSpec

UNIT = "DN"


class SaturationOptions(BaseModel):
    """Options of the saturation monitor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low_fraction: float = Field(
        0.8,
        gt=0,
        lt=1,
        description="A used pixel has a low saturation level below this fraction of the detector median.",
    )
    mask_dq_flags: tuple[str, ...] = Field(
        ("DO_NOT_USE", "NO_SAT_CHECK", "REFERENCE_PIXEL"),
        description="DQ flags (roman_datamodels.dqflags.pixel names) of pixels left out of the statistics and "
        "of the low-saturation count.",
    )
    reference_border: int = Field(
        4,
        ge=0,
        le=64,
        description="Pixels at each edge of the frame left out as reference pixels (the WFI's 4-pixel border; "
        "the same number of pixels at any frame size), whatever their DQ: "
        "left out of every metric, n_no_sat_check included.",
    )

    @field_validator("mask_dq_flags")
    @classmethod
    def _known_flags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return known_dq_flags(value)


METRICS = (
    MetricSpec(
        "saturation_median",
        UNIT,
        "Median saturation level of the used pixels (finite, not masked, not in the reference border)",
    ),
    MetricSpec(
        "saturation_p1", UNIT, "1st percentile of the saturation level of the used pixels (linear interpolation)"
    ),
    MetricSpec(
        "n_low_saturation",
        "pixels",
        "Number of used pixels whose saturation level is below low_fraction times the detector median",
        extensive=True,
    ),
    MetricSpec(
        "n_no_sat_check",
        "pixels",
        "Number of pixels outside the reference border flagged NO_SAT_CHECK in dq",
        extensive=True,
    ),
)
