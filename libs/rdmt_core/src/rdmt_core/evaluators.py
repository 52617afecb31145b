"""Evaluators: give every metric value a status, with its reason and reference value.

Pure functions: metric values, a configuration and a history window in,
:class:`EvaluationBlock` records out. Nothing here reads a store or a topic;
the embedded pipeline feeds the history from the store and the streaming
evaluator can feed it from its own state.

* ``mission`` and ``soc`` (absolute): fail when value > limit, caution when
  value > caution_fraction * limit; with a lower limit, fail when value <
  lower, caution when value < lower + (1 - caution_fraction) * |lower|.
  Two-sided metrics (signed offsets) are compared by magnitude.
* ``change`` (relative): r = |value - previous| / |previous|; fail when
  r > tolerance, caution when r > caution_fraction * tolerance; pass whenever
  |value - previous| <= min_abs_change; incomplete without a previous delivery.
* ``trend`` (relative): robust z = (value - median) / sigma over the last
  ``window`` deliveries, sigma = max(1.4826 * MAD, min_sigma_fraction * |median|);
  fail when |z| > fail_z, caution when |z| > caution_z; incomplete until
  ``min_history`` deliveries exist.

A value that is NaN (no finite pixel in the cell, too few stars) is
``incomplete`` everywhere. A metric is evaluated only at the scales its spec
defines it at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .config import (
    AbsoluteEvaluatorConfig,
    ChangeEvaluatorConfig,
    EvaluatorsConfig,
    ScaleLimit,
    TrendEvaluatorConfig,
)
from .geometry import SCALES, cells
from .records import HISTORY_NEEDED, NO_PREVIOUS_DELIVERY, EvaluationBlock, Metric, MetricSpec, Status

EVALUATORS = ("mission", "soc", "change", "trend")
_P, _C, _F, _I = Status.PASS.value, Status.CAUTION.value, Status.FAIL.value, Status.INCOMPLETE.value


@dataclass(frozen=True)
class History:
    """Earlier deliveries of the same monitor and detector, oldest first.

    ``values[(metric, scale)]`` has shape (n_deliveries, n_cells); a row may hold
    NaN where that delivery had no value.
    """

    values: Mapping[tuple[str, str], np.ndarray] = field(default_factory=dict)

    def window(self, metric: str, scale: str, size: int) -> np.ndarray:
        rows = self.values.get((metric, scale))
        if rows is None:
            return np.empty((0, len(cells(scale))))
        return rows[-size:]

    def previous(self, metric: str, scale: str) -> np.ndarray | None:
        rows = self.values.get((metric, scale))
        return None if rows is None or len(rows) == 0 else rows[-1]


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def scaled_limit(
    limit: float | ScaleLimit, spec: MetricSpec, scale: str, pixels: Mapping[str, np.ndarray]
) -> np.ndarray | None:
    """Per-cell limit of ``scale``; count metrics scale by pixel count from the detector limit."""
    if isinstance(limit, ScaleLimit):
        explicit = getattr(limit, scale)
        if explicit is not None:
            return np.full(len(pixels[scale]), float(explicit))
        if limit.detector is None:
            return None
        base = float(limit.detector)
    else:
        base = float(limit)
    if scale == "detector" or not spec.extensive:
        return np.full(len(pixels[scale]), base)
    return base * pixels[scale] / pixels["detector"][0]


def evaluate_absolute(
    name: str, values: np.ndarray, limit: np.ndarray, caution_fraction: float, unit: str
) -> tuple[np.ndarray, np.ndarray]:
    """Statuses and reasons of values against per-cell upper limits."""
    status = np.full(values.shape, _P, dtype=object)
    with np.errstate(invalid="ignore"):
        status[values > caution_fraction * limit] = _C
        status[values > limit] = _F
    status[np.isnan(values)] = _I
    reason = np.full(values.shape, f"within the {name} limit", dtype=object)
    for i in np.nonzero(status != _P)[0]:
        if status[i] == _I:
            reason[i] = "no value"
        else:
            word = "above" if status[i] == _F else f"above {caution_fraction:g} of"
            reason[i] = f"{_fmt(values[i])} {unit} is {word} the {name} limit {_fmt(limit[i])} {unit}"
    return status, reason


def evaluate_lower(
    name: str, values: np.ndarray, lower: np.ndarray, caution_fraction: float, unit: str
) -> tuple[np.ndarray, np.ndarray]:
    """Statuses and reasons of values against per-cell lower limits."""
    status = np.full(values.shape, _P, dtype=object)
    with np.errstate(invalid="ignore"):
        status[values < lower + (1 - caution_fraction) * np.abs(lower)] = _C
        status[values < lower] = _F
    status[np.isnan(values)] = _I
    reason = np.full(values.shape, f"within the {name} range", dtype=object)
    for i in np.nonzero(status != _P)[0]:
        if status[i] == _I:
            reason[i] = "no value"
        else:
            word = "below" if status[i] == _F else "close to"
            reason[i] = f"{_fmt(values[i])} {unit} is {word} the {name} lower limit {_fmt(lower[i])} {unit}"
    return status, reason


def evaluate_change(
    values: np.ndarray, previous: np.ndarray | None, config: ChangeEvaluatorConfig, min_abs: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Statuses, reasons and reference (previous) values of a relative-change check."""
    if previous is None:
        n = values.shape
        return (
            np.full(n, _I, dtype=object),
            np.full(n, NO_PREVIOUS_DELIVERY, dtype=object),
            np.full(n, np.nan),
        )
    delta = np.abs(values - previous)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(previous != 0, delta / np.abs(previous), np.where(delta == 0, 0.0, np.inf))
        status = np.full(values.shape, _P, dtype=object)
        status[ratio > config.caution_fraction * config.tolerance] = _C
        status[ratio > config.tolerance] = _F
        status[delta <= min_abs] = _P
    status[np.isnan(values) | np.isnan(previous)] = _I
    reason = np.full(values.shape, f"within {config.tolerance:.0%} of the previous delivery", dtype=object)
    for i in np.nonzero(status != _P)[0]:
        if status[i] == _I:
            reason[i] = "no value" if np.isnan(values[i]) else "previous delivery has no value"
        else:
            signed = (values[i] - previous[i]) / abs(previous[i]) if previous[i] else np.inf
            reason[i] = (
                f"changed {signed:+.1%} from {_fmt(previous[i])} to {_fmt(values[i])} "
                f"(tolerance {config.tolerance:.0%})"
            )
    return status, reason, np.asarray(previous, dtype=np.float64)


def evaluate_trend(
    values: np.ndarray, window: np.ndarray, config: TrendEvaluatorConfig, min_abs: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Statuses, reasons and reference (history median) values of a robust z-score check."""
    n_history = np.isfinite(window).sum(axis=0) if len(window) else np.zeros(values.shape, dtype=int)
    status = np.full(values.shape, _P, dtype=object)
    reference = np.full(values.shape, np.nan)
    z = np.full(values.shape, np.nan)
    enough = n_history >= config.min_history
    if enough.any():
        h = window[:, enough]
        median = np.nanmedian(h, axis=0)
        mad = np.nanmedian(np.abs(h - median), axis=0)
        sigma = np.maximum(1.4826 * mad, config.min_sigma_fraction * np.abs(median))
        deviation = values[enough] - median
        with np.errstate(invalid="ignore", divide="ignore"):
            zz = np.where(sigma > 0, deviation / sigma, np.where(deviation == 0, 0.0, np.inf))
        zz = np.where(np.abs(deviation) <= min_abs, 0.0, zz)
        reference[enough], z[enough] = median, zz
        with np.errstate(invalid="ignore"):
            status[enough & (np.abs(z) > config.caution_z)] = _C
            status[enough & (np.abs(z) > config.fail_z)] = _F
    status[~enough | np.isnan(values)] = _I
    reason = np.full(values.shape, "within the rolling trend", dtype=object)
    for i in np.nonzero(status != _P)[0]:
        if np.isnan(values[i]):
            reason[i] = "no value"
        elif not enough[i]:
            reason[i] = f"{n_history[i]} of {config.min_history} {HISTORY_NEEDED}"
        else:
            reason[i] = f"z = {z[i]:+.1f} from the median {_fmt(reference[i])} of {n_history[i]} deliveries"
    return status, reason, reference


def evaluate_metrics(
    metrics: list[Metric],
    config: EvaluatorsConfig,
    history: History,
    pixels: Mapping[str, np.ndarray],
) -> list[EvaluationBlock]:
    """Run every enabled evaluator on every metric at every scale.

    Parameters
    ----------
    metrics : list of Metric
        The file's metrics.
    config : EvaluatorsConfig
        Settings for this monitor and detector.
    history : History
        Earlier deliveries (may be empty).
    pixels : mapping
        Science pixels per cell at each scale (``Geometry.pixels_per_cell()``).
    """
    blocks: list[EvaluationBlock] = []
    for metric in metrics:
        spec = metric.spec
        for scale in SCALES:
            if scale not in spec.scales:
                continue
            values = metric.values.at(scale)
            cell_ids = cells(scale)
            for name, absolute in (("mission", config.mission), ("soc", config.soc)):
                blocks.extend(_absolute_block(name, absolute, spec, scale, values, cell_ids, pixels))
            if config.change.enabled:
                min_abs = config.change.min_abs_change.get(spec.name, 0.0)
                status, reason, ref = evaluate_change(
                    values, history.previous(spec.name, scale), config.change, min_abs
                )
                blocks.append(
                    EvaluationBlock(
                        "change", spec.name, scale, cell_ids, status, ref, reason, config.change.tolerance
                    )
                )
            if config.trend.enabled:
                min_abs = config.trend.min_abs_change.get(spec.name, 0.0)
                window = history.window(spec.name, scale, config.trend.window)
                status, reason, ref = evaluate_trend(values, window, config.trend, min_abs)
                blocks.append(
                    EvaluationBlock(
                        "trend", spec.name, scale, cell_ids, status, ref, reason, config.trend.fail_z
                    )
                )
    return blocks


def _absolute_block(
    name: str,
    config: AbsoluteEvaluatorConfig,
    spec: MetricSpec,
    scale: str,
    values: np.ndarray,
    cell_ids: np.ndarray,
    pixels: Mapping[str, np.ndarray],
) -> list[EvaluationBlock]:
    """One block per metric and scale: the upper limit, the lower limit, or both (worst verdict per cell)."""
    if not config.enabled:
        return []
    upper = scaled_limit(config.limits[spec.name], spec, scale, pixels) if spec.name in config.limits else None
    lower = (
        scaled_limit(config.lower_limits[spec.name], spec, scale, pixels)
        if spec.name in config.lower_limits
        else None
    )
    if upper is None and lower is None:
        return []
    unit = spec.unit
    if spec.two_sided:
        values = np.abs(values)
        unit = f"{unit} (magnitude)"
    verdicts = []
    if upper is not None:
        verdicts.append((*evaluate_absolute(name, values, upper, config.caution_fraction, unit), upper))
    if lower is not None:
        verdicts.append((*evaluate_lower(name, values, lower, config.caution_fraction, unit), lower))
    status, reason, reference = verdicts[0]
    reference = reference.astype(np.float64, copy=True)
    for other_status, other_reason, other_reference in verdicts[1:]:
        rank = np.vectorize(lambda s: Status(s).severity, otypes=[int])
        worse = rank(other_status) > rank(status)
        status = np.where(worse, other_status, status)
        reason = np.where(worse, other_reason, reason)
        reference = np.where(worse, other_reference, reference)
    threshold = float(np.max(upper)) if upper is not None else float(np.min(lower))
    return [EvaluationBlock(name, spec.name, scale, cell_ids, status, reference, reason, threshold)]
