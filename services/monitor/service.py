"""The monitor service: monitor requests in, one metric record per request out.

One generic service, started with a monitor's name and scaled by adding members to its group
(``<prefix>.monitor.<name>``). It is stateless: it only measures (:func:`rdmt_core.results.measurement`);
the evaluator judges the metrics against the history. A monitor that tracks pixel classes (the dark's
hot and dead pixels) sends their packed masks with its metrics, for the evaluator's pixel changes.
Opening the file is the only I/O, and only under the configured input roots and URI prefixes
(:class:`~rdmt_core.data_access.InputPolicy`; the service refuses to start when none are configured):
an :class:`~rdmt_core.errors.InputError` (corrupt, not Roman, vanished, outside the roots, not a
regular file, too slow to read) is permanent and the request goes to the dead-letter topic.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import click

from rdmt_core.cli.service import service_command
from rdmt_core.config import RdmtConfig
from rdmt_core.data_access import InputPolicy, open_roman
from rdmt_core.errors import ConfigError
from rdmt_core.kafka.runner import Inbound, Output, ServiceRunner
from rdmt_core.kafka.settings import StreamingSettings
from rdmt_core.kafka.topics import METRICS, requests_suffix
from rdmt_core.monitors import Monitor, get_monitor
from rdmt_core.pixel_masks import pack_masks
from rdmt_core.records import FileResult
from rdmt_core.results import Measurement, measurement
from rdmt_core.wire import metric_record


@functools.lru_cache(maxsize=16)
def _for_release(config: RdmtConfig, release: str) -> RdmtConfig:
    return config if release == config.release else config.model_copy(update={"release": release})


def compute(monitor: type[Monitor], request: Mapping[str, Any], config: RdmtConfig, inputs: InputPolicy) -> FileResult:
    """Open the requested file (if ``inputs`` allows it) and measure the monitor's metrics (no verdicts: the
    evaluator has the history)."""
    return measure_request(monitor, request, config, inputs).result


def measure_request(
    monitor: type[Monitor], request: Mapping[str, Any], config: RdmtConfig, inputs: InputPolicy
) -> Measurement:
    """:func:`compute`'s measurement, with the masks of the monitor's tracked pixel classes (sent to the evaluator)."""
    if request["monitor"] != monitor.name:
        raise ConfigError(
            f"request {request['request_id']} is for monitor {request['monitor']!r}, this service runs {monitor.name!r}"
        )
    run_config = _for_release(config, request["release"])  # one copy per release: the config caches per instance
    with open_roman(request["uri"], inputs) as roman:
        arrays = roman.read_arrays(monitor.arrays)
        identity = roman.identity
        context = monitor.load_context(roman, run_config.options_for(monitor.name, identity.detector))
    # The request id is the run id: a redelivered request yields a record a sink recognises.
    return measurement(monitor, arrays, identity, run_config, request["request_id"], context)


def make_process(
    monitor: type[Monitor],
    config: RdmtConfig,
    prefix: str,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Callable[[Inbound], list[Output]]:
    topic = f"{prefix}.{METRICS}"
    inputs = InputPolicy.service(config.inputs)  # ConfigError (exit 2) when no input roots are configured

    def process(inbound: Inbound) -> list[Output]:
        request = inbound.message.record
        result, _, masks = measure_request(monitor, request, config, inputs)
        record = metric_record(result, request, now(), pack_masks(masks))  # the evaluator's previous masks
        return [Output(topic, result.identity.detector, "metric_record", record)]

    return process


def monitor_runner(name: str, config: RdmtConfig, settings: StreamingSettings) -> ServiceRunner:
    """The runner of ``rdmt service monitor --monitor NAME`` (ConfigError for an unknown monitor, or no input roots)."""
    monitor = get_monitor(name)
    prefix = settings.topic_prefix
    inputs = {f"{prefix}.{requests_suffix(name)}": "monitor_request"}
    return ServiceRunner(
        f"rdmt-monitor-{name}", settings, f"{prefix}.monitor.{name}", inputs, make_process(monitor, config, prefix)
    )


@service_command("monitor", click.Option(["--monitor", "name"], required=True, help="Monitor to run, e.g. dark."))
def command(config: RdmtConfig, settings: StreamingSettings, metrics_port: int | None, name: str) -> None:
    """Run one monitor on the requests of its topic; emit metric records."""
    monitor_runner(name, config, settings).run(metrics_port)
