"""The notifier service: evaluation records grouped per delivery into one alert, and each alert sent once.

Wiring only (the decisions are in :mod:`.alerts`). One quixstreams application with two dataframes:

1. ``<prefix>.evaluations`` (keyed by detector) is summarised and repartitioned by ``delivery_id``
   (quixstreams ``group_by``), so one member groups a whole delivery in its state. When all
   ``n_files_in_delivery`` results of a delivery are in, or ``RDMT_ALERT_TIMEOUT_S`` after its first
   one, the delivery is closed, and if anything failed one ``alert`` goes to ``<prefix>.alerts``
   (keyed by delivery id). A closed delivery stays closed: late or redelivered results do not alert
   again. quixstreams has no wall-clock timers, so the timeout is checked whenever a result arrives
   on the same partition (the next delivery closes an earlier one still waiting for a lost file).
2. ``<prefix>.alerts`` is sent to the configured channels (Slack-compatible webhook, e-mail) by
   :func:`rdmt_core.notify.send_notification`. Alerts of a release other than ``live`` (replays) are
   only logged unless ``RDMT_NOTIFY_REPLAYS`` is set; alerts older than ``RDMT_NOTIFY_MAX_AGE_S`` are
   not sent again (a new consumer group starts at the beginning of the topic).

Alert records, state and offsets are committed together (exactly-once); a message to a channel is a
side effect outside the transaction, sent again only if the service dies between sending it and its
next checkpoint.

Run it with ``rdmt service notifier`` or ``python -m rdmt_core.streaming.notifier_service [--config FILE]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from typing import Any

from quixstreams import Application, message_context
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.state import State

from ..config import RdmtConfig
from ..notify import send_notification
from .alerts import add_result, alert_record, format_alert, is_complete, is_overdue, result_summary
from .history_state import to_millis
from .quix_app import (
    MessageMeter,
    Poison,
    ServiceOptions,
    application,
    avro_topic,
    deadletter_topic,
    metered_json,
    poison_tombstones,
    produced_now,
    route_poison,
    run_service,
)
from .rate_limit import RateLimit
from .schema_registry import Codec
from .settings import StreamingSettings
from .topics import ALERTS, EVALUATIONS, spec_for

SERVICE = "notifier"
OPEN = "\x00open-deliveries"  # state prefix of the partition's open deliveries (no delivery id starts with NUL)
log = logging.getLogger("rdmt.streaming.notifier")


class DeliveryGrouper:
    """The stateful step of the repartitioned stream: one result in, the alerts it completes out."""

    def __init__(self, grouped: StreamingDataFrame, options: ServiceOptions, report_url: str | None) -> None:
        self.grouped = grouped
        self.options = options
        self.report_url = report_url

    def __call__(self, summary: dict[str, Any], key: str, _ts: int, _headers: Any, state: State) -> list[dict]:
        now_ms = round(time.time() * 1000)
        transaction = self.grouped.processing_context.checkpoint.get_store_transaction(
            stream_id=self.grouped.stream_id, partition=message_context().partition
        )
        index = transaction.as_state(prefix=OPEN)
        open_deliveries: dict[str, int] = dict(index.get("open", {}))
        alerts: list[dict] = []
        group = state.get("group")
        if group is not None and group.get("closed"):
            log.info("delivery %s is closed: result %s not grouped", key, summary["file_key"])
        else:
            group = add_result(group, summary, now_ms)
            open_deliveries[key] = group["first_seen_ms"]
            if is_complete(group):
                alerts += self._close(key, group, state, open_deliveries)
            else:
                state.set("group", group)
        for other, first_seen_ms in sorted(open_deliveries.items(), key=lambda item: item[1]):
            if other != key and is_overdue({"first_seen_ms": first_seen_ms}, now_ms, self.options.alert_timeout_s):
                other_state = transaction.as_state(prefix=other)
                alerts += self._close(other, other_state.get("group"), other_state, open_deliveries)
        index.set("open", open_deliveries)
        return alerts

    def _close(self, key: str, group: dict | None, state: State, open_deliveries: dict[str, int]) -> list[dict]:
        open_deliveries.pop(key, None)
        if group is None:
            return []
        alert = alert_record(group, report_url=self.report_url)
        state.set("group", {"closed": True, "n_results": len(group["results"]), "alerted": alert is not None})
        log.info("delivery %s closed with %d of %d results: %s", key, len(group["results"]), group["n_expected"],
                 "alert" if alert else "no failures")  # fmt: skip
        return [] if alert is None else [alert]


def notify(alert: dict[str, Any] | Poison, config: RdmtConfig, options: ServiceOptions, limit: RateLimit) -> None:
    """Send one alert to the configured channels (or only log it: replays, old alerts, over the rate limit)."""
    if isinstance(alert, Poison):
        log.error("not an alert on the alert topic: %s", alert.error)
        return
    note = format_alert(alert)
    age_s = time.time() - to_millis(alert["created_at"]) / 1000
    if alert["replay"] and not options.notify_replays:
        log.info("replay alert of delivery %s (release %s) not sent:\n%s", alert["delivery_id"], alert["release"],
                 note.text)  # fmt: skip
    elif age_s > options.notify_max_age_s:
        log.info("alert of delivery %s is %.0f s old: not sent again", alert["delivery_id"], age_s)
    elif not limit.allow(time.time()):
        log.warning("rate limit (%d per hour): alert of delivery %s held back, not sent:\n%s",
                    options.notify_max_per_hour, alert["delivery_id"], note.text)  # fmt: skip
    else:
        held_back = limit.take_held_back()
        if held_back:
            note = dataclasses.replace(
                note,
                text=f"{note.text}\n({held_back} earlier alerts were held back by the rate limit: see the alert topic)",
            )
        log.warning("%s", note.text)
        channels = send_notification(note, config.notify)
        log.info("alert of delivery %s sent to %s", alert["delivery_id"], ", ".join(channels) or "no channel")


def build(config: RdmtConfig, settings: StreamingSettings, options: ServiceOptions, meter: MessageMeter) -> Application:
    """The notifier's quixstreams application (not started), its messages counted by ``meter``."""
    app = application(settings, options, SERVICE, meter)
    prefix = settings.topic_prefix
    evaluations, alerts = spec_for(EVALUATIONS), spec_for(ALERTS)
    codec = Codec.from_settings(settings.schema_registry)
    source = avro_topic(app, evaluations.name(prefix), evaluations.schema, meter, codec, read=True)
    alert_topic = avro_topic(app, alerts.name(prefix), alerts.schema, meter, codec, read=True, write=True,
                             key_deserializer="string")

    dead = deadletter_topic(app, prefix, meter, codec)
    results = route_poison(poison_tombstones(app.dataframe(source), evaluations.schema), dead, f"rdmt-{SERVICE}")
    grouped = results.apply(result_summary).group_by(lambda s: s["delivery_id"], name="delivery_id",
                                                     **metered_json(meter))
    grouper = DeliveryGrouper(grouped, options, config.notify.report_base_url)
    grouped = grouped.apply(grouper, stateful=True, metadata=True, expand=True)
    produced_now(grouped).to_topic(alert_topic, key=lambda alert: alert["delivery_id"])

    limit = RateLimit(options.notify_max_per_hour)
    poison_tombstones(app.dataframe(alert_topic), alerts.schema).update(lambda a: notify(a, config, options, limit))
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rdmt-notifier", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML file: rdmt configuration with an optional streaming: section")
    parser.add_argument("--metrics-port", type=int, help="serve /metrics, /healthz and /readyz on this port")
    args = parser.parse_args(argv)
    return run(args.config, args.metrics_port)


def run(config_file: str | None, metrics_port: int | None = None) -> int:
    """Run the service until SIGTERM or SIGINT; 2 for a configuration error."""
    return run_service("rdmt-notifier", build, config_file, metrics_port)


if __name__ == "__main__":
    sys.exit(main())
