"""The mask monitor: MASK reference files in, per-flag pixel counts and the operable-pixel fraction out.

A thin registered class: it names the inputs, options and metrics; the numbers come from
:func:`.metrics.mask_metrics`, imported when a file is measured (it needs roman_datamodels).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from ...pixel_masks import derived_specs
from ...records import ArraySpec
from ..base import Context, ExpectedFailure, Monitor, MonitorResult
from .options import METRICS, TRACKED_PIXELS, MaskOptions


class MaskMonitor(Monitor):
    """Pixel counts per DQ flag and the operable-pixel fraction of MASK reference files."""

    name = "mask"
    title = "Bad-pixel mask reference file"
    summary = "pixels per DQ flag (n_dead, n_hot, n_warm, n_low_qe, n_telegraph, ...); operable-pixel fraction"
    reftypes = frozenset({"MASK"})
    arrays = {"dq": ArraySpec("ui")}  # noqa: RUF012
    options_model = MaskOptions
    tracked_pixels = TRACKED_PIXELS  # every flag: n_new_/n_recovered_<flag> since the previous MASK
    metric_specs = METRICS + derived_specs(name, TRACKED_PIXELS)
    anomaly: ClassVar[ExpectedFailure] = ExpectedFailure("n_dead", "new 96x96 cluster of DEAD pixels")

    @classmethod
    def compute(cls, arrays: dict[str, np.ndarray], options: BaseModel, context: Context) -> MonitorResult:
        from .metrics import mask_metrics

        assert isinstance(options, MaskOptions)
        return mask_metrics(arrays["dq"], options)
