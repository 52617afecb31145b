"""Synthetic WFI dark reference files with known, injected anomalies.

Built with roman_datamodels' own factory (``DarkRefModel.create_fake_data``)
and filled with seeded numpy data shaped like a real WFI dark:

* dark rate ~ N(0.005, 0.001) DN/s, with a small offset per amplifier;
* per detector, fixed positions of hot (0.1-1 DN/s), warm (0.02-0.1 DN/s) and
  dead (~1e-4 DN/s) pixels, flagged HOT/WARM/DEAD in ``dq``, and a few NaN
  pixels flagged DO_NOT_USE: the same positions in every delivery, as on a real
  detector; the noise differs between deliveries;
* anomalies on request: a square cluster of hot pixels, a scaled dark current.

Used by ``rdmt demo``, the tests and the benchmarks. Writes files; computes no metric.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from astropy.time import Time
from roman_datamodels import datamodels as dm
from roman_datamodels import dqflags

from .geometry import DETECTORS, N_AMPLIFIERS, detector_number

__all__ = ["DETECTORS", "Anomaly", "HotCluster", "dark_arrays", "dark_model", "write_dark_delivery"]


@dataclass(frozen=True)
class HotCluster:
    """A square of hot pixels: top-left frame pixel (row, col), side in pixels, rate in DN/s."""

    row: int
    col: int
    side: int
    rate: float = 0.5


@dataclass(frozen=True)
class Anomaly:
    """What to inject into one detector's file."""

    hot_cluster: HotCluster | None = None
    dark_scale: float = 1.0  # multiplies the whole dark current


def dark_arrays(
    detector: str, side: int = 4096, delivery_seed: int = 0, anomaly: Anomaly | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``dark_slope`` (DN/s), ``dark_slope_error`` and ``dq`` of one synthetic detector."""
    anomaly = anomaly or Anomaly()
    fixed = np.random.default_rng(1000 + detector_number(detector))  # defects: same in every delivery
    noise = np.random.default_rng([delivery_seed, detector_number(detector)])
    n = side * side
    scale = n / 4096**2

    rate = noise.standard_normal((side, side), dtype=np.float32)
    rate *= np.float32(0.001)
    amp_offsets = fixed.normal(0.005, 0.0001, N_AMPLIFIERS).astype(np.float32)
    rate += np.repeat(amp_offsets, side // N_AMPLIFIERS)[None, :]
    dq = np.zeros((side, side), dtype=np.uint32)

    flat = rate.reshape(-1)
    dq_flat = dq.reshape(-1)
    positions = fixed.permutation(n)[: int(3600 * scale) + 4]
    n_hot, n_warm, n_dead = int(2000 * scale) + 1, int(1000 * scale) + 1, int(500 * scale) + 1
    hot, warm = positions[:n_hot], positions[n_hot : n_hot + n_warm]
    dead = positions[n_hot + n_warm : n_hot + n_warm + n_dead]
    bad = positions[n_hot + n_warm + n_dead : n_hot + n_warm + n_dead + int(100 * scale) + 1]
    flat[hot] = np.exp(fixed.uniform(np.log(0.1), np.log(1.0), hot.size)) * noise.normal(1.0, 0.01, hot.size)
    flat[warm] = fixed.uniform(0.02, 0.1, warm.size) * noise.normal(1.0, 0.01, warm.size)
    flat[dead] = np.abs(noise.normal(1e-4, 1e-5, dead.size))
    flat[bad] = np.nan
    dq_flat[hot] |= dqflags.pixel.HOT
    dq_flat[warm] |= dqflags.pixel.WARM
    dq_flat[dead] |= dqflags.pixel.DEAD
    dq_flat[bad] |= dqflags.pixel.DO_NOT_USE

    if anomaly.dark_scale != 1.0:
        rate *= np.float32(anomaly.dark_scale)
    if anomaly.hot_cluster is not None:
        c = anomaly.hot_cluster
        rate[c.row : c.row + c.side, c.col : c.col + c.side] = c.rate
        dq[c.row : c.row + c.side, c.col : c.col + c.side] |= dqflags.pixel.HOT
    error = np.full((side, side), 3e-4, dtype=np.float32)
    return rate, error, dq


def dark_model(
    detector: str,
    useafter: datetime,
    side: int = 4096,
    delivery_seed: int = 0,
    anomaly: Anomaly | None = None,
) -> dm.DarkRefModel:
    """A complete DarkRefModel for ``detector`` with synthetic arrays."""
    model = dm.DarkRefModel.create_fake_data(shape=(side, side))
    model.meta.instrument.detector = detector
    model.meta.useafter = Time(useafter)
    model.meta.description = f"RDMT synthetic dark, {detector}"
    model.meta.pedigree = "DUMMY"
    model.meta.author = "rdmt synthetic"
    rate, error, dq = dark_arrays(detector, side, delivery_seed, anomaly)
    model.dark_slope, model.dark_slope_error, model.dq = rate, error, dq
    return model


def write_dark_delivery(
    directory: Path,
    useafter: datetime,
    side: int = 4096,
    delivery_seed: int = 0,
    anomalies: dict[str, Anomaly] | None = None,
    detectors: tuple[str, ...] = DETECTORS,
    on_file: Callable[[Path], None] | None = None,
) -> list[Path]:
    """Write one dark file per detector into ``directory``; return their paths (``on_file`` after each one)."""
    directory.mkdir(parents=True, exist_ok=True)
    anomalies = anomalies or {}
    paths = []
    for detector in detectors:
        model = dark_model(detector, useafter, side, delivery_seed, anomalies.get(detector))
        path = directory / f"roman_wfi_dark_{detector.lower()}_{useafter:%Y%m%d}.asdf"
        model.save(path)
        paths.append(path)
        if on_file is not None:
            on_file(path)
    return paths
