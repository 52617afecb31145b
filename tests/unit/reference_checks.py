"""Clean and anomalous example deliveries of a reference-file monitor, evaluated with the default configuration.

Shared by the gain, readnoise and saturation unit tests: :func:`check_deliveries` evaluates deliveries
1 and 2 of each detector (``examples.reference_arrays``), the second against the first as history.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from datetime import UTC, datetime

import numpy as np

from rdmt_core.config import load_config
from rdmt_core.evaluators import History
from rdmt_core.geometry import DETECTORS
from rdmt_core.monitors import get_monitor
from rdmt_core.records import FileIdentity, FileResult, Status
from rdmt_core.results import file_result

# The full-size (4096) unit tests check these three detectors (a few seconds each); all 18 are checked at
# full size by `RDMT_REFERENCE_SIDE=4096 RDMT_REFERENCE_DETECTORS=all pytest
# tests/integration/test_reference_deliveries.py` and by the demo (`rdmt demo`).
FULL_SIZE_DETECTORS = ("WFI01", "WFI09", "WFI18")


def fails(block) -> np.ndarray:
    return np.asarray(block.status, dtype=str) == Status.FAIL.value


def evaluate(
    name: str, detector: str, side: int, seed: int, anomaly: bool = False, history: History | None = None
) -> FileResult:
    """Delivery ``seed`` of ``detector``'s example file of monitor ``name``, evaluated with the defaults."""
    monitor = get_monitor(name)
    examples = importlib.import_module(f"{monitor.__module__.rpartition('.')[0]}.examples")
    (reftype,) = monitor.reftypes
    identity = FileIdentity(f"/x/{detector}.asdf", reftype, detector, datetime(2027, 1, 1 + seed, tzinfo=UTC))
    arrays = examples.reference_arrays(detector, side, seed, anomaly)
    return file_result(monitor, arrays, identity, load_config(), history or History(), "test")


def failing(result: FileResult) -> set[str]:
    return {f"{b.evaluator}/{b.metric}/{b.scale}" for b in result.evaluations if fails(b).any()}


def as_history(result: FileResult) -> History:
    return History({(m.spec.name, s): m.values.at(s)[None, :] for m in result.metrics for s in m.spec.scales})


def check_deliveries(
    name: str,
    side: int,
    anomaly_scale: str,
    detectors: Iterable[str] = DETECTORS,
    change_passes: bool = False,
) -> None:
    """Clean deliveries 1 and 2 of ``detectors`` fail nothing (empty history, and 2 against 1); the anomaly fails.

    The anomaly (WFI01, delivery 1) fails the monitor's declared metric at the soc evaluator and
    ``anomaly_scale``. With ``change_passes`` some change block of delivery 2 passes in every cell,
    otherwise the change evaluator only has to have run.
    """
    for detector in detectors:
        first = evaluate(name, detector, side, 1)
        second = evaluate(name, detector, side, 2, history=as_history(first))
        assert not failing(first) and not failing(second), (detector, failing(first), failing(second))
        changes = [b for b in second.evaluations if b.evaluator == "change"]
        assert changes, detector
        if change_passes:
            assert any((np.asarray(b.status) == Status.PASS.value).all() for b in changes), detector
    metric = get_monitor(name).anomaly.metric
    assert f"soc/{metric}/{anomaly_scale}" in failing(evaluate(name, "WFI01", side, 1, anomaly=True))
