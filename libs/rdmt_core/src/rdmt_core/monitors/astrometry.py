"""Astrometry monitor of Level-2 images (ImageModel): the file's WCS against a reference catalogue.

Stars are detected (:mod:`.stars`), the brightest isolated, unsaturated ones
are centroided by PSF photometry (photutils ``PSFPhotometry`` with a circular
Gaussian PRF), converted to the sky with the file's WCS (``meta.wcs``) and
matched to a reference catalogue (Gaia-like ECSV, ``ra``/``dec`` in degrees).
The offsets, measured minus catalogue, give the metrics.

Matching is done twice: the common offset is voted for by every pair closer
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
are read once per path and modification time.
"""

from __future__ import annotations

import functools
import os
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning
from pydantic import BaseModel, Field, field_validator

from ..data_access import ArraySpec
from ..geometry import FULL_SIDE, GRID, Geometry
from ..records import Metric, MetricSpec
from .base import Context, Monitor, MonitorResult, ReportFigure
from .stars import (
    DetectionOptions,
    counts_at_scales,
    detect_stars,
    detector_only,
    nan_at_scales,
    scale_cells,
    stat_at_scales,
)

if TYPE_CHECKING:
    from ..data_access import RomanInput
    from ..records import FileResult

BORDER = 4
ARCSEC_PER_RADIAN = 180.0 * 3600.0 / np.pi
LEVEL2_SIDE = 4088
# PSFPhotometry flags that make a centroid unusable (fit bounds, non-convergence, masked or non-finite)
_BAD_FIT_FLAGS = 1 | 2 | 4 | 8 | 64 | 128 | 256 | 512 | 1024 | 2048


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


# --- the reference catalogue (I/O edge) ---


@dataclass(frozen=True)
class ReferenceCatalog:
    """Catalogue stars near one image: positions in degrees and where they came from."""

    ra: np.ndarray
    dec: np.ndarray
    source: str


@dataclass(frozen=True)
class _CatalogFile:
    ra: np.ndarray
    dec: np.ndarray
    centre: np.ndarray  # unit vector of the mean position
    radius_deg: float  # largest distance of a row from the centre


_CACHE: OrderedDict[str, tuple[tuple[int, int], _CatalogFile]] = OrderedDict()
_CACHE_SIZE = 64
_CACHE_LOCK = threading.Lock()


def _unit(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    ra, dec = np.deg2rad(ra), np.deg2rad(dec)
    return np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def _column_deg(table: Table, name: str) -> np.ndarray:
    column = table[name]
    if column.unit is not None:
        return np.asarray(column.quantity.to_value(u.deg), dtype=np.float64)
    return np.asarray(column, dtype=np.float64)


def read_catalog_file(path: str | Path) -> _CatalogFile:
    """Positions of one ECSV catalogue (``ra``, ``dec``), read once per path and modification time.

    Raises
    ------
    OSError, ValueError, KeyError
        When the file cannot be read or has no ``ra``/``dec`` columns.
    """
    key = os.path.abspath(path)
    stat = os.stat(key)
    stamp = (stat.st_mtime_ns, stat.st_size)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None and cached[0] == stamp:
            _CACHE.move_to_end(key)
            return cached[1]
    table = Table.read(key, format="ascii.ecsv")
    missing = [c for c in ("ra", "dec") if c not in table.colnames]
    if missing:
        raise KeyError(f"no column {', '.join(missing)} (columns: {', '.join(table.colnames)})")
    ra, dec = _column_deg(table, "ra"), _column_deg(table, "dec")
    good = np.isfinite(ra) & np.isfinite(dec)
    ra, dec = ra[good], dec[good]
    if ra.size:
        vectors = _unit(ra, dec)
        centre = vectors.mean(axis=0)
        centre /= np.linalg.norm(centre) or 1.0
        radius = float(np.rad2deg(np.arccos(np.clip(vectors @ centre, -1.0, 1.0)).max()))
    else:
        centre, radius = np.array([1.0, 0.0, 0.0]), 0.0
    entry = _CatalogFile(ra, dec, centre, radius)
    with _CACHE_LOCK:
        _CACHE[key] = (stamp, entry)
        _CACHE.move_to_end(key)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return entry


@dataclass(frozen=True)
class Footprint:
    """A circle on the sky holding the image: centre (degrees) and radius (degrees)."""

    ra: float
    dec: float
    radius_deg: float

    def rows_near(self, ra: np.ndarray, dec: np.ndarray, margin_deg: float) -> np.ndarray:
        cosine = _unit(ra, dec) @ _unit(np.array([self.ra]), np.array([self.dec]))[0]
        return cosine >= np.cos(np.deg2rad(self.radius_deg + margin_deg))


def image_footprint(wcs: Any, n_pixels: int) -> Footprint:
    """Centre and enclosing radius of an ``n_pixels`` square image through its WCS (0-based pixels)."""
    edge = np.array([0.0, n_pixels - 1.0])
    x = np.array([*np.repeat(edge, 2), (n_pixels - 1) / 2.0])
    y = np.array([*np.tile(edge, 2), (n_pixels - 1) / 2.0])
    ra, dec = (np.asarray(v, dtype=np.float64) for v in wcs.pixel_to_world_values(x, y))
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
        raise ValueError("the WCS gives non-finite sky positions for the image corners")
    centre = SkyCoord(ra[-1] * u.deg, dec[-1] * u.deg)
    radius = centre.separation(SkyCoord(ra[:-1] * u.deg, dec[:-1] * u.deg)).deg.max()
    return Footprint(float(ra[-1]), float(dec[-1]), float(radius))


def find_catalog(options: AstrometryOptions, footprint: Footprint) -> tuple[ReferenceCatalog | None, str | None]:
    """The catalogue rows near ``footprint`` from ``catalog_path`` or ``catalog_dir``, or why there are none."""
    margin = (options.search_radius_arcsec + 10.0) / 3600.0
    if options.catalog_path:
        try:
            entry = read_catalog_file(options.catalog_path)
        except FileNotFoundError:
            return None, f"catalogue {options.catalog_path} not found"
        except Exception as exc:  # astropy raises many types for a malformed ECSV
            return None, f"cannot read catalogue {options.catalog_path} ({type(exc).__name__}: {exc})"
        near = footprint.rows_near(entry.ra, entry.dec, margin)
        if not near.any():
            return None, f"catalogue {options.catalog_path} does not overlap the image footprint"
        return ReferenceCatalog(entry.ra[near], entry.dec[near], str(options.catalog_path)), None
    if options.catalog_dir:
        directory = Path(options.catalog_dir)
        if not directory.is_dir():
            return None, f"catalogue directory {directory} not found"
        centre = _unit(np.array([footprint.ra]), np.array([footprint.dec]))[0]
        ras, decs, used, unreadable = [], [], [], []
        for path in sorted(directory.glob("*.ecsv")):
            try:
                entry = read_catalog_file(path)
            except Exception as exc:
                unreadable.append(f"{path.name} ({type(exc).__name__})")
                continue
            distance = np.rad2deg(np.arccos(np.clip(entry.centre @ centre, -1.0, 1.0)))
            if distance > entry.radius_deg + footprint.radius_deg + margin:
                continue
            near = footprint.rows_near(entry.ra, entry.dec, margin)
            if near.any():
                ras.append(entry.ra[near])
                decs.append(entry.dec[near])
                used.append(path.name)
        if not used:
            extra = f"; unreadable: {', '.join(unreadable)}" if unreadable else ""
            return None, f"no catalogue in {directory} overlaps the image footprint{extra}"
        return ReferenceCatalog(np.concatenate(ras), np.concatenate(decs), f"{directory}: {', '.join(used)}"), None
    return None, "no reference catalogue configured (option catalog_path or catalog_dir)"


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
    data: np.ndarray, x: np.ndarray, y: np.ndarray, flux: np.ndarray, background: np.ndarray, options: AstrometryOptions
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PSF-fitted positions (frame pixels) and a good-fit mask, by photutils ``PSFPhotometry``."""
    from astropy.modeling.fitting import LevMarLSQFitter
    from photutils.psf import CircularGaussianPRF, PSFPhotometry

    init = Table({"x_init": x, "y_init": y, "flux_init": np.maximum(flux, 1e-3), "local_bkg": background})
    shape = (options.fit_shape, options.fit_shape)
    photometry = PSFPhotometry(CircularGaussianPRF(fwhm=options.fit_fwhm_pixels), shape, fitter=LevMarLSQFitter())
    with warnings.catch_warnings():  # non-convergence is reported per star in the flags column
        warnings.simplefilter("ignore", AstropyUserWarning)
        table = photometry(data, mask=~np.isfinite(data), init_params=init)
    fx = np.asarray(table["x_fit"], dtype=np.float64)
    fy = np.asarray(table["y_fit"], dtype=np.float64)
    flags = np.asarray(table["flags"], dtype=np.int64)
    good = ((flags & _BAD_FIT_FLAGS) == 0) & np.isfinite(fx) & np.isfinite(fy)
    good &= np.hypot(fx - x, fy - y) < 1.0  # a centroid that wandered off its peak is not this star's
    return fx, fy, good


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
    measured: SkyCoord, catalog: SkyCoord, options: AstrometryOptions
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index of the catalogue star matched to each measured star (-1: none) and the offsets (arcsec).

    Offsets are measured minus catalogue: (RA*cos(Dec), Dec). Two passes: the common offset
    within ``search_radius_arcsec`` (:func:`median_offset`), then one-to-one nearest matches
    (``match_to_catalog_sky``) within ``match_radius_arcsec`` of the positions corrected by it.
    """
    n = len(measured)
    index = np.full(n, -1, dtype=np.int64)
    d_ra = np.full(n, np.nan)
    d_dec = np.full(n, np.nan)
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
    fx, fy, good = fit_centroids(
        data, stars.x[chosen], stars.y[chosen], stars.flux[chosen], stars.background[chosen], options
    )
    fx, fy = fx[good], fy[good]
    notes["centroids"] = (
        f"{int(good.sum())} of {chosen.size} stars fitted (the brightest isolated, unsaturated with "
        f"S/N >= {options.min_snr:g}; circular Gaussian PRF, FWHM {options.fit_fwhm_pixels:g} px, "
        f"{options.fit_shape}x{options.fit_shape} pixels)"
    )
    ra, dec = (np.asarray(v, dtype=np.float64) for v in wcs.pixel_to_world_values(fx - border, fy - border))
    measured = SkyCoord(ra * u.deg, dec * u.deg)
    reference = SkyCoord(catalog.ra * u.deg, catalog.dec * u.deg)
    index, d_ra, d_dec = match_offsets(measured, reference, options)
    matched = index >= 0
    n = side - 2 * border
    centre_ra, centre_dec = wcs.pixel_to_world_values((n - 1) / 2.0, (n - 1) / 2.0)
    centre = SkyCoord(float(centre_ra) * u.deg, float(centre_dec) * u.deg)
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


# --- the figure ---


def nice_step(value: float) -> float:
    """The largest of 1, 2, 5 times a power of ten not above ``value`` (1 for non-positive values)."""
    if not value > 0:
        return 1.0
    power = 10.0 ** np.floor(np.log10(value))
    return float(max(step * power for step in (1.0, 2.0, 5.0) if step * power <= value * (1 + 1e-9)))


def _offset_figure(result: FileResult, path: Path) -> str | None:
    """Draw the offset vectors; the caption, or None when there is nothing to draw.

    From the per-star offsets of ``result.extras`` on the frame when present; otherwise
    (a result rebuilt from stored metrics) from the mean offsets of the super-pixels or the
    amplifiers, whichever has more values, on the grid of cells.
    """
    from matplotlib.figure import Figure

    extras = result.extras
    values = {m.spec.name: m.values for m in result.metrics}
    if "star_x" in extras and extras["star_x"].size:
        extent = float(extras["frame_side"][0]) if "frame_side" in extras else float(FULL_SIDE)
        x, y = extras["star_x"], extras["star_y"]
        u_, v_ = extras["offset_x"], extras["offset_y"]
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
        x, y, u_, v_ = cols[finite] + 0.5, rows[finite] + 0.5, ra[finite], dec[finite]
        labels = ("super-pixel column (amplifier - 1)", "super-pixel row")
        what = f"mean offset of {count[scale]} {scale.replace('superpixel', 'super-pixel')}s, (RA*cos(Dec), Dec)"
    length = np.hypot(u_, v_)
    typical = float(np.percentile(length, 90))
    key = nice_step(typical)
    scale_factor = max(typical, 1e-6) / (extent / 20.0)  # arcsec per axis unit: typical arrows are 1/20 wide
    figure = Figure(figsize=(6.4, 6.0), dpi=100)
    axes = figure.add_axes((0.1, 0.1, 0.85, 0.82))
    quiver = axes.quiver(x, y, u_, v_, angles="xy", scale_units="xy", scale=scale_factor, width=0.003, color="#1f4e9c")
    axes.quiverkey(quiver, 0.8, 1.03, key, f"{key * 1000:g} mas", labelpos="E", coordinates="axes")
    axes.set_xlim(0, extent)
    axes.set_ylim(0, extent)
    axes.set_aspect("equal")
    axes.set_xlabel(labels[0])
    axes.set_ylabel(labels[1])
    axes.set_title(
        f"{result.identity.detector}: mean offset ({values['offset_ra_mean'].detector * 1000:.1f}, "
        f"{values['offset_dec_mean'].detector * 1000:.1f}) mas",
        loc="left",
        fontsize=10,
    )
    figure.savefig(path, pil_kwargs={"compress_level": 1})
    return f"Offsets measured minus catalogue: {what}; arrows magnified (key: {key * 1000:g} mas)."


class AstrometryMonitor(Monitor):
    """Astrometric offsets of Level-2 images from PSF centroids matched to a reference catalogue."""

    name = "astrometry"
    title = "Astrometry (WCS against a reference catalogue)"
    model_types = frozenset({"ImageModel"})
    arrays = {"data": ArraySpec("f"), "dq": ArraySpec("ui")}  # noqa: RUF012
    border = BORDER
    options_model = AstrometryOptions
    metric_specs = METRICS

    @classmethod
    def example_arrays(cls, side: int, seed: int) -> dict[str, np.ndarray]:
        from ..geometry import to_frame

        arrays, _, _ = example_image(side, seed)
        geometry = Geometry(side, BORDER)
        return {"data": to_frame(arrays["data"], geometry, np.nan), "dq": to_frame(arrays["dq"], geometry, 0)}

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
        caption = _offset_figure(result, path)
        if caption is None:
            return []
        return [ReportFigure(path, "Astrometric offsets on the detector", caption)]


@functools.lru_cache(maxsize=1)  # one example at a time: a full-size one is 130 MB
def example_image(side: int, seed: int) -> tuple[dict[str, np.ndarray], Any, ReferenceCatalog]:
    """A synthetic image (science arrays), its file WCS and catalogue; at least ~100 stars at small sizes."""
    from ..synthetic_l2 import L2Scene, field_catalog, l2_arrays

    n = side - 2 * BORDER
    scene = L2Scene(seed=seed, star_density=max(L2Scene.star_density, 100.0 / n**2))
    table = field_catalog(scene, side, ("WFI01",))
    arrays, file_wcs, _, _ = l2_arrays("WFI01", table, scene, side, exposure_seed=seed)
    return arrays, file_wcs, ReferenceCatalog(np.asarray(table["ra"]), np.asarray(table["dec"]), "synthetic field")
