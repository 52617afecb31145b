"""The monitor service: monitor requests in, one metric record per request out.

One generic service, started with a monitor's name and scaled by adding members to its group
(``<prefix>.monitor.<name>``). It is stateless: metrics are computed with an empty history, the
evaluator joins them with the history later. Opening the file is the only I/O: an
:class:`~rdmt_core.errors.InputError` (corrupt, not Roman, vanished) is permanent and the request
goes to the dead-letter topic; the maths is :func:`rdmt_core.results.file_result`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..config import RdmtConfig
from ..data_access import open_roman
from ..errors import ConfigError
from ..evaluators import History
from ..monitors import Monitor, get_monitor
from ..records import FileResult
from ..results import file_result
from .history_state import metric_entries
from .runner import Inbound, Output, ServiceRunner
from .settings import StreamingSettings
from .topics import METRICS, requests_suffix


def metric_record(result: FileResult, request: Mapping[str, Any], computed_at: datetime) -> dict[str, Any]:
    """The ``metric_record`` of one monitor's result on one requested file."""
    identity = result.identity
    return {
        "run_id": result.run_id,
        "release": result.release,
        "monitor": result.monitor,
        "detector": identity.detector,
        "kind": identity.kind,
        "file_key": identity.file_key,
        "file_time": identity.file_time,
        "source": identity.source,
        "exposure_type": identity.exposure_type or None,
        "delivery_id": request["delivery_id"],
        "n_files_in_delivery": request["n_files_in_delivery"],
        "computed_at": computed_at,
        "notes": dict(result.notes),
        "metrics": metric_entries(result.metrics),
    }


@functools.lru_cache(maxsize=16)
def _for_release(config: RdmtConfig, release: str) -> RdmtConfig:
    return config if release == config.release else config.model_copy(update={"release": release})


def compute(monitor: type[Monitor], request: Mapping[str, Any], config: RdmtConfig) -> FileResult:
    """Open the requested file and compute the monitor's metrics (no history: the evaluator has it)."""
    if request["monitor"] != monitor.name:
        raise ConfigError(f"request {request['request_id']} is for monitor {request['monitor']!r}, "
                          f"this service runs {monitor.name!r}")
    run_config = _for_release(config, request["release"])  # one copy per release: the config caches per instance
    with open_roman(request["uri"]) as roman:
        arrays = roman.read_arrays(monitor.arrays)
        identity = roman.identity
        context = monitor.load_context(roman, run_config.options_for(monitor.name, identity.detector))
    # The request id is the run id: a redelivered request yields a record a sink recognises.
    return file_result(monitor, arrays, identity, run_config, History(), request["request_id"], context)


def make_process(
    monitor: type[Monitor], config: RdmtConfig, prefix: str,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Callable[[Inbound], list[Output]]:
    topic = f"{prefix}.{METRICS}"

    def process(inbound: Inbound) -> list[Output]:
        request = inbound.message.record
        result = compute(monitor, request, config)
        return [Output(topic, result.identity.detector, "metric_record", metric_record(result, request, now()))]

    return process


def monitor_runner(name: str, config: RdmtConfig, settings: StreamingSettings) -> ServiceRunner:
    """The runner of ``rdmt service monitor --monitor NAME`` (ConfigError for an unknown monitor)."""
    monitor = get_monitor(name)
    prefix = settings.topic_prefix
    inputs = {f"{prefix}.{requests_suffix(name)}": "monitor_request"}
    return ServiceRunner(
        f"rdmt-monitor-{name}", settings, f"{prefix}.monitor.{name}", inputs, make_process(monitor, config, prefix)
    )
