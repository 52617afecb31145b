"""Benchmark of the dark monitor on full-size (4096x4096) files: speed and memory.

Prints:
* the time to compute all dark metrics at the three scales, one thread, against
  a straightforward per-block ``np.nanpercentile`` loop;
* the end-to-end time per file (open, read, metrics, evaluate, store) after the
  first file has paid the import cost, and with reports and ECSV on as well;
* the peak memory of one file's processing, measured in a fresh process,
  compared with the file's decompressed arrays.

Run with ``make bench``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from datetime import datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

SIDE = 4096
N_FILES = 6


def _timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def naive_dark_metrics(rate: np.ndarray) -> None:
    """The straightforward approach: nanpercentile and friends on every block in a loop."""
    cell = rate.shape[0] // 32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        blocks = [
            rate[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] for r in range(32) for c in range(32)
        ]
        amps = [rate[:, a * cell : (a + 1) * cell] for a in range(32)]
        for block in [rate, *amps, *blocks]:
            np.nanmean(block), np.nanmedian(block), np.nanstd(block)
            np.nanpercentile(block, [50, 95, 99])


def bench_metrics(rate: np.ndarray, dq: np.ndarray) -> None:
    from rdmt_core.monitors.dark import DarkOptions
    from rdmt_core.monitors.dark.metrics import dark_metrics

    options = DarkOptions()
    fast = _timed(lambda: dark_metrics(rate, dq, options), 7)
    naive = _timed(lambda: naive_dark_metrics(rate), 1)
    print(
        f"dark metrics, 9 metrics x 1,057 values, 1 thread:  median {statistics.median(fast):.3f} s, "
        f"best {min(fast):.3f} s (7 runs)"
    )
    print(
        f"  per-block nanpercentile loop (reference):     {naive[0]:.3f} s "
        f"-> {naive[0] / statistics.median(fast):.1f}x faster"
    )


def bench_end_to_end(paths: list[Path], workdir: Path) -> None:
    from rdmt_core.config import load_config
    from rdmt_core.pipeline import EmbeddedPipeline

    for label, outputs in (
        ("open, read, metrics, evaluate, store", {"ecsv": False, "report": False, "notify": False}),
        ("... + ECSV + report with 9 maps", {"ecsv": True, "report": True, "notify": False}),
    ):
        config = load_config(
            store_url=f"chdb://{workdir / ('store-' + str(len(label)))}",
            output_dir=str(workdir / "out"),
            outputs=outputs,
        )
        with EmbeddedPipeline(config, run_id="bench") as pipeline:
            first = _timed(lambda: pipeline.process(str(paths[0])), 1)[0]
            per_file = []
            for path in paths[1:]:
                start = time.perf_counter()
                outcome = pipeline.process(str(path))
                per_file.append(time.perf_counter() - start)
                assert outcome.problem is None, outcome.problem
        print(
            f"end to end per file ({label}): median {statistics.median(per_file):.3f} s, "
            f"max {max(per_file):.3f} s over {len(per_file)} files (first file {first:.2f} s with imports)"
        )


def child_peak_memory(path: str, store: str) -> None:
    """Run in a fresh process: RSS after imports, then peak RSS while processing one file."""
    from rdmt_core.config import load_config
    from rdmt_core.pipeline import EmbeddedPipeline

    config = load_config(
        store_url=f"chdb://{store}", outputs={"ecsv": False, "report": False, "notify": False}
    )
    with EmbeddedPipeline(config, run_id="mem") as pipeline:
        baseline = _status_mb("VmRSS")
        outcome = pipeline.process(path)
        assert outcome.problem is None, outcome.problem
    peak = _status_mb("VmHWM")  # not ru_maxrss: that one keeps the parent's peak across fork and exec
    print(json.dumps({"baseline_mb": baseline, "peak_mb": peak}))


def _status_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, from /proc (Linux), in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def bench_memory(path: Path, workdir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, __file__, "--child-memory", str(path), str(workdir / "store-mem")],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    arrays_mb = 3 * SIDE * SIDE * 4 / 2**20  # dark_slope, dark_slope_error (float32), dq (uint32)
    used = figures["peak_mb"] - figures["baseline_mb"]
    print(
        f"peak memory for one file: {figures['peak_mb']:.0f} MiB RSS, {used:.0f} MiB above the "
        f"{figures['baseline_mb']:.0f} MiB of the loaded program = {used / arrays_mb:.2f}x the file's "
        f"{arrays_mb:.0f} MiB of decompressed arrays"
    )


def main() -> None:
    from rdmt_core.synthetic import DETECTORS, Anomaly, HotCluster, dark_arrays, write_dark_delivery

    print(
        f"RDMT dark monitor benchmark, {SIDE}x{SIDE}, numpy {np.__version__}, python {sys.version.split()[0]}"
    )
    rate, _, dq = dark_arrays("WFI07", SIDE, delivery_seed=1, anomaly=Anomaly(HotCluster(1300, 2600, 96)))
    bench_metrics(rate, dq)
    del rate, dq
    with tempfile.TemporaryDirectory(prefix="rdmt-bench-") as tmp:
        workdir = Path(tmp)
        start = time.perf_counter()
        paths = write_dark_delivery(
            workdir / "in", datetime(2026, 1, 1), side=SIDE, delivery_seed=1, detectors=DETECTORS[:N_FILES]
        )
        print(
            f"(wrote {len(paths)} synthetic files in {time.perf_counter() - start:.1f} s, "
            f"{paths[0].stat().st_size / 2**20:.0f} MiB each, lz4-compressed)"
        )
        bench_end_to_end(paths, workdir)
        bench_memory(paths[0], workdir)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child-memory":
        child_peak_memory(sys.argv[2], sys.argv[3])
    else:
        main()
