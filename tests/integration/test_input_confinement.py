"""Input confinement end to end: ``rdmt run`` and the monitor service on the real broker.

A path outside the input roots (by ``..`` or outright) and a FIFO are refused without being opened:
a ``FAILED`` line in ``rdmt run``, a dead letter with the reason in the services. The good file beside
them is processed, and the monitor keeps running.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Producer

from rdmt_core.cli.publish import crds_delivery, publish
from rdmt_core.synthetic import write_dark_delivery

from .services import TIMEOUT_S, Pipeline

RDMT = str(Path(sys.executable).with_name("rdmt"))
USEAFTER = datetime(2026, 1, 1)


def dark(directory: Path, detector: str) -> Path:
    (path,) = write_dark_delivery(directory, USEAFTER, side=128, detectors=(detector,))
    return path


def test_rdmt_run_names_the_refused_files_and_processes_the_next(tmp_path: Path) -> None:
    root = tmp_path / "in"
    good = dark(root, "WFI01")
    outside = dark(tmp_path / "outside", "WFI02")
    os.mkfifo(root / "pipe.asdf")
    config = tmp_path / "rdmt.yaml"
    config.write_text(yaml.safe_dump({"inputs": {"roots": [str(root)]}}))
    climbing = f"{root}/../outside/{outside.name}"
    proc = subprocess.run(
        [RDMT, "run", "--config", str(config), "--no-store", "--no-ecsv", "--no-report", "--no-notify",
         climbing, str(root / "pipe.asdf"), str(good)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert f"FAILED: {climbing}: outside the configured input roots {root}: it resolves to {outside}" in proc.stderr
    assert f"FAILED: {root / 'pipe.asdf'}: is a FIFO (named pipe), not a regular file" in proc.stderr
    assert "WFI01 DARK" in proc.stdout and "1 of 3 files processed" in proc.stdout


def test_the_monitor_service_refuses_to_start_without_input_roots(kafka_bootstrap: str, tmp_path: Path) -> None:
    config = tmp_path / "rdmt.yaml"
    config.write_text(yaml.safe_dump({"store_url": f"chdb://{tmp_path / 'store'}"}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RDMT_")} | {"RDMT_KAFKA_BOOTSTRAP": kafka_bootstrap}
    proc = subprocess.run([RDMT, "service", "monitor", "--monitor", "dark", "--config", str(config)],
                          env=env, capture_output=True, text=True, timeout=TIMEOUT_S)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "a service reads only under configured input roots, and none are set: set inputs.roots" in proc.stderr


@pytest.fixture
def pipeline(kafka_bootstrap: str, tmp_path: Path):
    """The harness, reading only under ``tmp_path/d`` (its default roots are wider: the temporary directory)."""
    p = Pipeline(kafka_bootstrap, tmp_path / "run", webhook_url="", config={"inputs": {"roots": [str(tmp_path / "d")]}})
    try:
        yield p
    finally:
        p.stop_all()
        print(p.log_tails())


def test_paths_outside_the_roots_and_fifos_are_dead_lettered_and_the_good_file_is_processed(
    pipeline: Pipeline, kafka_bootstrap: str, tmp_path: Path
) -> None:
    good = dark(tmp_path / "d", "WFI01")
    outside = dark(tmp_path / "elsewhere", "WFI02")
    climbing = f"{tmp_path}/d/../elsewhere/{outside.name}"
    fifo = tmp_path / "d" / "wfi03_dark.asdf"
    os.mkfifo(fifo)
    event = crds_delivery("CRDS-CONFINED", "roman_0001.pmap", [good])
    event["files"] += [
        {"uri": climbing, "reftype": "DARK", "detector": "WFI02", "useafter": USEAFTER},
        {"uri": "/etc/passwd", "reftype": "DARK", "detector": "WFI04", "useafter": USEAFTER},
        {"uri": str(fifo), "reftype": "DARK", "detector": "WFI03", "useafter": USEAFTER},
    ]

    pipeline.start("ingest")
    pipeline.start("monitor")
    pipeline.wait_ready("monitor")
    publish(Producer({"bootstrap.servers": kafka_bootstrap}), pipeline.topic("events.crds"), "crds_delivery",
            [("CRDS-CONFINED", event)])  # fmt: skip

    dead = pipeline.reader("deadletter").read_until(lambda r: len(r) >= 3, "3 dead letters", logs=pipeline.log_tails)
    metrics = pipeline.reader("metrics").read_until(lambda r: len(r) >= 1, "1 metric record", logs=pipeline.log_tails)
    assert [r["detector"] for r in metrics] == ["WFI01"]
    errors = {r["error"].split(": ", 1)[0]: r["error"] for r in dead}
    assert errors[climbing] == (f"{climbing}: outside the configured input roots {tmp_path / 'd'}: "
                                f"it resolves to {outside}")  # fmt: skip
    assert errors["/etc/passwd"].startswith("/etc/passwd: outside the configured input roots")
    assert errors[str(fifo)] == f"{fifo}: is a FIFO (named pipe), not a regular file: refused without opening it"
    for record in dead:
        assert (record["error_type"], record["service"]) == ("rdmt_core.errors.InputError", "rdmt-monitor-dark")
        assert record["attempts"] == 1  # permanent: not retried
    pipeline.wait_committed("monitor", "requests.dark")  # every request done: nothing is stuck on the FIFO
    pipeline.check_running()
    assert pipeline.reader("metrics").read(lambda r: len(r) > 1, timeout_s=1.0) == metrics  # and nothing else
