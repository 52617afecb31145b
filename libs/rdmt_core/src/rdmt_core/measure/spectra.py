"""Spectra of row series: polynomial detrending, periodogram band powers and their F-test significance.

Pure numpy and scipy, for the 1/f noise monitor (:mod:`.one_over_f`). A series
is detrended by a count-weighted Legendre polynomial (:func:`detrend`); its
periodogram is normalised so white noise has the same mean power in every
frequency bin (:func:`band_power`); the ratio of a low band's mean power to a
white band's follows an F distribution for white noise, whose one-sided
Gaussian-equivalent significance is :func:`f_significance`.
"""

from __future__ import annotations

import numpy as np


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
