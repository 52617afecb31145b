"""Build real FileResults for tests through the library's own path (metrics, then evaluations)."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from rdmt_core.config import load_config
from rdmt_core.evaluators import History
from rdmt_core.monitors.dark import DarkMonitor
from rdmt_core.records import FileIdentity, FileResult
from rdmt_core.results import file_result


def dark_result(
    dark_slope: np.ndarray,
    detector: str,
    source: str,
    file_time: datetime,
    run_id: str = "run-42",
    dq: np.ndarray | None = None,
    history: History | None = None,
) -> FileResult:
    """The dark monitor's result on ``dark_slope`` (DQ all clear unless given), with default config."""
    arrays = {"dark_slope": dark_slope, "dq": np.zeros(dark_slope.shape, np.uint32) if dq is None else dq}
    identity = FileIdentity(source, "DARK", detector, file_time)
    return file_result(DarkMonitor, arrays, identity, load_config(), history or History(), run_id)
