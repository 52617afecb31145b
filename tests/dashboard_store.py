"""A small store for the dashboard tests, built with the real pipeline: darks of three detectors at side 256.

Four live deliveries (useafter January to April 2026) of WFI01, WFI07 and WFI12, WFI07 with a hot-pixel
cluster in the last; the first two again as the reprocessing release ``reproc-1``. Reports and ECSV on.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

DETECTORS = ("WFI01", "WFI07", "WFI12")
USEAFTERS = (datetime(2026, 1, 1), datetime(2026, 2, 1), datetime(2026, 3, 1), datetime(2026, 4, 1))
SIDE = 256
ANOMALOUS = "WFI07"
REPROCESSING = "reproc-1"


def build(root: Path) -> tuple[str, Path]:
    """Write the deliveries under ``root`` and monitor them; return the store URL and the reports directory."""
    from rdmt_core.config import load_config
    from rdmt_core.pipeline import EmbeddedPipeline
    from rdmt_core.synthetic import Anomaly, HotCluster, write_dark_delivery

    store_url = f"chdb://{root / 'store'}"
    cluster = HotCluster(row=8 * 10, col=8 * 20, side=24, rate=0.5)
    for release in ("live", REPROCESSING):
        config = load_config(store_url=store_url, output_dir=str(root / "out"), release=release,
                             outputs={"notify": False, "ecsv": True, "report": release == "live"})  # fmt: skip
        useafters = USEAFTERS if release == "live" else USEAFTERS[:2]
        for i, useafter in enumerate(useafters):
            last = release == "live" and i == len(USEAFTERS) - 1
            paths = write_dark_delivery(
                root / "inputs" / f"{release}-{i}",
                useafter,
                side=SIDE,
                delivery_seed=i + 1,
                detectors=DETECTORS,
                anomalies={ANOMALOUS: Anomaly(hot_cluster=cluster)} if last else None,
            )
            with EmbeddedPipeline(config, run_id=f"{release}-delivery-{i + 1}") as pipeline:
                pipeline.run([paths[0].parent])
    return store_url, root / "out" / "reports"


if __name__ == "__main__":
    import sys

    print(build(Path(sys.argv[1])))
