"""What the background monitor takes and gives: its options and its metrics.

No numpy work and no heavy import here: the configuration validates the options from this module.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...measure.dq import known_dq_flags
from ...measure.sky import RATE_UNIT
from ...records import MetricSpec


class BackgroundOptions(BaseModel):
    """Options of the background monitor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clip_sigma: float = Field(3.0, gt=0, description="Sigma-clipping bound in standard deviations (both sides).")
    clip_maxiters: int = Field(5, ge=1, description="Largest number of sigma-clipping iterations.")
    jump_width: int = Field(
        16, ge=1, description="Columns on each side of an amplifier boundary used for the jump (at most half a strip)."
    )
    jump_precision: float = Field(
        0.008,
        gt=0,
        description="DN/s: a jump whose 1-sigma uncertainty is larger is not measured (NaN). The default keeps "
        "the default super-pixel limit (0.04 DN/s) at 5 sigma or more.",
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
        "Level step from the left neighbour at the amplifier boundary (near-boundary columns; amplifier 1: "
        "the step to its right neighbour); detector: the largest step",
        two_sided=True,
    ),
)
