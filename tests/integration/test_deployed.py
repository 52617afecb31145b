"""Deployed as documented: what compose and Helm pass is what the services run with, and no failure goes unalerted.

1. Every service started with the environment and configuration file that docker-compose.yml and the Helm chart
   give it (rendered from the real files) reports, with ``--print-settings``, the settings the deployment meant:
   the store URL (a ClickHouse server, never the embedded default), the broker, the topic prefix, the state
   directory, the metrics address and the log level.
2. The sink with a store that cannot be reached waits for it: live, not ready (``/readyz`` names the store), and
   nothing is written anywhere else.
3. A failing result that arrives after its delivery was closed by the alert timeout (the evaluator was down
   longer than the timeout) is alerted, as a follow-up alert of that delivery, on the topic and the webhook;
   and the notifier's ticks wait while results are pending on its source topic.
4. A service started before its broker keeps trying in the same process and works once the broker is up.
5. A monitor holding a message longer than `RDMT_MAX_PROCESSING_S` is not live (`/healthz` 503), then is again.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Producer

from rdmt_core import avro
from rdmt_core.config import load_config
from rdmt_core.evaluators import History
from rdmt_core.monitors import get_monitor
from rdmt_core.records import FileIdentity
from rdmt_core.results import file_result
from rdmt_core.synthetic import Anomaly, HotCluster, dark_arrays
from rdmt_core.wire import metric_record

from ..unit.test_deploy import _containers, _render
from .services import RDMT, Pipeline, Webhook, free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("ingest", "monitor", "evaluator", "sink", "notifier")
DEFAULT = re.compile(r"\$\{(\w+):-([^}]*)\}")


def _compose_environment(service: str) -> dict[str, str]:
    """The environment compose gives ``service`` when the user's environment sets nothing (the defaults)."""
    env = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"][service]["environment"]
    resolved = {}
    for name, value in env.items():
        if value is None:
            continue  # passed through only when set in the user's environment
        resolved[name] = DEFAULT.sub(lambda m: m.group(2), str(value))
    return resolved


def _helm_environment(component: str, rendered: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    [deployment] = [d for d in rendered["Deployment"]
                    if d["metadata"]["labels"]["app.kubernetes.io/component"] == component]  # fmt: skip
    [container] = _containers(deployment)
    env = {item["name"]: str(item["value"]) for item in container["env"] if "value" in item}
    if any(item.get("valueFrom", {}).get("fieldRef") for item in container["env"]):
        env["RDMT_KAFKA_GROUP_INSTANCE_ID"] = f"rdmt-{component}-0"  # the pod's name, from the downward API
    return env


def _settings(args: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RDMT_")}
    out = subprocess.run([RDMT, "service", *args, "--print-settings"], env=clean | env, cwd=cwd,
                         capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    return json.loads(out.stdout)


def test_every_service_runs_with_the_settings_compose_and_helm_give_it(tmp_path: Path) -> None:
    rendered = _render(None)
    helm_config = tmp_path / "helm-rdmt.yaml"
    [configmap] = [c for c in rendered["ConfigMap"] if "rdmt.yaml" in c["data"]
                   and "topics" not in c["metadata"]["name"]]  # fmt: skip
    helm_config.write_text(configmap["data"]["rdmt.yaml"])
    for service in SERVICES:
        args = ["monitor", "--monitor", "dark"] if service == "monitor" else [service]
        component = "monitor-dark" if service == "monitor" else service
        deployments = {
            "compose": (_compose_environment(component), REPO / "deploy" / "docker" / "rdmt.yaml"),
            "helm": (_helm_environment(component, rendered), helm_config),
        }
        for where, (env, config) in deployments.items():
            shown = _settings([*args, "--config", str(config)], env, tmp_path)
            what = f"{service} under {where}"
            assert shown["store_url"].startswith("clickhouse://") and "@" not in shown["store_url"].split("@")[0][
                len("clickhouse://"):].replace(":", ""), what  # fmt: skip
            assert shown["store_url"].split("://", 1)[1].split("@")[-1] == env["RDMT_STORE_URL"].split("@")[-1], what
            streaming = shown["streaming"]
            assert streaming["kafka"]["bootstrap.servers"] == env["RDMT_KAFKA_BOOTSTRAP"], what
            assert streaming["topic_prefix"] == env["RDMT_TOPIC_PREFIX"], what
            assert streaming["observability"]["metrics_host"] == env.get("RDMT_METRICS_HOST", "0.0.0.0"), what
            assert streaming["observability"]["log_level"] == env.get("RDMT_LOG_LEVEL", "INFO").upper(), what
            if "RDMT_STATE_DIR" in env:
                assert streaming["service"]["state_dir"] == env["RDMT_STATE_DIR"], what
            if "RDMT_KAFKA_GROUP_PROTOCOL" in env:
                assert streaming["kafka"]["group.protocol"] == env["RDMT_KAFKA_GROUP_PROTOCOL"], what
            assert shown["inputs"]["roots"] == ["/data"], what
    assert not (tmp_path / "rdmt-output").exists(), "nothing may be written where the deployment did not say"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def test_a_sink_whose_store_cannot_be_reached_is_not_ready_and_writes_nothing_elsewhere(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    p = Pipeline(kafka_bootstrap, tmp_path / "run", webhook_url="")
    unreachable = f"clickhouse://rdmt:secret@127.0.0.1:{free_port()}/rdmt"
    try:
        p.start("sink", RDMT_STORE_URL=unreachable)
        port = p.ports["sink"]
        status, text = wait_until(lambda: (r := _get(f"http://127.0.0.1:{port}/readyz"))[0] and "waiting" in r[1] and r,
                                  "the sink's /readyz to say what it waits for", logs=p.log_tails)  # fmt: skip
        assert status == 503 and "waiting for" in text and "127.0.0.1" in text and "secret" not in text, text
        assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        p.check_running()
    finally:
        p.stop_all()
    assert not (tmp_path / "run" / "store").exists(), "the sink fell back to the configuration file's chDB store"
    assert "secret" not in p.log_tails(200)


def _metric_records(delivery: str) -> dict[str, dict]:
    """A 3-file delivery of 512x512 darks; WFI02 has a 16x16 hot cluster (fails the SOC count limit)."""
    config, dark = load_config(), get_monitor("dark")
    hot = Anomaly(hot_cluster=HotCluster(row=160, col=320, side=16, rate=0.5))
    records = {}
    for detector in ("WFI01", "WFI02", "WFI03"):
        rate, _, dq = dark_arrays(detector, side=512, delivery_seed=1, anomaly=hot if detector == "WFI02" else None)
        identity = FileIdentity(f"synthetic://{detector}", "DARK", detector, datetime(2026, 5, 1))
        arrays = {"dark_slope": rate, "dq": dq}
        result = file_result(dark, arrays, identity, config, History(), f"{delivery}-{detector}")
        records[detector] = metric_record(result, {"delivery_id": delivery, "n_files_in_delivery": 3},
                                          datetime.now(UTC))  # fmt: skip
    return records


def test_a_failure_that_arrives_after_the_alert_timeout_is_alerted(kafka_bootstrap: str, tmp_path: Path) -> None:
    webhook = Webhook()
    p = Pipeline(kafka_bootstrap, tmp_path / "run", webhook.url)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    records = _metric_records("D-LATE")

    def produce(detector: str) -> None:
        producer.produce(p.topic("metrics"), avro.encode("metric_record", records[detector]), key=detector)
        producer.flush(10)

    try:
        p.start("evaluator")
        p.start("notifier", RDMT_ALERT_TIMEOUT_S="4")
        p.wait_ready("evaluator")
        p.wait_ready("notifier")
        evaluations = p.reader("evaluations")
        produce("WFI01")  # clean
        evaluations.read_until(lambda r: len(r) >= 1, "the first evaluation", logs=p.log_tails)
        p.stop("evaluator")  # down for longer than the alert timeout
        wait_until(lambda: "closed with 1 of 3 results" in p.log_tails(400), "the delivery closed by its timeout",
                   logs=p.log_tails)  # fmt: skip
        produce("WFI02")  # fails, and arrives after the delivery was closed
        produce("WFI03")
        p.start("evaluator")
        alerts = p.reader("alerts")
        [alert] = alerts.read_until(lambda r: len(r) >= 1, "the follow-up alert", logs=p.log_tails)
        wait_until(lambda: webhook.posts, "the follow-up alert's POST", logs=p.log_tails)
        assert alerts.drain(quiet_s=3.0) == [alert], "one alert: the late failure, once"
    finally:
        p.stop_all()
        webhook.close()
    assert alert["late"] is True and alert["delivery_id"] == "D-LATE"
    assert [d["detector"] for d in alert["detectors"]] == ["WFI02"]
    assert (alert["n_files"], alert["n_files_expected"]) == (1, 3)
    [post] = webhook.posts
    assert "D-LATE" in post["text"] and "WFI02" in post["text"] and "Follow-up" in post["text"]


def test_ticks_wait_while_results_are_pending_on_the_source_topic(kafka_bootstrap: str) -> None:
    """The notifier's gate on ticks: results the group has not consumed (a transactional topic) are counted."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    from rdmt_core.kafka.delivery_groups import SourceProgress

    topic, group = f"progress-{os.getpid()}-{free_port()}", f"progress-group-{free_port()}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"{topic}-txn"})
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, value=b"result %d" % i)
    producer.commit_transaction(30)  # 3 records and the commit marker
    progress = SourceProgress({"bootstrap.servers": kafka_bootstrap}, group, topic)
    try:
        assert progress.waiting() == 3 and not progress.caught_up()
        consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})
        consumer.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)  # consumed to the marker
        consumer.close()
        assert progress.waiting() == 0 and progress.caught_up()
    finally:
        progress.close()


def test_a_service_started_before_its_broker_works_once_the_broker_is_up(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The evaluator starts with no broker at its address, keeps trying (same process), and works once one is up."""
    from confluent_kafka.admin import AdminClient

    from rdmt_core.kafka.topics import create_topics, topic_specs

    from ..daemons import running
    from ..kafka_broker import BROKER

    port = free_port()
    prefix = f"late-broker-{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RDMT_")} | {
        "RDMT_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}", "RDMT_TOPIC_PREFIX": prefix,
        "RDMT_STATE_DIR": str(tmp_path / "state"), "RDMT_KAFKA_PORT": str(port),
    }  # fmt: skip
    log = tmp_path / "evaluator.log"
    with log.open("wb") as out:
        evaluator = subprocess.Popen([RDMT, "service", "evaluator"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        time.sleep(5)
        assert evaluator.poll() is None, log.read_text()
        os.environ["RDMT_KAFKA_PORT"], saved = str(port), os.environ.get("RDMT_KAFKA_PORT")
        try:
            broker = running(BROKER, tmp_path_factory.mktemp("late-kafka"))
            bootstrap = broker.__enter__()
        finally:
            if saved is None:
                os.environ.pop("RDMT_KAFKA_PORT")
            else:
                os.environ["RDMT_KAFKA_PORT"] = saved
        try:
            assert bootstrap == f"127.0.0.1:{port}"
            create_topics(AdminClient({"bootstrap.servers": bootstrap}), prefix, topic_specs())
            record = _metric_records("D-BROKER")["WFI01"]
            producer = Producer({"bootstrap.servers": bootstrap})
            producer.produce(f"{prefix}.metrics", avro.encode("metric_record", record), key="WFI01")
            producer.flush(10)
            from .services import Reader

            reader = Reader(bootstrap, f"{prefix}.evaluations")
            try:
                reader.read_until(lambda r: len(r) >= 1, "the evaluation", timeout_s=180,
                                  logs=lambda: log.read_text()[-4000:])  # fmt: skip
            finally:
                reader.close()
            assert evaluator.poll() is None, "the evaluator is the process that was started (it never exited)"
        finally:
            broker.__exit__(None, None, None)
    finally:
        evaluator.terminate()
        evaluator.wait(30)
    assert '"level": "error"' in log.read_text()  # the missing broker was logged, as JSON


def test_a_monitor_holding_a_message_longer_than_the_limit_is_not_live(kafka_bootstrap: str, tmp_path: Path) -> None:
    """``/healthz`` follows the message in hand: over ``RDMT_MAX_PROCESSING_S`` it is 503, then 200 again."""
    from rdmt_core.synthetic import write_dark_delivery

    p = Pipeline(kafka_bootstrap, tmp_path / "run", webhook_url="")
    files = write_dark_delivery(tmp_path / "d", datetime(2026, 7, 1), side=4096, detectors=("WFI01",))
    seen: list[tuple[int, str]] = []
    try:
        p.start("ingest")
        p.start("monitor", RDMT_MAX_PROCESSING_S="0.2")  # a full-size file takes longer than that to measure
        p.wait_ready("ingest")
        p.wait_ready("monitor")
        port = p.ports["monitor"]
        metrics = p.reader("metrics")
        p.publish_crds("D-SLOW", files)

        def done() -> bool:
            seen.append(_get(f"http://127.0.0.1:{port}/healthz"))
            return metrics.poll(0.02) or bool(metrics.records)

        wait_until(done, "the metric record", logs=p.log_tails, every_s=0.02)
        assert any(code == 503 and "one message held for" in text for code, text in seen), seen[-5:]
        wait_until(lambda: _get(f"http://127.0.0.1:{port}/healthz")[0] == 200, "live again", logs=p.log_tails)
    finally:
        p.stop_all()
