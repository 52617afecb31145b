"""Matching measured star positions to a reference catalogue, and the shift and rotation between them.

Pure functions on astropy ``SkyCoord`` positions; offsets are measured minus
catalogue, in arcsec, along (RA*cos(Dec), Dec). :func:`match_offsets` matches
in two passes: the common offset voted for by every close pair
(:func:`median_offset`), then one-to-one nearest neighbours with that offset
removed (positions that are not finite match nothing). :func:`fit_offset_model`
fits a shift plus a rotation about the detector centre to the matched offsets,
rejecting outliers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

ARCSEC_PER_RADIAN = 180.0 * 3600.0 / np.pi


class MatchOptions(Protocol):
    """The options :func:`match_offsets` reads (the astrometry monitor's options have them)."""

    match_radius_arcsec: float
    search_radius_arcsec: float


def median_offset(
    measured: SkyCoord, catalog: SkyCoord, search_arcsec: float, bin_arcsec: float
) -> tuple[float, float]:
    """The common offset (arcsec, RA*cos(Dec) and Dec) of measured stars from the catalogue, by voting.

    Every pair closer than ``search_arcsec`` votes for its offset in a 2-D histogram of
    ``bin_arcsec`` bins; the densest 3x3 block of bins wins and the median offset of its
    pairs is returned (NaN when no pair is close). Chance pairs spread over the histogram,
    so a crowded field or an offset larger than the distance between stars is still found.
    """
    in_catalog, in_measured, _, _ = measured.search_around_sky(catalog, search_arcsec * u.arcsec)
    if in_catalog.size == 0:
        return float("nan"), float("nan")
    lon, lat = catalog[in_catalog].spherical_offsets_to(measured[in_measured])
    d_ra, d_dec = lon.arcsec, lat.arcsec
    n_bins = max(int(np.ceil(2 * search_arcsec / bin_arcsec)), 1)
    edges = np.linspace(-search_arcsec, search_arcsec, n_bins + 1)
    votes, _, _ = np.histogram2d(d_ra, d_dec, bins=(edges, edges))
    padded = np.pad(votes, 1)
    block = sum(padded[i : i + n_bins, j : j + n_bins] for i in range(3) for j in range(3))
    i, j = np.unravel_index(np.argmax(block), block.shape)
    low_ra, high_ra = edges[max(i - 1, 0)], edges[min(i + 2, n_bins)]
    low_dec, high_dec = edges[max(j - 1, 0)], edges[min(j + 2, n_bins)]
    inside = (d_ra >= low_ra) & (d_ra <= high_ra) & (d_dec >= low_dec) & (d_dec <= high_dec)
    return float(np.median(d_ra[inside])), float(np.median(d_dec[inside]))


def match_offsets(
    measured: SkyCoord, catalog: SkyCoord, options: MatchOptions
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index of the catalogue star matched to each measured star (-1: none) and the offsets (arcsec).

    Offsets are measured minus catalogue: (RA*cos(Dec), Dec). Two passes: the common offset
    within ``search_radius_arcsec`` (:func:`median_offset`), then one-to-one nearest matches
    (``match_to_catalog_sky``) within ``match_radius_arcsec`` of the positions corrected by it.
    Positions that are not finite (a WCS outside its bounding box gives NaN) match nothing:
    astropy's matching refuses them, so they are set aside first, on both sides.
    """
    n = len(measured)
    index = np.full(n, -1, dtype=np.int64)
    d_ra = np.full(n, np.nan)
    d_dec = np.full(n, np.nan)
    finite, in_catalog = _finite(measured), _finite(catalog)
    if not (finite.all() and in_catalog.all()):
        inner, inner_ra, inner_dec = match_offsets(measured[finite], catalog[in_catalog], options)
        matched = inner >= 0
        index[np.flatnonzero(finite)[matched]] = np.flatnonzero(in_catalog)[inner[matched]]
        d_ra[finite], d_dec[finite] = inner_ra, inner_dec
        return index, d_ra, d_dec
    if n == 0 or len(catalog) == 0:
        return index, d_ra, d_dec
    shift_ra, shift_dec = median_offset(
        measured, catalog, options.search_radius_arcsec, options.match_radius_arcsec / 2.0
    )
    if not np.isfinite(shift_ra):
        return index, d_ra, d_dec
    corrected = measured.spherical_offsets_by(-shift_ra * u.arcsec, -shift_dec * u.arcsec)
    nearest, separation, _ = corrected.match_to_catalog_sky(catalog)
    distance = separation.arcsec
    ok = distance < options.match_radius_arcsec
    # one measured star per catalogue star: the closest
    order = np.lexsort((distance, nearest))
    duplicate = np.zeros(n, dtype=bool)
    same = nearest[order][1:] == nearest[order][:-1]
    duplicate[order[1:][same]] = True
    ok &= ~duplicate
    if ok.any():
        lon, lat = catalog[nearest[ok]].spherical_offsets_to(measured[ok])
        index[ok] = nearest[ok]
        d_ra[ok], d_dec[ok] = lon.arcsec, lat.arcsec
    return index, d_ra, d_dec


def _finite(positions: SkyCoord) -> np.ndarray:
    """Which positions have a finite longitude and latitude."""
    return np.atleast_1d(np.isfinite(positions.spherical.lon.deg) & np.isfinite(positions.spherical.lat.deg))


@dataclass(frozen=True)
class OffsetModel:
    """A shift plus a small rotation of the offset field, fitted with outlier rejection."""

    shift_ra: float  # arcsec
    shift_dec: float  # arcsec
    rotation: float  # arcsec of angle, positive north through east
    keep: np.ndarray  # bool: the offsets the model was fitted to


def fit_offset_model(
    xi: np.ndarray, eta: np.ndarray, d_ra: np.ndarray, d_dec: np.ndarray, clip_sigma: float, iterations: int = 5
) -> OffsetModel:
    """Fit ``d_ra = t_ra + w * eta``, ``d_dec = t_dec - w * xi`` to the offsets, rejecting outliers.

    ``xi, eta`` are the catalogue positions relative to the detector centre (arcsec, east and
    north), so ``w`` is a rotation about the centre from north towards east (a star north of
    the centre moves east). Offsets whose residual from the model is beyond ``clip_sigma``
    robust sigmas (1.4826 MAD, at least 1 mas) in either axis are rejected; the first pass
    uses the median shift alone, so a blend's large offset cannot tilt the first fit.
    """
    n = xi.size
    design = np.zeros((2 * n, 3))
    design[:n, 0] = 1.0
    design[n:, 1] = 1.0
    design[:n, 2] = eta
    design[n:, 2] = -xi
    offsets = np.concatenate([d_ra, d_dec])
    solution = np.array([np.median(d_ra), np.median(d_dec), 0.0])
    keep = np.ones(n, dtype=bool)
    for iteration in range(iterations):
        residual = (offsets - design @ solution).reshape(2, n)
        inside = np.ones(n, dtype=bool)
        for axis in residual:
            centre = np.median(axis[keep])
            sigma = max(1.4826 * float(np.median(np.abs(axis[keep] - centre))), 1e-3)
            inside &= np.abs(axis - centre) <= clip_sigma * sigma
        if inside.sum() < 3 or (iteration > 0 and np.array_equal(inside, keep)):
            break
        keep = inside
        rows = np.concatenate([keep, keep])
        solution, *_ = np.linalg.lstsq(design[rows], offsets[rows], rcond=None)
    return OffsetModel(float(solution[0]), float(solution[1]), float(solution[2] * ARCSEC_PER_RADIAN), keep)
