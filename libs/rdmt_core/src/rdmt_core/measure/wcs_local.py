"""The local geometry of a WCS from its forward transform alone (pixel to sky).

A pipeline WCS (gwcs with a polynomial distortion and a bounding box) often has no analytic
inverse: gwcs then builds a numerical one, which is slow and can fail. What the monitors need from
sky to pixel is local: a small sky offset near a known pixel, or the pixel scale at a point. Both
come from the Jacobian of pixel to sky, by central differences, which needs only the forward
transform.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def local_jacobian(wcs: Any, x: np.ndarray, y: np.ndarray, step: float = 0.5) -> np.ndarray:
    """Jacobian of pixel -> sky at pixels ``x, y`` (0-based, the WCS's own): shape (n, 2, 2), arcsec per pixel.

    Row 0 is RA * cos(Dec), row 1 Dec; column 0 is d/dx, column 1 d/dy. NaN where the WCS gives
    no sky position (outside its bounding box).
    """
    x, y = np.atleast_1d(np.asarray(x, np.float64)), np.atleast_1d(np.asarray(y, np.float64))
    px = np.concatenate([x + step, x - step, x, x])
    py = np.concatenate([y, y, y + step, y - step])
    ra, dec = (np.asarray(v, np.float64) for v in wcs.pixel_to_world_values(px, py))
    ra, dec = ra.reshape(4, -1), dec.reshape(4, -1)
    cos_dec = np.cos(np.deg2rad(dec.mean(axis=0)))
    d_ra = (ra[[0, 2]] - ra[[1, 3]] + 180.0) % 360.0 - 180.0  # across RA = 0 too
    d_dec = dec[[0, 2]] - dec[[1, 3]]
    jacobian = np.empty((x.size, 2, 2))
    jacobian[:, 0, :] = (d_ra * cos_dec).T * 3600.0 / (2 * step)
    jacobian[:, 1, :] = d_dec.T * 3600.0 / (2 * step)
    return jacobian


def local_pixel_scale(wcs: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Arcsec per pixel at pixels ``x, y``: the square root of the pixel's area on the sky."""
    return np.sqrt(np.abs(np.linalg.det(local_jacobian(wcs, x, y))))


def sky_offsets_to_pixels(
    wcs: Any, x: np.ndarray, y: np.ndarray, d_ra: np.ndarray, d_dec: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets (dx, dy) of small sky offsets (arcsec, RA * cos(Dec) and Dec) made at pixels ``x, y``."""
    jacobian = local_jacobian(wcs, x, y)
    offsets = np.stack([np.asarray(d_ra, np.float64), np.asarray(d_dec, np.float64)], axis=-1)[..., None]
    finite = np.isfinite(jacobian).all(axis=(1, 2))
    pixels = np.full(offsets.shape, np.nan)
    if finite.any():
        pixels[finite] = np.linalg.solve(jacobian[finite], offsets[finite])
    return pixels[:, 0, 0], pixels[:, 1, 0]
