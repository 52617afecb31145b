"""The notifier service: evaluation records grouped per delivery into one alert, and each alert sent once.

Wiring only (the decisions are in :mod:`.alerts`). One quixstreams application with two dataframes:

1. ``<prefix>.evaluations`` (keyed by detector) is summarised and repartitioned by ``delivery_id``
   (quixstreams ``group_by``), so one member groups a whole delivery in its state. When all
   ``n_files_in_delivery`` results of a delivery are in, or ``RDMT_ALERT_TIMEOUT_S`` after its first
   one, the delivery is closed, and if anything failed one ``alert`` goes to ``<prefix>.alerts``
   (keyed by delivery id). A closed delivery stays closed: late or redelivered results do not alert
   again. quixstreams has no wall-clock timers, so a :class:`Ticker` thread stands in for them: every
   ``max(1, RDMT_ALERT_TIMEOUT_S / 4)`` seconds it produces a heartbeat tick (key :data:`TICK`, which no
   delivery id can be) to every partition of the repartition topic, and a tick closes the overdue
   deliveries of its partition as a result does. A delivery waiting for a file that never comes (a
   corrupt file, dead-lettered by the monitor) alerts with what it has at most
   ``RDMT_ALERT_TIMEOUT_S`` plus one tick period after its first result, without any other traffic.
2. ``<prefix>.alerts`` is sent to the configured channels (Slack-compatible webhook, e-mail) by
   :func:`rdmt_core.notify.send_notification`. Alerts of a release other than ``live`` (replays) are
   only logged unless ``RDMT_NOTIFY_REPLAYS`` is set; alerts older than ``RDMT_NOTIFY_MAX_AGE_S`` are
   not sent again (a new consumer group starts at the beginning of the topic).

Alert records, state and offsets are committed together (exactly-once); a message to a channel is a
side effect outside the transaction, sent again only if the service dies between sending it and its
next checkpoint. Ticks are produced outside the transaction by a producer of their own: a tick adds
nothing to any group, so a duplicated or replayed tick changes nothing.

Run it with ``rdmt service notifier`` or ``python -m rdmt_core.streaming.notifier_service [--config FILE]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from quixstreams import Application, message_context
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models.topics import Topic
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
    run_alongside,
    run_service,
)
from .rate_limit import RateLimit
from .schema_registry import Codec
from .settings import StreamingSettings
from .topics import ALERTS, EVALUATIONS, spec_for

SERVICE = "notifier"
OPEN = "\x00open-deliveries"  # state prefix of the partition's open deliveries (no delivery id starts with NUL)
TICK = "\x00tick"  # key of a heartbeat tick on the repartition topic (no delivery id starts with NUL)
log = logging.getLogger("rdmt.streaming.notifier")


class DeliveryGrouper:
    """The stateful step of the repartitioned stream: one result (or tick) in, the alerts it completes out.

    A result is added to its delivery's group; then every other delivery of the partition open for
    ``alert_timeout_s`` is closed. A tick (key :data:`TICK`) only does the second part: it reads no
    state of its own key and writes none, and the partition's index of open deliveries is written
    only when a delivery opens or closes.
    """

    def __init__(self, grouped: StreamingDataFrame, options: ServiceOptions, report_url: str | None,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.grouped = grouped
        self.options = options
        self.report_url = report_url
        self.clock = clock

    def __call__(self, summary: dict[str, Any], key: str, _ts: int, _headers: Any, state: State) -> list[dict]:
        now_ms = round(self.clock() * 1000)
        transaction = self.grouped.processing_context.checkpoint.get_store_transaction(
            stream_id=self.grouped.stream_id, partition=message_context().partition
        )
        index = transaction.as_state(prefix=OPEN)
        before: dict[str, int] = index.get("open", {})
        open_deliveries = dict(before)
        alerts: list[dict] = []
        if key != TICK:
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
        if open_deliveries != before:
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


class Ticker:
    """Heartbeat ticks: one message with key :data:`TICK` to every partition of ``topic`` every ``every_s``.

    ``topic`` is the notifier's repartition topic; its own serializers encode the tick (so the
    metered value serializer counts it in ``rdmt_messages_out_total`` of that topic). Runs in a daemon
    thread between :meth:`start` and :meth:`stop` (or as a context manager); a tick that cannot be
    produced is logged and the next one tried: ticks only bound how late an alert can be.
    """

    def __init__(self, topic: Topic, producer_config: dict[str, Any], every_s: float) -> None:
        self.topic = topic
        self.partitions = topic.broker_config.num_partitions
        self.every_s = every_s
        self.producer_config = producer_config
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._producer: Producer | None = None

    def __enter__(self) -> Ticker:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._producer = Producer(self.producer_config)
        self._thread = threading.Thread(target=self._run, name=f"{SERVICE}-ticker", daemon=True)
        self._thread.start()
        log.info("ticking every %.1f s on the %d partitions of %s", self.every_s, self.partitions, self.topic.name)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._producer is not None:
            self._producer.flush(5.0)

    def tick(self) -> None:
        """Produce one tick to every partition (not waiting for the broker's acknowledgement)."""
        assert self._producer is not None
        for partition in range(self.partitions):
            message = self.topic.serialize(key=TICK, value={"tick_ms": round(time.time() * 1000)})
            self._producer.produce(self.topic.name, key=message.key, value=message.value, partition=partition,
                                   on_delivery=_tick_delivered)  # fmt: skip
        self._producer.poll(0)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.tick()
            except (KafkaException, BufferError) as exc:
                log.warning("cannot produce a tick to %s: %s", self.topic.name, exc)


def _tick_delivered(err: KafkaError | None, _msg: Any) -> None:
    if err is not None:
        log.warning("tick not delivered: %s", err)


def tick_every_s(options: ServiceOptions) -> float:
    """Seconds between ticks: a quarter of the alert timeout, at least 1 s."""
    return max(1.0, options.alert_timeout_s / 4)


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
    # Ticks go to the topic group_by made (one partition: group_by makes none, the source topic is not JSON).
    repartition = [topic for topic in grouped.topics if topic.is_repartition]
    if repartition:
        # Outside the exactly-once transaction: a tick is a no-op if duplicated or replayed.
        run_alongside(app, Ticker(repartition[0], settings.kafka.producer(f"rdmt-{SERVICE}-ticker"),
                                  tick_every_s(options)))  # fmt: skip
    else:
        log.warning("%s has one partition: no ticks, the alert timeout is checked when results arrive", source.name)
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
