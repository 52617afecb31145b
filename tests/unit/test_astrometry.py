"""The astrometry monitor: injected WCS errors are recovered, a clean image passes, bad input is a status."""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table
from roman_datamodels import dqflags
from scipy.spatial import cKDTree

from rdmt_core.config import load_config
from rdmt_core.errors import ConfigError
from rdmt_core.evaluators import History
from rdmt_core.measure.catalog import ReferenceCatalog, read_catalog_file
from rdmt_core.measure.matching import match_offsets
from rdmt_core.monitors import get_monitor, monitors_for
from rdmt_core.monitors.astrometry import AstrometryMonitor, AstrometryOptions
from rdmt_core.monitors.astrometry.context import context_for
from rdmt_core.outputs import report_figures, write_report
from rdmt_core.pipeline import EmbeddedPipeline
from rdmt_core.records import FileIdentity, FileResult, Status
from rdmt_core.results import file_result
from rdmt_core.synthetic_l2 import BORDER, PIXEL_SCALE, L2Injection, L2Scene, field_catalog, l2_arrays, l2_model
from rdmt_core.synthetic_psf import psf_truth

SIDE = 512
N = SIDE - 2 * BORDER
SCENE = L2Scene(star_density=400 / N**2, seed=11)  # ~400 stars on a 504x504 image
DETECTOR = "WFI01"
START = datetime(2027, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalog_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("catalog") / "field.ecsv"
    field_catalog(SCENE, SIDE, (DETECTOR,)).write(path, format="ascii.ecsv")
    return path


def _config(**options):
    return load_config(monitors={"astrometry": {"options": options}} if options else {})


def _result(arrays: dict[str, np.ndarray], wcs, config, n_pixels: int = N) -> FileResult:
    """The monitor's result through the library's path: context from the WCS and the configured catalogue."""
    options = config.options_for("astrometry", DETECTOR)
    context = context_for(wcs, n_pixels, options)
    identity = FileIdentity("synthetic.asdf", "ImageModel", DETECTOR, START)
    return file_result(AstrometryMonitor, arrays, identity, config, History(), "test", context)


def _image(injection: L2Injection | None = None, scene: L2Scene = SCENE):
    catalog = field_catalog(scene, SIDE, (DETECTOR,))
    return l2_arrays(DETECTOR, catalog, scene, SIDE, injection=injection)


def _values(result: FileResult) -> dict:
    return {m.spec.name: m.values for m in result.metrics}


def _absolute_statuses(result: FileResult) -> set[str]:
    return {s for b in result.evaluations if b.evaluator in ("mission", "soc") for s in b.status}


@pytest.mark.parametrize("shift", [(0.05, -0.1), (0.2, 0.15), (-0.12, 0.0), (0.0, 0.08)])
def test_an_injected_wcs_shift_is_recovered_within_10_mas(shift, catalog_path):
    arrays, file_wcs, _, _ = _image(L2Injection(wcs_shift_arcsec=shift))
    result = _result(arrays, file_wcs, _config(catalog_path=str(catalog_path)))
    got = _values(result)
    assert "status" not in result.notes
    assert got["n_matched"].detector >= 200
    assert got["offset_ra_mean"].detector == pytest.approx(shift[0], abs=0.010)
    assert got["offset_dec_mean"].detector == pytest.approx(shift[1], abs=0.010)
    assert got["offset_median"].detector == pytest.approx(np.hypot(*shift), abs=0.010)
    # every amplifier with enough stars sees the same shift
    amplifiers = got["offset_ra_mean"].amplifier
    assert np.isfinite(amplifiers).sum() >= 16
    assert np.nanmax(np.abs(amplifiers - shift[0])) < 0.015
    assert abs(got["rotation"].detector) < 5.0  # arcsec of angle: noise only


def test_a_shift_larger_than_the_match_radius_is_measured_and_fails(catalog_path):
    shift = (-1.5, 0.8)  # beyond the 0.5" match radius: found by the offset vote first
    arrays, file_wcs, _, _ = _image(L2Injection(wcs_shift_arcsec=shift))
    result = _result(arrays, file_wcs, _config(catalog_path=str(catalog_path)))
    got = _values(result)
    assert got["offset_ra_mean"].detector == pytest.approx(shift[0], abs=0.010)
    assert got["offset_dec_mean"].detector == pytest.approx(shift[1], abs=0.010)
    fails = {b.metric for b in result.evaluations if b.scale == "detector" and Status.FAIL.value in b.status}
    assert {"offset_ra_mean", "offset_dec_mean", "offset_median", "offset_rms"} <= fails


def test_an_injected_rotation_is_recovered(catalog_path):
    config = _config(catalog_path=str(catalog_path))
    clean = _values(_result(*_image()[:2], config))["rotation"].detector
    arrays, file_wcs, _, _ = _image(L2Injection(wcs_rotation_arcsec=150.0))
    got = _values(_result(arrays, file_wcs, config))
    # centroid noise over ~270 stars within 28" of the centre: about 1.2" of angle
    assert got["rotation"].detector == pytest.approx(150.0, abs=5.0)
    assert got["rotation"].detector - clean == pytest.approx(150.0, abs=0.5)  # the same stars, rotated
    assert got["offset_ra_mean"].detector == pytest.approx(0.0, abs=0.005)  # a rotation about the centre


def test_a_clean_image_has_centroid_noise_only_and_passes(catalog_path):
    arrays, file_wcs, _, truth = _image()
    result = _result(arrays, file_wcs, _config(catalog_path=str(catalog_path)))
    got = _values(result)
    # the RMS offset is the centroid error: measured positions against the drawn ones
    x, y = result.extras["star_x"] - BORDER, result.extras["star_y"] - BORDER
    distance, _ = cKDTree(np.column_stack([truth.x, truth.y])).query(np.column_stack([x, y]))
    centroid_rms = np.sqrt(np.mean(distance**2)) * PIXEL_SCALE
    assert got["offset_rms"].detector == pytest.approx(centroid_rms, rel=0.1)
    assert got["offset_rms"].detector < 0.01
    assert abs(got["offset_ra_mean"].detector) < 0.002 and abs(got["offset_dec_mean"].detector) < 0.002
    assert _absolute_statuses(result) <= {Status.PASS.value, Status.INCOMPLETE.value}
    assert Status.PASS.value in _absolute_statuses(result)
    # change is off and trend has no history yet: nothing fails
    assert result.status in (Status.PASS, Status.INCOMPLETE)
    assert not any(b.evaluator == "change" for b in result.evaluations)
    # counts: every matched star was detected, and each amplifier sums to the detector
    assert 0 < got["n_matched"].detector <= got["n_detected"].detector
    assert got["n_detected"].amplifier.sum() == got["n_detected"].detector
    assert got["n_matched"].superpixel.sum() == got["n_matched"].detector
    # the rotation is defined at the detector only
    assert not any(b.metric == "rotation" and b.scale != "detector" for b in result.evaluations)


def _with_bad_pixels(arrays: dict[str, np.ndarray], fraction: float, seed: int = 1) -> dict[str, np.ndarray]:
    """A copy with ``fraction`` of the pixels DO_NOT_USE and NaN, scattered at random (as on an H4RG detector)."""
    bad = np.random.default_rng(seed).random(arrays["data"].shape) < fraction
    data, dq = arrays["data"].copy(), arrays["dq"].copy()
    data[bad] = np.nan
    dq[bad] |= dqflags.pixel.DO_NOT_USE
    return {**arrays, "data": data, "dq": dq}


def test_scattered_bad_pixels_cost_few_stars_and_no_accuracy(catalog_path):
    """2 % of the pixels unusable: a star is still fitted on the usable pixels of its box (they used to cost 90 %)."""
    shift = (0.05, -0.1)
    arrays, file_wcs, _, _ = _image(L2Injection(wcs_shift_arcsec=shift))
    config = _config(catalog_path=str(catalog_path))
    clean = _values(_result(arrays, file_wcs, config))
    result = _result(_with_bad_pixels(arrays, 0.02), file_wcs, config)
    got = _values(result)
    assert "status" not in result.notes
    assert got["n_matched"].detector == pytest.approx(clean["n_matched"].detector, rel=0.15)  # 268 and 264
    assert got["offset_ra_mean"].detector == pytest.approx(shift[0], abs=0.010)
    assert got["offset_dec_mean"].detector == pytest.approx(shift[1], abs=0.010)
    assert got["offset_rms"].detector == pytest.approx(clean["offset_rms"].detector, abs=0.002)
    assert " measured with unusable pixels (non-finite or DO_NOT_USE) left out" in result.notes["centroids"]


def _nan_offsets(result: FileResult) -> bool:
    got = _values(result)
    return all(
        np.isnan(got[name].detector) and np.isnan(got[name].amplifier).all()
        for name in ("offset_ra_mean", "offset_dec_mean", "offset_median", "offset_rms", "rotation")
    )


def test_no_wcs_is_a_status_with_the_stars_still_counted(catalog_path):
    arrays, _, _, _ = _image()
    result = _result(arrays, None, _config(catalog_path=str(catalog_path)))
    assert "no WCS" in result.notes["status"]
    assert _nan_offsets(result)
    assert _values(result)["n_detected"].detector > 300
    assert np.isnan(_values(result)["n_matched"].detector)


@pytest.mark.parametrize(
    ("make", "status"),
    [
        (lambda a: np.full_like(a, np.nan), "no usable pixel"),
        (lambda a: np.full_like(a, 0.8), "no noise"),
    ],
)
def test_an_unmeasurable_image_is_a_status(make, status, catalog_path):
    arrays, file_wcs, _, _ = _image()
    arrays = {**arrays, "data": make(arrays["data"])}
    result = _result(arrays, file_wcs, _config(catalog_path=str(catalog_path)))
    assert status in result.notes["status"]
    assert _nan_offsets(result)
    assert _values(result)["n_detected"].detector == 0


def test_no_stars_is_too_few_stars(catalog_path):
    arrays, file_wcs, _, _ = _image(scene=L2Scene(star_density=0.0, seed=11))
    result = _result(arrays, file_wcs, _config(catalog_path=str(catalog_path)))
    assert "no isolated, unsaturated star" in result.notes["status"]
    assert _nan_offsets(result)
    assert _values(result)["n_matched"].detector == 0


def test_too_few_matched_stars_reports_the_counts(catalog_path):
    arrays, file_wcs, _, _ = _image()
    result = _result(arrays, file_wcs, _config(catalog_path=str(catalog_path), min_stars=1000))
    assert result.notes["status"].startswith("too few matched stars: ")
    assert result.notes["status"].endswith(" < 1000")
    assert _nan_offsets(result)
    assert _values(result)["n_matched"].detector > 200


def test_stars_outside_the_wcs_bounding_box_are_left_out_of_the_matching(tmp_path, catalog_path):
    """A gwcs WCS is NaN outside its bounding box: those stars are set aside (with a note), not a crash."""
    shift = (0.05, -0.1)
    arrays, file_wcs, _, _ = _image(L2Injection(wcs_shift_arcsec=shift))
    file_wcs.bounding_box = ((-0.5, 300.0), (-0.5, N - 0.5))  # NaN beyond science column 300
    entry = read_catalog_file(catalog_path)
    context = {"wcs": file_wcs, "catalog": ReferenceCatalog(entry.ra, entry.dec, "field"), "problem": None}
    identity = FileIdentity("synthetic.asdf", "ImageModel", DETECTOR, START)
    result = file_result(AstrometryMonitor, arrays, identity, _config(), History(), "test", context)
    got = _values(result)
    assert "status" not in result.notes
    outside = int(result.notes["sky positions"].split()[0])
    assert outside > 50 and "outside its bounding box" in result.notes["sky positions"]
    assert result.extras["star_x"].max() - BORDER < 300.5
    assert got["n_matched"].detector > 100
    assert got["offset_ra_mean"].detector == pytest.approx(shift[0], abs=0.010)
    assert got["offset_dec_mean"].detector == pytest.approx(shift[1], abs=0.010)
    assert len(report_figures(result, tmp_path, "bounded")) == 1
    file_wcs.bounding_box = ((-0.5, 200.0), (-0.5, N - 0.5))  # the centre (251.5, 251.5) too
    result = file_result(AstrometryMonitor, arrays, identity, _config(), History(), "test", context)
    assert result.notes["status"].startswith("the WCS gives no sky position for the image centre")
    assert _nan_offsets(result) and _values(result)["n_matched"].detector == 0


def test_matching_sets_non_finite_positions_aside():
    rng = np.random.default_rng(4)
    ra, dec = 268.0 + rng.uniform(0, 0.01, 50), -29.0 + rng.uniform(0, 0.01, 50)
    catalog = SkyCoord(np.append(ra, np.nan) * u.deg, np.append(dec, 0.0) * u.deg)
    measured_ra, measured_dec = ra + 0.1 / 3600 / np.cos(np.deg2rad(dec)), dec.copy()  # +0.1" in RA
    measured_ra[[3, 17]] = np.nan
    measured_dec[40] = np.nan
    measured = SkyCoord(measured_ra * u.deg, measured_dec * u.deg)
    options = AstrometryOptions()
    index, d_ra, d_dec = match_offsets(measured, catalog, options)
    lost = np.isin(np.arange(50), [3, 17, 40])
    assert np.all(index[lost] == -1) and np.isnan(d_ra[lost]).all()
    np.testing.assert_array_equal(index[~lost], np.arange(50)[~lost])
    np.testing.assert_allclose(d_ra[~lost], 0.1, atol=1e-6)
    np.testing.assert_allclose(d_dec[~lost], 0.0, atol=1e-6)


def test_catalogue_problems_are_statuses(tmp_path, catalog_path):
    arrays, file_wcs, _, _ = _image()
    far = Table.read(catalog_path)
    far["dec"] += 2.0  # degrees: nowhere near the image
    far.write(tmp_path / "far.ecsv", format="ascii.ecsv")
    (tmp_path / "broken.ecsv").write_text("# %ECSV 1.0\nnot a table\n")
    far[:0].write(tmp_path / "empty.ecsv", format="ascii.ecsv")
    cases = {
        "no reference catalogue configured": {},
        "does not overlap": {"catalog_path": str(tmp_path / "far.ecsv")},
        f"catalogue {tmp_path / 'empty.ecsv'} has no rows": {"catalog_path": str(tmp_path / "empty.ecsv")},
        "cannot read catalogue": {"catalog_path": str(tmp_path / "broken.ecsv")},
        "not found": {"catalog_path": str(tmp_path / "missing.ecsv")},
        "overlaps the image footprint; unreadable: broken.ecsv (": {"catalog_dir": str(tmp_path)},  # and far.ecsv
        "; empty: empty.ecsv (has no rows)": {"catalog_dir": str(tmp_path)},
    }
    for status, options in cases.items():
        result = _result(arrays, file_wcs, _config(**options))
        assert status in result.notes["status"], (options, result.notes)
        assert _nan_offsets(result)
        assert _values(result)["n_detected"].detector > 300


def test_a_catalogue_directory_is_searched_by_sky_position(tmp_path, catalog_path):
    far = Table.read(catalog_path)
    far["dec"] += 2.0
    far.write(tmp_path / "a_far.ecsv", format="ascii.ecsv")
    Table.read(catalog_path).write(tmp_path / "b_here.ecsv", format="ascii.ecsv")
    arrays, file_wcs, _, _ = _image(L2Injection(wcs_shift_arcsec=(0.1, 0.0)))
    result = _result(arrays, file_wcs, _config(catalog_dir=str(tmp_path)))
    assert "b_here.ecsv" in result.notes["catalogue"] and "a_far" not in result.notes["catalogue"]
    assert _values(result)["offset_ra_mean"].detector == pytest.approx(0.1, abs=0.01)


def test_catalogue_files_are_read_once_per_modification(tmp_path, catalog_path):
    path = tmp_path / "cat.ecsv"
    Table.read(catalog_path).write(path, format="ascii.ecsv")
    first = read_catalog_file(path)
    assert read_catalog_file(path) is first
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert read_catalog_file(path) is not first


def test_the_catalogue_can_be_set_per_detector(tmp_path, catalog_path):
    config = load_config(
        monitors={"astrometry": {"detectors": {"WFI01": {"options": {"catalog_path": str(catalog_path)}}}}}
    )
    assert config.options_for("astrometry", "WFI01").catalog_path == str(catalog_path)
    assert config.options_for("astrometry", "WFI02").catalog_path is None


def test_options_are_checked_when_the_configuration_loads():
    with pytest.raises(ConfigError, match=r"astrometry\.options: fit_shape: must be odd, got 4"):
        load_config(monitors={"astrometry": {"options": {"fit_shape": 4}}})
    with pytest.raises(ConfigError, match="match_radius_arcsec"):
        load_config(monitors={"astrometry": {"options": {"match_radius_arcsec": -1}}})


def test_max_fit_stars_caps_the_fits_whatever_the_field(catalog_path):
    """The docs' claim: only the brightest max_fit_stars are fitted, so sparse cells stay NaN however many stars."""
    arrays, file_wcs, _, _ = _image()
    result = _result(arrays, file_wcs, _config(catalog_path=str(catalog_path), max_fit_stars=60))
    got = _values(result)
    assert got["n_detected"].detector > 300
    assert result.notes["centroids"].startswith("60 of 60 stars fitted")
    assert 50 <= got["n_matched"].detector <= 60
    assert np.isnan(got["offset_ra_mean"].superpixel).all()  # 16x16-pixel super-pixels: none has 5 of 60 stars
    assert np.isnan(got["offset_ra_mean"].amplifier).sum() > 16  # about 2 stars per amplifier


def test_report_figures_from_extras_and_from_metrics(tmp_path, catalog_path):
    arrays, file_wcs, _, _ = _image(L2Injection(wcs_shift_arcsec=(0.05, -0.1)))
    result = _result(arrays, file_wcs, _config(catalog_path=str(catalog_path), min_stars_per_cell=1))
    figures = report_figures(result, tmp_path, "with_extras")
    assert len(figures) == 1 and figures[0].path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "matched stars" in figures[0].caption and "sky axes" not in figures[0].caption
    rebuilt = dataclasses.replace(result, extras={})  # as from a stored record: metrics only
    figures = report_figures(rebuilt, tmp_path, "from_metrics")
    assert len(figures) == 1 and "super-pixels" in figures[0].caption and figures[0].path.exists()
    # stored offsets are (RA*cos(Dec), Dec): drawn on the detector grid, they point in sky axes
    assert "each arrow in sky axes (north up, east left" in figures[0].caption
    assert "not along the detector's pixel axes" in figures[0].caption
    sparse = _result(arrays, file_wcs, _config(catalog_path=str(catalog_path)))  # no super-pixel has 5 stars
    figures = report_figures(dataclasses.replace(sparse, extras={}), tmp_path, "amplifiers")
    assert len(figures) == 1 and "amplifiers" in figures[0].caption
    no_values = _result(arrays, None, _config(catalog_path=str(catalog_path)))
    assert report_figures(no_values, tmp_path, "none") == []
    report = write_report(result, tmp_path / "reports")  # the report embeds the monitor's own figure
    offsets = [p for p in report.figures if p.name.endswith("_offsets.png")]
    assert len(offsets) == 1 and offsets[0].name in report.html.read_text()


def test_a_file_without_wcs_through_the_pipeline_runs_the_other_monitors(tmp_path, catalog_path):
    catalog = field_catalog(SCENE, SIDE, (DETECTOR,))
    model, _ = l2_model(DETECTOR, START, catalog, SCENE, SIDE, with_wcs=False)
    path = tmp_path / "in" / "no_wcs_cal.asdf"
    path.parent.mkdir()
    model.save(path)
    config = load_config(
        store_url=f"chdb://{tmp_path / 'store'}",
        output_dir=str(tmp_path / "out"),
        outputs={"ecsv": False, "report": False, "notify": False},
        monitors={"astrometry": {"options": {"catalog_path": str(catalog_path)}}},
    )
    with EmbeddedPipeline(config, run_id="no-wcs") as pipeline:
        outcome = pipeline.process(str(path))
    assert outcome.problem is None
    results = {r.monitor: r for r in outcome.results}
    assert set(results) == {m.name for m in monitors_for("ImageModel")}
    assert all(outcome.stored)
    assert "no WCS" in results["astrometry"].notes["status"]
    assert _values(results["astrometry"])["n_detected"].detector > 300
    psf = _values(results["psf_shape"])
    assert psf["psf_fwhm"].detector == pytest.approx(psf_truth(1, "F158").fwhm, rel=0.05)


def test_registered_and_accepts_image_models():
    assert get_monitor("astrometry") is AstrometryMonitor
    assert AstrometryMonitor in monitors_for("ImageModel")
    arrays = AstrometryMonitor.example_arrays(256, 1)
    assert arrays["data"].shape == (256, 256) and np.isnan(arrays["data"][:BORDER]).all()
    context = AstrometryMonitor.example_context(256, 1)
    result = AstrometryMonitor.compute(arrays, AstrometryMonitor.options_model(), context)
    assert "status" not in result.notes
    assert _values(result)["n_matched"].detector >= 10


@pytest.mark.slow
def test_full_size_clean_image_both_star_monitors(tmp_path):
    """A full 4088x4088 image with about 2,000 stars: both star monitors measure it and pass."""
    scene = L2Scene()
    catalog = field_catalog(scene, 4096, (DETECTOR,))
    path = tmp_path / "field.ecsv"
    catalog.write(path, format="ascii.ecsv")
    arrays, file_wcs, _, truth = l2_arrays(DETECTOR, catalog, scene, 4096)
    config = _config(catalog_path=str(path))
    astrometry = _result(arrays, file_wcs, config, n_pixels=4088)
    got = _values(astrometry)
    assert got["n_detected"].detector == pytest.approx(truth.x.size, rel=0.02)
    assert got["n_matched"].detector >= 550
    assert np.isfinite(got["offset_ra_mean"].amplifier).all()  # every 128-column strip has its stars
    assert got["offset_rms"].detector < 0.005
    assert abs(got["rotation"].detector) < 1.0
    identity = FileIdentity("synthetic.asdf", "ImageModel", DETECTOR, START)
    psf = file_result(get_monitor("psf_shape"), arrays, identity, config, History(), "test")
    assert _values(psf)["psf_fwhm"].detector == pytest.approx(truth.fwhm, rel=0.05)
    for result in (astrometry, psf):
        assert _absolute_statuses(result) <= {Status.PASS.value, Status.INCOMPLETE.value}
