"""Pytest plugin: a real single-node Kafka broker for the test session.

``kafka_bootstrap`` returns ``RDMT_KAFKA_BOOTSTRAP`` when it is set (CI started a broker with
``deploy/kafka/broker.sh start``); otherwise it starts one with that script in a temporary directory and
stops it when the session ends. A broker that cannot start fails the tests that use it (no skip), with the
tail of the broker log in the failure. See docs/kafka-broker.md.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BROKER_SH = REPO / "deploy" / "kafka" / "broker.sh"
BOOTSTRAP_ENV = "RDMT_KAFKA_BOOTSTRAP"
# The first start resolves ~45 MB of jars from Maven Central; later starts take a few seconds.
START_TIMEOUT_S = 600
STOP_TIMEOUT_S = 60


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _failure_report(run_dir: Path, what: str, stdout: str, stderr: str) -> str:
    parts = [f"Kafka broker did not start ({what}); broker dir {run_dir}"]
    if stderr.strip():
        parts += ["--- broker.sh stderr (tail) ---", "\n".join(stderr.splitlines()[-60:])]
    if stdout.strip():
        parts += ["--- broker.sh stdout ---", stdout.strip()]
    for log in ("server.log", "broker.out"):
        if f"tail of {run_dir / 'logs' / log}" in stderr:
            continue  # broker.sh already showed it
        tail = _tail(run_dir / "logs" / log)
        if tail:
            parts += [f"--- logs/{log} (tail) ---", tail]
    return "\n".join(parts)


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a running Kafka 4.x broker (KRaft, single node, auto topic creation off)."""
    existing = os.environ.get(BOOTSTRAP_ENV)
    if existing:
        yield existing
        return

    run_dir = tmp_path_factory.mktemp("kafka")
    cmd = ["bash", str(BROKER_SH)]
    try:
        try:
            proc = subprocess.run(
                [*cmd, "start", str(run_dir)], capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(
                _failure_report(run_dir, f"timed out after {START_TIMEOUT_S}s", _text(exc.stdout), _text(exc.stderr)),
                pytrace=False,
            )
        if proc.returncode != 0:
            pytest.fail(
                _failure_report(run_dir, f"broker.sh exit code {proc.returncode}", proc.stdout, proc.stderr),
                pytrace=False,
            )
        prefix = f"{BOOTSTRAP_ENV}="
        lines = [line for line in proc.stdout.splitlines() if line.startswith(prefix)]
        if not lines:
            pytest.fail(_failure_report(run_dir, f"no {prefix} line", proc.stdout, proc.stderr), pytrace=False)
        yield lines[-1].removeprefix(prefix)
    finally:
        # Also after a failed or timed-out start: broker.sh writes broker.pid before waiting for readiness.
        subprocess.run([*cmd, "stop", str(run_dir)], capture_output=True, timeout=STOP_TIMEOUT_S, check=False)
