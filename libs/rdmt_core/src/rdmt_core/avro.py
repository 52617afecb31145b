"""Avro messages of the streaming services: versioned schemas, single-object encoding, compatibility.

Schemas are ``schemas/<major>/<minor>/<name>.avsc`` with samples in ``.../samples/<name>.json``
(docs/schemas.md), found in ``$RDMT_SCHEMA_DIR``, else in the first ``schemas/`` folder walking up
from this module: ``rdmt_core/schemas`` when shipped as package data, else the repository's
``schemas/`` (editable installs; a wheel without package data needs ``RDMT_SCHEMA_DIR``).

Messages are single-object encoded (``C3 01``, 8-byte little-endian CRC-64-AVRO fingerprint of the
writer schema's canonical form, schemaless body); ``decode`` also reads the Confluent wire format
(``00``, 4-byte big-endian schema id) given an id -> (name, version) mapping. Records are read with
the newest schema of their name and major. No Kafka and no registry client here: bytes in, records out.
"""

from __future__ import annotations

import json
import os
import reprlib
from collections.abc import Mapping
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any, NamedTuple

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.schema import fingerprint, to_parsing_canonical_form
from fastavro.validation import ValidationError, validate

from .errors import RdmtError

ENV_VAR = "RDMT_SCHEMA_DIR"
MARKER = b"\xc3\x01"
HEADER_SIZE = 10  # marker + fingerprint
CONFLUENT_MAGIC = b"\x00"


class SchemaError(RdmtError):
    """A message or record does not match the RDMT Avro schemas, or the schemas cannot be found."""


class Decoded(NamedTuple):
    """A decoded message: schema name, version of the (reader) schema the record follows, the record."""

    name: str
    version: str
    record: dict[str, Any]


def _version_key(version: str) -> tuple[int, int]:
    major, minor = version.split(".")
    return int(major), int(minor)


def _is_schema_root(path: Path) -> bool:
    return path.is_dir() and any(path.glob("[0-9]*/[0-9]*/*.avsc"))


def schema_dir() -> Path:
    """The folder holding ``<major>/<minor>/*.avsc``: ``$RDMT_SCHEMA_DIR``, else found walking up from here."""
    env = os.environ.get(ENV_VAR)
    if env:
        if not _is_schema_root(Path(env)):
            raise SchemaError(f"{ENV_VAR}={env}: no <major>/<minor>/*.avsc schemas in this folder")
        return Path(env).resolve()
    for parent in Path(__file__).resolve().parents:
        if _is_schema_root(parent / "schemas"):
            return (parent / "schemas").resolve()  # in a checkout, rdmt_core/schemas links to the repo folder
    raise SchemaError(f"no Avro schemas found: set {ENV_VAR} to the schemas/ folder of the RDMT repository")


def _from_json(schema: Any, datum: Any) -> Any:
    """A sample record as Avro data: JSON holds ``bytes`` values as ASCII strings."""
    if datum is None:
        return None
    if schema == "bytes":
        return datum.encode("ascii")
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        return _from_json(branches[0], datum) if len(branches) == 1 else datum
    kind = schema["type"] if isinstance(schema, dict) else None
    if kind == "record":
        fields = [f for f in schema["fields"] if f["name"] in datum]
        return datum | {f["name"]: _from_json(f["type"], datum[f["name"]]) for f in fields}
    if kind == "array":
        return [_from_json(schema["items"], d) for d in datum]
    if kind == "map":
        return {k: _from_json(schema["values"], v) for k, v in datum.items()}
    return _from_json(kind, datum) if kind == "bytes" or isinstance(kind, list | dict) else datum


def _describe(schema: Any) -> str:
    if isinstance(schema, list):
        return " or ".join(_describe(s) for s in schema)
    if isinstance(schema, dict):
        if schema["type"] == "array":
            return f"array of {_describe(schema['items'])}"
        if schema["type"] == "map":
            return f"map of {_describe(schema['values'])}"
        if schema["type"] == "enum":
            return f"{schema['name']} (one of {', '.join(schema['symbols'])})"
        return schema.get("logicalType") or schema.get("name") or _describe(schema["type"])
    return str(schema)


def _fingerprint(parsed: dict) -> bytes:
    """8-byte CRC-64-AVRO fingerprint (little-endian) of the canonical form of a parsed schema."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


class Catalog:
    """Every schema version under one schema folder, indexed by name, version and fingerprint."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._schemas: dict[tuple[str, str], tuple[dict, bytes]] = {}  # (name, version) -> (parsed, fingerprint)
        self._texts: dict[tuple[str, str], str] = {}  # (name, version) -> the .avsc file's text
        for path in root.glob("[0-9]*/[0-9]*/*.avsc"):
            major, minor = int(path.parts[-3]), int(path.parts[-2])
            text = path.read_text()
            try:
                parsed = parse_schema(json.loads(text))
            except Exception as exc:  # a broken schema file must say which file
                raise SchemaError(f"{path}: not a valid Avro schema: {exc}") from exc
            if not parsed["name"].startswith(f"rdmt.v{major}."):
                raise SchemaError(f"{path}: schema {parsed['name']} is not in namespace rdmt.v{major}")
            self._schemas[path.stem, f"{major}.{minor}"] = parsed, _fingerprint(parsed)
            self._texts[path.stem, f"{major}.{minor}"] = text
        self._by_fingerprint: dict[bytes, tuple[str, str]] = {}
        for key in sorted(self._schemas, key=lambda k: _version_key(k[1])):  # a doc-only change keeps the fingerprint
            self._by_fingerprint.setdefault(self._schemas[key][1], key)

    def names(self) -> list[str]:
        return sorted({name for name, _ in self._schemas})

    def versions(self, name: str) -> list[str]:
        """Versions of ``name``, oldest first."""
        found = sorted((v for n, v in self._schemas if n == name), key=_version_key)
        if not found:
            raise SchemaError(f"unknown schema {name!r} in {self.root} (known: {', '.join(self.names())})")
        return found

    def newest(self, name: str, major: int | None = None) -> str:
        """Newest version of ``name`` (within ``major`` when given)."""
        return [v for v in self.versions(name) if major is None or _version_key(v)[0] == major][-1]

    def _entry(self, name: str, version: str | None) -> tuple[dict, bytes]:
        version = version or self.newest(name)
        if (name, version) not in self._schemas:
            raise SchemaError(f"no version {version} of schema {name!r} (versions: {', '.join(self.versions(name))})")
        return self._schemas[name, version]

    def schema(self, name: str, version: str | None = None) -> dict:
        """Parsed schema of ``name`` at ``version`` (default: newest)."""
        return self._entry(name, version)[0]

    def schema_json(self, name: str, version: str | None = None) -> Any:
        """Schema ``name`` at ``version`` (default: newest) as written in its ``.avsc`` file (JSON data)."""
        version = version or self.newest(name)
        self._entry(name, version)
        return json.loads(self._texts[name, version])

    def identify(self, schema_text: str, label: str = "writer schema") -> tuple[str, str]:
        """(name, version) of the catalog schema with the canonical form of ``schema_text`` (JSON).

        How a schema from a schema registry is matched with the catalog: by the fingerprint of its
        canonical form, so documentation and formatting do not matter.
        """
        try:
            fp = _fingerprint(parse_schema(json.loads(schema_text)))
        except Exception as exc:  # whatever the registry holds, say what is wrong with it
            raise SchemaError(f"{label} is not a valid Avro schema: {type(exc).__name__} {exc}") from exc
        if fp not in self._by_fingerprint:
            raise SchemaError(f"{label} (fingerprint {fp.hex()}) is not a schema in {self.root}")
        return self._by_fingerprint[fp]

    def fingerprint(self, name: str, version: str | None = None) -> bytes:
        """8-byte CRC-64-AVRO fingerprint (little-endian) of the canonical form of ``name`` at ``version``."""
        return self._entry(name, version)[1]

    def samples(self, name: str, version: str) -> list[dict[str, Any]]:
        """Sample records of ``name`` at ``version``: ``<major>/<minor>/samples/<name>.json``."""
        major, minor = _version_key(version)
        path = self.root / str(major) / str(minor) / "samples" / f"{name}.json"
        if not path.is_file():
            raise SchemaError(f"{path}: missing samples of {name} {version}")
        schema = self.schema(name, version)
        return [_from_json(schema, r) for r in json.loads(path.read_text())]

    def validate(self, name: str, record: Mapping[str, Any], version: str | None = None) -> None:
        """Raise :class:`SchemaError` naming the first field of ``record`` that does not fit the schema."""
        version = version or self.newest(name)
        try:
            validate(record, self.schema(name, version), raise_errors=True)
        except ValidationError as exc:
            err = exc.errors[0]
            got = "null or missing" if err.datum is None else f"{reprlib.repr(err.datum)} ({type(err.datum).__name__})"
            raise SchemaError(
                f"record is not a valid {name} {version}: field {err.field or '(record)'} is {got}, "
                f"expected {_describe(err.schema)}"
            ) from None

    def body(self, name: str, record: Mapping[str, Any], version: str | None = None) -> bytes:
        """Schemaless Avro binary of a validated ``record`` (no header)."""
        version = version or self.newest(name)
        self.validate(name, record, version)
        out = BytesIO()
        schemaless_writer(out, self.schema(name, version), record)
        return out.getvalue()

    def encode(
        self, name: str, record: Mapping[str, Any], version: str | None = None, *, schema_id: int | None = None
    ) -> bytes:
        """Single-object encoding of ``record``; Confluent wire format instead when ``schema_id`` is given."""
        body = self.body(name, record, version)
        if schema_id is not None:
            return CONFLUENT_MAGIC + schema_id.to_bytes(4, "big") + body
        return MARKER + self.fingerprint(name, version) + body

    def _writer(self, data: bytes, schema_ids: Mapping[int, tuple[str, str]] | None) -> tuple[str, str, int]:
        if data[:2] == MARKER:
            if len(data) < HEADER_SIZE:
                raise SchemaError(f"message of {len(data)} bytes is shorter than the {HEADER_SIZE}-byte header")
            writer = self._by_fingerprint.get(data[2:HEADER_SIZE])
            if writer is None:
                raise SchemaError(
                    f"unknown schema fingerprint {data[2:HEADER_SIZE].hex()}: written with a schema not in {self.root}"
                )
            return *writer, HEADER_SIZE
        if data[:1] == CONFLUENT_MAGIC and schema_ids is not None:
            if len(data) < 5:
                raise SchemaError(f"Confluent message of {len(data)} bytes is shorter than its 5-byte header")
            schema_id = int.from_bytes(data[1:5], "big")
            if schema_id not in schema_ids:
                raise SchemaError(f"unknown Confluent schema id {schema_id} (known: {sorted(schema_ids)})")
            name, version = schema_ids[schema_id]
            self.schema(name, version)
            return name, version, 5
        hint = "; pass schema_ids to read the Confluent wire format" if data[:1] == CONFLUENT_MAGIC else ""
        start = data[:2].hex(" ") or "nothing"
        raise SchemaError(f"not Avro single-object encoded: starts with {start}, expected c3 01{hint}")

    def decode(
        self, data: bytes, expected: str | None = None, *, schema_ids: Mapping[int, tuple[str, str]] | None = None
    ) -> Decoded:
        """Read a message; the record follows the newest schema of the writer's name and major."""
        data = bytes(data)
        name, written, start = self._writer(data, schema_ids)
        if expected is not None and name != expected:
            raise SchemaError(f"expected a {expected} message, got {name} {written}")
        version = self.newest(name, _version_key(written)[0])
        body = BytesIO(data[start:])
        reader = None if version == written else self.schema(name, version)
        try:
            record = schemaless_reader(body, self.schema(name, written), reader)
        except SchemaResolutionError as exc:
            raise SchemaError(f"{name} {written} cannot be read as {name} {version}: {exc}") from exc
        except Exception as exc:  # fastavro reports truncation and garbage as EOFError, IndexError, UnicodeError...
            size = len(data) - start
            raise SchemaError(
                f"{name} {written} body of {size} bytes is truncated or corrupt: {type(exc).__name__} {exc}"
            ) from exc
        left = len(data) - start - body.tell()
        if left:
            raise SchemaError(f"{name} {written} body is corrupt: {left} bytes left after the record")
        return Decoded(name, version, record)

    def check_compatibility(self, name: str, old: str, new: str) -> None:
        """Raise :class:`SchemaError` unless ``new`` reads ``old``'s samples and ``old`` reads ``new``'s."""
        if _version_key(old)[0] != _version_key(new)[0]:
            raise SchemaError(f"{name} {old} and {new}: versions of different majors are not compatible")
        problems = []
        for writer, reader in ((old, new), (new, old)):
            for i, record in enumerate(self.samples(name, writer)):
                try:
                    body = BytesIO(self.body(name, record, writer))
                    schemaless_reader(body, self.schema(name, writer), self.schema(name, reader))
                except Exception as exc:  # every failure is a finding to report, not a crash
                    problems.append(f"{reader} cannot read sample {i} of {writer}: {exc}")
        if problems:
            raise SchemaError(f"{name} {new} is not compatible with {old}: " + "; ".join(problems))


@lru_cache(maxsize=8)
def _catalog(root: Path) -> Catalog:
    return Catalog(root)


def catalog() -> Catalog:
    """The catalog of :func:`schema_dir` (loaded once per folder)."""
    return _catalog(schema_dir())


def schema(name: str, version: str | None = None) -> dict:
    """Parsed schema ``name`` (e.g. ``metric_record``) at ``version`` (``"1.0"``; default newest)."""
    return catalog().schema(name, version)


def encode(name: str, record: Mapping[str, Any], version: str | None = None, *, schema_id: int | None = None) -> bytes:
    """Validate ``record`` and encode it as one message (see :meth:`Catalog.encode`)."""
    return catalog().encode(name, record, version, schema_id=schema_id)


def decode(
    data: bytes, expected: str | None = None, *, schema_ids: Mapping[int, tuple[str, str]] | None = None
) -> Decoded:
    """Decode one message into (name, version, record) (see :meth:`Catalog.decode`)."""
    return catalog().decode(data, expected, schema_ids=schema_ids)


def check_compatibility(name: str, old: str, new: str) -> None:
    """Check that versions ``old`` and ``new`` of ``name`` read each other's samples."""
    catalog().check_compatibility(name, old, new)
