"""The 1/f noise monitor: Level-2 images in, residual correlated readout noise per amplifier out.

A thin registered class; the numbers come from :func:`.metrics.one_over_f_metrics`, imported
when a file is measured (it needs scipy).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from ..base import Context, ExpectedFailure, ImageMonitor, MonitorResult
from .options import METRICS, OneOverFOptions


class OneOverFMonitor(ImageMonitor):
    """Residual 1/f (correlated readout) noise of Level-2 images, per amplifier and common mode."""

    name = "one_over_f"
    title = "Residual 1/f noise"
    summary = (
        "residual 1/f noise: power in readout order over the same pixels read the other way (star light is the "
        "same either way) and its significance, per amplifier, detector and common mode"
    )
    options_model = OneOverFOptions
    metric_specs = METRICS
    anomaly: ClassVar[ExpectedFailure] = ExpectedFailure(
        "one_over_f_significance", "1/f readout noise of 0.4 of the white noise per pixel"
    )
    figures = ("one_over_f_spectra", "one_over_f_amplifiers")

    @classmethod
    def compute(cls, arrays: dict[str, np.ndarray], options: BaseModel, context: Context) -> MonitorResult:
        from .metrics import one_over_f_metrics

        assert isinstance(options, OneOverFOptions)
        return one_over_f_metrics(arrays["data"], arrays["dq"], options)
