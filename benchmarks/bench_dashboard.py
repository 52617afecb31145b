"""Dashboard benchmark: server time of the trend of one metric for one detector, and of the Now page, on a big store.

The store is simulated: rows are generated inside chDB (``INSERT ... SELECT FROM numbers()``) into a store
created with the store's own DDL (``rdmt_core.store``); no monitor runs. For every current monitor (the
registry's 11), every detector
(WFI01..WFI18) and ``--files`` files spread over one year (the default 24: a delivery or exposure every
~15 days, a reduced cadence; a full year of daily Level-2 exposures would be about 15 times more rows than
this 2-core, 24 GiB machine fills in a few minutes), the benchmark writes ``--metrics`` metrics (default 8)
at all 1,057 cells (detector, 32 amplifiers, 1,024 super-pixels) to ``metrics``, two verdicts per value
(mission and change; one change verdict in 500 fails) to ``evaluations``, and one ``files`` row per file. With the
defaults: 18 x 11 x 24 = 4,752 files, 40.2 million metric rows and 80.4 million evaluation rows.

Timed, through the ASGI application in process (Starlette's test client: the server's time, no network):
the trend page and its CSV of one metric of WFI07 over the year (targets 300 ms), and the Now page
(target 500 ms); each the median of ``--repeat`` requests after one warm-up request. The Now page is timed
cold too: the first request with no verdict kept, which the server pays once at start, in the background
(``/readyz`` answers 503 until then), and then for new files only.

    .venv/bin/python benchmarks/bench_dashboard.py [--files 24] [--metrics 8] [--repeat 5] [--dir DIR] [--reuse]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

from rdmt_core.geometry import N_SUPERPIXELS
from rdmt_core.monitors import registered_monitors
from rdmt_core.store import open_store

CELLS = 1 + 32 + N_SUPERPIXELS


def build(path: Path, n_files: int, n_metrics: int) -> dict[str, int]:
    """Fill a new store by ``INSERT ... SELECT FROM numbers()``: the rows are generated inside ClickHouse."""
    if path.exists():
        shutil.rmtree(path)
    store = open_store(f"chdb://{path}")
    per_file = n_metrics * CELLS
    step = 365 * 86400 // n_files
    for monitor in registered_monitors():
        # number -> file f, detector d, metric k, cell index c (0: detector, 1..32: amplifiers, 33..: super-pixels)
        rows = f"""
            WITH intDiv(number, 18 * {per_file}) AS f, intDiv(number, {per_file}) % 18 AS d,
                 intDiv(number, {CELLS}) % {n_metrics} AS k, number % {CELLS} AS c,
                 toDateTime64('2026-01-01 00:00:00', 3, 'UTC') + toIntervalSecond(f * {step}) AS t,
                 concat('WFI', leftPad(toString(d + 1), 2, '0')) AS det
            SELECT concat('run-{monitor}-', toString(f)) AS run_id, 'live' AS release, '{monitor}' AS monitor,
                   det AS detector, upper('{monitor}') AS kind, '' AS optical_element, '' AS exposure_mode,
                   concat(upper('{monitor}'), '/', det, '/', formatDateTime(t, '%Y-%m-%dT%H:%i:%S.000')) AS file_key,
                   t AS file_time, concat('/data/', file_key, '.asdf') AS source,
                   concat('metric_', toString(k)) AS metric,
                   multiIf(c = 0, 'detector', c <= 32, 'amplifier', 'superpixel') AS scale,
                   toUInt16(multiIf(c = 0, 0, c <= 32, c, c - 33)) AS cell, t + toIntervalHour(1) AS stored_at
            FROM numbers({n_files * 18 * per_file})
        """
        store.backend.execute(
            "INSERT INTO rdmt.metrics (run_id, release, monitor, detector, kind, optical_element, exposure_mode, "
            "file_key, file_time, source, metric, unit, scale, cell, value, stored_at) "
            "SELECT run_id, release, monitor, detector, kind, optical_element, exposure_mode, file_key, file_time, "
            f"source, metric, 'DN/s', scale, cell, 1 + (rand() % 1000) / 10000, stored_at FROM ({rows})"
        )
        store.backend.execute(
            "INSERT INTO rdmt.evaluations (run_id, release, monitor, detector, kind, optical_element, exposure_mode, "
            "file_key, file_time, source, metric, scale, cell, evaluator, status, reference, threshold, reason, "
            "stored_at) SELECT run_id, release, monitor, detector, kind, optical_element, exposure_mode, file_key, "
            "file_time, source, metric, scale, cell, evaluator, "
            "if(evaluator = 'change' AND rand() % 500 = 0, 'fail', 'pass'), if(evaluator = 'mission', 1.2, NULL), "
            f"0.1, '', stored_at FROM ({rows}) ARRAY JOIN ['mission', 'change'] AS evaluator"
        )
        store.backend.execute(
            "INSERT INTO rdmt.files (run_id, release, monitor, detector, kind, optical_element, exposure_mode, "
            "file_key, file_time, source, exposure_type, n_metrics, n_evaluations, n_fail, n_caution, status, "
            "stored_at) SELECT run_id, release, monitor, detector, any(kind), '', '', file_key, any(file_time), "
            f"any(source), '', {per_file}, count(), countIf(status = 'fail'), 0, max(status), any(stored_at) "
            f"FROM rdmt.evaluations WHERE monitor = '{monitor}' GROUP BY run_id, release, monitor, detector, file_key"
        )
        print(f"  {monitor}: written", flush=True)
    counts = {
        table: int(store.backend.query(f"SELECT count() AS n FROM rdmt.{table}")["n"].iloc[0])
        for table in ("files", "metrics", "evaluations")
    }
    store.close()
    return counts


def timed(client, url: str, repeat: int) -> float:
    response = client.get(url)  # warm-up (caches, first plans)
    assert response.status_code == 200, (url, response.status_code, response.text[:500])
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - t0)
        assert response.status_code == 200
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=24, help="files per monitor and detector over the year")
    parser.add_argument("--metrics", type=int, default=8, help="metrics per monitor")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=Path("bench-output/dashboard"))
    parser.add_argument("--reuse", action="store_true", help="time an existing store in --dir without rebuilding")
    args = parser.parse_args()

    path = args.dir / "store"
    if not (args.reuse and path.is_dir()):
        t0 = time.perf_counter()
        counts = build(path, args.files, args.metrics)
        print(
            f"store: {counts['files']:,} files, {counts['metrics']:,} metric rows, {counts['evaluations']:,} "
            f"evaluation rows written in {time.perf_counter() - t0:.0f} s ({path})"
        )

    from starlette.testclient import TestClient

    from rdmt_core.dashboard.app import Settings, create_app
    from rdmt_core.dashboard.queries import DashboardStore
    from rdmt_core.store.backends import connect

    backend, url = connect(f"chdb://{path}")
    backend.use_database()
    client = TestClient(create_app(DashboardStore(backend, url), Settings()))
    trend = "/trend?monitor=dark&metric=metric_0&detector=WFI07"
    last = int(
        backend.query("SELECT count(DISTINCT run_id) - 1 AS n FROM rdmt.files WHERE monitor = 'dark'")["n"].iloc[0]
    )
    t0 = time.perf_counter()
    assert client.get("/").status_code == 200
    cold_now = (time.perf_counter() - t0) * 1000
    results = {
        "trend page (dark metric_0, WFI07, one year)": (timed(client, trend, args.repeat), 300),
        "trend CSV (the same)": (timed(client, trend.replace("/trend?", "/trend.csv?"), args.repeat), 300),
        "trend of a super-pixel (cell 340)": (timed(client, f"{trend}&scale=superpixel&cell=340", args.repeat), 300),
        "Now page, cold (reads the verdicts of every latest file: the start-up warm-up, in the background)": (
            cold_now,
            500,
        ),
        "Now page, as served (verdicts of committed files kept)": (timed(client, "/", args.repeat), 500),
        "detector page (WFI07: 11 monitors, verdicts and small trends)": (timed(client, "/detector/WFI07", 1), None),
        "run page (dark, 18 files)": (timed(client, f"/run/run-dark-{last}", 1), None),
    }
    for name, (ms, target) in results.items():
        verdict = "" if target is None else f" (target {target} ms){'' if ms <= target else '  OVER TARGET'}"
        print(f"{name}: {ms:.0f} ms{verdict}")
    backend.close()


if __name__ == "__main__":
    main()
