"""What the bias monitor takes and gives: its options and its metrics (names, units, descriptions).

No numpy work and no heavy import here: the configuration validates the options from this module.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...measure.dq import known_dq_flags
from ...records import MetricSpec

UNIT = "DN"
DETECTOR_AND_AMPLIFIER = ("detector", "amplifier")


class BiasOptions(BaseModel):
    """Options of the bias monitor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mask_dq_flags: tuple[str, ...] = Field(
        ("DO_NOT_USE", "REFERENCE_PIXEL"),
        description="DQ flags (roman_datamodels.dqflags.pixel names) of pixels left out of every metric.",
    )
    clip_sigma: float = Field(3.0, gt=0, description="Sigma-clipping bound of the std, in standard deviations.")
    clip_maxiters: int = Field(5, ge=1, description="Largest number of sigma-clipping iterations of the std.")

    @field_validator("mask_dq_flags")
    @classmethod
    def _known_flags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return known_dq_flags(value)


METRICS = (
    MetricSpec("bias_median", UNIT, "Median of the superbias of the unmasked finite pixels"),
    MetricSpec(
        "bias_std",
        UNIT,
        "Sigma-clipped standard deviation (ddof=0) of the superbias, clipped about the cell's median",
    ),
    MetricSpec(
        "bias_even_median", UNIT, "Median of the superbias in the amplifier's even columns", scales=("amplifier",)
    ),
    MetricSpec(
        "bias_odd_median", UNIT, "Median of the superbias in the amplifier's odd columns", scales=("amplifier",)
    ),
    MetricSpec(
        "bias_even_odd_offset",
        UNIT,
        "Even-column minus odd-column median of the amplifier; detector: the largest |offset| of its amplifiers",
        two_sided=True,
        scales=DETECTOR_AND_AMPLIFIER,
    ),
    MetricSpec(
        "bias_row_profile_rms",
        UNIT,
        "RMS about their mean of the row means of the cell (each row's mean over the cell's columns)",
        scales=DETECTOR_AND_AMPLIFIER,
    ),
    MetricSpec(
        "bias_column_profile_rms",
        UNIT,
        "RMS about their mean of the column means of the cell (each column's mean over all rows)",
        scales=DETECTOR_AND_AMPLIFIER,
    ),
)
