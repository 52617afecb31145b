"""The monitor registry.

A monitor is a pure function from arrays to metrics plus a small class that
names it, says which files it accepts (reference types or Level-2 model types),
which arrays it reads and which options it takes. Subclassing :class:`Monitor`
registers the monitor; a second monitor with the same name is rejected.

Each monitor lives in a package of its own (``monitors/<name>/``): the pure metrics function, the
thin class, its ``defaults.yaml`` (options and limits), its example data with an injectable anomaly
and its documentation page; ``docs/contributing.md`` describes the layout. A monitor draws nothing:
it leaves figure data in :attr:`MonitorResult.extras` and names the figures it wants in
:attr:`Monitor.figures`; the outputs draw them.

Monitors that need more than arrays (the WCS of an image, a reference
catalogue) read it in :meth:`Monitor.load_context`, the monitor's only I/O; the
context is passed to :meth:`Monitor.compute` beside the arrays. A monitor that
cannot measure a file (no WCS, too few stars) returns NaN values and says why
in its notes under ``status``: that is a status, not an error.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel

from ..errors import ConfigError
from ..records import ArraySpec, Metric, MetricSpec

if TYPE_CHECKING:
    from ..data_access import RomanInput

Context = Mapping[str, Any]


@dataclass(frozen=True)
class MonitorResult:
    """Metrics of one file, plus notes on how they were computed (shown in reports)."""

    metrics: list[Metric]
    notes: dict[str, str] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # figure data (star offsets, spectra), not stored
    # one boolean image per class of Monitor.tracked_pixels (full frame): the pixel-change metrics compare
    # them with the previous file's (rdmt_core.pixel_masks); kept packed in the store and the evaluator's state
    masks: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class ExpectedFailure:
    """What a monitor's example data with its injected anomaly must make fail (checked by the registry test)."""

    metric: str  # a metric of the monitor that the evaluation with the default configuration fails
    description: str  # the injected anomaly, in the domain's words


class Monitor:
    """Base class of monitors; subclasses register themselves by ``name``."""

    name: ClassVar[str]
    title: ClassVar[str]
    # what the monitor measures, one line: the README's monitor table and docs/index.md (monitors/index_doc.py)
    summary: ClassVar[str] = ""
    reftypes: ClassVar[frozenset[str]] = frozenset()
    model_types: ClassVar[frozenset[str]] = frozenset()
    # meta.exposure.type values of the Level-2 files that ingest routes to this monitor (archive events)
    exposure_types: ClassVar[frozenset[str]] = frozenset()
    arrays: ClassVar[dict[str, ArraySpec]]
    border: ClassVar[int] = 0  # reference-pixel border already removed from the arrays
    options_model: ClassVar[type[BaseModel]]
    metric_specs: ClassVar[tuple[MetricSpec, ...]]
    # the anomaly that example_arrays/example_context(anomaly=True) inject and the metric it fails
    anomaly: ClassVar[ExpectedFailure | None] = None
    # report figures beside the super-pixel maps, by name in rdmt_core.outputs.monitor_figures.FIGURES;
    # their data is in MonitorResult.extras or the metrics
    figures: ClassVar[tuple[str, ...]] = ()
    # pixel classes whose masks the monitor returns (MonitorResult.masks), e.g. ("hot", "dead"): n_new_<class>
    # and n_recovered_<class> are added after measuring; list them in metric_specs with
    # rdmt_core.pixel_masks.derived_specs(name, tracked_pixels) (docs/pixel-changes.md)
    tracked_pixels: ClassVar[tuple[str, ...]] = ()

    _registry: ClassVar[dict[str, type[Monitor]]] = {}

    def __init_subclass__(cls, abstract: bool = False, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if abstract:  # a shared base of several monitors (ImageMonitor), not itself a monitor
            return
        name = cls.__dict__.get("name")
        if name is None:
            raise TypeError(f"monitor class {cls.__name__} must define 'name'")
        if name in Monitor._registry:
            raise TypeError(f"a monitor named {name!r} is already registered ({Monitor._registry[name].__name__})")
        if not (cls.reftypes or cls.model_types):
            raise TypeError(f"monitor {name!r} accepts no reference type and no model type")
        Monitor._registry[name] = cls

    @classmethod
    def accepts(cls, kind: str) -> bool:
        return kind.upper() in cls.reftypes or kind in cls.model_types

    @classmethod
    def spec(cls, metric: str) -> MetricSpec:
        for spec in cls.metric_specs:
            if spec.name == metric:
                return spec
        raise KeyError(f"monitor {cls.name!r} has no metric {metric!r}")

    @classmethod
    def _examples(cls) -> Any:
        """The ``examples`` module of the monitor's package (imported only when example data is asked for)."""
        return importlib.import_module(".examples", cls.__module__.rpartition(".")[0])

    @classmethod
    def example_arrays(cls, side: int, seed: int, anomaly: bool = False) -> dict[str, np.ndarray]:
        """Realistic synthetic arrays this monitor accepts (used by the registry test and benchmarks).

        With ``anomaly``, the arrays carry the anomaly that :attr:`anomaly` describes. The package's
        ``examples.example_arrays(side, seed, anomaly)`` makes them.
        """
        return cls._examples().example_arrays(side, seed, anomaly)

    @classmethod
    def example_context(cls, side: int, seed: int, anomaly: bool = False) -> dict[str, Any]:
        """The context matching :meth:`example_arrays`: the package's ``examples.example_context``, if any, else {}."""
        make = getattr(cls._examples(), "example_context", None)
        return {} if make is None else make(side, seed, anomaly)

    @classmethod
    def load_context(cls, roman: RomanInput, options: BaseModel) -> dict[str, Any]:
        """Read what :meth:`compute` needs beside the arrays (WCS, catalogue); the monitor's I/O edge.

        Problems that make the file unmeasurable by this monitor only (no WCS, no catalogue) are
        returned in the context for :meth:`compute` to report as a status, not raised.
        """
        return {}

    @classmethod
    def compute(cls, arrays: dict[str, np.ndarray], options: BaseModel, context: Context) -> MonitorResult:
        """Pure: arrays (as declared in ``arrays``), validated options and the context in, metrics out."""
        raise NotImplementedError


class ImageMonitor(Monitor, abstract=True):
    """Base of the Level-2 image monitors: ``ImageModel`` files, ``data`` and ``dq`` in the full frame.

    The 4088x4088 science arrays reach :meth:`Monitor.compute` placed in the 4096x4096 frame with
    a 4-pixel NaN border (``border = 4``): science pixel ``[y, x]`` (the WCS's 0-based pixel) is
    frame pixel ``[y + 4, x + 4]``.
    """

    model_types = frozenset({"ImageModel"})
    exposure_types = frozenset({"WFI_IMAGE"})
    arrays = {"data": ArraySpec("f"), "dq": ArraySpec("ui")}  # noqa: RUF012
    border = 4


def registered_monitors() -> dict[str, type[Monitor]]:
    """All registered monitors by name."""
    return dict(Monitor._registry)


def get_monitor(name: str) -> type[Monitor]:
    try:
        return Monitor._registry[name]
    except KeyError:
        import difflib

        known = ", ".join(sorted(Monitor._registry)) or "none"
        close = difflib.get_close_matches(name, list(Monitor._registry), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown monitor {name!r} (known: {known}{hint})") from None


def monitors_for(kind: str) -> list[type[Monitor]]:
    """Monitors that accept files of ``kind`` (a reftype or a model type), by name."""
    return [m for _, m in sorted(Monitor._registry.items()) if m.accepts(kind)]
