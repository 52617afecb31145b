"""End to end: ingest -> monitor -> evaluator -> sink -> notifier, five processes on the real broker.

Each test runs its own pipeline (unique topic prefix, chDB store, state directory, local webhook) on
one CRDS delivery of 18 reduced-size darks in which WFI07's dark current is 300 times the normal one,
so its mean fails the mission and SOC limits (1.0 DN/s) at detector scale. A test knows the pipeline
has settled from the consumer groups' committed offsets, then stops the sink so that the test
process can open the chDB store.

1. An undisturbed run: the store holds every metric, evaluation and file exactly once; one alert
   names WFI07; one webhook POST.
2. The monitor is killed (SIGKILL) after its first metric record and restarted: the store is
   identical to the undisturbed run's.
3. The delivery is replayed under release ``dr1``: both releases are in the store, equal; the
   replay's alert is not sent.
4. On a broker of the test's own, the broker is stopped mid-delivery and started again: every service
   is still running, the last evaluation is stored within 60 s of the broker being back, and the
   store is identical to the undisturbed run's.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from rdmt_core.geometry import DETECTORS
from rdmt_core.monitors import get_monitor
from rdmt_core.store import open_store
from rdmt_core.synthetic import Anomaly, write_dark_delivery

from ..daemons import running
from ..kafka_broker import BROKER
from .services import RDMT, TIMEOUT_S, Pipeline, Reader, Webhook, wait_until

USEAFTER = datetime(2026, 3, 1)
ANOMALOUS = "WFI07"
N_METRICS = len(get_monitor("dark").metric_specs)  # its own metrics and the pixel changes
N_VALUES = 1 + 32 + 1024  # detector, amplifiers, super-pixels
METRIC_COLUMNS = ["release", "detector", "metric", "scale", "cell", "value"]
EVALUATION_COLUMNS = ["release", "detector", "metric", "scale", "cell", "evaluator", "status"]


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """18 darks (256x256); WFI07's dark current is 300 times the normal ~0.005 DN/s."""
    return write_dark_delivery(tmp_path_factory.mktemp("delivery"), USEAFTER, side=256, delivery_seed=11,
                               anomalies={ANOMALOUS: Anomaly(dark_scale=300.0)})


@dataclass
class Run:
    """What a settled pipeline left: the records on its topics, the webhook POSTs, the store tables."""

    evaluations: list[dict]
    alerts: list[dict]
    posts: list[dict]
    metric_records: list[dict]
    metrics: pd.DataFrame  # METRIC_COLUMNS, sorted
    evaluation_rows: pd.DataFrame  # EVALUATION_COLUMNS, sorted
    files: pd.DataFrame
    ecsv: list[Path]


@pytest.fixture
def pipeline(kafka_bootstrap: str, tmp_path: Path) -> Iterator[tuple[Pipeline, Webhook]]:
    webhook = Webhook()
    running = Pipeline(kafka_bootstrap, tmp_path / "run", webhook.url, ecsv=False)  # ECSV: checked in test 1
    try:
        yield running, webhook
    finally:
        running.stop_all()
        webhook.close()
        print(running.log_tails())  # shown when the test failed


def settle(p: Pipeline, evaluations: Reader, n_expected: int, n_alerts: int, webhook: Webhook,
           n_posts: int) -> list[dict]:
    """Wait until every service has done all its work: evaluations stored, alerts grouped and sent; the alerts."""
    evaluations.read_until(lambda r: len({(e["release"], e["file_key"]) for e in r}) >= n_expected,
                           f"{n_expected} distinct evaluated files", logs=p.log_tails)
    p.wait_committed("monitor", "requests.dark")  # every request done ...
    p.wait_committed("evaluator", "metrics")  # ... every metric record evaluated (and its output committed)
    evaluations.drain(quiet_s=1.0)
    stored = evaluations.next_offsets()
    p.wait_committed("sink", "evaluations", stored)  # ... every evaluation stored
    p.wait_committed("notifier", "evaluations", stored)  # ... and grouped
    alerts = p.reader("alerts")
    alerts.read_until(lambda r: len(r) >= n_alerts, f"{n_alerts} alert(s)", logs=p.log_tails)
    p.wait_committed("notifier", "alerts", alerts.next_offsets())  # every alert sent (or not: a replay)
    wait_until(lambda: len(webhook.posts) >= n_posts, f"{n_posts} webhook POST(s)", logs=p.log_tails)
    return alerts.drain(quiet_s=2.0)  # nothing more may come


def finish(p: Pipeline, metrics: Reader, evaluations: Reader, alerts: list[dict], webhook: Webhook) -> Run:
    """Stop the sink (chDB is one process's) and read the store."""
    assert p.stop("sink") == 0, p.log_tails()
    store = open_store(p.store_url)
    try:
        db = store.db
        metric_rows = store.sql(
            f"SELECT release, detector, metric, toString(scale) AS scale, cell, value FROM {db}.metrics"
        ).sort_values(METRIC_COLUMNS[:-1]).reset_index(drop=True)
        evaluation_rows = store.sql(
            f"SELECT release, detector, metric, toString(scale) AS scale, cell, evaluator, toString(status) AS status "
            f"FROM {db}.evaluations"
        ).sort_values(EVALUATION_COLUMNS[:-1]).reset_index(drop=True)
        files = store.sql(f"SELECT release, detector, file_key, run_id, n_metrics, n_evaluations, toString(status) "
                          f"AS status FROM {db}.files ORDER BY release, detector")
    finally:
        store.close()
    return Run(
        evaluations=evaluations.records,
        alerts=alerts,
        posts=list(webhook.posts),
        metric_records=metrics.drain(quiet_s=1.0),
        metrics=metric_rows,
        evaluation_rows=evaluation_rows,
        files=files,
        ecsv=sorted((p.root / "out" / "ecsv").glob("*.ecsv")),
    )


@pytest.fixture(scope="module")
def undisturbed(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, delivery: list[Path]) -> Run:
    """The delivery through an undisturbed pipeline (test 1 checks it; test 2 compares with it)."""
    webhook = Webhook()
    p = Pipeline(kafka_bootstrap, tmp_path_factory.mktemp("undisturbed"), webhook.url)
    try:
        p.start_all()
        metrics, evaluations = p.reader("metrics"), p.reader("evaluations")
        p.publish_crds("CRDS-E2E-1", delivery)
        alerts = settle(p, evaluations, n_expected=18, n_alerts=1, webhook=webhook, n_posts=1)
        return finish(p, metrics, evaluations, alerts, webhook)
    finally:
        p.stop_all()
        webhook.close()
        print(p.log_tails())  # shown when the first test using it failed


def _n_evaluated_cells(records: list[dict]) -> Counter[str]:
    """Evaluation rows the records carry, per detector."""
    return Counter({r["detector"]: sum(len(b["cells"]) for b in r["evaluations"]) for r in records})


def test_delivery_of_18_darks_is_stored_once_and_alerts_once(undisturbed: Run) -> None:
    run = undisturbed
    assert len(run.metric_records) == 18 and len(run.evaluations) == 18
    assert sorted(r["detector"] for r in run.evaluations) == sorted(DETECTORS)
    assert {(r["delivery_id"], r["release"], r["n_files_in_delivery"]) for r in run.evaluations} == {
        ("CRDS-E2E-1", "live", 18)
    }

    per_detector = run.metrics.groupby("detector", observed=True).size().to_dict()
    assert per_detector == dict.fromkeys(DETECTORS, N_METRICS * N_VALUES)
    assert set(run.metrics.release) == {"live"}
    per_detector = run.evaluation_rows.groupby("detector", observed=True).size().to_dict()
    assert per_detector == dict(_n_evaluated_cells(run.evaluations))
    assert len(run.evaluation_rows) == sum(_n_evaluated_cells(run.evaluations).values()) > 0
    assert len(run.files) == 18 and sorted(run.files.detector) == sorted(DETECTORS)
    assert set(run.files.n_metrics) == {N_METRICS * N_VALUES}
    assert len(run.files.run_id.unique()) == 18  # one run id (request id) per file
    failed = run.files[run.files.status == "fail"]
    assert list(failed.detector) == [ANOMALOUS]
    assert len(run.ecsv) == 18

    # The anomalous detector's mean fails both limits at detector scale; nothing else fails anywhere.
    fails = run.evaluation_rows[run.evaluation_rows.status == "fail"]
    assert set(fails.detector) == {ANOMALOUS}
    whole = fails[(fails.scale == "detector") & (fails.metric == "dark_rate_mean")]
    assert sorted(whole.evaluator) == ["mission", "soc"]

    [alert] = run.alerts
    assert alert["delivery_id"] == "CRDS-E2E-1" and alert["release"] == "live" and not alert["replay"]
    assert alert["n_files"] == alert["n_files_expected"] == 18
    assert [d["detector"] for d in alert["detectors"]] == [ANOMALOUS]
    [detector] = alert["detectors"]
    assert {"mission", "soc"} <= set(detector["fail_counts"])
    assert detector["top_failures"][0]["scale"] == "detector"

    [post] = run.posts
    assert "CRDS-E2E-1" in post["text"] and ANOMALOUS in post["text"]
    assert not any(d in post["text"] for d in DETECTORS if d != ANOMALOUS)


def test_monitor_killed_mid_delivery_loses_and_duplicates_nothing(
    pipeline: tuple[Pipeline, Webhook], delivery: list[Path], undisturbed: Run
) -> None:
    p, webhook = pipeline
    p.start_all()
    metrics, evaluations = p.reader("metrics"), p.reader("evaluations")
    p.publish_crds("CRDS-E2E-2", delivery)
    metrics.read_until(lambda r: len(r) >= 1, "the first metric record", logs=p.log_tails)
    p.kill("monitor")
    done_before = {r["detector"] for r in metrics.drain(quiet_s=0.5)}
    assert 1 <= len(done_before) < 18, "the monitor finished before it was killed"

    p.start("monitor")
    alerts = settle(p, evaluations, n_expected=18, n_alerts=1, webhook=webhook, n_posts=1)
    run = finish(p, metrics, evaluations, alerts, webhook)

    assert {r["detector"] for r in run.metric_records} == set(DETECTORS)
    assert len(run.files) == 18
    pd.testing.assert_frame_equal(run.metrics, undisturbed.metrics)
    pd.testing.assert_frame_equal(run.evaluation_rows, undisturbed.evaluation_rows)
    [alert] = run.alerts  # a redelivered result does not alert again
    assert [d["detector"] for d in alert["detectors"]] == [ANOMALOUS]
    assert len(run.posts) == 1


def _utc_seconds(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def test_replay_stores_a_second_release_and_does_not_notify(
    pipeline: tuple[Pipeline, Webhook], delivery: list[Path]
) -> None:
    p, webhook = pipeline
    p.start_all()
    metrics, evaluations = p.reader("metrics"), p.reader("evaluations")
    before = datetime.now(UTC) - timedelta(seconds=2)
    p.publish_crds("CRDS-E2E-3", delivery)
    settle(p, evaluations, n_expected=18, n_alerts=1, webhook=webhook, n_posts=1)
    after = datetime.now(UTC) + timedelta(seconds=2)

    out = subprocess.run([RDMT, "replay", "--from", _utc_seconds(before), "--to", _utc_seconds(after),
                          "--release", "dr1", "--monitor", "dark"],
                         env=p.env, check=True, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert f"18 requests replayed on {p.topic('requests.dark')}" in out.stdout, out.stdout + out.stderr
    alerts = settle(p, evaluations, n_expected=36, n_alerts=2, webhook=webhook, n_posts=1)
    run = finish(p, metrics, evaluations, alerts, webhook)

    live_alert, replay_alert = run.alerts
    assert not live_alert["replay"] and replay_alert["replay"]
    assert replay_alert["release"] == "dr1" and replay_alert["delivery_id"] == "dr1:CRDS-E2E-3"
    assert [d["detector"] for d in replay_alert["detectors"]] == [ANOMALOUS]
    [post] = run.posts  # the live alert's; the replay's is not sent
    assert "CRDS-E2E-3" in post["text"] and "replay" not in post["text"]

    counts = run.metrics.groupby(["release", "detector"], observed=True).size().to_dict()
    assert counts == {(release, d): N_METRICS * N_VALUES for release in ("dr1", "live") for d in DETECTORS}
    live, dr1 = (run.metrics[run.metrics.release == r].drop(columns="release").reset_index(drop=True)
                 for r in ("live", "dr1"))  # fmt: skip
    pd.testing.assert_frame_equal(live, dr1)
    assert sorted(run.files.release) == ["dr1"] * 18 + ["live"] * 18

    store = open_store(p.store_url)  # the two releases side by side, in SQL
    try:
        both = store.sql(
            f"SELECT detector, countIf(release = 'live') AS n_live, countIf(release = 'dr1') AS n_dr1, "
            f"avgIf(value, release = 'live' AND scale = 'detector') AS live_mean, "
            f"avgIf(value, release = 'dr1' AND scale = 'detector') AS dr1_mean "
            f"FROM {store.db}.metrics WHERE metric = 'dark_rate_mean' GROUP BY detector ORDER BY detector"
        )
    finally:
        store.close()
    assert list(both.detector) == sorted(DETECTORS)
    assert (both.n_live == N_VALUES).all() and (both.n_dr1 == N_VALUES).all()
    assert (both.live_mean == both.dr1_mean).all()
    assert both.set_index("detector").live_mean[ANOMALOUS] > 1.0


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A broker of the test's own, which it may restart (the session's is shared): bootstrap and run directory."""
    run_dir = tmp_path_factory.mktemp("own-kafka")
    with running(BROKER, run_dir) as bootstrap:
        _warm_up(bootstrap)
        yield bootstrap, run_dir


def _warm_up(bootstrap: str) -> None:
    """Have a fresh broker create its group and transaction coordinators' topics before the services start."""
    from confluent_kafka import Consumer, Producer

    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "warm-up"})
    producer.init_transactions(120)
    producer.begin_transaction()
    producer.commit_transaction(60)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "warm-up"})
    consumer.list_topics(timeout=30)
    consumer.close()


def test_every_service_survives_a_broker_restart_during_a_delivery(
    own_broker: tuple[str, Path], tmp_path: Path, delivery: list[Path], undisturbed: Run
) -> None:
    """The broker stops mid-delivery and comes back: no service exits, and the tables equal an undisturbed run."""
    bootstrap, run_dir = own_broker
    webhook = Webhook()
    p = Pipeline(bootstrap, tmp_path / "run", webhook.url, ecsv=False)
    script = ["bash", str(BROKER.script)]
    try:
        p.start_all()
        metrics, evaluations = p.reader("metrics"), p.reader("evaluations")
        p.publish_crds("CRDS-E2E-R", delivery)
        metrics.read_until(lambda r: len(r) >= 1, "the first metric record", logs=p.log_tails)
        subprocess.run([*script, "stop", str(run_dir)], check=True, capture_output=True, timeout=120)
        time.sleep(5)  # the services see the broker gone
        p.check_running()
        subprocess.run([*script, "start", str(run_dir)], check=True, capture_output=True, timeout=300)
        back = time.monotonic()
        alerts = settle(p, evaluations, n_expected=18, n_alerts=1, webhook=webhook, n_posts=1)
        stored_after_s = time.monotonic() - back
        p.check_running()  # every service is still the process that was started
        assert len(p.procs) == 5 and all(proc.poll() is None for proc in p.procs.values())
        run = finish(p, metrics, evaluations, alerts, webhook)
    finally:
        p.stop_all()
        webhook.close()
        print(p.log_tails(60))
    print(f"last evaluation stored and alerted {stored_after_s:.1f} s after the broker was back")
    assert stored_after_s < 60
    assert len(run.files) == 18
    pd.testing.assert_frame_equal(run.metrics, undisturbed.metrics)
    pd.testing.assert_frame_equal(run.evaluation_rows, undisturbed.evaluation_rows)
    [alert] = run.alerts
    assert [d["detector"] for d in alert["detectors"]] == [ANOMALOUS]
