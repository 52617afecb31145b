"""Monitors: each turns one kind of Roman file into metrics.

Importing this package registers every built-in monitor.
"""

from .base import Monitor, MonitorResult, ReportFigure, get_monitor, monitors_for, registered_monitors
from .dark import DarkMonitor

__all__ = [
    "DarkMonitor",
    "Monitor",
    "MonitorResult",
    "ReportFigure",
    "get_monitor",
    "monitors_for",
    "registered_monitors",
]
