"""Grouping evaluation results per delivery in quixstreams state, closed by completion or by heartbeat ticks.

The notifier's stateful step (:class:`DeliveryGrouper`) and its clock (:class:`Ticker`). The decisions
(what a group holds, when it is complete or overdue, what alert it makes) are :mod:`rdmt_core.alerts`;
this module keeps the groups in quixstreams' state stores. quixstreams has no wall-clock timers, so a
:class:`Ticker` thread stands in for them: every ``max(1, alert_timeout_s / 4)`` seconds it produces a
heartbeat tick (key :data:`TICK`, which no delivery id can be) to every partition of the repartition
topic, and a tick closes the overdue deliveries of its partition as a result does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from quixstreams import message_context
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models.topics import Topic
from quixstreams.state import State

from ..alerts import add_result, alert_record, is_complete, is_overdue, result_key_of
from .settings import ServiceOptions

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
                alerts += self._late(key, group, summary, state, now_ms)
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

    def _late(self, key: str, closed: dict, summary: dict[str, Any], state: State, now_ms: int) -> list[dict]:
        """A result of a delivery already closed: a follow-up alert if it failed; nothing if it was grouped."""
        result_key = result_key_of(summary)
        if result_key in closed.get("seen", []):
            log.info("delivery %s: result %s again (redelivered), already grouped", key, summary["file_key"])
            return []
        seen = [*closed.get("seen", []), result_key]
        state.set("group", closed | {"seen": seen, "n_results": len(seen)})
        late = add_result(None, summary, now_ms) | {"n_expected": closed.get("n_expected", len(seen))}
        alert = alert_record(late, report_url=self.report_url, late=True)
        log.info("delivery %s: result %s arrived after the delivery was closed (%d of %d results now): %s",
                 key, summary["file_key"], len(seen), late["n_expected"],
                 "late alert" if alert else "no failures")  # fmt: skip
        return [] if alert is None else [alert]

    def _close(self, key: str, group: dict | None, state: State, open_deliveries: dict[str, int]) -> list[dict]:
        open_deliveries.pop(key, None)
        if group is None:
            return []
        alert = alert_record(group, report_url=self.report_url)
        state.set("group", {"closed": True, "n_results": len(group["results"]), "alerted": alert is not None,
                            "n_expected": group["n_expected"], "seen": sorted(group["results"])})  # fmt: skip
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

    def __init__(self, topic: Topic, producer_config: dict[str, Any], every_s: float,
                 caught_up: Callable[[], bool] | None = None) -> None:  # fmt: skip
        """``caught_up`` (when given) is asked before each tick: no tick while results wait to be grouped."""
        self.caught_up = caught_up
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
        self._thread = threading.Thread(target=self._run, name="rdmt-notifier-ticker", daemon=True)
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
                if self.caught_up is not None and not self.caught_up():
                    log.info("not ticking: results are waiting on the source topic (a tick would close their "
                             "delivery before they are grouped)")  # fmt: skip
                    continue
                self.tick()
            except (KafkaException, BufferError) as exc:
                log.warning("cannot produce a tick to %s: %s", self.topic.name, exc)


def _tick_delivered(err: KafkaError | None, _msg: Any) -> None:
    if err is not None:
        log.warning("tick not delivered: %s", err)


def tick_every_s(options: ServiceOptions) -> float:
    """Seconds between ticks: a quarter of the alert timeout, at least 1 s."""
    return max(1.0, options.alert_timeout_s / 4)


class SourceProgress:
    """Whether a consumer group has consumed its source topic to the end: no tick while results wait.

    Heartbeat ticks close deliveries by wall time. After an outage (of the notifier, or the broker) the
    source topic can hold results of a delivery whose timeout has passed: a tick produced then would close
    the delivery a moment before its results are grouped. So a tick is sent only when the group's committed
    offsets are at the end of every source partition (within 1: the evaluator writes in transactions, and the
    commit marker after a partition's last record is never consumed). A consumer of its own, of the same
    ``group.id``, reads the committed offsets and the watermarks; it never joins the group.
    """

    def __init__(self, common: dict[str, Any], group: str, topic: str, timeout_s: float = 5.0) -> None:
        from confluent_kafka import Consumer

        self.topic = topic
        self.timeout_s = timeout_s
        self.consumer = Consumer(common | {"group.id": group, "client.id": f"{group}-progress",
                                           "enable.auto.commit": False})  # fmt: skip

    def waiting(self) -> int:
        """Results on the source topic that the group has not consumed (raises KafkaException on a timeout)."""
        from confluent_kafka import TopicPartition

        metadata = self.consumer.list_topics(self.topic, timeout=self.timeout_s).topics[self.topic]
        partitions = [TopicPartition(self.topic, p) for p in sorted(metadata.partitions)]
        waiting = 0
        for tp in self.consumer.committed(partitions, timeout=self.timeout_s):
            low, high = self.consumer.get_watermark_offsets(tp, timeout=self.timeout_s, cached=False)
            done = tp.offset if tp.offset >= 0 else low
            waiting += max(0, high - done - 1)
        return waiting

    def caught_up(self) -> bool:
        """True when nothing waits; False when results wait or the broker does not answer (then no tick)."""
        try:
            return self.waiting() == 0
        except (KafkaException, KeyError) as exc:
            log.warning("cannot tell whether results wait on %s: %s", self.topic, exc)
            return False

    def close(self) -> None:
        self.consumer.close()
