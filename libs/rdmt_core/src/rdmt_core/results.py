"""From a monitor's arrays to a :class:`FileResult`: measuring (metrics), then evaluating (verdicts).

Pure: arrays, identity, configuration and history in; a result out. The two steps are apart because
the services run them in different processes: a monitor service only measures (:func:`measure`), the
evaluator evaluates what it measured against the history (:func:`evaluate`); the embedded pipeline
does both (:func:`file_result`).

Between the two, a monitor that tracks pixel classes (``Monitor.tracked_pixels``) gets its pixel-change
metrics (:func:`add_pixel_changes`): the caller brings the previous file's masks (the pipeline from the
store, the evaluator from its state), this module only compares.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np

from .config import RdmtConfig
from .errors import InputError, RdmtError
from .evaluators import History, evaluate_metrics
from .geometry import Geometry, geometry_for, to_frame
from .monitors import Monitor, get_monitor
from .pixel_masks import (
    MaskFormatError,
    PixelMasks,
    cross_check_for,
    is_absolute_only,
    mask_agreement,
    pixel_change_metrics,
    pixel_change_specs,
    unpack_all,
    waits_for_earlier_file,
)
from .records import NO_PREVIOUS_DELIVERY, EvaluationBlock, FileIdentity, FileResult, Status


class Measurement(NamedTuple):
    """What measuring one file gives: the result without verdicts, its geometry and the monitor's masks."""

    result: FileResult
    geometry: Geometry
    masks: dict[str, np.ndarray]  # MonitorResult.masks: one boolean image per tracked pixel class


def measure(
    monitor: type[Monitor],
    arrays: dict[str, np.ndarray],
    identity: FileIdentity,
    config: RdmtConfig,
    run_id: str,
    context: dict[str, Any] | None = None,
    frames: dict[tuple[str, int], np.ndarray] | None = None,
) -> tuple[FileResult, Geometry]:
    """``monitor``'s metrics on ``arrays``: a result without evaluations, and its geometry (see :func:`measurement`)."""
    measured = measurement(monitor, arrays, identity, config, run_id, context, frames)
    return measured.result, measured.geometry


def measurement(
    monitor: type[Monitor],
    arrays: dict[str, np.ndarray],
    identity: FileIdentity,
    config: RdmtConfig,
    run_id: str,
    context: dict[str, Any] | None = None,
    frames: dict[tuple[str, int], np.ndarray] | None = None,
) -> Measurement:
    """``monitor``'s metrics on ``arrays``: a result without evaluations, the geometry it was measured on, and
    the monitor's masks of its tracked pixel classes.

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
    return Measurement(result, geometry, dict(computed.masks))


def add_pixel_changes(
    result: FileResult,
    masks: dict[str, np.ndarray],
    previous: PixelMasks | None,
    reference: PixelMasks | None = None,
) -> FileResult:
    """``result`` with the pixel-change metrics of its monitor's tracked classes (and its cross-file check).

    ``masks`` are this file's (:attr:`Measurement.masks`); ``previous`` the packed masks of the previous file
    of the same identity, None when there is none; ``reference`` the packed masks of the cross-file check's
    reference (the detector's current MASK for a DARK), None when unknown. A monitor tracking no class is
    returned unchanged. The metrics follow the measured ones, in the order of the monitor's ``metric_specs``.
    """
    monitor = get_monitor(result.monitor)
    if not monitor.tracked_pixels:
        return result
    previous_key = previous.file_key if previous is not None else ""
    unreadable: dict[str, str] = {}
    previous_masks, reference_masks = _unpacked(previous, unreadable), _unpacked(reference, unreadable)
    if previous is not None and previous_masks is None:  # judged as a file without an earlier one, and said why
        previous_key = ""
    metrics, notes = pixel_change_metrics(monitor.tracked_pixels, masks, previous_masks, previous_key)
    check = cross_check_for(monitor.name)
    if check is not None:
        agreement, agreement_notes = mask_agreement(
            check, masks, reference_masks, reference.file_key if reference_masks is not None else ""
        )
        metrics.append(agreement)
        notes |= agreement_notes
    notes |= unreadable
    return dataclasses.replace(result, metrics=[*result.metrics, *metrics], notes={**result.notes, **notes})


def _unpacked(packed: PixelMasks | None, unreadable: dict[str, str]) -> dict[str, np.ndarray] | None:
    """The masks of ``packed``; None, with a note in ``unreadable``, when they cannot be read.

    A damaged stored mask must not fail every later file of its identity: it is treated as missing.
    """
    try:
        return unpack_all(packed)
    except MaskFormatError as exc:
        assert packed is not None
        unreadable[f"unreadable masks of {packed.file_key}"] = f"{exc}; treated as missing"
        return None


def _as_waiting(block: EvaluationBlock) -> EvaluationBlock:
    """``block`` with its unjudged values waiting for an earlier file (a first file's pixel changes)."""
    waiting = np.asarray(block.status, dtype=str) == Status.INCOMPLETE.value
    reason = np.where(waiting, NO_PREVIOUS_DELIVERY, np.asarray(block.reason, dtype=object))
    return dataclasses.replace(block, reason=reason)


def evaluate(
    result: FileResult, config: RdmtConfig, history: History, pixels_per_cell: dict[str, np.ndarray]
) -> FileResult:
    """``result`` with the verdicts of its monitor's evaluators against ``history``.

    ``pixels_per_cell`` (per scale) scales the detector's count limits to the smaller cells.

    The pixel-change metrics and cross-file checks (:mod:`rdmt_core.pixel_masks`) get the absolute
    evaluators only: they already compare with the previous file, so a change or trend of them would
    compare differences of differences. (The configuration has no per-metric switch for change and
    trend; their settings for these metrics are ignored.)
    """
    evaluators = config.evaluators_for(result.monitor, result.identity.detector)
    classes = _tracked(result.monitor)
    own = [m for m in result.metrics if not is_absolute_only(m.spec.name, result.monitor, classes)]
    derived = [m for m in result.metrics if is_absolute_only(m.spec.name, result.monitor, classes)]
    blocks = evaluate_metrics(own, evaluators, history, pixels_per_cell)
    if derived:
        absolute = evaluators.model_copy(
            update={
                "change": evaluators.change.model_copy(update={"enabled": False}),
                "trend": evaluators.trend.model_copy(update={"enabled": False}),
            }
        )
        judged = evaluate_metrics(derived, absolute, history, pixels_per_cell)
        if waits_for_earlier_file(result.notes):  # a first file: its new and recovered pixels wait, not fail to judge
            changes = {spec.name for spec in pixel_change_specs(classes)}
            judged = [_as_waiting(b) if b.metric in changes else b for b in judged]
        blocks += judged
    return dataclasses.replace(result, evaluations=blocks)


def _tracked(monitor: str) -> tuple[str, ...]:
    try:
        return get_monitor(monitor).tracked_pixels
    except RdmtError:  # a record of a monitor this version does not know: nothing derived
        return ()


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
    """Measure ``monitor``'s metrics on ``arrays`` and evaluate them against ``history`` (see :func:`measure`).

    Without the pixel-change metrics: the embedded pipeline adds them between the two steps
    (:func:`add_pixel_changes`), with the previous file's masks from its store.
    """
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
