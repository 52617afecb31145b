"""The message codec of the services: plain RDMT Avro, or the Confluent wire format with a Schema Registry.

Without a registry (the default) every message is Avro single-object encoded (:mod:`rdmt_core.avro`).
With ``RDMT_SCHEMA_REGISTRY_URL`` set, a service registers the writer schema of each message it
produces under the subject ``<topic>-value`` (Confluent's TopicNameStrategy; registering a schema
the subject already has returns its id, so this is also the look-up) and frames the message the
Confluent way: ``00``, the 4-byte big-endian schema id, the Avro body. Consumers read both framings:
a schema id is fetched from the registry once, and its schema must be one of the catalog's (matched
by the fingerprint of its canonical form), as with single-object encoding. Ids are cached for the
life of the codec: the registry never changes the schema of an id.

A registry that cannot be reached, or refuses a request, raises :class:`RegistryError`, which the
services treat as transient (:mod:`.failures`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .. import avro
from ..avro import CONFLUENT_MAGIC, Decoded
from ..errors import RdmtError
from .settings import SchemaRegistrySettings

REQUEST_TIMEOUT_S = 10


class RegistryError(RdmtError):
    """The schema registry could not be reached or refused a request."""


def subject(topic: str) -> str:
    """Subject of the values of ``topic`` (TopicNameStrategy)."""
    return f"{topic}-value"


class Codec:
    """Encodes and decodes the messages of one process.

    Parameters
    ----------
    client : confluent_kafka.schema_registry.SchemaRegistryClient or None
        The registry; None for plain single-object encoding.
    url : str or None
        The registry's URL, for messages.
    """

    def __init__(self, client: Any = None, url: str | None = None) -> None:
        self.client = client
        self.url = url
        self._ids: dict[tuple[str, str, str], int] = {}  # (subject, schema name, version) -> schema id
        self._writers: dict[int, tuple[str, str]] = {}  # schema id -> (schema name, version)

    @classmethod
    def from_settings(cls, settings: SchemaRegistrySettings) -> Codec:
        """The plain codec, or one with a registry client when ``settings.url`` is set (no request yet)."""
        if settings.url is None:
            return cls()
        from confluent_kafka.schema_registry import SchemaRegistryClient

        return cls(SchemaRegistryClient(settings.client_config() | {"timeout": REQUEST_TIMEOUT_S}), settings.url)

    @property
    def uses_registry(self) -> bool:
        return self.client is not None

    def close(self) -> None:
        """Close the registry client's connections (nothing to do without a registry)."""
        if self.client is not None:
            self.client.__exit__()

    def __enter__(self) -> Codec:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def encode(self, topic: str, name: str, record: Mapping[str, Any]) -> bytes:
        """``record`` of schema ``name`` as a message for ``topic`` (newest version of the schema)."""
        if self.client is None:
            return avro.encode(name, record)
        version = avro.catalog().newest(name)
        return avro.encode(name, record, version, schema_id=self.schema_id(topic, name, version))

    def decode(self, data: bytes, expected: str | None = None) -> Decoded:
        """A message in either framing (see :func:`rdmt_core.avro.decode`); raises ``SchemaError``."""
        data = bytes(data)
        if self.client is not None and data[:1] == CONFLUENT_MAGIC and len(data) >= 5:
            schema_id = int.from_bytes(data[1:5], "big")
            return avro.decode(data, expected, schema_ids={schema_id: self.writer(schema_id)})
        return avro.decode(data, expected)

    def schema_id(self, topic: str, name: str, version: str) -> int:
        """Id of schema ``name`` ``version`` under the subject of ``topic``, registered if new."""
        key = (subject(topic), name, version)
        if key not in self._ids:
            from confluent_kafka.schema_registry import Schema

            text = json.dumps(avro.catalog().schema_json(name, version))
            self._ids[key] = self._call(f"registering {name} {version} under {key[0]}",
                                        self.client.register_schema, key[0], Schema(text, "AVRO"))  # fmt: skip
        return self._ids[key]

    def writer(self, schema_id: int) -> tuple[str, str]:
        """(schema name, version) of registry schema ``schema_id``; ``SchemaError`` if it is not an RDMT schema."""
        if schema_id not in self._writers:
            schema = self._call(f"looking up schema id {schema_id}", self.client.get_schema, schema_id,
                                missing_is_poison=True)  # fmt: skip
            if schema.schema_type not in (None, "AVRO"):
                raise avro.SchemaError(f"schema id {schema_id} in {self.url} is a {schema.schema_type} schema")
            self._writers[schema_id] = avro.catalog().identify(schema.schema_str, f"schema id {schema_id}")
        return self._writers[schema_id]

    def _call(self, what: str, method: Any, *args: Any, missing_is_poison: bool = False) -> Any:
        """``method(*args)``; a failure as :class:`RegistryError`, or as ``SchemaError`` when the registry
        has no such schema and ``missing_is_poison`` (a message naming an unknown id can never be read)."""
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            return method(*args)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404 and missing_is_poison:
                raise avro.SchemaError(f"schema registry {self.url}: {what}: not found ({exc.error_message})") from exc
            raise RegistryError(f"schema registry {self.url}: {what}: HTTP {exc.http_status_code} "
                                f"{exc.error_message}") from exc  # fmt: skip
        except Exception as exc:  # httpx connection and timeout errors, and whatever else the client raises
            raise RegistryError(f"schema registry {self.url}: {what}: {type(exc).__name__}: {exc}") from exc


PLAIN = Codec()
