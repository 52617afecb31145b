"""PNG figures of the reports: a metric's super-pixel map and the delivery's failure mosaic.

Matplotlib's object-oriented API on the Agg canvas only (``matplotlib.figure.Figure``,
never ``pyplot``), so figures can be drawn from several threads at once and
leave no global state behind. Axes are placed by hand rather than by a layout
engine, and the maps of one report reuse one figure: the nine maps of a dark
report take about half a second.

Super-pixel ``cell = 32 * row + col`` is drawn at column ``col`` and row
``row`` with ``origin="lower"``: array row 0 at the bottom, as the detector
frame is stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib import patheffects
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch
from matplotlib.path import Path as MplPath
from matplotlib.ticker import MaxNLocator

from ..geometry import GRID, N_SUPERPIXELS
from ..records import Status
from .html import STATUS_LINE

_MISSING = "#d9d9d9"
# colours of the super-pixel maps, here and in the Level-2 background map
MAP_COLOURS = mpl.colormaps["viridis"].with_extremes(under="#000000", over="#ff4fd8", bad=_MISSING)
_FAILURE_COLOURS = mpl.colormaps["Reds"].with_extremes(bad=_MISSING)
# comparison with the previous file: white when unchanged, blue below, red above
RATIO_COLOURS = mpl.colormaps["RdBu_r"].with_extremes(under="#08306b", over="#67000d", bad=_MISSING)
_INSET_SQUARE = 0.42 * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]])
_SQUARE_CODES = [MplPath.MOVETO, MplPath.LINETO, MplPath.LINETO, MplPath.LINETO, MplPath.CLOSEPOLY]


def colour_range(values: np.ndarray, count: bool) -> tuple[float, float]:
    """Colour limits of a map: the full range for counts, the 1st to 99th percentile otherwise.

    Always returns ``low < high`` (a constant or empty map gets a small range around its value).
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = (finite.min(), finite.max()) if count else np.percentile(finite, [1.0, 99.0])
    if high <= low:
        low, high = finite.min(), finite.max()
    if high <= low:
        pad = 0.5 if count or low == 0 else abs(low) * 0.05
        low, high = low - pad, high + pad
    return float(low), float(high)


def diverging_range(values: np.ndarray, centre: float) -> tuple[float, float]:
    """Colour limits of a comparison map: symmetric about ``centre``, out to the 1st/99th percentile.

    At least 1 % of ``centre`` either side (or 1 for a centre of 0); infinities are left to the
    map's extension colours.
    """
    finite = values[np.isfinite(values)]
    least = 0.01 * abs(centre) or 1.0
    if finite.size == 0:
        return centre - least, centre + least
    low, high = np.percentile(finite, [1.0, 99.0])
    half = max(abs(centre - low), abs(high - centre), least)
    return centre - half, centre + half


def _outline(cells: np.ndarray, colour: str, width: float) -> PathPatch:
    """A square just inside each of the given super-pixels, all in one path.

    One path (rather than a patch per cell) keeps drawing fast however many cells fail; the
    inset keeps neighbouring squares apart, so a cluster reads as a block of marked cells.
    """
    centres = np.stack([cells % GRID, cells // GRID], axis=1).astype(float)
    vertices = (_INSET_SQUARE[None, :, :] + centres[:, None, :]).reshape(-1, 2)
    codes = np.tile(_SQUARE_CODES, len(cells))
    return PathPatch(
        MplPath(vertices, codes),
        fill=False,
        edgecolor=colour,
        linewidth=width,
        # A white halo keeps the outline visible on any colour of the map.
        path_effects=[patheffects.withStroke(linewidth=width + 1.0, foreground="white")],
    )


class _MapCanvas:
    """One figure with a map and its colour bar, redrawn for each metric of one flavour.

    Flavours: ``"value"`` (robust range), ``"count"`` (full range, integer ticks) and ``"compare"``
    (a ratio to, or difference from, the previous file's values, on a diverging scale).
    """

    def __init__(self, flavour: str) -> None:
        self.flavour = flavour
        count = flavour == "count"
        self.figure = Figure(figsize=(6.0, 5.2), dpi=100)
        self.axes = self.figure.add_axes((0.11, 0.16, 0.66, 0.74))
        self.image = self.axes.imshow(
            np.zeros((GRID, GRID)),
            origin="lower",
            interpolation="nearest",
            cmap=RATIO_COLOURS if flavour == "compare" else MAP_COLOURS,
            norm=Normalize(0, 1),
        )
        # Rates and ratios use a robust (percentile) range, so values beyond it exist: show them as extensions.
        self.bar = self.figure.colorbar(
            self.image,
            cax=self.figure.add_axes((0.81, 0.16, 0.035, 0.74)),
            extend="neither" if count else "both",
            ticks=MaxNLocator(integer=True) if count else MaxNLocator(6),
        )
        self.axes.set_xlabel("super-pixel column (amplifier - 1)")
        self.axes.set_ylabel("super-pixel row")
        self.axes.set_xticks(range(0, GRID, 8))
        self.axes.set_yticks(range(0, GRID, 8))
        self.legend = self.figure.text(0.11, 0.025, "", fontsize=8)
        self.outlines: list[PathPatch] = []

    def draw(
        self, values: np.ndarray, severity: np.ndarray, path: Path, title: str, unit: str, centre: float | None
    ) -> None:
        self.image.set_data(values.reshape(GRID, GRID))
        if centre is not None:
            limits = diverging_range(values, centre)
        else:
            limits = colour_range(values, self.flavour == "count")
        self.image.set_clim(*limits)
        self.bar.set_label(unit)
        self.axes.set_title(title, fontsize=11)
        for outline in self.outlines:
            outline.remove()
        self.outlines = []
        legend = []
        for status, width in ((Status.CAUTION, 0.9), (Status.FAIL, 1.2)):
            flagged = np.flatnonzero(severity == status.severity)
            if flagged.size:
                # add_artist, unlike add_patch, skips a slow Python walk of the path to update data limits.
                self.outlines.append(self.axes.add_artist(_outline(flagged, STATUS_LINE[status], width)))
            legend.append(f"{status.value}: {flagged.size}")
        self.legend.set_text(f"outlined super-pixels ({', '.join(legend)}); red: fail, amber: caution")
        self.figure.savefig(path, pil_kwargs={"compress_level": 1})


class SuperpixelMaps:
    """Draws super-pixel maps, reusing one figure per flavour across metrics.

    Reusing the figure saves building axes and ticks for every map (one figure per flavour:
    value, count, compare). An instance is not
    thread-safe; use one per thread (each report makes its own).
    """

    def __init__(self) -> None:
        self._canvases: dict[str, _MapCanvas] = {}

    def draw(
        self,
        values: np.ndarray,
        severity: np.ndarray,
        path: Path,
        *,
        title: str,
        unit: str,
        count: bool,
        centre: float | None = None,
    ) -> None:
        """Draw a metric's 32x32 super-pixel map to ``path`` (PNG).

        Parameters
        ----------
        values : ndarray
            The 1,024 super-pixel values, cell ``32 * row + col``; NaN is drawn grey.
        severity : ndarray
            Worst ``Status.severity`` of each super-pixel over evaluators; failing cells are
            outlined in red, caution cells in amber.
        path : Path
            PNG file to write.
        title : str
            Axes title (metric and detector).
        unit : str
            Colour-bar label.
        count : bool
            True for pixel counts: full linear range and integer ticks. Otherwise the colour
            range is the 1st to 99th percentile and values beyond it take the extension colours
            (black below, pink above).
        centre : float, optional
            The values compare with the previous file (a ratio: 1, a difference: 0): a diverging
            scale centred there, symmetric out to the 1st/99th percentile (``count`` is then ignored).
        """
        if values.shape != (N_SUPERPIXELS,) or severity.shape != (N_SUPERPIXELS,):
            raise ValueError(f"expected {N_SUPERPIXELS} super-pixel values and severities, got {values.shape}")
        flavour = "compare" if centre is not None else "count" if count else "value"
        if flavour not in self._canvases:
            self._canvases[flavour] = _MapCanvas(flavour)
        self._canvases[flavour].draw(values, severity, path, title, unit, centre)


@dataclass(frozen=True)
class DetectorFailures:
    """Failing evaluations of one detector's files at each scale, for the mosaic."""

    detector: int  # at the detector scale
    amplifier: np.ndarray  # per amplifier (32)
    superpixel: np.ndarray  # per super-pixel (1,024)

    def describe(self) -> str:
        """``"detector, 3 amps, 12 SP"``: where the detector fails, or ``"no failure"``."""
        n_amps = int(np.count_nonzero(self.amplifier))
        n_sp = int(np.count_nonzero(self.superpixel))
        parts = ["detector"] if self.detector else []
        parts += [f"{n_amps} amp{'s' if n_amps > 1 else ''}"] if n_amps else []
        parts += [f"{n_sp} SP"] if n_sp else []
        return ", ".join(parts) or "no failure"

    @property
    def failing(self) -> bool:
        return bool(self.detector or self.amplifier.any() or self.superpixel.any())


def _amplifier_bands(amplifiers: np.ndarray) -> PathPatch:
    """A hatched band over the super-pixel column of each failing amplifier (amplifier a is column a)."""
    corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, GRID - 0.5], [-0.5, GRID - 0.5], [-0.5, -0.5]])
    vertices = (corners[None, :, :] + np.stack([amplifiers, np.zeros_like(amplifiers)], axis=1)[:, None, :]).reshape(
        -1, 2
    )
    return PathPatch(
        MplPath(vertices, np.tile(_SQUARE_CODES, len(amplifiers))),
        fill=False,
        hatch="////",
        edgecolor=STATUS_LINE[Status.FAIL],
        linewidth=0.8,
    )


def failure_mosaic(
    failures: Mapping[str, DetectorFailures | None], layout: Sequence[Sequence[str]], path: Path, *, title: str
) -> None:
    """Draw every detector's failures, in a schematic focal-plane layout.

    Each detector is a 32x32 map of failing evaluations per super-pixel (shades of red); a
    failing amplifier hatches its column of super-pixels (amplifier ``a`` is column ``a``); any
    failure, at whatever scale, frames the detector in red and is named in its title
    ("WFI04: detector, 2 amps"), so a failure at the detector or amplifier scale is not hidden
    behind an empty super-pixel map.

    Parameters
    ----------
    failures : mapping
        Detector name to its failing evaluations at each scale, or None when the delivery has no
        file for it (drawn grey, "no file").
    layout : sequence of sequences
        Columns of detector names, left to right; each column is drawn top to bottom.
    path : Path
        PNG file to write.
    title : str
        Figure title.
    """
    n_columns, n_rows = len(layout), max(len(column) for column in layout)
    counts = [f.superpixel for f in failures.values() if f is not None]
    high = max(1, max((int(c.max()) for c in counts), default=0))
    norm = Normalize(0, high)
    figure = Figure(figsize=(2.0 * n_columns + 1.2, 2.2 * n_rows + 0.9), dpi=100)
    figure.suptitle(title, fontsize=12)
    width, height = 0.84 / n_columns, 0.82 / n_rows
    image = None
    for i, column in enumerate(layout):
        for j, detector in enumerate(column):
            axes = figure.add_axes((0.02 + i * width, 0.9 - (j + 1) * height, width * 0.9, height * 0.8))
            axes.set_xticks([])
            axes.set_yticks([])
            found = failures.get(detector)
            if found is None:
                axes.set_facecolor(_MISSING)
                axes.text(0.5, 0.5, "no file", ha="center", va="center", transform=axes.transAxes, fontsize=9)
                axes.set_title(detector, fontsize=9, color="#616161")
                continue
            image = axes.imshow(
                found.superpixel.reshape(GRID, GRID),
                origin="lower",
                interpolation="nearest",
                cmap=_FAILURE_COLOURS,
                norm=norm,
            )
            failing_amps = np.flatnonzero(found.amplifier)
            if failing_amps.size:
                axes.add_artist(_amplifier_bands(failing_amps.astype(float)))
            colour = STATUS_LINE[Status.FAIL] if found.failing else "#212121"
            axes.set_title(f"{detector}\n{found.describe()}", fontsize=8.5, color=colour, linespacing=1.1)
            for spine in axes.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(3.0 if found.detector else 1.6 if found.failing else 0.6)
    if image is not None:
        bar = figure.colorbar(image, cax=figure.add_axes((0.89, 0.12, 0.02, 0.7)), ticks=MaxNLocator(integer=True))
        bar.set_label("failing evaluations per super-pixel")
    figure.text(
        0.02,
        0.015,
        "Red frame: the detector fails at some scale (thick: at the detector scale). Hatched column: a failing "
        "amplifier. Shading: failing evaluations per super-pixel.",
        fontsize=8,
    )
    figure.savefig(path, pil_kwargs={"compress_level": 1})
