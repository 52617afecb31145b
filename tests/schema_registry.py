"""Pytest plugin: a real Schema Registry (Apicurio, Confluent-compatible API) for the test session.

``schema_registry_url`` returns ``RDMT_TEST_SCHEMA_REGISTRY_URL`` when it is set (CI started a registry
with ``deploy/registry/registry.sh start``); otherwise it starts one with that script in a temporary
directory and stops it when the session ends. (Not ``RDMT_SCHEMA_REGISTRY_URL``: set in the test
environment, that would make every service of every test use the registry.) A registry that cannot
start fails the tests that use it (no skip), with the tail of its log in the failure.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REGISTRY_SH = REPO / "deploy" / "registry" / "registry.sh"
URL_ENV = "RDMT_TEST_SCHEMA_REGISTRY_URL"
LINE = "RDMT_SCHEMA_REGISTRY_URL="  # what registry.sh start prints
# The first start builds the registry from Maven Central (~120 MB of jars); later starts take a few seconds.
START_TIMEOUT_S = 900
STOP_TIMEOUT_S = 60


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def _failure(run_dir: Path, what: str, stdout: str, stderr: str) -> str:
    parts = [f"schema registry did not start ({what}); registry dir {run_dir}"]
    if stderr.strip():
        parts += ["--- registry.sh stderr (tail) ---", "\n".join(stderr.splitlines()[-60:])]
    if stdout.strip():
        parts += ["--- registry.sh stdout ---", stdout.strip()]
    log = _tail(run_dir / "registry.log")
    if log:
        parts += ["--- registry.log (tail) ---", log]
    return "\n".join(parts)


@pytest.fixture(scope="session")
def schema_registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a running registry's Confluent-compatible API (``http://127.0.0.1:<port>/apis/ccompat/v7``)."""
    existing = os.environ.get(URL_ENV)
    if existing:
        yield existing
        return

    run_dir = tmp_path_factory.mktemp("registry")
    cmd = ["bash", str(REGISTRY_SH)]
    try:
        try:
            proc = subprocess.run([*cmd, "start", str(run_dir)], capture_output=True, text=True,
                                  timeout=START_TIMEOUT_S, check=False)  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            pytest.fail(_failure(run_dir, f"timed out after {START_TIMEOUT_S}s", _text(exc.stdout), _text(exc.stderr)),
                        pytrace=False)  # fmt: skip
        if proc.returncode != 0:
            pytest.fail(_failure(run_dir, f"registry.sh exit code {proc.returncode}", proc.stdout, proc.stderr),
                        pytrace=False)  # fmt: skip
        lines = [line for line in proc.stdout.splitlines() if line.startswith(LINE)]
        if not lines:
            pytest.fail(_failure(run_dir, f"no {LINE} line", proc.stdout, proc.stderr), pytrace=False)
        yield lines[-1].removeprefix(LINE)
    finally:
        # Also after a failed or timed-out start: registry.sh writes registry.pid before waiting for readiness.
        subprocess.run([*cmd, "stop", str(run_dir)], capture_output=True, timeout=STOP_TIMEOUT_S, check=False)
