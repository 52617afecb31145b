"""What the background monitor takes and gives: its options and its metrics.

No numpy work and no heavy import here: the configuration validates the options from this module.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...measure.dq import known_dq_flags
from ...measure.sky import RATE_UNIT
from ...records import MetricSpec

SIGMA_UNIT = "sigma"


class BackgroundOptions(BaseModel):
    """Options of the background monitor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clip_sigma: float = Field(3.0, gt=0, description="Sigma-clipping bound in standard deviations (both sides).")
    clip_maxiters: int = Field(5, ge=1, description="Largest number of sigma-clipping iterations.")
    jump_width: int = Field(
        16,
        ge=1,
        description="Columns on each side of an amplifier boundary used for the jump (at most half a strip); the "
        "strip's last (first) as many columns give its slope.",
    )
    jump_min_kept: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A super-pixel jump whose band on either side keeps less than this fraction of what a typical "
        "band keeps (the median kept fraction) after masking sources is not measured (NaN): a bright star's halo "
        "beyond its mask fakes a step.",
    )
    mask_sources: bool = Field(True, description="Mask 4x4 blocks around sources before the statistics.")
    source_sigma: float = Field(
        5.0, gt=0, description="A pixel, or a 4x4 block's mean, this many sigma above the background marks a source."
    )
    mask_dq_flags: tuple[str, ...] = Field(
        ("DO_NOT_USE",), description="DQ flags (roman_datamodels.dqflags.pixel names) of pixels to ignore."
    )

    @field_validator("mask_dq_flags")
    @classmethod
    def _known_flags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return known_dq_flags(value)


METRICS = (
    MetricSpec("background_level", RATE_UNIT, "Sigma-clipped median of the pixels (the background level)"),
    MetricSpec("background_rms", RATE_UNIT, "Sigma-clipped standard deviation (ddof=0) of the pixels"),
    MetricSpec(
        "background_rejected_fraction",
        "fraction",
        "Fraction of the finite pixels masked as sources or rejected by the clipping",
    ),
    MetricSpec(
        "background_jump",
        RATE_UNIT,
        "Level step from the left neighbour at the amplifier boundary (near-boundary columns extrapolated to the "
        "boundary; amplifier 1: the step to its right neighbour); detector: the most significant step",
        two_sided=True,
    ),
    MetricSpec(
        "background_jump_error",
        RATE_UNIT,
        "1-sigma standard error of the jump: white noise from the clipped rms and kept pixels, times the "
        "boundary's factor for noise correlated along the rows",
    ),
    MetricSpec(
        "background_jump_significance",
        SIGMA_UNIT,
        "The jump in units of its standard error (jump / error); detector: the largest in magnitude",
        two_sided=True,
    ),
    MetricSpec(
        "background_jump_fraction",
        "fraction",
        "The jump as a fraction of the sky level at the boundary (a gain mismatch of that fraction)",
        two_sided=True,
        scales=("detector", "amplifier"),
    ),
)
