"""What the read-noise monitor takes and gives: its options and its metrics (names, units, descriptions).

No numpy work and no heavy import here: the configuration validates the options from this module.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ...records import MetricSpec

UNIT = "DN"


class ReadnoiseOptions(BaseModel):
    """Options of the read-noise monitor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    noisy_factor: float = Field(
        2.0,
        gt=1.0,
        description="A finite pixel is noisy when its read noise is above this many times the detector median.",
    )
    clip_sigma: float = Field(
        3.0, gt=0, description="Sigma-clipping bound (standard deviations) of the clipped mean and std."
    )
    clip_maxiters: int = Field(5, ge=1, le=20, description="Largest number of sigma-clipping iterations.")
    reference_border: int = Field(
        4,
        ge=0,
        le=64,
        description="Pixels at each edge of the frame left out as reference pixels (the WFI's 4-pixel border; "
        "the same number of pixels at any frame size).",
    )


METRICS = (
    MetricSpec("readnoise_median", UNIT, "Median read noise of finite pixels (reference border left out)"),
    MetricSpec("readnoise_mean", UNIT, "Sigma-clipped mean read noise of finite pixels (clip_sigma, clip_maxiters)"),
    MetricSpec("readnoise_std", UNIT, "Sigma-clipped standard deviation (ddof=0) of the read noise of finite pixels"),
    MetricSpec("readnoise_p99", UNIT, "99th percentile of the read noise (linear interpolation)"),
    MetricSpec(
        "n_noisy_pixels",
        "pixels",
        "Number of finite pixels whose read noise is above noisy_factor times the detector median",
        extensive=True,
    ),
    MetricSpec(
        "readnoise_amp_spread",
        UNIT,
        "Largest minus smallest of the 32 amplifier medians (detector only)",
        scales=("detector",),
    ),
)
