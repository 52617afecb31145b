"""Routing: from a CRDS delivery or an archive event to monitor requests (pure).

The rules come from the monitor registry: a reference type goes to every monitor whose ``reftypes``
name it, an exposure type to every monitor whose ``exposure_types`` name it. A deployment may
replace either table (``streaming.routing`` in the service's configuration) to route differently;
a registered monitor needs no routing line of its own.

One request per (file, monitor), with the delivery id and the number of requests made from the
event, so a downstream alerter knows how many results to wait for. What cannot be routed (no monitor
for the reftype or exposure type, a target monitor that is not registered) comes back as a reason,
never silently dropped. Request ids are derived from the event, so routing the same event twice
gives the same requests.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .geometry import DETECTORS
from .monitors import registered_monitors

REQUEST_NAMESPACE = uuid.UUID("5d1d7a44-4d0e-4a55-9b8a-7a1e3f3c2b10")


def registry_routes(attribute: str) -> dict[str, list[str]]:
    """``reftypes`` or ``exposure_types`` of the registered monitors: value -> monitor names, sorted."""
    routes: dict[str, list[str]] = {}
    for name, monitor in sorted(registered_monitors().items()):
        for value in getattr(monitor, attribute):
            routes.setdefault(value.upper() if attribute == "reftypes" else value, []).append(name)
    return routes


class RoutingRules(BaseModel):
    """Which monitors receive which files (by default, what the monitor registry says)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reftypes: dict[str, list[str]] = Field(
        default_factory=lambda: registry_routes("reftypes"),
        description="CRDS reference type (upper case) -> monitors run on every delivered file of that type "
        "(default: the registered monitors' reftypes).",
    )
    exposure_types: dict[str, list[str]] = Field(
        default_factory=lambda: registry_routes("exposure_types"),
        description="meta.exposure.type of a Level-2 file -> monitors run on it, for archive events that name "
        "no monitor (default: the registered monitors' exposure_types).",
    )


@dataclass(frozen=True)
class Routed:
    """What one event becomes: monitor requests, and reasons for what could not be routed."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    unrouted: list[str] = field(default_factory=list)


def request_id(delivery_id: str, uri: str, monitor: str, release: str) -> str:
    """Stable id of the request to run ``monitor`` on ``uri`` for a delivery (same on every routing)."""
    return str(uuid.uuid5(REQUEST_NAMESPACE, "\x1f".join((delivery_id, uri, monitor, release))))


def _targets(names: list[str], known: Collection[str], what: str) -> tuple[list[str], list[str]]:
    good = [n for n in dict.fromkeys(names) if n in known]
    listed = ", ".join(sorted(known)) or "none"
    bad = [f"{what}: unknown monitor {n!r} (known: {listed})" for n in names if n not in known]
    return good, bad


def route_crds(
    delivery: Mapping[str, Any], rules: RoutingRules, known: Collection[str], release: str, now: datetime
) -> Routed:
    """Requests for every file of a ``crds_delivery`` record whose reftype a rule names."""
    planned: list[tuple[Mapping[str, Any], str]] = []
    unrouted: list[str] = []
    for ref in delivery["files"]:
        what = f"{ref['uri']} ({ref['reftype']}, {ref['detector']})"
        names = rules.reftypes.get(ref["reftype"].upper())
        if not names:
            unrouted.append(f"{what}: no monitor for reftype {ref['reftype']!r} (rules: {_listed(rules.reftypes)})")
            continue
        good, bad = _targets(names, known, what)
        unrouted.extend(bad)
        planned.extend((ref, m) for m in good)
    delivery_id = delivery["delivery_id"]
    requests = [
        _request(
            monitor=m, uri=ref["uri"], kind=ref["reftype"].upper(), detector=ref["detector"], exposure_type=None,
            file_time=ref["useafter"], release=release, delivery_id=delivery_id, n=len(planned), now=now,
        )
        for ref, m in planned
    ]
    return Routed(requests, unrouted)


def route_archive(
    event: Mapping[str, Any], rules: RoutingRules, known: Collection[str], release: str, now: datetime
) -> Routed:
    """Requests for an ``archive_event``: its ``monitor`` if it names one, else the exposure-type rule."""
    what = f"{event['uri']} ({event['exposure_type']}, {event['detector']})"
    if event.get("monitor"):
        names = [event["monitor"]]
    else:
        names = rules.exposure_types.get(event["exposure_type"], [])
        if not names:
            reason = f"{what}: no monitor for exposure type {event['exposure_type']!r}"
            return Routed([], [f"{reason} (rules: {_listed(rules.exposure_types)})"])
    good, bad = _targets(names, known, what)
    release = event.get("release") or release
    delivery_id = exposure_burst_id(event)
    requests = [
        _request(
            monitor=m, uri=event["uri"], kind=event["kind"], detector=event["detector"],
            exposure_type=event["exposure_type"], file_time=event["exposure_start"], release=release,
            delivery_id=delivery_id, n=len(DETECTORS) * len(good), now=now,
        )
        for m in good
    ]
    return Routed(requests, bad)


def exposure_burst_id(event: Mapping[str, Any]) -> str:
    """The delivery id shared by the 18 detectors' images of one exposure (same type and start time).

    WFI reads all 18 detectors in one exposure, so their Level-2 files arrive as a burst; grouping them
    by exposure lets the notifier send one alert per burst. A burst missing some detectors is closed by
    the notifier's timeout.
    """
    start = event["exposure_start"]
    stamp = start.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] if isinstance(start, datetime) else str(start)
    return f"exposure:{event['exposure_type']}:{stamp}"


def _request(
    *, monitor: str, uri: str, kind: str, detector: str, exposure_type: str | None, file_time: datetime,
    release: str, delivery_id: str, n: int, now: datetime,
) -> dict[str, Any]:
    return {
        "request_id": request_id(delivery_id, uri, monitor, release),
        "monitor": monitor,
        "uri": uri,
        "kind": kind,
        "detector": detector.upper(),
        "exposure_type": exposure_type,
        "file_time": file_time,
        "release": release,
        "delivery_id": delivery_id,
        "n_files_in_delivery": n,
        "attempt": 1,
        "requested_at": now,
    }


def _listed(rules: Mapping[str, list[str]]) -> str:
    return "; ".join(f"{k} -> {', '.join(v)}" for k, v in sorted(rules.items())) or "none"
