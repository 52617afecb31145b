"""Star detection shared by the Level-2 star monitors: truth recovery, flags, memory; cells and per-cell statistics."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from roman_datamodels import dqflags
from scipy.spatial import cKDTree

from rdmt_core.geometry import N_AMPLIFIERS, N_SUPERPIXELS, Geometry, to_frame
from rdmt_core.measure.star_cells import binned, scale_cells, stat_at_scales
from rdmt_core.measure.stars import DetectionOptions, block_statistics, detect_stars
from rdmt_core.synthetic_l2 import BORDER, L2Scene, field_catalog, l2_arrays, render_stars

SIDE = 512


def _frame(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    geometry = Geometry(SIDE, BORDER)
    return to_frame(arrays["data"], geometry, np.nan), to_frame(arrays["dq"], geometry, 0)


@pytest.fixture(scope="module")
def field():
    scene = L2Scene(star_density=300 / (SIDE - 2 * BORDER) ** 2, seed=3)
    arrays, _, _, truth = l2_arrays("WFI04", field_catalog(scene, SIDE, ("WFI04",)), scene, SIDE)
    return (*_frame(arrays), truth)


def test_detections_are_the_drawn_stars_at_their_positions(field):
    data, dq, truth = field
    stars = detect_stars(data, dq, DetectionOptions())
    assert stars.problem is None
    tx, ty = truth.x + BORDER, truth.y + BORDER  # science pixel -> frame pixel
    distance, index = cKDTree(np.column_stack([tx, ty])).query(np.column_stack([stars.x, stars.y]))
    # no false detection: Airy rings, spikes and wing noise of brighter stars are not sources; only within
    # 20 pixels of the edge may a spike of a bright star drawn beyond the edge (not in the truth) remain
    edge = np.minimum(np.minimum(stars.x, stars.y), np.minimum(SIDE - 1 - stars.x, SIDE - 1 - stars.y)) - BORDER
    assert np.all(distance[edge > 20] < 1.5)
    assert np.count_nonzero(distance > 1.5) <= 0.05 * stars.size
    assert stars.n_psf_features > 100  # what the rings and spikes gave before they were rejected
    # every drawn star well inside the image and clear of neighbours is found
    inside = (truth.x > 6) & (truth.x < SIDE - 2 * BORDER - 7) & (truth.y > 6) & (truth.y < SIDE - 2 * BORDER - 7)
    near, _ = cKDTree(np.column_stack([tx, ty])).query(np.column_stack([tx, ty]), k=2)
    # a star inside the PSF envelope of a brighter one (fainter than 1.2 / d^2 of it, with some margin for
    # the peak fraction's phase dependence and the wing estimate of a saturated star) is taken for its ring or spike
    d2 = (tx[:, None] - tx[None, :]) ** 2 + (ty[:, None] - ty[None, :]) ** 2
    brighter = truth.flux[None, :] > truth.flux[:, None]
    shadowed = np.any(brighter & (truth.flux[:, None] < 5.0 * 1.2 * truth.flux[None, :] / np.maximum(d2, 1.0)), axis=1)
    findable = inside & (near[:, 1] > 4) & ~shadowed
    assert findable.sum() > 0.8 * inside.sum()
    found = np.zeros(truth.x.size, dtype=bool)
    found[index] = True
    assert found[findable].all()
    # the 3x3 centroid (pulled towards the pixel centre by the undersampled PSF) is a first guess for the fit
    usable = stars.usable(20.0)
    assert usable.size > 150
    assert np.percentile(distance[usable], 95) < 0.3
    # brightest first
    assert np.all(np.diff(stars.flux) <= 0)


def test_block_background_and_noise_ignore_the_stars(field):
    data, _, _ = field
    background, sigma = block_statistics(data, np.isfinite(data), 128)
    scene = L2Scene()
    assert background.shape == sigma.shape == (4, 4)
    # the galsim.roman PSF's wide wings (a few % of a star's light beyond 32 pixels) are sky-like light
    assert np.abs(background - scene.background).max() < 0.6 * scene.white_noise
    assert np.median(sigma) == pytest.approx(scene.white_noise, rel=0.05)


def _stars_image(stars: list[tuple[float, float, float]], side: int = 128, seed: int = 1) -> np.ndarray:
    x, y, flux = (np.array(v, dtype=np.float64) for v in zip(*stars, strict=True))
    rng = np.random.default_rng(seed)
    image = 1.0 + render_stars((side, side), x, y, flux, 1.6) + rng.normal(0.0, 0.05, (side, side))
    return image.astype(np.float32)


def test_flags_isolated_saturated_complete_and_spikes_rejected():
    isolated = (40.2, 40.7, 800.0)
    pair = [(90.0, 30.0, 800.0), (95.0, 30.0, 600.0)]  # 5 pixels apart: found, neither isolated
    bright = (40.0, 100.0, 40000.0)  # clipped and flagged below
    edge = (2.0, 70.0, 800.0)  # stamp runs off the frame
    data = _stars_image([isolated, *pair, bright, edge])
    dq = np.zeros(data.shape, dtype=np.uint32)
    saturated = data > 2000.0
    data[saturated] = 2000.0
    dq[saturated] |= dqflags.pixel.SATURATED
    data[110, 110] = 500.0  # a cosmic ray: one pixel
    stars = detect_stars(data, dq, DetectionOptions())

    def star_at(x: float, y: float) -> int:
        distance = np.hypot(stars.x - x, stars.y - y)
        assert distance.min() < 1.0, f"no star found at ({x}, {y})"
        return int(np.argmin(distance))

    assert stars.size == 5  # the spike is not a star; the saturated top is one star
    i = star_at(*isolated[:2])
    assert stars.isolated[i] and not stars.saturated[i] and stars.measurable[i]
    assert abs(stars.x[i] - isolated[0]) < 0.2 and abs(stars.y[i] - isolated[1]) < 0.2
    assert not any(stars.isolated[star_at(*p[:2])] for p in pair)
    assert stars.saturated[star_at(*bright[:2])]
    assert not stars.measurable[star_at(*edge[:2])]
    assert list(stars.usable()) == [i]


def test_a_faint_companion_is_not_a_source_but_its_bright_neighbour_is_not_isolated():
    """A peak above the PSF's own ring bound (15 % of the peak within 4 pixels) may be a real companion.

    Five pairs of Gaussian stars, a companion of a quarter of the flux 3.2 pixels from the primary: the
    companion is below the noise-widened first-ring bound (30 %), so it is not reported as a source (it
    may be a ring lifted by noise), but it is counted as a possible companion and the primary, whose
    stamp holds it, is not isolated and not used. A peak at a ring's level (5 %) is a ring: the star
    beside it stays isolated and usable.
    """
    primaries = [(20.0 + 20.0 * k, 30.0, 800.0) for k in range(5)]
    companions = [(x + 3.2, y, 200.0) for x, y, _ in primaries]
    alone = (40.0, 90.0, 800.0)
    ring = (44.0, 90.0, 50.0)  # a 'ring' 4 pixels out at about 7 % of the star's peak
    data = _stars_image([*primaries, *companions, alone, ring])
    dq = np.zeros(data.shape, dtype=np.uint32)
    stars = detect_stars(data, dq, DetectionOptions())

    def nearest(found, x: float, y: float) -> tuple[int, float]:
        distance = np.hypot(found.x - x, found.y - y)
        return int(np.argmin(distance)), float(distance.min())

    assert stars.size == 6  # the five primaries and the lone star
    assert stars.n_possible_companions == 5 and stars.n_psf_features == 6
    for x, y, _ in primaries:
        i, distance = nearest(stars, x, y)
        assert distance < 0.5 and not stars.isolated[i]
    for x, y, _ in companions:
        assert nearest(stars, x, y)[1] > 2.5  # not reported
    i, distance = nearest(stars, *alone[:2])
    assert distance < 0.5 and list(stars.usable()) == [i]
    # without the PSF rule every peak is a source, and the primaries are not isolated either
    everything = detect_stars(data, dq, DetectionOptions(psf_envelope=0.0))
    assert everything.size == 12 and everything.n_psf_features == 0
    assert everything.usable().size == 0  # the lone star's 'ring' is a neighbour too


def test_two_saturated_stars_are_both_found():
    """Clipped peaks are equal: which star is brighter is judged on the wing estimate, not the clipped peak."""
    side = 128
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64)
    data = np.full((side, side), 1.0)
    for x0 in (50.0, 70.0):  # 20 pixels apart, a Gaussian core and power-law wings (about 900 DN/s 5 pixels out)
        r2 = (xx - x0) ** 2 + (yy - 64.0) ** 2
        data += 1.2e7 * (np.exp(-r2 / (2 * 0.68**2)) + 0.01 / (1.0 + r2) ** 1.5)
    data += np.random.default_rng(4).normal(0.0, 0.05, data.shape)
    dq = np.zeros(data.shape, dtype=np.uint32)
    saturated = data > 2000.0
    data[saturated] = 2000.0
    dq[saturated] |= dqflags.pixel.SATURATED
    stars = detect_stars(data.astype(np.float32), dq, DetectionOptions())
    assert stars.size == 2 and stars.saturated.all()
    # a saturated star's peak is the first pixel of its flat top, a few pixels from its centre
    assert all(np.hypot(stars.x - x0, stars.y - 64.0).min() < 6.0 for x0 in (50.0, 70.0))


def test_unusable_pixels_are_left_out_rather_than_losing_the_star():
    wing = (40.0, 40.0, 800.0)  # bad pixels in its wing and box: still measured
    column = (90.0, 40.0, 800.0)  # a bad column beside its peak: 5 of its box, not measured
    beside = (40.0, 90.0, 800.0)  # a NaN neighbour brighter than the peak would be: still found
    data = _stars_image([wing, column, beside])
    dq = np.zeros(data.shape, dtype=np.uint32)
    do_not_use = int(dqflags.pixel.DO_NOT_USE)
    data[41, 41] = np.nan  # in the 3x3 core of the first star
    dq[40, 42] = do_not_use  # finite but DO_NOT_USE: left out all the same
    dq[36, 40] = do_not_use  # outside the 5x5 box: no count
    data[38:43, 91] = np.nan
    data[90, 41] = np.nan
    dq[100:103, 100:103] = do_not_use  # a flagged hot cluster is no star
    data[100:103, 100:103] = 900.0
    stars = detect_stars(data, dq, DetectionOptions())
    assert stars.size == 3
    found = {star: int(np.argmin(np.hypot(stars.x - star[0], stars.y - star[1]))) for star in (wing, column, beside)}
    assert all(np.hypot(stars.x[i] - s[0], stars.y[i] - s[1]) < 0.5 for s, i in found.items())
    assert stars.n_masked[found[wing]] == 2 and stars.measurable[found[wing]]
    assert stars.n_masked[found[column]] == 5 and not stars.measurable[found[column]]
    assert stars.n_masked[found[beside]] == 1 and stars.measurable[found[beside]]
    strict = detect_stars(data, dq, DetectionOptions(max_masked_pixels=1))
    assert not strict.measurable[int(np.argmin(np.hypot(strict.x - wing[0], strict.y - wing[1])))]
    assert np.isfinite(stars.block_background).all() and stars.n_usable == data.size - 18  # 7 NaN, 11 flagged


def test_a_peak_over_max_peak_counts_as_saturated_without_a_dq_flag():
    data = _stars_image([(60.0, 60.0, 6000.0)])  # peak about 1500 above a background of 1
    stars = detect_stars(data, np.zeros(data.shape, np.uint32), DetectionOptions(max_peak=1000.0))
    assert stars.size == 1 and stars.saturated[0]
    assert not detect_stars(data, np.zeros(data.shape, np.uint32), DetectionOptions(max_peak=5000.0)).saturated[0]


@pytest.mark.parametrize(
    ("fill", "problem"),
    [(np.nan, "no usable pixel"), (0.8, "no noise")],
)
def test_unmeasurable_frames_give_a_problem_not_an_exception(fill, problem):
    data = np.full((256, 256), fill, dtype=np.float32)
    stars = detect_stars(data, np.zeros(data.shape, np.uint32), DetectionOptions())
    assert stars.size == 0 and problem in stars.problem
    assert stars.usable().size == 0


def test_a_frame_without_stars_is_empty_without_a_problem():
    rng = np.random.default_rng(5)
    data = (0.8 + rng.normal(0, 0.08, (256, 256))).astype(np.float32)
    stars = detect_stars(data, np.zeros(data.shape, np.uint32), DetectionOptions())
    assert stars.problem is None
    assert stars.size <= 1  # 5-sigma noise peaks are very rare in 65,536 pixels


def test_detection_memory_does_not_grow_with_crowding():
    """A Galactic-Bulge density (1e-2 stars per pixel: 17 % of the pixels above the threshold) costs about the frame.

    Candidates are worked a band of rows at a time and stamps a chunk of stars at a time; all candidates at
    once, with (n, 8) int64 neighbour indices, took 39 MiB here (650 MiB at full size).
    """
    side = 1024
    scene = L2Scene(star_density=1e-2, seed=2)
    arrays, *_ = l2_arrays("WFI05", field_catalog(scene, side, ("WFI05",)), scene, side)
    geometry = Geometry(side, BORDER)
    data, dq = to_frame(arrays["data"], geometry, np.nan), to_frame(arrays["dq"], geometry, 0)
    tracemalloc.start()
    try:
        stars = detect_stars(data, dq, DetectionOptions())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stars.size + stars.n_psf_features > 8000  # peaks found, before the rings and spikes are left out
    assert stars.size > 5000
    assert peak < 2 * data.nbytes  # about 5 MiB for the 4 MiB frame


def test_binned_statistics_match_numpy():
    rng = np.random.default_rng(2)
    values = rng.normal(size=200)
    index = rng.integers(0, 7, 200)
    index[index == 3] = 4  # cell 3 empty
    for statistic, reference in (("mean", np.mean), ("median", np.median), ("rms", lambda v: np.sqrt(np.mean(v**2)))):
        got, count = binned(values, index, 8, statistic)
        for cell in range(8):
            assert count[cell] == np.count_nonzero(index == cell)
            if count[cell]:
                assert got[cell] == pytest.approx(reference(values[index == cell]))
            else:
                assert np.isnan(got[cell])


def test_stat_at_scales_needs_enough_values_per_cell():
    # 6 stars in super-pixel 0 (amplifier 1), 2 in super-pixel 33 (amplifier 2); 16-pixel cells on a 512 frame
    x = np.array([1, 2, 3, 4, 5, 6, 20, 21], dtype=np.float64)
    y = np.array([1, 2, 3, 4, 5, 6, 20, 21], dtype=np.float64)
    groups = scale_cells(x, y, 512)
    assert list(groups["amplifier"]) == [0] * 6 + [1] * 2
    assert list(groups["superpixel"]) == [0] * 6 + [33] * 2
    values = stat_at_scales(np.arange(8.0), groups, "mean", min_detector=8, min_cell=5)
    assert values.detector == pytest.approx(3.5)
    assert values.amplifier.shape == (N_AMPLIFIERS,) and values.superpixel.shape == (N_SUPERPIXELS,)
    assert values.amplifier[0] == pytest.approx(2.5) and np.isnan(values.amplifier[1])
    assert values.superpixel[0] == pytest.approx(2.5) and np.isnan(values.superpixel[33])
    assert np.isnan(stat_at_scales(np.arange(8.0), groups, "mean", min_detector=9, min_cell=5).detector)
