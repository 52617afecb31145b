"""Pytest plugin: a real Schema Registry (Apicurio, Confluent-compatible API) for the test session.

``schema_registry_url`` returns ``RDMT_TEST_SCHEMA_REGISTRY_URL`` when it is set (CI started a registry
with ``deploy/registry/registry.sh start``); otherwise it starts one with that script in a temporary
directory and stops it when the session ends. (Not ``RDMT_SCHEMA_REGISTRY_URL``: set in the test
environment, that would make every service of every test use the registry.) A registry that cannot
start fails the tests that use it (no skip), with the tail of its log in the failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .daemons import Daemon, running

REPO = Path(__file__).resolve().parents[1]
URL_ENV = "RDMT_TEST_SCHEMA_REGISTRY_URL"
REGISTRY = Daemon(
    what="schema registry",
    script=REPO / "deploy" / "registry" / "registry.sh",
    ready_line="RDMT_SCHEMA_REGISTRY_URL=",  # what registry.sh start prints
    logs=("registry.log",),
    start_timeout_s=900,  # the first start builds the registry from Maven Central (~120 MB of jars)
)


@pytest.fixture(scope="session")
def schema_registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a running registry's Confluent-compatible API (``http://127.0.0.1:<port>/apis/ccompat/v7``)."""
    existing = os.environ.get(URL_ENV)
    if existing:
        yield existing
        return
    with running(REGISTRY, tmp_path_factory.mktemp("registry")) as url:
        yield url
