"""Shared fixtures: seeded synthetic inputs and a scratch chDB store per test."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from rdmt_core.config import load_config
from rdmt_core.synthetic import Anomaly, HotCluster, write_dark_delivery

pytest_plugins = ["tests.kafka_broker", "tests.schema_registry"]

# The testcontainers tier needs a Docker engine: it runs only when asked (make test-containers).
collect_ignore = [] if os.environ.get("RDMT_CONTAINERS") == "1" else ["containers"]

SIDE = 512  # reduced size: 16x16-pixel super-pixels
USEAFTER_1 = datetime(2026, 1, 1)
USEAFTER_2 = datetime(2026, 2, 1)
CLUSTER = HotCluster(row=16 * 10, col=16 * 20, side=16, rate=0.5)  # exactly super-pixel 10*32+20 = 340


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"chdb://{tmp_path / 'store'}"


@pytest.fixture
def quiet_config(tmp_path: Path, store_url: str):
    """Store on, file outputs and notifications off."""
    return load_config(
        store_url=store_url,
        output_dir=str(tmp_path / "out"),
        outputs={"ecsv": False, "report": False, "notify": False},
    )


@pytest.fixture
def two_deliveries(tmp_path: Path) -> tuple[list[Path], list[Path]]:
    """Two reduced-size deliveries of WFI01, WFI07, WFI12; WFI07 gets a hot cluster in the second."""
    detectors = ("WFI01", "WFI07", "WFI12")
    first = write_dark_delivery(tmp_path / "d1", USEAFTER_1, side=SIDE, delivery_seed=1, detectors=detectors)
    second = write_dark_delivery(
        tmp_path / "d2",
        USEAFTER_2,
        side=SIDE,
        delivery_seed=2,
        detectors=detectors,
        anomalies={"WFI07": Anomaly(hot_cluster=CLUSTER), "WFI12": Anomaly(dark_scale=1.5)},
    )
    return first, second
