"""Astrometry monitor of Level-2 images (ImageModel): the file's WCS against a reference catalogue.

Stars are detected (:mod:`.stars`), the brightest isolated, unsaturated ones
are centroided by PSF photometry (photutils ``PSFPhotometry`` with a circular
Gaussian PRF), converted to the sky with the file's WCS (``meta.wcs``) and
matched to a reference catalogue (Gaia-like ECSV, ``ra``/``dec`` in degrees).
The offsets, measured minus catalogue, give the metrics.

Matching (:mod:`.matching`) is done twice: the common offset is voted for by every pair closer
than ``search_radius_arcsec`` (so a WCS error larger than the final radius, or
than the distance between stars, is still measured); then, with that offset
removed, nearest neighbours within ``match_radius_arcsec``, one measured star
per catalogue star. A shift plus a rotation about the detector centre is fitted
to the offsets, rejecting those beyond ``clip_sigma`` robust sigmas of it
(blends, mismatches); the rotation is a metric, the kept offsets give the
others.

The monitor's I/O is :meth:`AstrometryMonitor.load_context`: it reads the WCS
and the catalogue rows near the image footprint; problems (no WCS, no
catalogue configured, unreadable or not overlapping) go into the context and
become a ``status`` note with NaN offsets, never an exception. Catalogue files
are read once per path and modification time (:mod:`.catalog`).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning
from pydantic import BaseModel, Field, field_validator

from ..records import Metric, MetricSpec
from .base import Context, ImageMonitor, MonitorResult, ReportFigure
from .catalog import find_catalog, image_footprint
from .l2_examples import example_image, star_example_frame
from .l2_figures import draw_offsets
from .matching import fit_offset_model, match_offsets
from .star_cells import counts_at_scales, detector_only, nan_at_scales, scale_cells, stat_at_scales
from .stars import DetectionOptions, detect_stars, masked_note, usable_pixels

if TYPE_CHECKING:
    from pathlib import Path

    from ..data_access import RomanInput
    from ..records import FileResult

BORDER = 4
LEVEL2_SIDE = 4088
# PSFPhotometry flags that make a centroid unusable (fit bounds, non-convergence, fully masked, too few pixels,
# non-finite); flag 1, a fit on part of the box (its unusable pixels masked), is a good fit
_BAD_FIT_FLAGS = 2 | 4 | 8 | 64 | 128 | 256 | 512 | 1024 | 2048


class AstrometryOptions(DetectionOptions):
    """Options of the astrometry monitor (detection options included)."""

    catalog_path: str | None = Field(
        None, description="Reference catalogue (ECSV with ra, dec in degrees); can be set per detector."
    )
    catalog_dir: str | None = Field(
        None, description="Directory of ECSV catalogues; those overlapping the image footprint are used."
    )
    match_radius_arcsec: float = Field(0.5, gt=0, description="Final match radius, after the common offset.")
    search_radius_arcsec: float = Field(
        3.0, gt=0, description="Pairs closer than this vote for the common offset: the largest error measured."
    )
    min_snr: float = Field(20.0, ge=0, description="Peak signal-to-noise of a star to be centroided.")
    max_fit_stars: int = Field(600, ge=1, description="Centroid at most this many stars, the brightest first.")
    fit_fwhm_pixels: float = Field(1.6, gt=0, description="FWHM of the circular Gaussian PRF fitted (pixels).")
    fit_shape: int = Field(5, ge=3, description="Side of the fitted box (pixels, odd).")
    min_stars: int = Field(10, ge=3, description="Matched stars needed for the detector values.")
    min_stars_per_cell: int = Field(5, ge=1, description="Matched stars needed for an amplifier or super-pixel.")
    clip_sigma: float = Field(
        5.0, gt=0, description="Reject offsets this many robust sigmas from the fitted shift and rotation."
    )

    @field_validator("fit_shape")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"must be odd, got {value}")
        return value


ARCSEC = "arcsec"
METRICS = (
    MetricSpec("n_detected", "stars", "Point sources detected", extensive=True),
    MetricSpec("n_matched", "stars", "Centroided stars matched to the catalogue (after clipping)", extensive=True),
    MetricSpec("offset_ra_mean", ARCSEC, "Mean offset in RA*cos(Dec), measured minus catalogue", two_sided=True),
    MetricSpec("offset_dec_mean", ARCSEC, "Mean offset in Dec, measured minus catalogue", two_sided=True),
    MetricSpec("offset_median", ARCSEC, "Median total offset of matched stars"),
    MetricSpec("offset_rms", ARCSEC, "RMS total offset of matched stars"),
    MetricSpec(
        "rotation",
        ARCSEC,
        "Rotation of the measured positions about the detector centre (angle; positive north through east)",
        two_sided=True,
        scales=("detector",),
    ),
)


# --- the monitor's context (I/O edge) ---


def _file_wcs(meta: Any) -> Any:
    try:
        wcs = meta["wcs"]
    except (KeyError, TypeError, AttributeError):
        wcs = getattr(meta, "wcs", None)
    return wcs if hasattr(wcs, "pixel_to_world_values") else None


def _science_side(roman: RomanInput) -> int:
    try:
        shape = roman.node["data"].shape  # from the ASDF tree: the array is not read
    except (KeyError, TypeError, AttributeError):
        return LEVEL2_SIDE
    return int(shape[-1]) if len(shape) == 2 else LEVEL2_SIDE


def context_for(wcs: Any, n_pixels: int, options: AstrometryOptions) -> dict[str, Any]:
    """The monitor's context from a WCS (or None) and the image side: the WCS, the catalogue or a problem."""
    if wcs is None:
        return {"wcs": None, "catalog": None, "problem": "no WCS in the file (meta.wcs is missing or null)"}
    try:
        footprint = image_footprint(wcs, n_pixels)
    except Exception as exc:  # a WCS that cannot be evaluated is this monitor's problem only
        return {"wcs": None, "catalog": None, "problem": f"the WCS cannot be evaluated ({type(exc).__name__}: {exc})"}
    catalog, problem = find_catalog(options, footprint)
    return {"wcs": wcs, "catalog": catalog, "problem": problem}


# --- measurement (pure) ---


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
        and ``problem`` (why either is missing), as :func:`context_for` makes it.
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
    if x.size < options.min_stars:
        return done(f"too few matched stars: {x.size} < {options.min_stars}")

    total = np.hypot(d_ra, d_dec)
    at = {"min_detector": options.min_stars, "min_cell": options.min_stars_per_cell}
    values["offset_ra_mean"] = stat_at_scales(d_ra, groups, "mean", **at)
    values["offset_dec_mean"] = stat_at_scales(d_dec, groups, "mean", **at)
    values["offset_median"] = stat_at_scales(total, groups, "median", **at)
    values["offset_rms"] = stat_at_scales(total, groups, "rms", **at)
    values["rotation"] = detector_only(rotation)

    # Offsets along the detector axes for the figure: the catalogue positions through the file's WCS.
    sky_ra, sky_dec = catalog.ra[index[keep]], catalog.dec[index[keep]]
    cx, cy = (np.asarray(v, dtype=np.float64) + border for v in wcs.world_to_pixel_values(sky_ra, sky_dec))
    step_ra, step_dec = wcs.pixel_to_world_values((n + 1) / 2.0, (n - 1) / 2.0)
    pixel = centre.separation(SkyCoord(float(step_ra) * u.deg, float(step_dec) * u.deg)).arcsec
    extras.update(
        star_x=x, star_y=y, offset_ra=d_ra, offset_dec=d_dec, offset_x=(x - cx) * pixel, offset_y=(y - cy) * pixel
    )
    return done(None)


class AstrometryMonitor(ImageMonitor):
    """Astrometric offsets of Level-2 images from PSF centroids matched to a reference catalogue."""

    name = "astrometry"
    title = "Astrometry (WCS against a reference catalogue)"
    options_model = AstrometryOptions
    metric_specs = METRICS

    @classmethod
    def example_arrays(cls, side: int, seed: int) -> dict[str, np.ndarray]:
        return star_example_frame(side, seed)

    @classmethod
    def example_context(cls, side: int, seed: int) -> dict[str, Any]:
        _, wcs, catalog = example_image(side, seed)
        return {"wcs": wcs, "catalog": catalog, "problem": None}

    @classmethod
    def load_context(cls, roman: RomanInput, options: BaseModel) -> dict[str, Any]:
        assert isinstance(options, AstrometryOptions)
        return context_for(_file_wcs(roman.meta), _science_side(roman), options)

    @classmethod
    def compute(cls, arrays: dict[str, np.ndarray], options: BaseModel, context: Context) -> MonitorResult:
        assert isinstance(options, AstrometryOptions)
        return astrometry_metrics(arrays["data"], arrays["dq"], options, context, cls.border)

    @classmethod
    def report_figures(cls, result: FileResult, directory: Path, stem: str) -> list[ReportFigure]:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{stem}_offsets.png"
        caption = draw_offsets(result, path)
        if caption is None:
            return []
        return [ReportFigure(path, "Astrometric offsets on the detector", caption)]
