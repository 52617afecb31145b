"""What the PSF shape monitor takes and gives: its options (star detection included) and its metrics.

No numpy work and no heavy import here: the configuration validates the options from this module.
"""

from __future__ import annotations

from pydantic import Field

from ...measure.detection_options import DetectionOptions
from ...records import MetricSpec


class PsfShapeOptions(DetectionOptions):
    """Options of the PSF shape monitor (detection options included)."""

    psf_fwhm_pixels: float = Field(1.6, gt=0, description="Expected FWHM (pixels): the first aperture.")
    moffat_beta: float = Field(3.0, gt=2.0, description="Moffat index of the PSF model (FWHM from moments).")
    aperture_sigma: float = Field(
        3.0, gt=1.0, le=6.0, description="Aperture radius in units of the star's own moment width."
    )
    min_snr: float = Field(50.0, ge=0, description="Peak signal-to-noise of a star to be measured.")
    min_stars: int = Field(10, ge=1, description="Stars needed for the detector values.")
    min_stars_per_cell: int = Field(5, ge=1, description="Stars needed for an amplifier or super-pixel value.")
    clip_sigma: float = Field(5.0, gt=0, description="Reject stars whose size is this many robust sigmas off.")
    pixel_scale_arcsec: float = Field(0.11, gt=0, description="Pixel scale for psf_fwhm_arcsec (arcsec/pixel).")


METRICS = (
    MetricSpec("psf_fwhm", "pixels", "FWHM of the Moffat PSF with the stars' mean second moments"),
    MetricSpec("psf_fwhm_arcsec", "arcsec", "psf_fwhm times the nominal pixel scale"),
    MetricSpec("psf_ellipticity", "", "(a^2 - b^2) / (a^2 + b^2) of the stars' mean second moments"),
    MetricSpec("n_psf_stars", "stars", "Stars measured (bright, unsaturated, isolated)", extensive=True),
)
