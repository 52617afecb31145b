"""The report of one file and one monitor, in Markdown and HTML, with a super-pixel map per metric.

The layout follows the RDMT technical report: metadata, overall status and
counts per evaluator, a detector table (value against the mission and SOC
limits and the change tolerance), then for each metric a 32-amplifier table
(four "Amp | Value" column pairs of eight rows) and a 32x32 super-pixel map
with failing super-pixels outlined. The worst status of a value is taken over
all evaluators (``fail`` > ``caution`` > ``incomplete`` > ``pass``).

This module arranges the content; :mod:`.document` renders it,
:mod:`.figures` draws the maps and :mod:`.monitor_figures` the figures a
monitor asks for (``Monitor.figures``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..geometry import N_AMPLIFIERS
from ..records import EvaluationBlock, FileResult, Metric, Status, worst
from .document import (
    Block,
    Bullets,
    Heading,
    Image,
    Inline,
    Paragraph,
    Span,
    Table,
    format_number,
    write_document,
)
from .figures import SuperpixelMaps
from .monitor_figures import report_figures
from .names import figure_name, file_stem
from .verdicts import (
    aligned_verdicts,
    blocks_by_metric_scale,
    evaluator_names,
    status_counts,
    status_of,
    worst_severity,
)

log = logging.getLogger("rdmt.outputs")

_AMP_ROWS = 8  # amplifiers per column pair in the amplifier table
_FLAGGED = (Status.CAUTION, Status.FAIL)
Verdicts = list[tuple[str, np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class ReportPaths:
    """Files of one report."""

    markdown: Path
    html: Path
    figures: list[Path]


def _status_span(severity: int, text: str | None = None) -> Span | str:
    status = status_of(severity)
    if status is None:
        return "not evaluated"
    return Span(text if text is not None else status.value, status=status)


def _verdicts_text(verdicts: Verdicts, position: int, severity: int) -> str:
    """Status word plus why: reasons of the evaluators at a caution/fail status, names otherwise."""
    status = status_of(severity)
    if status is None:
        return "not evaluated"
    at_worst = [(name, reason[position]) for name, state, reason in verdicts if state[position] == status.value]
    if status in _FLAGGED:
        return f"{status.value}: " + "; ".join(f"{name}: {reason}" for name, reason in at_worst)
    if status == Status.INCOMPLETE:
        return f"incomplete ({', '.join(name for name, _ in at_worst)})"
    return status.value


def _metadata(result: FileResult) -> Bullets:
    identity = result.identity
    items: list[Inline] = [
        f"Source: {identity.source}",
        f"File key: {identity.file_key}",
        f"Monitor: {result.monitor} ({result.monitor_title})",
        f"Run id: {result.run_id}",
        f"Release: {result.release}",
    ]
    if identity.exposure_type:
        items.append(f"Exposure type: {identity.exposure_type}")
    items += [f"Note, {key}: {value}" for key, value in result.notes.items()]
    return Bullets(items)


def _status_summary(result: FileResult) -> list[Block]:
    counts = status_counts([result])
    order = (Status.PASS, Status.CAUTION, Status.FAIL, Status.INCOMPLETE)
    rows: list[list[Inline]] = []
    for evaluator in evaluator_names([result]):
        tally = counts.get(evaluator, {})
        worst_status = worst({s for s in order if tally.get(s)})
        rows.append([evaluator, Span(worst_status.value, status=worst_status), *(str(tally.get(s, 0)) for s in order)])
    overall = result.status
    verdict: list[Inline] = ["Overall status: ", Span(overall.value.upper(), status=overall)]
    if result.unmeasured and overall != Status.FAIL:
        verdict = ["Overall status: ", Span("NOT MEASURED", status=Status.INCOMPLETE), f" ({result.unmeasured})"]
    return [
        Paragraph(verdict),
        Table(
            ["Evaluator", "Worst", *(s.value for s in order)],
            rows,
            numeric=frozenset(range(2, 2 + len(order))),
            caption="Number of values of each status, over the detector, amplifier and super-pixel scales.",
        ),
    ]


def _limit_text(block: EvaluationBlock | None, count: bool) -> str:
    return "-" if block is None else format_number(block.reference[0], count)


def _change_text(block: EvaluationBlock | None, count: bool) -> str:
    if block is None:
        return "-"
    text = f"{block.threshold:.0%}" if np.isfinite(block.threshold) else "-"
    if np.isfinite(block.reference[0]):
        text += f" of {format_number(block.reference[0], count)} (previous)"
    return text


def _detector_table(result: FileResult, grouped: dict[tuple[str, str], list[EvaluationBlock]]) -> Table:
    rows: list[list[Inline]] = []
    for metric in result.metrics:
        count = metric.spec.extensive
        blocks = grouped.get((metric.spec.name, "detector"), [])
        by_evaluator = {b.evaluator: b for b in blocks}
        severity = int(worst_severity(blocks, "detector")[0])
        rows.append(
            [
                metric.spec.name,
                metric.spec.unit,
                format_number(metric.values.detector, count),
                _limit_text(by_evaluator.get("mission"), count),
                _limit_text(by_evaluator.get("soc"), count),
                _change_text(by_evaluator.get("change"), count),
                _status_span(severity, _verdicts_text(aligned_verdicts(blocks, "detector"), 0, severity)),
            ]
        )
    return Table(
        ["Metric", "Unit", "Value", "Mission limit", "SOC limit", "Change tolerance", "Status"],
        rows,
        numeric=frozenset({2, 3, 4}),
        caption="Status is the worst over all evaluators at the detector scale.",
    )


def _amplifier_blocks(metric: Metric, blocks: list[EvaluationBlock]) -> list[Block]:
    values = metric.values.at("amplifier")
    severity = worst_severity(blocks, "amplifier")
    count = metric.spec.extensive
    rows: list[list[Inline]] = []
    for r in range(_AMP_ROWS):
        row: list[Inline] = []
        for amp in range(r, N_AMPLIFIERS, _AMP_ROWS):
            text = format_number(values[amp], count)
            status = status_of(severity[amp])
            row += [
                str(amp + 1),
                Span(f"{text} ({status.value})", status=status) if status in _FLAGGED else text,
            ]
        rows.append(row)
    verdicts = aligned_verdicts(blocks, "amplifier")
    flagged = [
        f"Amp {amp + 1}: {_verdicts_text(verdicts, amp, int(severity[amp]))}"
        for amp in np.flatnonzero(severity >= Status.CAUTION.severity)
    ]
    out: list[Block] = [
        Table(
            ["Amp", "Value"] * (N_AMPLIFIERS // _AMP_ROWS),
            rows,
            numeric=frozenset(range(1, 2 * (N_AMPLIFIERS // _AMP_ROWS), 2)),
            caption=f"{metric.spec.name} per amplifier ({metric.spec.unit}); amplifiers at caution or fail are marked.",
        )
    ]
    if flagged:
        out.append(Bullets(flagged))
    return out


def write_report(result: FileResult, directory: Path, maps: SuperpixelMaps | None = None) -> ReportPaths:
    """Write the file's report as Markdown and HTML, with a super-pixel map per metric.

    Files: ``<stem>.md``, ``<stem>.html`` and ``<stem>_<metric>.png``, where ``<stem>`` is
    ``<detector>_<monitor>_<kind>_<time>`` as for the ECSV table.

    Parameters
    ----------
    result : FileResult
        One file and one monitor.
    directory : Path
        Output directory; created when missing. Existing files of the same names are replaced.
    maps : SuperpixelMaps, optional
        Figure canvases to reuse across reports (one per thread); new ones by default.

    Returns
    -------
    ReportPaths
        The Markdown and HTML reports and the figures, one per metric in the result's order.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    identity = result.identity
    grouped = blocks_by_metric_scale(result)
    title = (
        f"{result.monitor_title}: {identity.detector} {identity.kind} "
        f"{identity.file_time.isoformat(sep=' ', timespec='seconds')}"
    )
    blocks: list[Block] = [_metadata(result), Heading("Status"), *_status_summary(result)]
    blocks += [Heading("Detector"), _detector_table(result, grouped)]
    figures: list[Path] = []
    own = report_figures(result, directory)
    if own:
        blocks.append(Heading("Figures"))
        for figure in own:
            if figure.problem is not None:
                blocks += [Heading(figure.title, level=3), Paragraph(f"Figure not drawn: {figure.problem}.")]
                continue
            blocks += [Heading(figure.title, level=3), Image(figure.path.name, figure.title, figure.caption)]
            figures.append(figure.path)
    maps = maps or SuperpixelMaps()
    for metric in result.metrics:
        name = metric.spec.name
        blocks += [Heading(f"{name} ({metric.spec.unit})"), Paragraph(metric.spec.description)]
        if "amplifier" in metric.spec.scales:
            blocks += [
                Heading("Amplifiers", level=3),
                *_amplifier_blocks(metric, grouped.get((name, "amplifier"), [])),
            ]
        if "superpixel" not in metric.spec.scales:
            continue
        figure = directory / figure_name(result, name)
        severity = worst_severity(grouped.get((name, "superpixel"), []), "superpixel")
        try:
            maps.draw(
                metric.values.at("superpixel"),
                severity,
                figure,
                title=f"{name}, {identity.detector}",
                unit=metric.spec.unit,
                count=metric.spec.extensive,
            )
        except Exception as exc:  # a figure is never worth losing the report (or the run) for
            log.warning("super-pixel map of %s not drawn: %s: %s", figure.name, type(exc).__name__, exc, exc_info=True)
            problem = f"could not be drawn ({type(exc).__name__}: {exc})"
            blocks += [Heading("Super-pixels", level=3), Paragraph(f"Map not drawn: {problem}.")]
            continue
        figures.append(figure)
        n_fail = int(np.count_nonzero(severity == Status.FAIL.severity))
        blocks += [
            Heading("Super-pixels", level=3),
            Image(
                figure.name,
                f"{name} super-pixel map of {identity.detector}",
                f"32x32 super-pixels, row 0 at the bottom; {n_fail} failing super-pixels outlined in red.",
            ),
        ]
    stem = directory / file_stem(result)
    paths = ReportPaths(stem.with_name(stem.name + ".md"), stem.with_name(stem.name + ".html"), figures)
    write_document(title, blocks, paths.markdown, paths.html)
    return paths
