"""File names of RDMT outputs, shared by the ECSV writer, the reports and the overview.

Names only: nothing here writes a file. Every per-file output of one
:class:`FileResult` shares one stem, ``<detector>_<monitor>_<kind>_<time>``,
so the ECSV table, the Markdown and HTML reports and the super-pixel maps of a
file sort together in a directory listing.
"""

from __future__ import annotations

import re

from ..records import FileResult

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(text: str) -> str:
    """``text`` with anything but letters, digits, ``.``, ``_`` and ``-`` replaced by ``-``."""
    return _UNSAFE.sub("-", text).strip("-") or "unknown"


def compact_time(result: FileResult) -> str:
    """The file time as ``YYYYMMDDTHHMMSS`` (e.g. ``20260201T000000``)."""
    return result.identity.file_time.strftime("%Y%m%dT%H%M%S")


# The time at the end of every file stem; what comes before it names the series (see series_stem).
STEM_TIME = re.compile(r"\d{8}T\d{6}")


def series_stem(result: FileResult) -> str:
    """Stem shared by the outputs of every file of one identity, e.g. ``WFI07_dark_DARK``.

    The identity is the detector, monitor and kind, plus the optical element and exposure mode
    where the file has them (``WFI07_flat_FLAT_F158``): the files a report's previous and next
    links run through.
    """
    identity = result.identity
    parts = [identity.detector, result.monitor, identity.kind, identity.optical_element, identity.exposure_mode]
    return "_".join(_safe(part) for part in parts if part)


def file_stem(result: FileResult) -> str:
    """Stem of every output of one file and monitor, e.g. ``WFI07_dark_DARK_20260201T000000``."""
    return f"{series_stem(result)}_{compact_time(result)}"


def figure_name(result: FileResult, metric: str) -> str:
    """File name of a metric's super-pixel map, e.g. ``WFI07_dark_DARK_20260201T000000_n_hot_pixels.png``."""
    return f"{file_stem(result)}_{_safe(metric)}.png"


def ratio_figure_name(result: FileResult, metric: str) -> str:
    """File name of a metric's map of the ratio to the previous file, e.g. ``..._mean_dark_rate-vs-previous.png``.

    The hyphen cannot appear in a metric name, so this never collides with a metric's own map.
    """
    return f"{file_stem(result)}_{_safe(metric)}-vs-previous.png"


def overview_stem(run_id: str) -> str:
    """Stem of a delivery's overview page and mosaic, e.g. ``overview_run-42``."""
    return f"overview_{_safe(run_id)}"
