"""Detection on full-size files: an injected hot-pixel cluster fails the right super-pixels; a clean detector passes."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from rdmt_core.config import load_config
from rdmt_core.geometry import superpixel_of
from rdmt_core.pipeline import EmbeddedPipeline
from rdmt_core.records import Status
from rdmt_core.synthetic import Anomaly, HotCluster, write_dark_delivery

CLUSTER = HotCluster(row=1300, col=2600, side=96)  # super-pixels 340 = (10, 20) and 341 = (10, 21)


def _fails(result, evaluator: str, scale: str) -> set[int]:
    return {
        int(c)
        for b in result.evaluations
        if b.evaluator == evaluator and b.scale == scale
        for c in b.cells[b.status == Status.FAIL.value]
    }


@pytest.mark.slow
def test_full_size_hot_cluster_and_clean_detector(tmp_path):
    detectors = ("WFI03", "WFI07")
    first = write_dark_delivery(tmp_path / "d1", datetime(2026, 1, 1), delivery_seed=1, detectors=detectors)
    second = write_dark_delivery(
        tmp_path / "d2",
        datetime(2026, 2, 1),
        delivery_seed=2,
        detectors=detectors,
        anomalies={"WFI07": Anomaly(hot_cluster=CLUSTER)},
    )
    config = load_config(
        store_url=f"chdb://{tmp_path / 'store'}",
        output_dir=str(tmp_path / "out"),
        outputs={"ecsv": False, "report": False, "notify": False},
    )
    with EmbeddedPipeline(config, run_id="one") as pipeline:
        pipeline.run([first[0].parent])
    with EmbeddedPipeline(config, run_id="two") as pipeline:
        summary, _ = pipeline.run([second[0].parent])
    results = {r.identity.detector: r for r in summary.results}

    clean = results["WFI03"]
    assert clean.status != Status.FAIL
    assert not any((b.status == Status.CAUTION.value).any() for b in clean.evaluations if b.evaluator != "trend")

    rows = range(CLUSTER.row, CLUSTER.row + CLUSTER.side)
    cols = range(CLUSTER.col, CLUSTER.col + CLUSTER.side)
    touched = {superpixel_of(r, c) for r in rows for c in cols}
    hot = results["WFI07"]
    counts = next(m for m in hot.metrics if m.spec.name == "n_hot_pixels").values.superpixel
    # the cluster adds its pixels to the super-pixels it covers, about 1 hot pixel each otherwise
    assert all(counts[cell] > 100 for cell in touched)
    # The cluster covers 96x88 = 8448 pixels of super-pixel 340 and 96x8 = 768 of super-pixel 341.
    # SOC limit per super-pixel: 100000/1024 = 97.7 pixels -> both fail; mission: 1e6/1024 = 977 -> only 340.
    assert touched == {340, 341}
    assert _fails(hot, "soc", "superpixel") == {340, 341}
    assert _fails(hot, "mission", "superpixel") == {340}
    assert _fails(hot, "change", "superpixel") >= {340, 341}
    # amplifier 21: n_hot_pixels 8448 > 100000/32 = 3125; amplifier 22 gets only 768 hot pixels, but all of them
    # new (n_new_hot's soc limit is 50 per amplifier)
    assert _fails(hot, "soc", "amplifier") == {21, 22}
    # At the detector scale the 9,216 hot pixels are within the count limit; only the pixel change sees them:
    # the cluster's pixels are new since the previous file (soc limit 200 new hot pixels per detector).
    failing_metrics = {
        b.metric
        for b in hot.evaluations
        if b.evaluator == "soc" and b.scale == "detector" and (b.status == "fail").any()
    }
    assert failing_metrics == {"n_new_hot"}
    n_new = next(m for m in hot.metrics if m.spec.name == "n_new_hot").values
    assert n_new.detector >= 96 * 96 * 0.99 and set(np.flatnonzero(n_new.superpixel)) == touched
