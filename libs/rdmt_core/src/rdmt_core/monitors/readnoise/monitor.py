"""The read-noise monitor: READNOISE reference files in, read-noise statistics and noisy-pixel counts out.

A thin registered class: it names the inputs, options and metrics; the numbers come from
:func:`.metrics.readnoise_metrics`, imported when a file is measured.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from ...records import ArraySpec
from ..base import Context, ExpectedFailure, Monitor, MonitorResult
from .options import METRICS, ReadnoiseOptions


class ReadnoiseMonitor(Monitor):
    """Read noise of READNOISE reference files: its distribution, noisy pixels and amplifier spread."""

    name = "readnoise"
    title = "Read-noise reference file"
    summary = "read-noise median, clipped mean and std, p99 (DN); noisy-pixel count; amplifier-to-amplifier spread"
    reftypes = frozenset({"READNOISE"})
    arrays = {"data": ArraySpec("f")}  # noqa: RUF012
    options_model = ReadnoiseOptions
    metric_specs = METRICS
    anomaly: ClassVar[ExpectedFailure] = ExpectedFailure(
        "readnoise_amp_spread", "amplifier 12 with 1.5 times its read noise"
    )

    @classmethod
    def compute(cls, arrays: dict[str, np.ndarray], options: BaseModel, context: Context) -> MonitorResult:
        from .metrics import readnoise_metrics

        assert isinstance(options, ReadnoiseOptions)
        return readnoise_metrics(arrays["data"], options)
