"""Schema registry settings and codec without a registry server (the server tests are in tests/integration)."""

from __future__ import annotations

import json
import socket

import pytest

from rdmt_core import avro
from rdmt_core.avro import SchemaError
from rdmt_core.errors import ConfigError
from rdmt_core.kafka.deadletters import is_permanent, should_retry
from rdmt_core.kafka.schema_registry import PLAIN, Codec, RegistryError, subject
from rdmt_core.kafka.settings import RetrySettings, SchemaRegistrySettings, streaming_settings


def test_no_registry_by_default_and_the_url_from_file_or_environment() -> None:
    assert streaming_settings({}, {}).schema_registry == SchemaRegistrySettings()
    assert not Codec.from_settings(SchemaRegistrySettings()).uses_registry
    from_file = streaming_settings({"schema_registry": {"url": "http://registry:8081/"}}, {})
    assert from_file.schema_registry.url == "http://registry:8081"
    env = {"RDMT_SCHEMA_REGISTRY_URL": "https://apicurio.example.org/apis/ccompat/v7",
           "RDMT_SCHEMA_REGISTRY_AUTH": "rdmt:s3cret"}  # fmt: skip
    settings = streaming_settings({"schema_registry": {"url": "http://registry:8081"}}, env)
    assert settings.schema_registry.client_config() == {
        "url": "https://apicurio.example.org/apis/ccompat/v7", "basic.auth.user.info": "rdmt:s3cret"
    }
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize("url", ["registry:8081", "ftp://registry", "http://", "http://registry:8081/x?y=1", "x"])
def test_a_registry_url_must_be_http_with_a_host(url: str) -> None:
    with pytest.raises(ConfigError, match=r"schema_registry\.url: must be an http:// or https:// URL with a host"):
        streaming_settings({}, {"RDMT_SCHEMA_REGISTRY_URL": url})


def test_registry_credentials_must_not_be_in_a_file() -> None:
    with pytest.raises(ConfigError, match=r"schema_registry\.basic_auth_user_info must not be in a file; "
                                          r"set RDMT_SCHEMA_REGISTRY_AUTH"):  # fmt: skip
        streaming_settings({"schema_registry": {"url": "http://r:8081", "basic_auth_user_info": "u:p"}}, {})


def test_subjects_follow_the_topic_name_strategy() -> None:
    assert subject("rdmt.evaluations") == "rdmt.evaluations-value"


def test_every_schema_is_identified_by_its_canonical_form() -> None:
    catalog = avro.catalog()
    for name in catalog.names():
        for version in catalog.versions(name):
            text = json.dumps(catalog.schema_json(name, version))
            found = catalog.identify(text)
            # A version whose canonical form equals an older one's (a doc-only change) is found as the older.
            assert catalog.fingerprint(*found) == catalog.fingerprint(name, version)
    alert = catalog.schema_json("alert")
    alert["doc"] = "documentation does not change the canonical form"
    assert catalog.identify(json.dumps(alert)) == ("alert", catalog.newest("alert"))
    alert["fields"] = alert["fields"][1:]  # (without its last field, alert 1.1 would be alert 1.0)
    with pytest.raises(SchemaError, match=r"schema id 9 \(fingerprint [0-9a-f]{16}\) is not a schema in"):
        catalog.identify(json.dumps(alert), "schema id 9")
    with pytest.raises(SchemaError, match="is not a valid Avro schema"):
        catalog.identify("{not json")


def test_the_plain_codec_is_single_object_encoding() -> None:
    record = avro.catalog().samples("alert", avro.catalog().newest("alert"))[0]
    assert PLAIN.encode("t.alerts", "alert", record) == avro.encode("alert", record)
    encoded = avro.encode("alert", record)
    assert PLAIN.decode(encoded, "alert").record == avro.decode(encoded).record
    framed = avro.encode("alert", record, schema_id=3)
    with pytest.raises(SchemaError, match="pass schema_ids"):
        PLAIN.decode(framed)  # no registry to ask for the schema of id 3


def test_an_unreachable_registry_is_a_transient_failure() -> None:
    with socket.socket() as s:  # a port on loopback that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    record = avro.catalog().samples("alert", avro.catalog().newest("alert"))[0]
    with Codec.from_settings(SchemaRegistrySettings(url=f"http://127.0.0.1:{port}")) as codec:
        with pytest.raises(RegistryError, match=rf"schema registry http://127.0.0.1:{port}: registering alert"):
            codec.encode("t.alerts", "alert", record)
        with pytest.raises(RegistryError, match="looking up schema id 3"):
            codec.decode(avro.encode("alert", record, schema_id=3))
        assert codec.decode(avro.encode("alert", record)).name == "alert"  # single-object needs no registry
    error = RegistryError("schema registry down")
    assert not is_permanent(error) and should_retry(error, 1, RetrySettings())
