"""The dark monitor: DARK reference files in, dark-rate statistics and dead/hot/warm pixel counts out.

It returns its hot and dead masks too: the pipeline and the evaluator add the pixels that became hot or
dead and that recovered since the previous dark, and the agreement with the MASK's HOT flags
(:mod:`rdmt_core.pixel_masks`).

A thin registered class: it names the inputs, options and metrics; the numbers come from
:func:`.metrics.dark_metrics`, imported when a file is measured (it needs roman_datamodels).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from ...pixel_masks import derived_specs
from ...records import ArraySpec
from ..base import Context, ExpectedFailure, Monitor, MonitorResult
from .options import METRICS, TRACKED_PIXELS, DarkOptions


class DarkMonitor(Monitor):
    """Dark current, its distribution and dead/hot/warm pixel counts of DARK reference files."""

    name = "dark"
    title = "Dark reference file"
    summary = "dark-rate mean, median, std, p50/p95/p99 (DN/s); dead, hot and warm pixel counts"
    reftypes = frozenset({"DARK"})
    arrays = {"dark_slope": ArraySpec("f"), "dq": ArraySpec("ui")}  # noqa: RUF012
    options_model = DarkOptions
    tracked_pixels = TRACKED_PIXELS
    # measured (METRICS), then added after measuring: n_new_/n_recovered_ hot and dead, hot_mask_agreement
    metric_specs = METRICS + derived_specs(name, TRACKED_PIXELS)
    anomaly: ClassVar[ExpectedFailure] = ExpectedFailure("n_hot_pixels", "96x96 hot-pixel cluster (0.5 DN/s)")

    @classmethod
    def compute(cls, arrays: dict[str, np.ndarray], options: BaseModel, context: Context) -> MonitorResult:
        from .metrics import dark_metrics

        assert isinstance(options, DarkOptions)
        return dark_metrics(arrays["dark_slope"], arrays["dq"], options)
