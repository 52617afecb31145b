"""One metric record in, one evaluation record out: the evaluator service's decision, without Kafka.

Pure: a decoded ``metric_record``, the configuration and the detector's :class:`HistoryWindow` in; the
``evaluation_record`` and the delivery's values (to add to the window) out. The service only moves
the window between this function and its state store.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ..config import RdmtConfig
from ..evaluators import evaluate_metrics
from ..geometry import FULL_SIDE, Geometry
from ..monitors import get_monitor
from ..records import EvaluationBlock, Status, worst
from .history_state import HistoryWindow, Values, metrics_from_record, values_of

# Copied from the metric record to the evaluation record unchanged.
IDENTITY_FIELDS = (
    "run_id", "release", "monitor", "detector", "kind", "file_key", "file_time", "source",
    "exposure_type", "delivery_id", "n_files_in_delivery",
)  # fmt: skip


def window_capacity(config: RdmtConfig, monitor: str, detector: str) -> int:
    """Deliveries to keep per (release, monitor, detector): the trend window, plus one for the newest."""
    return config.evaluators_for(monitor, detector).trend.window + 1


def state_prefix(record: Mapping[str, Any]) -> str:
    """Name of a record's history in the detector's state: ``<release>|<monitor>``."""
    return f"{record['release']}|{record['monitor']}"


def block_entry(block: EvaluationBlock) -> dict[str, Any]:
    """An ``EvaluationBlock`` of the evaluation_record schema."""
    return {
        "evaluator": block.evaluator,
        "metric": block.metric,
        "scale": block.scale,
        "cells": [int(c) for c in block.cells],
        "status": [str(s) for s in block.status],
        "reference": [float(v) for v in np.asarray(block.reference, dtype=np.float64)],
        "threshold": float(block.threshold),
        "reason": [str(r) for r in block.reason],
    }


def evaluate_record(
    record: Mapping[str, Any], config: RdmtConfig, window: HistoryWindow, now: datetime | None = None
) -> tuple[dict[str, Any], Values]:
    """Evaluate one metric record against the earlier deliveries in ``window``.

    Parameters
    ----------
    record : mapping
        A decoded ``metric_record``.
    config : RdmtConfig
        Evaluator settings (per monitor and detector).
    window : HistoryWindow
        The detector's history for the record's release and monitor; not modified.
    now : datetime, optional
        ``evaluated_at`` (default: the current time).

    Returns
    -------
    tuple
        The ``evaluation_record`` and the record's values for :meth:`HistoryWindow.add`.

    Raises
    ------
    rdmt_core.errors.ConfigError
        When the record's monitor is unknown.
    ValueError
        When a metric has the wrong number of values.
    """
    monitor = get_monitor(record["monitor"])  # an unknown monitor has no evaluators: a dead letter
    metrics = metrics_from_record(record)
    history = window.history_before(record["file_time"], record["file_key"])
    # Only ratios of pixel counts matter (to scale count limits), so the full-size geometry serves every size.
    pixels = Geometry(FULL_SIDE, monitor.border).pixels_per_cell()
    blocks = evaluate_metrics(metrics, config.evaluators_for(monitor.name, record["detector"]), history, pixels)
    present = {str(s) for block in blocks for s in np.unique(block.status.astype(str))}
    evaluation = {field: record.get(field) for field in IDENTITY_FIELDS} | {
        "evaluated_at": now or datetime.now(UTC),
        "status": worst({Status(s) for s in present}).value,
        "evaluations": [block_entry(b) for b in blocks],
        "metrics": record["metrics"],  # schema 1.1: the sink stores metrics and evaluations in one write
    }
    return evaluation, values_of(metrics)
