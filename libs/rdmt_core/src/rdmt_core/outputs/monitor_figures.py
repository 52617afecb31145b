"""The monitors' own report figures: which figure each name draws, and drawing those a monitor asks for.

A monitor names its figures in ``Monitor.figures`` and leaves their data in
``MonitorResult.extras`` (or in its metrics); :func:`report_figures` draws them for the
report. A result rebuilt from a stored record has no extras, so a figure is drawn from the
metrics when it can, or skipped. A monitor whose report needs only the super-pixel maps
(drawn for every metric by :mod:`.report`) names no figure and needs nothing here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..monitors import get_monitor
from ..records import FileResult
from . import l2_figures
from .names import file_stem

log = logging.getLogger("rdmt.outputs")


@dataclass(frozen=True)
class ReportFigure:
    """A figure of a monitor's report section: the PNG, its title and caption.

    ``problem`` says why a figure could not be drawn (then there is no PNG): a figure never stops
    a report, the report says what is missing.
    """

    path: Path
    title: str
    caption: str
    problem: str | None = None


@dataclass(frozen=True)
class FigureKind:
    """How to draw one named figure: its title and a function writing the PNG and returning the caption.

    ``draw`` returns None when the result holds nothing to draw; ``needs`` names an extra
    without which the figure is not drawn at all (it cannot be drawn from the metrics).
    """

    title: str
    draw: Callable[[FileResult, Path], str | None]
    needs: str | None = None


# The file of figure NAME is <stem>_NAME.png, beside the super-pixel maps <stem>_METRIC.png: a NAME is never one of
# its monitor's metric names (tests/unit/test_registry.py checks), or the map would overwrite the figure.
FIGURES: dict[str, FigureKind] = {
    "offsets": FigureKind("Astrometric offsets on the detector", l2_figures.draw_offsets),
    "background_map": FigureKind("Background level and amplifier jumps", l2_figures.draw_background_map),
    "one_over_f_spectra": FigureKind(
        "Power spectra of the row series", l2_figures.draw_spectra, needs="amplifier_power"
    ),
    "one_over_f_amplifiers": FigureKind("1/f significance per amplifier", l2_figures.draw_significance_bars),
    "psf_fwhm_stars": FigureKind("PSF FWHM on the detector", l2_figures.draw_psf_fwhm),
}


def report_figures(result: FileResult, directory: Path, stem: str | None = None) -> list[ReportFigure]:
    """Draw the figures the result's monitor asks for into ``directory``; files start with ``stem``.

    ``stem`` defaults to the report's (:func:`.names.file_stem`). A monitor that is not registered
    here (a newer version's) has no figures; a figure name no :data:`FIGURES` entry knows is an error.
    """
    try:
        monitor = get_monitor(result.monitor)
    except ConfigError:
        return []
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = stem if stem is not None else file_stem(result)
    figures = []
    for name in monitor.figures:
        kind = FIGURES[name]
        if kind.needs is not None and kind.needs not in result.extras:
            continue
        path = directory / f"{stem}_{name}.png"
        try:
            caption = kind.draw(result, path)
        except Exception as exc:  # a figure is never worth losing the report (or the run) for
            log.warning("figure %r of %s not drawn: %s: %s", name, stem, type(exc).__name__, exc, exc_info=True)
            figures.append(ReportFigure(path, kind.title, "", f"could not be drawn ({type(exc).__name__}: {exc})"))
            continue
        if caption is not None:
            figures.append(ReportFigure(path, kind.title, caption))
    return figures
