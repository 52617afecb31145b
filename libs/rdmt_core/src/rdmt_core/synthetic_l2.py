"""Synthetic WFI Level-2 slope images with known truth, and their reference catalogue.

Built with roman_datamodels' own factory (``ImageModel.create_fake_data``) and
filled with seeded numpy data shaped like a calibrated WFI image:

* a gwcs WCS (tangent plane, 0.11"/pixel, rotated by the position angle)
  centred on the detector; the 18 detectors of a field sit on a 6x3 grid on the
  sky, so one catalogue covers an exposure;
* a polynomial distortion before the tangent plane, with a bounding box and no
  analytic inverse, as the pipeline's WCSs have (``L2Scene.distortion``);
* stars at known sky positions from a reference catalogue (Gaia-like ECSV:
  ``source_id``, ``ra``, ``dec``, ``phot_g_mean_mag``), drawn through the *true*
  WCS with the detector's and filter's PSF from ``galsim.roman`` (Airy rings,
  diffraction spikes, wide wings; :mod:`rdmt_core.synthetic_psf`), or with an
  idealised pixel-integrated Moffat (beta = 3, FWHM 1.6 pixels) for tests of
  the arithmetic (``L2Scene.psf_model``);
* a sky background, white noise and the stars' Poisson noise; pixels above the
  saturation rate are clipped and flagged SATURATED in ``dq``.

Injections (:class:`L2Injection`), each with a known amount:

* an astrometric error: the WCS written to the file is the true one shifted on
  the sky (arcsec, in RA*cos(Dec) and Dec) and rotated about the image centre;
* 1/f noise in readout order (see :func:`readout_order`), common to all
  amplifiers and independent per amplifier, with an amplitude in units of the
  white-noise sigma;
* a background gradient (DN/s across the image) or a step between two amplifiers;
* a blurred (FWHM scaled) or elongated (ellipticity, position angle) PSF.

Used by ``rdmt make-fake l2``, the tests and the benchmarks. Writes files;
computes no metric.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import models
from astropy.table import Table
from astropy.time import Time
from gwcs import coordinate_frames as cf
from gwcs import wcs as gwcs_wcs
from roman_datamodels import datamodels as dm
from roman_datamodels import dqflags

from .geometry import DETECTORS, GRID, N_AMPLIFIERS, detector_number

PIXEL_SCALE = 0.11  # arcsec per pixel
BORDER = 4  # reference pixels removed from each side of a Level-2 array
ZERO_POINT = 26.0  # magnitude of a 1 DN/s source
SATURATION = 2000.0  # DN/s: rate above which a pixel saturates in a typical exposure
MOFFAT_BETA = 3.0
CATALOG_COLUMNS = ("source_id", "ra", "dec", "phot_g_mean_mag")


@dataclass(frozen=True)
class L2Injection:
    """What to inject into one detector's image (all zero: a clean image)."""

    wcs_shift_arcsec: tuple[float, float] = (0.0, 0.0)  # file WCS minus truth: (dRA*cos(Dec), dDec)
    wcs_rotation_arcsec: float = 0.0  # file WCS rotated about the image centre (arcsec of angle)
    one_over_f: float = 0.0  # rms of the 1/f noise per pixel, in units of the white-noise sigma
    one_over_f_common: float = 0.7  # fraction of the 1/f variance common to all amplifiers
    background_gradient: tuple[float, float] = (0.0, 0.0)  # DN/s change across the image in x and y
    background_step: tuple[int, float] | None = None  # (amplifier n, DN/s added to amplifiers n..32)
    psf_fwhm_scale: float = 1.0  # multiplies the PSF FWHM (blur)
    psf_ellipticity: float = 0.0  # (a^2 - b^2) / (a^2 + b^2) of the PSF's second moments
    psf_angle_deg: float = 30.0  # position angle of the elongation, from +x towards +y


@dataclass(frozen=True)
class L2Scene:
    """The field: where it is, how crowded, and the image's noise properties."""

    ra: float = 268.0  # deg: towards the Galactic Bulge
    dec: float = -29.0
    position_angle_deg: float = 25.0  # rotation of the detector y axis east of north
    star_density: float = 2000.0 / 4088**2  # stars per pixel brighter than ``faint_mag``
    bright_mag: float = 14.0
    faint_mag: float = 23.0
    background: float = 0.8  # DN/s per pixel
    white_noise: float = 0.08  # DN/s per pixel
    exposure_time: float = 140.0  # s, sets the stars' Poisson noise
    psf_fwhm: float = 1.6  # pixels, of the Moffat PSF (psf_model "moffat")
    # "roman": galsim.roman's PSF of the detector and filter (rings, spikes, wings; rdmt_core.synthetic_psf);
    # "moffat": an idealised pixel-integrated Moffat (beta 3, psf_fwhm), for tests of the arithmetic
    psf_model: str = "roman"
    optical_element: str = "F158"
    distortion: float = 2.0  # pixels at the corners: polynomial, no analytic inverse (0: a plain tangent plane)
    seed: int = 0
    field_name: str = "bulge-01"
    extra: dict[str, str] = field(default_factory=dict)


def detector_centre(scene: L2Scene, detector: str, side: int) -> coord.SkyCoord:
    """Sky position of a detector's centre: the 18 detectors on a 6x3 grid around the field centre."""
    n = detector_number(detector) - 1
    column, row = n % 6, n // 6
    spacing = side * PIXEL_SCALE * 1.08 / 3600.0  # deg, a small gap between detectors
    centre = coord.SkyCoord(scene.ra * u.deg, scene.dec * u.deg)
    offset = centre.spherical_offsets_by((column - 2.5) * spacing * u.deg, (row - 1.0) * spacing * u.deg)
    return offset


def distortion_model(n_pixels: int, distortion: float) -> models.Model:
    """Pixel -> undistorted pixel (both centred on the image): a cubic polynomial with no analytic inverse.

    ``distortion`` is the displacement (pixels) at the image's corner along x; the shape of the
    field is that of a wide-field camera: a radial cubic term plus smaller quadratic ones.
    """
    r = n_pixels / 2.0
    d = distortion
    x_poly = models.Polynomial2D(3, c1_0=1.0, c1_1=0.3 * d / r**2, c3_0=0.5 * d / r**3, c1_2=0.5 * d / r**3)
    y_poly = models.Polynomial2D(
        3, c0_1=1.0, c2_0=-0.2 * d / r**2, c0_2=0.2 * d / r**2, c2_1=0.5 * d / r**3, c0_3=0.5 * d / r**3
    )
    return models.Mapping((0, 1, 0, 1)) | (x_poly & y_poly)


def make_wcs(centre: coord.SkyCoord, n_pixels: int, angle_deg: float, distortion: float = 0.0) -> gwcs_wcs.WCS:
    """A tangent-plane gwcs WCS of an ``n_pixels`` square image centred on ``centre`` (0-based pixels).

    With ``distortion`` (pixels at the corner), a polynomial distortion comes first and the WCS has
    a bounding box and no analytic inverse, like the pipeline's: sky to pixel needs a numerical
    inverse (:func:`sky_to_pixel`).
    """
    crpix = (n_pixels - 1) / 2.0
    theta = np.deg2rad(angle_deg)
    scale = PIXEL_SCALE / 3600.0
    matrix = scale * np.array([[-np.cos(theta), np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    transform = models.Shift(-crpix) & models.Shift(-crpix)
    if distortion:
        transform = transform | distortion_model(n_pixels, distortion)
    transform = (
        transform
        | models.AffineTransformation2D(matrix=matrix)
        | models.Pix2Sky_TAN()
        | models.RotateNative2Celestial(centre.ra.deg, centre.dec.deg, 180.0)
    )
    detector_frame = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    sky_frame = cf.CelestialFrame(reference_frame=coord.ICRS(), name="icrs", unit=(u.deg, u.deg))
    wcs = gwcs_wcs.WCS([(detector_frame, transform), (sky_frame, None)])
    if distortion:
        wcs.bounding_box = ((-0.5, n_pixels - 0.5), (-0.5, n_pixels - 0.5))
    return wcs


def sky_to_pixel(
    centre: coord.SkyCoord, n_pixels: int, angle_deg: float, distortion: float, ra: np.ndarray, dec: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """0-based pixel positions of sky positions through :func:`make_wcs`'s WCS, without gwcs' numerical inverse.

    The undistorted WCS has an analytic inverse; the polynomial is inverted by fixed-point iteration
    (converges to 1e-9 pixel: the distortion changes slowly across a pixel).
    """
    u_, v_ = make_wcs(centre, n_pixels, angle_deg).world_to_pixel_values(ra, dec)
    if not distortion:
        return np.asarray(u_), np.asarray(v_)
    crpix = (n_pixels - 1) / 2.0
    target_x, target_y = np.asarray(u_) - crpix, np.asarray(v_) - crpix
    model = distortion_model(n_pixels, distortion)
    x, y = target_x.copy(), target_y.copy()
    for _ in range(50):
        dx, dy = model(x, y)
        x, y = x - (dx - target_x), y - (dy - target_y)
        if max(np.max(np.abs(dx - target_x), initial=0.0), np.max(np.abs(dy - target_y), initial=0.0)) < 1e-9:
            break
    return x + crpix, y + crpix


def perturbed_wcs(
    centre: coord.SkyCoord, n_pixels: int, angle_deg: float, injection: L2Injection, distortion: float = 0.0
) -> gwcs_wcs.WCS:
    """The WCS written to the file: the true one shifted on the sky and rotated about the centre."""
    d_ra, d_dec = injection.wcs_shift_arcsec
    shifted = centre.spherical_offsets_by(d_ra * u.arcsec, d_dec * u.arcsec)
    return make_wcs(shifted, n_pixels, angle_deg + injection.wcs_rotation_arcsec / 3600.0, distortion)


def field_catalog(scene: L2Scene, side: int = 4096, detectors: tuple[str, ...] = DETECTORS) -> Table:
    """The reference catalogue of a field: stars over the detectors' footprints plus a margin."""
    rng = np.random.default_rng([scene.seed, 7])
    science = side - 2 * BORDER
    # arcsec: half the side of the (RA, Dec)-aligned square holding the rotated footprint, plus a 10% margin
    theta = np.deg2rad(scene.position_angle_deg)
    half = 0.55 * science * PIXEL_SCALE * (abs(np.cos(theta)) + abs(np.sin(theta)))
    rows = []
    for detector in detectors:
        centre = detector_centre(scene, detector, side)
        n = rng.poisson(scene.star_density * (2 * half / PIXEL_SCALE) ** 2)
        dx, dy = rng.uniform(-half, half, (2, n))
        positions = centre.spherical_offsets_by(dx * u.arcsec, dy * u.arcsec)
        # N(<m) grows as 10^(0.35 m): draw magnitudes by inverting the cumulative law
        lo, hi = 10 ** (0.35 * scene.bright_mag), 10 ** (0.35 * scene.faint_mag)
        mags = np.log10(rng.uniform(lo, hi, n)) / 0.35
        rows.append((positions.ra.deg, positions.dec.deg, mags))
    ra, dec, mag = (np.concatenate(c) for c in zip(*rows, strict=True))
    table = Table(
        [np.arange(1, ra.size + 1, dtype=np.int64) + 10**15 * (scene.seed + 1), ra, dec, mag],
        names=CATALOG_COLUMNS,
    )
    table["ra"].unit = u.deg
    table["dec"].unit = u.deg
    table["phot_g_mean_mag"].unit = u.mag
    table["ra"].description = "Right ascension (ICRS, epoch of the image)"
    table["dec"].description = "Declination (ICRS, epoch of the image)"
    table["phot_g_mean_mag"].description = f"Magnitude; {ZERO_POINT} is 1 DN/s in the synthetic images"
    table.meta.update({"field": scene.field_name, "ra_centre": scene.ra, "dec_centre": scene.dec})
    return table


def readout_order(frame: np.ndarray) -> np.ndarray:
    """View of a full frame in each amplifier's readout order: shape (32, rows * cell).

    The model: each amplifier reads its ``cell``-column strip row by row from row 0;
    within a row, odd-numbered amplifiers (1, 3, ...) read from low to high column and
    even-numbered amplifiers from high to low. Row overheads (and the reference
    channel) are not represented, so the series is evenly sampled.
    """
    side = frame.shape[0]
    cell = side // N_AMPLIFIERS
    strips = frame.reshape(side, N_AMPLIFIERS, cell).transpose(1, 0, 2)  # (amp, row, column in strip)
    strips = strips.copy()
    strips[1::2] = strips[1::2, :, ::-1]
    return strips.reshape(N_AMPLIFIERS, side * cell)


def from_readout_order(series: np.ndarray, side: int) -> np.ndarray:
    """Inverse of :func:`readout_order`: a full frame from the (32, rows * cell) series."""
    cell = side // N_AMPLIFIERS
    strips = series.reshape(N_AMPLIFIERS, side, cell).copy()
    strips[1::2] = strips[1::2, :, ::-1]
    return strips.transpose(1, 0, 2).reshape(side, side)


def pink_noise(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Unit-rms noise with power proportional to 1/f along the last axis (no DC term)."""
    n = shape[-1]
    spectrum = np.fft.rfft(rng.standard_normal(shape), axis=-1)
    f = np.fft.rfftfreq(n)
    f[0] = np.inf
    spectrum /= np.sqrt(f)
    series = np.fft.irfft(spectrum, n=n, axis=-1)
    series -= series.mean(axis=-1, keepdims=True)
    return series / series.std(axis=-1, keepdims=True)


def one_over_f_frame(rng: np.random.Generator, side: int, amplitude: float, common: float) -> np.ndarray:
    """A full frame of 1/f noise in readout order with rms ``amplitude`` per pixel."""
    length = side * (side // N_AMPLIFIERS)
    shared = pink_noise(rng, (1, length))
    own = pink_noise(rng, (N_AMPLIFIERS, length))
    series = amplitude * (np.sqrt(common) * shared + np.sqrt(1.0 - common) * own)
    return from_readout_order(series, side)


def _moffat_alpha(fwhm: float) -> float:
    return fwhm / (2.0 * np.sqrt(2 ** (1 / MOFFAT_BETA) - 1))


def render_stars(
    shape: tuple[int, int],
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    fwhm: float,
    ellipticity: float = 0.0,
    angle_deg: float = 0.0,
    radius: int = 7,
    oversample: int = 5,
) -> np.ndarray:
    """Image of point sources (DN/s) with a pixel-integrated elliptical Moffat PSF.

    ``x, y`` are 0-based pixel positions (pixel centres on integers); each star's
    flux is integrated over pixels on an ``oversample``-times finer grid within
    ``radius`` pixels of its centre.
    """
    image = np.zeros(shape[0] * shape[1], dtype=np.float64)
    alpha = _moffat_alpha(fwhm)
    # second moments scale as alpha^2: a^2 = alpha^2 (1 + e), b^2 = alpha^2 (1 - e) keeps the mean size
    a2, b2 = alpha**2 * (1 + ellipticity), alpha**2 * (1 - ellipticity)
    c, s = np.cos(np.deg2rad(angle_deg)), np.sin(np.deg2rad(angle_deg))
    norm = (MOFFAT_BETA - 1) / (np.pi * np.sqrt(a2 * b2))
    sub = (np.arange(oversample) + 0.5) / oversample - 0.5
    offsets = np.arange(-radius, radius + 1)
    for start in range(0, x.size, 512):
        xs, ys, fs = x[start : start + 512], y[start : start + 512], flux[start : start + 512]
        ix, iy = np.rint(xs).astype(np.int64), np.rint(ys).astype(np.int64)
        px = ix[:, None] + offsets[None, :]  # (n, k) pixel columns
        py = iy[:, None] + offsets[None, :]
        dx = (px[:, None, :, None, None] + sub[None, None, None, None, :]) - xs[:, None, None, None, None]
        dy = (py[:, :, None, None, None] + sub[None, None, None, :, None]) - ys[:, None, None, None, None]
        u_ = c * dx + s * dy
        v_ = -s * dx + c * dy
        profile = norm * (1 + u_**2 / a2 + v_**2 / b2) ** (-MOFFAT_BETA)
        pixel = profile.mean(axis=(3, 4))  # (n, k, k): integral over the pixel (area 1)
        values = fs[:, None, None] * pixel
        rows = np.broadcast_to(py[:, :, None], values.shape)
        cols = np.broadcast_to(px[:, None, :], values.shape)
        inside = (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
        image += np.bincount((rows * shape[1] + cols)[inside], weights=values[inside], minlength=image.size)
    return image.reshape(shape)


@dataclass(frozen=True)
class L2Truth:
    """What was drawn into one image: the stars on it (true pixel positions) and the injection."""

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    source_id: np.ndarray
    injection: L2Injection
    fwhm: float


def l2_arrays(
    detector: str,
    catalog: Table,
    scene: L2Scene,
    side: int = 4096,
    exposure_seed: int = 0,
    injection: L2Injection | None = None,
) -> tuple[dict[str, np.ndarray], gwcs_wcs.WCS, gwcs_wcs.WCS, L2Truth]:
    """``data``, ``dq`` and ``err`` of one detector, the file's WCS, the true WCS and the truth."""
    injection = injection or L2Injection()
    n = side - 2 * BORDER
    rng = np.random.default_rng([scene.seed, exposure_seed, detector_number(detector)])
    centre = detector_centre(scene, detector, side)
    true_wcs = make_wcs(centre, n, scene.position_angle_deg, scene.distortion)
    file_wcs = perturbed_wcs(centre, n, scene.position_angle_deg, injection, scene.distortion)

    sky = coord.SkyCoord(np.asarray(catalog["ra"]) * u.deg, np.asarray(catalog["dec"]) * u.deg)
    near = sky.separation(centre).arcsec < 0.75 * n * PIXEL_SCALE
    x, y = sky_to_pixel(centre, n, scene.position_angle_deg, scene.distortion, sky.ra.deg[near], sky.dec.deg[near])
    margin = 3 if scene.psf_model == "moffat" else 130  # stars off the image still spread their halo onto it
    on = (x > -margin) & (x < n - 1 + margin) & (y > -margin) & (y < n - 1 + margin)
    x, y = x[on], y[on]
    flux = 10 ** (-0.4 * (np.asarray(catalog["phot_g_mean_mag"])[near][on] - ZERO_POINT))
    if scene.psf_model == "roman":
        from .synthetic_psf import psf_truth, render_psf_stars

        shape_args = (injection.psf_fwhm_scale, injection.psf_ellipticity, injection.psf_angle_deg)
        number = detector_number(detector)
        stars = render_psf_stars((n, n), x, y, flux, number, scene.optical_element, *shape_args)
        fwhm = float(psf_truth(number, scene.optical_element, *shape_args).fwhm)
    elif scene.psf_model == "moffat":
        fwhm = scene.psf_fwhm * injection.psf_fwhm_scale
        stars = render_stars((n, n), x, y, flux, fwhm, injection.psf_ellipticity, injection.psf_angle_deg)
    else:
        raise ValueError(f"unknown psf_model {scene.psf_model!r} (known: roman, moffat)")
    inside = (x > -3) & (x < n + 2) & (y > -3) & (y < n + 2)

    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / np.float32(n - 1) - np.float32(0.5)
    background = np.float32(scene.background) + np.float32(injection.background_gradient[0]) * xx
    background += np.float32(injection.background_gradient[1]) * yy
    del xx, yy
    if injection.background_step is not None:
        amplifier, step = injection.background_step
        first_column = (amplifier - 1) * (side // N_AMPLIFIERS) - BORDER
        background[:, max(first_column, 0) :] += np.float32(step)

    variance = scene.white_noise**2 + np.maximum(stars, 0.0) / scene.exposure_time
    data = background + (stars + rng.standard_normal((n, n)) * np.sqrt(variance)).astype(np.float32)
    if injection.one_over_f:
        frame = one_over_f_frame(rng, side, injection.one_over_f * scene.white_noise, injection.one_over_f_common)
        data += frame[BORDER : side - BORDER, BORDER : side - BORDER].astype(np.float32)
    dq = np.zeros((n, n), dtype=np.uint32)
    saturated = data > SATURATION
    data[saturated] = SATURATION
    dq[saturated] |= dqflags.pixel.SATURATED
    err = np.sqrt(variance).astype(np.float16)
    ids = np.asarray(catalog["source_id"])[near][on]
    truth = L2Truth(x[inside], y[inside], flux[inside], ids[inside], injection, fwhm)
    return {"data": data.astype(np.float32), "dq": dq, "err": err}, file_wcs, true_wcs, truth


def l2_model(
    detector: str,
    start_time: datetime,
    catalog: Table,
    scene: L2Scene,
    side: int = 4096,
    exposure_seed: int = 0,
    injection: L2Injection | None = None,
    with_wcs: bool = True,
) -> tuple[dm.ImageModel, L2Truth]:
    """A complete ImageModel for ``detector`` and what was drawn into it."""
    arrays, file_wcs, _, truth = l2_arrays(detector, catalog, scene, side, exposure_seed, injection)
    n = side - 2 * BORDER
    model = dm.ImageModel.create_fake_data(shape=(n, n))
    model.meta.instrument.detector = detector
    model.meta.exposure.type = "WFI_IMAGE"
    model.meta.exposure.start_time = Time(start_time)
    model.meta.exposure.end_time = Time(start_time + timedelta(seconds=scene.exposure_time))
    model.meta.exposure.exposure_time = scene.exposure_time
    model.meta.instrument.optical_element = scene.optical_element
    model.meta.filename = f"rdmt_synthetic_{detector.lower()}_cal.asdf"
    centre = detector_centre(scene, detector, side)
    model.meta.wcsinfo.ra_ref = float(centre.ra.deg)
    model.meta.wcsinfo.dec_ref = float(centre.dec.deg)
    model.meta.wcsinfo.roll_ref = float(scene.position_angle_deg)
    model.meta.pointing.target_ra = float(scene.ra)
    model.meta.pointing.target_dec = float(scene.dec)
    model.meta.wcs = file_wcs if with_wcs else None  # the schema allows a null WCS (e.g. failed assign_wcs)
    model.data, model.dq, model.err = arrays["data"], arrays["dq"], arrays["err"]
    return model, truth


def write_l2_exposure(
    directory: Path,
    start_time: datetime,
    scene: L2Scene | None = None,
    side: int = 4096,
    exposure_seed: int = 0,
    injections: dict[str, L2Injection] | None = None,
    detectors: tuple[str, ...] = DETECTORS,
    catalog_dir: Path | None = None,
    with_wcs: bool = True,
    on_file: Callable[[Path], None] | None = None,
) -> tuple[list[Path], Path]:
    """Write one Level-2 image per detector and the field's catalogue; return their paths (``on_file`` after
    each image).

    The catalogue goes to ``catalog_dir`` (default ``directory/catalog``) as ``<field>.ecsv``,
    where the astrometry monitor's ``catalog_dir`` option finds it by sky position.
    """
    scene = scene or L2Scene()
    if side % GRID:
        raise ValueError(f"side {side} is not divisible by {GRID}")
    directory.mkdir(parents=True, exist_ok=True)
    catalog_dir = catalog_dir or directory / "catalog"
    catalog_dir.mkdir(parents=True, exist_ok=True)
    catalog = field_catalog(scene, side, detectors)
    catalog_path = catalog_dir / f"{scene.field_name}.ecsv"
    catalog.write(catalog_path, format="ascii.ecsv", overwrite=True)
    injections = injections or {}
    paths = []
    for detector in detectors:
        model, _ = l2_model(
            detector, start_time, catalog, scene, side, exposure_seed, injections.get(detector), with_wcs
        )
        path = directory / f"roman_wfi_image_{detector.lower()}_{start_time:%Y%m%dT%H%M%S}_cal.asdf"
        model.save(path)
        paths.append(path)
        if on_file is not None:
            on_file(path)
    return paths, catalog_path
