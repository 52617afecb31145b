"""The saturation monitor: SATURATION reference files in, saturation-level statistics and pixel counts out.

A thin registered class: it names the inputs, options and metrics; the numbers come from
:func:`.metrics.saturation_metrics`, imported when a file is measured.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from ...records import ArraySpec
from ..base import Context, ExpectedFailure, Monitor, MonitorResult
from .options import METRICS, SaturationOptions


class SaturationMonitor(Monitor):
    """Saturation levels of SATURATION reference files: their distribution, low-level and NO_SAT_CHECK pixels."""

    name = "saturation"
    title = "Saturation reference file"
    summary = "saturation median and p1 (DN); counts of low-saturation and NO_SAT_CHECK pixels"
    reftypes = frozenset({"SATURATION"})
    arrays = {"data": ArraySpec("f"), "dq": ArraySpec("ui")}  # noqa: RUF012
    options_model = SaturationOptions
    metric_specs = METRICS
    anomaly: ClassVar[ExpectedFailure] = ExpectedFailure(
        "n_low_saturation", "a square of side/8 whose saturation level dropped to half the median"
    )

    @classmethod
    def compute(cls, arrays: dict[str, np.ndarray], options: BaseModel, context: Context) -> MonitorResult:
        from .metrics import saturation_metrics

        assert isinstance(options, SaturationOptions)
        return saturation_metrics(arrays["data"], arrays["dq"], options)
