"""The evaluator and notifier services as separate processes on the real broker.

Three detectors, two deliveries; in the second, WFI02's dark current is raised by 50%. The
evaluator's ``change`` evaluations are incomplete in the first delivery and fail for WFI02 in the
second, also when the evaluator was killed (SIGTERM or SIGKILL) between the deliveries and lost its
state directory: the history comes back from the changelog topic. The notifier sends exactly one
alert and one webhook POST for the second delivery. A message that is not Avro goes to the
dead-letter topic and the partition moves on.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from rdmt_core import avro
from rdmt_core.config import load_config
from rdmt_core.evaluators import History
from rdmt_core.monitors import get_monitor
from rdmt_core.records import FileIdentity
from rdmt_core.results import file_result
from rdmt_core.streaming.monitor_service import metric_record
from rdmt_core.streaming.topics import create_topics, topic_specs
from rdmt_core.synthetic import Anomaly, dark_arrays

DETECTORS = ("WFI01", "WFI02", "WFI03")
RAISED = "WFI02"
TIMEOUT_S = 60


def _metric_records(day: int) -> list[dict]:
    """Delivery ``d<day>``: one dark metric record per detector (256x256 synthetic arrays)."""
    config, dark = load_config(), get_monitor("dark")
    records = []
    for detector in DETECTORS:
        scale = 1.5 if (day == 2 and detector == RAISED) else 1.0
        rate, _, dq = dark_arrays(detector, side=256, delivery_seed=day, anomaly=Anomaly(dark_scale=scale))
        identity = FileIdentity(f"synthetic://{detector}/{day}", "DARK", detector, datetime(2026, day, 1))
        result = file_result(dark, {"dark_slope": rate, "dq": dq}, identity, config, History(), f"run-{day}")
        request = {"delivery_id": f"d{day}", "n_files_in_delivery": len(DETECTORS)}
        records.append(metric_record(result, request, datetime.now(UTC)))
    return records


class Services:
    """Topics under a unique prefix, service processes, and readers of the output topics."""

    def __init__(self, bootstrap: str, tmp_path: Path, webhook_url: str | None = None) -> None:
        self.bootstrap = bootstrap
        self.prefix = f"test-{uuid.uuid4().hex[:8]}"
        self.state_dir = tmp_path / "state"
        self.logs = tmp_path
        self.procs: list[subprocess.Popen] = []
        create_topics(AdminClient({"bootstrap.servers": bootstrap}), self.prefix, topic_specs())
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RDMT_")} | {
            "RDMT_KAFKA_BOOTSTRAP": bootstrap,
            "RDMT_TOPIC_PREFIX": self.prefix,
            "RDMT_STATE_DIR": str(self.state_dir),
        }
        if webhook_url:
            self.env["RDMT_SLACK_WEBHOOK_URL"] = webhook_url
        self.producer = Producer({"bootstrap.servers": bootstrap})
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"{self.prefix}-test", "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        })  # fmt: skip
        self.consumer.subscribe([f"{self.prefix}.{t}" for t in ("evaluations", "alerts", "deadletter")])
        self.received: dict[str, list[dict]] = {"evaluation_record": [], "alert": [], "dead_letter": []}

    def start(self, module: str) -> subprocess.Popen:
        with open(self.logs / f"{module}-{len(self.procs)}.log", "w") as log:  # the child keeps its own copy
            proc = subprocess.Popen(
                [sys.executable, "-m", f"rdmt_core.streaming.{module}"], env=self.env, stdout=log, stderr=log
            )
        self.procs.append(proc)
        return proc

    def produce(self, records: list[dict]) -> None:
        for record in records:
            value = avro.encode("metric_record", record)
            self.producer.produce(f"{self.prefix}.metrics", value, key=record["detector"])
        self.producer.flush(10)

    def wait_for(self, name: str, n: int, timeout_s: float = TIMEOUT_S) -> list[dict]:
        """Read the output topics until ``n`` records of ``name`` have arrived in all."""
        deadline = time.monotonic() + timeout_s
        while len(self.received[name]) < n:
            if time.monotonic() > deadline:
                pytest.fail(f"{len(self.received[name])} of {n} {name} records after {timeout_s} s\n{self.log_tails()}")
            self.poll(1.0)
        return self.received[name]

    def poll(self, timeout_s: float) -> None:
        message = self.consumer.poll(timeout_s)
        if message is not None and not message.error():
            decoded = avro.decode(message.value())
            self.received[decoded.name].append(decoded.record)

    def drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.poll(0.5)

    def log_tails(self) -> str:
        return "\n".join(f"--- {p.name} ---\n" + "\n".join(p.read_text().splitlines()[-30:])
                         for p in sorted(self.logs.glob("*.log")))  # fmt: skip

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def close(self) -> None:
        for proc in self.procs:
            self.stop(proc)
        self.consumer.close()


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    """A local Slack-compatible webhook: its URL and the JSON bodies POSTed to it."""
    posts: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", posts
    finally:
        server.shutdown()
        server.server_close()


def _change(evaluation: dict) -> str:
    [block] = [b for b in evaluation["evaluations"] if b["evaluator"] == "change"
               and b["metric"] == "dark_rate_mean" and b["scale"] == "detector"]  # fmt: skip
    return block["status"][0]


def _changes(evaluations: list[dict], delivery: str) -> dict[str, str]:
    return {e["detector"]: _change(e) for e in evaluations if e["delivery_id"] == delivery}


def test_evaluations_dead_letter_and_one_alert(kafka_bootstrap: str, tmp_path: Path, webhook) -> None:
    url, posts = webhook
    services = Services(kafka_bootstrap, tmp_path, webhook_url=url)
    try:
        services.start("evaluator_service")
        services.start("notifier_service")
        services.produce(_metric_records(1))
        services.producer.produce(f"{services.prefix}.metrics", b"not avro at all", key=b"WFI01")
        services.produce(_metric_records(2))

        evaluations = services.wait_for("evaluation_record", 6)
        assert _changes(evaluations, "d1") == dict.fromkeys(DETECTORS, "incomplete")
        assert _changes(evaluations, "d2") == {"WFI01": "pass", "WFI02": "fail", "WFI03": "pass"}
        [dead] = services.wait_for("dead_letter", 1)
        assert dead["value"] == b"not avro at all" and dead["service"] == "rdmt-evaluator"
        assert "not Avro single-object encoded" in dead["error"]

        [alert] = services.wait_for("alert", 1)
        deadline = time.monotonic() + 15
        while not posts and time.monotonic() < deadline:
            time.sleep(0.2)
        services.drain(4)  # nothing more may come: no second alert, no second POST
        assert len(services.received["alert"]) == 1 and len(services.received["evaluation_record"]) == 6
        assert alert["delivery_id"] == "d2" and alert["n_files"] == alert["n_files_expected"] == 3
        assert not alert["replay"]
        assert RAISED in [d["detector"] for d in alert["detectors"]]
        assert len(posts) == 1, services.log_tails()
        assert "d2" in posts[0]["text"] and RAISED in posts[0]["text"]
    finally:
        services.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_history_survives_restart_without_local_state(kafka_bootstrap: str, tmp_path: Path, sig: int) -> None:
    services = Services(kafka_bootstrap, tmp_path)
    try:
        first = services.start("evaluator_service")
        services.produce(_metric_records(1))
        services.wait_for("evaluation_record", 3)  # read_committed: the state changelog is committed too
        services.stop(first, sig)
        shutil.rmtree(services.state_dir)

        services.start("evaluator_service")
        services.produce(_metric_records(2))
        evaluations = services.wait_for("evaluation_record", 6)
        services.drain(2)
        assert len(services.received["evaluation_record"]) == 6  # nothing evaluated twice
        assert _changes(evaluations, "d2") == {"WFI01": "pass", "WFI02": "fail", "WFI03": "pass"}
    finally:
        services.close()
