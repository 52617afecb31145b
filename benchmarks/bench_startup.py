"""Start-up benchmark: `rdmt --help`, and each service from its start to /readyz answering 200.

`rdmt --help` is timed as a whole process (best and median of 7 runs). Each service is started by the tests'
Kafka harness (tests/integration/services.py) on a real broker (started with deploy/kafka/broker.sh, or the one
in RDMT_KAFKA_BOOTSTRAP) and timed from the process start until its /readyz answers 200: the imports, the
configuration, the Kafka clients and the consumer group's first assignment. Targets (issue 8): --help under
0.5 s, a service ready under 2 s, on an idle machine.

Run with `make bench` or `python benchmarks/bench_startup.py [--runs N]`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench_burst import BROKER_SH, RDMT, ROOT, start_broker

sys.path.insert(0, str(ROOT))
from tests.integration.services import Pipeline

SERVICES = ("ingest", "monitor", "evaluator", "sink", "notifier")


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return response.status == 200
    except (OSError, urllib.error.HTTPError):
        return False


def help_times(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([RDMT, "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def ready_time(pipeline: Pipeline, service: str, name: str, timeout_s: float = 60) -> float:
    # The harness gives monitors a static member id (for its kill tests): a stopped static member stays in the
    # group until its session times out, which the next start would wait for. Dynamic membership here.
    dynamic = {"RDMT_KAFKA_GROUP_PROTOCOL": "consumer", "RDMT_KAFKA_GROUP_INSTANCE_ID": ""}
    start = time.perf_counter()
    proc = pipeline.start(service, name, **(dynamic if service == "monitor" else {}))
    port = pipeline.ports[name]
    while not _ready(port):
        if proc.poll() is not None or time.perf_counter() - start > timeout_s:
            raise RuntimeError(f"{name} not ready:\n{pipeline.log_tails()}")
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    pipeline.stop(name)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="Starts per service (default 3).")
    args = parser.parse_args()
    times = help_times(7)
    print(f"rdmt --help: best {min(times):.2f} s, median {statistics.median(times):.2f} s (7 runs; target 0.5 s)")
    with tempfile.TemporaryDirectory(prefix="rdmt-bench-startup-") as tmp:
        workdir = Path(tmp)
        bootstrap, kafka_dir = start_broker(workdir)
        pipeline = Pipeline(bootstrap, workdir / "run", webhook_url="")
        try:
            print(f"{'service':10s} {'best':>6s} {'median':>7s}   (s from start to /readyz 200, {args.runs} starts)")
            for service in SERVICES:
                ready = [ready_time(pipeline, service, f"{service}-{i}") for i in range(args.runs)]
                print(f"{service:10s} {min(ready):6.2f} {statistics.median(ready):7.2f}")
        finally:
            pipeline.stop_all()
            if kafka_dir is not None:
                subprocess.run([str(BROKER_SH), "stop", str(kafka_dir)], capture_output=True, timeout=60)
    print("target: a service ready within 2 s of its start")


if __name__ == "__main__":
    main()
