"""Calibration of the background monitor's jump limits on synthetic Level-2 images (a few minutes).

Prints:

* **false alarms**: clean realistic images (galsim.roman PSFs, ~2,000 stars per full frame,
  different seeds and detectors) at reduced sizes and at full size: how many have a jump metric
  at fail (and at caution), with the largest |significance| at each scale;
* **readout 1/f**: images with strong injected 1/f noise (``L2Injection(one_over_f=...)``): they
  must not fail the background monitor (the one_over_f monitor reports them);
* **long-memory 1/f**: 1/f noise drawn over 8 frames' time and one frame's worth added (not zero-mean
  per frame, unlike the generator's): the amplifier significances' spread and the images that fail;
* **partial step**: a step over the first quarter of the rows of one boundary, on white noise: the
  amplifier and super-pixel significances (it must be flagged, not taken for correlated noise);
* **detection**: a step injected at a boundary at 3, 5 and 8 times the error the monitor reports
  for that boundary on the clean image: how often it fails;
* **sensitivity**: for sky levels 0.1, 0.2, 0.8 and 2 DN/s (pixel noise from the sky's Poisson
  noise in a 140 s exposure plus a read-noise floor, 0.08 DN/s at 0.8 DN/s as the default scene),
  the error of an amplifier and a super-pixel step on a full-size clean image and the step at the
  5-sigma limit (fails half the time) and at 5 + 1.645 sigma (fails 95 % of the time), in DN/s and
  in % of the sky (a super-pixel's at its 6-sigma limit);
* **speed**: CPU seconds per full-size image of :func:`background_metrics`.

The evaluation uses the background monitor's own ``defaults.yaml`` (soc limits) directly.
Run: ``.venv/bin/python benchmarks/calibrate_background.py [--quick]``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from rdmt_core.config import EvaluatorsConfig  # noqa: E402
from rdmt_core.evaluators import History, evaluate_metrics  # noqa: E402
from rdmt_core.geometry import N_AMPLIFIERS, Geometry  # noqa: E402
from rdmt_core.monitors import background  # noqa: E402
from rdmt_core.monitors.background import BackgroundOptions  # noqa: E402
from rdmt_core.monitors.background.metrics import background_metrics  # noqa: E402
from rdmt_core.monitors.l2_examples import in_frame  # noqa: E402
from rdmt_core.records import Status  # noqa: E402
from rdmt_core.synthetic_l2 import (  # noqa: E402
    BORDER,
    L2Injection,
    L2Scene,
    field_catalog,
    from_readout_order,
    l2_arrays,
    pink_noise,
)

EXPOSURE_S, NOISE_AT_08 = 140.0, 0.08
READ_FLOOR = float(np.sqrt(NOISE_AT_08**2 - 0.8 / EXPOSURE_S))  # DN/s: 0.026, so a 0.8 DN/s sky has 0.08


def pixel_noise(sky: float) -> float:
    """Per-pixel noise (DN/s) of a sky of ``sky`` DN/s: Poisson in 140 s plus the read floor."""
    return float(np.sqrt(sky / EXPOSURE_S + READ_FLOOR**2))


def evaluators() -> EvaluatorsConfig:
    defaults = yaml.safe_load((Path(background.__file__).parent / "defaults.yaml").read_text(encoding="utf-8"))
    return EvaluatorsConfig.model_validate(defaults["evaluators"])


def frame(side: int, seed: int, detector: str, injection: L2Injection | None = None, **scene) -> dict:
    scene = L2Scene(seed=seed, **scene)
    arrays, *_ = l2_arrays(detector, field_catalog(scene, side, (detector,)), scene, side, injection=injection)
    return in_frame(arrays, side)


def measure(arrays: dict, config: EvaluatorsConfig) -> tuple[dict, dict[str, int], float]:
    """Metric values (and ``notes``), the worst soc status per metric/scale (severity), the metrics' CPU seconds."""
    start = time.process_time()
    result = background_metrics(arrays["data"], arrays["dq"], BackgroundOptions())
    seconds = time.process_time() - start
    side = arrays["data"].shape[0]
    blocks = evaluate_metrics(result.metrics, config, History(), Geometry(side, BORDER).pixels_per_cell())
    worst: dict[str, int] = {}
    for block in blocks:
        if block.evaluator == "soc":
            severity = max(Status(s).severity for s in block.status)
            key = f"{block.metric}/{block.scale}"
            worst[key] = max(worst.get(key, 0), severity)
    return {"notes": result.notes, **{m.spec.name: m.values for m in result.metrics}}, worst, seconds


def verdict(worst: dict[str, int]) -> str:
    """pass, caution or FAIL (with the metrics/scales at that status) over every soc evaluation of the image."""
    top = max((v for v in worst.values() if v != Status.INCOMPLETE.severity), default=0)
    word = {Status.FAIL.severity: "FAIL", Status.CAUTION.severity: "caution"}.get(top, "pass")
    return word if word == "pass" else f"{word} ({', '.join(k for k, v in worst.items() if v == top)})"


def zmax(values: dict) -> str:
    z = values["background_jump_significance"]
    return f"|z| amp {np.nanmax(np.abs(z.amplifier)):4.2f} sp {np.nanmax(np.abs(z.superpixel)):4.2f}"


def false_alarms(config: EvaluatorsConfig, cases: list[tuple[int, int, str]]) -> None:
    print("\n== clean images: false alarms ==")
    counts: dict[int, dict[str, int]] = {}
    for side, seed, detector in cases:
        values, worst, _ = measure(frame(side, seed, detector), config)
        v = verdict(worst)
        tally = counts.setdefault(side, {"images": 0, "FAIL": 0, "caution": 0, "pass": 0})
        tally["images"] += 1
        tally[v.split()[0]] += 1
        factor = _factor(values["notes"]["jump noise"])
        print(f"  {side:5d} seed {seed:2d} {detector}: {v:7s} {zmax(values)}  correlated-noise factor {factor}")
    for side, tally in sorted(counts.items()):
        print(f"  side {side}: {tally['FAIL']} of {tally['images']} fail, {tally['caution']} at caution")


def _factor(note: str) -> str:
    """The median factor of the ``jump noise`` note (the steps' scatter over their white errors)."""
    return note.split("scatter ")[1].split(" times")[0]


def one_over_f(config: EvaluatorsConfig, side: int, amplitudes: tuple[float, ...], seeds: range) -> None:
    print(f"\n== readout 1/f ({side}): must not fail background ==")
    for amplitude in amplitudes:
        for seed in seeds:
            values, worst, _ = measure(frame(side, seed, "WFI07", L2Injection(one_over_f=amplitude)), config)
            error = values["background_jump_error"].amplifier
            print(
                f"  one_over_f {amplitude:3.1f} seed {seed}: {verdict(worst):7s} {zmax(values)}  "
                f"median amplifier error {np.median(error):.2e} DN/s, factor {_factor(values['notes']['jump noise'])}"
            )


def white(side: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.8, NOISE_AT_08, (side, side))


def bare(frame_data: np.ndarray) -> dict:
    return {"data": frame_data, "dq": np.zeros(frame_data.shape, np.uint32)}


def long_memory(config: EvaluatorsConfig, side: int, amplitudes: tuple[float, ...], seeds: range) -> None:
    print(f"\n== long-memory 1/f ({side}; drawn over 8 frames, one kept): must not fail background ==")
    length = side * (side // N_AMPLIFIERS)
    for amplitude in amplitudes:
        zs, fails, cautions, spmax = [], 0, 0, 0.0
        for seed in seeds:
            rng = np.random.default_rng(seed)
            shared = pink_noise(rng, (1, 8 * length))[:, :length]
            own = pink_noise(rng, (N_AMPLIFIERS, 8 * length))[:, :length]
            series = amplitude * NOISE_AT_08 * (np.sqrt(0.7) * shared + np.sqrt(0.3) * own)
            values, worst, _ = measure(bare(white(side, seed) + from_readout_order(series, side)), config)
            z = values["background_jump_significance"]
            zs.append(z.amplifier[1:])
            spmax = max(spmax, float(np.nanmax(np.abs(z.superpixel))))
            v = verdict(worst)
            fails += v.startswith("FAIL")
            cautions += v.startswith("caution")
        z = np.concatenate(zs)
        print(
            f"  one_over_f {amplitude:3.1f}: {fails} of {len(seeds)} fail, {cautions} at caution; amplifier z "
            f"std {z.std():.2f}, {np.mean(np.abs(z) > 5):.1%} beyond 5, max {np.abs(z).max():.2f}; "
            f"super-pixel max {spmax:.2f}"
        )


def partial_step(config: EvaluatorsConfig, side: int, steps: tuple[float, ...]) -> None:
    print(f"\n== step over the first quarter of the rows of boundary 16|17 ({side}, white noise) ==")
    cell = side // N_AMPLIFIERS
    for step in steps:
        data = white(side, 1)
        data[: side // 4, 16 * cell :] += step
        values, worst, _ = measure(bare(data), config)
        z = values["background_jump_significance"]
        cells = z.superpixel.reshape(N_AMPLIFIERS, N_AMPLIFIERS)[:, 16]
        print(
            f"  step {step:5.2f} DN/s: amplifier 17 {z.amplifier[16]:6.1f} sigma, super-pixels beyond 6 sigma "
            f"{int(np.sum(np.abs(cells) > 6))} of 8 (max {np.nanmax(np.abs(cells)):.1f}); {verdict(worst)}"
        )


def detection(config: EvaluatorsConfig, side: int, seeds: range, boundary_amp: int = 17) -> None:
    print(f"\n== detection of a step at amplifier {boundary_amp} ({side}) ==")
    for k in (3.0, 5.0, 8.0):
        fails, zs = 0, []
        for seed in seeds:
            clean, _, _ = measure(frame(side, seed, "WFI03"), config)
            error = clean["background_jump_error"].amplifier[boundary_amp - 1]
            injection = L2Injection(background_step=(boundary_amp, float(k * error)))
            values, _, _ = measure(frame(side, seed, "WFI03", injection), config)
            blocks_fail = values["background_jump_significance"].amplifier[boundary_amp - 1]
            zs.append(blocks_fail)
            fails += abs(blocks_fail) > 5.0
        print(f"  step {k:3.1f} x its error: fails (amplifier, 5 sigma) {fails} of {len(zs)}; z = {np.round(zs, 2)}")


def sensitivity(config: EvaluatorsConfig, side: int) -> None:
    print(f"\n== sensitivity ({side} frame; limits 5 sigma, super-pixels 6) ==")
    print("  sky DN/s | pixel noise | amp error | amp step 50% / 95% (DN/s, % sky) | super-pixel error, 6 sigma")
    for sky in (0.1, 0.2, 0.8, 2.0):
        noise = pixel_noise(sky)
        values, worst, _ = measure(frame(side, 11, "WFI10", background=sky, white_noise=noise), config)
        amp = float(np.median(values["background_jump_error"].amplifier))
        cell = float(np.nanmedian(values["background_jump_error"].superpixel))
        print(
            f"  {sky:4.1f}     | {noise:.4f}      | {amp:.2e}  | {5 * amp:.4f} ({500 * amp / sky:.2f} %) / "
            f"{6.645 * amp:.4f} ({664.5 * amp / sky:.2f} %) | {cell:.2e}, {6 * cell:.4f} ({600 * cell / sky:.1f} %)"
            f"  [clean: {verdict(worst)}]"
        )


def speed(config: EvaluatorsConfig, repeats: int = 3) -> None:
    arrays = frame(4096, 0, "WFI01")
    times = [measure(arrays, config)[2] for _ in range(repeats)]
    print(f"\n== speed: background_metrics on a full-size image: {min(times):.2f} s CPU (best of {repeats}) ==")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images (a smoke run)")
    parser.add_argument("--only", choices=("long_memory", "partial_step"), help="run one section")
    args = parser.parse_args(argv)
    config = evaluators()
    if args.only == "long_memory":
        return long_memory(config, 1024, (1.0, 2.0, 4.0), range(4 if args.quick else 12))
    if args.only == "partial_step":
        return partial_step(config, 1024, (0.02, 0.05, 0.2, 1.0))
    detectors = [f"WFI{n:02d}" for n in range(1, 19)]
    n_small = 4 if args.quick else 24
    cases = [(1024, seed, detectors[seed % 18]) for seed in range(n_small)]
    cases += [(512, 100 + seed, detectors[(seed * 5) % 18]) for seed in range(n_small // 2)]
    cases += [] if args.quick else [(4096, 200 + seed, detectors[seed * 7]) for seed in range(2)]
    false_alarms(config, cases)
    one_over_f(config, 1024, (1.0, 2.0, 4.0), range(1 if args.quick else 3))
    long_memory(config, 1024, (1.0, 2.0, 4.0), range(4 if args.quick else 12))
    partial_step(config, 1024, (0.02, 0.05, 0.2, 1.0))
    detection(config, 1024, range(2 if args.quick else 6))
    sensitivity(config, 1024 if args.quick else 4096)
    speed(config, 1 if args.quick else 3)


if __name__ == "__main__":
    main()
