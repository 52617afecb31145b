"""The bias monitor: SUPERBIAS reference files (reftype BIAS) in, bias level, spread and structure out.

A thin registered class: it names the inputs, options and metrics; the numbers come from
:func:`.metrics.bias_metrics`, imported when a file is measured (it needs roman_datamodels).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from ...records import ArraySpec
from ..base import Context, ExpectedFailure, Monitor, MonitorResult
from .options import METRICS, BiasOptions


class BiasMonitor(Monitor):
    """Level, spread, alternating-column offsets and row/column structure of SUPERBIAS reference files."""

    name = "bias"
    title = "Superbias reference file"
    summary = (
        "superbias median and clipped std (DN); even/odd column medians and offset per amplifier; "
        "row and column profile RMS"
    )
    reftypes = frozenset({"BIAS"})  # SuperbiasRefModel's meta.reftype
    arrays = {"data": ArraySpec("f"), "dq": ArraySpec("ui")}  # noqa: RUF012
    options_model = BiasOptions
    metric_specs = METRICS
    anomaly: ClassVar[ExpectedFailure] = ExpectedFailure(
        "bias_even_odd_offset", "60 DN even/odd column offset appearing in amplifier 5"
    )

    @classmethod
    def compute(cls, arrays: dict[str, np.ndarray], options: BaseModel, context: Context) -> MonitorResult:
        from .metrics import bias_metrics

        assert isinstance(options, BiasOptions)
        return bias_metrics(arrays["data"], arrays["dq"], options)
