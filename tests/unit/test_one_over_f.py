"""1/f noise monitor: readout series, calibrated significance, and injected 1/f found where it is."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest
from scipy import stats

from rdmt_core.config import load_config
from rdmt_core.evaluators import History
from rdmt_core.geometry import DETECTORS, N_AMPLIFIERS, Geometry, to_frame
from rdmt_core.measure.spectra import band_power, detrend, f_significance
from rdmt_core.monitors.one_over_f import OneOverFMonitor, OneOverFOptions
from rdmt_core.monitors.one_over_f.metrics import one_over_f_metrics, row_series
from rdmt_core.outputs import report_figures
from rdmt_core.records import FileIdentity, Status
from rdmt_core.results import file_result
from rdmt_core.synthetic_l2 import L2Injection, L2Scene, field_catalog, l2_arrays, readout_order

SIDE = 512  # 16-column strips, 504 science rows: 5 sigma needs ~0.05 (common mode) of the white noise
MODERATE, STRONG = 0.1, 0.2  # 1/f rms per pixel in units of the white-noise sigma (as 25x and 50x in the report)
LEVELS = {**dict.fromkeys(DETECTORS[:6], 0.0), **dict.fromkeys(DETECTORS[6:12], MODERATE)}
LEVELS.update(dict.fromkeys(DETECTORS[12:], STRONG))


def _identity(detector: str) -> FileIdentity:
    return FileIdentity(f"/data/{detector}.asdf", "ImageModel", detector, datetime(2027, 3, 1, tzinfo=UTC))


def _result(detector: str, injection: L2Injection, catalog=None, scene: L2Scene | None = None):
    scene = scene or L2Scene()
    catalog = catalog if catalog is not None else field_catalog(scene, SIDE, (detector,))
    arrays, *_ = l2_arrays(detector, catalog, scene, SIDE, injection=injection)
    arrays = {"data": arrays["data"], "dq": arrays["dq"]}
    return file_result(OneOverFMonitor, arrays, _identity(detector), load_config(), History(), "run")


def _values(result) -> dict:
    return {m.spec.name: m.values for m in result.metrics}


@pytest.fixture(scope="module")
def exposure():
    """One exposure of 18 detectors: no 1/f on WFI01-06, moderate on WFI07-12, strong on WFI13-18."""
    scene = L2Scene()
    catalog = field_catalog(scene, SIDE, DETECTORS)
    return {d: _result(d, L2Injection(one_over_f=LEVELS[d]), catalog, scene) for d in DETECTORS}


def test_injected_1_over_f_fails_exactly_on_the_detectors_that_have_it(exposure):
    failing = {d for d, result in exposure.items() if result.status == Status.FAIL}
    assert failing == set(DETECTORS[6:])
    for detector in DETECTORS[:6]:  # clean: no caution either, at any scale
        assert exposure[detector].status == Status.PASS, exposure[detector].notes["summary"]
    for detector in DETECTORS[6:]:  # detected on the detector scale: the pooled amplifiers and the common mode
        values = _values(exposure[detector])
        assert values["one_over_f_significance"].detector > 5.0
        assert values["one_over_f_common_significance"].detector > 5.0


def test_significance_grows_with_the_amplitude(exposure):
    def pooled(detectors):
        return np.mean([_values(exposure[d])["one_over_f_significance"].detector for d in detectors])

    def failing_amplifiers(detector):
        return int(np.sum(_values(exposure[detector])["one_over_f_significance"].amplifier > 5.0))

    assert pooled(DETECTORS[:6]) < 2.0 < 5.0 < pooled(DETECTORS[6:12]) < pooled(DETECTORS[12:])
    # one amplifier alone sees 16 low-frequency bins: strong 1/f is found on most amplifiers, moderate on few
    assert sum(failing_amplifiers(d) for d in DETECTORS[12:]) > 3 * sum(failing_amplifiers(d) for d in DETECTORS[6:12])


def test_clean_significances_are_standard_normal(exposure):
    z = np.concatenate([_values(exposure[d])["one_over_f_significance"].amplifier for d in DETECTORS[:6]])
    ratio = np.concatenate([_values(exposure[d])["one_over_f_power_ratio"].amplifier for d in DETECTORS[:6]])
    assert z.size == 6 * N_AMPLIFIERS and np.isfinite(z).all()
    assert abs(z.mean()) < 0.3 and 0.75 < z.std() < 1.3
    assert ratio.mean() == pytest.approx(1.0, abs=0.08)


def test_a_strong_background_gradient_is_not_1_over_f():
    clean = _values(_result("WFI02", L2Injection()))
    graded = _result("WFI02", L2Injection(background_gradient=(2.0, 2.0)))  # 250% of the sky across the image
    assert graded.status == Status.PASS, graded.notes["summary"]
    values = _values(graded)
    for name in ("one_over_f_significance", "one_over_f_common_significance"):
        assert values[name].detector == pytest.approx(clean[name].detector, abs=0.5)
    # without the detrending the same gradient would be taken for 1/f noise
    scene = L2Scene()
    arrays, *_ = l2_arrays(
        "WFI02", field_catalog(scene, SIDE, ("WFI02",)), scene, SIDE, injection=L2Injection(background_gradient=(2, 2))
    )
    geometry = Geometry(SIDE, 4)
    frame, dq = to_frame(arrays["data"], geometry, np.nan), to_frame(arrays["dq"], geometry, 0)
    raw = _values(one_over_f_metrics(frame, dq, OneOverFOptions(detrend_degree=0)))
    assert raw["one_over_f_significance"].detector > 30


def test_row_series_is_the_readout_series_binned_by_one_row():
    rng = np.random.default_rng(4)
    frame = rng.uniform(-1.0, 1.0, (256, 256)) + np.linspace(0, 3, 256)[:, None]  # nothing to clip or mask
    means, counts, noise = row_series(frame, clip_sigma=4.0, source_sigma=5.0)
    binned = readout_order(frame).reshape(N_AMPLIFIERS, 256, 8).mean(axis=2)
    np.testing.assert_allclose(means, binned, rtol=0, atol=1e-12)
    assert np.all(counts == 8) and np.all(noise > 0.5)  # uniform on [-1, 1]: sigma 0.58
    # the direction of the even amplifiers does not change a row's mean, only the order within it
    flipped = frame.reshape(256, N_AMPLIFIERS, 8)[:, :, ::-1].reshape(256, 256)
    np.testing.assert_allclose(row_series(flipped, 4.0, 5.0)[0], means, atol=1e-12)


def test_a_star_and_its_wings_are_masked():
    rng = np.random.default_rng(9)
    frame = rng.normal(1.0, 0.1, (256, 256))
    y, x = np.mgrid[0:256, 0:256]
    frame += 400.0 * (1 + ((x - 100.3) ** 2 + (y - 60.7) ** 2) / 1.6**2) ** -3.0  # a Moffat star, beta = 3
    means, counts, _ = row_series(frame, 4.0, 5.0)
    strip = 100 // 8
    assert counts[strip, 60] == 0  # the row through the core keeps nothing of the strip
    # the core (5 sigma to r = 4.6) marks the blocks of rows 56-67; one block more is masked each side
    assert np.all(counts[strip, 52:72] == 0) and np.all(counts[strip, :48] == 8)
    # what is kept near the star is background: no bump in the row means
    assert np.abs(means[strip, 40:80][counts[strip, 40:80] > 0] - 1.0).max() < 0.2


def test_white_noise_gives_ratio_1_and_standard_normal_significance():
    rng = np.random.default_rng(0)
    z = []
    for _ in range(30):
        residual, fitted = detrend(rng.standard_normal((32, 1016)), np.full((32, 1016), 64), degree=2)
        bands = band_power(residual, (1, 16), 0.5, degree=2)
        z.append(f_significance(bands["low"] / bands["white"], bands["dof_low"], bands["dof_white"]))
    z = np.concatenate(z)
    assert fitted.all() and abs(z.mean()) < 0.1 and 0.9 < z.std() < 1.1
    assert np.mean(z > 3.0) < 0.005


def test_significance_is_the_f_distribution_tail():
    ratio = np.array([0.5, 1.0, 2.0, 3.0, np.nan])
    z = f_significance(ratio, 30.0, 500.0)
    expected = stats.norm.isf(stats.f.sf(ratio[:4], 30.0, 500.0))
    np.testing.assert_allclose(z[:4], expected, rtol=1e-9)
    assert np.isnan(z[4])
    huge = f_significance(np.array([50.0, 200.0, 1e3, 1e4]), 30.0, 500.0)  # the last two: beyond float64
    assert np.all(np.isfinite(huge)) and np.all(np.diff(huge) > 0) and huge[0] > 20


def test_all_nan_constant_and_starless_images_give_a_status_without_warnings():
    dq = np.zeros((256, 256), dtype=np.uint32)
    do_not_use = np.ones((256, 256), dtype=np.uint32)
    nothing = "no usable pixel (all non-finite or flagged): need 64 rows"
    for data, flags, status in (
        (np.full((256, 256), np.nan, dtype=np.float32), dq, nothing),
        (np.ones((256, 256), dtype=np.float32), do_not_use, nothing),  # finite, but all DO_NOT_USE
        (np.full((256, 256), 0.8, dtype=np.float32), dq, "no noise"),
    ):
        result = one_over_f_metrics(data, flags, OneOverFOptions())
        assert result.notes["status"].startswith(status)
        assert all(np.isnan(m.values.at(s)).all() for m in result.metrics for s in ("detector", "amplifier"))
        assert result.extras == {}
    starless = replace(L2Scene(), star_density=1e-9)
    result = _result("WFI03", L2Injection(), scene=starless)
    # no star is no problem for this monitor: measured as usual ("status" is only for what stops a measurement)
    assert "status" not in result.notes and result.notes["summary"].startswith("measured")
    assert result.status == Status.PASS
    kept, finite = (int(n) for n in re.match(r"(\d+) of (\d+)", result.notes["masking"]).groups())
    assert finite == 504 * 504 and finite - kept < 0.01 * finite  # no star: hardly anything masked


def test_a_frame_the_source_blocks_do_not_tile_is_a_status():
    frame = np.random.default_rng(1).normal(1.0, 0.1, (160, 160))  # 5-pixel super-pixels
    result = one_over_f_metrics(frame, np.zeros(frame.shape, np.uint32), OneOverFOptions())
    assert "divisible by 128" in result.notes["status"]
    assert all(np.isnan(m.values.detector) for m in result.metrics)


def test_the_input_is_not_changed():
    arrays = OneOverFMonitor.example_arrays(256, 2)
    before = {k: v.copy() for k, v in arrays.items()}
    OneOverFMonitor.compute(arrays, OneOverFOptions(), {})
    for name, array in arrays.items():
        np.testing.assert_array_equal(array, before[name])


def test_options_are_checked():
    with pytest.raises(ValueError, match="low_band"):
        OneOverFOptions(low_band=(5, 2))
    with pytest.raises(ValueError, match="greater than or equal to 3"):
        OneOverFOptions(clip_sigma=2.0)
    with pytest.raises(ValueError, match="unknown DQ flag"):
        OneOverFOptions(mask_dq_flags=("SATURATE",))


def test_report_figures_with_and_without_the_spectra(exposure, tmp_path):
    result = exposure["WFI14"]
    figures = report_figures(result, tmp_path, "WFI14_one_over_f")
    assert [f.path.name for f in figures] == [
        "WFI14_one_over_f_one_over_f_spectra.png",
        "WFI14_one_over_f_one_over_f_amplifiers.png",
    ]
    assert all(f.path.stat().st_size > 5000 for f in figures)
    assert "limit (5 sigma)" in figures[1].caption
    rebuilt = replace(result, extras={})  # as the streaming sink rebuilds it: metrics only
    figures = report_figures(rebuilt, tmp_path, "rebuilt")
    assert [f.path.name for f in figures] == ["rebuilt_one_over_f_amplifiers.png"]
    extras = result.extras
    assert extras["amplifier_power"].shape == (N_AMPLIFIERS, extras["frequency"].size)
    assert extras["low_bins"].tolist() == [1, 16]
