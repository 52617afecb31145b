"""The background monitor: Level-2 images in, sigma-clipped background level, rms and amplifier jumps out.

A thin registered class; the numbers come from :func:`.metrics.background_metrics`, imported
when a file is measured.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from ..base import Context, ExpectedFailure, ImageMonitor, MonitorResult
from .options import METRICS, BackgroundOptions


class BackgroundMonitor(ImageMonitor):
    """Sigma-clipped background level, its RMS and amplifier jumps of Level-2 images."""

    name = "background"
    title = "Background level and amplifier jumps"
    summary = "sigma-clipped background level and RMS (DN/s); steps between neighbouring amplifiers"
    options_model = BackgroundOptions
    metric_specs = METRICS
    anomaly: ClassVar[ExpectedFailure] = ExpectedFailure(
        "background_jump_significance", "background step of 0.03 DN/s (about 10 sigma at 512) from amplifier 17 on"
    )
    figures = ("background_map",)

    @classmethod
    def compute(cls, arrays: dict[str, np.ndarray], options: BaseModel, context: Context) -> MonitorResult:
        from .metrics import background_metrics

        assert isinstance(options, BackgroundOptions)
        return background_metrics(arrays["data"], arrays["dq"], options)
