"""1/f noise monitor: the readout-order against orthogonal-order test, its calibration, and injected 1/f found."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest
from scipy import stats

from rdmt_core.config import load_config
from rdmt_core.evaluators import History
from rdmt_core.geometry import GRID, N_AMPLIFIERS
from rdmt_core.measure.sky import find_sources
from rdmt_core.measure.spectra import band_power, detrend, f_significance, white_fraction
from rdmt_core.monitors.one_over_f import OneOverFMonitor, OneOverFOptions
from rdmt_core.monitors.one_over_f.metrics import one_over_f_metrics, order_test, row_series
from rdmt_core.outputs import report_figures
from rdmt_core.records import FileIdentity, Status
from rdmt_core.results import file_result
from rdmt_core.synthetic_l2 import L2Injection, L2Scene, field_catalog, l2_arrays, readout_order

SIDE = 512  # 16-pixel tiles: 1/f of 0.3 white sigma is found reliably (calibrate_one_over_f.py)
FOUND = 0.3  # 1/f rms per pixel in units of the white-noise sigma: the documented reliable level at 512
CROWDED = L2Scene(star_density=8000 / 4088**2, bright_mag=11.0)  # bright halos everywhere


def _identity(detector: str) -> FileIdentity:
    return FileIdentity(f"/data/{detector}.asdf", "ImageModel", detector, datetime(2027, 3, 1, tzinfo=UTC))


def _science(detector: str, injection: L2Injection | None = None, scene: L2Scene | None = None, transpose=False):
    """``data`` and ``dq`` of a synthetic image (science arrays); ``transpose``: its light read the other way."""
    scene = scene or L2Scene()
    arrays, *_ = l2_arrays(detector, field_catalog(scene, SIDE, (detector,)), scene, SIDE, injection=injection)
    arrays = {"data": arrays["data"], "dq": arrays["dq"]}
    return {k: np.ascontiguousarray(v.T) for k, v in arrays.items()} if transpose else arrays


def _result(detector: str, injection: L2Injection | None = None, scene: L2Scene | None = None, transpose=False):
    arrays = _science(detector, injection, scene, transpose)
    return file_result(OneOverFMonitor, arrays, _identity(detector), load_config(), History(), "run")


def _values(result) -> dict:
    return {m.spec.name: m.values for m in result.metrics}


def _z(result) -> tuple[float, np.ndarray, float]:
    values = _values(result)
    z = values["one_over_f_significance"]
    return z.detector, z.amplifier, values["one_over_f_common_significance"].detector


# -- the statistic against plain numpy, and its null distribution ------------------------------------------


def _plain_tiles(frame: np.ndarray, first: int, last: int):
    """Per tile, the two orders' powers over their white level, by loops (nothing masked in ``frame``)."""
    side = frame.shape[0]
    cell = side // GRID
    sources = find_sources(frame, 5.0)  # the smooth background the monitor removes
    fraction = white_fraction(cell, 1)[first : last + 1]
    x = np.arange(cell)
    row_power = np.empty((GRID, GRID, last - first + 1))
    column_power = np.empty_like(row_power)
    for i in range(GRID):
        for a in range(GRID):
            rows, cols = slice(i * cell, (i + 1) * cell), slice(a * cell, (a + 1) * cell)
            tile = frame[rows, cols].astype(np.float64)
            by_row = (tile - sources.profile[a][None, :]).mean(axis=1)  # readout order, binned by one row
            by_column = (tile - sources.level[rows, a][:, None]).mean(axis=0)  # the orthogonal order
            white = sources.spread[i, a] ** 2 * fraction  # variance / cell per value, cell values
            for series, out in ((by_row, row_power), (by_column, column_power)):
                residual = series - np.polyval(np.polyfit(x, series, 1), x)
                out[i, a] = np.abs(np.fft.fft(residual)[first : last + 1]) ** 2 / white
    return row_power, column_power


def test_the_statistic_is_the_plain_numpy_one_on_a_small_frame():
    rng = np.random.default_rng(4)
    frame = rng.uniform(-1.0, 1.0, (256, 256)) + np.linspace(0, 3, 256)[:, None]  # nothing to clip or mask
    frame += 0.3 * np.sin(2 * np.pi * np.arange(256) / 4.0 + 0.3)[:, None]  # a row pattern: tile bin 2
    row_power, column_power = _plain_tiles(frame, 1, 3)  # 8-row tiles: the default bins 1-4 stop below Nyquist
    result = one_over_f_metrics(frame, np.zeros(frame.shape, np.uint32), OneOverFOptions())
    values = _values(result)
    np.testing.assert_allclose(
        values["one_over_f_power_ratio"].amplifier,
        row_power.sum(axis=(0, 2)) / column_power.sum(axis=(0, 2)),
        rtol=1e-6,
    )
    assert values["one_over_f_power_ratio"].detector == pytest.approx(row_power.sum() / column_power.sum(), rel=1e-6)
    u, weight, sums, squares = order_test(row_power, column_power, np.ones((GRID, GRID), bool), 3.0)
    np.testing.assert_allclose(u, (row_power - column_power) / (row_power + column_power))
    np.testing.assert_allclose(weight, np.minimum(1.0, 3.0 / (0.5 * (row_power + column_power))))
    np.testing.assert_allclose(sums, (weight * u).sum(axis=2))
    # the per-amplifier significance: the tiles' summed w u over the larger of the white and the tiles' variance
    n = GRID
    t = sums.sum(axis=0) / np.sqrt(
        np.maximum(squares.sum(axis=0) / 3, n / (n - 1) * ((sums - sums.mean(0)) ** 2).sum(0))
    )
    scattered = n / (n - 1) * ((sums - sums.mean(0)) ** 2).sum(0) > squares.sum(axis=0) / 3
    expected = np.where(scattered, stats.norm.isf(stats.t.sf(t, n - 1)), t)
    np.testing.assert_allclose(values["one_over_f_significance"].amplifier, expected, rtol=1e-6)
    assert values["one_over_f_significance"].detector > 5  # the row pattern is found
    # the same frame transposed: the pattern is along the columns, the readout order sees none of it
    flipped = _values(
        one_over_f_metrics(np.ascontiguousarray(frame.T), np.zeros(frame.shape, np.uint32), OneOverFOptions())
    )
    assert flipped["one_over_f_significance"].detector < -5


def test_white_noise_gives_standard_normal_significances():
    rng = np.random.default_rng(0)
    z, detector, common = [], [], []
    for _ in range(12):
        frame = rng.normal(0.8, 0.08, (256, 256)).astype(np.float32)
        values = _values(one_over_f_metrics(frame, np.zeros(frame.shape, np.uint32), OneOverFOptions()))
        z.append(values["one_over_f_significance"].amplifier)
        detector.append(values["one_over_f_significance"].detector)
        common.append(values["one_over_f_common_significance"].detector)
        assert values["one_over_f_power_ratio"].detector == pytest.approx(1.0, abs=0.15)
    z = np.concatenate(z)
    assert z.size == 12 * N_AMPLIFIERS and np.isfinite(z).all()
    assert abs(z.mean()) < 0.2 and 0.75 < z.std() < 1.3 and np.abs(z).max() < 4.5
    assert np.abs(detector).max() < 3.5 and np.abs(common).max() < 3.5


def test_tiles_mostly_without_data_are_left_out():
    """A tile with a few rows of data has a row series of zeros: its line would take most of its power."""
    rng = np.random.default_rng(5)
    pooled = []
    for _ in range(4):
        frame = rng.normal(0.8, 0.08, (512, 512)).astype(np.float32)
        frame[100:] = np.nan  # tile row 6 (rows 96-111) has 4 rows of data, the rest none
        result = one_over_f_metrics(frame, np.zeros(frame.shape, np.uint32), OneOverFOptions())
        assert result.notes["test"].startswith(f"{6 * GRID} tiles")
        pooled.append(_values(result)["one_over_f_significance"].detector)
    assert np.abs(pooled).max() < 3.0  # with the 32 partial tiles kept: -2.2 to -3.4 sigma on these images


# -- realistic images: clean, transposed light, injected 1/f ------------------------------------------------


@pytest.mark.parametrize("detector", ["WFI01", "WFI07"])  # few detectors: their PSF tables are cached
def test_clean_realistic_images_pass(detector):
    result = _result(detector)
    assert result.status == Status.PASS, result.notes["summary"]
    pooled, amplifiers, common = _z(result)
    assert abs(pooled) < 4 and np.nanmax(np.abs(amplifiers)) < 4.5 and abs(common) < 4


@pytest.mark.parametrize("transpose", [False, True])
def test_psf_halos_read_either_way_are_not_1_over_f(transpose):
    """A crowded field of bright stars: their Roman halos fill the row series (the old test saw 30 sigma)."""
    result = _result("WFI05", scene=CROWDED, transpose=transpose)
    spectra = result.extras["amplifier_power"]  # the row-series spectra over their white level (the figure)
    assert np.nanmax(np.nanmean(spectra[:, 1:17], axis=1)) > 10  # the halos' light is there, in readout order
    assert result.extras["common_power"][1:17].mean() > 10
    assert result.status == Status.PASS, result.notes["summary"]
    pooled, amplifiers, common = _z(result)
    assert abs(pooled) < 4 and np.nanmax(amplifiers) < 4.5 and abs(common) < 4


@pytest.fixture(scope="module")
def injected():
    """WFI07 with 1/f of FOUND, and the same image transposed (the noise then runs along the columns)."""
    injection = L2Injection(one_over_f=FOUND)
    return _result("WFI07", injection), _result("WFI07", injection, transpose=True)


def test_injected_readout_1_over_f_is_found_and_only_in_readout_order(injected):
    found, transposed = injected
    assert found.status == Status.FAIL
    pooled, amplifiers, common = _z(found)
    assert pooled > 7 and common > 5
    assert np.mean(amplifiers) > 1.5  # each amplifier's own share is positive, though weak alone at 512
    assert _values(found)["one_over_f_power_ratio"].detector > 1.25
    # read the other way, the same noise is structure across the columns: no readout-order excess at all
    pooled, _, common = _z(transposed)
    assert transposed.status == Status.PASS and pooled < -5 and common < 0


def test_the_significance_grows_with_the_amplitude():
    pooled = [_z(_result("WFI07", L2Injection(one_over_f=a)))[0] for a in (0.0, 0.2, 0.4)]
    assert pooled[0] < 3 < pooled[1] < pooled[2] and pooled[2] > 12


def test_idealised_moffat_images_still_work():
    moffat = L2Scene(psf_model="moffat")
    assert _result("WFI02", scene=moffat).status == Status.PASS
    found = _result("WFI02", L2Injection(one_over_f=FOUND), scene=moffat)
    assert found.status == Status.FAIL and _z(found)[0] > 7


def test_a_strong_background_gradient_is_not_1_over_f():
    clean = _z(_result("WFI01"))
    graded = _result("WFI01", L2Injection(background_gradient=(2.0, 2.0)))  # 250% of the sky across the image
    assert graded.status == Status.PASS, graded.notes["summary"]
    pooled, _, common = _z(graded)
    assert pooled == pytest.approx(clean[0], abs=1.0) and common == pytest.approx(clean[2], abs=1.0)


# -- the row series (the figure's spectra), masking, statuses -----------------------------------------------


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
    result = _result("WFI01", L2Injection(), scene=starless)
    # no star is no problem for this monitor: measured as usual ("status" is only for what stops a measurement)
    assert "status" not in result.notes and result.notes["summary"].startswith("measured")
    assert result.status == Status.PASS
    kept, finite = (int(n) for n in re.match(r"(\d+) of (\d+)", result.notes["masking"]).groups())
    assert finite == 504 * 504 and finite - kept < 0.01 * finite  # no star: hardly anything masked


def test_bins_that_do_not_fit_the_tiles_are_a_status():
    frame = np.random.default_rng(2).normal(1.0, 0.1, (256, 256))  # 8-pixel tiles: bins up to 3
    for bins in ((5, 6), (4, 4)):  # bin 4 is the Nyquist frequency of an 8-row tile: not usable
        result = one_over_f_metrics(frame, np.zeros(frame.shape, np.uint32), OneOverFOptions(bins=bins))
        assert "do not fit 8-row tiles (at most 3" in result.notes["status"]
        assert all(np.isnan(m.values.detector) for m in result.metrics)
    limited = one_over_f_metrics(frame, np.zeros(frame.shape, np.uint32), OneOverFOptions(bins=(1, 4)))
    assert "status" not in limited.notes and limited.notes["bins"].startswith("bins 1-4 limited to 1-3")
    three = one_over_f_metrics(frame, np.zeros(frame.shape, np.uint32), OneOverFOptions(bins=(1, 3)))
    assert [m.values.detector for m in limited.metrics] == [m.values.detector for m in three.metrics]


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
    with pytest.raises(ValueError, match="bins"):
        OneOverFOptions(bins=(0, 2))
    with pytest.raises(ValueError, match="greater than or equal to 3"):
        OneOverFOptions(clip_sigma=2.0)
    with pytest.raises(ValueError, match="unknown DQ flag"):
        OneOverFOptions(mask_dq_flags=("SATURATE",))


def test_report_figures_with_and_without_the_spectra(injected, tmp_path):
    result = injected[0]
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
