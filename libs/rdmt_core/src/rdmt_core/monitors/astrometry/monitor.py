"""The astrometry monitor: Level-2 images in, offsets of their WCS from a reference catalogue out.

A thin registered class: inputs, options, metrics and figures. The context (WCS and catalogue) is
read by :mod:`.context`, the numbers come from :func:`.metrics.astrometry_metrics`; both are
imported when a file is measured (they need astropy and photutils).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel

from ..base import Context, ExpectedFailure, ImageMonitor, MonitorResult
from .options import METRICS, AstrometryOptions

if TYPE_CHECKING:
    from ...data_access import RomanInput


class AstrometryMonitor(ImageMonitor):
    """Astrometric offsets of Level-2 images from PSF centroids matched to a reference catalogue."""

    name = "astrometry"
    title = "Astrometry (WCS against a reference catalogue)"
    summary = (
        "detected and matched stars; mean RA and Dec offsets, median and RMS offset from a reference catalogue "
        "(arcsec); rotation"
    )
    options_model = AstrometryOptions
    metric_specs = METRICS
    anomaly: ClassVar[ExpectedFailure] = ExpectedFailure("offset_median", "file WCS shifted by (0.3, -0.2) arcsec")
    figures = ("offsets",)

    @classmethod
    def load_context(cls, roman: RomanInput, options: BaseModel) -> dict[str, Any]:
        from ..l2_meta import file_wcs, science_side
        from .context import context_for

        assert isinstance(options, AstrometryOptions)
        return context_for(file_wcs(roman.meta), science_side(roman), options)

    @classmethod
    def compute(cls, arrays: dict[str, np.ndarray], options: BaseModel, context: Context) -> MonitorResult:
        from .metrics import astrometry_metrics

        assert isinstance(options, AstrometryOptions)
        return astrometry_metrics(arrays["data"], arrays["dq"], options, context, cls.border)
