"""The Level-2 suite on realistic images: each injected problem fails its own monitor, and only that one.

The images have galsim.roman PSFs (Airy rings, diffraction spikes, wide wings) of several detectors
and filters and a WCS with a polynomial distortion and no analytic inverse, as pipeline products do.
A clean image fails no monitor; an injected 1/f noise fails one_over_f but not background (the same
problem is not reported twice), a background step fails background only, a WCS shift astrometry
only, a blurred PSF psf_shape only.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from rdmt_core.config import load_config
from rdmt_core.monitors import monitors_for
from rdmt_core.pipeline import EmbeddedPipeline
from rdmt_core.records import Status
from rdmt_core.synthetic_l2 import BORDER, L2Injection, L2Scene, field_catalog, l2_model

SIDE = 1024
N = SIDE - 2 * BORDER
START = datetime(2027, 3, 1, tzinfo=UTC)


def _failing_monitors(detector: str, scene: L2Scene, injection: L2Injection | None, tmp_path) -> dict[str, list]:
    """Which Level-2 monitors fail on the image written as a file, with their failing metrics (the run's path)."""
    table = field_catalog(scene, SIDE, (detector,))
    model, _ = l2_model(detector, START, table, scene, SIDE, exposure_seed=scene.seed, injection=injection)
    path = tmp_path / f"{detector}_{scene.seed}_cal.asdf"
    model.save(path)
    catalog_path = tmp_path / f"{detector}_{scene.seed}.ecsv"
    table.write(catalog_path, format="ascii.ecsv", overwrite=True)
    config = load_config(
        outputs={"store": False, "ecsv": False, "report": False, "notify": False},
        monitors={"astrometry": {"options": {"catalog_path": str(catalog_path)}}},
    )
    with EmbeddedPipeline(config, run_id="realistic") as pipeline:
        outcome = pipeline.process(str(path))
    assert outcome.problem is None, outcome.problem
    assert {r.monitor for r in outcome.results} == {m.name for m in monitors_for("ImageModel")}
    failing: dict[str, list] = {}
    for result in outcome.results:
        assert result.unmeasured is None, f"{result.monitor} did not measure: {result.notes}"
        metrics = sorted(
            {
                f"{b.metric} ({b.evaluator}, {b.scale})"
                for b in result.evaluations
                if np.any(np.asarray(b.status, dtype=str) == Status.FAIL.value)
            }
        )
        if metrics:
            failing[result.monitor] = metrics
    return failing


@pytest.mark.parametrize(
    ("detector", "optical_element", "seed"),
    [("WFI01", "F158", 1), ("WFI09", "F087", 2), ("WFI16", "F213", 3)],
)
def test_a_clean_realistic_image_fails_no_monitor(detector, optical_element, seed, tmp_path):
    scene = L2Scene(seed=seed, optical_element=optical_element, star_density=300 / N**2)
    assert _failing_monitors(detector, scene, None, tmp_path) == {}


@pytest.mark.parametrize(
    ("injection", "expected"),
    [
        (L2Injection(wcs_shift_arcsec=(0.15, -0.1)), "astrometry"),
        (L2Injection(one_over_f=1.0), "one_over_f"),
        (L2Injection(background_step=(17, 0.05)), "background"),
        (L2Injection(psf_fwhm_scale=1.4), "psf_shape"),
    ],
    ids=["wcs-shift", "one-over-f", "background-step", "blurred-psf"],
)
def test_an_injected_problem_fails_its_own_monitor_only(injection, expected, tmp_path):
    scene = L2Scene(seed=4, star_density=300 / N**2)
    failing = _failing_monitors("WFI05", scene, injection, tmp_path)
    assert set(failing) == {expected}, failing
