"""Realistic WFI point-spread functions for the synthetic Level-2 images, from ``galsim.roman``.

galsim's Roman module models the telescope's pupil (struts, obscuration) and each detector's
aberrations from the instrument team's data, which ship inside the galsim wheel: its PSFs have the
Airy rings, the six diffraction spikes and the wide wings of real Roman images (a few per cent of
a star's light beyond 32 pixels), and they change with detector and filter.

A star is drawn in two parts so that a full 4088x4088 image takes seconds:

* the **core** (within :data:`CORE_RADIUS` pixels of the star) from a table of pixel-integrated
  stamps at 1/:data:`PHASES` pixel steps of sub-pixel position, interpolated linearly between
  the four nearest steps: the light's centroid is exactly the star's position, and the widening
  (a 1/16-pixel blend) changes the FWHM by under 0.1 %;
* the **halo** (out to :data:`HALO_RADIUS` pixels) by one FFT convolution of the image of point
  sources with the pixel-integrated PSF whose core is cut out: the halo is smooth, so placing each
  star at its nearest pixel there is exact enough.

The PSF is monochromatic at the filter's effective wavelength, evaluated at the detector's centre.
:func:`psf_truth` gives what a monitor should measure: the FWHM and ellipticity of the optical PSF
convolved with the pixel, on a fine grid.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

CORE_RADIUS = 12  # pixels: the core stamp is 25x25
HALO_RADIUS = 128  # pixels: the halo kernel is 257x257
PHASES = 16  # sub-pixel steps per pixel in the core table
PIXEL_SCALE = 0.11  # arcsec per pixel (galsim.roman.pixel_scale)

# WFI optical elements and galsim.roman's bandpass names
GALSIM_BANDS = {
    "F062": "R062",
    "F087": "Z087",
    "F106": "Y106",
    "F129": "J129",
    "F146": "W146",
    "F158": "H158",
    "F184": "F184",
    "F213": "K213",
}


@dataclass(frozen=True)
class PsfShape:
    """What a perfect measurement of one PSF gives (optical PSF convolved with the pixel)."""

    fwhm: float  # pixels: 2 sqrt(A / pi), A the area above half the peak
    ellipticity: float  # (a^2 - b^2) / (a^2 + b^2) of the adaptive (Gaussian-weighted) second moments
    optical_fwhm: float  # pixels: the same for the optical PSF alone


def _band(optical_element: str) -> str:
    try:
        return GALSIM_BANDS[optical_element.upper()]
    except KeyError:
        known = ", ".join(GALSIM_BANDS)
        raise ValueError(f"no galsim.roman PSF for optical element {optical_element!r} (known: {known})") from None


def _galsim_psf(detector: int, optical_element: str, fwhm_scale: float, ellipticity: float, angle_deg: float):
    import galsim
    import galsim.roman

    band = _band(optical_element)
    wavelength = galsim.roman.getBandpasses()[band].effective_wavelength
    psf = galsim.roman.getPSF(detector, band, wavelength=wavelength, pupil_bin=8)
    if fwhm_scale != 1.0:
        psf = psf.dilate(fwhm_scale)
    if ellipticity:
        psf = psf.shear(e=ellipticity, beta=angle_deg * galsim.degrees)
    return psf


@functools.lru_cache(maxsize=8)
def psf_tables(
    detector: int, optical_element: str, fwhm_scale: float = 1.0, ellipticity: float = 0.0, angle_deg: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Core stamps ``(PHASES + 1, PHASES + 1, 25, 25)`` indexed by (y, x) phase, and the halo kernel ``(257, 257)``.

    Core stamp ``[my, mx]`` is the pixel-integrated PSF of a star at sub-pixel position
    ``(mx / PHASES - 0.5, my / PHASES - 0.5)`` from the centre pixel (both ends included); the halo kernel is the
    pixel-integrated PSF of a star on a pixel centre with the core's 25x25 pixels set to zero.
    Both are fractions of the star's flux.
    """
    import galsim

    psf = _galsim_psf(detector, optical_element, fwhm_scale, ellipticity, angle_deg)
    c = CORE_RADIUS
    n_fine = (2 * c + 3) * PHASES + 1  # odd: galsim centres the profile on the middle fine pixel
    fine = (
        galsim.Convolve(psf, galsim.Pixel(PIXEL_SCALE))
        .drawImage(nx=n_fine, ny=n_fine, scale=PIXEL_SCALE / PHASES, method="no_pixel")
        .array.astype(np.float64)
        * PHASES**2  # flux per fine pixel -> pixel-integrated value at that point
    )
    np.clip(fine, 0.0, None, out=fine)  # galsim's Fourier drawing rings slightly below zero far out: not light
    centre = n_fine // 2
    k = np.arange(-c, c + 1)
    stamps = np.empty((PHASES + 1, PHASES + 1, 2 * c + 1, 2 * c + 1))
    for my in range(PHASES + 1):
        for mx in range(PHASES + 1):
            # a star at phase p = m / PHASES - 0.5 puts PSF(k - p) on pixel k,
            # the fine pixel centre + PHASES k - (m - PHASES / 2)
            rows = centre + PHASES * k - (my - PHASES // 2)
            cols = centre + PHASES * k - (mx - PHASES // 2)
            stamps[my, mx] = fine[np.ix_(rows, cols)]
    h = HALO_RADIUS
    halo = psf.drawImage(nx=2 * h + 1, ny=2 * h + 1, scale=PIXEL_SCALE).array.astype(np.float64)
    np.clip(halo, 0.0, None, out=halo)
    halo[h - c : h + c + 1, h - c : h + c + 1] = 0.0
    return stamps, halo


@functools.lru_cache(maxsize=32)
def psf_truth(
    detector: int, optical_element: str, fwhm_scale: float = 1.0, ellipticity: float = 0.0, angle_deg: float = 0.0
) -> PsfShape:
    """FWHM and ellipticity of the PSF that :func:`psf_tables` draws (pixel-convolved and optical)."""
    import galsim

    psf = _galsim_psf(detector, optical_element, fwhm_scale, ellipticity, angle_deg)
    oversample = 16
    n = 40 * oversample + 1
    scale = PIXEL_SCALE / oversample

    def measure(profile) -> tuple[float, float]:
        image = profile.drawImage(nx=n, ny=n, scale=scale, method="no_pixel")
        values = image.array
        area = np.count_nonzero(values >= 0.5 * values.max()) / oversample**2
        moments = galsim.hsm.FindAdaptiveMom(image)
        return 2.0 * np.sqrt(area / np.pi), float(moments.observed_shape.e)

    fwhm, e = measure(galsim.Convolve(psf, galsim.Pixel(PIXEL_SCALE)))
    optical_fwhm, _ = measure(psf)
    return PsfShape(fwhm, e, optical_fwhm)


def render_psf_stars(
    shape: tuple[int, int],
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    detector: int,
    optical_element: str,
    fwhm_scale: float = 1.0,
    ellipticity: float = 0.0,
    angle_deg: float = 0.0,
) -> np.ndarray:
    """Image (DN/s) of point sources at 0-based pixel positions ``x, y`` with the galsim.roman PSF.

    Stars up to :data:`HALO_RADIUS` pixels outside the image add their halo to it.
    """
    from scipy.signal import fftconvolve

    stamps, halo = psf_tables(detector, optical_element, fwhm_scale, ellipticity, angle_deg)
    c, h = CORE_RADIUS, HALO_RADIUS
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ix, iy = np.floor(x + 0.5).astype(np.int64), np.floor(y + 0.5).astype(np.int64)
    phase_x, phase_y = (x - ix + 0.5) * PHASES, (y - iy + 0.5) * PHASES  # in [0, PHASES)
    mx, my = np.minimum(phase_x.astype(np.int64), PHASES - 1), np.minimum(phase_y.astype(np.int64), PHASES - 1)
    wx, wy = phase_x - mx, phase_y - my
    flux = np.asarray(flux, np.float64)

    image = np.zeros(shape[0] * shape[1])
    offsets = np.arange(-c, c + 1)
    for start in range(0, ix.size, 1024):
        part = slice(start, start + 1024)
        a, b = my[part], mx[part]
        wx_, wy_ = wx[part, None, None], wy[part, None, None]
        stamp = (1 - wy_) * ((1 - wx_) * stamps[a, b] + wx_ * stamps[a, b + 1])
        stamp += wy_ * ((1 - wx_) * stamps[a + 1, b] + wx_ * stamps[a + 1, b + 1])
        values = flux[part, None, None] * stamp
        rows = np.broadcast_to(iy[part, None, None] + offsets[None, :, None], values.shape)
        cols = np.broadcast_to(ix[part, None, None] + offsets[None, None, :], values.shape)
        inside = (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
        image += np.bincount((rows * shape[1] + cols)[inside], weights=values[inside], minlength=image.size)
    image = image.reshape(shape)

    points = np.zeros((shape[0] + 2 * h, shape[1] + 2 * h))
    near = (iy >= -h) & (iy < shape[0] + h) & (ix >= -h) & (ix < shape[1] + h)
    np.add.at(points, (iy[near] + h, ix[near] + h), flux[near])
    if points.any():
        image += fftconvolve(points, halo, mode="same")[h : h + shape[0], h : h + shape[1]]
    return image
