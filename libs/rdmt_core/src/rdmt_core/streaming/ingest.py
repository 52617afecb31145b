"""The ingest service: CRDS deliveries and archive events in, monitor requests (or unrouted records) out.

Wiring only: the decisions are :func:`.routing.route_crds` and :func:`.routing.route_archive`.
Requests go to ``<prefix>.requests.<monitor>`` keyed by detector, so one detector's files stay in
order; what cannot be routed goes to ``<prefix>.unrouted`` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from ..config import RdmtConfig
from ..monitors import registered_monitors
from .failures import dead_letter
from .routing import Routed, route_archive, route_crds
from .runner import Inbound, Output, ServiceRunner
from .settings import StreamingSettings
from .topics import EVENTS_ARCHIVE, EVENTS_CRDS, UNROUTED, requests_suffix

SERVICE = "rdmt-ingest"
UNROUTED_ERROR_TYPE = "rdmt_core.streaming.routing.Unrouted"


def make_process(
    config: RdmtConfig, settings: StreamingSettings, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Callable[[Inbound], list[Output]]:
    """The ingest step: one event -> its requests and unrouted records."""
    prefix = settings.topic_prefix
    known = {name for name in registered_monitors() if config.monitor(name).enabled}

    def process(inbound: Inbound) -> list[Output]:
        when = now()
        if inbound.message.name == "crds_delivery":
            routed = route_crds(inbound.message.record, settings.routing, known, config.release, when)
        else:
            routed = route_archive(inbound.message.record, settings.routing, known, config.release, when)
        return outputs(routed, inbound, prefix, when)

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
