"""Burst benchmark of the streaming services on a real Kafka broker, shaped like the Galactic Bulge survey.

18 dark files (WFI01..WFI18) arrive together as one CRDS delivery every 2 minutes. Here the cadence is
compressed (one delivery every ``--interval`` seconds, 10 s by default at full size) so that the pipeline,
not the clock, is the bottleneck; ``--interval 120`` runs the real cadence. The events go through
separate processes, as deployed: ``rdmt service ingest``, ``monitor --monitor dark`` (``--monitors N``
members), ``evaluator``, ``sink`` (chDB store; ECSV and reports off) and ``notifier``, on a real Kafka
4.x broker (started with ``deploy/kafka/broker.sh``, or the one in ``RDMT_KAFKA_BOOTSTRAP``).

Before the timed part, 18 files are generated once (full size takes ~1.7 s per file); each burst gets
copies of them whose ``meta.useafter`` is patched in place (same length, so the ASDF blocks do not move)
to a distinct time, so every burst is a new delivery with its own ``file_key`` and the evaluator's
history grows as in operations. WFI07 carries a hot-pixel cluster, so every burst fails and the notifier
sends one alert per burst. One single-file warm-up delivery goes through first (imports, first file,
group joins) and is not counted.

What is measured, per file, from the CRDS event's publish time (wall clock, same machine):

* request: Kafka timestamp of the monitor request (the ingest producer's create time);
* metric record: Kafka timestamp of the metric record (the monitor producer's create time);
* evaluation visible: when this script's ``read_committed`` consumer received the evaluation record (the
  evaluator writes in Kafka transactions, so a record becomes visible when its checkpoint commits);
* stored: the time of the sink's log line for that topic/partition/offset, which the sink writes after
  ``Store.write`` returned (the file's metrics, evaluations and commit-marker rows are in chDB);
* committed: when the sink group's committed offset, polled every 0.25 s, first passed the record;
* alert (per burst): when this script received the burst's alert. quixstreams gives an output record
  its input's timestamp, so the Kafka timestamps of evaluations and alerts are the monitor's, not theirs.

Sustained throughput is the number of files over the time from the first event to the last stored file.
With the compressed cadence the pipeline is saturated, so the gap between consecutive bursts' last
stored files is the pipeline time one burst costs; at the real cadence it keeps up when that is under
120 s. Peak memory is ``VmHWM`` of each service process (and the broker's JVM), read from ``/proc`` before
the services are stopped; CPU seconds are ``utime + stime`` during the timed part.

Run with ``make bench`` (after ``bench_dark.py``) or ``python benchmarks/bench_burst.py --side 512`` for a
quick run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' Kafka harness (tests/integration/services.py) is the benchmark's too

from tests.integration.services import Pipeline  # noqa: E402

BROKER_SH = ROOT / "deploy" / "kafka" / "broker.sh"
RDMT = str(Path(sys.executable).with_name("rdmt"))
USEAFTER = datetime(2026, 3, 1, 0, 0, 0)
CADENCE_S = 120.0  # Galactic Bulge time domain survey: one field visit, 18 detectors, every ~2 minutes
ANOMALOUS = "WFI07"
USEAFTER_RE = re.compile(rb"(useafter:[^\n]*?value: ')(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})(')")
SINK_LINE_RE = re.compile(r"^(?P<topic>\S+):(?P<partition>\d+):(?P<offset>\d+) -> ")
CLK_TCK = os.sysconf("SC_CLK_TCK")
# librdkafka's own log lines of this script's clients (disconnects when the broker stops) would garble the table;
# a failure to publish still raises.
QUIET = logging.getLogger("rdmt.bench.kafka")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


# -- files ------------------------------------------------------------------------------------------

def _write_files(directory: str, side: int, detectors: tuple[str, ...]) -> list[str]:
    from rdmt_core.synthetic import Anomaly, HotCluster, write_dark_delivery

    scale = side / 4096
    cluster = HotCluster(int(1300 * scale), int(2600 * scale), max(24, int(96 * scale)))  # fails at any side
    anomalies = {ANOMALOUS: Anomaly(hot_cluster=cluster)}
    paths = write_dark_delivery(Path(directory), USEAFTER, side=side, delivery_seed=1, anomalies=anomalies,
                                detectors=detectors)
    return [str(p) for p in paths]


def generate_base(directory: Path, side: int) -> list[Path]:
    """The 18 files of one delivery, written by two processes."""
    from rdmt_core.geometry import DETECTORS

    halves = (DETECTORS[::2], DETECTORS[1::2])
    with ProcessPoolExecutor(max_workers=2) as pool:
        written = list(pool.map(_write_files, [str(directory)] * 2, [side] * 2, halves))
    return sorted(Path(p) for chunk in written for p in chunk)


def copy_with_useafter(source: Path, directory: Path, useafter: datetime) -> Path:
    """A copy of ``source`` whose ``meta.useafter`` is ``useafter`` (patched in the YAML tree, same length)."""
    with source.open("rb") as f:
        match = USEAFTER_RE.search(f.read(1 << 20))
    if match is None:
        raise RuntimeError(f"{source}: no useafter in the ASDF tree")
    detector = source.name.split("_")[3]
    target = directory / f"roman_wfi_dark_{detector}_{useafter:%Y%m%dT%H%M%S}.asdf"
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)  # in the kernel
    with target.open("r+b") as f:
        f.seek(match.start(2))
        f.write(useafter.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3].encode())
    return target


# -- processes ---------------------------------------------------------------------------------------

def _scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return response.read().decode()
    except OSError:
        return ""


def machine_cpu() -> tuple[float, float]:
    """Busy and idle CPU seconds of the whole machine so far (/proc/stat; iowait counts as idle)."""
    with open("/proc/stat") as stat:
        ticks = [int(x) for x in stat.readline().split()[1:9]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / CLK_TCK, idle / CLK_TCK


def proc_status(pid: int) -> dict[str, float]:
    """VmHWM and VmRSS (MiB) and CPU seconds (utime + stime) of a running process."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(("VmHWM:", "VmRSS:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    out["cpu_s"] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


# -- observing the topics ----------------------------------------------------------------------------

class Observer(threading.Thread):
    """Reads requests, metrics, evaluations and alerts (read_committed) and polls the sink's committed offsets.

    Records are attributed to a delivery by finding its id in the raw Avro bytes (strings are stored
    verbatim), so the ~3 MB evaluation records are not decoded on this busy 2-core machine.
    """

    def __init__(self, bootstrap: str, prefix: str, delivery_ids: list[str]) -> None:
        super().__init__(name="observer", daemon=True)
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
        from confluent_kafka.admin import AdminClient

        self.prefix = prefix
        self.tokens = [(d, d.encode()) for d in delivery_ids]
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"bench-observer-{uuid.uuid4().hex}",
            "enable.auto.commit": False, "fetch.wait.max.ms": 10, "isolation.level": "read_committed",
            "logger": QUIET,
        })
        topics = [f"{prefix}.{s}" for s in ("requests.dark", "metrics", "evaluations", "alerts", "deadletter",
                                             "unrouted")]
        assignment = []
        for topic in topics:
            partitions = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
            assignment += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
        self.consumer.assign(assignment)
        self.admin = AdminClient({"bootstrap.servers": bootstrap, "logger": QUIET})
        self.sink_group = f"{prefix}.sink"
        self.seen: list[dict] = []  # topic, partition, offset, delivery, detector, kafka_ts, received
        self.committed: dict[int, list[tuple[float, int]]] = {}  # partition -> [(time, offset)] on change
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def _delivery(self, value: bytes) -> str | None:
        for delivery, token in self.tokens:
            if token in value:
                return delivery
        return None

    def _poll_committed(self) -> None:
        from confluent_kafka import ConsumerGroupTopicPartitions

        try:
            result = self.admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(self.sink_group)])
            partitions = result[self.sink_group].result(5).topic_partitions
        except Exception:  # the group does not exist before its first commit
            return
        now = time.time()
        with self.lock:
            for tp in partitions:
                history = self.committed.setdefault(tp.partition, [])
                if tp.offset >= 0 and (not history or history[-1][1] != tp.offset):
                    history.append((now, tp.offset))

    def run(self) -> None:
        next_commit_poll = 0.0
        while not self.stopping.is_set():
            if time.monotonic() >= next_commit_poll:
                self._poll_committed()
                next_commit_poll = time.monotonic() + 0.25
            msg = self.consumer.poll(0.05)
            if msg is None or msg.error() is not None:
                continue
            received = time.time()
            value = msg.value() or b""
            entry = {
                "topic": msg.topic().removeprefix(self.prefix + "."), "partition": msg.partition(),
                "offset": msg.offset(), "delivery": self._delivery(value),
                "detector": msg.key().decode(errors="replace") if msg.key() else None,
                "kafka_ts": msg.timestamp()[1] / 1000, "received": received,
            }
            with self.lock:
                self.seen.append(entry)
        self.consumer.close()

    def records(self, topic: str, delivery: str | None = None) -> list[dict]:
        with self.lock:
            return [e for e in self.seen if e["topic"] == topic and (delivery is None or e["delivery"] == delivery)]

    def committed_at(self, partition: int, offset: int) -> float | None:
        """When the sink group's committed offset of ``partition`` first went past ``offset``."""
        with self.lock:
            for when, committed in self.committed.get(partition, []):
                if committed > offset:
                    return when
        return None


def sink_stored_times(log: Path, prefix: str) -> dict[tuple[int, int], float]:
    """(partition, offset) of an evaluation record -> time of the sink's log line after storing it."""
    out = {}
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        match = SINK_LINE_RE.match(str(entry.get("message", "")))
        if match and match["topic"] == f"{prefix}.evaluations":
            out[(int(match["partition"]), int(match["offset"]))] = datetime.fromisoformat(entry["time"]).timestamp()
    return out


# -- the run -----------------------------------------------------------------------------------------

def _percentiles(values: list[float]) -> str:
    if not values:
        return f"{'-':>7} {'-':>7} {'-':>7}"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered) + 0.5) - 1))]  # nearest rank
    return f"{statistics.median(ordered):7.2f} {p95:7.2f} {ordered[-1]:7.2f}"


def _wait(condition, timeout_s: float, what: str, pipeline: Pipeline) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        pipeline.check_running()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.1)


def start_broker(workdir: Path) -> tuple[str, Path | None]:
    if os.environ.get("RDMT_KAFKA_BOOTSTRAP"):
        return os.environ["RDMT_KAFKA_BOOTSTRAP"], None
    kafka_dir = workdir / "kafka"
    out = subprocess.run([str(BROKER_SH), "start", str(kafka_dir)], capture_output=True, text=True, timeout=180)
    if out.returncode != 0:
        raise RuntimeError(f"broker.sh start failed:\n{out.stderr[-3000:]}")
    line = next(x for x in out.stdout.splitlines() if x.startswith("RDMT_KAFKA_BOOTSTRAP="))
    return line.split("=", 1)[1], kafka_dir


def run(args: argparse.Namespace, workdir: Path) -> None:
    from confluent_kafka import Producer

    from rdmt_core.cli.publish import crds_delivery, publish
    from rdmt_core.kafka.settings import KafkaSettings

    n_bursts, side, interval = args.bursts, args.side, args.interval
    print(f"RDMT burst benchmark: {n_bursts} bursts x 18 dark files {side}x{side}, one CRDS delivery every "
          f"{interval:g} s (real cadence {CADENCE_S:.0f} s), {args.monitors} monitor member(s), "
          f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}")

    start = time.perf_counter()
    base = generate_base(workdir / "base", side)
    generated = time.perf_counter() - start
    bursts: list[tuple[str, list[Path]]] = []
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    warmup_at = USEAFTER - timedelta(days=1)
    warmup = (f"{prefix}-warmup", [copy_with_useafter(base[0], workdir / "warmup", warmup_at)])
    for b in range(n_bursts):
        useafter = USEAFTER + timedelta(seconds=CADENCE_S * b)
        bursts.append((f"{prefix}-burst{b:02d}", [copy_with_useafter(p, workdir / f"b{b:02d}", useafter)
                                                  for p in base]))
    events = {d: crds_delivery(d, "roman_0001.pmap", paths) for d, paths in [warmup, *bursts]}
    assert all(len({f["useafter"] for f in events[d]["files"]}) == 1 for d, _ in bursts)
    copied = time.perf_counter() - start - generated
    synced = time.perf_counter()
    os.sync()  # else the kernel writes the copies back (GBs at full size) during the timed part, on the same CPUs
    size_mb = base[0].stat().st_size / 2**20
    print(f"(wrote 18 files in {generated:.1f} s, {size_mb:.0f} MiB each; {n_bursts} copies with distinct "
          f"useafter in {copied:.1f} s; synced to disk in {time.perf_counter() - synced:.1f} s)")

    start = time.perf_counter()
    bootstrap, kafka_dir = start_broker(workdir)
    pipeline: Pipeline | None = None
    observer: Observer | None = None
    try:
        # The tests' harness: topics under the prefix, one config file, `rdmt service ...` processes.
        pipeline = Pipeline(bootstrap, workdir / "run", webhook_url="", prefix=prefix, config={
            "outputs": {"store": True, "ecsv": False, "report": False, "notify": False},
            "notify": {"slack_webhook_env": "RDMT_BENCH_NO_WEBHOOK", "smtp": None},
        })  # fmt: skip
        names = ["ingest", *(f"monitor-{i}" if args.monitors > 1 else "monitor" for i in range(args.monitors)),
                 "evaluator", "sink", "notifier"]
        for name in names:
            pipeline.start(name.split("-")[0], name)
        for name in names:
            pipeline.wait_ready(name, timeout_s=90)
        services = list(pipeline.procs)
        ready_s = time.perf_counter() - start

        observer = Observer(bootstrap, prefix, [d for d, _ in [warmup, *bursts]])
        observer.start()
        producer = Producer(KafkaSettings(bootstrap_servers=bootstrap).producer("rdmt-bench") | {"logger": QUIET})

        def send(delivery: str) -> float:
            event = dict(events[delivery])
            sent = time.time()
            event["accepted_at"] = datetime.fromtimestamp(sent, UTC)
            publish(producer, f"{prefix}.events.crds", "crds_delivery", [(delivery, event)])
            return sent

        def committed(delivery: str, n: int) -> bool:
            evaluations = observer.records("evaluations", delivery)
            return len(evaluations) >= n and all(observer.committed_at(e["partition"], e["offset"])
                                                 for e in evaluations)

        t = time.perf_counter()
        send(warmup[0])
        _wait(lambda: committed(warmup[0], 1), 180, "the warm-up file to be stored", pipeline)
        print(f"(broker and {len(services)} services ready in {ready_s:.1f} s; warm-up file through the pipeline "
              f"in {time.perf_counter() - t:.1f} s)")
        time.sleep(1.0)

        pids = {name: proc.pid for name, proc in pipeline.procs.items()}
        broker_pid = int((kafka_dir / "broker.pid").read_text()) if kafka_dir else None
        if broker_pid:
            pids["kafka broker (JVM)"] = broker_pid
        pids["this script (observer)"] = os.getpid()
        cpu_before = {name: proc_status(pid)["cpu_s"] for name, pid in pids.items()}
        machine_before = machine_cpu()
        published: dict[str, float] = {}
        t0 = time.time()
        for b, (delivery, _) in enumerate(bursts):
            due = t0 + b * interval
            _wait(lambda due=due: time.time() >= due, max(0.0, due - time.time()) + 5, "the next burst", pipeline)
            published[delivery] = send(delivery)
        total = 18 * n_bursts
        _wait(lambda: all(committed(d, 18) for d, _ in bursts), args.timeout, f"all {total} files stored", pipeline)
        t_end = time.time()
        _wait(lambda: all(observer.records("alerts", d) for d, _ in bursts), 30, "one alert per burst", pipeline)
        status = {name: proc_status(pid) for name, pid in pids.items()}
        machine = [after - before for after, before in zip(machine_cpu(), machine_before, strict=True)]
        scraped = {name: _scrape(port) for name, port in pipeline.ports.items()}
    finally:
        stopping = time.perf_counter()
        if observer is not None:
            observer.stopping.set()
            observer.join(10)
        if pipeline is not None:
            pipeline.stop_all()
        if kafka_dir is not None:
            subprocess.run([str(BROKER_SH), "stop", str(kafka_dir)], capture_output=True, timeout=60)
        print(f"(services and broker stopped in {time.perf_counter() - stopping:.1f} s)")

    stored = sink_stored_times(pipeline.log_paths["sink"], prefix)
    if args.keep:
        (workdir / "observed.json").write_text(json.dumps({"seen": observer.seen, "published": published,
                                                           "committed": observer.committed}))
    report(args, observer, services, bursts, published, stored, status, cpu_before, machine, scraped, t0, t_end,
           workdir)


def _mean_processing(text: str, topic_suffix: str) -> float | None:
    total = count = 0.0
    for line in text.splitlines():
        if topic_suffix in line and line.startswith("rdmt_processing_seconds_sum"):
            total += float(line.split()[-1])
        elif topic_suffix in line and line.startswith("rdmt_processing_seconds_count"):
            count += float(line.split()[-1])
    return total / count if count else None


def report(args, observer: Observer, services: list[str], bursts, published: dict[str, float],
           stored: dict[tuple[int, int], float], status, cpu_before, machine, scraped, t0: float, t_end: float,
           workdir: Path) -> None:
    rows = {k: [] for k in ("request", "metric", "visible", "stored", "committed")}
    per_burst = []
    missing_stored = 0
    for delivery, _ in bursts:
        sent = published[delivery]
        requests = observer.records("requests.dark", delivery)
        metrics = observer.records("metrics", delivery)
        evaluations = observer.records("evaluations", delivery)
        rows["request"] += [r["kafka_ts"] - sent for r in requests]
        rows["metric"] += [r["kafka_ts"] - sent for r in metrics]
        rows["visible"] += [r["received"] - sent for r in evaluations]
        stored_at = []
        for e in evaluations:
            when = stored.get((e["partition"], e["offset"]))
            if when is None:
                missing_stored += 1
            else:
                stored_at.append(when)
            when = observer.committed_at(e["partition"], e["offset"])
            if when is not None:
                rows["committed"].append(when - sent)
        rows["stored"] += [w - sent for w in stored_at]
        alerts = observer.records("alerts", delivery)
        per_burst.append((delivery, sent, min(stored_at) if stored_at else None, max(stored_at) if stored_at else None,
                          alerts[0]["received"] - sent if alerts else None, len(evaluations), len(alerts)))

    total = 18 * len(bursts)
    all_stored = [w for _, _, _, last, _, _, _ in per_burst for w in [last] if w is not None]
    last_stored = max(all_stored)
    first_sent = min(published.values())
    span = last_stored - first_sent
    throughput = total / span
    lasts = [last for _, _, _, last, _, _, _ in per_burst]
    gaps = [b - a for a, b in itertools.pairwise(lasts)]
    saturated = [g for g, (_, sent, _, _, _, _, _), prev in zip(gaps, per_burst[1:], lasts, strict=False)
                 if prev > sent]  # the burst was published before the previous one was done: the pipeline was busy
    burst_cost = statistics.median(saturated) if saturated else None
    dead = observer.records("deadletter")
    unrouted = observer.records("unrouted")
    n_alerts = sum(b[6] for b in per_burst)
    n_eval = sum(b[5] for b in per_burst)

    print()
    print(f"files: {n_eval}/{total} evaluations stored ({missing_stored} without a sink log line), "
          f"{len(dead)} dead letters, {len(unrouted)} unrouted, {n_alerts} alerts for {len(bursts)} bursts")
    print(f"sustained throughput: {total} files in {span:.1f} s from the first event to the last stored file "
          f"= {throughput:.2f} files/s")
    if burst_cost is not None:
        verdict = "keeps up" if burst_cost < CADENCE_S else "does NOT keep up"
        print(f"pipeline time per burst when saturated (median gap between bursts' last stored files, "
              f"{len(saturated)} gaps): {burst_cost:.1f} s for 18 files -> at the real {CADENCE_S:.0f} s cadence "
              f"it {verdict}, busy {100 * burst_cost / CADENCE_S:.0f}% of the time")
    else:
        print(f"the pipeline was never saturated at a {args.interval:g} s interval: each burst was done before "
              f"the next one (use a shorter --interval to measure the capacity)")
    first = per_burst[0]
    print(f"first burst (idle pipeline, as at the real cadence): all 18 files stored {first[3] - first[1]:.1f} s "
          f"after the event")

    print()
    print(f"{'latency from the CRDS event, per file (s)':58s} {'p50':>7} {'p95':>7} {'max':>7}   n")
    labels = {
        "request": "monitor request produced (ingest)",
        "metric": "metric record produced (monitor)",
        "visible": "evaluation record visible, read_committed (evaluator)",
        "stored": "evaluation stored in chDB (sink log line)",
        "committed": "sink offset committed (polled every 0.25 s)",
    }
    for key, label in labels.items():
        print(f"  {label:56s} {_percentiles(rows[key])} {len(rows[key]):3d}")
    first_stored = [w - first[1] for e in observer.records("evaluations", first[0])
                    for w in [stored.get((e["partition"], e["offset"]))] if w is not None]
    print(f"  {'... of the first burst only (idle pipeline, real cadence)':56s} {_percentiles(first_stored)} "
          f"{len(first_stored):3d}")
    alert_latency = [b[4] for b in per_burst if b[4] is not None]
    print(f"  {'alert on the alert topic, per burst (notifier)':56s} {_percentiles(alert_latency)} "
          f"{len(alert_latency):3d}")

    print()
    print(f"{'burst':>5} {'published':>9} {'first stored':>12} {'last stored':>11} {'alert':>7}   (s from the "
          f"first event; stored and alert: s after the burst's event)")
    for b, (_, sent, first_w, last_w, alert, _, _) in enumerate(per_burst):
        first_txt = f"{first_w - sent:12.1f}" if first_w else f"{'-':>12}"
        last_txt = f"{last_w - sent:11.1f}" if last_w else f"{'-':>11}"
        alert_txt = f"{alert:7.1f}" if alert is not None else f"{'-':>7}"
        print(f"{b:5d} {sent - first_sent:9.1f} {first_txt} {last_txt} {alert_txt}")

    print()
    wall = t_end - t0
    print(f"{'process':22s} {'peak RSS':>9} {'RSS at end':>10} {'CPU s':>7} {'CPU s/file':>10} {'cores':>6}   "
          f"(CPU over the timed part, {wall:.0f} s)")
    for name, figures in status.items():
        cpu = figures["cpu_s"] - cpu_before[name]
        print(f"{name:22s} {figures['VmHWM']:6.0f} MiB {figures['VmRSS']:6.0f} MiB {cpu:7.1f} {cpu / total:10.2f} "
              f"{cpu / wall:6.2f}")
    accounted = sum(figures["cpu_s"] - cpu_before[name] for name, figures in status.items())
    busy, idle = machine
    print(f"{'whole machine':22s} {'':>9} {'':>10} {busy:7.1f} {busy / total:10.2f} {busy / wall:6.2f}   "
          f"({100 * busy / (busy + idle):.0f}% of {os.cpu_count()} CPUs busy; {busy - accounted:.1f} CPU s "
          f"outside the processes above: kernel threads, other programs)")
    mean_monitor = [m for name, text in scraped.items() if name.startswith("monitor")
                    for m in [_mean_processing(text, "requests.dark")] if m is not None]
    mean_sink = _mean_processing(scraped.get("sink", ""), ".evaluations")
    if mean_monitor:
        print(f"mean processing per message (the services' rdmt_processing_seconds, warm-up included): monitor "
              f"{statistics.mean(mean_monitor):.2f} s"
              + (f", sink {mean_sink:.2f} s" if mean_sink is not None else ""))
    check_store(workdir, total + 1)


def check_store(workdir: Path, expected: int) -> None:
    from rdmt_core.store import open_store

    with open_store(f"chdb://{workdir / 'run' / 'store'}") as store:
        files = int(store.sql("SELECT count() AS n FROM files")["n"].iloc[0])
        metrics = int(store.sql("SELECT count() AS n FROM metrics")["n"].iloc[0])
    print(f"store after the run: {files} files (expected {expected}, warm-up included), {metrics} metric rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=4096, help="Side of the synthetic files (default 4096).")
    parser.add_argument("--bursts", type=int, default=5, help="Number of 18-file deliveries (default 5).")
    parser.add_argument("--interval", type=float, default=None,
                        help=f"Seconds between deliveries (default 10 at full size, 2 for --side 1024 or less; "
                             f"the real cadence is {CADENCE_S:.0f}).")
    parser.add_argument("--monitors", type=int, default=1, help="Members of the dark monitor's group (default 1).")
    parser.add_argument("--timeout", type=float, default=600, help="Seconds to wait for the last file (default 600).")
    parser.add_argument("--keep", action="store_true", help="Keep the work directory (logs, store) and print it.")
    args = parser.parse_args()
    if not 1 <= args.bursts <= 99:
        parser.error("--bursts must be between 1 and 99")
    if args.interval is None:
        args.interval = 10.0 if args.side > 1024 else 2.0
    workdir = Path(tempfile.mkdtemp(prefix="rdmt-bench-burst-"))
    try:
        run(args, workdir)
    finally:
        if args.keep:
            print(f"(work directory kept: {workdir})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
