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
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer
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
from .deadletters import Origin
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

    def __init__(self, metrics: ServiceMetrics, deadletter_topic: str) -> None:
        self.metrics = metrics
        self.service = metrics.service
        self.deadletter_topic = deadletter_topic
        self._started: float | None = None

    def consumed(self, topic: str) -> None:
        self.metrics.messages_in.labels(self.service, topic).inc()
        self._started = time.perf_counter()

    def processed(self, topic: str, _partition: int, _offset: int) -> None:
        if self._started is None:
            self.metrics.messages_in.labels(self.service, topic).inc()
        else:
            self.metrics.processing.labels(self.service, topic).observe(time.perf_counter() - self._started)
        self._started = None

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


def application(
    settings: StreamingSettings, options: ServiceOptions, service: str, meter: MessageMeter | None = None
) -> Application:
    """A quixstreams application of ``service`` (its consumer group is ``<prefix>.<service>``), metered by ``meter``."""
    connection = ConnectionConfig.from_librdkafka_dict(settings.kafka.common())
    # quixstreams manages assignment itself (cooperative rebalancing with state recovery): classic protocol.
    return Application(
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


def serve_observability(app: Application, settings: StreamingSettings, metrics: ServiceMetrics, port: int) -> None:
    """``/metrics``, ``/healthz`` and ``/readyz`` for a quixstreams service on ``port``.

    Alive while the process runs; ready while the app's consumer holds partitions. quixstreams has no
    public accessor for the assignment, so the heartbeat reads its internal consumer (and reports not
    ready if that ever changes). Every ``LAG_EVERY_S`` it sets ``rdmt_consumer_lag`` of the assigned
    partitions (not the changelog partitions, which the group does not commit) with a consumer of its
    own that never joins the group: it only reads the group's committed offsets and the watermarks.
    """
    service = metrics.service
    state = ServiceState(stale_after_s=60.0)
    serve_http(port, metrics, state)
    lag = LagMeter(Consumer(settings.kafka.common() | {
        "group.id": app.config.consumer_group, "client.id": f"{service}-lag", "enable.auto.commit": False,
    }), metrics)  # fmt: skip

    def heartbeat() -> None:
        while True:
            state.polled()
            try:
                assignment = app._consumer.assignment()
            except Exception:  # not started yet, or quixstreams changed
                assignment = []
            state.assigned = {(tp.topic, tp.partition) for tp in assignment}
            metrics.assigned.labels(service).set(len(state.assigned))
            lag.maybe_update({tp for tp in state.assigned if not tp[0].startswith("changelog__")})
            time.sleep(HEARTBEAT_S)

    threading.Thread(target=heartbeat, name=f"{service}-heartbeat", daemon=True).start()


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
    """Build the quixstreams application of ``service`` with ``build`` and run it until SIGTERM or SIGINT."""
    options = settings.service
    logging.getLogger(f"rdmt.streaming.{service}").info(
        "kafka %s, topics %s.*, schema registry %s, state %s, %s, alert timeout %.0f s", settings.kafka.describe(),
        settings.topic_prefix, settings.schema_registry.url or "none", options.state_dir,
        options.processing_guarantee, options.alert_timeout_s,
    )  # fmt: skip
    metrics = ServiceMetrics(service)
    app = build(config, settings, MessageMeter(metrics, f"{settings.topic_prefix}.{DEADLETTER}"))
    if metrics_port is not None:
        serve_observability(app, settings, metrics, metrics_port)
    with contextlib.ExitStack() as stack:
        for task in _ALONGSIDE.pop(app, []):
            stack.enter_context(task)
        app.run()
