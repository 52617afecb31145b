"""A server the test session starts with one of the repository's scripts and always stops.

``deploy/kafka/broker.sh`` and ``deploy/registry/registry.sh`` share one interface
(``start DIR`` prints ``NAME=value`` when the server is ready; ``stop DIR``), so the session
fixtures in :mod:`tests.kafka_broker` and :mod:`tests.schema_registry` share this one runner.
A server that cannot start fails the tests that use it (no skip), with the script's output and the
tails of the server's logs in the failure.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Daemon:
    """How to run one server: its script, the line it prints when ready, its logs, its time limits."""

    what: str  # "Kafka broker"
    script: Path
    ready_line: str  # "RDMT_KAFKA_BOOTSTRAP="
    logs: tuple[str, ...]  # relative to the run directory
    start_timeout_s: float
    stop_timeout_s: float = 60


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def failure_report(daemon: Daemon, run_dir: Path, what: str, stdout: str, stderr: str) -> str:
    name = daemon.script.name
    parts = [f"{daemon.what} did not start ({what}); run dir {run_dir}"]
    if stderr.strip():
        parts += [f"--- {name} stderr (tail) ---", "\n".join(stderr.splitlines()[-60:])]
    if stdout.strip():
        parts += [f"--- {name} stdout ---", stdout.strip()]
    for log in daemon.logs:
        if f"tail of {run_dir / log}" in stderr:
            continue  # the script already showed it
        text = tail(run_dir / log)
        if text:
            parts += [f"--- {log} (tail) ---", text]
    return "\n".join(parts)


@contextmanager
def running(daemon: Daemon, run_dir: Path) -> Iterator[str]:
    """Start ``daemon`` in ``run_dir``, yield the value of its ready line, and stop it whatever happens."""
    cmd = ["bash", str(daemon.script)]
    try:
        try:
            proc = subprocess.run([*cmd, "start", str(run_dir)], capture_output=True, text=True,
                                  timeout=daemon.start_timeout_s, check=False)  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            report = failure_report(daemon, run_dir, f"timed out after {daemon.start_timeout_s:g}s",
                                    _text(exc.stdout), _text(exc.stderr))  # fmt: skip
            pytest.fail(report, pytrace=False)
        if proc.returncode != 0:
            what = f"{daemon.script.name} exit code {proc.returncode}"
            pytest.fail(failure_report(daemon, run_dir, what, proc.stdout, proc.stderr), pytrace=False)
        lines = [line for line in proc.stdout.splitlines() if line.startswith(daemon.ready_line)]
        if not lines:
            what = f"no {daemon.ready_line} line"
            pytest.fail(failure_report(daemon, run_dir, what, proc.stdout, proc.stderr), pytrace=False)
        yield lines[-1].removeprefix(daemon.ready_line)
    finally:
        # Also after a failed or timed-out start: the script writes its pid file before waiting for readiness.
        subprocess.run([*cmd, "stop", str(run_dir)], capture_output=True, timeout=daemon.stop_timeout_s, check=False)
