"""Per-cell summaries of a file's evaluations, shared by the ECSV table, the reports and the overview.

Vectorised numpy over :class:`EvaluationBlock` records: which evaluators ran,
where each block's cells sit in a scale, the worst status per cell over
evaluators, counts of statuses, and failing evaluations per cell.
No formatting and no I/O here.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

import numpy as np

from ..evaluators import EVALUATORS
from ..geometry import cells
from ..records import EvaluationBlock, FileResult, Status

NOT_EVALUATED = -1  # severity of a cell no evaluator looked at
_BY_SEVERITY = {s.severity: s for s in Status}


def evaluator_names(results: Iterable[FileResult]) -> list[str]:
    """Evaluators that gave verdicts in ``results``: the built-in ones in their usual order, then others."""
    seen = {block.evaluator for result in results for block in result.evaluations}
    return [name for name in EVALUATORS if name in seen] + sorted(seen - set(EVALUATORS))


def cell_positions(block: EvaluationBlock) -> np.ndarray:
    """Index of each of the block's cells in the scale's cell list (``geometry.cells``)."""
    scale_cells = cells(block.scale)
    positions = np.searchsorted(scale_cells, block.cells)
    inside = positions < len(scale_cells)
    if not (inside.all() and np.array_equal(scale_cells[positions], block.cells)):
        raise ValueError(
            f"evaluation block {block.evaluator}/{block.metric}/{block.scale} has cells outside the {block.scale} scale"
        )
    return positions


def severities(status: np.ndarray) -> np.ndarray:
    """Severity (``Status.severity``) of each status string."""
    status = np.asarray(status)
    out = np.full(status.shape, NOT_EVALUATED, dtype=np.int8)
    for s in Status:
        out[status == s.value] = s.severity
    return out


def status_of(severity: int) -> Status | None:
    """The status of a severity, or None for :data:`NOT_EVALUATED`."""
    return _BY_SEVERITY.get(int(severity))


def blocks_by_metric_scale(result: FileResult) -> dict[tuple[str, str], list[EvaluationBlock]]:
    """The result's evaluation blocks grouped by (metric, scale)."""
    grouped: dict[tuple[str, str], list[EvaluationBlock]] = defaultdict(list)
    for block in result.evaluations:
        grouped[(block.metric, block.scale)].append(block)
    return dict(grouped)


def worst_severity(blocks: Iterable[EvaluationBlock], scale: str) -> np.ndarray:
    """Worst severity over ``blocks`` for each cell of ``scale`` (NOT_EVALUATED where none gave a verdict)."""
    out = np.full(len(cells(scale)), NOT_EVALUATED, dtype=np.int8)
    for block in blocks:
        positions = cell_positions(block)
        np.maximum.at(out, positions, severities(block.status))
    return out


def aligned_verdicts(blocks: Iterable[EvaluationBlock], scale: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(evaluator, status, reason) of each block, on every cell of ``scale`` ("" where no verdict)."""
    out = []
    for block in blocks:
        status = np.full(len(cells(scale)), "", dtype=object)
        reason = np.full(len(cells(scale)), "", dtype=object)
        positions = cell_positions(block)
        status[positions] = block.status
        reason[positions] = block.reason
        out.append((block.evaluator, status, reason))
    return out


def status_counts(results: Iterable[FileResult]) -> dict[str, Counter[Status]]:
    """Number of values of each status, per evaluator, over every scale of ``results``."""
    counts: dict[str, Counter[Status]] = defaultdict(Counter)
    for result in results:
        for block in result.evaluations:
            values, n = np.unique(np.asarray(block.status, dtype=str), return_counts=True)
            counts[block.evaluator].update({Status(v): int(k) for v, k in zip(values, n, strict=True)})
    return dict(counts)


def failing_per_cell(results: Iterable[FileResult], scale: str) -> np.ndarray:
    """Number of failing evaluations (any metric, any evaluator) in each cell of ``scale``.

    One value for the detector scale, 32 for amplifiers, 1,024 for super-pixels.
    """
    n_cells = len(cells(scale))
    out = np.zeros(n_cells, dtype=np.int64)
    for result in results:
        for block in result.evaluations:
            if block.scale == scale:
                failing = np.asarray(block.status, dtype=str) == Status.FAIL.value
                out += np.bincount(cell_positions(block)[failing], minlength=n_cells)
    return out
