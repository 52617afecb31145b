"""A delivery that never completes alerts after ``RDMT_ALERT_TIMEOUT_S``, with no other traffic.

The five services run as processes on the real broker (:mod:`.services`). One CRDS delivery of six
reduced-size darks: WFI02's dark current is 300 times the normal one (it fails the mission and SOC
limits), and WFI06's file is truncated, so the monitor dead-letters its request and only five of the
six results ever reach the notifier. Nothing else is published: only the notifier's heartbeat ticks
can close the delivery once its timeout has passed.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from rdmt_core.synthetic import Anomaly, write_dark_delivery

from .services import SERVICES, Pipeline, Webhook, wait_until

ALERT_TIMEOUT_S = 5.0
TICK_S = max(1.0, ALERT_TIMEOUT_S / 4)
COMMIT_S = 1.0  # RDMT_COMMIT_INTERVAL_S: a record written in a transaction is read after the writer's checkpoint
DETECTORS = ("WFI01", "WFI02", "WFI03", "WFI04", "WFI05", "WFI06")
FAILING, CORRUPT = "WFI02", "WFI06"


def test_a_delivery_with_a_dead_lettered_file_alerts_after_the_timeout(kafka_bootstrap: str, tmp_path: Path) -> None:
    files = write_dark_delivery(tmp_path / "delivery", datetime(2026, 3, 1), side=256, delivery_seed=21,
                                detectors=DETECTORS, anomalies={FAILING: Anomaly(dark_scale=300.0)})  # fmt: skip
    corrupt = files[DETECTORS.index(CORRUPT)]  # one file per detector, in order
    data = corrupt.read_bytes()
    corrupt.write_bytes(data[: len(data) * 2 // 3])  # the tree is intact, the array blocks are cut

    webhook = Webhook()
    p = Pipeline(kafka_bootstrap, tmp_path / "run", webhook.url, ecsv=False)
    try:
        for service in SERVICES:
            p.start(service, **({"RDMT_ALERT_TIMEOUT_S": str(ALERT_TIMEOUT_S)} if service == "notifier" else {}))
        for service in SERVICES:
            p.wait_ready(service)
        evaluations, alerts, dead = p.reader("evaluations"), p.reader("alerts"), p.reader("deadletter")
        p.publish_crds("CRDS-LOST-1", files)  # the only message the test publishes

        [letter] = dead.read_until(lambda r: len(r) >= 1, "the corrupt file's dead letter", logs=p.log_tails)
        assert letter["error_type"] == "rdmt_core.errors.InputError" and str(corrupt) in letter["error"]
        evaluations.read_until(lambda r: len(r) >= len(DETECTORS) - 1, "5 evaluations", logs=p.log_tails)
        alerts.read_until(lambda r: len(r) >= 1, "the alert", timeout_s=ALERT_TIMEOUT_S + 30, logs=p.log_tails)
        arrived_s = time.time()
        alerts.drain(quiet_s=3 * TICK_S)  # later ticks do not alert again

        [alert] = alerts.records
        assert alert["delivery_id"] == "CRDS-LOST-1" and not alert["replay"]
        assert (alert["n_files"], alert["n_files_expected"]) == (len(DETECTORS) - 1, len(DETECTORS))
        assert [d["detector"] for d in alert["detectors"]] == [FAILING]
        assert {"mission", "soc"} <= set(alert["detectors"][0]["fail_counts"])

        first_ms = min(r.timestamp_ms for r in evaluations.received)
        delay_s = (alerts.received[0].timestamp_ms - first_ms) / 1000
        print(f"first evaluation to alert: {delay_s:.2f} s (Kafka timestamps); the test read the alert "
              f"{arrived_s - first_ms / 1000:.2f} s after the first evaluation")  # fmt: skip
        # The notifier starts the clock when it groups the first result: after the evaluator's checkpoint
        # (the evaluation is read committed) and its own (the repartitioned result too). Then a tick comes
        # every TICK_S; 2 s of slack for processing and scheduling. Without ticks no alert comes at all.
        assert ALERT_TIMEOUT_S <= delay_s <= ALERT_TIMEOUT_S + 2 * COMMIT_S + TICK_S + 2.0, delay_s

        [post] = wait_until(lambda: webhook.posts, "the webhook POST", logs=p.log_tails)
        assert "CRDS-LOST-1" in post["text"] and FAILING in post["text"]
        assert f"Only {len(DETECTORS) - 1} of {len(DETECTORS)} results had arrived" in post["text"]
        assert not any(d in post["text"] for d in DETECTORS if d != FAILING)
        assert p.stop("notifier") == 0, p.log_tails()  # SIGTERM stops the ticker too
    finally:
        p.stop_all()
        webhook.close()
        print(p.log_tails())
