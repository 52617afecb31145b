"""Benchmark of the reference-file monitors besides dark on full-size (4096x4096) files: speed and memory.

For each registered reference-file monitor with example files (``examples.reference_arrays``):

* the time to compute all its metrics at the three scales from arrays in memory, one thread
  (median of 5 runs; target under 0.3 s);
* the peak memory the computation allocates beyond its input arrays (``tracemalloc``, numpy's
  allocations included), and the size of the input arrays;
* the end-to-end time of one file through the embedded pipeline (open, read, metrics, evaluate,
  store; no report), after a first file has paid the imports;
* the peak RSS of one file's processing (open, read, metrics, evaluation; no store, as in a monitor's
  pod) in a fresh process: the figure the Helm chart's memory requests follow
  (docs/deployment.md#memory), and the loaded program's RSS before it.

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
import tracemalloc  # noqa: E402
from datetime import datetime  # noqa: E402
from pathlib import Path  # noqa: E402

SIDE = 4096
TARGET_S = 0.3


def reference_monitors() -> list[str]:
    """Registered reference-file monitors that write example files (every one but dark, which has its bench)."""
    import importlib

    from rdmt_core.monitors import registered_monitors

    names = []
    for name, monitor in sorted(registered_monitors().items()):
        if not monitor.reftypes:
            continue
        examples = importlib.import_module(f"rdmt_core.monitors.{name}.examples")
        if hasattr(examples, "reference_arrays"):
            names.append(name)
    return names


def bench_compute(name: str) -> tuple[float, float, float]:
    """(median seconds, peak MiB allocated by one computation, MiB of input arrays)."""
    from rdmt_core.config import load_config
    from rdmt_core.monitors import get_monitor

    monitor = get_monitor(name)
    arrays = monitor.example_arrays(SIDE, seed=1)
    options = load_config().options_for(name, "WFI01")
    context = monitor.example_context(SIDE, seed=1)
    monitor.compute(arrays, options, context)  # warm-up: imports
    times = []
    for _ in range(5):
        start = time.perf_counter()
        monitor.compute(arrays, options, context)
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    monitor.compute(arrays, options, context)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    size = sum(a.nbytes for a in arrays.values())
    return statistics.median(times), peak / 2**20, size / 2**20


def _status_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, from /proc (Linux), in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child_peak_memory(path: str, store: str) -> None:
    """Run in a fresh process: RSS after imports, then peak RSS while processing one file (printed as JSON)."""
    from rdmt_core.config import load_config
    from rdmt_core.pipeline import EmbeddedPipeline

    # No store: a monitor's pod measures only (the evaluator and the sink hold the history and the store), and
    # chDB in the process would add its own engine's memory to the figure
    del store
    config = load_config(outputs={"store": False, "ecsv": False, "report": False, "notify": False})
    with EmbeddedPipeline(config, run_id="mem") as pipeline:
        import rdmt_core.monitors  # noqa: F401  (every monitor's module, as a service has them)

        baseline = _status_mb("VmRSS")
        outcome = pipeline.process(path)
        assert outcome.problem is None, outcome.problem
    # VmHWM, not getrusage's ru_maxrss: that one keeps the parent's peak across fork and exec
    peak = _status_mb("VmHWM")
    print(json.dumps({"baseline_mb": baseline, "peak_mb": peak}))


def peak_memory(path: Path, workdir: Path) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child-memory", str(path), str(workdir / f"store-mem-{path.stem}")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_end_to_end(names: list[str], workdir: Path) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    from rdmt_core.config import load_config
    from rdmt_core.pipeline import EmbeddedPipeline
    from rdmt_core.synthetic_ref import write_reference_delivery

    config = load_config(
        store_url=f"chdb://{workdir / 'store'}",
        output_dir=str(workdir / "out"),
        outputs={"ecsv": False, "report": False, "notify": False},
    )
    seconds, memory = {}, {}
    with EmbeddedPipeline(config, run_id="bench") as pipeline:
        for name in names:
            paths = write_reference_delivery(
                name, workdir / name, datetime(2026, 10, 15), side=SIDE, delivery_seed=1,
                detectors=("WFI01", "WFI02"), optical_element="F158" if name == "flat" else None,
            )  # fmt: skip
            pipeline.process(str(paths[0]))  # imports, first store write
            start = time.perf_counter()
            outcome = pipeline.process(str(paths[1]))
            seconds[name] = time.perf_counter() - start
            assert outcome.problem is None, outcome.problem
            memory[name] = peak_memory(paths[0], workdir)
    return seconds, memory


def main() -> None:
    names = reference_monitors()
    print(f"reference-file monitors, {SIDE}x{SIDE}, one thread (target under {TARGET_S} s per file's metrics):")
    with tempfile.TemporaryDirectory(prefix="rdmt-bench-ref-") as tmp:
        end_to_end, memory = bench_end_to_end(names, Path(tmp))
    for name in names:
        seconds, peak, size = bench_compute(name)
        verdict = "within" if seconds < TARGET_S else "OVER"
        print(
            f"  {name:<11} metrics {seconds:.3f} s ({verdict} target); peak allocation {peak:.0f} MiB over "
            f"{size:.0f} MiB of arrays; end to end (open, read, evaluate, store) {end_to_end[name]:.2f} s; "
            f"peak RSS for one file {memory[name]['peak_mb']:.0f} MiB (program {memory[name]['baseline_mb']:.0f} MiB)"
        )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child-memory":
        child_peak_memory(sys.argv[2], sys.argv[3])
    else:
        main()
