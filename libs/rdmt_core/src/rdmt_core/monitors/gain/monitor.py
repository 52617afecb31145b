"""The gain monitor: GAIN reference files in, gain statistics, non-physical values and amplifier offsets out.

A thin registered class: it names the inputs, options and metrics; the numbers come from
:func:`.metrics.gain_metrics`, imported when a file is measured.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from ...records import ArraySpec
from ..base import Context, ExpectedFailure, Monitor, MonitorResult
from .options import METRICS, GainOptions


class GainMonitor(Monitor):
    """Gain of GAIN reference files: its distribution, non-physical values and amplifier offsets."""

    name = "gain"
    title = "Gain reference file"
    summary = "gain median, p1, p99 (e/DN); non-physical or NaN gain count; offset of amplifiers and super-pixels"
    reftypes = frozenset({"GAIN"})
    arrays = {"data": ArraySpec("f")}  # noqa: RUF012
    options_model = GainOptions
    metric_specs = METRICS
    anomaly: ClassVar[ExpectedFailure] = ExpectedFailure("gain_amp_offset", "amplifier 20's gain 10% higher")

    @classmethod
    def compute(cls, arrays: dict[str, np.ndarray], options: BaseModel, context: Context) -> MonitorResult:
        from .metrics import gain_metrics

        assert isinstance(options, GainOptions)
        return gain_metrics(arrays["data"], options)
