"""``rdmt demo``: two synthetic dark deliveries for all 18 detectors, monitored end to end.

Delivery 1 is clean. In delivery 2, WFI07 has a 96x96 cluster of hot pixels and
WFI12 a dark current raised by 40%. The inputs are written to a scratch
directory and removed afterwards; the store and reports stay in the output
directory.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path

import click

from .config import load_config
from .synthetic import Anomaly, HotCluster, write_dark_delivery

DELIVERIES = (
    ("demo-delivery-1", datetime(2026, 10, 1), {}),
    (
        "demo-delivery-2",
        datetime(2026, 11, 1),
        {
            "WFI07": Anomaly(hot_cluster=HotCluster(row=1300, col=2600, side=96)),
            "WFI12": Anomaly(dark_scale=1.4),
        },
    ),
)


def run_demo(output: Path, size: int, keep_inputs: bool) -> int:
    from .cli import run_and_report

    config = load_config(store_url=f"chdb://{output / 'store'}", output_dir=str(output))
    scratch = Path(tempfile.mkdtemp(prefix="rdmt-demo-inputs-"))
    worst = 0
    try:
        for seed, (run_id, useafter, anomalies) in enumerate(DELIVERIES, start=1):
            click.echo(
                f"\n== {run_id}: generating 18 synthetic {size}x{size} dark files (useafter {useafter:%Y-%m-%d})"
            )
            start = time.perf_counter()
            directory = scratch / run_id
            write_dark_delivery(directory, useafter, side=size, delivery_seed=seed, anomalies=anomalies)
            click.echo(f"   written in {time.perf_counter() - start:.1f} s; injected: {_describe(anomalies)}")
            start = time.perf_counter()
            code = run_and_report(config, [str(directory)], run_id)
            click.echo(f"   monitored in {time.perf_counter() - start:.1f} s")
            worst = max(worst, code)
    finally:
        if keep_inputs:
            click.echo(f"\ninputs kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    click.echo(
        f"\nTry: rdmt history --store chdb://{output / 'store'} --monitor dark --metric n_hot_pixels --detector WFI07"
    )
    return worst


def _describe(anomalies: dict[str, Anomaly]) -> str:
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
