"""The PSF shape monitor: the synthetic truth is recovered, blur and elongation fail, bad input is a status."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np
import pytest
from roman_datamodels import dqflags
from scipy import integrate

from rdmt_core.config import load_config
from rdmt_core.evaluators import History
from rdmt_core.monitors import get_monitor, monitors_for
from rdmt_core.monitors.psf_shape import PsfShapeMonitor, PsfShapeOptions
from rdmt_core.monitors.psf_shape.metrics import calibrated_shape, moffat_stamps, stamp_moments, truncation_factor
from rdmt_core.outputs import report_figures
from rdmt_core.records import FileIdentity, FileResult, Status
from rdmt_core.results import file_result
from rdmt_core.synthetic_l2 import BORDER, L2Injection, L2Scene, field_catalog, l2_arrays

SIDE = 1024
N = SIDE - 2 * BORDER
SCENE = L2Scene(star_density=600 / N**2, seed=5)
START = datetime(2027, 3, 1, tzinfo=UTC)


def _result(injection: L2Injection | None = None, scene: L2Scene = SCENE, edit=None) -> FileResult:
    arrays, _, _, _ = l2_arrays("WFI07", field_catalog(scene, SIDE, ("WFI07",)), scene, SIDE, injection=injection)
    if edit is not None:
        arrays = edit(arrays)
    identity = FileIdentity("synthetic.asdf", "ImageModel", "WFI07", START)
    return file_result(PsfShapeMonitor, arrays, identity, load_config(), History(), "test")


def _values(result: FileResult) -> dict:
    return {m.spec.name: m.values for m in result.metrics}


def _statuses(result: FileResult, scale: str | None = None) -> set[str]:
    return {
        s
        for b in result.evaluations
        if b.evaluator in ("mission", "soc") and (scale is None or b.scale == scale)
        for s in b.status
    }


@pytest.fixture(scope="module")
def clean() -> FileResult:
    return _result()


def test_the_synthetic_psf_is_recovered_and_passes(clean):
    got = _values(clean)
    assert "status" not in clean.notes
    assert got["psf_fwhm"].detector == pytest.approx(1.6, rel=0.01)
    assert got["psf_fwhm_arcsec"].detector == pytest.approx(1.6 * 0.11, rel=0.01)
    assert got["psf_ellipticity"].detector < 0.01
    assert got["n_psf_stars"].detector > 300
    finite = np.isfinite(got["psf_fwhm"].amplifier)
    assert finite.sum() >= 28  # about 15 stars per amplifier
    assert np.abs(got["psf_fwhm"].amplifier[finite] / 1.6 - 1).max() < 0.04
    assert _statuses(clean) <= {Status.PASS.value, Status.INCOMPLETE.value}
    assert clean.status in (Status.PASS, Status.INCOMPLETE)  # trend has no history yet


def test_a_blurred_psf_is_measured_and_fails(clean):
    result = _result(L2Injection(psf_fwhm_scale=1.5))
    got = _values(result)
    assert got["psf_fwhm"].detector == pytest.approx(2.4, rel=0.01)
    assert got["psf_ellipticity"].detector < 0.01
    assert Status.FAIL.value in _statuses(result, "detector")
    fails = {b.metric for b in result.evaluations if b.evaluator == "mission" and Status.FAIL.value in b.status}
    assert fails == {"psf_fwhm"}


@pytest.mark.parametrize(("ellipticity", "angle"), [(0.2, 30.0), (0.15, -60.0)])
def test_an_elongated_psf_is_measured_and_fails(ellipticity, angle):
    result = _result(L2Injection(psf_ellipticity=ellipticity, psf_angle_deg=angle))
    got = _values(result)
    assert got["psf_ellipticity"].detector == pytest.approx(ellipticity, abs=0.01)
    assert got["psf_fwhm"].detector == pytest.approx(1.6, rel=0.01)  # the mean size is kept
    # the direction of the elongation, from the stars' ellipticity components
    e1, e2 = result.extras["e1"].mean(), result.extras["e2"].mean()
    assert np.rad2deg(0.5 * np.arctan2(e2, e1)) == pytest.approx(angle, abs=3.0)
    fails = {b.metric for b in result.evaluations if b.evaluator == "soc" and Status.FAIL.value in b.status}
    assert "psf_ellipticity" in fails


def test_saturated_stars_are_not_used():
    bright = L2Scene(star_density=600 / N**2, seed=5, bright_mag=13.0, faint_mag=20.0)  # ~5 % saturate
    arrays, _, _, _ = l2_arrays("WFI07", field_catalog(bright, SIDE, ("WFI07",)), bright, SIDE)
    result = _result(scene=bright)
    saturated = (arrays["dq"] & dqflags.pixel.SATURATED) != 0
    assert saturated.sum() > 20
    x = np.rint(result.extras["star_x"]).astype(int) - BORDER
    y = np.rint(result.extras["star_y"]).astype(int) - BORDER
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            assert not saturated[np.clip(y + dy, 0, N - 1), np.clip(x + dx, 0, N - 1)].any()
    assert _values(result)["psf_fwhm"].detector == pytest.approx(1.6, rel=0.01)


def test_scattered_bad_pixels_cost_few_stars_and_no_accuracy(clean):
    """2 % of the pixels unusable: the moments take the star's model there, so neither the count nor the size moves."""

    def bad_pixels(arrays):
        bad = np.random.default_rng(1).random(arrays["data"].shape) < 0.02
        data, dq = arrays["data"].copy(), arrays["dq"].copy()
        data[bad] = np.nan
        dq[bad] |= dqflags.pixel.DO_NOT_USE
        return {**arrays, "data": data, "dq": dq}

    result = _result(edit=bad_pixels)
    got, before = _values(result), _values(clean)
    assert "status" not in result.notes
    assert got["n_psf_stars"].detector == pytest.approx(before["n_psf_stars"].detector, rel=0.15)
    assert got["psf_fwhm"].detector == pytest.approx(1.6, rel=0.01)
    assert got["psf_fwhm"].detector == pytest.approx(before["psf_fwhm"].detector, rel=0.002)
    assert got["psf_ellipticity"].detector < 0.01
    assert " measured with unusable pixels (non-finite or DO_NOT_USE) left out" in result.notes["stars"]


def test_unusable_pixels_take_the_model_in_the_moments():
    """Model stars with a few pixels unusable keep their moments; leaving the pixels out would shrink them."""
    options = PsfShapeOptions()
    steps = (np.arange(4) + 0.5) / 4 - 0.5
    phases = np.tile(np.stack(np.meshgrid(steps, steps), axis=-1).reshape(-1, 2), (64, 1))  # 1,024 stars
    stamps = moffat_stamps(1.6, 0.1, 20.0, phases, 3.0, options.stamp_radius)
    usable = np.random.default_rng(3).random(stamps.shape) >= 0.05
    usable[:, options.stamp_radius, options.stamp_radius] = True  # a detected peak is always usable
    reference = np.array([np.mean(m) for m in stamp_moments(stamps, *phases.T, options)])
    filled = np.array([np.mean(m) for m in stamp_moments(stamps, *phases.T, options, usable)])
    dropped = np.array([np.mean(m) for m in stamp_moments(np.where(usable, stamps, 0.0), *phases.T, options)])
    trace = reference[0] + reference[1]
    assert (filled[0] + filled[1]) / trace == pytest.approx(1.0, abs=0.002)
    assert np.abs(filled - reference).max() < 0.002 * trace  # the ellipticity's Cxx - Cyy and Cxy too
    assert (dropped[0] + dropped[1]) / trace < 0.995  # zero weight alone: 1 % low (filled: +0.06 %)


@pytest.mark.parametrize(
    ("edit", "status"),
    [
        (lambda a: {**a, "data": np.full_like(a["data"], np.nan)}, "no usable pixel"),
        (lambda a: {**a, "data": np.full_like(a["data"], 0.8)}, "no noise"),
    ],
)
def test_an_unmeasurable_image_is_a_status(edit, status):
    result = _result(edit=edit)
    assert status in result.notes["status"]
    got = _values(result)
    assert np.isnan(got["psf_fwhm"].detector) and np.isnan(got["psf_ellipticity"].superpixel).all()
    assert got["n_psf_stars"].detector == 0
    assert _statuses(result) == {Status.INCOMPLETE.value}


def test_no_stars_is_too_few_stars():
    result = _result(scene=L2Scene(star_density=0.0, seed=5))
    assert result.notes["status"] == "too few stars for the PSF: 0 < 10"
    assert np.isnan(_values(result)["psf_fwhm"].detector)


def test_truncation_factor_matches_the_integral():
    for beta, k in ((3.0, 3.0), (4.5, 2.5)):
        alpha2 = 2.0 * (beta - 2.0)  # unit variance per axis

        def profile(r, p, beta=beta, alpha2=alpha2):
            return r**p * (1 + r * r / alpha2) ** (-beta) * r

        inside = integrate.quad(profile, 0, k, args=(2,))[0] / integrate.quad(profile, 0, k, args=(0,))[0]
        full = integrate.quad(profile, 0, np.inf, args=(2,))[0] / integrate.quad(profile, 0, np.inf, args=(0,))[0]
        assert truncation_factor(k, beta) == pytest.approx(inside / full, rel=1e-6)
    assert truncation_factor(1000.0, 3.0) == pytest.approx(1.0, abs=1e-5)


def test_moments_of_model_stars_at_unseen_pixel_phases():
    """The calibration uses 16 phases; stars at other phases and sizes come out within 1 %."""
    options = PsfShapeOptions()
    rng = np.random.default_rng(0)
    phases = rng.uniform(-0.5, 0.5, (200, 2))
    for fwhm, ellipticity in ((1.3, 0.0), (1.6, 0.1), (2.1, 0.25)):
        stamps = moffat_stamps(fwhm, ellipticity, 10.0, phases, 3.0, options.stamp_radius)
        moments = stamp_moments(stamps, np.zeros(200), np.zeros(200), options)
        got_fwhm, got_e = calibrated_shape(*(np.array([np.mean(m)]) for m in moments), options)
        assert got_fwhm[0] == pytest.approx(fwhm, rel=0.01)
        assert got_e[0] == pytest.approx(ellipticity, abs=0.005)


def test_report_figure_from_extras_and_from_metrics(tmp_path, clean):
    figures = report_figures(clean, tmp_path, "stars")
    assert len(figures) == 1 and figures[0].path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "stars coloured by FWHM" in figures[0].caption
    rebuilt = dataclasses.replace(clean, extras={})
    figures = report_figures(rebuilt, tmp_path, "map")  # ~0.6 star per super-pixel here
    assert len(figures) == 1 and "per amplifier" in figures[0].caption and figures[0].path.exists()
    empty = _result(edit=lambda a: {**a, "data": np.full_like(a["data"], np.nan)})
    assert report_figures(dataclasses.replace(empty, extras={}), tmp_path, "none") == []


def test_registered_for_image_models():
    assert get_monitor("psf_shape") is PsfShapeMonitor
    assert PsfShapeMonitor in monitors_for("ImageModel")
