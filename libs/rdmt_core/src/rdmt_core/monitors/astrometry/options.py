"""What the astrometry monitor takes and gives: its options (star detection included) and its metrics.

No numpy work and no heavy import here: the configuration validates the options from this module.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from ...measure.detection_options import DetectionOptions
from ...records import MetricSpec


class AstrometryOptions(DetectionOptions):
    """Options of the astrometry monitor (detection options included)."""

    catalog_path: str | None = Field(
        None, description="Reference catalogue (ECSV with ra, dec in degrees); can be set per detector."
    )
    catalog_dir: str | None = Field(
        None, description="Directory of ECSV catalogues; those overlapping the image footprint are used."
    )
    match_radius_arcsec: float = Field(0.5, gt=0, description="Final match radius, after the common offset.")
    search_radius_arcsec: float = Field(
        3.0, gt=0, description="Pairs closer than this vote for the common offset: the largest error measured."
    )
    min_snr: float = Field(20.0, ge=0, description="Peak signal-to-noise of a star to be centroided.")
    max_fit_stars: int = Field(600, ge=1, description="Centroid at most this many stars, the brightest first.")
    fit_fwhm_pixels: float = Field(1.6, gt=0, description="FWHM of the circular Gaussian PRF fitted (pixels).")
    fit_shape: int = Field(5, ge=3, description="Side of the fitted box (pixels, odd).")
    min_stars: int = Field(10, ge=3, description="Matched stars needed for the detector values.")
    min_stars_per_cell: int = Field(5, ge=1, description="Matched stars needed for an amplifier or super-pixel.")
    clip_sigma: float = Field(
        5.0, gt=0, description="Reject offsets this many robust sigmas from the fitted shift and rotation."
    )

    @field_validator("fit_shape")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"must be odd, got {value}")
        return value


ARCSEC = "arcsec"
METRICS = (
    MetricSpec("n_detected", "stars", "Point sources detected", extensive=True),
    MetricSpec("n_matched", "stars", "Centroided stars matched to the catalogue (after clipping)", extensive=True),
    MetricSpec("offset_ra_mean", ARCSEC, "Mean offset in RA*cos(Dec), measured minus catalogue", two_sided=True),
    MetricSpec("offset_dec_mean", ARCSEC, "Mean offset in Dec, measured minus catalogue", two_sided=True),
    MetricSpec("offset_median", ARCSEC, "Median total offset of matched stars"),
    MetricSpec("offset_rms", ARCSEC, "RMS total offset of matched stars"),
    MetricSpec(
        "rotation",
        ARCSEC,
        "Rotation of the measured positions about the detector centre (angle; positive north through east)",
        two_sided=True,
        scales=("detector",),
    ),
)
