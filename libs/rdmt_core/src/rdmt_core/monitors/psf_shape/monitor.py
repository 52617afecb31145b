"""The PSF shape monitor: Level-2 images in, PSF FWHM and ellipticity from bright isolated stars out.

A thin registered class; the numbers come from :func:`.metrics.psf_metrics`, imported when a
file is measured (star detection needs scipy). The context is the file's WCS (for arcsec) and its
optical element (for the expected FWHM of ``psf_fwhm_ratio``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel

from ..base import Context, ExpectedFailure, ImageMonitor, MonitorResult
from .options import METRICS, PsfShapeOptions

if TYPE_CHECKING:
    from ...data_access import RomanInput


class PsfShapeMonitor(ImageMonitor):
    """PSF FWHM and ellipticity of Level-2 images from bright, unsaturated, isolated stars."""

    name = "psf_shape"
    title = "PSF shape (FWHM and ellipticity)"
    summary = "PSF FWHM (pixels, arcsec) and ellipticity of bright, isolated, unsaturated stars"
    options_model = PsfShapeOptions
    metric_specs = METRICS
    anomaly: ClassVar[ExpectedFailure] = ExpectedFailure(
        "psf_fwhm_ratio", "PSF blurred to 1.5x its FWHM (F158: 1.4 -> 2.1 pixels)"
    )
    figures = ("psf_fwhm_stars",)

    @classmethod
    def load_context(cls, roman: RomanInput, options: BaseModel) -> dict[str, Any]:
        from ..l2_meta import file_wcs, optical_element_of

        return {"wcs": file_wcs(roman.meta), "optical_element": optical_element_of(roman.meta)}

    @classmethod
    def compute(cls, arrays: dict[str, np.ndarray], options: BaseModel, context: Context) -> MonitorResult:
        from .metrics import psf_metrics

        assert isinstance(options, PsfShapeOptions)
        return psf_metrics(arrays["data"], arrays["dq"], options, dict(context or {}))
