"""The dark monitor of DARK reference files (see README.md in this package)."""

from .monitor import DarkMonitor
from .options import DarkOptions

__all__ = ["DarkMonitor", "DarkOptions"]
