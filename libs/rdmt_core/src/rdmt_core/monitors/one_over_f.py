"""Residual 1/f noise monitor of Level-2 images (model type ImageModel).

Reads ``data`` (DN/s) and ``dq``. The numerical core, :func:`one_over_f_metrics`,
is a pure function; the readout model is :func:`rdmt_core.synthetic_l2.readout_order`.

The readout model: each of the 32 amplifiers reads its 128-column strip row by
row from row 0, odd-numbered amplifiers from low to high column and
even-numbered ones from high to low, all 32 at the same time. The readout
series of an amplifier is its strip in that order; 1/f noise is noise whose
power rises as 1/frequency along that series. Frequencies are counted in cycles
per frame (per readout series), so bin ``j`` has a period of ``rows / j`` rows.

The series is binned by one row: each sample is the mean of a row's kept pixels
(the order within a row does not change a mean, so ``readout_order`` need not be
materialised). Binning keeps every frequency below 0.5 cycles per row, the whole
1/f band, and reduces the white noise per sample by the row length, at a tenth
of the cost of a full-resolution spectrum.

Steps, per amplifier:

1. mask: DQ-flagged and non-finite pixels (the NaN border), and pixels farther
   than ``clip_sigma`` sigma from their super-pixel's sigma-clipped level
   (stars, cosmic-ray residuals);
2. row means of the kept pixels; a row with no kept pixel takes the trend;
3. detrend: subtract a weighted polynomial of degree ``detrend_degree`` in the
   row number, so a smooth background gradient is not taken for 1/f noise;
4. periodogram; the white level is the mean power of the upper frequencies
   (``white_band_start`` of the way to 0.5 cycles per row and above, where 1/f
   power is smallest); the ratio is the mean power of the ``low_band`` bins over
   the white level.

For white noise the bins are independent exponentials, so the ratio follows an
F distribution with ``(2 L, 2 M)`` degrees of freedom (``L`` low and ``M``
white bins). The significance is the ratio's one-sided Gaussian equivalent, so
the threshold follows from the image's own bin counts. The detector values pool
the 32 amplifiers' spectra (``2 L A, 2 M A`` degrees of freedom); the common mode
is the mean of the 32 detrended row series, read at the same time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..blockstats import ScaleValues
from ..data_access import ArraySpec
from ..geometry import GRID, N_AMPLIFIERS, N_SUPERPIXELS
from ..records import Metric, MetricSpec
from .background import (
    SOURCE_BLOCK,
    find_sources,
    flagged_pixels,
    known_dq_flags,
    level2_example_frame,
    source_blocks_problem,
)
from .base import Context, Monitor, MonitorResult, ReportFigure

if TYPE_CHECKING:
    from pathlib import Path

    from ..records import FileResult

REFERENCE_SIGMA = 5.0  # the significance quoted in the notes as a ratio (the default soc limit)


class OneOverFOptions(BaseModel):
    """Options of the 1/f noise monitor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clip_sigma: float = Field(
        4.0,
        ge=3.0,
        description="Pixels farther than this many sigma from their super-pixel's clipped level are masked; a narrower "
        "window pulls row means towards each super-pixel's level, adding steps that look like 1/f noise.",
    )
    source_sigma: float = Field(
        5.0, gt=0, description="Pixels this many sigma above the level mark a source; 4x4 blocks around it are masked."
    )
    low_band: tuple[int, int] = Field(
        (1, 16), description="First and last frequency bin (cycles per frame) of the low band."
    )
    white_band_start: float = Field(
        0.5, gt=0, lt=1, description="The white reference band starts at this fraction of 0.5 cycles per row."
    )
    detrend_degree: int = Field(
        2, ge=0, le=8, description="Degree of the polynomial in row number removed from each amplifier's row series."
    )
    min_rows: int = Field(64, ge=8, description="Fewest rows with data for a measurement.")
    mask_dq_flags: tuple[str, ...] = Field(
        ("DO_NOT_USE", "SATURATED"), description="DQ flags (roman_datamodels.dqflags.pixel names) of pixels to ignore."
    )

    @field_validator("mask_dq_flags")
    @classmethod
    def _known_flags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return known_dq_flags(value)

    @model_validator(mode="after")
    def _band(self) -> OneOverFOptions:
        if not 1 <= self.low_band[0] <= self.low_band[1]:
            raise ValueError(f"low_band must be (first, last) with 1 <= first <= last, got {self.low_band}")
        return self


_AMP_SCALES = ("detector", "amplifier")
METRICS = (
    MetricSpec(
        "one_over_f_power_ratio",
        "ratio",
        "Low-band power over the white-noise power of the amplifier's "
        "row series (1 for white noise); detector: the 32 amplifiers pooled",
        scales=_AMP_SCALES,
    ),
    MetricSpec(
        "one_over_f_significance",
        "sigma",
        "Gaussian-equivalent significance of the power ratio against "
        "white noise (F test); detector: the 32 amplifiers pooled",
        scales=_AMP_SCALES,
    ),
    MetricSpec(
        "one_over_f_common_power_ratio",
        "ratio",
        "Low-band over white power of the common mode (mean of the 32 amplifiers' row series)",
        scales=("detector",),
    ),
    MetricSpec(
        "one_over_f_common_significance",
        "sigma",
        "Gaussian-equivalent significance of the common-mode power ratio (F test)",
        scales=("detector",),
    ),
)


def row_series(
    frame: np.ndarray, clip_sigma: float, source_sigma: float, ignored: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Background-corrected mean of the kept pixels of every row of every amplifier strip, and their number.

    Deviations are taken from the smooth background of :func:`.background.find_sources`. A pixel
    is kept when finite, within ``clip_sigma`` of its super-pixel's standard deviation, and not in
    a block masked around a source (``source_sigma``). Each row's value is the background level of
    its strip at that row plus the mean kept deviation, so neither a gradient along the row nor
    the columns a star masked change it. ``ignored`` holds flat indices of pixels never kept
    (DQ-flagged); they can still mark a source.

    Returns ``means`` (32, side) float64, NaN where no pixel was kept, ``counts`` (32, side)
    int64 (``readout_order(frame)`` binned by one row), and each strip's pixel noise (32,): the
    median of its super-pixels' clipped standard deviations (0 for a constant strip).
    """
    side = frame.shape[0]
    cell = side // GRID
    sources = find_sources(frame, source_sigma)
    deviation = sources.deviation
    row_spread = np.repeat(sources.spread, cell, axis=0).astype(frame.dtype)[:, :, None]  # (row, strip, 1)
    with np.errstate(invalid="ignore"):
        kept = np.abs(deviation) <= clip_sigma * row_spread
    n_blocks = sources.blocks.shape[0]
    kept.reshape(n_blocks, SOURCE_BLOCK, n_blocks, SOURCE_BLOCK)[...] &= ~sources.blocks[:, None, :, None]
    if ignored is not None:
        kept.reshape(-1)[ignored] = False
    np.copyto(deviation, 0.0, where=~kept)  # our own array: no second copy of the frame
    sums = deviation.sum(axis=2).astype(np.float64)
    counts = np.count_nonzero(kept, axis=2).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sources.level + sums / counts, np.nan)
    return means.T, counts.T, np.median(sources.spread, axis=0)


def detrend(means: np.ndarray, counts: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Subtract from each row series its count-weighted polynomial of ``degree`` in the row number.

    Rows without a kept pixel get a residual of 0 (the trend). Returns the residuals (same shape)
    and a boolean per series: True when it had more rows with data than polynomial terms.
    """
    n_series, n_rows = means.shape
    x = np.linspace(-1.0, 1.0, n_rows)
    basis = np.polynomial.legendre.legvander(x, degree)  # (rows, degree + 1), well conditioned on [-1, 1]
    weight = counts.astype(np.float64)
    values = np.where(counts > 0, means, 0.0)
    normal = np.einsum("rk,ar,rl->akl", basis, weight, basis)
    target = np.einsum("rk,ar->ak", basis, weight * values)
    fitted = np.count_nonzero(counts, axis=1) > degree + 1
    coefficients = np.zeros((n_series, degree + 1))
    if fitted.any():
        coefficients[fitted] = np.linalg.solve(normal[fitted], target[fitted][:, :, None])[:, :, 0]
    residual = np.where(counts > 0, values - coefficients @ basis.T, 0.0)
    residual[~fitted] = 0.0
    return residual, fitted


def white_fraction(n_rows: int, degree: int) -> np.ndarray:
    """Expected fraction of white-noise power left in each frequency bin after :func:`detrend` (equal weights).

    The polynomial takes ``degree + 1`` dimensions out of the series, all at the lowest
    frequencies: with degree 2 the first bin keeps about a quarter of its white power. For
    ``n_rows // 2 + 1`` bins; the zero-frequency bin is 0.
    """
    basis = np.polynomial.legendre.legvander(np.linspace(-1.0, 1.0, n_rows), degree)
    orthonormal, _ = np.linalg.qr(basis)
    removed = (np.abs(np.fft.rfft(orthonormal, axis=0)) ** 2).sum(axis=1) / n_rows
    return np.clip(1.0 - removed, 0.0, 1.0)


def band_power(
    residual: np.ndarray, low_band: tuple[int, int], white_start: float, degree: int
) -> dict[str, np.ndarray]:
    """Periodogram of each series, its band powers and the bands' white-noise statistics.

    Returns ``power`` (series, rows // 2 + 1, normalised so white noise of variance s2 has mean
    power s2 in every bin), ``low`` (mean low-band power divided by the detrended white fraction,
    so white noise gives the white level) and ``white`` (series,), the bins ``low_bins`` and
    ``white_bins`` (first, last, in cycles per series), and the degrees of freedom of the two
    band means under white noise, ``dof_low`` (effective, reduced by the detrending) and
    ``dof_white``.
    """
    n_rows = residual.shape[1]
    nyquist = n_rows // 2
    last_white = nyquist - 1 if n_rows % 2 == 0 else nyquist  # the Nyquist bin of an even series has 1 dof
    first_white = max(int(np.ceil(white_start * nyquist)), low_band[1] + 1)
    if first_white > last_white or low_band[1] >= first_white:
        raise ValueError(f"a {n_rows}-row series has no room for low band {low_band} and a white band")
    power = np.abs(np.fft.rfft(residual, axis=1)) ** 2 / n_rows
    kept = white_fraction(n_rows, degree)[low_band[0] : low_band[1] + 1]
    low = power[:, low_band[0] : low_band[1] + 1].mean(axis=1) / kept.mean()
    white = power[:, first_white : last_white + 1].mean(axis=1)
    return {
        "power": power,
        "low": low,
        "white": white,
        "low_bins": np.array(low_band),
        "white_bins": np.array([first_white, last_white]),
        "dof_low": np.array(2.0 * kept.sum() ** 2 / (kept**2).sum()),
        "dof_white": np.array(2.0 * (last_white - first_white + 1)),
    }


def f_significance(ratio: np.ndarray, dof_low: np.ndarray, dof_white: np.ndarray) -> np.ndarray:
    """One-sided Gaussian-equivalent significance of mean-power ratios under white noise.

    Under white noise ``ratio`` follows F(``dof_low``, ``dof_white``); the result is ``z`` with
    ``P(Z > z) = P(F > ratio)``. Exact where the tail probability is representable, Paulson's
    cube-root approximation beyond (z above about 37). NaN where ``ratio`` is NaN.
    """
    from scipy import special

    ratio = np.asarray(ratio, dtype=np.float64)
    d1 = np.broadcast_to(np.asarray(dof_low, dtype=np.float64), ratio.shape)
    d2 = np.broadcast_to(np.asarray(dof_white, dtype=np.float64), ratio.shape)
    valid = np.isfinite(ratio) & (d1 > 0) & (d2 > 0)
    z = np.full(ratio.shape, np.nan)
    if not valid.any():
        return z
    r, a, b = ratio[valid], d1[valid], d2[valid]
    with np.errstate(under="ignore"):
        tail = special.fdtrc(a, b, np.maximum(r, 0.0))
    exact = -special.ndtri(np.clip(tail, 1e-300, 1.0))
    cube = np.cbrt(r)
    paulson = ((1 - 2 / (9 * b)) * cube - (1 - 2 / (9 * a))) / np.sqrt(2 / (9 * a) + cube * cube * 2 / (9 * b))
    z[valid] = np.where(tail > 1e-300, exact, np.maximum(paulson, exact))
    return z


def one_over_f_metrics(data: np.ndarray, dq: np.ndarray, options: OneOverFOptions) -> MonitorResult:
    """Low-band over white power, and its significance, per amplifier, pooled and for the common mode.

    Parameters
    ----------
    data : ndarray
        Level-2 rates in DN/s placed in the full frame (square, side divisible by 32; the
        reference-pixel border is NaN).
    dq : ndarray
        Data-quality flags, same shape; pixels with any of ``options.mask_dq_flags`` are ignored.
    options : OneOverFOptions
        Masking, bands and detrending.
    """
    if problem := source_blocks_problem(data.shape[0]):
        return _result({}, {"status": f"{problem} (all metrics NaN)"})
    flagged = flagged_pixels(dq, options.mask_dq_flags)
    means, counts, pixel_noise = row_series(data, options.clip_sigma, options.source_sigma, flagged)
    rows = np.flatnonzero(counts.any(axis=0))
    notes = {"readout model": _READOUT_NOTE, "masking": _masking_note(counts, data, flagged.size, options)}
    if rows.size < options.min_rows:
        status = "no finite pixel" if rows.size == 0 else f"only {rows.size} rows with data"
        notes["status"] = f"{status}: need {options.min_rows} rows for a spectrum (all metrics NaN)"
        return _result({}, notes)
    span = slice(rows[0], rows[-1] + 1)  # the science rows; the NaN border rows are left out
    residual, fitted = detrend(means[:, span], counts[:, span], options.detrend_degree)
    n_rows = residual.shape[1]
    try:
        amps = band_power(residual, options.low_band, options.white_band_start, options.detrend_degree)
    except ValueError as exc:
        notes["status"] = f"{exc}: choose a smaller low_band (all metrics NaN)"
        return _result({}, notes)
    noisy = fitted & (amps["white"] > 0) & (pixel_noise > 0)  # a constant strip has only rounding left
    if not noisy.any():
        notes["status"] = "no noise: the kept pixels are constant (white level 0), so no power ratio is defined"
        return _result({}, notes)
    # the common mode: the 32 series read at the same time, averaged
    common = band_power(
        residual[noisy].mean(axis=0, keepdims=True), options.low_band, options.white_band_start, options.detrend_degree
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(noisy, amps["low"] / amps["white"], np.nan)
    common_white = float(common["white"][0])
    common_ratio = float(common["low"][0]) / common_white if common_white > 0 else float("nan")
    pooled = float(amps["low"][noisy].sum() / amps["white"][noisy].sum())
    n_amps = int(noisy.sum())
    dof_low, dof_white = amps["dof_low"], amps["dof_white"]
    values = {
        "one_over_f_power_ratio": (pooled, ratio),
        "one_over_f_significance": (
            float(f_significance(pooled, n_amps * dof_low, n_amps * dof_white)),
            f_significance(ratio, dof_low, dof_white),
        ),
        "one_over_f_common_power_ratio": (common_ratio, None),
        "one_over_f_common_significance": (float(f_significance(common_ratio, dof_low, dof_white)), None),
    }
    notes["bands"] = _bands_note(amps, n_rows, n_amps, options.detrend_degree)
    notes["summary"] = _summary(values, noisy)
    white = np.where(noisy[:, None], amps["white"][:, None], np.nan)
    extras = {
        "frequency": np.arange(amps["power"].shape[1], dtype=np.float64),  # cycles per frame
        "amplifier_power": amps["power"] / white,
        "common_power": common["power"][0] / common_white if common_white > 0 else common["power"][0],
        "low_bins": amps["low_bins"],
        "white_bins": amps["white_bins"],
    }
    return _result(values, notes, extras)


_READOUT_NOTE = (
    "each amplifier reads its strip row by row from row 0 (odd amplifiers from low to high column, even ones from "
    "high to low), all 32 at once; the readout series is binned by one row (mean of the row's kept pixels), "
    "so frequencies run from 1 cycle per frame to 0.5 cycles per row"
)


def _masking_note(counts: np.ndarray, frame: np.ndarray, n_flagged: int, options: OneOverFOptions) -> str:
    kept = int(counts.sum())
    finite = int(np.count_nonzero(np.isfinite(frame)))
    flagged = f", {n_flagged} more ignored for DQ flags {', '.join(options.mask_dq_flags)}" if n_flagged else ""
    return (
        f"{kept} of {finite} finite pixels kept within {options.clip_sigma:g} sigma of the smooth background "
        f"({finite - kept} masked as sources, within 4x4 blocks, or as outliers{flagged})"
    )


def _bands_note(amps: dict[str, np.ndarray], n_rows: int, n_amps: int, degree: int) -> str:
    from scipy import special

    low, white = amps["low_bins"], amps["white_bins"]
    d1, d2 = float(amps["dof_low"]), float(amps["dof_white"])
    tail = special.ndtr(-REFERENCE_SIGMA)
    at_one = special.fdtri(d1, d2, 1 - tail)
    at_pooled = special.fdtri(n_amps * d1, n_amps * d2, 1 - tail)
    return (
        f"{n_rows} rows; low band {low[0]}-{low[1]} cycles per frame, white band {white[0]}-{white[1]}; "
        f"row series detrended by a degree-{degree} polynomial; for white noise a ratio of {at_one:.3g} is "
        f"{REFERENCE_SIGMA:g} sigma for one amplifier or the common mode, {at_pooled:.3g} for the {n_amps} pooled"
    )


def _summary(values: dict[str, tuple], noisy: np.ndarray) -> str:
    pooled, per_amp = values["one_over_f_significance"]
    common = values["one_over_f_common_significance"][0]
    worst = int(np.nanargmax(per_amp))
    return (
        f"measured: largest amplifier significance {per_amp[worst]:.1f} sigma (amplifier {worst + 1}), "
        f"pooled {pooled:.1f} sigma, common mode {common:.1f} sigma"
        + ("" if noisy.all() else f"; {int((~noisy).sum())} amplifier(s) without data")
    )


def _result(values: dict[str, tuple], notes: dict[str, str], extras: dict[str, np.ndarray] | None = None):
    metrics = []
    for spec in METRICS:
        detector, amplifier = values.get(spec.name, (np.nan, None))
        metrics.append(
            Metric(
                spec,
                ScaleValues(
                    float(detector),
                    np.full(N_AMPLIFIERS, np.nan) if amplifier is None else np.asarray(amplifier, dtype=np.float64),
                    np.full(N_SUPERPIXELS, np.nan),
                ),
            )
        )
    return MonitorResult(metrics, notes, extras or {})


class OneOverFMonitor(Monitor):
    """Residual 1/f (correlated readout) noise of Level-2 images, per amplifier and common mode."""

    name = "one_over_f"
    title = "Residual 1/f noise"
    model_types = frozenset({"ImageModel"})
    arrays = {"data": ArraySpec("f"), "dq": ArraySpec("ui")}  # noqa: RUF012
    border = 4
    options_model = OneOverFOptions
    metric_specs = METRICS

    @classmethod
    def example_arrays(cls, side: int, seed: int) -> dict[str, np.ndarray]:
        return level2_example_frame(side, seed)

    @classmethod
    def compute(cls, arrays: dict[str, np.ndarray], options: BaseModel, context: Context) -> MonitorResult:
        assert isinstance(options, OneOverFOptions)
        return one_over_f_metrics(arrays["data"], arrays["dq"], options)

    @classmethod
    def report_figures(cls, result: FileResult, directory: Path, stem: str) -> list[ReportFigure]:
        figures = []
        if "amplifier_power" in result.extras:
            path = directory / f"{stem}_one_over_f_spectra.png"
            figures.append(ReportFigure(path, "Power spectra of the row series", draw_spectra(result, path)))
        path = directory / f"{stem}_one_over_f_amplifiers.png"
        figures.append(ReportFigure(path, "1/f significance per amplifier", draw_significance_bars(result, path)))
        return figures


def _log_binned(frequency: np.ndarray, power: np.ndarray, n_bins: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Mean power in logarithmic frequency bins from 1 cycle per frame (last axis of ``power``)."""
    edges = np.unique(np.round(np.geomspace(1, len(frequency), n_bins)).astype(int))
    centres = np.sqrt(frequency[edges[:-1]] * frequency[edges[1:] - 1])
    sums = np.add.reduceat(power[..., edges[0] :], edges[:-1] - edges[0], axis=-1)[..., : len(edges) - 1]
    return centres, sums / np.diff(edges)


def draw_spectra(result: FileResult, path: Path) -> str:
    """Per-amplifier and common-mode spectra over the white level (log-binned), bands shaded; return the caption."""
    from matplotlib.figure import Figure

    from ..outputs.html import STATUS_LINE
    from ..outputs.verdicts import worst_severity
    from ..records import Status

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
        f"and the common mode (blue). 1/f noise rises to the left of the shaded low band; {n_flagged} amplifier(s) "
        "flagged."
    )


def draw_significance_bars(result: FileResult, path: Path) -> str:
    """Bar chart of the per-amplifier significance from the metrics (drawable without extras); return the caption."""
    from matplotlib.figure import Figure

    from ..outputs.html import STATUS_LINE
    from ..outputs.verdicts import worst_severity
    from ..records import Status

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
        "Gaussian-equivalent significance of each amplifier's low-band power ratio against white noise (0 is white "
        f"noise; NaN drawn as 0); dashed: the limit ({limit_text} sigma); red fail, amber caution."
    )
