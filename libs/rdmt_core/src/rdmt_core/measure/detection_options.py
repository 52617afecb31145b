"""Options of star detection, shared by the Level-2 star monitors (their options extend these).

Apart from :mod:`.stars` so that a monitor's options can be imported (by the configuration) without
scipy or roman_datamodels; the detection itself is in :mod:`.stars`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DetectionOptions(BaseModel):
    """Options of star detection, shared by the star monitors (their options extend these)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detection_threshold: float = Field(
        5.0, gt=0, description="A peak pixel must exceed its block's background by this many sigma."
    )
    isolation_radius: float = Field(
        8.0, ge=0, description="Pixels: a star with another detected peak closer than this is not isolated."
    )
    merge_radius: float = Field(
        2.5, ge=0, description="Pixels: a peak this close to a brighter one is part of it (saturated tops, wings)."
    )
    spike_fraction: float = Field(
        0.05,
        ge=0,
        lt=1,
        description="A peak whose 4 neighbours average less than this fraction of it is a single-pixel event "
        "(cosmic ray, hot pixel), not a star; lower it for very undersampled PSFs.",
    )
    psf_envelope: float = Field(
        1.2,
        ge=0,
        description="A peak fainter than this times a brighter star's peak over the squared distance (pixels) is "
        "taken for part of that star's PSF (Airy ring, diffraction spike, wing noise), not a source; 0 keeps every "
        "peak. 0.4 / d^2 bounds the rings and spikes of the WFI PSFs: peaks below it are dropped, peaks between it "
        "and this bound (the default allows a factor 3 for noise) may be faint companions and still make the "
        "brighter star not isolated.",
    )
    max_peak: float = Field(
        1500.0,
        gt=0,
        description="DN/s: a star whose brightest pixel (background included) reaches this is treated as "
        "saturated (non-linear), whatever its DQ flags.",
    )
    stamp_radius: int = Field(
        5, ge=2, le=15, description="Pixels: half-size of the stamp a star is measured on (inside the frame)."
    )
    max_masked_pixels: int = Field(
        2,
        ge=0,
        le=24,
        description="Unusable pixels (non-finite or DQ DO_NOT_USE) allowed among the 24 around a star's peak in its "
        "5x5 box; they are left out of the measurement. A star with more (a bad column, the image edge) is not used.",
    )
