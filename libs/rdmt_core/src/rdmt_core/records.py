"""Plain records passed between monitors, evaluators, the store and the outputs.

No I/O here: these are the nouns of the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property

import numpy as np

from .measure.blockstats import ScaleValues


class Status(StrEnum):
    """Outcome of one evaluation, ordered by severity for summaries."""

    PASS = "pass"
    INCOMPLETE = "incomplete"
    CAUTION = "caution"
    FAIL = "fail"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Status.PASS: 0, Status.INCOMPLETE: 1, Status.CAUTION: 2, Status.FAIL: 3}


def worst(statuses: list[Status] | set[Status]) -> Status:
    """The most severe status of ``statuses`` (pass when empty)."""
    return max(statuses, key=lambda s: s.severity, default=Status.PASS)


@dataclass(frozen=True)
class FileIdentity:
    """What a monitored file is, independent of where it is stored.

    ``kind`` is the reference type (``DARK``) for reference files and the model
    type (``ImageModel``) for Level-2 images; ``file_time`` is ``meta.useafter``
    for reference files and ``meta.exposure.start_time`` for images (UTC).
    """

    source: str
    kind: str
    detector: str
    file_time: datetime
    exposure_type: str = ""

    @property
    def file_key(self) -> str:
        """Stable key of the file's content: kind, detector and time."""
        return f"{self.kind}/{self.detector}/{self.file_time.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}"


@dataclass(frozen=True)
class ArraySpec:
    """What a monitor expects of one array: its dtype kind(s) and number of dimensions."""

    kinds: str  # numpy dtype kinds accepted, e.g. "f" or "ui"
    ndim: int = 2


@dataclass(frozen=True)
class MetricSpec:
    """Name, unit and meaning of a metric.

    ``extensive`` metrics (pixel counts) grow with the area they cover; absolute
    limits given for the detector are scaled to smaller cells by pixel count.
    Intensive metrics (rates, percentiles) use the same limit at every scale.
    ``two_sided`` metrics (signed offsets) are compared to absolute limits by
    magnitude. ``scales`` lists the scales where the metric is defined: at the
    others its values are NaN and no evaluator runs (a common-mode noise figure
    has no super-pixel value).
    """

    name: str
    unit: str
    description: str
    extensive: bool = False
    two_sided: bool = False
    scales: tuple[str, ...] = ("detector", "amplifier", "superpixel")


@dataclass(frozen=True)
class Metric:
    """A metric's values at the three scales."""

    spec: MetricSpec
    values: ScaleValues


@dataclass(frozen=True)
class EvaluationBlock:
    """One evaluator's verdicts on one metric at one scale, one entry per cell."""

    evaluator: str
    metric: str
    scale: str
    cells: np.ndarray
    status: np.ndarray  # of Status values (str)
    reference: np.ndarray  # float64, NaN where no reference value applies
    reason: np.ndarray  # of str
    threshold: float = float("nan")  # the configured limit or tolerance this block used, for reports

    def __post_init__(self) -> None:
        n = len(self.cells)
        if not (len(self.status) == len(self.reference) == len(self.reason) == n):
            raise ValueError("evaluation block columns differ in length")


# The reasons the change and trend evaluators give an ``incomplete`` verdict that only waits for more history
# (rdmt_core.evaluators writes them; the outputs read them back through waits_for_history).
NO_PREVIOUS_DELIVERY = "no previous delivery"
HISTORY_NEEDED = "deliveries needed in the history"  # after "n of m"


# The note key of a monitor that could give no super-pixel value (value: why, e.g. too few stars in every
# super-pixel); the report says it once instead of drawing empty maps.
SUPERPIXEL_NOTE = "super-pixels"


def waits_for_history(reason: str) -> bool:
    """True for the reason of an ``incomplete`` verdict that only waits for more history (see evaluators)."""
    return reason == NO_PREVIOUS_DELIVERY or reason.endswith(HISTORY_NEEDED)


@dataclass(frozen=True)
class FileResult:
    """Everything one monitor found in one file: the unit the store writes and the outputs show."""

    identity: FileIdentity
    monitor: str
    monitor_title: str
    run_id: str
    release: str
    metrics: list[Metric]
    evaluations: list[EvaluationBlock]
    notes: dict[str, str]
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # figure data from the monitor; not stored

    def statuses(self, scale: str | None = None) -> list[Status]:
        """Every status in the result (optionally at one scale)."""
        out: list[Status] = []
        for block in self.evaluations:
            if scale is None or block.scale == scale:
                out.extend(Status(s) for s in block.status)
        return out

    def count(self, status: Status) -> int:
        """Number of evaluations with ``status``."""
        return sum(int(np.count_nonzero(block.status == status.value)) for block in self.evaluations)

    @cached_property
    def status(self) -> Status:
        """Worst status over all evaluations (computed once)."""
        present = {str(s) for block in self.evaluations for s in np.unique(block.status.astype(str))}
        return worst({Status(s) for s in present})

    @cached_property
    def waiting_for_history(self) -> bool:
        """True when some verdicts are ``incomplete`` only because the history is too short yet (the change
        evaluator's first delivery, the trend evaluator's first ``min_history`` ones): not a problem of the file."""
        return any(
            waits_for_history(str(reason))
            for block in self.evaluations
            for status, reason in zip(block.status, block.reason, strict=True)
            if status == Status.INCOMPLETE.value
        )

    def count_unjudged(self) -> int:
        """Number of ``incomplete`` verdicts that do not merely wait for history (no value, no reference)."""
        return sum(
            1
            for block in self.evaluations
            for status, reason in zip(block.status, block.reason, strict=True)
            if status == Status.INCOMPLETE.value and not waits_for_history(str(reason))
        )

    @cached_property
    def verdict(self) -> str:
        """What a person is told about this result: ``fail``, ``caution``, ``not measured``, ``incomplete`` (a
        value could not be judged) or ``pass``; verdicts waiting for history do not make a result incomplete."""
        if self.status in (Status.FAIL, Status.CAUTION):
            return self.status.value
        if self.unmeasured:
            return "not measured"
        return Status.INCOMPLETE.value if self.count_unjudged() else Status.PASS.value

    @property
    def unmeasured(self) -> str | None:
        """Why the monitor could not measure this file (its ``status`` note: no WCS, no catalogue, too few
        stars), or None when it measured it. Such a result is "not measured", never "passed"."""
        return self.notes.get("status")


@dataclass(frozen=True)
class InputProblem:
    """A file that could not be monitored (``skipped`` when no monitor handles its kind)."""

    source: str
    reason: str
    skipped: bool = False


@dataclass(frozen=True)
class DeliverySummary:
    """One run of the pipeline over a set of files: what the overview page and the notification show."""

    run_id: str
    release: str
    results: list[FileResult]
    problems: list[InputProblem]
    output_dir: str
    overview_path: str | None = None

    @property
    def failed_results(self) -> list[FileResult]:
        return [r for r in self.results if r.status == Status.FAIL]

    @property
    def unmeasured_results(self) -> list[FileResult]:
        """Results whose monitor could not measure the file (and that did not fail on what it did measure)."""
        return [r for r in self.results if r.unmeasured and r.status != Status.FAIL]
