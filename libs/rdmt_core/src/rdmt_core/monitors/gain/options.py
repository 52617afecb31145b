"""What the gain monitor takes and gives: its options and its metrics (names, units, descriptions).

No numpy work and no heavy import here: the configuration validates the options from this module.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ...records import MetricSpec

UNIT = "e/DN"


class GainOptions(BaseModel):
    """Options of the gain monitor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_gain: float = Field(
        5.0, gt=0, description="A gain (e/DN) above this is not physical for a WFI detector: counted in n_bad_gain."
    )
    reference_border: int = Field(
        4,
        ge=0,
        le=64,
        description="Pixels at each edge of the frame left out as reference pixels (the WFI's 4-pixel border; "
        "the same number of pixels at any frame size).",
    )


METRICS = (
    MetricSpec("gain_median", UNIT, "Median gain of finite pixels (reference border left out)"),
    MetricSpec("gain_p1", UNIT, "1st percentile of the gain of finite pixels (linear interpolation)"),
    MetricSpec("gain_p99", UNIT, "99th percentile of the gain of finite pixels (linear interpolation)"),
    MetricSpec(
        "n_bad_gain",
        "pixels",
        "Number of pixels (reference border left out) whose gain is NaN, infinite, <= 0 or above max_gain",
        extensive=True,
    ),
    MetricSpec(
        "gain_amp_offset",
        "fraction",
        "Median gain of the cell over the detector median, minus 1 (amplifiers and super-pixels)",
        two_sided=True,
        scales=("amplifier", "superpixel"),
    ),
)
