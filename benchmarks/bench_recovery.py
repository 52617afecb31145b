"""Recovery benchmark: how long the pipeline takes to move again after a SIGKILL of each service.

For each service in turn, on a real broker (deploy/kafka/broker.sh, or RDMT_KAFKA_BOOTSTRAP) with the five
services of the tests' harness (tests/integration/services.py) running as deployed by the Helm chart
(librdkafka services with static membership: classic protocol, a stable group.instance.id): one delivery of
3 small dark files goes through; the service is killed (SIGKILL) and started again at once; a second delivery
is published. The figure is the time from the restart to the second delivery's last evaluation committed by
the sink's group: what a crash costs, including the rebalance.

Run with `make bench` or `python benchmarks/bench_recovery.py`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from bench_burst import BROKER_SH, ROOT, start_broker

sys.path.insert(0, str(ROOT))
from tests.integration.services import Pipeline

SERVICES = ("ingest", "monitor", "evaluator", "sink", "notifier")
STATIC = {"RDMT_KAFKA_GROUP_PROTOCOL": "classic"}  # plus the instance id per service, as the Helm chart sets them


def _files(directory: Path, when: datetime) -> list[Path]:
    from rdmt_core.synthetic import write_dark_delivery

    return write_dark_delivery(directory, when, side=256, detectors=("WFI01", "WFI02", "WFI03"))


def _start(p: Pipeline, service: str) -> None:
    static = STATIC | {"RDMT_KAFKA_GROUP_INSTANCE_ID": f"bench-{service}"} if service in ("ingest", "sink") else {}
    p.start(service, **static)


def recovery_s(bootstrap: str, workdir: Path, victim: str) -> float:
    p = Pipeline(bootstrap, workdir / victim, webhook_url="", ecsv=False)
    try:
        for service in SERVICES:
            _start(p, service)
        for service in SERVICES:
            p.wait_ready(service)
        first = _files(workdir / f"{victim}-a", datetime(2026, 6, 1))
        p.publish_crds(f"{victim}-A", first)
        evaluations = p.reader("evaluations")
        evaluations.read_until(lambda r: len(r) >= 3, "the first delivery", timeout_s=120, logs=p.log_tails)
        p.wait_committed("sink", "evaluations", evaluations.next_offsets(), timeout_s=120)
        p.kill(victim)
        restarted = time.monotonic()
        _start(p, victim)
        second = _files(workdir / f"{victim}-b", datetime(2026, 6, 1) + timedelta(days=1))
        p.publish_crds(f"{victim}-B", second)
        evaluations.read_until(lambda r: len(r) >= 6, "the second delivery", timeout_s=180, logs=p.log_tails)
        p.wait_committed("sink", "evaluations", evaluations.next_offsets(), timeout_s=180)
        return time.monotonic() - restarted
    finally:
        p.stop_all()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="rdmt-bench-recovery-") as tmp:
        workdir = Path(tmp)
        bootstrap, kafka_dir = start_broker(workdir)
        try:
            print("SIGKILL of one service, restarted at once: seconds until a new delivery of 3 files is stored")
            for victim in SERVICES:
                print(f"  {victim:10s} {recovery_s(bootstrap, workdir, victim):6.1f} s", flush=True)
        finally:
            if kafka_dir is not None:
                subprocess.run([str(BROKER_SH), "stop", str(kafka_dir)], capture_output=True, timeout=60)


if __name__ == "__main__":
    main()
