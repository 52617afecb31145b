"""What the PSF shape monitor takes and gives: its options (star detection included) and its metrics.

No numpy work and no heavy import here: the configuration validates the options from this module.
"""

from __future__ import annotations

from pydantic import Field

from ...measure.detection_options import DetectionOptions
from ...records import MetricSpec

# FWHM (pixels) of the pixel-convolved PSF at the centre of the field (galsim.roman, detectors 1, 7, 9,
# 14 and 18 averaged; they differ by less than 3 %): benchmarks/calibrate_psf_shape.py prints them.
EXPECTED_FWHM_PIXELS = {
    "F062": 1.18,
    "F087": 1.09,
    "F106": 1.12,
    "F129": 1.23,
    "F146": 1.34,
    "F158": 1.41,
    "F184": 1.56,
    "F213": 1.75,
}


class PsfShapeOptions(DetectionOptions):
    """Options of the PSF shape monitor (detection options included)."""

    psf_fwhm_pixels: float = Field(
        1.4, gt=0, description="First guess of the FWHM (pixels) when the optical element has no expected FWHM."
    )
    expected_fwhm_pixels: dict[str, float] = Field(
        default_factory=lambda: dict(EXPECTED_FWHM_PIXELS),
        description="Expected FWHM (pixels) per optical element (meta.instrument.optical_element): "
        "psf_fwhm_ratio = psf_fwhm / expected, and the first guess of the measurement.",
    )
    min_snr: float = Field(50.0, ge=0, description="Peak signal-to-noise of a star to be measured.")
    min_stars: int = Field(10, ge=1, description="Stars needed for the detector values.")
    min_stars_per_cell: int = Field(5, ge=1, description="Stars needed for an amplifier or super-pixel value.")
    clip_sigma: float = Field(5.0, gt=0, description="Reject stars whose size is this many robust sigmas off.")


METRICS = (
    MetricSpec("psf_fwhm", "pixels", "FWHM of the stacked stars' PSF (area above half maximum, pixel included)"),
    MetricSpec("psf_fwhm_arcsec", "arcsec", "psf_fwhm times the WCS's local pixel scale at the stars"),
    MetricSpec("psf_fwhm_ratio", "", "psf_fwhm over the expected FWHM of the image's optical element"),
    MetricSpec("psf_ellipticity", "", "(a^2 - b^2) / (a^2 + b^2) of the stacked stars' adaptive second moments"),
    MetricSpec("n_psf_stars", "stars", "Stars measured (bright, unsaturated, isolated)", extensive=True),
)
