"""The flat monitor: FLAT reference files in, flat-field level, spread, tails and low-QE count out.

A thin registered class: it names the inputs, options and metrics; the numbers come from
:func:`.metrics.flat_metrics`, imported when a file is measured (it needs roman_datamodels).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from ...pixel_masks import derived_specs
from ...records import ArraySpec
from ..base import Context, ExpectedFailure, Monitor, MonitorResult
from .options import METRICS, FlatOptions


class FlatMonitor(Monitor):
    """Median, clipped spread, 1st/99th percentiles and low-QE pixels of FLAT reference files."""

    name = "flat"
    title = "Flat-field reference file"
    summary = "flat median, clipped std, p1 and p99 (dimensionless, per optical element); LOW_QE pixel count"
    reftypes = frozenset({"FLAT"})
    arrays = {"data": ArraySpec("f"), "dq": ArraySpec("ui")}  # noqa: RUF012
    options_model = FlatOptions
    tracked_pixels = ("low_qe",)  # n_new_low_qe, n_recovered_low_qe since the previous flat of the element
    metric_specs = METRICS + derived_specs(name, ("low_qe",))
    anomaly: ClassVar[ExpectedFailure] = ExpectedFailure("flat_p1", "new 100x100 low-QE patch at 0.6")

    @classmethod
    def compute(cls, arrays: dict[str, np.ndarray], options: BaseModel, context: Context) -> MonitorResult:
        from ...measure.dq import flagged_pixels
        from .metrics import flat_metrics

        assert isinstance(options, FlatOptions)
        result = flat_metrics(arrays["data"], arrays["dq"], options)
        low_qe = np.zeros(arrays["dq"].shape, dtype=bool)  # the tracked class's mask (rdmt_core.pixel_masks)
        low_qe.ravel()[flagged_pixels(arrays["dq"], ("LOW_QE",))] = True
        return dataclasses.replace(result, masks={"low_qe": low_qe})
