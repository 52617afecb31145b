"""Astrometry metrics of a Level-2 image: the file's WCS against a reference catalogue (pure, no I/O).

Stars are detected (:mod:`rdmt_core.measure.stars`), the brightest isolated, unsaturated ones
are centroided by PSF photometry (photutils ``PSFPhotometry`` with a circular
Gaussian PRF), converted to the sky with the file's WCS (``meta.wcs``) and
matched to a reference catalogue (Gaia-like ECSV, ``ra``/``dec`` in degrees).
The offsets, measured minus catalogue, give the metrics.

Matching (:mod:`rdmt_core.measure.matching`) is done twice: the common offset is voted for by every pair closer
than ``search_radius_arcsec`` (so a WCS error larger than the final radius, or
than the distance between stars, is still measured); then, with that offset
removed, nearest neighbours within ``match_radius_arcsec``, one measured star
per catalogue star. A shift plus a rotation about the detector centre is fitted
to the offsets, rejecting those beyond ``clip_sigma`` robust sigmas of it
(blends, mismatches); the rotation is a metric, the kept offsets give the
others.

The monitor's I/O is :mod:`.context` (called from ``AstrometryMonitor.load_context``): it
reads the WCS and the catalogue rows near the image footprint; problems (no WCS, no
catalogue configured, unreadable or not overlapping) go into the context and
become a ``status`` note with NaN offsets, never an exception.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning

from ...measure.matching import fit_offset_model, match_offsets
from ...measure.star_cells import (
    counts_at_scales,
    detector_only,
    nan_at_scales,
    scale_cells,
    sparse_superpixels,
    stat_at_scales,
)
from ...measure.stars import detect_stars, masked_note, usable_pixels
from ...measure.wcs_local import local_pixel_scale, sky_offsets_to_pixels
from ...records import SUPERPIXEL_NOTE, Metric
from ..base import Context, MonitorResult
from .options import METRICS, AstrometryOptions

BORDER = 4
# PSFPhotometry flags that make a centroid unusable (fit bounds, non-convergence, fully masked, too few pixels,
# non-finite); flag 1, a fit on part of the box (its unusable pixels masked), is a good fit
_BAD_FIT_FLAGS = 2 | 4 | 8 | 64 | 128 | 256 | 512 | 1024 | 2048


def fit_centroids(
    data: np.ndarray,
    unusable: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    background: np.ndarray,
    options: AstrometryOptions,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PSF-fitted positions (frame pixels) and a good-fit mask, by photutils ``PSFPhotometry``.

    ``unusable`` (boolean, the frame's shape) masks the pixels left out of the fits: a star's
    fit uses the usable pixels of its box.
    """
    from astropy.modeling.fitting import LevMarLSQFitter
    from photutils.psf import CircularGaussianPRF, PSFPhotometry

    init = Table({"x_init": x, "y_init": y, "flux_init": np.maximum(flux, 1e-3), "local_bkg": background})
    shape = (options.fit_shape, options.fit_shape)
    photometry = PSFPhotometry(CircularGaussianPRF(fwhm=options.fit_fwhm_pixels), shape, fitter=LevMarLSQFitter())
    with warnings.catch_warnings():  # non-convergence is reported per star in the flags column
        warnings.simplefilter("ignore", AstropyUserWarning)
        table = photometry(data, mask=unusable, init_params=init)
    fx = np.asarray(table["x_fit"], dtype=np.float64)
    fy = np.asarray(table["y_fit"], dtype=np.float64)
    flags = np.asarray(table["flags"], dtype=np.int64)
    good = ((flags & _BAD_FIT_FLAGS) == 0) & np.isfinite(fx) & np.isfinite(fy)
    good &= np.hypot(fx - x, fy - y) < 1.0  # a centroid that wandered off its peak is not this star's
    return fx, fy, good


def astrometry_metrics(
    data: np.ndarray, dq: np.ndarray, options: AstrometryOptions, context: Context, border: int = BORDER
) -> MonitorResult:
    """All astrometry metrics of one frame.

    Parameters
    ----------
    data, dq : ndarray
        The frame (science array inside a ``border`` of NaN), DN/s, and its DQ flags.
    options : AstrometryOptions
        Detection, fitting and matching options.
    context : mapping
        ``wcs`` (of the science array, 0-based pixels), ``catalog`` (:class:`ReferenceCatalog`)
        and ``problem`` (why either is missing), as :func:`.context.context_for` makes it.
    """
    side = data.shape[0]
    stars = detect_stars(data, dq, options)
    values: dict[str, Any] = {spec.name: nan_at_scales() for spec in METRICS}
    values["n_detected"] = counts_at_scales(scale_cells(stars.x, stars.y, side))
    notes: dict[str, str] = {"detected": f"{stars.size} point sources above {options.detection_threshold:g} sigma"}
    extras: dict[str, np.ndarray] = {"frame_side": np.array([side])}

    def done(status: str | None) -> MonitorResult:
        if status:
            notes["status"] = status
        return MonitorResult([Metric(spec, values[spec.name]) for spec in METRICS], notes, extras)

    wcs, catalog = context.get("wcs"), context.get("catalog")
    if stars.problem:
        return done(stars.problem)
    if wcs is None or catalog is None:
        return done(context.get("problem") or "no WCS or reference catalogue in the monitor's context")
    notes["catalogue"] = f"{catalog.source} ({catalog.ra.size} stars near the footprint)"

    chosen = stars.usable(options.min_snr)[: options.max_fit_stars]
    if chosen.size == 0:
        values["n_matched"] = counts_at_scales(scale_cells(np.empty(0), np.empty(0), side))
        return done(f"no isolated, unsaturated star with S/N >= {options.min_snr:g} to centroid")
    unusable = ~usable_pixels(data, dq)
    fx, fy, good = fit_centroids(
        data, unusable, stars.x[chosen], stars.y[chosen], stars.flux[chosen], stars.background[chosen], options
    )
    fx, fy = fx[good], fy[good]
    notes["centroids"] = (
        f"{int(good.sum())} of {chosen.size} stars fitted (the brightest isolated, unsaturated with "
        f"S/N >= {options.min_snr:g}; circular Gaussian PRF, FWHM {options.fit_fwhm_pixels:g} px, "
        f"{options.fit_shape}x{options.fit_shape} pixels)"
        + masked_note(stars, chosen, options.min_snr, options.max_masked_pixels)
    )
    n = side - 2 * border
    centre_ra, centre_dec = (float(v) for v in wcs.pixel_to_world_values((n - 1) / 2.0, (n - 1) / 2.0))
    if not (np.isfinite(centre_ra) and np.isfinite(centre_dec)):
        values["n_matched"] = counts_at_scales(scale_cells(np.empty(0), np.empty(0), side))
        return done("the WCS gives no sky position for the image centre (outside its bounding box or domain)")
    centre = SkyCoord(centre_ra * u.deg, centre_dec * u.deg)
    ra, dec = (np.asarray(v, dtype=np.float64) for v in wcs.pixel_to_world_values(fx - border, fy - border))
    on_sky = np.isfinite(ra) & np.isfinite(dec)
    if not on_sky.all():  # a gwcs WCS is NaN outside its bounding box; astropy's matching refuses NaN
        notes["sky positions"] = (
            f"{int((~on_sky).sum())} of {on_sky.size} fitted stars have no sky position through the WCS "
            "(outside its bounding box or domain): left out of the matching"
        )
        fx, fy, ra, dec = fx[on_sky], fy[on_sky], ra[on_sky], dec[on_sky]
    measured = SkyCoord(ra * u.deg, dec * u.deg)
    reference = SkyCoord(catalog.ra * u.deg, catalog.dec * u.deg)
    index, d_ra, d_dec = match_offsets(measured, reference, options)
    matched = index >= 0
    keep = np.zeros(matched.size, dtype=bool)
    rotation = float("nan")
    if matched.any():
        xi, eta = centre.spherical_offsets_to(reference[index[matched]])
        model = fit_offset_model(xi.arcsec, eta.arcsec, d_ra[matched], d_dec[matched], options.clip_sigma)
        keep[matched] = model.keep
        rotation = model.rotation
    n_rejected = int(matched.sum() - keep.sum())
    notes["matching"] = (
        f"{int(matched.sum())} matched within {options.match_radius_arcsec:g} arcsec after removing the common "
        f"offset (voted within {options.search_radius_arcsec:g} arcsec); {n_rejected} rejected beyond "
        f"{options.clip_sigma:g} robust sigma of a shift and rotation"
    )
    x, y, d_ra, d_dec = fx[keep], fy[keep], d_ra[keep], d_dec[keep]
    groups = scale_cells(x, y, side)
    values["n_matched"] = counts_at_scales(groups)
    if sparse := sparse_superpixels(groups, options.min_stars_per_cell, "matched stars"):
        notes[SUPERPIXEL_NOTE] = sparse
    if x.size < options.min_stars:
        return done(f"too few matched stars: {x.size} < {options.min_stars}")

    total = np.hypot(d_ra, d_dec)
    at = {"min_detector": options.min_stars, "min_cell": options.min_stars_per_cell}
    values["offset_ra_mean"] = stat_at_scales(d_ra, groups, "mean", **at)
    values["offset_dec_mean"] = stat_at_scales(d_dec, groups, "mean", **at)
    values["offset_median"] = stat_at_scales(total, groups, "median", **at)
    values["offset_rms"] = stat_at_scales(total, groups, "rms", **at)
    values["rotation"] = detector_only(rotation)

    # Offsets along the detector axes for the figure, through the WCS's local Jacobian at each star: a
    # pipeline WCS has no analytic inverse, and gwcs' numerical one is slow and can fail (only the
    # forward transform is used here)
    dx, dy = sky_offsets_to_pixels(wcs, x - border, y - border, d_ra, d_dec)
    pixel = local_pixel_scale(wcs, x - border, y - border)
    extras.update(star_x=x, star_y=y, offset_ra=d_ra, offset_dec=d_dec, offset_x=dx * pixel, offset_y=dy * pixel)
    return done(None)
