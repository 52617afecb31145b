"""Dead letters: what to do when processing a message fails (retry later, or give up now), and the record kept.

Permanent errors can never succeed however often they are tried: a message that is not an RDMT
Avro message (:class:`SchemaError`), a file that is corrupt, not Roman or gone (:class:`InputError`),
a configuration that names an unknown monitor (:class:`ConfigError`). Transient errors may pass on a
later attempt: I/O errors raised outside RDMT's input checks (a timeout reading from object
storage), an unreachable store (:class:`StoreError`) or schema registry (:class:`RegistryError`),
and errors RDMT did not anticipate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import InputError, RdmtError, StoreError
from .schema_registry import RegistryError
from .settings import RetrySettings

TRANSIENT_CAUSES = (TimeoutError, ConnectionError, InterruptedError, BlockingIOError)


def is_permanent(exc: BaseException) -> bool:
    """True when retrying ``exc`` cannot help."""
    if isinstance(exc, StoreError | RegistryError):
        return False
    if isinstance(exc, InputError):
        # An input check that failed because the storage timed out is worth another try.
        return not isinstance(exc.__cause__, TRANSIENT_CAUSES)
    return isinstance(exc, RdmtError)


def backoff_s(attempt: int, retry: RetrySettings) -> float:
    """Wait after failed attempt number ``attempt`` (1-based): doubling from the initial wait, capped."""
    return min(retry.backoff_max_s, retry.backoff_initial_s * 2 ** (attempt - 1))


def should_retry(exc: BaseException, attempt: int, retry: RetrySettings) -> bool:
    """Try again after ``attempt`` attempts failed, the last one with ``exc``?"""
    return not is_permanent(exc) and attempt < retry.max_attempts


def error_type(exc: BaseException) -> str:
    """Qualified class name, e.g. ``rdmt_core.errors.InputError``."""
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def one_line(exc: BaseException) -> str:
    """The error as one readable line (first line of the message, or the class name)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return first if isinstance(exc, RdmtError) and first else f"{type(exc).__name__}: {first or 'no detail'}"


@dataclass(frozen=True)
class Origin:
    """Where a message came from, and its bytes as they were."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def dead_letter(
    origin: Origin, error: str, kind: str, attempts: int, service: str, now: datetime
) -> dict[str, Any]:
    """A ``dead_letter`` record for a message given up on (or an event that could not be routed)."""
    return {
        "topic": origin.topic,
        "partition": origin.partition,
        "offset": origin.offset,
        "key": origin.key,
        "value": origin.value,
        "error": " ".join(error.split()),
        "error_type": kind,
        "attempts": attempts,
        "failed_at": now,
        "service": service,
    }
