"""Events for files on disk: what ``rdmt publish`` sends (a CRDS delivery, archive events).

:func:`crds_delivery` and :func:`archive_event` read only metadata (``open_roman``) and build
records; :func:`publish` produces records to a topic and waits until the broker has them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from ..data_access import open_roman
from ..kafka.schema_registry import PLAIN, Codec

log = logging.getLogger("rdmt.streaming.publish")


def file_uri(path: str | Path) -> str:
    """An absolute path for a local file (a service may run elsewhere); URIs unchanged."""
    text = str(path)
    return text if len(urlparse(text).scheme) > 1 else str(Path(text).resolve())


def crds_delivery(
    delivery_id: str, context: str, paths: Sequence[str | Path], accepted_at: datetime | None = None
) -> dict[str, Any]:
    """A ``crds_delivery`` record for reference files (reftype, detector, useafter read from each file)."""
    files = []
    for path in paths:
        uri = file_uri(path)
        with open_roman(uri) as roman:
            files.append(
                {"uri": uri, "reftype": roman.kind.upper(), "detector": roman.identity.detector,
                 "useafter": roman.identity.file_time}
            )
    return {"delivery_id": delivery_id, "context": context, "files": files,
            "accepted_at": accepted_at or datetime.now(UTC)}


def archive_event(
    path: str | Path, monitor: str | None = None, release: str | None = None, event_time: datetime | None = None
) -> dict[str, Any]:
    """An ``archive_event`` record for one Level-2 file (kind, detector, exposure read from the file)."""
    uri = file_uri(path)
    with open_roman(uri) as roman:
        identity = roman.identity
        return {
            "uri": uri,
            "kind": roman.kind,
            "detector": identity.detector,
            "exposure_type": identity.exposure_type,
            "exposure_start": identity.file_time,
            "monitor": monitor,
            "release": release,
            "event_time": event_time or datetime.now(UTC),
        }


def publish(
    producer: Producer, topic: str, schema: str, messages: Iterable[tuple[str | None, dict[str, Any]]],
    timeout_s: float = 30.0, codec: Codec = PLAIN,
) -> int:
    """Encode (with ``codec``) and produce (key, record) pairs; return how many the broker acknowledged.

    Raises
    ------
    KafkaException
        When a message is not acknowledged within ``timeout_s``.
    """
    errors: list[str] = []

    def delivered(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(err.str())

    n = 0
    for key, record in messages:
        producer.produce(topic, key=key.encode() if key else None, value=codec.encode(topic, schema, record),
                         on_delivery=delivered)
        n += 1
    left = producer.flush(timeout_s)
    if left or errors:
        raise KafkaException(KafkaError(KafkaError._FAIL, f"{topic}: {left} not delivered; {'; '.join(errors)}"))
    return n
