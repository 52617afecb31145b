"""What the 1/f noise monitor takes and gives: its options and its metrics.

No numpy work and no heavy import here: the configuration validates the options from this module.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ...measure.dq import known_dq_flags
from ...records import MetricSpec


class OneOverFOptions(BaseModel):
    """Options of the 1/f noise monitor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clip_sigma: float = Field(
        4.0,
        ge=3.0,
        description="Pixels farther than this many sigma from their super-pixel's clipped level are masked; a narrower "
        "window pulls row means towards each super-pixel's level, adding steps that look like 1/f noise.",
    )
    source_sigma: float = Field(
        5.0, gt=0, description="Pixels this many sigma above the level mark a source; 4x4 blocks around it are masked."
    )
    bins: tuple[int, int] = Field(
        (1, 4),
        description="First and last frequency bin (cycles per tile, a tile being one super-pixel) compared between "
        "the readout order (row means) and the orthogonal order (column means) of every tile.",
    )
    weight_cap: float = Field(
        3.0,
        gt=1.0,
        description="A bin whose mean power of the two orders exceeds this many times the white level (a star's "
        "residual light) gets weight cap * white / power instead of 1.",
    )
    low_band: tuple[int, int] = Field(
        (1, 16), description="Row-series spectrum figure only: first and last bin (cycles per frame) of the low band."
    )
    white_band_start: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="Row-series spectrum figure only: the white band starts at this fraction of 0.5 cycles per row.",
    )
    detrend_degree: int = Field(
        2,
        ge=0,
        le=8,
        description="Row-series spectrum figure only: degree of the polynomial in row number removed "
        "from each amplifier's row series.",
    )
    min_rows: int = Field(64, ge=8, description="Fewest rows with data for a measurement.")
    mask_dq_flags: tuple[str, ...] = Field(
        ("DO_NOT_USE", "SATURATED"), description="DQ flags (roman_datamodels.dqflags.pixel names) of pixels to ignore."
    )

    @field_validator("mask_dq_flags")
    @classmethod
    def _known_flags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return known_dq_flags(value)

    @model_validator(mode="after")
    def _band(self) -> OneOverFOptions:
        if not 1 <= self.low_band[0] <= self.low_band[1]:
            raise ValueError(f"low_band must be (first, last) with 1 <= first <= last, got {self.low_band}")
        if not 1 <= self.bins[0] <= self.bins[1]:
            raise ValueError(f"bins must be (first, last) with 1 <= first <= last, got {self.bins}")
        return self


_AMP_SCALES = ("detector", "amplifier")
METRICS = (
    MetricSpec(
        "one_over_f_power_ratio",
        "ratio",
        "Power of the amplifier's tiles read in readout order (row means) over the same pixels in the orthogonal "
        "order (column means), in the tile bins (1 for white noise and for star light); detector: all tiles",
        scales=_AMP_SCALES,
    ),
    MetricSpec(
        "one_over_f_significance",
        "sigma",
        "Gaussian-equivalent significance of the excess of readout-order over orthogonal-order power "
        "(per-bin (P_row - P_col) / (P_row + P_col), summed over the tiles); detector: all tiles",
        scales=_AMP_SCALES,
    ),
    MetricSpec(
        "one_over_f_common_power_ratio",
        "ratio",
        "Readout-order over orthogonal-order power of the common mode (each tile row's series averaged over the "
        "32 amplifiers)",
        scales=("detector",),
    ),
    MetricSpec(
        "one_over_f_common_significance",
        "sigma",
        "Gaussian-equivalent significance of the common mode's readout-order excess",
        scales=("detector",),
    ),
)
