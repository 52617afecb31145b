"""A delivery of each reference type besides DARK, through ``rdmt run`` and through the services.

Each delivery has its monitor's injected anomaly on one named detector (the demo's choice,
``rdmt_core.cli.demo.REFERENCE_DELIVERIES``): exactly that detector fails, on the metric the
monitor declares (``Monitor.anomaly``), and every clean detector passes (its change and trend values
wait for history, nothing is at caution or fail).

CI runs three detectors per type at 1024 x 1024 (the demo's smallest meaningful size). The same
tests run at full size over all 18 detectors with ``RDMT_REFERENCE_SIDE=4096 RDMT_REFERENCE_DETECTORS=all``
set for ``python -m pytest tests/integration/test_reference_deliveries.py``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rdmt_core.cli.demo import REFERENCE_DELIVERIES, REFERENCE_USEAFTER
from rdmt_core.geometry import DETECTORS
from rdmt_core.monitors import get_monitor
from rdmt_core.records import Status
from rdmt_core.store import open_store
from rdmt_core.synthetic_ref import write_reference_delivery

from .services import RDMT, TIMEOUT_S, Pipeline

SIDE = int(os.environ.get("RDMT_REFERENCE_SIDE", "1024"))
ALL_DETECTORS = os.environ.get("RDMT_REFERENCE_DETECTORS", "") == "all"


def _detectors(anomalous: str) -> tuple[str, ...]:
    return DETECTORS if ALL_DETECTORS else tuple(sorted({anomalous, "WFI01", "WFI18"}))


@pytest.fixture(scope="module")
def deliveries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Each reference type's delivery: monitor name -> its files."""
    root = tmp_path_factory.mktemp("reference-deliveries")
    return {
        monitor: write_reference_delivery(
            monitor,
            root / monitor,
            REFERENCE_USEAFTER,
            side=SIDE,
            delivery_seed=1,
            anomalies={detector},
            detectors=_detectors(detector),
            optical_element=element,
        )
        for monitor, (detector, element) in REFERENCE_DELIVERIES.items()
    }


def _failing_metrics(evaluations: list[dict]) -> set[str]:
    return {e["metric"] for e in evaluations if Status.FAIL.value in list(e["status"])}


def _check(monitor: str, detector: str, status: str, failing: set[str]) -> None:
    anomalous, _ = REFERENCE_DELIVERIES[monitor]
    if detector == anomalous:
        assert status == Status.FAIL.value, f"{monitor}: the injected anomaly on {detector} was not found"
        assert get_monitor(monitor).anomaly.metric in failing, (monitor, detector, failing)
    else:
        assert status in (Status.PASS.value, Status.INCOMPLETE.value), (monitor, detector, status, failing)
        assert not failing, (monitor, detector, failing)


def test_rdmt_run_flags_exactly_each_injected_anomaly(deliveries: dict[str, list[Path]], tmp_path: Path) -> None:
    store = tmp_path / "store"
    proc = subprocess.run(
        [RDMT, "run", *(str(files[0].parent) for files in deliveries.values()), "--store", f"chdb://{store}",
         "--output", str(tmp_path / "out"), "--no-notify", "--no-report", "--no-ecsv"],
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr  # every file processed (failing values are results)
    for monitor, (detector, _) in REFERENCE_DELIVERIES.items():
        assert f"failed: {detector} {monitor} (" in proc.stdout, monitor
    with open_store(f"chdb://{store}") as opened:
        files = opened.sql("SELECT monitor, detector, toString(status) AS status FROM files")
        failing = opened.sql("SELECT DISTINCT monitor, detector, metric FROM evaluations WHERE status = 'fail'")
    assert len(files) == sum(len(paths) for paths in deliveries.values())
    for monitor, detector, status in files.itertuples(index=False):
        metrics = set(failing.metric[(failing.monitor == monitor) & (failing.detector == detector)])
        _check(monitor, detector, status, metrics)


def test_the_services_flag_exactly_each_injected_anomaly(
    kafka_bootstrap: str, deliveries: dict[str, list[Path]], tmp_path: Path
) -> None:
    outputs = {"store": True, "ecsv": False, "report": False, "notify": False}
    pipeline = Pipeline(kafka_bootstrap, tmp_path / "run", "http://127.0.0.1:9/unused", config={"outputs": outputs})
    evaluations = pipeline.reader("evaluations")
    expected = sum(len(files) for files in deliveries.values())
    try:
        for service in ("ingest", "evaluator", "sink"):
            pipeline.start(service)
        for monitor in REFERENCE_DELIVERIES:
            pipeline.start("monitor", f"monitor-{monitor}", monitor=monitor)
        for name in ("ingest", "evaluator", "sink", *(f"monitor-{m}" for m in REFERENCE_DELIVERIES)):
            pipeline.wait_ready(name)
        for monitor, files in deliveries.items():
            pipeline.publish_crds(f"CRDS-{monitor}", files)
        records = evaluations.read_until(
            lambda r: len(r) >= expected, f"{expected} evaluation records", timeout_s=TIMEOUT_S + expected * 5,
            logs=pipeline.log_tails,
        )  # fmt: skip
        records = evaluations.drain(quiet_s=2.0)
    finally:
        pipeline.stop_all()
    by_key = {(r["monitor"], r["detector"]): r for r in records}
    assert len(by_key) == len(records) == expected, "one evaluation per file, none twice"
    for (monitor, detector), record in by_key.items():
        failing = _failing_metrics(record["evaluations"])
        _check(monitor, detector, record["status"], failing)
    flat = next(r for r in records if r["monitor"] == "flat")
    assert flat["optical_element"] == REFERENCE_DELIVERIES["flat"][1] and "/F158/" in flat["file_key"]
    assert np.all([r["release"] == "live" for r in records])
