"""Level-2 images through the streaming services: archive events -> ingest -> the four Level-2 monitors.

Each Level-2 monitor runs as its own ``rdmt service monitor`` process on the real broker. The ingest
service routes every ``WFI_IMAGE`` archive event to all four (the default routing rules); an image
without a WCS still gets all four metric records, the astrometry one with a status saying why its
offsets are missing.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import yaml

from rdmt_core.synthetic_l2 import L2Scene, write_l2_exposure

from .services import RDMT, TIMEOUT_S, Pipeline

LEVEL2_MONITORS = ("astrometry", "background", "one_over_f", "psf_shape")
START = datetime(2027, 3, 1, tzinfo=UTC)


def test_level2_images_are_routed_to_and_measured_by_the_four_level2_monitors(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    scene = L2Scene(star_density=1.5e-3)
    good, catalog = write_l2_exposure(tmp_path / "in", START, scene, side=512, detectors=("WFI01", "WFI02"))
    no_wcs, _ = write_l2_exposure(
        tmp_path / "in-no-wcs", START, scene, side=512, detectors=("WFI03",), with_wcs=False
    )
    pipeline = Pipeline(kafka_bootstrap, tmp_path / "run", webhook_url="http://127.0.0.1:9/unused", ecsv=False)
    config = yaml.safe_load(pipeline.config.read_text())
    config["monitors"] = {"astrometry": {"options": {"catalog_dir": str(catalog.parent)}}}
    pipeline.config.write_text(yaml.safe_dump(config))
    metrics = pipeline.reader("metrics")
    try:
        pipeline.start("ingest")
        for name in LEVEL2_MONITORS:
            pipeline.start("monitor", f"monitor-{name}", monitor=name)
        for service in ("ingest", *(f"monitor-{name}" for name in LEVEL2_MONITORS)):
            pipeline.wait_ready(service)
        subprocess.run(
            [RDMT, "publish", "archive", "--config", str(pipeline.config), *map(str, good + no_wcs)],
            env=pipeline.env, check=True, capture_output=True, timeout=TIMEOUT_S,
        )  # fmt: skip
        metrics.read_until(lambda r: len(r) >= 3 * len(LEVEL2_MONITORS), "12 metric records", logs=pipeline.log_tails)
        records = metrics.drain(quiet_s=2.0)
    finally:
        pipeline.stop_all()

    by_key = {(r["monitor"], r["detector"]): r for r in records}
    assert len(records) == len(by_key) == 12, "one metric record per image and monitor, no duplicate"
    assert set(by_key) == {(m, d) for m in LEVEL2_MONITORS for d in ("WFI01", "WFI02", "WFI03")}
    assert {r["delivery_id"] for r in records} == {"exposure:WFI_IMAGE:2027-03-01T00:00:00.000"}
    for (monitor, detector), record in by_key.items():
        values = {m["metric"]: m["detector"] for m in record["metrics"]}
        if monitor == "astrometry" and detector == "WFI03":
            assert "WCS" in record["notes"]["status"], record["notes"]
            assert all(np.isnan(values[k]) for k in values if k.startswith("offset")), values
        else:
            assert "status" not in record["notes"], (monitor, detector, record["notes"])
            assert np.isfinite(list(values.values())).any(), (monitor, detector, values)
