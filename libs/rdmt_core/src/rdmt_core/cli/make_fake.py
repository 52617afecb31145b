"""``rdmt make-fake``: write synthetic Roman files with known, injected anomalies.

``rdmt make-fake l2 DIR`` writes one Level-2 image per detector and the field's
reference catalogue (``DIR/catalog/<field>.ecsv``); ``rdmt make-fake dark DIR``
writes one dark reference file per detector. The generators live in
:mod:`rdmt_core.synthetic_l2` and :mod:`rdmt_core.synthetic`; this module only
parses options.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import click

from ..geometry import DETECTORS


def _detectors(value: str) -> tuple[str, ...]:
    if value == "all":
        return DETECTORS
    names = tuple(d.strip().upper() for d in value.split(",") if d.strip())
    unknown = [d for d in names if d not in DETECTORS]
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)}: expected WFI01..WFI18 or 'all'")
    return names


def _side(value: int) -> int:
    if value % 32 or value < 64:
        raise click.BadParameter(f"{value} must be a multiple of 32, at least 64 (4096 is a full detector)")
    return value


@click.group("make-fake")
def make_fake() -> None:
    """Write synthetic Roman files with known, injected anomalies (for trying RDMT and for tests)."""


@make_fake.command("l2")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--detectors", default="all", show_default=True, help="Comma-separated WFInn, or 'all'.")
@click.option("--side", default=4096, show_default=True, help="Frame side (the image is side - 8: 4088 at 4096).")
@click.option("--start", "start", default="2027-03-01T00:00:00", show_default=True, help="Exposure start (UTC).")
@click.option("--stars", default=2000, show_default=True, help="Stars per full-size detector (scaled by area).")
@click.option("--seed", default=0, show_default=True, help="Seed of the field (catalogue) and the noise.")
@click.option("--field", "field_name", default="bulge-01", show_default=True, help="Field name (catalogue file).")
@click.option("--shift", nargs=2, type=float, default=(0.0, 0.0), show_default=True,
              help="Astrometric error: file WCS minus truth, RA*cos(Dec) and Dec (arcsec).")
@click.option("--rotation", default=0.0, show_default=True, help="Astrometric error: WCS rotation (arcsec).")
@click.option("--one-over-f", default=0.0, show_default=True, help="1/f noise rms (white-noise sigmas).")
@click.option("--gradient", nargs=2, type=float, default=(0.0, 0.0), show_default=True,
              help="Background change across the image in x and y (DN/s).")
@click.option("--step", nargs=2, type=(int, float), default=None,
              help="Background step: amplifier n and DN/s added to amplifiers n..32.")
@click.option("--blur", default=1.0, show_default=True, help="PSF FWHM scale factor.")
@click.option("--ellipticity", default=0.0, show_default=True, help="PSF ellipticity (a^2-b^2)/(a^2+b^2).")
@click.option("--no-wcs", is_flag=True, help="Write the images without a WCS.")
@click.option("--psf", type=click.Choice(["roman", "moffat"]), default="roman", show_default=True,
              help="roman: galsim.roman's PSF of each detector and filter (rings, spikes, wings); "
                   "moffat: an idealised Moffat.")
@click.option("--filter", "optical_element", default="F158", show_default=True,
              type=click.Choice(["F062", "F087", "F106", "F129", "F146", "F158", "F184", "F213"]),
              help="Optical element (meta.instrument.optical_element; the PSF's wavelength).")
@click.option("--distortion", default=2.0, show_default=True,
              help="Polynomial distortion of the WCS (pixels at the corners; 0: a plain tangent plane).")
def make_fake_l2(directory, detectors, side, start, stars, seed, field_name, shift, rotation, one_over_f,
                 gradient, step, blur, ellipticity, no_wcs, psf, optical_element, distortion) -> None:
    """Level-2 images (ImageModel) of one exposure and the field's reference catalogue."""
    from ..synthetic_l2 import L2Injection, L2Scene, write_l2_exposure

    names = _detectors(detectors)
    scene = L2Scene(
        star_density=stars / 4088**2, seed=seed, field_name=field_name, psf_model=psf,
        optical_element=optical_element, distortion=distortion,
    )
    injection = L2Injection(
        wcs_shift_arcsec=tuple(shift), wcs_rotation_arcsec=rotation, one_over_f=one_over_f,
        background_gradient=tuple(gradient), background_step=tuple(step) if step else None,
        psf_fwhm_scale=blur, psf_ellipticity=ellipticity,
    )
    when = datetime.fromisoformat(start).replace(tzinfo=UTC)
    began = time.perf_counter()
    paths, catalog = write_l2_exposure(
        Path(directory), when, scene, _side(side), exposure_seed=seed,
        injections=dict.fromkeys(names, injection), detectors=names, with_wcs=not no_wcs,
    )
    for path in paths:
        click.echo(str(path))
    click.echo(f"catalogue: {catalog}")
    click.echo(f"{len(paths)} images in {time.perf_counter() - began:.1f} s", err=True)


@make_fake.command("dark")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--detectors", default="all", show_default=True, help="Comma-separated WFInn, or 'all'.")
@click.option("--side", default=4096, show_default=True, help="Detector side in pixels.")
@click.option("--useafter", default="2026-10-01T00:00:00", show_default=True, help="meta.useafter (UTC).")
@click.option("--seed", default=1, show_default=True, help="Delivery seed (the noise; defects are fixed).")
@click.option("--dark-scale", default=1.0, show_default=True, help="Multiply the dark current.")
def make_fake_dark(directory, detectors, side, useafter, seed, dark_scale) -> None:
    """Dark reference files (DarkRefModel) of one delivery."""
    from ..synthetic import Anomaly, write_dark_delivery

    names = _detectors(detectors)
    anomalies = dict.fromkeys(names, Anomaly(dark_scale=dark_scale))
    paths = write_dark_delivery(
        Path(directory), datetime.fromisoformat(useafter), _side(side), seed, anomalies, names
    )
    for path in paths:
        click.echo(str(path))
