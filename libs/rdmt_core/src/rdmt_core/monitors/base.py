"""The monitor registry.

A monitor is a pure function from arrays to metrics plus a small class that
names it, says which files it accepts (reference types or Level-2 model types),
which arrays it reads and which options it takes. Subclassing :class:`Monitor`
registers the monitor; a second monitor with the same name is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from ..data_access import ArraySpec
from ..errors import ConfigError
from ..records import Metric, MetricSpec


@dataclass(frozen=True)
class MonitorResult:
    """Metrics of one file, plus notes on how they were computed (shown in reports)."""

    metrics: list[Metric]
    notes: dict[str, str] = field(default_factory=dict)


class Monitor:
    """Base class of monitors; subclasses register themselves by ``name``."""

    name: ClassVar[str]
    title: ClassVar[str]
    reftypes: ClassVar[frozenset[str]] = frozenset()
    model_types: ClassVar[frozenset[str]] = frozenset()
    arrays: ClassVar[dict[str, ArraySpec]]
    border: ClassVar[int] = 0  # reference-pixel border already removed from the arrays
    options_model: ClassVar[type[BaseModel]]
    metric_specs: ClassVar[tuple[MetricSpec, ...]]

    _registry: ClassVar[dict[str, type[Monitor]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
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
    def example_arrays(cls, side: int, seed: int) -> dict[str, np.ndarray]:
        """Realistic synthetic arrays this monitor accepts (used by the registry test and benchmarks)."""
        raise NotImplementedError

    @classmethod
    def compute(cls, arrays: dict[str, np.ndarray], options: BaseModel) -> MonitorResult:
        """Pure: arrays (as declared in ``arrays``) and validated options in, metrics out."""
        raise NotImplementedError


def registered_monitors() -> dict[str, type[Monitor]]:
    """All registered monitors by name."""
    return dict(Monitor._registry)


def get_monitor(name: str) -> type[Monitor]:
    try:
        return Monitor._registry[name]
    except KeyError:
        known = ", ".join(sorted(Monitor._registry)) or "none"
        raise ConfigError(f"unknown monitor {name!r} (known: {known})") from None


def monitors_for(kind: str) -> list[type[Monitor]]:
    """Monitors that accept files of ``kind`` (a reftype or a model type), by name."""
    return [m for _, m in sorted(Monitor._registry.items()) if m.accepts(kind)]
