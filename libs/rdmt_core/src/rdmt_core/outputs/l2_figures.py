"""Report figures of the Level-2 monitors (astrometry, background, one_over_f, psf_shape).

Each ``draw_*`` function draws one PNG from a :class:`~rdmt_core.records.FileResult`
and returns its caption; :mod:`.monitor_figures` names the files and titles and
draws the figures a monitor asks for (``Monitor.figures``). ``result.extras``
holds figure data (per-star values, spectra) only in the embedded pipeline: a
result rebuilt from stored metrics has none, so each figure is drawn from the
metrics when it can, or skipped (None).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..geometry import FULL_SIDE, GRID, N_AMPLIFIERS
from ..measure.sky import RATE_UNIT
from ..records import Status
from .figures import MAP_COLOURS, colour_range
from .html import STATUS_LINE
from .verdicts import worst_severity

if TYPE_CHECKING:
    from pathlib import Path

    from ..records import FileResult


# --- astrometry ---


def nice_step(value: float) -> float:
    """The largest of 1, 2, 5 times a power of ten not above ``value`` (1 for non-positive values)."""
    if not value > 0:
        return 1.0
    power = 10.0 ** np.floor(np.log10(value))
    return float(max(step * power for step in (1.0, 2.0, 5.0) if step * power <= value * (1 + 1e-9)))


def _detector_axes(axes, extent: float, labels: tuple[str, str], title: str) -> None:
    """Square axes over the whole detector (``extent`` in the labels' unit) with the figure's title."""
    axes.set_xlim(0, extent)
    axes.set_ylim(0, extent)
    axes.set_aspect("equal")
    axes.set_xlabel(labels[0])
    axes.set_ylabel(labels[1])
    axes.set_title(title, loc="left", fontsize=10)


def draw_offsets(result: FileResult, path: Path) -> str | None:
    """Draw the offset vectors; the caption, or None when there is nothing to draw.

    From the per-star offsets of ``result.extras`` on the frame when present, along the
    detector axes; otherwise (a result rebuilt from stored metrics) from the mean offsets of
    the super-pixels or the amplifiers, whichever has more values, on the grid of cells. The
    stored offsets are (RA*cos(Dec), Dec): those arrows point in sky axes, north up and east
    left (+RA to the left), whatever the detector's orientation, and the caption says so.
    """
    from matplotlib.figure import Figure

    extras = result.extras
    values = {m.spec.name: m.values for m in result.metrics}
    if "star_x" in extras and extras["star_x"].size:
        extent = float(extras["frame_side"][0]) if "frame_side" in extras else float(FULL_SIDE)
        # a catalogue star outside the WCS's bounding box has no pixel position: no arrow
        drawn = np.isfinite(extras["offset_x"]) & np.isfinite(extras["offset_y"])
        if not drawn.any():
            return None
        x, y = extras["star_x"][drawn], extras["star_y"][drawn]
        u_, v_ = extras["offset_x"][drawn], extras["offset_y"][drawn]
        labels = ("frame column (pixels)", "frame row (pixels)")
        what = f"{x.size} matched stars, along the detector axes (x, y)"
    else:
        extent = float(GRID)
        by_scale = {
            scale: (values["offset_ra_mean"].at(scale), values["offset_dec_mean"].at(scale))
            for scale in ("superpixel", "amplifier")
        }
        count = {scale: int((np.isfinite(ra) & np.isfinite(dec)).sum()) for scale, (ra, dec) in by_scale.items()}
        scale = max(count, key=lambda name: count[name])
        if count[scale] == 0:
            return None
        ra, dec = by_scale[scale]
        if scale == "superpixel":
            rows, cols = np.divmod(np.arange(ra.size), GRID)
        else:  # amplifier strips, drawn at mid-height
            rows, cols = np.full(ra.size, (GRID - 1) / 2.0), np.arange(ra.size)
        finite = np.isfinite(ra) & np.isfinite(dec)
        x, y, u_, v_ = cols[finite] + 0.5, rows[finite] + 0.5, -ra[finite], dec[finite]  # east (+RA) to the left
        labels = ("super-pixel column (amplifier - 1)", "super-pixel row")
        what = (
            f"mean offset of {count[scale]} {scale.replace('superpixel', 'super-pixel')}s at their place on the "
            "detector, but each arrow in sky axes (north up, east left: RA*cos(Dec) to the left, Dec up), "
            "not along the detector's pixel axes"
        )
    length = np.hypot(u_, v_)
    typical = float(np.percentile(length, 90))
    key = nice_step(typical)
    scale_factor = max(typical, 1e-6) / (extent / 20.0)  # arcsec per axis unit: typical arrows are 1/20 wide
    figure = Figure(figsize=(6.4, 6.0), dpi=100)
    axes = figure.add_axes((0.1, 0.1, 0.85, 0.82))
    quiver = axes.quiver(x, y, u_, v_, angles="xy", scale_units="xy", scale=scale_factor, width=0.003, color="#1f4e9c")
    axes.quiverkey(quiver, 0.8, 1.03, key, f"{key * 1000:g} mas", labelpos="E", coordinates="axes")
    _detector_axes(
        axes, extent, labels,
        f"{result.identity.detector}: mean offset ({values['offset_ra_mean'].detector * 1000:.1f}, "
        f"{values['offset_dec_mean'].detector * 1000:.1f}) mas",
    )  # fmt: skip
    figure.savefig(path, pil_kwargs={"compress_level": 1})
    return f"Offsets measured minus catalogue: {what}; arrows magnified (key: {key * 1000:g} mas)."


# --- background ---


def draw_background_map(result: FileResult, path: Path) -> str:
    """Draw the super-pixel level map with flagged amplifier jumps marked; return the caption.

    Amplifier boundaries whose jump is at caution or fail are drawn as full-height lines,
    super-pixels whose step from their left neighbour is flagged as short segments on that
    boundary (red fail, amber caution). The verdicts are those of ``background_jump_significance``
    (the step in units of its own error), or of ``background_jump`` in results of versions before it.
    Drawn from the metrics and evaluations only.
    """
    from matplotlib.figure import Figure

    metrics = {m.spec.name: m.values for m in result.metrics}
    level = metrics["background_level"].at("superpixel")
    jumps = metrics["background_jump"]
    significance = metrics.get("background_jump_significance")
    judged = "background_jump" if significance is None else "background_jump_significance"
    blocks = [b for b in result.evaluations if b.metric == judged]
    figure = Figure(figsize=(6.4, 5.4), dpi=100)
    axes = figure.add_axes((0.1, 0.15, 0.68, 0.74))
    image = axes.imshow(level.reshape(GRID, GRID), origin="lower", interpolation="nearest", cmap=MAP_COLOURS)
    image.set_clim(*colour_range(level, count=True))  # the full range: a gradient across the detector is real
    figure.colorbar(image, cax=figure.add_axes((0.82, 0.15, 0.035, 0.74)), extend="neither").set_label(RATE_UNIT)
    marked = {Status.CAUTION: 0, Status.FAIL: 0}
    amp_severity = worst_severity([b for b in blocks if b.scale == "amplifier"], "amplifier")
    cell_severity = worst_severity([b for b in blocks if b.scale == "superpixel"], "superpixel").reshape(GRID, GRID)
    for status in marked:
        colour = STATUS_LINE[status]
        for amp in np.flatnonzero(amp_severity == status.severity):  # amp index 0..31; boundary on its left
            axes.axvline(max(amp, 1) - 0.5, color=colour, linewidth=2.0)  # amplifier 1 holds boundary 1|2
            axes.text(
                max(amp, 1) - 0.5,
                GRID - 0.2,
                f"{jumps.amplifier[amp]:+.3g}"
                + ("" if significance is None else f"\n{significance.amplifier[amp]:+.1f}σ"),
                color=colour,
                fontsize=7,
                ha="center",
                va="bottom",
            )
            marked[status] += 1
        rows, cols = np.nonzero(cell_severity == status.severity)
        if rows.size:
            axes.vlines(np.maximum(cols, 1) - 0.5, rows - 0.5, rows + 0.5, colors=colour, linewidth=3.0)
    axes.set_xlim(-0.5, GRID - 0.5)
    axes.set_xlabel("super-pixel column (amplifier - 1)")
    axes.set_ylabel("super-pixel row")
    axes.set_title(f"{result.identity.detector} background level (sigma-clipped median)", fontsize=10, pad=14)
    figure.savefig(path, pil_kwargs={"compress_level": 1})
    if not np.isfinite(jumps.detector):
        largest = "no amplifier step measured"
    elif significance is None:
        largest = f"largest amplifier step {jumps.detector:+.4g} DN/s"
    else:
        largest = f"most significant amplifier step {jumps.detector:+.4g} DN/s ({significance.detector:+.1f} sigma)"
    return (
        f"Sigma-clipped background level of each super-pixel (DN/s). Amplifier boundaries with a step at fail "
        f"({marked[Status.FAIL]}) or caution ({marked[Status.CAUTION]}) in units of its own error are drawn as red "
        f"or amber lines with the step in DN/s and sigma; short segments mark super-pixels whose step from their "
        f"left neighbour is flagged; {largest}."
    )


# --- one_over_f ---


def _log_binned(frequency: np.ndarray, power: np.ndarray, n_bins: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Mean power in logarithmic frequency bins from 1 cycle per frame (last axis of ``power``)."""
    edges = np.unique(np.round(np.geomspace(1, len(frequency), n_bins)).astype(int))
    centres = np.sqrt(frequency[edges[:-1]] * frequency[edges[1:] - 1])
    sums = np.add.reduceat(power[..., edges[0] :], edges[:-1] - edges[0], axis=-1)[..., : len(edges) - 1]
    return centres, sums / np.diff(edges)


def draw_spectra(result: FileResult, path: Path) -> str:
    """Per-amplifier and common-mode spectra over the white level (log-binned), bands shaded; return the caption."""
    from matplotlib.figure import Figure

    extras = result.extras
    frequency = extras["frequency"]
    centres, amps = _log_binned(frequency, extras["amplifier_power"])
    _, common = _log_binned(frequency, extras["common_power"][None, :])
    blocks = [b for b in result.evaluations if b.metric == "one_over_f_significance" and b.scale == "amplifier"]
    severity = worst_severity(blocks, "amplifier")
    figure = Figure(figsize=(7.0, 4.6), dpi=100)
    axes = figure.add_axes((0.1, 0.12, 0.86, 0.78))
    low, white = extras["low_bins"], extras["white_bins"]
    axes.axvspan(low[0] - 0.5, low[1] + 0.5, color="#fde2c4", label="low band")
    axes.axvspan(white[0], white[1], color="#e3eefc", label="white band")
    for amp in np.argsort(severity):  # flagged amplifiers drawn last, on top
        status = Status.FAIL if severity[amp] == Status.FAIL.severity else None
        status = Status.CAUTION if severity[amp] == Status.CAUTION.severity else status
        colour, width = (STATUS_LINE[status], 1.0) if status else ("#9e9e9e", 0.5)
        axes.plot(centres, amps[amp], color=colour, linewidth=width, alpha=0.6)
    axes.plot(centres, np.nanmedian(amps, axis=0), color="black", linewidth=1.6, label="median amplifier")
    axes.plot(centres, common[0], color="#1565c0", linewidth=1.8, label="common mode")
    axes.axhline(1.0, color="black", linestyle=":", linewidth=0.8)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("frequency (cycles per frame; the row series is sampled once per row)")
    axes.set_ylabel("power / white level")
    axes.set_title(f"{result.identity.detector} row-series power spectra", fontsize=10)
    axes.legend(fontsize=8, loc="upper right")
    figure.savefig(path, pil_kwargs={"compress_level": 1})
    n_flagged = int(np.count_nonzero(severity >= Status.CAUTION.severity))
    return (
        "Power spectra of the detrended row series, divided by each series' white level and averaged in "
        "logarithmic frequency bins: one grey line per amplifier (red fail, amber caution), their median (black) "
        f"and the common mode (blue); shown for information: star light raises these spectra too, so the "
        f"verdict comes from the readout-order against orthogonal-order test (the next figure). {n_flagged} "
        "amplifier(s) flagged."
    )


def draw_significance_bars(result: FileResult, path: Path) -> str:
    """Bar chart of the per-amplifier significance from the metrics (drawable without extras); return the caption."""
    from matplotlib.figure import Figure

    metrics = {m.spec.name: m.values for m in result.metrics}
    significance = metrics["one_over_f_significance"]
    blocks = [b for b in result.evaluations if b.metric == "one_over_f_significance" and b.scale == "amplifier"]
    severity = worst_severity(blocks, "amplifier")
    colours = [
        STATUS_LINE[Status.FAIL]
        if s == Status.FAIL.severity
        else STATUS_LINE[Status.CAUTION]
        if s == Status.CAUTION.severity
        else "#78909c"
        for s in severity
    ]
    figure = Figure(figsize=(7.0, 3.6), dpi=100)
    axes = figure.add_axes((0.09, 0.15, 0.88, 0.72))
    values = np.nan_to_num(significance.amplifier)
    axes.bar(np.arange(1, N_AMPLIFIERS + 1), values, color=colours)
    limits = sorted({b.threshold for b in blocks if b.scale == "amplifier" and np.isfinite(b.threshold)})
    for limit in limits:
        axes.axhline(limit, color=STATUS_LINE[Status.FAIL], linestyle="--", linewidth=0.9)
    axes.axhline(0.0, color="black", linewidth=0.6)
    axes.set_xlim(0.4, N_AMPLIFIERS + 0.6)
    axes.set_xlabel("amplifier")
    axes.set_ylabel("significance (sigma)")
    common = metrics["one_over_f_common_significance"].detector
    axes.set_title(
        f"{result.identity.detector}: pooled {significance.detector:.1f} sigma, common mode {common:.1f} sigma",
        fontsize=10,
    )
    figure.savefig(path, pil_kwargs={"compress_level": 1})
    limit_text = ", ".join(f"{v:g}" for v in limits) or "none configured"
    return (
        "Gaussian-equivalent significance of each amplifier's excess of power in readout order (row means of each "
        "super-pixel tile) over the same pixels in the orthogonal order (column means): 0 for white noise and for "
        f"star light; NaN drawn as 0. Dashed: the limit ({limit_text} sigma); red fail, amber caution."
    )


# --- psf_shape ---


def draw_psf_fwhm(result: FileResult, path: Path) -> str | None:
    """Draw the PSF size on the detector; the caption, or None when there is nothing to draw.

    From the stars of ``result.extras`` (coloured by FWHM, with ellipticity sticks) when present;
    otherwise (a result rebuilt from stored metrics) the FWHM of the super-pixels or the
    amplifiers, whichever has more values, on the grid of cells.
    """
    import matplotlib as mpl
    from matplotlib.figure import Figure

    extras = result.extras
    values = {m.spec.name: m.values for m in result.metrics}
    figure = Figure(figsize=(6.4, 5.6), dpi=100)
    axes = figure.add_axes((0.1, 0.1, 0.72, 0.82))
    colour_axes = figure.add_axes((0.85, 0.1, 0.03, 0.82))
    cmap = mpl.colormaps["viridis"].with_extremes(bad="#d9d9d9")
    if "star_x" in extras and extras["star_x"].size:
        extent = float(extras["frame_side"][0]) if "frame_side" in extras else float(FULL_SIDE)
        x, y, fwhm = extras["star_x"], extras["star_y"], extras["fwhm"]
        low, high = np.percentile(fwhm, [2.0, 98.0])
        points = axes.scatter(x, y, c=fwhm, s=9, cmap=cmap, vmin=low, vmax=max(high, low + 1e-3), linewidths=0)
        e = np.hypot(extras["e1"], extras["e2"])
        angle = 0.5 * np.arctan2(extras["e2"], extras["e1"])
        stick = e * extent / 4.0  # an ellipticity of 0.1 is a stick of 1/40 of the frame
        sticks = {"angles": "xy", "scale_units": "xy", "scale": 1.0, "pivot": "middle", "width": 0.002}
        no_heads = {"headwidth": 0, "headlength": 0, "headaxislength": 0}
        axes.quiver(x, y, stick * np.cos(angle), stick * np.sin(angle), color="#333333", **sticks, **no_heads)
        labels = ("frame column (pixels)", "frame row (pixels)")
        what = f"{x.size} stars coloured by FWHM; sticks show the ellipticity and its direction (0.1 = 1/40 frame)"
    else:
        extent = float(GRID)
        superpixels = values["psf_fwhm"].superpixel.reshape(GRID, GRID)
        amplifiers = values["psf_fwhm"].amplifier[None, :]
        grid, where = (
            (superpixels, "super-pixel")
            if np.isfinite(superpixels).sum() >= np.isfinite(amplifiers).sum()
            else (amplifiers, "amplifier")
        )
        finite = grid[np.isfinite(grid)]
        if finite.size == 0:
            return None
        low, high = float(finite.min()), max(float(finite.max()), float(finite.min()) + 1e-3)
        image = np.ma.masked_invalid(grid)
        points = axes.imshow(
            image, origin="lower", extent=(0, extent, 0, extent), aspect="auto", cmap=cmap, vmin=low, vmax=high
        )
        labels = ("super-pixel column (amplifier - 1)", "super-pixel row")
        what = f"FWHM per {where} ({finite.size} with enough stars; grey: none)"
    figure.colorbar(points, cax=colour_axes, label="FWHM (pixels)")
    _detector_axes(
        axes, extent, labels,
        f"{result.identity.detector}: FWHM {values['psf_fwhm'].detector:.3f} px, "
        f"ellipticity {values['psf_ellipticity'].detector:.3f}",
    )  # fmt: skip
    figure.savefig(path, pil_kwargs={"compress_level": 1})
    return f"PSF size across the detector: {what}."
