"""The synthetic Level-2 generator: valid files, and the truth it claims to inject."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table
from click.testing import CliRunner
from roman_datamodels import datamodels as dm

from rdmt_core import synthetic_psf
from rdmt_core.cli import main
from rdmt_core.geometry import N_AMPLIFIERS
from rdmt_core.synthetic_l2 import (
    BORDER,
    L2Injection,
    L2Scene,
    detector_centre,
    field_catalog,
    from_readout_order,
    l2_arrays,
    make_wcs,
    readout_order,
    render_stars,
    sky_to_pixel,
    write_l2_exposure,
)
from rdmt_core.synthetic_psf import psf_tables, psf_truth, render_psf_stars

START = datetime(2027, 3, 1, tzinfo=UTC)


def test_files_validate_and_reopen_with_roman_datamodels(tmp_path):
    paths, catalog_path = write_l2_exposure(tmp_path, START, side=256, detectors=("WFI01", "WFI14"))
    catalog = Table.read(catalog_path)
    assert list(catalog.colnames) == ["source_id", "ra", "dec", "phot_g_mean_mag"]
    assert catalog["ra"].unit == u.deg and len(np.unique(catalog["source_id"])) == len(catalog)
    for path, detector in zip(paths, ("WFI01", "WFI14"), strict=True):
        with dm.open(path) as model:
            model.validate()
            assert model.meta.instrument.detector == detector
            assert model.meta.exposure.type == "WFI_IMAGE"
            assert model.data.shape == (256 - 2 * BORDER,) * 2 and model.data.dtype == np.float32
            ra, dec = model.meta.wcs(123.5, 123.5)  # the centre of the 248-pixel image
            centre = SkyCoord(ra * u.deg, dec * u.deg)
            reference = SkyCoord(model.meta.wcsinfo.ra_ref * u.deg, model.meta.wcsinfo.dec_ref * u.deg)
            assert centre.separation(reference) < 1 * u.mas


def test_a_file_can_be_written_without_a_wcs(tmp_path):
    paths, _ = write_l2_exposure(tmp_path, START, side=128, detectors=("WFI02",), with_wcs=False)
    with dm.open(paths[0]) as model:
        assert model.meta.wcs is None


@pytest.mark.parametrize("shift", [(0.05, -0.1), (0.2, 0.15)])
def test_the_file_wcs_is_the_true_one_shifted_by_the_injection(shift):
    scene = L2Scene(star_density=2e-3)
    catalog = field_catalog(scene, 512, ("WFI05",))
    injection = L2Injection(wcs_shift_arcsec=shift)
    _, file_wcs, true_wcs, truth = l2_arrays("WFI05", catalog, scene, 512, injection=injection)
    n = 512 - 2 * BORDER
    inside = (truth.x > -0.5) & (truth.x < n - 0.5) & (truth.y > -0.5) & (truth.y < n - 0.5)  # the bounding box
    assert inside.sum() > 100
    x, y = truth.x[inside], truth.y[inside]
    true = SkyCoord(*true_wcs.pixel_to_world_values(x, y), unit="deg")
    seen = SkyCoord(*file_wcs.pixel_to_world_values(x, y), unit="deg")
    d_ra, d_dec = true.spherical_offsets_to(seen)
    np.testing.assert_allclose(d_ra.to_value(u.arcsec), shift[0], atol=1e-3)
    np.testing.assert_allclose(d_dec.to_value(u.arcsec), shift[1], atol=1e-3)


@pytest.mark.parametrize("angle", [25.0, 45.0, -70.0])
def test_the_catalogue_covers_the_rotated_image_to_its_corners(angle):
    """The stars fill the whole image at the scene density, corners included, whatever the position angle."""
    side, n = 512, 512 - 2 * BORDER
    scene = L2Scene(star_density=4e-3, position_angle_deg=angle, seed=4)
    *_, truth = l2_arrays("WFI05", field_catalog(scene, side, ("WFI05",)), scene, side)
    corner = n // 8  # the corner squares lie outside a footprint that ignores the rotation (0.55 n)
    expected = scene.star_density * corner**2  # 16 stars in each
    counts = []
    for x_low in (True, False):
        for y_low in (True, False):
            in_x = truth.x < corner - 0.5 if x_low else truth.x > n - corner - 0.5
            in_y = truth.y < corner - 0.5 if y_low else truth.y > n - corner - 0.5
            counts.append(np.count_nonzero(in_x & in_y))
    assert min(counts) > expected / 3 and sum(counts) > 0.6 * 4 * expected, counts  # before: 3 to 24 in all
    inside = (truth.x > -0.5) & (truth.x < n - 0.5) & (truth.y > -0.5) & (truth.y < n - 0.5)
    assert np.count_nonzero(inside) == pytest.approx(scene.star_density * n**2, rel=0.1)  # 1,016 stars


def test_readout_order_reverses_even_amplifiers_and_inverts():
    side = 256
    cell = side // N_AMPLIFIERS
    frame = np.arange(side * side, dtype=np.float64).reshape(side, side)
    series = readout_order(frame)
    assert series.shape == (N_AMPLIFIERS, side * cell)
    np.testing.assert_array_equal(series[0, :cell], frame[0, :cell])  # amplifier 1: low to high column
    np.testing.assert_array_equal(series[1, :cell], frame[0, 2 * cell - 1 : cell - 1 : -1])  # amplifier 2: reversed
    np.testing.assert_array_equal(series[0, cell : 2 * cell], frame[1, :cell])  # then the next row
    np.testing.assert_array_equal(from_readout_order(series, side), frame)


def test_injected_one_over_f_is_red_in_readout_order():
    scene = L2Scene(star_density=0.0)
    catalog = field_catalog(scene, 256, ("WFI09",))
    clean, *_ = l2_arrays("WFI09", catalog, scene, 256)
    noisy, *_ = l2_arrays("WFI09", catalog, scene, 256, injection=L2Injection(one_over_f=2.0))
    extra = noisy["data"].astype(np.float64) - clean["data"]
    assert np.std(extra) == pytest.approx(2.0 * scene.white_noise, rel=0.1)
    power = np.abs(np.fft.rfft(extra.mean(axis=1))) ** 2  # row means keep the low-frequency part
    assert power[1:9].mean() > 5 * power[-64:].mean()


@pytest.mark.parametrize("ellipticity", [0.0, 0.3])
def test_rendered_stars_keep_their_flux_and_shape(ellipticity):
    image = render_stars((41, 41), np.array([20.3]), np.array([19.8]), np.array([1000.0]), 1.6, ellipticity, 0.0)
    assert image.sum() == pytest.approx(1000.0, rel=0.03)  # the Moffat wings beyond 7 pixels are lost
    yy, xx = np.mgrid[0:41, 0:41]
    weights = image / image.sum()
    x0, y0 = (weights * xx).sum(), (weights * yy).sum()
    assert (x0, y0) == pytest.approx((20.3, 19.8), abs=0.01)
    ixx, iyy = (weights * (xx - x0) ** 2).sum() - 1 / 12, (weights * (yy - y0) ** 2).sum() - 1 / 12
    assert (ixx - iyy) / (ixx + iyy) == pytest.approx(ellipticity, abs=0.03)


def test_make_fake_l2_command(tmp_path):
    result = CliRunner().invoke(
        main, ["make-fake", "l2", str(tmp_path), "--side", "128", "--detectors", "WFI03,WFI04", "--step", "5", "0.1"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("*.asdf")) == [
        "roman_wfi_image_wfi03_20270301T000000_cal.asdf",
        "roman_wfi_image_wfi04_20270301T000000_cal.asdf",
    ]
    assert (tmp_path / "catalog" / "bulge-01.ecsv").exists()
    bad = CliRunner().invoke(main, ["make-fake", "l2", str(tmp_path), "--detectors", "WFI19"])
    assert bad.exit_code != 0 and "WFI19" in bad.output
    odd = CliRunner().invoke(main, ["make-fake", "l2", str(tmp_path / "odd"), "--side", "100"])
    assert odd.exit_code != 0 and "multiple of 32" in odd.output and not (tmp_path / "odd").exists()


def test_the_distorted_wcs_is_like_the_pipelines_and_sky_to_pixel_inverts_it():
    centre = detector_centre(L2Scene(), "WFI07", 4096)
    wcs = make_wcs(centre, 4088, 25.0, distortion=2.0)
    assert wcs.bounding_box is not None
    assert not wcs.forward_transform.has_inverse()  # gwcs must fall back to a numerical inverse
    plain = make_wcs(centre, 4088, 25.0)
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0, 4087, (2, 200))
    ra, dec = wcs.pixel_to_world_values(x, y)
    plain_x, plain_y = plain.world_to_pixel_values(ra, dec)
    assert 1.0 < np.hypot(plain_x - x, plain_y - y).max() < 4.0  # the distortion moves corners by pixels
    back_x, back_y = sky_to_pixel(centre, 4088, 25.0, 2.0, ra, dec)
    np.testing.assert_allclose(back_x, x, atol=1e-6)
    np.testing.assert_allclose(back_y, y, atol=1e-6)


def test_the_roman_psf_has_wings_and_the_truth_is_its_pixel_convolved_size():
    stamps, halo = psf_tables(7, "F158")
    core = stamps[8, 8]
    assert core.sum() + halo.sum() == pytest.approx(1.0, abs=0.01)
    h = halo.shape[0] // 2
    yy, xx = np.mgrid[-h : h + 1, -h : h + 1]
    beyond_32 = halo[np.hypot(xx, yy) > 32].sum()
    assert 0.01 < beyond_32 < 0.04  # ~2.5 % of the light beyond 32 pixels (plus what lies beyond 128)
    truth = psf_truth(7, "F158")
    assert 1.2 < truth.optical_fwhm < truth.fwhm < 1.6  # undersampled; the pixel widens it
    assert psf_truth(7, "F213").fwhm > truth.fwhm > psf_truth(7, "F087").fwhm  # diffraction grows with wavelength
    assert psf_truth(7, "F158", fwhm_scale=1.3).fwhm > 1.2 * truth.fwhm
    assert psf_truth(7, "F158", ellipticity=0.1).ellipticity > truth.ellipticity + 0.05


def test_psf_stars_are_drawn_at_their_positions_with_their_flux():
    x, y = np.array([40.3, 80.0]), np.array([50.6, 90.47])
    image = render_psf_stars((200, 200), x, y, np.array([1000.0, 500.0]), 7, "F158")
    assert image.sum() == pytest.approx(1500.0, rel=0.02)  # a little light falls off the 200x200 image
    assert image[50, 40] > 0.1 * 1000 and image[90, 80] > 0.1 * 500
    assert (image >= 0).all()
    # the core is galsim's own pixel-integrated drawing at the star's exact sub-pixel position (the
    # halo kernel is zero in the core's 25x25 box around the star's pixel, 40 and 50 here)
    psf = synthetic_psf._galsim_psf(7, "F158", 1.0, 0.0, 0.0)
    core = np.s_[50 - 12 : 50 + 13, 40 - 12 : 40 + 13]
    for dx, dy in ((0.3, 0.0), (0.013, -0.2), (-0.47, 0.41)):
        drawn = render_psf_stars((200, 200), np.array([40 + dx]), np.array([50 + dy]), np.array([1.0]), 7, "F158")
        exact = psf.drawImage(nx=25, ny=25, scale=synthetic_psf.PIXEL_SCALE, offset=(dx, dy)).array
        assert np.abs(drawn[core] - exact).max() < 2e-3 * exact.max()
