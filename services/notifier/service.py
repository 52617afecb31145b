"""The notifier service: evaluation records grouped per delivery into one alert, and each alert sent once.

Wiring only (the decisions are in :mod:`rdmt_core.alerts`, the grouping state in
:mod:`rdmt_core.kafka.delivery_groups`). One quixstreams application with two dataframes:

1. ``<prefix>.evaluations`` (keyed by detector) is summarised and repartitioned by ``delivery_id``
   (quixstreams ``group_by``), so one member groups a whole delivery in its state. When all
   ``n_files_in_delivery`` results of a delivery are in, or ``RDMT_ALERT_TIMEOUT_S`` after its first
   one (heartbeat ticks close it without other traffic, and never while results wait on the source
   topic), the delivery is closed, and if anything failed one ``alert`` goes to ``<prefix>.alerts``
   (keyed by delivery id). A result that arrives after its delivery was closed and has failures gets a
   follow-up alert of that delivery (``late``), so no failure goes unalerted.
2. ``<prefix>.alerts`` is sent to the configured channels (Slack-compatible webhook, e-mail) by
   :func:`rdmt_core.alerts.send_alert`. Alerts of a release other than ``live`` (replays) are only
   logged unless ``RDMT_NOTIFY_REPLAYS`` is set; alerts older than ``RDMT_NOTIFY_MAX_AGE_S`` are not
   sent again (a new consumer group starts at the beginning of the topic).

Alert records, state and offsets are committed together (exactly-once); a message to a channel is a
side effect outside the transaction, sent again only if the service dies between sending it and its
next checkpoint. Ticks are produced outside the transaction: a tick adds nothing to any group.
"""

from __future__ import annotations

import logging
from typing import Any

from quixstreams import Application

from rdmt_core.alerts import RateLimit, result_summary, send_alert
from rdmt_core.cli.service import service_command
from rdmt_core.config import RdmtConfig
from rdmt_core.kafka.delivery_groups import DeliveryGrouper, SourceProgress, Ticker, tick_every_s
from rdmt_core.kafka.schema_registry import Codec
from rdmt_core.kafka.settings import StreamingSettings
from rdmt_core.kafka.stateful import (
    MessageMeter,
    Poison,
    application,
    avro_topic,
    deadletter_topic,
    metered_json,
    poison_tombstones,
    produced_now,
    route_poison,
    run_alongside,
    run_service,
)
from rdmt_core.kafka.topics import ALERTS, EVALUATIONS, spec_for

SERVICE = "notifier"
log = logging.getLogger("rdmt.streaming.notifier")


def build(config: RdmtConfig, settings: StreamingSettings, meter: MessageMeter) -> Application:
    """The notifier's quixstreams application (not started), its messages counted by ``meter``."""
    options = settings.service
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
    # Ticks go to the topic group_by made (one partition: group_by makes none, the source topic is not JSON).
    repartition = [topic for topic in grouped.topics if topic.is_repartition]
    if repartition:
        # Outside the exactly-once transaction: a tick is a no-op if duplicated or replayed. No tick while
        # results wait on the source topic (after an outage): it would close their delivery just before them.
        progress = SourceProgress(settings.kafka.common(), app.config.consumer_group, source.name)
        run_alongside(app, Ticker(repartition[0], settings.kafka.producer(f"rdmt-{SERVICE}-ticker"),
                                  tick_every_s(options), progress.caught_up))  # fmt: skip
    else:
        log.warning("%s has one partition: no ticks, the alert timeout is checked when results arrive", source.name)
    grouped = grouped.apply(grouper, stateful=True, metadata=True, expand=True)
    produced_now(grouped).to_topic(alert_topic, key=lambda alert: alert["delivery_id"])

    limit = RateLimit(options.notify_max_per_hour)

    def notify(alert: dict[str, Any] | Poison) -> None:
        if isinstance(alert, Poison):
            log.error("not an alert on the alert topic: %s", alert.error)
        else:
            send_alert(alert, config.notify, options, limit)

    poison_tombstones(app.dataframe(alert_topic), alerts.schema).update(notify)
    return app


@service_command("notifier")
def command(config: RdmtConfig, settings: StreamingSettings, metrics_port: int | None) -> None:
    """Group evaluation results per delivery into one alert, and send it to the configured channels."""
    run_service(f"rdmt-{SERVICE}", build, config, settings, metrics_port)
