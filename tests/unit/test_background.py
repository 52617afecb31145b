"""Background monitor: exact sigma-clipped statistics, levels, ranges and amplifier jumps."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from astropy.stats import sigma_clipped_stats as astropy_clipped_stats

from rdmt_core.config import load_config
from rdmt_core.evaluators import History
from rdmt_core.geometry import GRID, N_AMPLIFIERS
from rdmt_core.measure.clipped import clip_sorted, clipped_at_scales, sigma_clipped_stats, sorted_rows
from rdmt_core.monitors.background import BackgroundMonitor, BackgroundOptions
from rdmt_core.monitors.background.metrics import amplifier_jumps, background_metrics, edge_levels
from rdmt_core.outputs import report_figures
from rdmt_core.records import FileIdentity, Status
from rdmt_core.results import file_result
from rdmt_core.synthetic_l2 import L2Injection, L2Scene, field_catalog, from_readout_order, l2_arrays, pink_noise

SIDE = 1024  # 32x32-pixel super-pixels: a super-pixel's 16-column boundary strips hold 512 pixels each
IDENTITY = FileIdentity("/data/l2.asdf", "ImageModel", "WFI05", datetime(2027, 3, 1, tzinfo=UTC))


def _reference(values: np.ndarray) -> np.ndarray:
    """astropy's (mean, median, std) of the finite values (astropy itself warns about NaNs)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.full(3, np.nan)
    return np.array(astropy_clipped_stats(finite, sigma=3.0, maxiters=5), dtype=np.float64)


def _sample(rng: np.random.Generator, n: int) -> np.ndarray:
    """Gaussian values with a tail of bright outliers and some NaN and infinite values."""
    values = rng.normal(rng.uniform(-5, 5), rng.uniform(0.1, 3.0), n)
    bright = rng.integers(0, n, size=rng.integers(0, n // 5 + 1))
    values[bright] += rng.exponential(20.0, bright.size)
    values[rng.integers(0, n, size=n // 50)] = np.nan
    if n > 10:
        values[3], values[7] = np.inf, -np.inf
    return values


@pytest.mark.parametrize("seed", range(40))
def test_clipped_stats_equal_astropy(seed):
    rng = np.random.default_rng(seed)
    values = _sample(rng, int(rng.integers(1, 500)))
    np.testing.assert_allclose(sigma_clipped_stats(values), _reference(values), rtol=1e-12, atol=1e-12)


def test_constant_and_empty_inputs():
    assert sigma_clipped_stats(np.full(7, 2.5)) == (2.5, 2.5, 0.0)
    assert np.isnan(sigma_clipped_stats(np.array([np.nan, np.inf]))).all()
    assert sigma_clipped_stats(np.array([1.0, 3.0])) == (2.0, 2.0, 1.0)  # even count: mean of the middle two


def test_rows_and_union_equal_astropy_row_by_row():
    rng = np.random.default_rng(11)
    rows = np.stack([_sample(rng, 300) for _ in range(12)])
    rows[4] = np.nan  # a row without data
    ordered, n_valid = sorted_rows(rows.copy())
    per_row = clip_sorted(ordered, n_valid)
    for r in range(len(rows)):
        got = [per_row.mean[r], per_row.median[r], per_row.std[r]]
        np.testing.assert_allclose(got, _reference(rows[r]), rtol=1e-12, atol=1e-12)
    assert per_row.count[4] == 0 and per_row.n_valid[4] == 0
    union = clip_sorted(ordered, n_valid, union=True)
    got = [union.mean[0], union.median[0], union.std[0]]
    np.testing.assert_allclose(got, _reference(rows.ravel()), rtol=1e-12, atol=1e-12)


def test_three_scales_equal_astropy_on_their_own_pixels():
    rng = np.random.default_rng(5)
    side, cell = 128, 4
    frame = rng.normal(1.0, 0.1, (side, side))
    frame[rng.integers(0, side, 300), rng.integers(0, side, 300)] += rng.exponential(3.0, 300)
    frame[:4], frame[:, :4] = np.nan, np.nan  # the Level-2 border: super-pixel 0 is empty
    stats = clipped_at_scales(frame)
    for cell_id in (0, 33, 500, 1023):
        r, c = divmod(cell_id, GRID)
        block = frame[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell]
        got = [stats.mean.superpixel[cell_id], stats.median.superpixel[cell_id], stats.std.superpixel[cell_id]]
        np.testing.assert_allclose(got, _reference(block), rtol=1e-12, atol=1e-12)
    for amp in (0, 1, 31):
        strip = frame[:, amp * cell : (amp + 1) * cell]
        got = [stats.mean.amplifier[amp], stats.median.amplifier[amp], stats.std.amplifier[amp]]
        np.testing.assert_allclose(got, _reference(strip), rtol=1e-12, atol=1e-12)
    got = [stats.mean.detector, stats.median.detector, stats.std.detector]
    np.testing.assert_allclose(got, _reference(frame), rtol=1e-12, atol=1e-12)
    assert stats.n_valid.detector == np.isfinite(frame).sum()


def test_float32_frames_agree_with_astropy_to_float32_precision():
    rng = np.random.default_rng(8)
    frame = rng.normal(0.8, 0.08, (256, 256)).astype(np.float32)
    stats = clipped_at_scales(frame)
    got = [stats.mean.detector, stats.median.detector, stats.std.detector]
    np.testing.assert_allclose(got, _reference(frame.astype(np.float64)), rtol=2e-6)


def _l2_result(injection: L2Injection | None = None, scene: L2Scene | None = None, detector: str = "WFI05"):
    scene = scene or L2Scene()
    arrays, *_ = l2_arrays(detector, field_catalog(scene, SIDE, (detector,)), scene, SIDE, injection=injection)
    arrays = {"data": arrays["data"], "dq": arrays["dq"]}
    result = file_result(BackgroundMonitor, arrays, IDENTITY, load_config(), History(), "run")
    return result, _values(result)


def _statuses(result, metric: str, scale: str) -> np.ndarray:
    blocks = [b for b in result.evaluations if b.metric == metric and b.scale == scale]
    assert blocks, f"no evaluation of {metric} at {scale}"
    severity = np.max([[Status(s).severity for s in b.status] for b in blocks], axis=0)
    return severity


def _values(result) -> dict:
    return {m.spec.name: m.values for m in result.metrics}


def _not_pass(result) -> set[tuple[str, str, str]]:
    return {(b.metric, b.scale, s) for b in result.evaluations for s in set(b.status[b.status != "pass"].tolist())}


JUMP_LIMIT = 5.0  # sigma: the soc limit on background_jump_significance (detector, amplifiers; defaults.yaml)


def test_the_default_jump_limits_are_in_sigma_of_the_step_error():
    soc = load_config().monitors["background"].evaluators.soc
    assert set(soc.limits) == {"background_level", "background_rms", "background_jump_significance"}
    limit = soc.limits["background_jump_significance"]
    assert (limit.detector, limit.amplifier, limit.superpixel) == (JUMP_LIMIT, JUMP_LIMIT, 6.0)


def test_a_step_between_two_amplifiers_is_flagged_at_that_boundary_only():
    result, values = _l2_result(L2Injection(background_step=(17, 0.02), background_gradient=(0.2, 0.2)))
    jump, error, z = values["background_jump"], values["background_jump_error"], values["background_jump_significance"]
    assert jump.amplifier[16] == pytest.approx(0.02, abs=4 * error.amplifier[16])  # amplifier 17: from 16
    assert z.detector == z.amplifier[16] > JUMP_LIMIT and jump.detector == jump.amplifier[16]
    assert values["background_jump_fraction"].amplifier[16] == pytest.approx(0.02 / 0.8, rel=0.15)
    # the 0.2 DN/s gradient would add 16 columns x 0.2 / 1016 = 0.003 DN/s (2 sigma) to every step if the
    # bands were not extrapolated to the boundary
    others = np.delete(jump.amplifier, [0, 16])
    assert abs(np.median(others)) < 0.002 and np.abs(np.delete(z.amplifier, 16)).max() < 4
    amp = _statuses(result, "background_jump_significance", "amplifier")
    assert np.flatnonzero(amp == Status.FAIL.severity).tolist() == [16]
    assert np.all(np.delete(amp, 16) == Status.PASS.severity)
    assert _statuses(result, "background_jump_significance", "detector")[0] == Status.FAIL.severity
    cells = _statuses(result, "background_jump_significance", "superpixel").reshape(GRID, GRID)
    assert set(np.nonzero(cells == Status.FAIL.severity)[1].tolist()) <= {16}
    # the level itself is not out of range: the step is a jump, not a bad background
    assert np.all(_statuses(result, "background_level", "amplifier") == Status.PASS.severity)


def test_a_clean_realistic_image_with_a_mild_gradient_passes():
    result, values = _l2_result(L2Injection(background_gradient=(0.3, -0.2)))
    # super-pixels beside a bright star (a band with less than half its pixels left) are not measured
    assert _not_pass(result) <= {("background_jump_significance", "superpixel", Status.INCOMPLETE.value)}
    assert 0 < np.isnan(values["background_jump"].superpixel).sum() < 0.1 * 1024
    assert "super-pixel jumps not measured" in result.notes["jump pixels"]
    assert np.abs(values["background_jump_significance"].amplifier).max() < 4
    assert np.median(values["background_jump"].amplifier) == pytest.approx(0.0, abs=0.002)  # uncorrected: 0.0047
    level = values["background_level"]
    assert level.detector == pytest.approx(0.8, abs=0.005)
    # the gradient shows in the levels: +0.3 DN/s from the left edge to the right
    assert level.amplifier[-1] - level.amplifier[0] == pytest.approx(0.3 * 31 / 32, abs=0.02)
    rms = values["background_rms"]
    assert np.median(rms.superpixel) == pytest.approx(0.08, rel=0.05)  # the pixel noise
    # a larger cell's rms is spatial: it holds the gradient across it (0.3 and 0.2 DN/s ramps)
    assert rms.detector == pytest.approx(np.sqrt(0.08**2 + (0.3**2 + 0.2**2) / 12), rel=0.05)
    assert 0 < values["background_rejected_fraction"].detector < 0.05
    assert set(result.notes) >= {"summary", "clipping", "jump", "jump noise", "finite pixels", "sources"}
    assert "status" not in result.notes and result.notes["summary"].startswith("measured")


@pytest.mark.parametrize(
    ("side", "scene"),
    [
        (1024, L2Scene(star_density=1e-2, seed=2)),  # a Galactic-Bulge field: sources mask most pixels
        (512, L2Scene(seed=1)),  # 16 x 8 pixels a side of a super-pixel boundary
    ],
)
def test_crowded_and_small_clean_images_pass(side, scene):
    """Super-pixel jumps beside masked stars are NaN (incomplete), not false steps; amplifiers are measured."""
    arrays, *_ = l2_arrays("WFI05", field_catalog(scene, side, ("WFI05",)), scene, side)
    arrays = {"data": arrays["data"], "dq": arrays["dq"]}

    def result_with(**options):
        config = load_config(monitors={"background": {"options": options}}) if options else load_config()
        result = file_result(BackgroundMonitor, arrays, IDENTITY, config, History(), "run")
        return result, _values(result)

    result, values = result_with()
    for scale in ("detector", "amplifier", "superpixel"):
        assert np.all(_statuses(result, "background_jump_significance", scale) <= Status.INCOMPLETE.severity), scale
    jump = values["background_jump"]
    assert np.isfinite(jump.amplifier).all() and np.isfinite(jump.detector)
    unmeasured = np.isnan(jump.superpixel).sum()
    assert (unmeasured > 300) if scene.star_density > 1e-3 else (0 < unmeasured < 200)
    # every super-pixel band kept: stars' halos beyond their masks fake steps beside them
    kept_all, kept_values = result_with(jump_min_kept=0.0)
    assert np.isnan(kept_values["background_jump"].superpixel).sum() < unmeasured
    assert "jump pixels" not in kept_all.notes or "0 of" in kept_all.notes["jump pixels"]


def _white_frames(n: int, side: int, sigma: float = 0.1) -> list[np.ndarray]:
    return [np.random.default_rng(seed).normal(1.0, sigma, (side, side)).astype(np.float32) for seed in range(n)]


def test_jump_errors_match_the_scatter_of_steps_over_white_noise_realisations():
    side, width = 512, 8  # 16-pixel strips: the slope from the far band costs a factor 2.5 in variance
    cell = side // GRID
    amp_steps, amp_errors, cell_steps, cell_errors = [], [], [], []
    for frame in _white_frames(30, side):
        jumps = amplifier_jumps(edge_levels(frame, width, 3.0, 5), cell, width)
        amp_steps.append(jumps.values.amplifier[1:])
        amp_errors.append(jumps.error.amplifier[1:])
        cell_steps.append(jumps.values.superpixel.reshape(GRID, GRID)[:, 1:])
        cell_errors.append(jumps.error.superpixel.reshape(GRID, GRID)[:, 1:])
        assert np.all(jumps.noise_factor >= 1.0) and np.median(jumps.noise_factor) < 1.1  # white: no excess
    # plain numpy: the error of a difference of means, extrapolated: (1 + a)^2 x 2 + a^2 x 2 band variances
    a = (width / 2) / (cell - width)
    clipped_sigma = 0.1 * 0.9846  # 3-sigma clipping trims the tails
    band = clipped_sigma / np.sqrt(cell * width)
    expected = band * np.sqrt(2 * (1 + a) ** 2 + 2 * a**2)
    assert np.median(cell_errors) == pytest.approx(expected, rel=0.05)
    assert np.median(amp_errors) == pytest.approx(expected / np.sqrt(GRID), rel=0.05)
    # the reported errors are the scatter of the steps over the 30 realisations (930 and 29,760 steps)
    assert np.std(amp_steps) / np.mean(amp_errors) == pytest.approx(1.0, abs=0.12)
    assert np.std(cell_steps) / np.mean(cell_errors) == pytest.approx(1.0, abs=0.08)
    assert np.std(np.array(cell_steps) / np.array(cell_errors)) == pytest.approx(1.0, abs=0.08)


def test_a_jump_is_the_difference_of_the_two_bands_extrapolated_to_the_boundary():
    """One super-pixel's step against plain numpy on a noiseless ramp with a step: the ramp cancels."""
    side, width = 256, 4
    cell = side // GRID
    x = np.arange(side, dtype=np.float64)
    frame = np.tile(1.0 + 0.001 * x, (side, 1))
    frame[:, 5 * cell :] += 0.03  # a step at the boundary 5|6 (amplifier 6)
    frame += np.random.default_rng(3).normal(0, 1e-6, frame.shape)
    jumps = amplifier_jumps(edge_levels(frame, width, 3.0, 5), cell, width)
    np.testing.assert_allclose(jumps.values.amplifier[5], 0.03, atol=1e-5)
    np.testing.assert_allclose(np.delete(jumps.values.amplifier, 5), 0.0, atol=1e-5)
    left, right = frame[:8, 5 * cell - width : 5 * cell].mean(), frame[:8, 5 * cell : 5 * cell + width].mean()
    assert right - left == pytest.approx(0.03 + 0.001 * width, abs=1e-5)  # without the extrapolation: + the ramp


def test_a_step_of_3_sigma_above_the_limit_fails_and_one_of_3_sigma_is_measured_as_such():
    """The significance of a step is its size over the error the clean image reports for that boundary.

    A step at the 5-sigma limit fails half of the time; one 3 sigma above it (8 sigma) fails nearly
    always (the measured significance scatters by 1 sigma). A 3-sigma step is measured at 3 +- 1 sigma:
    flagging it reliably would flag clean images too (31 boundaries x 2 sides beyond 2 sigma: 0.7 each).
    """
    clean_result, clean = _l2_result(detector="WFI03")
    error = clean["background_jump_error"].amplifier[16]
    assert _not_pass(clean_result) <= {("background_jump_significance", "superpixel", Status.INCOMPLETE.value)}
    result, values = _l2_result(L2Injection(background_step=(17, float(8.0 * error))), detector="WFI03")
    z = values["background_jump_significance"]
    assert z.amplifier[16] == pytest.approx(8.0 + clean["background_jump_significance"].amplifier[16], abs=0.3)
    assert _statuses(result, "background_jump_significance", "amplifier")[16] == Status.FAIL.severity
    assert _statuses(result, "background_jump_significance", "detector")[0] == Status.FAIL.severity
    _, small = _l2_result(L2Injection(background_step=(17, float(3.0 * error))), detector="WFI03")
    measured = small["background_jump_significance"].amplifier[16] - clean["background_jump_significance"].amplifier[16]
    assert measured == pytest.approx(3.0, abs=0.3)


@pytest.mark.parametrize("amplitude", [1.0, 3.0])
def test_strong_readout_one_over_f_is_left_to_the_one_over_f_monitor(amplitude):
    """Row-correlated 1/f noise scatters the super-pixel steps along each boundary: the errors grow with it."""
    result, values = _l2_result(L2Injection(one_over_f=amplitude), detector="WFI07")
    assert {s for (m, _, s) in _not_pass(result) if m.startswith("background_jump")} <= {Status.INCOMPLETE.value}
    assert "one_over_f monitor" in result.notes["jump noise"]
    error, jump = values["background_jump_error"], values["background_jump"]
    _, clean = _l2_result(detector="WFI07")
    assert np.median(error.amplifier) > 2 * np.median(clean["background_jump_error"].amplifier)
    # judged against the white-noise errors of the clean image, the same steps would fail
    white_z = jump.superpixel / clean["background_jump_error"].superpixel
    assert np.nanmax(np.abs(white_z)) > 2 * JUMP_LIMIT
    # and a real step is still found through the 1/f noise, at its larger error
    step = float(12 * np.median(error.amplifier))
    stepped, _ = _l2_result(L2Injection(one_over_f=amplitude, background_step=(9, step)), detector="WFI07")
    assert _statuses(stepped, "background_jump_significance", "amplifier")[8] == Status.FAIL.severity


@pytest.mark.parametrize(("sky", "bound"), [(12.0, "above"), (0.01, "below")])
def test_a_background_outside_the_expected_range_is_flagged(sky, bound):
    result, values = _l2_result(scene=L2Scene(background=sky))
    assert values["background_level"].detector == pytest.approx(sky, abs=0.01)
    level = _statuses(result, "background_level", "detector")
    assert level[0] == Status.FAIL.severity
    block = next(
        b
        for b in result.evaluations
        if b.metric == "background_level" and b.scale == "detector" and b.evaluator == "soc"
    )
    assert bound in block.reason[0]
    cells = _statuses(result, "background_level", "superpixel")
    # all super-pixels but a few lit by a bright star's halo (the Roman PSF's wings reach 100 pixels)
    assert np.mean(cells == Status.FAIL.severity) > 0.98


def test_background_rms_of_gaussian_noise_is_1_5_percent_below_sigma():
    """As the docs say: the 3-sigma clipping trims the tails, so the clipped std reads below sigma."""
    frame = np.random.default_rng(8).normal(0.8, 0.08, (1024, 1024)).astype(np.float32)
    result = background_metrics(frame, np.zeros(frame.shape, np.uint32), BackgroundOptions(mask_sources=False))
    rms = next(m.values for m in result.metrics if m.spec.name == "background_rms")
    clipped = 1.0  # the std of a unit normal clipped at 3 of its own clipped std, iterated to convergence
    for _ in range(50):
        cut = 3.0 * clipped
        clipped = np.sqrt(1 - 2 * cut * np.exp(-(cut**2) / 2) / np.sqrt(2 * np.pi) / math.erf(cut / np.sqrt(2)))
    assert clipped == pytest.approx(0.985, abs=0.001)
    assert rms.detector / 0.08 == pytest.approx(clipped, abs=0.002)
    assert np.median(rms.superpixel) / 0.08 == pytest.approx(clipped, abs=0.003)


def test_all_nan_and_constant_images_give_a_status_and_no_warning():
    nan = np.full((256, 256), np.nan, dtype=np.float32)
    dq = np.zeros(nan.shape, dtype=np.uint32)
    result = background_metrics(nan, dq, BackgroundOptions())
    assert result.notes["status"] == "no usable pixel (all non-finite or flagged): nothing to measure (all metrics NaN)"
    assert all(np.isnan(m.values.at(s)).all() for m in result.metrics for s in ("detector", "amplifier", "superpixel"))
    flagged = background_metrics(np.ones((256, 256), np.float32), np.ones((256, 256), np.uint32), BackgroundOptions())
    assert flagged.notes["status"] == result.notes["status"]  # all DO_NOT_USE: finite, but nothing usable either

    constant = np.full((256, 256), 0.75, dtype=np.float32)
    result = background_metrics(constant, dq, BackgroundOptions())
    values = {m.spec.name: m.values for m in result.metrics}
    assert result.notes["status"].startswith("constant image")
    assert values["background_level"].detector == pytest.approx(0.75)
    assert values["background_rms"].detector == 0.0 and np.all(values["background_jump"].superpixel == 0.0)
    assert np.isnan(values["background_jump_significance"].superpixel).all()  # 0 / 0: no noise, no verdict


def test_a_frame_the_source_blocks_do_not_tile_is_a_status_unless_sources_are_kept():
    frame = np.random.default_rng(1).normal(1.0, 0.1, (160, 160))  # 5-pixel super-pixels
    dq = np.zeros(frame.shape, np.uint32)
    result = background_metrics(frame, dq, BackgroundOptions())
    assert "divisible by 128" in result.notes["status"]
    unmasked = background_metrics(frame, dq, BackgroundOptions(mask_sources=False))
    assert unmasked.notes["summary"].startswith("measured") and "not masked" in unmasked.notes["sources"]


def test_dq_flagged_pixels_are_ignored_and_the_input_is_not_changed():
    data = np.random.default_rng(2).normal(1.0, 0.1, (256, 256)).astype(np.float32)
    data[10:40, 10:40] = 50.0
    dq = np.zeros(data.shape, dtype=np.uint32)
    dq[10:40, 10:40] = 1  # DO_NOT_USE
    before = data.copy()
    result = background_metrics(data, dq, BackgroundOptions())
    values = {m.spec.name: m.values for m in result.metrics}
    np.testing.assert_array_equal(data, before)
    assert "65536 of 65536" not in result.notes["finite pixels"]
    assert result.notes["finite pixels"] == "64636 of 65536 (900 more ignored for DQ flags DO_NOT_USE)"
    assert values["background_rejected_fraction"].detector < 0.01  # the flagged block is not a source
    assert values["background_level"].detector == pytest.approx(1.0, abs=0.003)
    assert np.isnan(values["background_level"].superpixel[2 * 32 + 2])  # inside the flagged block: no pixel
    with pytest.raises(ValueError, match="unknown DQ flag"):
        BackgroundOptions(mask_dq_flags=("NOT_A_FLAG",))


def test_report_figure_is_drawn_with_the_most_significant_step(tmp_path):
    result, values = _l2_result(L2Injection(background_step=(9, 0.08)))
    figures = report_figures(result, tmp_path, "WFI05_background")
    assert [f.path.name for f in figures] == ["WFI05_background_background_map.png"]
    assert figures[0].path.stat().st_size > 5000
    jump = values["background_jump"]
    assert jump.detector == jump.amplifier[8] and f"{jump.detector:+.4g}" in figures[0].caption
    # the failing boundary is marked from the significance's verdicts
    assert values["background_jump_significance"].amplifier[8] > 5
    assert "at fail (1)" in figures[0].caption


def test_example_arrays_are_a_frame_with_a_nan_border():
    arrays = BackgroundMonitor.example_arrays(256, 3)
    assert arrays["data"].shape == (256, 256) and arrays["dq"].shape == (256, 256)
    assert np.isnan(arrays["data"][:4]).all() and np.isnan(arrays["data"][:, -4:]).all()
    assert np.isfinite(arrays["data"][4:-4, 4:-4]).all()
    assert len(BackgroundMonitor.metric_specs) == 7 and N_AMPLIFIERS == 32


def _white_frame(seed: int, side: int = SIDE) -> np.ndarray:
    """White noise as the default scene's sky: 0.8 DN/s, 0.08 DN/s per pixel (no stars, no border)."""
    return np.random.default_rng(seed).normal(0.8, 0.08, (side, side))


def _jump_values(frame: np.ndarray) -> dict:
    result = background_metrics(frame, np.zeros(frame.shape, np.uint32), BackgroundOptions())
    return _values(result)


@pytest.mark.parametrize("step", [0.05, 0.2, 1.0])
def test_a_step_over_part_of_a_boundarys_rows_is_flagged(step):
    """A step right of the boundary 16|17 in the first quarter of the rows only (8 of 32 super-pixels).

    It must not be taken for noise correlated along the rows: the boundary's own factor comes from the
    differences of neighbouring super-pixel steps, which a change point moves only once (the spread of
    the steps about their mean, 25 % at +3/4 step and 75 % at -1/4, grew with the step and cancelled
    it: 1.0 DN/s, 125 % of the sky, was 3.0 sigma for the amplifier and no super-pixel passed 2.7).
    """
    frame = _white_frame(1)
    frame[: SIDE // 4, 16 * (SIDE // GRID) :] += step
    values = _jump_values(frame)
    z = values["background_jump_significance"]
    cells = z.superpixel.reshape(GRID, GRID)[:, 16]
    assert np.sum(np.abs(cells[: GRID // 4]) > 6.0) >= 4  # super-pixel limit 6 sigma; 0.05 DN/s is 6.3 white sigma
    assert np.all(np.abs(cells[GRID // 4 :]) < 6.0)
    assert z.amplifier[16] > JUMP_LIMIT and z.detector == z.amplifier[16]  # a quarter of the step over all rows
    assert np.abs(np.delete(z.amplifier, 16)).max() < 4  # the other boundaries keep their errors
    assert np.max(values["background_jump_error"].amplifier) < 2 * np.median(values["background_jump_error"].amplifier)


def _long_memory_one_over_f(rng: np.random.Generator, side: int, rms: float, frames: int = 8) -> np.ndarray:
    """1/f noise in readout order drawn over ``frames`` frames' time, one frame's worth kept: not zero-mean.

    70 % of the variance common to the amplifiers (as the synthetic generator), 30 % each amplifier's own;
    the power at periods longer than a frame leaves each amplifier its own offset over the whole frame.
    """
    length = side * (side // N_AMPLIFIERS)
    shared = pink_noise(rng, (1, frames * length))[:, :length]
    own = pink_noise(rng, (N_AMPLIFIERS, frames * length))[:, :length]
    return from_readout_order(rms * (np.sqrt(0.7) * shared + np.sqrt(0.3) * own), side)


@pytest.mark.parametrize(("amplitude", "seed"), [(1.0, 103), (3.0, 105)])
def test_long_memory_one_over_f_does_not_fail_the_jumps(amplitude, seed):
    """Neighbouring super-pixel steps alike: the amplifier errors allow for it (n_eff, halves), no fail.

    With the 32 steps taken as independent the amplifier significances of such images scattered by
    3.4 (14 % beyond 5 sigma, 12 images); the amplifier errors now hold the correlation.
    """
    rng = np.random.default_rng(seed)
    frame = _white_frame(seed) + _long_memory_one_over_f(rng, SIDE, amplitude * 0.08)
    result = background_metrics(frame, np.zeros(frame.shape, np.uint32), BackgroundOptions())
    values = _values(result)
    z = values["background_jump_significance"]
    assert np.abs(z.amplifier).max() < JUMP_LIMIT and np.nanmax(np.abs(z.superpixel)) < 6.0
    error, white = values["background_jump_error"].amplifier, result.notes["jump noise"]
    assert "one_over_f monitor" in white
    assert "not 32 independent steps" in white
    # more than the correlated-noise factor alone: the steps along a boundary are not independent
    clean = _jump_values(_white_frame(seed))["background_jump_error"].amplifier
    assert np.median(error) > 4 * np.median(clean)
    # a real whole-boundary step well above that error is still found
    stepped = frame.copy()
    stepped[:, 8 * (SIDE // GRID) :] += 12 * np.median(error)
    assert _jump_values(stepped)["background_jump_significance"].amplifier[8] > JUMP_LIMIT


def test_the_allowance_for_correlated_steps_costs_white_noise_little():
    """On white noise the amplifier errors stay within 10 % of the white-noise propagation (median of 8 frames)."""
    ratios = []
    for frame in _white_frames(8, SIDE, 0.08):
        jumps = amplifier_jumps(edge_levels(frame, 16, 3.0, 5), SIDE // GRID, 16)
        ratios.append(np.median(jumps.error.amplifier / jumps.white_error.amplifier))
        assert np.all(jumps.correlation < 0.3)
    assert 1.0 <= np.median(ratios) < 1.1
