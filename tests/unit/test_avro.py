"""Avro schemas and framing: samples validate and round-trip, headers, compatibility, errors, docs."""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import shutil
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form

from rdmt_core import avro
from rdmt_core.avro import Catalog, SchemaError
from rdmt_core.errors import RdmtError

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
CATALOG = Catalog(SCHEMAS)
VERSIONS = [(name, version) for name in CATALOG.names() for version in CATALOG.versions(name)]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _repo_schemas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(avro.ENV_VAR, raising=False)


def _plain(value: Any) -> Any:
    """Comparable form: datetimes as epoch milliseconds, NaN as a marker, containers recursively."""
    if isinstance(value, datetime):
        return (value - EPOCH) // timedelta(milliseconds=1)
    if isinstance(value, float) and math.isnan(value):
        return "<NaN>"
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _rabin(data: bytes) -> int:
    """CRC-64-AVRO as written in the Avro specification ("Schema Fingerprints")."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def _fields(schema: Any, where: str):
    """Every (path, field) of every record in ``schema``, nested ones included."""
    if isinstance(schema, list):
        for branch in schema:
            yield from _fields(branch, where)
    elif isinstance(schema, dict):
        if schema["type"] == "record":
            for field in schema["fields"]:
                yield f"{where}.{field['name']}", field
                yield from _fields(field["type"], f"{where}.{field['name']}")
        else:
            yield from _fields(schema.get("items") or schema.get("values") or schema["type"], where)


def test_schemas_found_from_the_package() -> None:
    assert avro.schema_dir() == SCHEMAS
    assert set(avro.catalog().names()) == {
        "alert",
        "archive_event",
        "crds_delivery",
        "dead_letter",
        "evaluation_record",
        "metric_record",
        "monitor_request",
    }
    assert avro.schema("metric_record", "1.0")["name"] == "rdmt.v1.MetricRecord"


def test_schema_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(SCHEMAS / "1", tmp_path / "1")
    monkeypatch.setenv(avro.ENV_VAR, str(tmp_path))
    assert avro.schema_dir() == tmp_path.resolve()
    monkeypatch.setenv(avro.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(SchemaError, match=r"RDMT_SCHEMA_DIR=.*nowhere: no <major>/<minor>/\*\.avsc"):
        avro.schema_dir()


@pytest.mark.parametrize(("name", "version"), VERSIONS)
def test_schema_follows_the_house_rules(name: str, version: str) -> None:
    major, minor = version.split(".")
    raw = json.loads((SCHEMAS / major / minor / f"{name}.avsc").read_text())
    assert raw["namespace"] == f"rdmt.v{major}" and raw.get("doc")
    for path, field in _fields(raw, raw["name"]):
        assert field.get("doc"), f"{path} has no doc"
        kind = field["type"]
        if isinstance(kind, list):
            assert kind[0] == "null" and field.get("default", "missing") is None, f"{path}: optional needs default null"
        if path.endswith(("_at", "_time", "useafter", "exposure_start")):
            assert kind == {"type": "long", "logicalType": "timestamp-millis"}, f"{path} is not a timestamp-millis"
            assert "UTC, milliseconds since the Unix epoch" in field["doc"], f"{path} doc lacks its unit"


@pytest.mark.parametrize(("name", "version"), VERSIONS)
def test_samples_validate_and_round_trip(name: str, version: str) -> None:
    samples = CATALOG.samples(name, version)
    assert samples, f"{name} {version} has no samples"
    for record in samples:
        CATALOG.validate(name, record, version)
        decoded = CATALOG.decode(CATALOG.encode(name, record, version), expected=name)
        assert decoded.name == name
        assert decoded.version == CATALOG.newest(name, int(version.split(".")[0]))
        if decoded.version == version:
            assert _plain(decoded.record) == _plain(record)
        else:
            CATALOG.validate(name, decoded.record, decoded.version)


def test_nan_survives_the_round_trip() -> None:
    record = CATALOG.samples("metric_record", "1.0")[0]
    metric = avro.decode(avro.encode("metric_record", record), "metric_record").record["metrics"][0]
    assert math.isnan(metric["superpixel"][0]) and math.isnan(metric["superpixel"][31])
    assert metric["superpixel"][340] == 0.41
    evaluation = CATALOG.samples("evaluation_record", "1.0")[0]
    block = avro.decode(avro.encode("evaluation_record", evaluation)).record["evaluations"][2]
    assert math.isnan(block["reference"][0])


def test_timestamps_and_bytes_come_back_typed() -> None:
    record = CATALOG.samples("dead_letter", "1.0")[0]
    assert record["key"] == b"WFI07"
    decoded = avro.decode(avro.encode("dead_letter", record)).record
    assert decoded["value"] == b"not avro"
    assert decoded["failed_at"] == datetime(2026, 1, 7, 14, 3, 20, tzinfo=UTC)
    naive = record | {"failed_at": datetime(2026, 1, 7, 14, 3, 20)}  # naive datetimes are UTC
    assert avro.decode(avro.encode("dead_letter", naive)).record == decoded


@pytest.mark.parametrize(("name", "version"), VERSIONS)
def test_single_object_header(name: str, version: str) -> None:
    major, minor = version.split(".")
    parsed = fastavro.parse_schema(json.loads((SCHEMAS / major / minor / f"{name}.avsc").read_text()))
    canonical = to_parsing_canonical_form(parsed)
    expected = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
    assert expected == _rabin(canonical.encode()).to_bytes(8, "little")
    record = CATALOG.samples(name, version)[0]
    data = CATALOG.encode(name, record, version)
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == expected == CATALOG.fingerprint(name, version)
    body = BytesIO()
    fastavro.schemaless_writer(body, parsed, record)
    assert data[10:] == body.getvalue()


def test_every_version_is_compatible_with_the_earlier_ones_of_its_major() -> None:
    checked = []
    for name in CATALOG.names():
        versions = CATALOG.versions(name)
        for i, new in enumerate(versions):
            for old in versions[: i + 1]:  # itself too: the samples must read back with their own schema
                if old.split(".")[0] == new.split(".")[0]:
                    CATALOG.check_compatibility(name, old, new)
                    checked.append((name, old, new))
    assert len(checked) >= len(CATALOG.names())


def _with_minor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: dict, sample_value: Any) -> Path:
    """The repository schemas plus a 1.1 of monitor_request that adds ``field``."""
    shutil.copytree(SCHEMAS / "1", tmp_path / "1")
    schema = json.loads((SCHEMAS / "1" / "0" / "monitor_request.avsc").read_text())
    schema["fields"].append(field)
    samples = json.loads((SCHEMAS / "1" / "0" / "samples" / "monitor_request.json").read_text())
    (tmp_path / "1" / "1" / "samples").mkdir(parents=True, exist_ok=True)
    (tmp_path / "1" / "1" / "monitor_request.avsc").write_text(json.dumps(schema))
    new_samples = [s | {field["name"]: sample_value} for s in samples]
    (tmp_path / "1" / "1" / "samples" / "monitor_request.json").write_text(json.dumps(new_samples))
    monkeypatch.setenv(avro.ENV_VAR, str(tmp_path))
    return tmp_path


def test_optional_field_with_default_is_a_compatible_minor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    field = {"name": "priority", "type": ["null", "int"], "default": None, "doc": "Queue priority, 0 first."}
    _with_minor(tmp_path, monkeypatch, field, 2)
    avro.check_compatibility("monitor_request", "1.0", "1.1")
    old = CATALOG.samples("monitor_request", "1.0")[0]
    name, version, record = avro.decode(avro.encode("monitor_request", old, "1.0"))
    assert (name, version, record["priority"]) == ("monitor_request", "1.1", None)
    assert avro.encode("monitor_request", old, "1.0")[2:10] != avro.catalog().fingerprint("monitor_request", "1.1")
    assert avro.decode(avro.encode("monitor_request", old | {"priority": 2})).record["priority"] == 2


def test_required_field_is_rejected_as_a_minor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    field = {"name": "priority", "type": "int", "doc": "Queue priority, 0 first."}
    _with_minor(tmp_path, monkeypatch, field, 2)
    with pytest.raises(
        SchemaError, match=r"monitor_request 1\.1 is not compatible with 1\.0: 1\.1 cannot read .*priority"
    ):
        avro.check_compatibility("monitor_request", "1.0", "1.1")
    old = avro.encode("monitor_request", CATALOG.samples("monitor_request", "1.0")[0], "1.0")
    with pytest.raises(SchemaError, match=r"monitor_request 1\.0 cannot be read as monitor_request 1\.1"):
        avro.decode(old)


def test_different_majors_are_not_compared() -> None:
    with pytest.raises(SchemaError, match="different majors"):
        CATALOG.check_compatibility("alert", "1.0", "2.0")


def _sample(name: str = "archive_event") -> dict:
    return copy.deepcopy(CATALOG.samples(name, "1.0")[0])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not Avro single-object encoded: starts with nothing, expected c3 01"),
        (b'{"uri": 1}', "not Avro single-object encoded: starts with 7b 22, expected c3 01$"),
        (b"\x00\x00\x00\x00\x01\x02", "expected c3 01; pass schema_ids to read the Confluent wire format"),
        (b"\xc3\x01\x12\x34", "message of 4 bytes is shorter than the 10-byte header"),
        (b"\xc3\x01" + bytes(8) + b"\x02", "unknown schema fingerprint 0000000000000000"),
    ],
)
def test_bad_framing(data: bytes, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        avro.decode(data)


def test_every_truncation_is_reported() -> None:
    data = avro.encode("archive_event", _sample())
    for size in range(10, len(data)):
        with pytest.raises(SchemaError, match=r"archive_event 1\.0 body of \d+ bytes is truncated or corrupt"):
            avro.decode(data[:size])


def test_trailing_bytes_are_reported() -> None:
    with pytest.raises(SchemaError, match="body is corrupt: 2 bytes left after the record"):
        avro.decode(avro.encode("archive_event", _sample()) + b"\x00\x00")


def test_wrong_message_name() -> None:
    data = avro.encode("archive_event", _sample())
    with pytest.raises(SchemaError, match=r"expected a monitor_request message, got archive_event 1\.0"):
        avro.decode(data, expected="monitor_request")


def test_invalid_records_name_the_field() -> None:
    event = _sample()
    del event["uri"]
    with pytest.raises(
        SchemaError, match=r"not a valid archive_event 1\.0: field rdmt\.v1\.ArchiveEvent\.uri is null or"
    ):
        avro.encode("archive_event", event)
    metrics = _sample("metric_record")
    metrics["metrics"][1]["unit"] = 3
    with pytest.raises(SchemaError, match=r"field rdmt\.v1\.Metric\.unit is 3 \(int\), expected string"):
        avro.encode("metric_record", metrics)
    evaluation = _sample("evaluation_record")
    evaluation["evaluations"][0]["status"] = ["passed"]
    with pytest.raises(
        SchemaError,
        match=r"EvaluationBlock\.status is 'passed' \(str\), expected rdmt\.v1\.Status \(one of pass, incomplete,",
    ):
        avro.encode("evaluation_record", evaluation)
    request = _sample("monitor_request") | {"requested_at": "yesterday"}
    with pytest.raises(SchemaError, match=r"MonitorRequest\.requested_at is 'yesterday' \(str\), expected timestamp"):
        avro.encode("monitor_request", request)


def test_unknown_names_and_versions() -> None:
    with pytest.raises(SchemaError, match=r"unknown schema 'alerts' in .* \(known: alert, archive_event,"):
        avro.schema("alerts")
    with pytest.raises(SchemaError, match=r"no version 1\.7 of schema 'alert' \(versions: 1\.0, 1\.1\)"):
        avro.encode("alert", _sample("alert"), "1.7")
    assert issubclass(SchemaError, RdmtError)


def test_confluent_wire_format() -> None:
    record = _sample("monitor_request")
    ids = {42: ("monitor_request", "1.0")}
    body = BytesIO()
    fastavro.schemaless_writer(body, avro.schema("monitor_request", "1.0"), record)
    framed = b"\x00" + (42).to_bytes(4, "big") + body.getvalue()
    assert avro.encode("monitor_request", record, schema_id=42) == framed
    name, version, decoded = avro.decode(framed, "monitor_request", schema_ids=ids)
    assert (name, version) == ("monitor_request", "1.0")
    assert _plain(decoded) == _plain(record)
    with pytest.raises(SchemaError, match=r"unknown Confluent schema id 7 \(known: \[42\]\)"):
        avro.decode(b"\x00" + (7).to_bytes(4, "big") + body.getvalue(), schema_ids=ids)
    with pytest.raises(SchemaError, match="Confluent message of 3 bytes is shorter than its 5-byte header"):
        avro.decode(b"\x00\x00\x00", schema_ids=ids)
    with pytest.raises(SchemaError, match=r"no version 9\.0"):
        avro.decode(framed, schema_ids={42: ("monitor_request", "9.0")})
    # single-object messages still decode when a mapping is given
    assert avro.decode(avro.encode("monitor_request", record), schema_ids=ids).name == "monitor_request"


def test_schema_docs_are_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location("render_docs", SCHEMAS / "render_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    page = REPO / "docs" / "schemas.md"
    assert page.read_text() == module.render(SCHEMAS), "docs/schemas.md is stale: run python schemas/render_docs.py"
