"""The consume-process-produce loop every streaming service runs, at least once.

A service is a name, its input topics with the message each carries, and a ``process`` function from
one decoded message to the messages to produce. The runner consumes in a consumer group, decodes,
calls ``process`` synchronously, produces the outputs with an idempotent producer, flushes, and only
then stores the input's offset (``enable.auto.offset.store=False``; the stored offsets are committed
in the background and on close). So a crash at any point loses nothing; it may repeat outputs.

A message that cannot be decoded, or whose processing fails permanently or keeps failing after the
retries (:mod:`.failures`), becomes a ``dead_letter`` record on ``<prefix>.deadletter`` and the
partition moves on. A failure to produce stops the service without storing the offset: the
orchestrator restarts it and the message is processed again. SIGTERM and SIGINT stop the loop after
the current message.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from ..avro import Decoded, SchemaError
from .deadletters import Origin, backoff_s, dead_letter, error_type, is_permanent, one_line, should_retry
from .observability import LagMeter, ServiceMetrics, ServiceState, serve_http
from .schema_registry import Codec
from .settings import StreamingSettings
from .topics import DEADLETTER

log = logging.getLogger("rdmt.streaming.runner")

FLUSH_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Output:
    """A message to produce: topic (full name), key (text), Avro schema name and record."""

    topic: str
    key: str | None
    schema: str
    record: Mapping[str, Any]


@dataclass(frozen=True)
class Inbound:
    """A consumed message: where it came from and what it says."""

    origin: Origin
    message: Decoded


Process = Callable[[Inbound], Sequence[Output]]


@dataclass(frozen=True)
class Encoded:
    topic: str
    key: bytes | None
    value: bytes


class _Interrupted(Exception):
    """The service was asked to stop while waiting to retry: leave the message for the next member."""


class ServiceRunner:
    """Runs ``process`` on every message of ``inputs`` (topic -> expected schema name).

    Parameters
    ----------
    service : str
        Service name, e.g. ``rdmt-monitor-dark``: client id, log field and ``service`` of dead letters.
    settings : StreamingSettings
        Kafka connection, topic prefix and retry settings.
    group_id : str
        Consumer group; members of one group share the partitions.
    inputs : mapping
        Full topic name -> the Avro message expected on it.
    process : callable
        Pure-ish work on one message; raises to fail (see :mod:`.deadletters`).
    setup : callable, optional
        What the service needs before it consumes (the sink's store): called after the HTTP server starts
        and retried with backoff until it returns, the service live but not ready meanwhile (``/readyz``
        says what it waits for). It never falls back to anything else.
    """

    def __init__(
        self,
        service: str,
        settings: StreamingSettings,
        group_id: str,
        inputs: Mapping[str, str],
        process: Process,
        sleep: Callable[[float], bool] | None = None,
        setup: Callable[[], None] | None = None,
    ) -> None:
        self.service = service
        self.settings = settings
        self.group_id = group_id
        self.inputs = dict(inputs)
        self.process = process
        self.deadletter_topic = f"{settings.topic_prefix}.{DEADLETTER}"
        self.codec = Codec.from_settings(settings.schema_registry)
        self.metrics = ServiceMetrics(service)
        self.state = ServiceState(
            stale_after_s=settings.kafka.max_poll_interval_ms / 1000, max_processing_s=settings.service.max_processing_s
        )
        self.setup = setup
        self._lag: LagMeter | None = None
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait  # returns True when stopping
        self._delivery_errors: list[str] = []

    # -- decisions on one message, no Kafka -------------------------------------------------------

    def handle(self, origin: Origin) -> list[Encoded]:
        """Decode, process, encode, with retries; the outputs, or one dead letter.

        A message that does not decode (:class:`SchemaError`) is dead-lettered at once; a schema registry
        that cannot be reached is retried like any transient failure.
        """
        attempt = 1
        while True:
            try:
                outputs = self.process(Inbound(origin, self._decode(origin)))
                return [self._encode(o) for o in outputs]
            except Exception as exc:  # every failure is classified, retried or dead-lettered, never swallowed
                if not should_retry(exc, attempt, self.settings.retry):
                    return [self._dead_letter(origin, exc, attempts=attempt)]
                delay = backoff_s(attempt, self.settings.retry)
                self.metrics.failures.labels(self.service, error_type(exc), "retry").inc()
                log.warning(
                    "attempt %d of %s:%d:%d failed, retrying in %.1f s: %s", attempt, origin.topic,
                    origin.partition, origin.offset, delay, one_line(exc),
                    extra={"error_type": error_type(exc), "attempt": attempt},
                )
                if self._sleep(delay):
                    raise _Interrupted from exc
                attempt += 1

    def _decode(self, origin: Origin) -> Decoded:
        if origin.value is None:
            raise SchemaError("tombstone: the message has no value")
        return self.codec.decode(origin.value, self.inputs.get(origin.topic))

    def _encode(self, output: Output) -> Encoded:
        key = output.key.encode() if output.key is not None else None
        return Encoded(output.topic, key, self.codec.encode(output.topic, output.schema, output.record))

    def _dead_letter(self, origin: Origin, exc: BaseException, attempts: int) -> Encoded:
        kind = error_type(exc)
        reason = one_line(exc)
        self.metrics.failures.labels(self.service, kind, "dead_letter").inc()
        log.error(
            "giving up on %s:%d:%d after %d attempt(s) (%s): %s", origin.topic, origin.partition, origin.offset,
            attempts, "permanent" if is_permanent(exc) else "retries exhausted", reason,
            extra={"error_type": kind, "attempts": attempts},
        )
        record = dead_letter(origin, reason, kind, attempts, self.service, datetime.now(UTC))
        value = self.codec.encode(self.deadletter_topic, "dead_letter", record)
        return Encoded(self.deadletter_topic, origin.key, value)

    # -- the Kafka edge ---------------------------------------------------------------------------

    def stop(self, *_: object) -> None:
        """Finish the current message, then leave the group and exit (safe from a signal handler)."""
        self._stop.set()

    def run(self, metrics_port: int | None = None, install_signals: bool = True) -> None:
        """Consume until :meth:`stop` (or SIGTERM/SIGINT); after a Kafka error, again with new clients."""
        if install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        host = self.settings.observability.metrics_host
        server = serve_http(metrics_port, self.metrics, self.state, host) if metrics_port is not None else None
        if self.setup is not None and not self._set_up():
            if server is not None:
                server.shutdown()
                server.server_close()
            return
        try:
            attempt = 1
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    self._session()
                    break
                except KafkaException as exc:
                    # A fatal client error (fenced static member after a broker restart, say) or a producer
                    # that cannot deliver: new clients, after a backoff. The message in hand was not stored,
                    # so it is processed again (at least once).
                    if time.monotonic() - started > 60:
                        attempt = 1  # it had been running: a new outage
                    delay = backoff_s(attempt, self.settings.retry)
                    log.error("Kafka error; new clients in %.1f s (attempt %d): %s", delay, attempt, exc,
                              extra={"error_type": error_type(exc)})  # fmt: skip
                    self.state.assigned.clear()
                    if self._stop.wait(delay):
                        break
                    attempt += 1
        finally:
            self.state.stopping = True
            self.codec.close()
            if server is not None:
                server.shutdown()
                server.server_close()
            log.info("%s stopped", self.service)

    def _session(self) -> None:
        """One consumer and producer, consuming until :meth:`stop`; raises KafkaException when they fail."""
        kafka = self.settings.kafka
        kafka_log = logging.getLogger("rdmt.kafka")
        consumer = Consumer(kafka.consumer(self.group_id, self.service) | {"logger": kafka_log})
        producer = Producer(kafka.producer(self.service) | {"logger": kafka_log})
        log.info(
            "%s starting: group %s, topics %s", self.service, self.group_id, ", ".join(self.inputs),
            extra={"kafka": kafka.describe()},
        )
        try:
            consumer.subscribe(list(self.inputs), on_assign=self._assigned, on_revoke=self._revoked,
                               on_lost=self._revoked)
            self._loop(consumer, producer)
        except _Interrupted:
            log.info("stopped while waiting to retry: the message stays for the next member")
        finally:
            producer.flush(FLUSH_TIMEOUT_S if self._stop.is_set() else 5.0)
            try:
                consumer.close()  # commits the stored offsets and leaves the group
            except KafkaException as exc:  # a fenced consumer cannot commit; its offsets are stored up to the last
                log.warning("closing the consumer: %s", exc)

    def _set_up(self) -> bool:
        """Call ``setup`` until it succeeds (True) or the service is stopped (False), with backoff."""
        attempt = 1
        while True:
            self.state.polled()
            try:
                self.setup()
            except Exception as exc:  # retried: a store that is down now may be up in a minute
                self.state.waiting_for = one_line(exc)
                delay = backoff_s(attempt, self.settings.retry)
                log.error("not ready (attempt %d, next in %.1f s): %s", attempt, delay, one_line(exc),
                          extra={"error_type": error_type(exc)})  # fmt: skip
                if self._stop.wait(delay):
                    return False
                attempt += 1
                continue
            self.state.waiting_for = None
            return True

    def _loop(self, consumer: Consumer, producer: Producer) -> None:
        lag = self._lag = LagMeter(consumer, self.metrics)  # _revoked forgets the revoked partitions' gauges
        while not self._stop.is_set():
            self.state.polled()
            msg = consumer.poll(0.5)
            producer.poll(0)
            lag.maybe_update(self.state.assigned)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().fatal() or msg.error().code() == KafkaError._FATAL:
                    raise KafkaException(msg.error())
                log.warning("consumer error: %s", msg.error())
                continue
            self._one(msg, consumer, producer)

    def _one(self, msg: Message, consumer: Consumer, producer: Producer) -> None:
        origin = Origin(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value())
        self.metrics.messages_in.labels(self.service, origin.topic).inc()
        started = time.perf_counter()
        self.state.started()
        try:
            outputs = self.handle(origin)
        finally:
            self.state.finished()
        self.metrics.processing.labels(self.service, origin.topic).observe(time.perf_counter() - started)
        self._produce(producer, outputs)
        consumer.store_offsets(message=msg)
        log.info(
            "%s:%d:%d -> %s", origin.topic, origin.partition, origin.offset,
            ", ".join(o.topic for o in outputs) or "nothing",
            extra={"key": origin.key.decode(errors="replace") if origin.key else None},
        )

    def _produce(self, producer: Producer, outputs: Sequence[Encoded]) -> None:
        for out in outputs:
            producer.produce(out.topic, key=out.key, value=out.value, on_delivery=self._delivered)
        if not outputs:
            return
        left = producer.flush(FLUSH_TIMEOUT_S)
        if left or self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors, []
            raise KafkaException(
                KafkaError(KafkaError._MSG_TIMED_OUT if left else KafkaError._FAIL,
                           f"{left} message(s) not delivered; errors: {'; '.join(errors) or 'none'}")
            )
        for out in outputs:
            self.metrics.messages_out.labels(self.service, out.topic).inc()

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._delivery_errors.append(f"{msg.topic()}: {err.str()}")

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.state.assigned |= {(p.topic, p.partition) for p in partitions}
        self.metrics.assigned.labels(self.service).set(len(self.state.assigned))
        log.info("assigned %s", _names(partitions))

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for p in partitions:
            self.state.assigned.discard((p.topic, p.partition))
        if self._lag is not None:
            self._lag.forget({(p.topic, p.partition) for p in partitions})
        self.metrics.assigned.labels(self.service).set(len(self.state.assigned))
        log.info("revoked %s", _names(partitions))


def _names(partitions: Sequence[TopicPartition]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing"
