"""From a monitor's arrays to a :class:`FileResult`: measuring (metrics), then evaluating (verdicts).

Pure: arrays, identity, configuration and history in; a result out. The two steps are apart because
the services run them in different processes: a monitor service only measures (:func:`measure`), the
evaluator evaluates what it measured against the history (:func:`evaluate`); the embedded pipeline
does both (:func:`file_result`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .config import RdmtConfig
from .errors import InputError
from .evaluators import History, evaluate_metrics
from .geometry import Geometry, geometry_for, to_frame
from .monitors import Monitor
from .records import FileIdentity, FileResult


def measure(
    monitor: type[Monitor],
    arrays: dict[str, np.ndarray],
    identity: FileIdentity,
    config: RdmtConfig,
    run_id: str,
    context: dict[str, Any] | None = None,
    frames: dict[tuple[str, int], np.ndarray] | None = None,
) -> tuple[FileResult, Geometry]:
    """``monitor``'s metrics on ``arrays``: a result without evaluations, and the geometry it was measured on.

    ``context`` is what the monitor's ``load_context`` read beside the arrays (WCS, catalogue).
    ``frames``, a dict the caller keeps for one file, shares the full-frame copies of Level-2 arrays
    between the monitors of that file (read-only, so no monitor can change another's input).

    Raises
    ------
    InputError
        When the arrays do not split into the three scales (not square, side not divisible by 32).
    """
    name, first = next(iter(arrays.items()))
    try:
        geometry = geometry_for(first.shape, monitor.border)
    except ValueError as exc:
        raise InputError(
            identity.source,
            f"array '{name}' {exc}; a WFI detector is 4096x4096 "
            f"(reduced sizes must be square with a side divisible by 32)",
        ) from exc
    if geometry.border:  # Level-2 science arrays go back into the full frame, border marked invalid
        arrays = {k: _framed(k, a, geometry, frames) for k, a in arrays.items()}
    computed = monitor.compute(arrays, config.options_for(monitor.name, identity.detector), context or {})
    result = FileResult(
        identity=identity,
        monitor=monitor.name,
        monitor_title=monitor.title,
        run_id=run_id,
        release=config.release,
        metrics=computed.metrics,
        evaluations=[],
        notes=computed.notes,
        extras=computed.extras,
    )
    return result, geometry


def evaluate(
    result: FileResult, config: RdmtConfig, history: History, pixels_per_cell: dict[str, np.ndarray]
) -> FileResult:
    """``result`` with the verdicts of its monitor's evaluators against ``history``.

    ``pixels_per_cell`` (per scale) scales the detector's count limits to the smaller cells.
    """
    evaluators = config.evaluators_for(result.monitor, result.identity.detector)
    blocks = evaluate_metrics(result.metrics, evaluators, history, pixels_per_cell)
    return dataclasses.replace(result, evaluations=blocks)


def file_result(
    monitor: type[Monitor],
    arrays: dict[str, np.ndarray],
    identity: FileIdentity,
    config: RdmtConfig,
    history: History,
    run_id: str,
    context: dict[str, Any] | None = None,
    frames: dict[tuple[str, int], np.ndarray] | None = None,
) -> FileResult:
    """Measure ``monitor``'s metrics on ``arrays`` and evaluate them against ``history`` (see :func:`measure`)."""
    measured, geometry = measure(monitor, arrays, identity, config, run_id, context, frames)
    return evaluate(measured, config, history, geometry.pixels_per_cell())


def _framed(
    name: str, science: np.ndarray, geometry: Geometry, frames: dict[tuple[str, int], np.ndarray] | None
) -> np.ndarray:
    key = (name, id(science))
    if frames is not None and key in frames:
        return frames[key]
    frame = to_frame(science, geometry, np.nan if science.dtype.kind == "f" else 0)
    if frames is not None:
        frame.flags.writeable = False
        frames[key] = frame
    return frame
