"""The PSF shape monitor: Level-2 images in, PSF FWHM and ellipticity from bright isolated stars out.

A thin registered class; the numbers come from :func:`.metrics.psf_metrics`, imported when a
file is measured (star detection needs scipy).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from ..base import Context, ExpectedFailure, ImageMonitor, MonitorResult
from .options import METRICS, PsfShapeOptions


class PsfShapeMonitor(ImageMonitor):
    """PSF FWHM and ellipticity of Level-2 images from bright, unsaturated, isolated stars."""

    name = "psf_shape"
    title = "PSF shape (FWHM and ellipticity)"
    summary = "PSF FWHM (pixels, arcsec) and ellipticity of bright, isolated, unsaturated stars"
    options_model = PsfShapeOptions
    metric_specs = METRICS
    anomaly: ClassVar[ExpectedFailure] = ExpectedFailure("psf_fwhm", "PSF blurred to 1.5x its FWHM (2.4 pixels)")
    figures = ("psf_fwhm",)

    @classmethod
    def compute(cls, arrays: dict[str, np.ndarray], options: BaseModel, context: Context) -> MonitorResult:
        from .metrics import psf_metrics

        assert isinstance(options, PsfShapeOptions)
        return psf_metrics(arrays["data"], arrays["dq"], options)
