"""The ingest service: CRDS deliveries and archive events in, monitor requests (or unrouted records) out.

Wiring only: the decisions are :func:`rdmt_core.routing.route_crds` and
:func:`rdmt_core.routing.route_archive`, with rules derived from the monitor registry.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from rdmt_core.cli.service import service_command
from rdmt_core.config import RdmtConfig
from rdmt_core.kafka.deadletters import dead_letter
from rdmt_core.kafka.runner import Inbound, Output, ServiceRunner
from rdmt_core.kafka.settings import StreamingSettings
from rdmt_core.kafka.topics import EVENTS_ARCHIVE, EVENTS_CRDS, UNROUTED, requests_suffix
from rdmt_core.monitors import registered_monitors
from rdmt_core.routing import Routed, route_archive, route_crds

SERVICE = "rdmt-ingest"
UNROUTED_ERROR_TYPE = "rdmt_core.routing.Unrouted"


def make_process(
    config: RdmtConfig, settings: StreamingSettings, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Callable[[Inbound], list[Output]]:
    """The ingest step: one event -> its requests and unrouted records."""
    known = {name for name in registered_monitors() if config.monitor(name).enabled}
    route = {"crds_delivery": route_crds, "archive_event": route_archive}

    def process(inbound: Inbound) -> list[Output]:
        when = now()
        routed = route[inbound.message.name](inbound.message.record, settings.routing, known, config.release, when)
        return outputs(routed, inbound, settings.topic_prefix, when)

    return process


def outputs(routed: Routed, inbound: Inbound, prefix: str, now: datetime) -> list[Output]:
    """The messages to produce for one routed event."""
    out = [
        Output(f"{prefix}.{requests_suffix(r['monitor'])}", r["detector"], "monitor_request", r)
        for r in routed.requests
    ]
    key = inbound.origin.key.decode(errors="replace") if inbound.origin.key is not None else None
    out.extend(
        Output(f"{prefix}.{UNROUTED}", key, "dead_letter",
               dead_letter(inbound.origin, reason, UNROUTED_ERROR_TYPE, 1, SERVICE, now))
        for reason in routed.unrouted
    )
    return out


def ingest_runner(config: RdmtConfig, settings: StreamingSettings) -> ServiceRunner:
    prefix = settings.topic_prefix
    inputs = {f"{prefix}.{EVENTS_CRDS}": "crds_delivery", f"{prefix}.{EVENTS_ARCHIVE}": "archive_event"}
    return ServiceRunner(SERVICE, settings, f"{prefix}.ingest", inputs, make_process(config, settings))


@service_command("ingest")
def command(config: RdmtConfig, settings: StreamingSettings, metrics_port: int | None) -> None:
    """Route CRDS deliveries and archive events to the monitors' request topics."""
    ingest_runner(config, settings).run(metrics_port)
