"""The sink service: evaluation records in; store rows, ECSV files and reports out.

An ``evaluation_record`` (1.1 or later) carries the metrics it was made on, so one message is one
file's complete result: the sink turns it back into a :class:`~rdmt_core.records.FileResult` and
hands it to :meth:`rdmt_core.store.Store.write`, which is atomic per file and idempotent per run id
(the monitor service uses the request id as run id, so a redelivered message changes no table).
A file's 48k rows are the batch; the runner stores the offset only after the write. A record without
metrics (a 1.0 writer) cannot be stored atomically and goes to the dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..config import RdmtConfig
from ..errors import InputError
from ..outputs import SuperpixelMaps, write_ecsv, write_report
from ..records import EvaluationBlock, FileIdentity, FileResult
from ..store import Store, open_store
from .history_state import metrics_from_record
from .runner import Inbound, Output, ServiceRunner
from .settings import StreamingSettings
from .topics import EVALUATIONS


def _as_datetime(value: datetime | int) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def result_from_record(record: Mapping[str, Any], monitor_title: str = "") -> FileResult:
    """The :class:`FileResult` of a decoded ``evaluation_record`` that carries its metrics.

    Raises
    ------
    InputError
        When the record has no metrics (written with schema 1.0).
    """
    identity = FileIdentity(
        source=record["source"],
        kind=record["kind"],
        detector=record["detector"],
        file_time=_as_datetime(record["file_time"]),
        exposure_type=record.get("exposure_type") or "",
    )
    if record.get("metrics") is None:
        raise InputError(identity.source, f"evaluation record {identity.file_key} carries no metrics (schema 1.0)")
    blocks = [
        EvaluationBlock(
            evaluator=entry["evaluator"],
            metric=entry["metric"],
            scale=entry["scale"],
            cells=np.asarray(entry["cells"], dtype=np.int32),
            status=np.asarray(entry["status"], dtype=object),
            reference=np.asarray(entry["reference"], dtype=np.float64),
            reason=np.asarray(entry["reason"], dtype=object),
            threshold=float(entry["threshold"]),
        )
        for entry in record["evaluations"]
    ]
    return FileResult(
        identity=identity,
        monitor=record["monitor"],
        monitor_title=monitor_title or record["monitor"],
        run_id=record["run_id"],
        release=record["release"],
        metrics=metrics_from_record(record),
        evaluations=blocks,
        notes={},
    )


def make_process(store: Store, config: RdmtConfig) -> Callable[[Inbound], list[Output]]:
    """Store one evaluation record and write its files; nothing is produced."""
    from ..monitors import registered_monitors

    titles = {name: monitor.title for name, monitor in registered_monitors().items()}
    output_dir = Path(config.output_dir)
    maps: list[SuperpixelMaps] = []

    def process(inbound: Inbound) -> list[Output]:
        result = result_from_record(inbound.message.record, titles.get(inbound.message.record["monitor"], ""))
        if config.outputs.store:
            store.write(result)
        if config.outputs.ecsv:
            write_ecsv(result, output_dir / "ecsv")
        if config.outputs.report:
            if not maps:
                maps.append(SuperpixelMaps())
            write_report(result, output_dir / "reports", maps[0])
        return []

    return process


def sink_runner(config: RdmtConfig, settings: StreamingSettings) -> tuple[ServiceRunner, Store]:
    """The runner of ``rdmt service sink`` and the store it writes (close it after the run)."""
    store = open_store(config.store_url)
    prefix = settings.topic_prefix
    inputs = {f"{prefix}.{EVALUATIONS}": "evaluation_record"}
    runner = ServiceRunner("rdmt-sink", settings, f"{prefix}.sink", inputs, make_process(store, config))
    return runner, store
