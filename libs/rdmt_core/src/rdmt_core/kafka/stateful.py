"""quixstreams wiring shared by the stateful services (evaluator, notifier): Avro on the wire, dead letters, the app.

The services keep their state (history windows, delivery groups) in quixstreams' RocksDB stores,
backed by compacted changelog topics that quixstreams creates and restores from after a restart
or a rebalance. Messages are the RDMT Avro records (:mod:`rdmt_core.avro`); a message that does
not decode is not an error of the application: the deserializer hands it on as :class:`Poison`, and
the service turns it into a ``dead_letter`` record produced in the same transaction as its other
output, so the partition moves on and nothing is lost or doubled.

Their settings (state directory, processing guarantee, alert timeout) are :class:`.settings.ServiceOptions`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

from confluent_kafka import Consumer, KafkaException
from quixstreams import Application, message_context
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.kafka.configuration import ConnectionConfig
from quixstreams.models.serializers import (
    Deserializer,
    JSONDeserializer,
    JSONSerializer,
    SerializationContext,
    Serializer,
)
from quixstreams.models.topics import Topic

from .. import avro
from ..config import RdmtConfig
from . import deadletters
from .deadletters import Origin, error_type
from .observability import LagMeter, ServiceMetrics, ServiceState, serve_http
from .schema_registry import PLAIN, Codec
from .settings import ServiceOptions, StreamingSettings
from .topics import DEADLETTER, spec_for


@dataclass(frozen=True)
class Poison:
    """A message value that is not a record the service reads: the bytes and why."""

    value: bytes | None
    error: str
    error_type: str


class AvroDeserializer(Deserializer):
    """Decode RDMT Avro records of one schema; anything else becomes :class:`Poison`.

    A schema registry that cannot be reached raises (:class:`.schema_registry.RegistryError`): the
    application stops without committing, and the message is read again after the restart.
    """

    def __init__(self, expected: str, codec: Codec = PLAIN) -> None:
        super().__init__()
        self.expected = expected
        self.codec = codec

    def __call__(self, value: bytes, ctx: SerializationContext) -> dict[str, Any] | Poison:
        try:
            return self.codec.decode(value, self.expected).record
        except avro.SchemaError as exc:
            return Poison(bytes(value), str(exc), f"{type(exc).__module__}.{type(exc).__qualname__}")


class AvroSerializer(Serializer):
    """Encode records of one schema (single-object encoding, or the Confluent framing with a registry)."""

    def __init__(self, name: str, codec: Codec = PLAIN) -> None:
        self.name = name
        self.codec = codec

    def __call__(self, value: Mapping[str, Any], ctx: SerializationContext) -> bytes:
        return self.codec.encode(ctx.topic, self.name, value)


class MessageMeter:
    """Per-message Prometheus metrics of a quixstreams service (same names and labels as :mod:`.runner`'s).

    quixstreams handles one message at a time in the app's thread. The value deserializer of a consumed
    message runs first (``rdmt_messages_in_total``, the processing clock starts), the app's
    ``on_message_processed`` callback last (``rdmt_processing_seconds``); a message without a value is
    counted there, as it skips the deserializer. Every produced value passes through a serializer
    (``rdmt_messages_out_total``: handed to the producer, committed with the next checkpoint), and every
    dead letter through the dead-letter topic's (``rdmt_failures_total`` with outcome ``dead_letter``).
    """

    def __init__(self, metrics: ServiceMetrics, deadletter_topic: str, state: ServiceState | None = None) -> None:
        self.metrics = metrics
        self.service = metrics.service
        self.deadletter_topic = deadletter_topic
        self.state = state  # liveness: how long the message in hand has been held
        self._started: float | None = None

    def consumed(self, topic: str) -> None:
        self.metrics.messages_in.labels(self.service, topic).inc()
        self._started = time.perf_counter()
        if self.state is not None:
            self.state.started()

    def processed(self, topic: str, _partition: int, _offset: int) -> None:
        if self._started is None:
            self.metrics.messages_in.labels(self.service, topic).inc()
        else:
            self.metrics.processing.labels(self.service, topic).observe(time.perf_counter() - self._started)
        self._started = None
        if self.state is not None:
            self.state.finished()

    def produced(self, topic: str, value: Any) -> None:
        self.metrics.messages_out.labels(self.service, topic).inc()
        if topic == self.deadletter_topic and isinstance(value, Mapping):
            self.metrics.failures.labels(self.service, value.get("error_type", "unknown"), "dead_letter").inc()


class MeteredDeserializer(Deserializer):
    """``inner``, counting each message it decodes with ``meter``."""

    def __init__(self, inner: Deserializer, meter: MessageMeter) -> None:
        super().__init__()
        self.inner = inner
        self.meter = meter

    @property
    def split_values(self) -> bool:
        return self.inner.split_values

    def __call__(self, value: bytes, ctx: SerializationContext) -> Any:
        self.meter.consumed(ctx.topic)
        return self.inner(value, ctx)


class MeteredSerializer(Serializer):
    """``inner``, counting each message it encodes with ``meter``."""

    def __init__(self, inner: Serializer, meter: MessageMeter) -> None:
        self.inner = inner
        self.meter = meter

    @property
    def extra_headers(self) -> Any:
        return self.inner.extra_headers

    def __call__(self, value: Any, ctx: SerializationContext) -> str | bytes:
        encoded = self.inner(value, ctx)
        self.meter.produced(ctx.topic, value)
        return encoded


def avro_topic(
    app: Application, name: str, schema: str, meter: MessageMeter, codec: Codec, *, read: bool = False,
    write: bool = False, key_deserializer: str = "bytes", key_serializer: str = "string",
) -> Topic:
    """Topic ``name`` carrying ``schema`` records: metered decoding if ``read``, encoding if ``write``."""
    kwargs: dict[str, Any] = {"key_deserializer": key_deserializer, "key_serializer": key_serializer}
    if read:
        kwargs["value_deserializer"] = MeteredDeserializer(AvroDeserializer(schema, codec), meter)
    if write:
        kwargs["value_serializer"] = MeteredSerializer(AvroSerializer(schema, codec), meter)
    return app.topic(name, **kwargs)


def metered_json(meter: MessageMeter) -> dict[str, Any]:
    """Value serde of a repartition topic (``group_by``): quixstreams' JSON, metered."""
    return {
        "value_deserializer": MeteredDeserializer(JSONDeserializer(), meter),
        "value_serializer": MeteredSerializer(JSONSerializer(), meter),
    }


def produced_now(sdf: StreamingDataFrame) -> StreamingDataFrame:
    """``sdf`` with each message's timestamp set to the time it is produced (now, in milliseconds).

    quixstreams otherwise gives an output the timestamp of the input it came from: the lag measured
    from an output topic's timestamps would include the time spent upstream, and a replayed or
    restored input would make fresh outputs look old.
    """
    return sdf.set_timestamp(lambda _v, _k, _t, _h: round(time.time() * 1000))


def dead_letter(key: bytes | None, value: bytes | None, error: str, kind: str, service: str) -> dict[str, Any]:
    """The ``dead_letter`` record of the message being processed (topic, partition, offset from its context)."""
    context = message_context()
    origin = Origin(context.topic, context.partition, context.offset, key, value)
    return deadletters.dead_letter(origin, error, kind, 1, service, datetime.now(UTC))


class StoppableApplication(Application):
    """quixstreams' :class:`Application`, remembering whether a stop was asked for (SIGTERM, SIGINT, :meth:`stop`).

    A Kafka error can still surface from ``run`` after a signal (the broker gone while it starts);
    :func:`run_service` must then exit, not start the application again.
    """

    stop_requested = False

    def stop(self, fail: bool = False) -> None:
        if not fail:  # quixstreams stops with fail=True only on its own error
            self.stop_requested = True
        super().stop(fail=fail)


def application(
    settings: StreamingSettings, options: ServiceOptions, service: str, meter: MessageMeter | None = None
) -> Application:
    """A quixstreams application of ``service`` (its consumer group is ``<prefix>.<service>``), metered by ``meter``."""
    connection = ConnectionConfig.from_librdkafka_dict(settings.kafka.common())
    # quixstreams manages assignment itself (cooperative rebalancing with state recovery): classic protocol.
    return StoppableApplication(
        broker_address=connection,
        consumer_group=f"{settings.topic_prefix}.{service}",
        auto_offset_reset="earliest",
        state_dir=str(options.state_dir),
        processing_guarantee=options.processing_guarantee,
        commit_interval=options.commit_interval_s,
        auto_create_topics=True,  # only quixstreams' own changelog and repartition topics: ours exist
        consumer_extra_config={
            "client.id": f"rdmt-{service}",
            # After a crash, the partitions (and their state) move to a new member after this long.
            "session.timeout.ms": settings.kafka.session_timeout_ms,
            # quixstreams creates its changelog and repartition topics just before it subscribes; a topic the
            # client's metadata does not have yet is looked up again only at this interval (librdkafka's
            # default is 5 minutes, which once left a new evaluator without partitions on a fresh broker).
            "topic.metadata.refresh.interval.ms": 10_000,
        },
        # An evaluation record of a dark file is ~3 MB before compression (1,057 reasons per block), ~100 kB after.
        producer_extra_config={
            "client.id": f"rdmt-{service}",
            "compression.type": "zstd",
            "message.max.bytes": 16 << 20,
        },
        loglevel=None,
        on_message_processed=meter.processed if meter is not None else None,
    )


def deadletter_topic(app: Application, prefix: str, meter: MessageMeter, codec: Codec) -> Topic:
    spec = spec_for(DEADLETTER)
    return avro_topic(app, spec.name(prefix), spec.schema, meter, codec, write=True, key_serializer="bytes")


def poison_tombstones(sdf: StreamingDataFrame, expected: str) -> StreamingDataFrame:
    """``sdf`` with every message without a value (a tombstone) as :class:`Poison`.

    quixstreams does not call the deserializer for such a message: it hands ``None`` on, which
    would stop the service on every restart (the message is never committed).
    """

    def check(value: Any) -> Any:
        if value is None:
            where = message_context().topic
            return Poison(None, f"tombstone (no value) on {where}, expected a {expected}", "ValueError")
        return value

    return sdf.apply(check)


def route_poison(sdf: StreamingDataFrame, dead: Topic, service: str) -> StreamingDataFrame:
    """Send :class:`Poison` values to the dead-letter topic ``dead``; return the dataframe of the others."""
    bad = sdf.filter(lambda v: isinstance(v, Poison))
    bad = bad.apply(lambda v, k, _t, _h: dead_letter(k, v.value, v.error, v.error_type, service), metadata=True)
    produced_now(bad).to_topic(dead, key=lambda record: record["key"])
    return sdf.filter(lambda v: not isinstance(v, Poison))


HEARTBEAT_S = 0.25  # how often readiness follows the app's assignment (lag is measured every LAG_EVERY_S)


class AppWatcher:
    """Readiness and consumer lag of one quixstreams application, in a thread of its own.

    Ready while the app's consumer holds partitions. quixstreams has no public accessor for the
    assignment, so the watcher reads its internal consumer (and reports not ready if that ever changes).
    Every ``LAG_EVERY_S`` it sets ``rdmt_consumer_lag`` of the assigned partitions (not the changelog
    partitions, which the group does not commit) with a consumer of its own that never joins the group:
    it only reads the group's committed offsets and the watermarks.
    """

    def __init__(self, app: Application, settings: StreamingSettings, metrics: ServiceMetrics,
                 state: ServiceState) -> None:  # fmt: skip
        self.app, self.metrics, self.state = app, metrics, state
        self.lag = LagMeter(Consumer(settings.kafka.common() | {
            "group.id": app.config.consumer_group, "client.id": f"{metrics.service}-lag", "enable.auto.commit": False,
        }), metrics)  # fmt: skip
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{metrics.service}-watcher", daemon=True)

    def __enter__(self) -> AppWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.state.assigned = set()
        self.lag.consumer.close()

    def _run(self) -> None:
        service = self.metrics.service
        while not self._stop.is_set():
            self.state.polled()
            try:
                assignment = self.app._consumer.assignment()
            except Exception:  # not started yet, or quixstreams changed
                assignment = []
            self.state.assigned = {(tp.topic, tp.partition) for tp in assignment}
            self.metrics.assigned.labels(service).set(len(self.state.assigned))
            self.lag.maybe_update({tp for tp in self.state.assigned if not tp[0].startswith("changelog__")})
            self._stop.wait(HEARTBEAT_S)


_ALONGSIDE: weakref.WeakKeyDictionary[Application, list[contextlib.AbstractContextManager]] = (
    weakref.WeakKeyDictionary()
)


def run_alongside(app: Application, task: contextlib.AbstractContextManager) -> None:
    """Have :func:`run_service` enter ``task`` before it runs ``app`` and exit it after ``app`` stops.

    For work of a service's own threads (the notifier's ticks), which quixstreams has no place for:
    ``task`` starts them on entry and stops them on exit (after SIGTERM or SIGINT has stopped the app).
    """
    _ALONGSIDE.setdefault(app, []).append(task)


def run_service(
    service: str,
    build: Callable[[RdmtConfig, StreamingSettings, MessageMeter], Application],
    config: RdmtConfig,
    settings: StreamingSettings,
    metrics_port: int | None = None,
) -> None:
    """Build the quixstreams application of ``service`` with ``build`` and run it until SIGTERM or SIGINT.

    A Kafka error that stops the application (a broker restarted under it, fencing of its transactional
    producer, an unknown member after a long outage, no broker at start) is logged and, after a backoff, the
    service starts again in the same process (:func:`_start_again`): it recovers without an orchestrator.
    State and offsets come back from Kafka, as after any restart.
    """
    options = settings.service
    log = logging.getLogger(f"rdmt.streaming.{service}")
    log.info(
        "kafka %s, topics %s.*, schema registry %s, state %s, %s, alert timeout %.0f s", settings.kafka.describe(),
        settings.topic_prefix, settings.schema_registry.url or "none", options.state_dir,
        options.processing_guarantee, options.alert_timeout_s,
    )  # fmt: skip
    metrics = ServiceMetrics(service)
    state = ServiceState(stale_after_s=60.0, max_processing_s=options.max_processing_s)
    if metrics_port is not None:
        serve_http(metrics_port, metrics, state, settings.observability.metrics_host)
    meter = MessageMeter(metrics, f"{settings.topic_prefix}.{DEADLETTER}", state)
    stopping = threading.Event()
    app = build(config, settings, meter)
    started = time.monotonic()
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(AppWatcher(app, settings, metrics, state))
            for task in _ALONGSIDE.pop(app, []):
                stack.enter_context(task)
            app.run()  # returns when SIGTERM or SIGINT stopped it
        return
    except KafkaException as exc:
        if getattr(app, "stop_requested", False):
            log.info("stopped (a Kafka error on the way out: %s)", exc)
            return
        # Failed quickly again: the same outage, back off further; after a good run: a new outage.
        attempt = int(os.environ.get(RESTART_ATTEMPT, "0")) + 1 if time.monotonic() - started < 60 else 1
        delay = min(settings.retry.backoff_max_s, settings.retry.backoff_initial_s * 2 ** (attempt - 1))
        log.error("the application stopped on a Kafka error (attempt %d); the service starts again in %.1f s: %s",
                  attempt, delay, exc, extra={"error_type": error_type(exc)})  # fmt: skip
        state.finished()
        _wait_or_stop(stopping, delay)
        if not stopping.is_set():
            _start_again(attempt)


RESTART_ATTEMPT = "RDMT_RESTART_ATTEMPT"  # how many times in a row the service started again after an error


def _start_again(attempt: int) -> NoReturn:
    """Replace this process by a fresh start of the same command (same PID, same arguments).

    A quixstreams application stopped by a Kafka error leaves native state behind (RocksDB handles, the
    fenced transactional producer's threads); an application built anew in the same process was seen to wait
    on them for minutes. A fresh image of the process releases all of it, as an orchestrator's restart would,
    without one: the service is back at once, and keeps its PID.
    """
    logging.shutdown()
    os.environ[RESTART_ATTEMPT] = str(attempt)
    os.execv(sys.executable, [sys.executable, sys.argv[0], *sys.argv[1:]])


def _wait_or_stop(stopping: threading.Event, delay_s: float) -> None:
    """Wait ``delay_s`` seconds; SIGTERM or SIGINT meanwhile sets ``stopping`` (and ends the wait)."""
    if threading.current_thread() is not threading.main_thread():
        stopping.wait(delay_s)
        return
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        stopping.wait(delay_s)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
