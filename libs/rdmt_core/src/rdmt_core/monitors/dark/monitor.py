"""The dark monitor: DARK reference files in, dark-rate statistics and dead/hot/warm pixel counts out.

A thin registered class: it names the inputs, options and metrics; the numbers come from
:func:`.metrics.dark_metrics`, imported when a file is measured (it needs roman_datamodels).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from ...records import ArraySpec
from ..base import Context, ExpectedFailure, Monitor, MonitorResult
from .options import METRICS, DarkOptions


class DarkMonitor(Monitor):
    """Dark current, its distribution and dead/hot/warm pixel counts of DARK reference files."""

    name = "dark"
    title = "Dark reference file"
    summary = "dark-rate mean, median, std, p50/p95/p99 (DN/s); dead, hot and warm pixel counts"
    reftypes = frozenset({"DARK"})
    arrays = {"dark_slope": ArraySpec("f"), "dq": ArraySpec("ui")}  # noqa: RUF012
    options_model = DarkOptions
    metric_specs = METRICS
    anomaly: ClassVar[ExpectedFailure] = ExpectedFailure("n_hot_pixels", "96x96 hot-pixel cluster (0.5 DN/s)")

    @classmethod
    def compute(cls, arrays: dict[str, np.ndarray], options: BaseModel, context: Context) -> MonitorResult:
        from .metrics import dark_metrics

        assert isinstance(options, DarkOptions)
        return dark_metrics(arrays["dark_slope"], arrays["dq"], options)
