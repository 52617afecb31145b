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

from ..evaluators import EVALUATORS
from ..geometry import N_AMPLIFIERS
from ..records import SUPERPIXEL_NOTE, EvaluationBlock, FileResult, Metric, Status, waits_for_history, worst
from .document import (
    Block,
    Bullets,
    Heading,
    Image,
    Inline,
    Navigation,
    Paragraph,
    Span,
    Table,
    format_number,
    write_document,
)
from .figures import SuperpixelMaps
from .monitor_figures import report_figures
from .names import figure_name, file_stem, overview_stem, ratio_figure_name
from .navigation import SERIES_MARK, link_series
from .verdicts import (
    aligned_verdicts,
    blocks_by_metric_scale,
    cell_positions,
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
        word = "no history yet" if all(waits_for_history(reason) for _, reason in at_worst) else "incomplete"
        return f"{word} ({', '.join(name for name, _ in at_worst)})"
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
    if identity.optical_element:
        items.append(f"Optical element: {identity.optical_element}")
    if identity.exposure_mode:
        items.append(f"Exposure mode: {identity.exposure_mode}")
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


def _evaluator_cell(evaluator: str, status: str, reason: str, value: float, reference: float, count: bool) -> Inline:
    """One evaluator's verdict on one value, in a few words: the status and what it was judged against."""
    if not status:
        return "-"
    state = Status(status)
    if state == Status.INCOMPLETE:
        return Span("no history yet" if waits_for_history(reason) else f"incomplete: {reason}", status=state)
    if evaluator == "change" and np.isfinite(reference) and reference != 0 and np.isfinite(value):
        # as the change evaluator computes it: relative to the magnitude of the previous value
        return Span(f"{state.value}: {(value - reference) / abs(reference):+.1%}", status=state)
    if state in _FLAGGED and np.isfinite(reference):
        what = "median" if evaluator == "trend" else "limit"
        return Span(f"{state.value} ({what} {format_number(reference, count)})", status=state)
    return Span(state.value, status=state)


def _amplifier_blocks(metric: Metric, blocks: list[EvaluationBlock]) -> list[Block]:
    """The metric's 32 amplifier values: compact when none is flagged, one row per amplifier otherwise.

    With a flagged amplifier the table has a column per evaluator (its status, and the change in
    percent, the limit or the trend median it was judged against) instead of a list of reasons.
    """
    values = metric.values.at("amplifier")
    severity = worst_severity(blocks, "amplifier")
    count = metric.spec.extensive
    n_flagged = int(np.count_nonzero(severity >= Status.CAUTION.severity))
    if not n_flagged:
        rows: list[list[Inline]] = []
        for r in range(_AMP_ROWS):
            row: list[Inline] = []
            for amp in range(r, N_AMPLIFIERS, _AMP_ROWS):
                row += [str(amp + 1), format_number(values[amp], count)]
            rows.append(row)
        return [
            Table(
                ["Amp", "Value"] * (N_AMPLIFIERS // _AMP_ROWS),
                rows,
                numeric=frozenset(range(1, 2 * (N_AMPLIFIERS // _AMP_ROWS), 2)),
                caption=f"{metric.spec.name} per amplifier ({metric.spec.unit}); no amplifier at caution or fail.",
            )
        ]
    ordered = sorted(blocks, key=lambda b: EVALUATORS.index(b.evaluator) if b.evaluator in EVALUATORS else 99)
    references = {b.evaluator: np.full(N_AMPLIFIERS, np.nan) for b in ordered}
    for block in ordered:
        references[block.evaluator][cell_positions(block)] = block.reference
    verdicts = aligned_verdicts(ordered, "amplifier")
    table_rows: list[list[Inline]] = []
    for amp in range(N_AMPLIFIERS):
        row = [str(amp + 1), format_number(values[amp], count)]
        row += [
            _evaluator_cell(name, state[amp], reason[amp], values[amp], references[name][amp], count)
            for name, state, reason in verdicts
        ]
        table_rows.append(row)
    return [
        Table(
            ["Amp", "Value", *(name for name, _, _ in verdicts)],
            table_rows,
            numeric=frozenset({1}),
            caption=f"{metric.spec.name} per amplifier ({metric.spec.unit}); {n_flagged} of {N_AMPLIFIERS} at "
            "caution or fail. Each evaluator's column gives its status, with the change from the previous file "
            "(change) or the limit or trend median it was judged against.",
        )
    ]


def change_map(values: np.ndarray, previous: np.ndarray, difference: bool) -> np.ndarray:
    """What the comparison map draws: ``values - previous``, or ``values / previous``.

    The ratio reads 1 where both are 0 and +inf (the map's "over" colour) where a value rose from 0;
    NaN (grey) only where either is missing. Counts and signed metrics use the difference: a count
    that rises from 0 (a new hot cluster) or a signed value that crosses 0 has no meaningful ratio.
    """
    if difference:
        return values - previous
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = values / previous
    ratio[(previous == 0) & (values == 0)] = 1.0
    ratio[(previous == 0) & (values != 0)] = np.inf * np.sign(values[(previous == 0) & (values != 0)])
    return ratio


def _superpixel_maps(
    result: FileResult, metric: Metric, blocks: list[EvaluationBlock], directory: Path, maps: SuperpixelMaps
) -> tuple[list[Block], list[Path]]:
    """The metric's super-pixel map, and its change from the previous file when the change evaluator flags cells.

    A change failure outlined over the values would hide them (a 40 % rise fails every cell): the
    change verdicts go on the comparison map (the ratio to the previous file; the difference for
    counts and signed metrics) and the value map keeps the other evaluators'.
    """
    identity, spec = result.identity, metric.spec
    name = spec.name
    values = metric.values.at("superpixel")
    change = [b for b in blocks if b.evaluator == "change"]
    change_severity = worst_severity(change, "superpixel")
    compared = bool((change_severity >= Status.CAUTION.severity).any())
    others = [b for b in blocks if b.evaluator != "change"] if compared else blocks
    severity = worst_severity(others, "superpixel")
    difference = spec.extensive or spec.two_sided
    drawn: list[tuple[Path, str, str]] = []
    maps_to_draw = [(directory / figure_name(result, name), values, severity, None)]
    if compared:
        previous = np.full(values.shape, np.nan)
        for block in change:
            previous[cell_positions(block)] = block.reference
        shown = change_map(values, previous, difference)
        maps_to_draw.append((directory / ratio_figure_name(result, name), shown, change_severity, difference))
    out: list[Block] = [Heading("Super-pixels", level=3)]
    what = "difference from" if difference else "ratio to"
    for path, shown, outlined, is_difference in maps_to_draw:
        comparison = is_difference is not None
        try:
            maps.draw(
                shown,
                outlined,
                path,
                title=f"{name}{(' - previous file' if is_difference else ' / previous file') if comparison else ''}, "
                f"{identity.detector}",
                unit=(f"{spec.unit} since the previous file" if is_difference else "ratio to the previous file")
                if comparison
                else spec.unit,
                count=spec.extensive,
                centre=(0.0 if is_difference else 1.0) if comparison else None,
            )
        except Exception as exc:  # a figure is never worth losing the report (or the run) for
            log.warning("super-pixel map %s not drawn: %s: %s", path.name, type(exc).__name__, exc, exc_info=True)
            out.append(Paragraph(f"Map not drawn: could not be drawn ({type(exc).__name__}: {exc})."))
            continue
        n_fail = int(np.count_nonzero(outlined == Status.FAIL.severity))
        if comparison:
            caption = (
                f"The {what} the previous file of this identity in each super-pixel (white: unchanged; "
                f"{'a rise from 0 takes the top colour; ' if not is_difference else ''}grey: no value); "
                f"{n_fail} super-pixels failing the change test outlined in red."
            )
        else:
            caption = f"32x32 super-pixels, row 0 at the bottom; {n_fail} failing super-pixels outlined in red"
            caption += f" (change failures are on the map of the {what} the previous file below)." if compared else "."
        label = f"{what} previous " if comparison else ""
        drawn.append((path, f"{name} {label}super-pixel map of {identity.detector}", caption))
    out += [Image(path.name, alt, caption) for path, alt, caption in drawn]
    return out, [path for path, _, _ in drawn]


def _navigation(result: FileResult, overview: bool) -> list[Block]:
    """The links at the top: the run's overview (when written) and the series line (filled by link_series)."""
    blocks: list[Block] = []
    if overview:
        page = f"{overview_stem(result.run_id)}.html"
        blocks.append(
            Navigation(["Part of ", Span(f"the overview of run {result.run_id}", link=page, page_link=True)], "run")
        )
    blocks.append(Navigation("Earlier and later files: not linked yet.", SERIES_MARK))
    return blocks


def write_report(
    result: FileResult, directory: Path, maps: SuperpixelMaps | None = None, *, overview: bool = False
) -> ReportPaths:
    """Write the file's report as Markdown and HTML, with a super-pixel map per metric.

    Files: ``<stem>.md``, ``<stem>.html`` and ``<stem>_<metric>.png`` (and
    ``<stem>_<metric>-vs-previous.png``, the ratio to the previous file, for a metric whose
    super-pixels the change evaluator flags), where ``<stem>`` is
    ``<detector>_<monitor>_<kind>_<time>`` as for the ECSV table. The report links to the reports
    of the previous and next file of the same identity in ``directory``, and theirs to it.

    Parameters
    ----------
    result : FileResult
        One file and one monitor.
    directory : Path
        Output directory; created when missing. Existing files of the same names are replaced.
    maps : SuperpixelMaps, optional
        Figure canvases to reuse across reports (one per thread); new ones by default.
    overview : bool
        Link to the overview page of the result's run in ``directory`` (written by the caller
        when the run ends: ``write_overview``).

    Returns
    -------
    ReportPaths
        The Markdown and HTML reports and the figures written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    identity = result.identity
    grouped = blocks_by_metric_scale(result)
    title = " ".join(
        part
        for part in (
            f"{result.monitor_title}: {identity.detector} {identity.kind}",
            identity.optical_element,
            identity.exposure_mode,
            identity.file_time.isoformat(sep=" ", timespec="seconds"),
        )
        if part
    )
    blocks: list[Block] = [
        *_navigation(result, overview),
        _metadata(result),
        Heading("Status"),
        *_status_summary(result),
    ]
    blocks += [Heading("Detector"), _detector_table(result, grouped)]
    empty = [
        m.spec.name
        for m in result.metrics
        if "superpixel" in m.spec.scales and not np.isfinite(m.values.at("superpixel")).any()
    ]
    if empty:
        why = result.notes.get(SUPERPIXEL_NOTE, "the monitor measured none")
        blocks += [Heading("Super-pixels"), Paragraph(f"No super-pixel values ({why}): no map for {', '.join(empty)}.")]
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
        if "superpixel" not in metric.spec.scales or name in empty:
            continue
        map_blocks, written = _superpixel_maps(result, metric, grouped.get((name, "superpixel"), []), directory, maps)
        blocks += map_blocks
        figures += written
    stem = directory / file_stem(result)
    paths = ReportPaths(stem.with_name(stem.name + ".md"), stem.with_name(stem.name + ".html"), figures)
    write_document(title, blocks, paths.markdown, paths.html)
    link_series(directory, result)
    return paths
