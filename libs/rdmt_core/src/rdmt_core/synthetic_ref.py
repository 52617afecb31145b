"""Synthetic WFI reference files of the types the reference-file monitors read, with known anomalies.

Each file is built with roman_datamodels' own reference model (``ReadnoiseRefModel``,
``GainRefModel``, ``SuperbiasRefModel``, ``MaskRefModel``, ``SaturationRefModel``,
``FlatRefModel``: ``<Model>.create_fake_data``) and filled with the arrays of the monitor's
``examples.reference_arrays(detector, side, delivery_seed, anomaly)``: each detector's fixed
structure (the same in every delivery) plus noise that differs between deliveries, and the
monitor's injected anomaly where asked. The dark monitor keeps its own writer
(:mod:`rdmt_core.synthetic`).

Used by ``rdmt demo``, the tests and the benchmarks. Writes files; computes no metric.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Collection
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from .geometry import DETECTORS
from .monitors import get_monitor

__all__ = ["reference_model", "reftype_of", "write_reference_delivery"]


def reftype_of(monitor: str) -> str:
    """The one reference type a reference-file monitor reads (``readnoise`` -> ``READNOISE``)."""
    reftypes = get_monitor(monitor).reftypes
    if len(reftypes) != 1:
        raise ValueError(f"monitor {monitor!r} reads {sorted(reftypes) or 'no reference type'}, not one reference type")
    return next(iter(reftypes))


# roman_datamodels' reference model of a reftype: <Reftype>RefModel, but for these
_MODEL_NAMES = {"BIAS": "SuperbiasRefModel"}


def _examples(monitor: str) -> ModuleType:
    return importlib.import_module(f"rdmt_core.monitors.{monitor}.examples")


def reference_model(
    monitor: str,
    detector: str,
    useafter: datetime,
    side: int = 4096,
    delivery_seed: int = 0,
    anomaly: bool = False,
    optical_element: str | None = None,
) -> Any:
    """A complete reference model of ``monitor``'s type for ``detector``, with synthetic arrays.

    ``optical_element`` is set in ``meta.instrument`` (and passed to the arrays) for the types
    delivered once per optical element, such as FLAT.
    """
    from astropy.time import Time
    from roman_datamodels import datamodels as dm

    reftype = reftype_of(monitor)
    model_class = getattr(dm, _MODEL_NAMES.get(reftype, f"{reftype.capitalize()}RefModel"))
    model = model_class.create_fake_data(shape=(side, side))
    model.meta.instrument.detector = detector
    model.meta.useafter = Time(useafter)
    model.meta.description = f"RDMT synthetic {reftype.lower()}, {detector}"
    model.meta.pedigree = "DUMMY"
    model.meta.author = "rdmt synthetic"
    build = _examples(monitor).reference_arrays
    options: dict[str, Any] = {}
    if optical_element is not None:
        model.meta.instrument.optical_element = optical_element
        if "optical_element" in inspect.signature(build).parameters:
            options["optical_element"] = optical_element
    for name, array in build(detector, side, delivery_seed, anomaly, **options).items():
        setattr(model, name, array)
    return model


def write_reference_delivery(
    monitor: str,
    directory: Path,
    useafter: datetime,
    side: int = 4096,
    delivery_seed: int = 0,
    anomalies: Collection[str] = (),
    detectors: tuple[str, ...] = DETECTORS,
    optical_element: str | None = None,
    on_file: Callable[[Path], None] | None = None,
) -> list[Path]:
    """Write one reference file of ``monitor``'s type per detector into ``directory``; return their paths.

    Parameters
    ----------
    monitor : str
        A registered reference-file monitor with an ``examples.reference_arrays`` (``readnoise``,
        ``gain``, ``bias``, ``mask``, ``saturation``, ``flat``).
    directory : Path
        Created when missing.
    useafter : datetime
        ``meta.useafter`` of every file.
    side : int
        Array side in pixels (4096 is a real detector).
    delivery_seed : int
        Seeds the noise that differs between deliveries.
    anomalies : collection of str
        Detectors that get the monitor's injected anomaly (``Monitor.anomaly``).
    detectors : tuple of str
        Which detectors to write.
    optical_element : str, optional
        The optical element of a per-element type (FLAT): in the metadata and the file name.
    on_file : callable, optional
        Called with each path once its file is written (progress).
    """
    directory.mkdir(parents=True, exist_ok=True)
    reftype = reftype_of(monitor).lower()
    element = f"_{optical_element.lower()}" if optical_element else ""
    paths = []
    for detector in detectors:
        model = reference_model(
            monitor, detector, useafter, side, delivery_seed, detector in anomalies, optical_element
        )
        path = directory / f"roman_wfi_{reftype}_{detector.lower()}{element}_{useafter:%Y%m%d}.asdf"
        model.save(path)
        paths.append(path)
        if on_file is not None:
            on_file(path)
    return paths
