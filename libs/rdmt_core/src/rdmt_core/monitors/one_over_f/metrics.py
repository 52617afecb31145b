"""Residual 1/f noise metrics of a Level-2 image (pure, no I/O).

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

Steps, per amplifier (steps 3 and 4 are :mod:`rdmt_core.measure.spectra`):

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

import numpy as np

from ...geometry import GRID, N_AMPLIFIERS, N_SUPERPIXELS
from ...measure.blockstats import ScaleValues
from ...measure.dq import NO_USABLE_PIXEL, flagged_pixels
from ...measure.sky import SOURCE_BLOCK, find_sources, source_blocks_problem
from ...measure.spectra import band_power, detrend, f_significance
from ...records import Metric
from ..base import MonitorResult
from .options import METRICS, OneOverFOptions

REFERENCE_SIGMA = 5.0  # the significance quoted in the notes as a ratio (the default soc limit)


def row_series(
    frame: np.ndarray, clip_sigma: float, source_sigma: float, ignored: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Background-corrected mean of the kept pixels of every row of every amplifier strip, and their number.

    Deviations are taken from the smooth background of :func:`.sky.find_sources`. A pixel
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
        status = NO_USABLE_PIXEL if rows.size == 0 else f"only {rows.size} rows with data"
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
