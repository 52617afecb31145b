"""Links between the reports of one identity: each report's previous and next file.

A report's series is every file of the same detector, monitor and kind (and optical element
and exposure mode, where the file has them) whose report sits in the same directory; their
stems differ only in the file time at the end (:func:`.names.series_stem`). A report is
written with its series line, and writing it rewrites the line of its neighbours too, so a
delivery that arrives later (or a reprocessed one, earlier) is linked both ways. Only the
marked line is rewritten, never the rest of a report. Pages are replaced atomically (a temporary file and a
rename) under a lock file in the directory (``.rdmt-series.lock``), so an ``rdmt run`` and a sink writing to
one directory never read a half-written neighbour.
"""

from __future__ import annotations

import fcntl
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from ..records import FileResult
from .document import Inline, Navigation, Span, replace_navigation
from .names import STEM_TIME, file_stem, series_stem

SERIES_MARK = "series"
_LOCK = threading.Lock()  # reports of one series written from several threads rewrite each other's lines
LOCK_FILE = ".rdmt-series.lock"  # and from several processes (an rdmt run and a sink sharing a directory)


@contextmanager
def _series_lock(directory: Path) -> Iterator[None]:
    """Held while a series' lines are read and rewritten: one thread of this process, one process at a time."""
    with _LOCK, open(directory / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def series_reports(directory: Path, series: str) -> list[str]:
    """Stems of the HTML reports of ``series`` in ``directory``, oldest file first."""
    pattern = re.compile(rf"{re.escape(series)}_({STEM_TIME.pattern})\.html")
    stems = [
        m.group(0)[: -len(".html")] for p in directory.glob(f"{series}_*.html") if (m := pattern.fullmatch(p.name))
    ]
    return sorted(stems, key=lambda stem: stem[-15:])


def _when(stem: str) -> str:
    return datetime.strptime(stem[-15:], "%Y%m%dT%H%M%S").strftime("%Y-%m-%d %H:%M:%S")


def series_navigation(series: str, stems: list[str], index: int) -> Navigation:
    """The series line of the report ``stems[index]``: links to the files before and after it."""
    before = stems[index - 1] if index > 0 else None
    after = stems[index + 1] if index + 1 < len(stems) else None
    parts: list[Inline] = [f"{series.replace('_', ' ')}: "]
    parts.append(
        Span(f"← previous file ({_when(before)})", link=f"{before}.html", page_link=True)
        if before
        else "no earlier file in this directory"
    )
    parts.append(" · ")
    parts.append(
        Span(f"next file ({_when(after)}) →", link=f"{after}.html", page_link=True)
        if after
        else "no later file in this directory"
    )
    parts.append(f" ({len(stems)} of this identity here)")
    return Navigation(parts, SERIES_MARK)


def link_series(directory: Path, result: FileResult) -> None:
    """Rewrite the series lines of ``result``'s report and of its neighbours in ``directory``."""
    series = series_stem(result)
    with _series_lock(directory):
        stems = series_reports(directory, series)
        try:
            index = stems.index(file_stem(result))
        except ValueError:
            return  # its report is not here
        for i in range(max(0, index - 1), min(len(stems), index + 2)):
            stem = directory / stems[i]
            replace_navigation(
                stem.with_name(stem.name + ".md"),
                stem.with_name(stem.name + ".html"),
                series_navigation(series, stems, i),
            )
