"""Benchmark of the Level-2 monitors on full-size (4088x4088) realistic images with about 2,000 stars.

The images are the synthetic generator's defaults: galsim.roman PSFs of each detector at F158
(Airy rings, diffraction spikes, wide wings) and a WCS with a polynomial distortion and no
analytic inverse, as pipeline products have.

Prints, per Level-2 monitor, measured in a fresh process with one thread:

* the CPU time of ``file_result`` (metrics and evaluation on arrays already in
  memory; the monitor's context, such as the WCS and catalogue, already read),
  median and best of 3 runs;
* the peak memory: RSS above the process with the file's arrays loaded, and the
  total peak RSS;

then the whole Level-2 suite per image through the embedded pipeline (open,
read, all monitors, evaluate, store; no reports), its CPU time and peak RSS,
and how many Galactic Bulge survey streams (18 images every 120 s) one 2-core
machine sustains at that speed.

Run with ``make bench``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

SIDE = 4096
STARS = 2000
TARGETS_S = {"one_over_f": 0.2, "background": 0.5, "astrometry": 3.0}
SUITE_TARGET_S, SUITE_TARGET_MB = 5.0, 1500
BURST_IMAGES, BURST_PERIOD_S, CORES = 18, 120.0, 2


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    """Peak RSS since the start, or since the last :func:`_reset_peak` (VmHWM)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> None:
    """Start the peak RSS again from the current RSS (Linux: writing 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:  # not Linux, or not allowed: the peak then includes reading the file
        pass


def _config(workdir: str):
    from rdmt_core.config import load_config

    return load_config(
        store_url=f"chdb://{workdir}/store",
        output_dir=f"{workdir}/out",
        outputs={"ecsv": False, "report": False, "notify": False},
        monitors={
            "astrometry": {"options": {"catalog_dir": f"{workdir}/in/catalog"}},
        },
    )


def child_monitor(name: str, path: str, workdir: str) -> None:
    """Fresh process: one monitor on one file; CPU time of file_result and peak memory above the loaded arrays."""
    from rdmt_core.data_access import open_roman
    from rdmt_core.evaluators import History
    from rdmt_core.monitors import get_monitor
    from rdmt_core.results import file_result

    config = _config(workdir)
    monitor = get_monitor(name)
    with open_roman(path) as roman:
        arrays = roman.read_arrays(monitor.arrays)
        identity = roman.identity
        context = monitor.load_context(roman, config.options_for(name, identity.detector))
    baseline = _rss_mb()
    _reset_peak()  # the peak of reading the file is not the monitor's
    times = []
    notes = {}
    for _ in range(3):
        start = time.process_time()
        result = file_result(monitor, arrays, identity, config, History(), "bench", context)
        times.append(time.process_time() - start)
        notes = result.notes
    print(json.dumps({"times": times, "baseline_mb": baseline, "peak_mb": _peak_mb(), "notes": notes}))


def child_suite(paths: list[str], workdir: str) -> None:
    """Fresh process: the embedded pipeline on images; CPU time per image after the first, and peak RSS."""
    from rdmt_core.pipeline import EmbeddedPipeline

    with EmbeddedPipeline(_config(workdir), run_id="bench-suite") as pipeline:
        pipeline.process(paths[0])  # imports, first store write
        per_image = []
        for path in paths[1:]:
            start = time.process_time()
            outcome = pipeline.process(path)
            per_image.append(time.process_time() - start)
            assert outcome.problem is None, outcome.problem
            monitors = sorted(r.monitor for r in outcome.results)
    print(json.dumps({"times": per_image, "peak_mb": _peak_mb(), "monitors": monitors}))


def _child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"benchmark child {args[:2]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    import numpy as np

    from rdmt_core.monitors import monitors_for
    from rdmt_core.synthetic_l2 import L2Scene, write_l2_exposure

    print(f"RDMT Level-2 monitor benchmark, {SIDE - 8}x{SIDE - 8} images, ~{STARS} stars (galsim.roman PSFs, F158; "
          f"distorted WCS), 1 thread, "
          f"numpy {np.__version__}, python {sys.version.split()[0]}")
    names = [m.name for m in monitors_for("ImageModel")]
    with tempfile.TemporaryDirectory(prefix="rdmt-bench-l2-") as workdir:
        start = time.perf_counter()
        paths, _ = write_l2_exposure(
            Path(workdir) / "in", datetime(2027, 3, 1, tzinfo=UTC), L2Scene(star_density=STARS / 4088**2),
            side=SIDE, detectors=("WFI01", "WFI02", "WFI03"),
        )
        print(f"(wrote {len(paths)} synthetic images in {time.perf_counter() - start:.1f} s)")
        print(f"{'monitor':<12} {'CPU median':>11} {'best':>7} {'target':>7} {'peak above arrays':>18} {'peak RSS':>9}")
        total = 0.0
        for name in names:
            figures = _child("--monitor", name, str(paths[0]), workdir)
            median = statistics.median(figures["times"])
            total += median
            target = f"{TARGETS_S[name]:.1f} s" if name in TARGETS_S else "-"
            print(
                f"{name:<12} {median:>9.3f} s {min(figures['times']):>5.3f} s {target:>7} "
                f"{figures['peak_mb'] - figures['baseline_mb']:>14.0f} MiB {figures['peak_mb']:>5.0f} MiB"
            )
            if "status" in figures["notes"]:
                print(f"{'':<12} note: {figures['notes']['status']}")
        print(f"{'sum':<12} {total:>9.3f} s")
        suite = _child("--suite", workdir, *map(str, paths))
        per_image = statistics.median(suite["times"])
        print(
            f"whole Level-2 suite per image ({', '.join(suite['monitors'])}; open, read, metrics, evaluate, store): "
            f"{per_image:.2f} s CPU (target {SUITE_TARGET_S:.0f} s), peak RSS {suite['peak_mb']:.0f} MiB "
            f"(target {SUITE_TARGET_MB} MiB)"
        )
        rate = CORES / per_image  # images per second with one process per core
        streams = rate / (BURST_IMAGES / BURST_PERIOD_S)
        print(
            f"one {CORES}-core machine: {rate:.2f} images/s = {streams:.1f} Galactic Bulge streams "
            f"({BURST_IMAGES} images every {BURST_PERIOD_S:.0f} s), if memory allows {CORES} processes"
        )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--monitor":
        child_monitor(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) >= 4 and sys.argv[1] == "--suite":
        child_suite(sys.argv[3:], sys.argv[2])
    else:
        main()
