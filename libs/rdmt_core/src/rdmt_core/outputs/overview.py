"""The overview page of one delivery (run): every detector at a glance.

A table of the 18 WFI detectors (WFI01..WFI18, always all of them; "no file"
where the delivery had none) against the evaluators, with the worst status and
the number of failing values, and links to each file's report; the input
problems (failed and skipped files); and a mosaic of failing evaluations per
super-pixel for every detector. Written as Markdown and HTML, with the mosaic
as PNG. This module arranges the content only; :mod:`.document` renders it and
:mod:`.figures` draws the mosaic.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..evaluators import EVALUATORS
from ..geometry import DETECTORS
from ..records import DeliverySummary, FileResult, Status, waits_for_history, worst
from .document import Block, Bullets, Heading, Image, Inline, Paragraph, Span, Table, write_document
from .figures import DetectorFailures, failure_mosaic
from .names import file_stem, overview_stem
from .verdicts import evaluator_names, failing_per_cell, status_counts

# Schematic WFI focal plane for the mosaic: six columns of three detectors, left to right,
# each column top to bottom. It groups detectors in numbering order; it is not the true
# on-sky arrangement of the arrays.
FOCAL_PLANE_COLUMNS = tuple(DETECTORS[i : i + 3] for i in range(0, len(DETECTORS), 3))


def _file_links(results: list[FileResult], directory: Path, report_directory: Path) -> list[str | Span]:
    """A link per result to its report, named by its monitor, relative to ``directory`` (plain text if not written).

    The HTML page links to the HTML reports, the Markdown page to the Markdown ones.
    """
    parts: list[str | Span] = []
    monitors = [r.monitor for r in results]
    for result in sorted(results, key=lambda r: (r.monitor, r.identity.file_time)):
        identity = result.identity
        # the monitor names the report; the optical element, exposure mode and time only when it has several here
        label = result.monitor
        if monitors.count(result.monitor) > 1:
            label = " ".join(
                p
                for p in (
                    label,
                    identity.optical_element,
                    identity.exposure_mode,
                    identity.file_time.isoformat(sep=" ", timespec="seconds"),
                )
                if p
            )
        report = report_directory / f"{file_stem(result)}.html"
        link = Path(os.path.relpath(report, directory)).as_posix() if report.exists() else None
        parts += [*([", "] if parts else []), Span(label, link=link, page_link=True)]
    return parts


def _failures(results: list[FileResult]) -> DetectorFailures:
    """The failing evaluations of one detector's results at each scale."""
    return DetectorFailures(
        detector=int(failing_per_cell(results, "detector")[0]),
        amplifier=failing_per_cell(results, "amplifier"),
        superpixel=failing_per_cell(results, "superpixel"),
    )


_VERDICT_STATUS = {"not measured": Status.INCOMPLETE}


def _failing_monitors(results: list[FileResult], evaluator: str | None = None) -> list[str]:
    """The monitors of ``results`` with a failing value (of ``evaluator``, or of any), with their evaluators."""
    out = []
    for result in sorted(results, key=lambda r: r.monitor):
        evaluators = sorted(
            {b.evaluator for b in result.evaluations if (np.asarray(b.status, dtype=str) == Status.FAIL.value).any()}
        )
        if evaluator is None and evaluators:
            out.append(f"{result.monitor} ({', '.join(evaluators)})")
        elif evaluator in evaluators:
            out.append(result.monitor)
    return out


def _waits_only(results: list[FileResult], evaluator: str) -> bool:
    """Every ``incomplete`` value of ``evaluator`` in ``results`` only waits for history."""
    reasons = {
        str(reason)
        for result in results
        for block in result.evaluations
        if block.evaluator == evaluator
        for status, reason in zip(block.status, block.reason, strict=True)
        if status == Status.INCOMPLETE.value
    }
    return bool(reasons) and all(waits_for_history(reason) for reason in reasons)


def _detector_row(
    detector: str, results: list[FileResult], evaluators: list[str], directory: Path, report_directory: Path
) -> list[Inline]:
    if not results:
        return [detector, Span("no file", status=Status.INCOMPLETE), *(["no file"] * len(evaluators)), "-"]
    counts = status_counts(results)
    cells: list[Inline] = []
    for evaluator in evaluators:
        tally = counts.get(evaluator)
        if not tally:
            cells.append("-")
            continue
        status = worst({s for s, n in tally.items() if n})
        if status == Status.FAIL:
            text = f"fail ({tally[Status.FAIL]:,}): {', '.join(_failing_monitors(results, evaluator))}"
        elif status == Status.INCOMPLETE and _waits_only(results, evaluator):
            text, status = "no history yet", Status.PASS
        else:
            text = status.value
        cells.append(Span(text, status=status))
    verdicts = {r.verdict for r in results}
    order = (Status.FAIL.value, Status.CAUTION.value, "not measured", Status.INCOMPLETE.value, Status.PASS.value)
    overall = next(v for v in order if v in verdicts)
    status = _VERDICT_STATUS.get(overall) or Status(overall)
    text = overall
    if overall == Status.FAIL.value:
        text = f"fail: {'; '.join(_failing_monitors(results))}"
    unmeasured = sorted({r.monitor for r in results if r.verdict == "not measured"})
    if unmeasured and overall != "not measured":
        text += f"; not measured: {', '.join(unmeasured)}"
    elif overall == "not measured":
        text = f"not measured: {', '.join(unmeasured)}"
    return [detector, Span(text, status=status), *cells, _file_links(results, directory, report_directory)]


def _unmeasured(summary: DeliverySummary) -> list[Block]:
    """The results whose monitor could not measure the file, with the monitor's reason."""
    unmeasured = summary.unmeasured_results
    if not unmeasured:
        return [Paragraph("None: every monitor measured its files.")]
    return [
        Bullets(
            [
                f"{r.identity.detector} {r.monitor} ({r.identity.kind}, "
                f"{r.identity.file_time.isoformat(timespec='seconds')}): {r.unmeasured}"
                for r in sorted(unmeasured, key=lambda r: (r.identity.detector, r.monitor))
            ]
        )
    ]


def _problems(summary: DeliverySummary) -> list[Block]:
    failed = [p for p in summary.problems if not p.skipped]
    skipped = [p for p in summary.problems if p.skipped]
    if not summary.problems:
        return [Paragraph("None: every input file was monitored.")]
    blocks: list[Block] = []
    for label, problems in (("Failed", failed), ("Skipped", skipped)):
        if problems:
            blocks += [
                Paragraph(f"{label} ({len(problems)}):"),
                Bullets([f"{p.source}: {p.reason}" for p in problems]),
            ]
    return blocks


def write_overview(summary: DeliverySummary, directory: Path, report_directory: Path | None = None) -> Path:
    """Write the delivery's overview as ``overview_<run_id>.html``, ``.md`` and ``.png`` (the mosaic).

    The mosaic places the detectors schematically, six columns of three: (WFI01, WFI02, WFI03)
    in the left column from top to bottom, then (WFI04, WFI05, WFI06), ..., (WFI16, WFI17, WFI18)
    on the right. Each detector shows, per super-pixel, the number of failing evaluations over
    all its files, metrics and evaluators.

    Parameters
    ----------
    summary : DeliverySummary
        The run: its results and input problems.
    directory : Path
        Output directory; created when missing. Existing files of the same names are replaced.
    report_directory : Path, optional
        Where the files' HTML reports were written (default: ``directory``). Links
        are relative to ``directory`` and only made to files that exist.

    Returns
    -------
    Path
        The HTML page (the Markdown page sits next to it).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    report_directory = directory if report_directory is None else Path(report_directory)
    by_detector: dict[str, list[FileResult]] = {d: [] for d in DETECTORS}
    for result in summary.results:
        by_detector.setdefault(result.identity.detector, []).append(result)
    evaluators = [*EVALUATORS, *(e for e in evaluator_names(summary.results) if e not in EVALUATORS)]

    stem = overview_stem(summary.run_id)
    mosaic = directory / f"{stem}.png"
    failure_mosaic(
        {d: _failures(rs) if rs else None for d, rs in by_detector.items()},
        FOCAL_PLANE_COLUMNS,
        mosaic,
        title=f"Failures of run {summary.run_id} (detector, amplifiers, super-pixels)",
    )

    overall = worst({r.status for r in summary.results})
    n_missing = sum(1 for d in DETECTORS if not by_detector[d])
    blocks: list[Block] = [
        Bullets(
            [
                f"Run id: {summary.run_id}",
                f"Release: {summary.release}",
                f"Results (file and monitor): {len(summary.results)}, failing: {len(summary.failed_results)}, "
                f"not measured: {len(summary.unmeasured_results)}",
                f"Detectors without a file: {n_missing} of {len(DETECTORS)}",
                f"Input problems: {len(summary.problems)}",
            ]
        ),
        Paragraph(
            ["Overall status: ", Span(overall.value.upper(), status=overall)]
            if summary.results
            else "Overall status: no file was monitored."
        ),
        Heading("Detectors"),
        Table(
            ["Detector", "Overall", *evaluators, "Files"],
            [_detector_row(d, rs, evaluators, directory, report_directory) for d, rs in by_detector.items()],
            caption="Overall: the worst verdict of the detector's results, naming the monitors that failed and "
            "their evaluators. Evaluator columns: the worst status over all values (detector, amplifiers, "
            "super-pixels) of the detector's files; a failure gives the number of failing values and the monitors; "
            "'no history yet' when the only values not judged wait for earlier files.",
        ),
        Heading("Not measured"),
        *_unmeasured(summary),
        Heading("Input problems"),
        *_problems(summary),
        Heading("Failures on the focal plane"),
        Image(
            mosaic.name,
            "Mosaic of the failures of WFI01..WFI18 at the detector, amplifier and super-pixel scales",
            "Schematic layout: six columns of three detectors, WFI01-WFI03 in the left column (top to "
            "bottom) to WFI16-WFI18 on the right; each map is 32x32 super-pixels, row 0 at the bottom. A red "
            "frame marks a detector with any failure (thick: at the detector scale), a hatched column a failing "
            "amplifier, the shading the failing evaluations per super-pixel.",
        ),
    ]
    html = directory / f"{stem}.html"
    write_document(f"RDMT delivery overview: run {summary.run_id}", blocks, directory / f"{stem}.md", html)
    return html
