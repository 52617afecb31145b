"""PSF shape metrics of a Level-2 image: FWHM and ellipticity from bright isolated stars (pure, no I/O).

Stars come from :mod:`rdmt_core.measure.stars` (one detection for both star monitors); the ones
used are isolated, unsaturated (no DQ SATURATED within 2 pixels of the peak, peak below
``max_peak``), measurable (stamp inside the frame, at most ``max_masked_pixels`` unusable pixels in
the 5x5 box around the peak), with a peak S/N of at least ``min_snr``.

**The PSF of a cell is measured on all its stars together** (an empirical PSF), not star by star.
The WFI PSF is undersampled (FWHM 1.1 to 1.8 pixels from F062 to F213): one star's pixels sample
the pixel-convolved PSF at 1-pixel steps, at a sub-pixel phase that changes from star to star, so
any size measured on one star depends on its phase (moment sizes of single stars were 10 % too
large and their ellipticity three times too large on galsim.roman PSFs). The pixels of many stars
at random phases, placed at their offsets ``d = pixel - centre`` from accurate star centres, sample
the pixel-convolved PSF *densely*: a sum over them is, on average, the integral over the continuous
profile. Hence, per cell (detector, amplifier, super-pixel):

1. **centres and amplitudes** of the stars by fitting each with the detector's empirical PSF
   (below): a Gauss-Newton fit of amplitude and position of ``A f(q(d - c))`` on the pixels of the
   core, started from a Gaussian-weighted centroid; two rounds of centres, then the PSF again;
2. **adaptive second moments** (as galsim's HSM ``FindAdaptiveMom``, the truth's definition): the
   covariance ``M`` and centroid of the elliptical Gaussian weight whose weighted moments of the
   stacked stars (each divided by its amplitude) are ``M / 2``, iterated to the fixed point. The
   ellipticity is ``(a^2 - b^2) / (a^2 + b^2) = |(Mxx - Myy, 2 Mxy)| / (Mxx + Myy)``;
3. **the radial profile** in the moments' elliptical coordinate ``q = d^T M^-1 d``: a cubic in
   ``q`` fitted by least squares to the stacked pixel values with ``q <= QMAX`` (above ~15 % of the
   peak). The FWHM is that of the area above half the profile's peak, ``A = pi q_half sqrt(det M)``,
   ``FWHM = 2 sqrt(A / pi) = 2 sqrt(q_half) det(M)^(1/4)``: the definition of the truth (area of
   the pixel-convolved PSF above half maximum), for any profile (Airy core, pixel box), with no
   PSF model and no calibration.

Unusable pixels (non-finite or DQ DO_NOT_USE) are simply absent from the stack. Stars whose size
(weighted moments with the detector's weight) is more than ``clip_sigma`` robust sigmas from the
median are left out (blends, galaxies, residual cosmic rays).

**Arcsec** use the image's own WCS: the local pixel scale (square root of the pixel's area on the
sky, from the forward transform) at the stars, averaged per cell; without a WCS the arcsec metric is
NaN and the status says why. **Per filter**, ``psf_fwhm_ratio`` divides the FWHM by the expected
FWHM of the image's optical element (``expected_fwhm_pixels``), so one set of limits serves every
filter.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...measure.blockstats import ScaleValues
from ...measure.star_cells import _N_CELLS, counts_at_scales, nan_at_scales, scale_cells, sparse_superpixels
from ...measure.stars import DO_NOT_USE, STAMP_CHUNK, Stars, detect_stars, masked_note
from ...records import SUPERPIXEL_NOTE, Metric
from ..base import MonitorResult
from .options import METRICS, PsfShapeOptions

BORDER = 4  # reference pixels around the science array in the frame
QMAX = 4.0  # the profile is fitted where q = d^T M^-1 d <= QMAX (M: adaptive covariance)
PROFILE_DEGREE = 3  # cubic in q
ADAPTIVE_ITERATIONS = 60
STAR_ITERATIONS = 3  # Gauss-Newton steps of one star fit
ROUNDS = 3  # rounds of (star fits, stack's profile)
CONVERGED = 1e-3
FIT_MIN_FWHM = 1.5  # pixels: stacks at least this wide refine the centres by fitting the stars
SCALES = ("detector", "amplifier", "superpixel")


def gather_stamps(
    data: np.ndarray, dq: np.ndarray, stars: Stars, chosen: np.ndarray, radius: int
) -> tuple[np.ndarray, np.ndarray]:
    """Background-subtracted stamps ``(n, s, s)`` around the chosen stars' peaks (0 where unusable) and usable mask."""
    offsets = np.arange(-radius, radius + 1)
    stamps, usable = [], []
    for i in range(0, chosen.size, STAMP_CHUNK):  # bounded memory of the fancy indexing
        part = chosen[i : i + STAMP_CHUNK]
        rows = stars.peak_y[part][:, None, None] + offsets[None, :, None]
        columns = stars.peak_x[part][:, None, None] + offsets[None, None, :]
        values = data[rows, columns].astype(np.float64) - stars.background[part][:, None, None]
        ok = np.isfinite(values) & ((dq[rows, columns] & DO_NOT_USE) == 0)
        stamps.append(np.where(ok, values, 0.0))
        usable.append(ok)
    side = 2 * radius + 1
    if not stamps:
        return np.empty((0, side, side)), np.empty((0, side, side), dtype=bool)
    return np.concatenate(stamps), np.concatenate(usable)


def equalized_phases(c: np.ndarray) -> np.ndarray:
    """Centres whose sub-pixel phases are made uniform (the empirical CDF of the phases, per axis).

    A centroid of an undersampled star is pulled towards the centre of its pixel (pixel locking: an
    S-shaped error against the true phase, the same for every star of one PSF). True phases of many
    stars are uniform over the pixel, so the monotone map that makes the measured ones uniform undoes
    the S-curve (to ~0.03 pixel with a few hundred stars).
    """
    base = np.round(c)
    phase = c - base
    if phase.size < 2:
        return c
    order = np.argsort(phase, kind="stable")
    uniform = np.empty_like(phase)
    uniform[order] = (np.arange(phase.size) + 0.5) / phase.size - 0.5
    return base + uniform


def _quadratic(dx: np.ndarray, dy: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``q = d^T M^-1 d`` for ``M = [[a, b], [b, c]]`` broadcast per star."""
    det = a * c - b * b
    return (c * dx * dx - 2.0 * b * dx * dy + a * dy * dy) / det


def adaptive_moments(
    stamps: np.ndarray,
    usable: np.ndarray,
    inverse: np.ndarray,
    dx: np.ndarray,
    dy: np.ndarray,
    cell: np.ndarray,
    n_cells: int,
    start: float,
) -> tuple[np.ndarray, ...]:
    """Adaptive second moments of the stacked stars of each cell: ``(Mxx, Mxy, Myy, x0, y0)`` per cell.

    The stack is of ``stamps * inverse`` (``inverse``: per star, one over its amplitude, 0 to leave
    it out) on the ``usable`` pixels, built :data:`STAMP_CHUNK` stars at a time (bounded memory);
    ``dx, dy`` are each pixel's offset from its star's centre (broadcastable, e.g. ``(n, 1, s)`` and
    ``(n, s, 1)``), ``cell`` the cell of each star. The elliptical Gaussian weight of covariance
    ``M`` centred on ``(x0, y0)`` is iterated until the weighted covariance is ``M / 2`` and the
    weighted centroid ``(x0, y0)`` (HSM's adaptive moments). NaN for a cell without stars or that
    does not converge to a positive-definite ``M``.
    """
    a, b, c = np.full(n_cells, start), np.zeros(n_cells), np.full(n_cells, start)
    x0, y0 = np.zeros(n_cells), np.zeros(n_cells)
    axes = (1, 2)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for _ in range(ADAPTIVE_ITERATIONS):
            totals = np.zeros((6, n_cells))
            for lo in range(0, cell.size, STAMP_CHUNK):  # bounded memory in a crowded field
                part, here = slice(lo, lo + STAMP_CHUNK), cell[lo : lo + STAMP_CHUNK]
                ex, ey = dx[part] - x0[here][:, None, None], dy[part] - y0[here][:, None, None]
                q = _quadratic(ex, ey, *(m[here][:, None, None] for m in (a, b, c)))
                w = np.exp(-0.5 * q)
                w *= np.where(usable[part], stamps[part], 0.0)
                sums = [w.sum(axis=axes), (w * ex).sum(axis=axes), (w * ey).sum(axis=axes)]
                sums += [(w * ex * ex).sum(axis=axes), (w * ex * ey).sum(axis=axes), (w * ey * ey).sum(axis=axes)]
                scale = inverse[part]  # per star: applied to its sums rather than its pixels
                for k, total in enumerate(sums):
                    totals[k] += np.bincount(here, weights=total * scale, minlength=n_cells)
            s0, sx, sy, sxx, sxy, syy = totals
            mx, my = sx / s0, sy / s0
            new_a, new_b, new_c = 2.0 * (sxx / s0 - mx * mx), 2.0 * (sxy / s0 - mx * my), 2.0 * (syy / s0 - my * my)
            change = np.abs(new_a - a) + np.abs(new_b - b) + np.abs(new_c - c) + np.abs(mx) + np.abs(my)
            a, b, c, x0, y0 = new_a, new_b, new_c, x0 + mx, y0 + my
            bad = ~((a > 0) & (c > 0) & (a * c - b * b > 0) & np.isfinite(x0) & np.isfinite(y0))
            a, c = np.where(bad, start, a), np.where(bad, start, c)  # restart a lost cell; reported NaN below
            b, x0, y0 = np.where(bad, 0.0, b), np.where(bad, 0.0, x0), np.where(bad, 0.0, y0)
            if np.all(bad | (change < 1e-6)):
                break
    bad |= change > CONVERGED
    return tuple(np.where(bad, np.nan, m) for m in (a, b, c, x0, y0))


def _profile_sums(
    values: np.ndarray, usable: np.ndarray, q: np.ndarray, cell: np.ndarray, n_cells: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normal equations ``(n_cells, k, k)``, right-hand sides ``(n_cells, k)`` and pixel counts of the cubic fits."""
    k = PROFILE_DEGREE + 1
    inside = usable & (q <= QMAX)
    qs, vs = q[inside], values[inside]
    index = np.broadcast_to(cell[:, None, None], q.shape)[inside]
    powers = qs[:, None] ** np.arange(k)[None, :]
    normal = np.empty((n_cells, k, k))
    rhs = np.empty((n_cells, k))
    for i in range(k):
        rhs[:, i] = np.bincount(index, weights=powers[:, i] * vs, minlength=n_cells)
        for j in range(i, k):
            normal[:, i, j] = normal[:, j, i] = np.bincount(
                index, weights=powers[:, i] * powers[:, j], minlength=n_cells
            )
    return normal, rhs, np.bincount(index, minlength=n_cells)


def _profile_solve(normal: np.ndarray, rhs: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k = PROFILE_DEGREE + 1
    ok = count >= 4 * k
    coefficients = np.full((count.size, k), np.nan)
    if ok.any():
        try:
            coefficients[ok] = np.linalg.solve(normal[ok], rhs[ok][..., None])[..., 0]
        except np.linalg.LinAlgError:  # a degenerate cell: solve them one by one
            for i in np.flatnonzero(ok):
                coefficients[i] = np.linalg.lstsq(normal[i], rhs[i], rcond=None)[0]
    return coefficients, count


def profile_fit(
    values: np.ndarray, usable: np.ndarray, q: np.ndarray, cell: np.ndarray, n_cells: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cubic ``f(q)`` fitted per cell to the stacked pixel values with ``q <= QMAX``: coefficients ``(n_cells, 4)``.

    Also returns the number of pixels of each fit. Cells with too few pixels get NaN.
    """
    return _profile_solve(*_profile_sums(values, usable, q, cell, n_cells))


def stacked_profile(
    stamps: np.ndarray,
    usable: np.ndarray,
    inverse: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    moments: tuple[float, float, float],
) -> np.ndarray:
    """:func:`profile_fit` of all the stars stacked (one cell), :data:`STAMP_CHUNK` stars at a time: the cubic.

    ``stamps * inverse`` (per star, one over its amplitude; 0 leaves it out) at offsets from the centres
    ``cx, cy``, in the coordinate ``q`` of ``moments``; the normal equations are summed over the chunks.
    """
    n, s, _ = stamps.shape
    grid = np.arange(s, dtype=np.float64) - s // 2
    k = PROFILE_DEGREE + 1
    normal, rhs, count = np.zeros((1, k, k)), np.zeros((1, k)), np.zeros(1, dtype=np.int64)
    for lo in range(0, n, STAMP_CHUNK):
        p = slice(lo, lo + STAMP_CHUNK)
        dx, dy = grid[None, None, :] - cx[p, None, None], grid[None, :, None] - cy[p, None, None]
        use = usable[p] & (inverse[p] != 0)[:, None, None]
        values = stamps[p] * inverse[p][:, None, None]
        sums = _profile_sums(values, use, _quadratic(dx, dy, *moments), np.zeros(values.shape[0], np.int64), 1)
        normal, rhs, count = normal + sums[0], rhs + sums[1], count + sums[2]
    return _profile_solve(normal, rhs, count)[0][0]


def half_maximum(coefficients: np.ndarray) -> np.ndarray:
    """Smallest ``q`` where the cubic ``f(q)`` falls to half of ``f(0)``, per row (NaN if not in ``[0, QMAX]``)."""
    grid = np.linspace(0.0, QMAX, 801)
    f = coefficients @ (grid[None, :] ** np.arange(coefficients.shape[1])[:, None])
    with np.errstate(invalid="ignore"):
        below = f <= 0.5 * f[:, :1]
    first = np.argmax(below, axis=1)
    found = below.any(axis=1) & (first > 0) & (f[:, 0] > 0)
    i = np.clip(first, 1, grid.size - 1)
    rows = np.arange(f.shape[0])
    f0, f1 = f[rows, i - 1], f[rows, i]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (f0 - 0.5 * f[:, 0]) / (f0 - f1)
        q_half = grid[i - 1] + t * (grid[i] - grid[i - 1])
    return np.where(found, q_half, np.nan)


def fit_stars(
    stamps: np.ndarray,
    usable: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    amplitude: np.ndarray,
    moments: tuple[float, float, float],
    coefficients: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Amplitude and centre of each star fitted with the empirical PSF ``A f(q(d - c))`` on its core (``q <= QMAX``)."""
    s = stamps.shape[1]
    grid = np.arange(s, dtype=np.float64) - s // 2
    a, b, c = moments
    det = a * c - b * b
    pxx, pxy, pyy = c / det, -b / det, a / det  # M^-1
    powers = np.arange(coefficients.size)
    derivative = coefficients[1:] * powers[1:]
    amplitude, cx, cy = amplitude.copy(), cx.copy(), cy.copy()
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for _ in range(STAR_ITERATIONS):
            dx, dy = grid[None, None, :] - cx[:, None, None], grid[None, :, None] - cy[:, None, None]
            q = pxx * dx * dx + 2.0 * pxy * dx * dy + pyy * dy * dy
            inside = usable & (q <= QMAX)
            f = np.polynomial.polynomial.polyval(q, coefficients)
            df = np.polynomial.polynomial.polyval(q, derivative)
            # d model / d(A, cx, cy); q depends on the centre through d = pixel - centre
            jac = np.stack(
                [
                    f,
                    -2.0 * amplitude[:, None, None] * df * (pxx * dx + pxy * dy),
                    -2.0 * amplitude[:, None, None] * df * (pxy * dx + pyy * dy),
                ],
                axis=-1,
            )
            jac = np.where(inside[..., None], jac, 0.0)
            residual = np.where(inside, stamps - amplitude[:, None, None] * f, 0.0)
            normal = np.einsum("nyxi,nyxj->nij", jac, jac)
            rhs = np.einsum("nyxi,nyx->ni", jac, residual)
            normal += np.eye(3)[None] * 1e-12 * np.trace(normal, axis1=1, axis2=2)[:, None, None]
            good = np.isfinite(normal).all(axis=(1, 2)) & (np.abs(np.linalg.det(normal)) > 0)
            step = np.zeros((cx.size, 3))
            if good.any():
                step[good] = np.linalg.solve(normal[good], rhs[good][..., None])[..., 0]
            amplitude = amplitude + step[:, 0]
            cx, cy = cx + np.clip(step[:, 1], -0.5, 0.5), cy + np.clip(step[:, 2], -0.5, 0.5)
    return amplitude, cx, cy


def empirical_psf(
    stamps: np.ndarray, usable: np.ndarray, cx: np.ndarray, cy: np.ndarray, first_fwhm: float
) -> dict[str, Any]:
    """Centres and amplitudes of the stars for the stack (the module's step 1).

    Centres start from the 3x3 centroids with their phases equalised (:func:`equalized_phases`). A
    stack whose FWHM is at least :data:`FIT_MIN_FWHM` is sampled well enough for a fit: ``ROUNDS``
    rounds of fitting each star with the stack's profile (:func:`fit_stars`) then refine them.
    Below, the fit's centres lock onto the pixel grid again (ellipticity 0.05 off in F087) and the
    equalised centroids are kept. Returns ``cx, cy`` (relative to the stamp centres, on the stack's
    adaptive centroid), ``amplitude``, the detector's adaptive ``moments`` and ``ok`` (fit succeeded).
    """
    n, s, _ = stamps.shape
    grid = np.arange(s, dtype=np.float64) - s // 2
    start = (first_fwhm / 2.3548) ** 2 + 1.0 / 12.0  # the pixel's variance added
    cx, cy = equalized_phases(cx), equalized_phases(cy)
    box = (slice(None), slice(s // 2 - 2, s // 2 + 3), slice(s // 2 - 2, s // 2 + 3))
    amplitude = (stamps[box] * usable[box]).sum(axis=(1, 2))  # stamps are 0 where unusable
    ok = np.isfinite(amplitude) & (amplitude > 0)
    one = np.zeros(n, dtype=np.int64)
    problem = None if ok.any() else f"none of the {n} stars has a positive flux in its 5x5 box"

    def inverse() -> np.ndarray:
        return np.where(ok, 1.0 / np.where(ok, amplitude, 1.0), 0.0)

    def stacked() -> tuple[float, ...]:
        dx, dy = grid[None, None, :] - cx[:, None, None], grid[None, :, None] - cy[:, None, None]
        a, b, c, x0, y0 = (float(m[0]) for m in adaptive_moments(stamps, usable, inverse(), dx, dy, one, 1, start))
        return a, b, c, x0, y0

    a, b, c, x0, y0 = stacked()
    if np.isfinite(a):
        moments = (a, b, c)
        coefficients = stacked_profile(stamps, usable, inverse(), cx + x0, cy + y0, moments)
        fwhm = 2.0 * np.sqrt(half_maximum(coefficients[None, :])[0]) * (a * c - b * b) ** 0.25
        missing = ~usable[box]
        if np.all(np.isfinite(coefficients)) and missing.any():
            # a 5x5 flux missing unusable pixels reads low: scale it by the share of the stack's PSF they hold
            kept = np.concatenate(
                [
                    _box_share(missing[p], cx[p] + x0, cy[p] + y0, moments, coefficients)
                    for p in (slice(lo, lo + STAMP_CHUNK) for lo in range(0, n, STAMP_CHUNK))
                ]
            )
            amplitude = np.where(kept > 0.5, amplitude / np.where(kept > 0, kept, 1.0), amplitude)
            ok &= kept > 0.5
            a, b, c, x0, y0 = stacked()
        if np.isfinite(a) and np.isfinite(fwhm) and fwhm >= FIT_MIN_FWHM:
            moments = (a, b, c)
            cx, cy = cx + x0, cy + y0
            for _ in range(ROUNDS):
                fitted = [
                    fit_stars(stamps[p], usable[p], cx[p], cy[p], amplitude[p], moments, coefficients)
                    for p in (slice(lo, lo + STAMP_CHUNK) for lo in range(0, n, STAMP_CHUNK))
                ]
                amplitude, cx, cy = (np.concatenate(column) for column in zip(*fitted, strict=True))
                ok &= np.isfinite(amplitude) & (amplitude > 0) & (np.abs(cx) <= 1.5) & (np.abs(cy) <= 1.5)
                coefficients = stacked_profile(stamps, usable, inverse(), cx, cy, moments)
                if not np.all(np.isfinite(coefficients)):
                    break
            a, b, c, x0, y0 = stacked()
    if np.isfinite(a):
        cx, cy, moments = cx + x0, cy + y0, (a, b, c)
    else:
        moments = (np.nan, np.nan, np.nan)
        problem = problem or (
            f"the adaptive second moments of the {int(ok.sum())} stars stacked did not converge to a "
            "positive-definite covariance"
        )
    return {"cx": cx, "cy": cy, "amplitude": amplitude, "moments": moments, "ok": ok, "problem": problem}


def _box_share(
    missing: np.ndarray, cx: np.ndarray, cy: np.ndarray, moments: tuple[float, float, float], coefficients: np.ndarray
) -> np.ndarray:
    """Per star: the share of the stack's PSF (at its centre) on the usable pixels of its 5x5 box."""
    grid = np.arange(-2.0, 3.0)
    dx, dy = grid[None, None, :] - cx[:, None, None], grid[None, :, None] - cy[:, None, None]
    q = _quadratic(dx, dy, *moments)
    model = np.clip(np.polynomial.polynomial.polyval(np.minimum(q, QMAX), coefficients), 0.0, None)
    model *= np.exp(-np.clip(q - QMAX, 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(missing, 0.0, model).sum(axis=(1, 2)) / model.sum(axis=(1, 2))


def detector_shape(
    stamps: np.ndarray, usable: np.ndarray, cx: np.ndarray, cy: np.ndarray, amplitude: np.ndarray, start: float
) -> tuple[tuple[float, float, float], float, np.ndarray]:
    """Adaptive moments ``(Mxx, Mxy, Myy)`` of all the stars stacked, ``q_half`` of their profile, and its cubic.

    Centres are those of :func:`empirical_psf` (on the adaptive centroid); NaN when the moments fail.
    """
    n, s, _ = stamps.shape
    grid = np.arange(s, dtype=np.float64) - s // 2
    dx, dy = grid[None, None, :] - cx[:, None, None], grid[None, :, None] - cy[:, None, None]  # (n, 1, s), (n, s, 1)
    inverse = 1.0 / amplitude
    one = np.zeros(n, dtype=np.int64)
    a, b, c, x0, y0 = (float(m[0]) for m in adaptive_moments(stamps, usable, inverse, dx, dy, one, 1, start))
    if not np.isfinite(a):
        return (np.nan, np.nan, np.nan), np.nan, np.full(PROFILE_DEGREE + 1, np.nan)
    coefficients = stacked_profile(stamps, usable, inverse, cx + x0, cy + y0, (a, b, c))
    return (a, b, c), float(half_maximum(coefficients[None, :])[0]), coefficients


def phase_residual_moments(
    stamps: np.ndarray,
    usable: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    moments: tuple[float, float, float],
    coefficients: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per star: its second moments weighted by the detector's Gaussian, minus those of the detector's PSF at its phase.

    One undersampled star's moments depend on where its centre falls in the pixel; the detector's
    empirical PSF (``f(q)``, zero-padded smoothly beyond ``QMAX``) drawn at the same centre, on the
    same usable pixels, has the same dependence, so the difference is what differs in the star's PSF
    (plus noise). ``M_star = M_detector + 4 (dQ - mean dQ)``: the response of Gaussian-weighted
    moments to a change of the PSF's covariance, at the weight's own size, is 1/4.
    """
    s = stamps.shape[1]
    grid = np.arange(s, dtype=np.float64) - s // 2
    dx, dy = grid[None, None, :] - cx[:, None, None], grid[None, :, None] - cy[:, None, None]
    q = _quadratic(dx, dy, *moments)
    weight = np.exp(-0.5 * q) * usable
    core = np.polynomial.polynomial.polyval(np.minimum(q, QMAX), coefficients)
    model = np.clip(core, 0.0, None) * np.exp(-np.clip(q - QMAX, 0.0, None))

    def weighted(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        w = weight * v
        with np.errstate(invalid="ignore", divide="ignore"):
            total = w.sum(axis=(1, 2))
            return tuple((w * u).sum(axis=(1, 2)) / total for u in (dx * dx, dx * dy, dy * dy))

    data, drawn = weighted(stamps), weighted(np.broadcast_to(model, stamps.shape))
    return tuple(d - m for d, m in zip(data, drawn, strict=True))


def shape_from(
    moments: tuple[float, float, float], residual: tuple[np.ndarray, np.ndarray, np.ndarray], q_half: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """FWHM, ellipticity, e1, e2 of ``M = M_detector + 4 dQ`` (``dQ``: ``residual``; the detector's profile scaled)."""
    a, b, c = (m + 4.0 * d for m, d in zip(moments, residual, strict=True))
    with np.errstate(invalid="ignore"):
        det = a * c - b * b
        positive = (a > 0) & (c > 0) & (det > 0)
        fwhm = np.where(positive, 2.0 * np.sqrt(q_half) * np.abs(det) ** 0.25, np.nan)
        e1, e2 = np.where(positive, (a - c) / (a + c), np.nan), np.where(positive, 2.0 * b / (a + c), np.nan)
    return fwhm, np.hypot(e1, e2), e1, e2


def star_sizes(
    stamps: np.ndarray, usable: np.ndarray, cx: np.ndarray, cy: np.ndarray, moments: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per star: trace, e1, e2 of ``2 x`` its moments weighted by the detector's adaptive Gaussian (a size index).

    One undersampled star's moments depend on its pixel phase: these serve to reject outliers and to
    draw the stars, not for the metrics.
    """
    s = stamps.shape[1]
    grid = np.arange(s, dtype=np.float64) - s // 2
    out = []
    for p in (slice(lo, lo + STAMP_CHUNK) for lo in range(0, stamps.shape[0], STAMP_CHUNK)):  # bounded memory
        dx, dy = grid[None, None, :] - cx[p, None, None], grid[None, :, None] - cy[p, None, None]
        w = np.exp(-0.5 * _quadratic(dx, dy, *moments)) * np.where(usable[p], stamps[p], 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            total = w.sum(axis=(1, 2))
            mxx = 2.0 * (w * dx * dx).sum(axis=(1, 2)) / total
            mxy = 2.0 * (w * dx * dy).sum(axis=(1, 2)) / total
            myy = 2.0 * (w * dy * dy).sum(axis=(1, 2)) / total
            out.append((mxx + myy, (mxx - myy) / (mxx + myy), 2.0 * mxy / (mxx + myy)))
    if not out:
        return np.empty(0), np.empty(0), np.empty(0)
    return tuple(np.concatenate(column) for column in zip(*out, strict=True))


def expected_fwhm(options: PsfShapeOptions, optical_element: str | None) -> float | None:
    """The expected FWHM (pixels) of the optical element, or None when it is unknown or not in the table."""
    if not optical_element:
        return None
    return options.expected_fwhm_pixels.get(str(optical_element).upper())


def psf_metrics(
    data: np.ndarray, dq: np.ndarray, options: PsfShapeOptions, context: dict[str, Any] | None = None
) -> MonitorResult:
    """All PSF shape metrics of one frame (science array inside a NaN border), DN/s, with its DQ flags.

    ``context`` may hold the file's ``wcs`` (for arcsec) and ``optical_element`` (for the expected FWHM).
    """
    context = context or {}
    side = data.shape[0]
    stars = detect_stars(data, dq, options)
    values = {spec.name: nan_at_scales() for spec in METRICS}
    notes = {"detected": stars.sources_note(options.detection_threshold)}
    extras: dict[str, np.ndarray] = {"frame_side": np.array([side])}
    problems: list[str] = []

    def done(status: str | None) -> MonitorResult:
        # "status": the PSF could not be measured (the result is "not measured"); "not computed": the PSF was
        # measured, one derived metric (arcsec, ratio) could not be
        if status:
            notes["status"] = status
        if problems:
            notes["not computed"] = "; ".join(problems)
        return MonitorResult([Metric(spec, values[spec.name]) for spec in METRICS], notes, extras)

    empty = np.empty(0)
    values["n_psf_stars"] = counts_at_scales(scale_cells(empty, empty, side))
    if stars.problem:
        return done(stars.problem)
    optical_element = context.get("optical_element")
    expected = expected_fwhm(options, optical_element)
    first = expected or options.psf_fwhm_pixels
    if expected is None:
        problems.append(
            f"psf_fwhm_ratio not computed: optical element {optical_element!r} has no expected FWHM"
            if optical_element
            else "psf_fwhm_ratio not computed: the optical element is unknown (meta.instrument.optical_element)"
        )

    chosen = stars.usable(options.min_snr)
    stamps, usable = gather_stamps(data, dq, stars, chosen, options.stamp_radius)
    x0 = stars.x[chosen] - stars.peak_x[chosen]
    y0 = stars.y[chosen] - stars.peak_y[chosen]
    if chosen.size >= 3:
        psf = empirical_psf(stamps, usable, x0, y0, first)
        good = psf["ok"].copy()
    else:
        psf = {"cx": x0, "cy": y0, "amplitude": np.ones(chosen.size), "moments": (np.nan,) * 3}
        good = np.zeros(chosen.size, dtype=bool)
    if chosen.size >= 3 and psf["problem"]:
        return done(f"the stars' stacked PSF could not be measured: {psf['problem']}")
    trace, _, _ = star_sizes(stamps, usable, psf["cx"], psf["cy"], psf["moments"])
    good &= np.isfinite(trace)
    if good.any():  # outliers in size: blends, galaxies, residual cosmic rays
        median = np.median(trace[good])
        sigma = max(1.4826 * float(np.median(np.abs(trace[good] - median))), 0.02 * abs(float(median)))
        good[good] = np.abs(trace[good] - median) <= options.clip_sigma * sigma
    n_rejected = int(psf["ok"].sum() - good.sum()) if chosen.size >= 3 else 0
    x = stars.peak_x[chosen][good] + psf["cx"][good]
    y = stars.peak_y[chosen][good] + psf["cy"][good]
    groups = scale_cells(x, y, side)
    values["n_psf_stars"] = counts_at_scales(groups)
    if sparse := sparse_superpixels(groups, options.min_stars_per_cell, "PSF stars"):
        notes[SUPERPIXEL_NOTE] = sparse
    notes["stars"] = (
        f"{x.size} measured of {chosen.size} isolated, unsaturated with S/N >= {options.min_snr:g} "
        f"({n_rejected} rejected by size or fit)"
        + masked_note(stars, chosen, options.min_snr, options.max_masked_pixels)
    )
    notes["model"] = (
        "empirical PSF of each cell's stars stacked at their fitted centres: adaptive second moments (HSM) for the "
        "ellipticity, the area above half maximum of its profile for the FWHM; "
        f"optical element {optical_element or '?'}" + (f", expected FWHM {expected:g} px" if expected else "")
    )
    if x.size < options.min_stars:
        return done(f"too few stars for the PSF: {x.size} < {options.min_stars}")

    stamps, usable = stamps[good], usable[good]
    cx, cy, amplitude = psf["cx"][good], psf["cy"][good], psf["amplitude"][good]
    start = float(np.mean(psf["moments"][0::2]))
    moments, q_half, coefficients = detector_shape(stamps, usable, cx, cy, amplitude, start)
    if not (np.isfinite(q_half) and np.all(np.isfinite(moments))):
        return done("the stars' stacked PSF could not be measured (adaptive moments or profile failed)")
    parts = [slice(lo, lo + STAMP_CHUNK) for lo in range(0, cx.size, STAMP_CHUNK)]
    pieces = [phase_residual_moments(stamps[p], usable[p], cx[p], cy[p], moments, coefficients) for p in parts]
    residual = tuple(np.concatenate(column) for column in zip(*pieces, strict=True))
    residual = tuple(np.where(np.isfinite(r), r, np.nan) for r in residual)
    finite = np.all([np.isfinite(r) for r in residual], axis=0)
    mean_residual = [float(np.mean(r[finite])) for r in residual]
    fwhm, ellipticity = {}, {}
    for scale in SCALES:
        n_cells = _N_CELLS[scale]
        index = groups[scale][finite]
        count = np.bincount(index, minlength=n_cells)
        with np.errstate(invalid="ignore", divide="ignore"):
            cell_residual = tuple(
                np.bincount(index, weights=r[finite], minlength=n_cells) / count - m
                for r, m in zip(residual, mean_residual, strict=True)
            )
        if scale == "detector":
            cell_residual = (np.zeros(1),) * 3  # the detector's own adaptive moments
        fwhm[scale], ellipticity[scale], _, _ = shape_from(moments, cell_residual, q_half)
        least = options.min_stars if scale == "detector" else options.min_stars_per_cell
        fwhm[scale] = np.where(count >= least, fwhm[scale], np.nan)
        ellipticity[scale] = np.where(count >= least, ellipticity[scale], np.nan)
    values["psf_fwhm"] = _scale_values(fwhm)
    values["psf_ellipticity"] = _scale_values(ellipticity)
    if expected:
        values["psf_fwhm_ratio"] = _scale_values({s: fwhm[s] / expected for s in SCALES})

    scale_arcsec, wcs_problem = _pixel_scales(context, x, y, groups, options)
    if wcs_problem:
        problems.append(wcs_problem)
    else:
        values["psf_fwhm_arcsec"] = _scale_values({s: fwhm[s] * scale_arcsec[s] for s in SCALES})
        notes["pixel_scale"] = f"{scale_arcsec['detector'][0]:.4f} arcsec/pixel (mean at the stars, from the WCS)"

    star_fwhm, _, star_e1, star_e2 = shape_from(
        moments, tuple(r - m for r, m in zip(residual, mean_residual, strict=True)), q_half
    )
    extras.update(star_x=x, star_y=y, fwhm=star_fwhm, e1=star_e1, e2=star_e2)
    return done(None)


def _pixel_scales(
    context: dict[str, Any], x: np.ndarray, y: np.ndarray, groups: dict[str, np.ndarray], options: PsfShapeOptions
) -> tuple[dict[str, np.ndarray], str | None]:
    """Mean local pixel scale (arcsec/pixel) of the stars per cell from the WCS; or why there is none."""
    wcs = context.get("wcs")
    if wcs is None:
        why = context.get("wcs_problem") or "no WCS in the file (meta.wcs is missing or null)"
        return {}, f"psf_fwhm_arcsec not computed: {why}"
    from ...measure.wcs_local import local_pixel_scale

    try:
        scale = local_pixel_scale(wcs, x - BORDER, y - BORDER)  # the WCS is of the science array
    except Exception as exc:  # a WCS that cannot be evaluated is this metric's problem only
        return {}, f"psf_fwhm_arcsec not computed: the WCS cannot be evaluated ({type(exc).__name__}: {exc})"
    finite = np.isfinite(scale)
    if not finite.any():
        return {}, "psf_fwhm_arcsec not computed: the WCS gives no sky position at the stars"
    out = {}
    for s in SCALES:
        n_cells = _N_CELLS[s]
        index = groups[s][finite]
        total = np.bincount(index, weights=scale[finite], minlength=n_cells)
        count = np.bincount(index, minlength=n_cells)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s] = np.where(count > 0, total / count, np.nan)
    return out, None


def _scale_values(by_scale: dict[str, np.ndarray]) -> ScaleValues:
    return ScaleValues(float(by_scale["detector"][0]), by_scale["amplifier"], by_scale["superpixel"])
