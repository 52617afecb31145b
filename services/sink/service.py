"""The sink service: evaluation records in; store rows, ECSV files and reports out.

An ``evaluation_record`` (1.1 or later) carries the metrics it was made on, and from 1.2 the monitor's
notes, so one message is one file's complete result: the sink turns it back into a
:class:`~rdmt_core.records.FileResult` (:func:`rdmt_core.wire.result_from_record`) and hands it to
:meth:`rdmt_core.store.Store.write`, which is atomic per file and idempotent per run id (the monitor
service uses the request id as run id, so a redelivered message changes no table), then writes the
same files as ``rdmt run`` (:class:`rdmt_core.pipeline.ResultFiles`). A file's rows are the batch; the
runner stores the offset only after the write. A record without metrics (a 1.0 writer) cannot be
stored atomically and goes to the dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Callable

from rdmt_core.cli.service import service_command
from rdmt_core.config import RdmtConfig
from rdmt_core.kafka.runner import Inbound, Output, ServiceRunner
from rdmt_core.kafka.settings import StreamingSettings
from rdmt_core.kafka.topics import EVALUATIONS
from rdmt_core.pipeline import ResultFiles
from rdmt_core.store import Store, open_store
from rdmt_core.wire import result_from_record


class StoreConnection:
    """The store of ``store_url``, opened by :meth:`open` (the runner's set-up, retried until it succeeds)."""

    def __init__(self, store_url: str) -> None:
        self.store_url = store_url
        self.store: Store | None = None

    def open(self) -> None:
        if self.store is None:
            self.store = open_store(self.store_url)  # StoreError naming the store when it cannot be reached

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def make_process(connection: StoreConnection, config: RdmtConfig) -> Callable[[Inbound], list[Output]]:
    """Store one evaluation record and write its files; nothing is produced."""
    files = ResultFiles(config)

    def process(inbound: Inbound) -> list[Output]:
        result = result_from_record(inbound.message.record)
        if config.outputs.store:
            connection.store.write(result)
        files.write(result)
        return []

    return process


def sink_runner(config: RdmtConfig, settings: StreamingSettings) -> tuple[ServiceRunner, StoreConnection]:
    """The runner of ``rdmt service sink`` and its store connection (close it after the run).

    The store is opened before the first message, and retried while it cannot be reached: the sink is
    live but not ready (``/readyz`` names the store and the error) and never writes anywhere else.
    """
    connection = StoreConnection(config.store_url)
    prefix = settings.topic_prefix
    inputs = {f"{prefix}.{EVALUATIONS}": "evaluation_record"}
    runner = ServiceRunner("rdmt-sink", settings, f"{prefix}.sink", inputs, make_process(connection, config),
                           setup=connection.open if config.outputs.store else None)  # fmt: skip
    return runner, connection


@service_command("sink")
def command(config: RdmtConfig, settings: StreamingSettings, metrics_port: int | None) -> None:
    """Write evaluation records (with their metrics and notes) to the store, ECSV files and reports."""
    runner, connection = sink_runner(config, settings)
    try:
        runner.run(metrics_port)
    finally:
        connection.close()
