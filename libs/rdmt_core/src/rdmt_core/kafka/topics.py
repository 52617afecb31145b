"""The one list of RDMT's Kafka topics: name, message schema, key, partitions, retention, cleanup policy.

``docs/topics.md`` is generated from this list (:mod:`.topics_doc`); ``rdmt topics create`` creates
the topics idempotently and ``rdmt topics list`` prints them. Everything but :func:`create_topics`
is pure.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from ..monitors import registered_monitors

log = logging.getLogger("rdmt.streaming.topics")

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """One topic: what it carries and how the broker keeps it."""

    suffix: str  # name without the prefix, e.g. "events.crds"
    schema: str  # the Avro message (schemas/<major>/<minor>/<schema>.avsc)
    key: str  # what the message key is (UTF-8 text)
    partitions: int
    retention_days: int  # -1: forever
    doc: str
    cleanup_policy: str = "delete"
    public: bool = False  # subscribers outside RDMT may read it

    def name(self, prefix: str) -> str:
        return f"{prefix}.{self.suffix}"

    @property
    def retention_ms(self) -> int:
        return -1 if self.retention_days < 0 else self.retention_days * DAY_MS

    def broker_config(self) -> dict[str, str]:
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}


EVENTS_CRDS = "events.crds"
EVENTS_ARCHIVE = "events.archive"
UNROUTED = "unrouted"
METRICS = "metrics"
EVALUATIONS = "evaluations"
ALERTS = "alerts"
DEADLETTER = "deadletter"
REQUEST_PARTITIONS = 6  # 18 detectors over up to 6 members of a monitor's group


def requests_suffix(monitor: str) -> str:
    return f"requests.{monitor}"


def topic_specs(monitors: Iterable[str] | None = None) -> list[TopicSpec]:
    """Every topic, one ``requests.<monitor>`` per monitor (default: every registered monitor)."""
    names = sorted(registered_monitors() if monitors is None else monitors)
    return [
        TopicSpec(EVENTS_CRDS, "crds_delivery", "delivery_id", 1, 30,
                  "CRDS deliveries accepted: one message per delivery, input of the ingest service."),
        TopicSpec(EVENTS_ARCHIVE, "archive_event", "detector", 6, 30,
                  "Level-2 files available in the archive: one message per file, input of the ingest service."),
        *(
            TopicSpec(requests_suffix(m), "monitor_request", "detector", REQUEST_PARTITIONS, 7,
                      f"Requests to run the {m} monitor on one file; keyed by detector so one detector's "
                      f"files are processed in order; consumed by `rdmt service monitor --monitor {m}`.")
            for m in names
        ),
        TopicSpec(UNROUTED, "dead_letter", "key of the event", 1, 30,
                  "Events the ingest service could not route (no monitor for the reftype or exposure type, "
                  "unknown monitor), with the reason in `error`; nothing is dropped silently."),
        TopicSpec(METRICS, "metric_record", "detector", 6, 30,
                  "Metrics of one monitor on one file, at the three scales. At least once: a redelivered "
                  "request may produce the same record twice (same request id in `run_id`)."),
        TopicSpec(EVALUATIONS, "evaluation_record", "detector", 6, 30,
                  "Verdicts of the evaluators on one file's metrics."),
        TopicSpec(ALERTS, "alert", "delivery_id", 1, 365,
                  "Public: one alert per delivery or exposure burst with failures. `rdmt subscribe` is "
                  "the example subscriber.", public=True),
        TopicSpec(DEADLETTER, "dead_letter", "key of the failed message", 1, 30,
                  "Messages a service gave up on (not Avro, corrupt or vanished file, retries exhausted), "
                  "with the original bytes, the error and the attempt count; replay after a fix."),
    ]


def spec_for(suffix: str, specs: Sequence[TopicSpec] | None = None) -> TopicSpec:
    for spec in specs or topic_specs():
        if spec.suffix == suffix:
            return spec
    known = ", ".join(s.suffix for s in specs or topic_specs())
    raise KeyError(f"no topic {suffix!r} (topics: {known})")


def table(prefix: str, specs: Sequence[TopicSpec]) -> list[tuple[str, ...]]:
    """Rows (name, schema, key, partitions, retention, cleanup policy) for printing."""
    rows = [("topic", "schema", "key", "partitions", "retention", "cleanup.policy")]
    for s in specs:
        retention = "forever" if s.retention_days < 0 else f"{s.retention_days} d"
        rows.append((s.name(prefix), s.schema, s.key, str(s.partitions), retention, s.cleanup_policy))
    return rows


def create_topics(
    admin: AdminClient, prefix: str, specs: Sequence[TopicSpec], timeout_s: float = 30.0
) -> dict[str, str]:
    """Create the topics that do not exist yet; return topic name -> ``created`` or ``exists``.

    Raises
    ------
    KafkaException
        When the broker refuses a topic for another reason than its existence, or does not answer within
        ``timeout_s`` (no broker at the bootstrap address, say).
    """
    admin.list_topics(timeout=min(timeout_s, 10.0))  # an unreachable broker fails here, in seconds, by name
    new = [
        NewTopic(s.name(prefix), num_partitions=s.partitions, replication_factor=-1, config=s.broker_config())
        for s in specs
    ]
    outcome: dict[str, str] = {}
    for name, future in admin.create_topics(new, request_timeout=timeout_s).items():
        try:
            future.result(timeout_s)
            outcome[name] = "created"
        except TimeoutError:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"no answer about topic {name} within "
                                            f"{timeout_s:g} s")) from None  # fmt: skip
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            outcome[name] = "exists"
        log.debug("topic %s %s", name, outcome[name])
    return outcome
