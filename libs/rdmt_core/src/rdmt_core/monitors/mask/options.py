"""What the mask monitor takes and gives: its options and its metrics (names, units, descriptions).

No numpy work and no heavy import here: the configuration validates the options from this module.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...measure.dq import known_dq_flags
from ...records import MetricSpec

# The roman_datamodels.dqflags.pixel flags that describe a pixel (what a MASK file records), counted one
# metric each. Left out: GOOD (0), the exposure-level flags a mask never sets (SATURATED, JUMP_DET,
# DROPOUT, GW_AFFECTED_DATA, PERSISTENCE, AD_FLOOR, OUTLIER, UNRELIABLE_ERROR) and RESERVED_5..7.
MASK_FLAGS = (
    "DO_NOT_USE",
    "NON_SCIENCE",
    "DEAD",
    "HOT",
    "WARM",
    "LOW_QE",
    "TELEGRAPH",
    "NONLINEAR",
    "BAD_REF_PIXEL",
    "NO_FLAT_FIELD",
    "NO_GAIN_VALUE",
    "NO_LIN_CORR",
    "NO_SAT_CHECK",
    "UNRELIABLE_BIAS",
    "UNRELIABLE_DARK",
    "UNRELIABLE_SLOPE",
    "UNRELIABLE_FLAT",
    "UNRELIABLE_RESET",
    "OTHER_BAD_PIXEL",
    "REFERENCE_PIXEL",
)

# the pixel classes whose masks the monitor returns (rdmt_core.pixel_masks): every flag, by its lower-case name
TRACKED_PIXELS = tuple(flag.lower() for flag in MASK_FLAGS)


def count_metric(flag: str) -> str:
    """The metric counting the pixels with ``flag``: ``n_dead`` for DEAD."""
    return f"n_{flag.lower()}"


class MaskOptions(BaseModel):
    """Options of the mask monitor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inoperable_flags: tuple[str, ...] = Field(
        ("DO_NOT_USE", "DEAD", "HOT", "NON_SCIENCE"),
        description="DQ flags of pixels that are not operable (operable_fraction).",
    )
    reference_flags: tuple[str, ...] = Field(
        ("REFERENCE_PIXEL",),
        description="DQ flags of reference pixels: left out of operable_fraction (numerator and denominator).",
    )

    @field_validator("inoperable_flags", "reference_flags")
    @classmethod
    def _known_flags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return known_dq_flags(value)


METRICS = (
    *(
        MetricSpec(count_metric(flag), "pixels", f"Number of pixels flagged {flag}", extensive=True)
        for flag in MASK_FLAGS
    ),
    MetricSpec(
        "operable_fraction",
        "fraction",
        "Fraction of the cell's science pixels (not reference pixels) with none of the inoperable flags",
    ),
)
