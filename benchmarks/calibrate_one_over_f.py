"""Calibrate the one_over_f monitor on synthetic Level-2 images with realistic (galsim.roman) PSFs.

Prints (1) the false alarms of the default soc limits on clean images (several detectors, star
fields and sizes, each also transposed: the star light read the other way), (2) the detection of
injected readout-order 1/f noise against its amplitude (units of the white-noise sigma), and (3)
the seconds per full-size image. Takes several minutes (a 4096 image takes ~15 s to draw).

    .venv/bin/python benchmarks/calibrate_one_over_f.py [--quick]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import yaml

from rdmt_core.monitors.l2_examples import in_frame
from rdmt_core.monitors.one_over_f.metrics import one_over_f_metrics
from rdmt_core.monitors.one_over_f.options import OneOverFOptions
from rdmt_core.synthetic_l2 import DETECTORS, L2Injection, L2Scene, field_catalog, l2_arrays

DEFAULTS = Path(__file__).resolve().parents[1] / "libs/rdmt_core/src/rdmt_core/monitors/one_over_f/defaults.yaml"


def soc_limits() -> dict[str, dict[str, float]]:
    """The default soc limits per metric and scale (a number applies to every scale)."""
    limits = yaml.safe_load(DEFAULTS.read_text())["evaluators"]["soc"]["limits"]
    return {k: v if isinstance(v, dict) else {"detector": v, "amplifier": v} for k, v in limits.items()}


def frame(detector: str, side: int, seed: int, amplitude: float = 0.0, psf: str = "roman") -> dict[str, np.ndarray]:
    scene = L2Scene(seed=seed, psf_model=psf)
    arrays, *_ = l2_arrays(
        detector, field_catalog(scene, side, (detector,)), scene, side, injection=L2Injection(one_over_f=amplitude)
    )
    return in_frame(arrays, side)


def measure(arrays: dict[str, np.ndarray]) -> dict[str, object]:
    result = one_over_f_metrics(arrays["data"], arrays["dq"], OneOverFOptions())
    return {m.spec.name: m.values for m in result.metrics}


def failures(values: dict[str, object], limits: dict[str, dict[str, float]]) -> list[str]:
    out = []
    for name, by_scale in limits.items():
        for scale, limit in by_scale.items():
            v = values[name].detector if scale == "detector" else values[name].amplifier
            if v is not None and np.any(np.asarray(v) > limit):
                out.append(f"{name}/{scale}")
    return out


def line(values: dict[str, object]) -> str:
    z = values["one_over_f_significance"]
    return (
        f"largest amplifier {np.nanmax(z.amplifier):5.1f}, pooled {z.detector:5.1f}, "
        f"common {values['one_over_f_common_significance'].detector:5.1f} sigma"
    )


def false_alarms(cases: list[tuple[str, int, int]], limits) -> None:
    print("== false alarms on clean images (default soc limits) ==")
    n_fail = n_images = 0
    for detector, side, seed in cases:
        arrays = frame(detector, side, seed)
        for label, image in (("", arrays), (" transposed", {k: np.ascontiguousarray(v.T) for k, v in arrays.items()})):
            values = measure(image)
            failed = failures(values, limits)
            n_images += 1
            n_fail += bool(failed)
            verdict = "FAIL " + ",".join(failed) if failed else "pass"
            print(f"{detector} {side:4d} seed {seed}{label:11s}: {line(values)}  {verdict}")
    print(f"-> {n_fail} of {n_images} clean images fail (each image also counted transposed)\n")


def special_cases(limits, side: int = 4096) -> None:
    """Clean full-size images that are hard on a 1/f test: bright halos everywhere, idealised stars, a gradient."""
    print(f"== clean special cases at {side} (as drawn and transposed) ==")
    cases = (
        ("crowded bright field", L2Scene(seed=11, star_density=8000 / 4088**2, bright_mag=11.0), None),
        ("idealised (moffat) PSF", L2Scene(seed=12, psf_model="moffat"), None),
        ("background gradient 2 DN/s", L2Scene(seed=13), L2Injection(background_gradient=(2.0, 2.0))),
    )
    n_fail = 0
    for label, scene, injection in cases:
        arrays, *_ = l2_arrays("WFI10", field_catalog(scene, side, ("WFI10",)), scene, side, injection=injection)
        arrays = in_frame(arrays, side)
        for suffix, image in (("", arrays), (" transposed", {k: np.ascontiguousarray(v.T) for k, v in arrays.items()})):
            values = measure(image)
            failed = failures(values, limits)
            n_fail += bool(failed)
            print(f"{label + suffix:38s}: {line(values)}  {'FAIL ' + ','.join(failed) if failed else 'pass'}")
    print(f"-> {n_fail} of {2 * len(cases)} fail\n")


def sensitivity(side: int, amplitudes: list[float], cases: list[tuple[str, int]], limits) -> None:
    print(f"== sensitivity at {side}: injected 1/f (70% common to the amplifiers) ==")
    print("amplitude | images failing | pooled sigma (mean, min) | common sigma (mean, min) | amplifiers over limit")
    amp_limit = limits["one_over_f_significance"]["amplifier"]
    for amplitude in amplitudes:
        pooled, common, amps, failing = [], [], [], 0
        for detector, seed in cases:
            values = measure(frame(detector, side, seed, amplitude))
            pooled.append(values["one_over_f_significance"].detector)
            common.append(values["one_over_f_common_significance"].detector)
            amps.append(np.mean(values["one_over_f_significance"].amplifier > amp_limit))
            failing += bool(failures(values, limits))
        print(
            f"{amplitude:9.3g} | {failing:2d}/{len(cases):<2d} | {np.mean(pooled):5.1f} {np.min(pooled):5.1f} | "
            f"{np.mean(common):5.1f} {np.min(common):5.1f} | {100 * np.mean(amps):4.0f}%",
            flush=True,
        )
    print()


def timing(n: int = 2) -> None:
    print("== seconds per full-size image (one process, time.process_time, warm) ==")
    arrays = frame("WFI03", 4096, 0)
    measure(arrays)
    start = time.process_time()
    for _ in range(n):
        measure(arrays)
    print(f"one_over_f_metrics: {(time.process_time() - start) / n:.2f} s per 4096 frame\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images (a smoke run)")
    args = parser.parse_args()
    limits = soc_limits()
    print(f"soc limits: {limits}\n")
    small = [(d, 512, 0) for d in DETECTORS] + [(d, 1024, 1) for d in DETECTORS[::3]]
    small += [("WFI07", 4096, 2), ("WFI14", 4096, 3)]
    if args.quick:
        small = small[:4]
    false_alarms(small, limits)
    if not args.quick:
        special_cases(limits)
    cases = [(d, s) for s in (5, 6) for d in DETECTORS[:: 3 if not args.quick else 9]]
    sensitivity(512, [0.1, 0.15, 0.2, 0.25, 0.3, 0.4], cases, limits)
    if not args.quick:
        sensitivity(1024, [0.05, 0.1, 0.15, 0.2], cases[:6], limits)
        sensitivity(4096, [0.01, 0.02, 0.03, 0.05], [("WFI02", 7), ("WFI11", 8), ("WFI17", 9)], limits)
    timing()


if __name__ == "__main__":
    main()
