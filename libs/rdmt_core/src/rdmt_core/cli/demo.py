"""``rdmt demo``: synthetic deliveries of every monitored type for all 18 detectors, monitored end to end.

Dark delivery 1 is clean. In delivery 2, WFI07 has a 96x96 cluster of hot
pixels and WFI12 a dark current raised by 40%. Then one delivery of each other
reference type (read noise, gain, bias, mask, saturation, flat), each with its
monitor's anomaly on one named detector (:data:`REFERENCE_DELIVERIES`). In the
Level-2 exposure, WFI04's WCS is off by (0.12, -0.08) arcsec, WFI09 has 1/f
noise, WFI13 a background step of 0.05 DN/s at amplifier 17 and WFI16 a PSF
blurred by 40%. Each step's inputs are written to a scratch directory and
removed once monitored; the store and reports stay in the output directory.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import click

from .common import load_config
from .embedded import run_and_report

EXPOSURE = ("demo-exposure-1", datetime(2026, 11, 2, 3, 4, 5))

# One delivery of each reference type besides DARK: monitor -> (the detector given the monitor's anomaly,
# the optical element of a per-element type). Every reference-file monitor with example files is here
# (tests/unit/test_registry.py checks it).
REFERENCE_DELIVERIES = {
    "readnoise": ("WFI02", None),
    "gain": ("WFI03", None),
    "bias": ("WFI05", None),
    "mask": ("WFI08", None),
    "saturation": ("WFI10", None),
    "flat": ("WFI14", "F158"),
}
REFERENCE_USEAFTER = datetime(2026, 10, 15)


def deliveries(size: int = 4096) -> tuple:
    """The two dark deliveries: run id, useafter and the anomalies per detector.

    The hot-pixel cluster sits at (1300, 2600) of a full-size frame, and at the same fraction of
    a smaller one, so a smaller demo keeps it.
    """
    from ..synthetic import Anomaly, HotCluster  # imported when the demo runs: it loads roman_datamodels

    return (
        ("demo-delivery-1", datetime(2026, 10, 1), {}),
        (
            "demo-delivery-2",
            datetime(2026, 11, 1),
            {
                "WFI07": Anomaly(
                    hot_cluster=HotCluster(row=1300 * size // 4096, col=min(2600 * size // 4096, size - 96), side=96)
                ),
                "WFI12": Anomaly(dark_scale=1.4),
            },
        ),
    )


def exposure_injections() -> dict:
    """The Level-2 exposure's injected problems per detector."""
    from ..synthetic_l2 import L2Injection

    return {
        "WFI04": L2Injection(wcs_shift_arcsec=(0.12, -0.08)),
        "WFI09": L2Injection(one_over_f=0.1),
        "WFI13": L2Injection(background_step=(17, 0.05)),
        "WFI16": L2Injection(psf_fwhm_scale=1.4),
    }


_INJECTED = {
    "WFI04": "WCS off by (0.12, -0.08) arcsec",
    "WFI09": "1/f noise at 0.1 of the white noise",
    "WFI13": "background step of 0.05 DN/s at amplifier 17",
    "WFI16": "PSF FWHM x1.4",
}


# Minutes on a 2-core machine at --size 4096 (make demo): writing and monitoring each step; scaled by area.
SMOKE_BELOW = 1024  # smaller demos exercise the code, not the science
STEP_MINUTES = {"dark delivery": (2.0, 4.0), "reference delivery": (1.5, 1.0), "Level-2 exposure": (3.5, 2.5)}


def estimate_minutes(size: int) -> float:
    """The demo's expected wall time in minutes at ``size`` (its dark, reference and Level-2 steps)."""
    scale = max((size / 4096) ** 2, 0.05)
    dark, reference, level2 = (sum(v) for v in STEP_MINUTES.values())
    return (2 * dark + len(REFERENCE_DELIVERIES) * reference + level2) * scale + 1.5  # + imports, PSF tables


class _WriteProgress:
    """Progress of writing a step's 18 files: a bar on a terminal, a line every few files otherwise."""

    def __init__(self, total: int, what: str) -> None:
        self.total, self.done, self.what = total, 0, what
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="file", desc=f"   writing {what}", leave=False)

    def __call__(self, path: Path) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.done % 6 == 0 or self.done == self.total:
            click.echo(f"   {self.done} of {self.total} {self.what} written")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _written(what: str, write) -> float:
    """Run ``write(on_file)`` with a progress display of 18 ``what``; the seconds it took."""
    start = time.perf_counter()
    progress = _WriteProgress(18, what)
    try:
        write(progress)
    finally:
        progress.close()
    return time.perf_counter() - start


def _monitored(config, directory: Path, run_id: str, what: str, keep_inputs: bool) -> int:
    """Monitor the step's files (a line per file as it is done), then remove them unless kept; the exit code."""
    start = time.perf_counter()
    click.echo(f"   monitoring the 18 {what} of {run_id} (each line as its file is done)")
    code = run_and_report(config, [str(directory)], run_id)
    click.echo(f"   monitored in {time.perf_counter() - start:.1f} s")
    if not keep_inputs:
        shutil.rmtree(directory, ignore_errors=True)
    return code


def run_demo(output: Path, size: int, keep_inputs: bool) -> int:
    from ..monitors import get_monitor
    from ..synthetic import write_dark_delivery
    from ..synthetic_l2 import write_l2_exposure
    from ..synthetic_ref import reftype_of, write_reference_delivery

    minutes = estimate_minutes(size)
    click.echo(
        f"RDMT demo: two dark deliveries, one delivery of each other reference type "
        f"({', '.join(reftype_of(m) for m in REFERENCE_DELIVERIES)}) and one Level-2 exposure of 18 detectors at "
        f"{size}x{size}, each written, then monitored (store and reports in {output}/). Expect "
        + ("under 2 minutes" if minutes < 2 else f"about {minutes:.0f} minutes")
        + " on a 2-core machine."
    )
    if size < SMOKE_BELOW:
        click.echo(
            f"   A smoke run: below {SMOKE_BELOW} pixels a super-pixel holds too few pixels for the change test "
            "and too few stars for the star monitors, so clean detectors fail and injected problems can be "
            f"missed. Use --size {SMOKE_BELOW} or more (4096, the default, is a real detector) to judge the results."
        )

    scratch = Path(tempfile.mkdtemp(prefix="rdmt-demo-inputs-"))
    config = load_config(
        None,
        store_url=f"chdb://{output / 'store'}",
        output_dir=str(output),
        monitors={"astrometry": {"options": {"catalog_dir": str(scratch / "catalog")}}},
    )
    worst = 0
    try:
        for seed, (run_id, useafter, anomalies) in enumerate(deliveries(size), start=1):
            click.echo(
                f"\n== {run_id}: generating 18 synthetic {size}x{size} dark files (useafter {useafter:%Y-%m-%d})"
            )
            directory = scratch / run_id
            seconds = _written(
                "dark files",
                lambda on_file, d=directory, u=useafter, s=seed, a=anomalies: write_dark_delivery(
                    d, u, side=size, delivery_seed=s, anomalies=a, on_file=on_file
                ),
            )
            click.echo(f"   written in {seconds:.1f} s; injected: {_describe(anomalies)}")
            worst = max(worst, _monitored(config, directory, run_id, "files", keep_inputs))
        for monitor, (detector, element) in REFERENCE_DELIVERIES.items():
            reftype, run_id = reftype_of(monitor), f"demo-{monitor}-1"
            label = f"{reftype} files" + (f" ({element})" if element else "")
            click.echo(
                f"\n== {run_id}: generating 18 synthetic {size}x{size} {label} (useafter {REFERENCE_USEAFTER:%Y-%m-%d})"
            )
            directory = scratch / run_id
            seconds = _written(
                label,
                lambda on_file, m=monitor, d=directory, a=detector, e=element: write_reference_delivery(
                    m, d, REFERENCE_USEAFTER, side=size, delivery_seed=1, anomalies={a}, optical_element=e,
                    on_file=on_file,
                ),
            )  # fmt: skip
            click.echo(
                f"   written in {seconds:.1f} s; injected: {detector} {get_monitor(monitor).anomaly.description}"
            )
            worst = max(worst, _monitored(config, directory, run_id, "files", keep_inputs))
        run_id, start_time = EXPOSURE
        click.echo(
            f"\n== {run_id}: generating 18 synthetic Level-2 images ({size - 8}x{size - 8}, {start_time:%Y-%m-%d})"
        )
        seconds = _written(
            "Level-2 images (galsim.roman PSFs)",
            lambda on_file: write_l2_exposure(
                scratch / run_id, start_time, side=size, injections=exposure_injections(),
                catalog_dir=scratch / "catalog", on_file=on_file,
            ),
        )  # fmt: skip
        injected = "; ".join(f"{d} {what}" for d, what in _INJECTED.items())
        click.echo(f"   written in {seconds:.1f} s; injected: {injected}")
        worst = max(worst, _monitored(config, scratch / run_id, run_id, "images", keep_inputs))
    finally:
        if keep_inputs:
            click.echo(f"\ninputs kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
            click.echo(
                "\nThe synthetic inputs are removed (the reports' Source lines name where they were); "
                "--keep-inputs keeps them."
            )
    click.echo(
        f"\nTry: rdmt history --store chdb://{output / 'store'} --monitor dark --metric n_hot_pixels --detector WFI07"
    )
    click.echo(
        f'     rdmt sql --store chdb://{output / "store"} "SELECT detector, monitor, status, n_fail FROM files '
        f"WHERE run_id = '{EXPOSURE[0]}' ORDER BY detector, monitor\""
    )
    click.echo(
        f"Dashboard: rdmt serve --store chdb://{output / 'store'} --reports {output / 'reports'}  (http://127.0.0.1:8050/)"
    )
    return worst


def _describe(anomalies: dict) -> str:
    if not anomalies:
        return "nothing (clean delivery)"
    parts = []
    for detector, anomaly in anomalies.items():
        if anomaly.hot_cluster:
            c = anomaly.hot_cluster
            parts.append(f"{detector} {c.side}x{c.side} hot-pixel cluster at [{c.row}, {c.col}]")
        if anomaly.dark_scale != 1.0:
            parts.append(f"{detector} dark current x{anomaly.dark_scale:g}")
    return "; ".join(parts)


@click.command()
@click.option("--output", default="demo-output", show_default=True, help="Where the store and reports go.")
@click.option(
    "--size",
    default=4096,
    show_default=True,
    help="Detector side in pixels (a multiple of 64, at least 256); below 1024 a smoke run whose verdicts mean little.",
)
@click.option("--keep-inputs", is_flag=True, help="Keep the synthetic input files.")
def demo(output: str, size: int, keep_inputs: bool) -> None:
    """Generate synthetic deliveries of every monitored type for WFI01..WFI18 and monitor them.

    Two dark deliveries, one delivery of each other reference type and one Level-2 exposure, each
    with known problems on named detectors; the store and reports go to --output.
    """
    if size < 256 or size % 64:
        # 32 super-pixels across, each with even and odd columns (the bias monitor), and room for the injections
        raise click.BadParameter(
            f"{size} is not a multiple of 64 of at least 256 (4096 is a real detector)", param_hint="--size"
        )
    sys.exit(run_demo(Path(output), size, keep_inputs))
