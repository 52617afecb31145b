"""What a running service shows: Prometheus metrics, ``/healthz`` and ``/readyz``, JSON-lines logs.

The HTTP server runs in a daemon thread and only reads the state the service loop writes
(:class:`ServiceState`). Nothing here opens a Kafka connection: :class:`LagMeter` uses the
consumer it is given.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

PROCESSING_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
LAG_EVERY_S = 10.0  # how often the services measure their consumer lag


class ServiceMetrics:
    """The Prometheus metrics of one service, in a registry of its own."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"registry": self.registry}
        self.messages_in = Counter(
            "rdmt_messages_in", "Messages consumed.", ["service", "topic"], **labels
        )
        self.messages_out = Counter(
            "rdmt_messages_out", "Messages produced.", ["service", "topic"], **labels
        )
        self.failures = Counter(
            "rdmt_failures", "Failed attempts to process a message, by error type and outcome (retry, dead_letter).",
            ["service", "error_type", "outcome"], **labels,
        )
        self.processing = Histogram(
            "rdmt_processing_seconds", "Time to process one message (all attempts), seconds.",
            ["service", "topic"], buckets=PROCESSING_BUCKETS, **labels,
        )
        self.lag = Gauge(
            "rdmt_consumer_lag", "High watermark minus committed offset, messages.",
            ["service", "topic", "partition"], **labels,
        )
        self.assigned = Gauge("rdmt_assigned_partitions", "Partitions assigned to this member.", ["service"], **labels)
        self.service = service

    def render(self) -> bytes:
        return generate_latest(self.registry)


class LagMeter:
    """``rdmt_consumer_lag`` of a consumer group's partitions, measured every ``LAG_EVERY_S`` at most.

    Lag is high watermark minus the group's committed offset (a partition without a committed offset
    counts from its low watermark). ``consumer`` is a confluent-kafka consumer that can read the group's
    committed offsets: a member of the group, or a consumer of the same ``group.id`` that never joins.
    The gauges of partitions no longer measured are removed. A broker that does not answer in time is
    logged, not raised: lag is observability and must not stop the work.
    """

    def __init__(self, consumer: Any, metrics: ServiceMetrics, every_s: float = LAG_EVERY_S,
                 timeout_s: float = 5.0) -> None:
        self.consumer = consumer
        self.metrics = metrics
        self.every_s = every_s
        self.timeout_s = timeout_s
        self._next = time.monotonic() + every_s
        self._measured: set[tuple[str, int]] = set()

    def maybe_update(self, partitions: set[tuple[str, int]]) -> None:
        """Measure ``partitions`` (topic, partition) if ``every_s`` has passed since the last time."""
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.every_s
        self.forget(self._measured - partitions)
        try:
            self.update(partitions)
        except Exception as exc:  # KafkaException from a slow broker: log it, try again next time
            logging.getLogger("rdmt.streaming").warning("cannot measure consumer lag: %s", exc)

    def update(self, partitions: set[tuple[str, int]]) -> None:
        """Measure ``partitions`` now; raises ``KafkaException`` when the broker does not answer in time."""
        from confluent_kafka import TopicPartition

        if not partitions:
            return
        wanted = [TopicPartition(t, p) for t, p in sorted(partitions)]
        for tp in self.consumer.committed(wanted, timeout=self.timeout_s):
            low, high = self.consumer.get_watermark_offsets(tp, timeout=self.timeout_s, cached=False)
            done = tp.offset if tp.offset >= 0 else low
            self.metrics.lag.labels(self.metrics.service, tp.topic, str(tp.partition)).set(max(0, high - done))
        self._measured = set(partitions)

    def forget(self, partitions: set[tuple[str, int]]) -> None:
        """Remove the gauges of ``partitions`` (revoked, or no longer committed by the group)."""
        for topic, partition in partitions:
            try:
                self.metrics.lag.remove(self.metrics.service, topic, str(partition))
            except KeyError:
                pass
        self._measured -= partitions


class ServiceState:
    """Liveness and readiness, written by the service loop and read by the HTTP server.

    Live (``/healthz`` 200) while the service makes progress: its consumer polled within ``stale_after_s``
    and it has held no message longer than ``max_processing_s`` (a read that hangs, a store that never
    answers). Ready (``/readyz`` 200) when live, holding partitions, and not waiting for something it
    needs before it can work (``waiting_for``: an unreachable store, say).
    """

    def __init__(self, stale_after_s: float, max_processing_s: float = float("inf")) -> None:
        self.stale_after_s = stale_after_s
        self.max_processing_s = max_processing_s
        self.last_poll = time.monotonic()
        self.processing_since: float | None = None
        self.assigned: set[tuple[str, int]] = set()
        self.waiting_for: str | None = None
        self.stopping = False

    def polled(self) -> None:
        self.last_poll = time.monotonic()

    def started(self) -> None:
        """A message is being processed from now."""
        self.processing_since = time.monotonic()

    def finished(self) -> None:
        self.processing_since = None

    def problem(self) -> str | None:
        """Why the service is not live, or None."""
        now = time.monotonic()
        if self.stopping:
            return "stopping"
        if self.processing_since is not None and now - self.processing_since > self.max_processing_s:
            return f"one message held for {now - self.processing_since:.0f} s (limit {self.max_processing_s:g} s)"
        if self.processing_since is None and now - self.last_poll > self.stale_after_s:
            return f"the consumer has not polled for {now - self.last_poll:.0f} s"
        return None

    def healthy(self) -> bool:
        return self.problem() is None

    def not_ready(self) -> str | None:
        """Why the service is not ready, or None."""
        problem = self.problem()
        if problem is not None:
            return problem
        if self.waiting_for is not None:
            return f"waiting for {self.waiting_for}"
        return None if self.assigned else "no partitions assigned yet"

    def ready(self) -> bool:
        return self.not_ready() is None


def serve_http(port: int, metrics: ServiceMetrics, state: ServiceState, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Start ``/metrics``, ``/healthz`` and ``/readyz`` on ``port`` (0: any free port) in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                self._send(200, metrics.render(), CONTENT_TYPE_LATEST)
            elif self.path.startswith("/healthz"):
                problem = state.problem()
                self._send(200 if problem is None else 503, f"{problem or 'ok'}\n".encode())
            elif self.path.startswith("/readyz"):
                reason = state.not_ready()
                self._send(200 if reason is None else 503, f"{reason or 'ready'}\n".encode())
            else:
                self._send(404, b"try /metrics, /healthz or /readyz\n")

        def _send(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # probes every few seconds would drown the service's own log

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="rdmt-http", daemon=True).start()
    return server


class JsonLines(logging.Formatter):
    """One JSON object per log record: time (UTC, ISO 8601), level, logger, service, message, extras."""

    RESERVED = frozenset(vars(logging.makeLogRecord({})))

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "service": self.service,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in self.RESERVED and k != "message"})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def json_logging(service: str, level: int = logging.INFO) -> None:
    """Route every log record of the process to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines(service))
    logging.basicConfig(level=level, handlers=[handler], force=True)
