"""The one conversion between results and the Avro records on the wire (pure: no Kafka, no I/O).

A monitor service turns its :class:`~rdmt_core.records.FileResult` into a ``metric_record``
(:func:`metric_record`); the evaluator turns a metric record back into a result
(:func:`result_from_record`), evaluates it and writes an ``evaluation_record``
(:func:`evaluation_record`); the sink turns that back into the result it stores and reports
(:func:`result_from_record` again). Every field goes through these functions, so a report made by the
services shows what the same report made by ``rdmt run`` shows: the metrics, the verdicts and the
monitor's notes (schema 1.2 carries them on the evaluation record).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np

from .errors import ConfigError, InputError
from .geometry import cells
from .measure.blockstats import ScaleValues
from .monitors import get_monitor
from .records import EvaluationBlock, FileIdentity, FileResult, Metric, MetricSpec

DELIVERY_FIELDS = ("delivery_id", "n_files_in_delivery")  # what a request adds to a file's identity
# Packed pixel masks a metric record may carry (metric_record 1.2 ``masks``): what is left of Kafka's default
# message size (1,000,000 bytes, librdkafka's message.max.bytes) after the metrics (~80 kB for a dark) and a
# margin. A full-size dark's hot and dead masks take ~13 kB; masks beyond the budget are left out, largest
# first, and named in the notes (their pixel changes are then NaN).
MASKS_BUDGET = 600_000
MASKS_NOTE = "pixel masks"


def as_datetime(value: datetime | int) -> datetime:
    """A decoded ``timestamp-millis`` (aware datetime, or milliseconds) as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def _identity_fields(result: FileResult) -> dict[str, Any]:
    identity = result.identity
    return {
        "run_id": result.run_id,
        "release": result.release,
        "monitor": result.monitor,
        "detector": identity.detector,
        "kind": identity.kind,
        "file_key": identity.file_key,
        "file_time": identity.file_time,
        "source": identity.source,
        "exposure_type": identity.exposure_type or None,
        "optical_element": identity.optical_element,
        "exposure_mode": identity.exposure_mode,
    }


def metric_entries(metrics: Iterable[Metric]) -> list[dict[str, Any]]:
    """The ``metrics`` field of a metric or evaluation record (the inverse of :func:`metrics_from_record`)."""
    return [
        {
            "metric": m.spec.name,
            "unit": m.spec.unit,
            "extensive": m.spec.extensive,
            "detector": float(m.values.detector),
            "amplifier": [float(v) for v in m.values.amplifier],
            "superpixel": [float(v) for v in m.values.superpixel],
        }
        for m in metrics
    ]


def _spec(monitor: str, metric: str, unit: str, extensive: bool) -> MetricSpec:
    """The registered spec of ``metric`` (its description and flags), or one built from the record."""
    try:
        registered = get_monitor(monitor).spec(metric)
    except (ConfigError, KeyError):  # a metric of a newer monitor version still evaluates
        return MetricSpec(metric, unit, "", extensive)
    return dataclasses.replace(registered, unit=unit, extensive=extensive)


def metrics_from_record(record: Mapping[str, Any]) -> list[Metric]:
    """The :class:`Metric` objects of a decoded metric or evaluation record.

    Raises
    ------
    ValueError
        When a metric does not have 32 amplifier and 1024 super-pixel values.
    """
    metrics = []
    for entry in record["metrics"]:
        values = ScaleValues(
            detector=float(entry["detector"]),
            amplifier=np.asarray(entry["amplifier"], dtype=np.float64),
            superpixel=np.asarray(entry["superpixel"], dtype=np.float64),
        )
        for scale in ("amplifier", "superpixel"):
            expected = len(cells(scale))
            if len(getattr(values, scale)) != expected:
                raise ValueError(
                    f"metric_record {record.get('file_key')}: metric {entry['metric']} has "
                    f"{len(getattr(values, scale))} {scale} values, expected {expected}"
                )
        spec = _spec(record["monitor"], entry["metric"], entry["unit"], entry["extensive"])
        metrics.append(Metric(spec, values))
    return metrics


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


def blocks_from_record(entries: Iterable[Mapping[str, Any]]) -> list[EvaluationBlock]:
    """The :class:`EvaluationBlock` objects of an evaluation record's ``evaluations``."""
    return [
        EvaluationBlock(
            evaluator=entry["evaluator"],
            metric=entry["metric"],
            scale=entry["scale"],
            cells=np.asarray(entry["cells"], dtype=np.int32),
            status=np.asarray(entry["status"], dtype=object),
            reference=np.asarray(entry["reference"], dtype=np.float64),
            reason=np.asarray(entry["reason"], dtype=object),
            threshold=float(entry["threshold"]),
        )
        for entry in entries
    ]


def metric_record(
    result: FileResult,
    delivery: Mapping[str, Any],
    computed_at: datetime,
    masks: Mapping[str, bytes] | None = None,
) -> dict[str, Any]:
    """The ``metric_record`` of one monitor's result; ``delivery`` gives ``delivery_id`` and ``n_files_in_delivery``.

    ``masks`` are the packed masks of the monitor's tracked pixel classes (:func:`rdmt_core.pixel_masks.pack_masks`),
    for the evaluator's pixel-change metrics; those beyond :data:`MASKS_BUDGET` are left out and noted.
    """
    kept, notes = dict(masks or {}), dict(result.notes)
    left_out = []
    while kept and sum(len(data) for data in kept.values()) > MASKS_BUDGET:
        largest = max(kept, key=lambda name: len(kept[name]))
        left_out.append(f"{largest} ({len(kept.pop(largest)) / 1000:.0f} kB)")
        notes[MASKS_NOTE] = f"not sent, too large for one message: {', '.join(left_out)}"
    return (
        _identity_fields(result)
        | {field: delivery[field] for field in DELIVERY_FIELDS}
        | {
            "computed_at": computed_at,
            "notes": notes,
            "metrics": metric_entries(result.metrics),
            "masks": kept,
        }
    )


def masks_of_record(record: Mapping[str, Any]) -> dict[str, bytes]:
    """The packed pixel masks of a decoded metric record, by class (none from writers older than 1.2)."""
    return {str(name): bytes(data) for name, data in (record.get("masks") or {}).items()}


def evaluation_record(result: FileResult, delivery: Mapping[str, Any], evaluated_at: datetime) -> dict[str, Any]:
    """The ``evaluation_record`` of an evaluated result: identity, verdicts, the metrics and the notes."""
    return (
        _identity_fields(result)
        | {field: delivery[field] for field in DELIVERY_FIELDS}
        | {
            "evaluated_at": evaluated_at,
            "status": result.status.value,
            "evaluations": [block_entry(b) for b in result.evaluations],
            "metrics": metric_entries(result.metrics),
            "notes": dict(result.notes),
        }
    )


def result_from_record(record: Mapping[str, Any], monitor_title: str = "") -> FileResult:
    """The :class:`FileResult` of a decoded metric record or evaluation record that carries its metrics.

    A metric record gives a result without evaluations. ``monitor_title`` defaults to the registered
    monitor's title (the monitor's name for a monitor this version does not know).

    Raises
    ------
    InputError
        When the record has no metrics (an evaluation record written with schema 1.0).
    ValueError
        When a metric has the wrong number of values.
    """
    identity = FileIdentity(
        source=record["source"],
        kind=record["kind"],
        detector=record["detector"],
        file_time=as_datetime(record["file_time"]),
        exposure_type=record.get("exposure_type") or "",
        optical_element=record.get("optical_element") or "",  # "" from writers older than metric_record 1.1
        exposure_mode=record.get("exposure_mode") or "",
    )
    if record.get("metrics") is None:
        raise InputError(identity.source, f"evaluation record {identity.file_key} carries no metrics (schema 1.0)")
    if not monitor_title:
        try:
            monitor_title = get_monitor(record["monitor"]).title
        except ConfigError:
            monitor_title = record["monitor"]
    return FileResult(
        identity=identity,
        monitor=record["monitor"],
        monitor_title=monitor_title,
        run_id=record["run_id"],
        release=record["release"],
        metrics=metrics_from_record(record),
        evaluations=blocks_from_record(record.get("evaluations") or []),
        notes=dict(record.get("notes") or {}),
    )
