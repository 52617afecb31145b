"""The gain monitor of GAIN reference files (see README.md in this package)."""

from .monitor import GainMonitor
from .options import GainOptions

__all__ = ["GainMonitor", "GainOptions"]
