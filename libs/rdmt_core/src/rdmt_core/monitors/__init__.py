"""Monitors: each turns one kind of Roman file into metrics.

Importing this package registers every built-in monitor.
"""

from .astrometry import AstrometryMonitor
from .background import BackgroundMonitor
from .base import (
    ImageMonitor,
    Monitor,
    MonitorResult,
    ReportFigure,
    get_monitor,
    monitors_for,
    registered_monitors,
)
from .dark import DarkMonitor
from .one_over_f import OneOverFMonitor
from .psf_shape import PsfShapeMonitor

__all__ = [
    "AstrometryMonitor",
    "BackgroundMonitor",
    "DarkMonitor",
    "ImageMonitor",
    "Monitor",
    "MonitorResult",
    "OneOverFMonitor",
    "PsfShapeMonitor",
    "ReportFigure",
    "get_monitor",
    "monitors_for",
    "registered_monitors",
]
