"""Monitors: each turns one kind of Roman file into metrics.

Every monitor is a package of this one (``monitors/<name>/``, see ``docs/contributing.md``);
importing this package imports each of them, which registers its monitor class. Nothing else
lists the monitors: the registry (:func:`registered_monitors`) is the one list.
"""

import importlib
import pkgutil

from .base import (
    ExpectedFailure,
    ImageMonitor,
    Monitor,
    MonitorResult,
    get_monitor,
    monitors_for,
    registered_monitors,
)


def _import_monitor_packages() -> None:
    """Import every subpackage (a monitor's home), in name order, so that its class registers."""
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.ispkg:
            importlib.import_module(f"{__name__}.{module.name}")


_import_monitor_packages()

__all__ = [
    "ExpectedFailure",
    "ImageMonitor",
    "Monitor",
    "MonitorResult",
    "get_monitor",
    "monitors_for",
    "registered_monitors",
]
