"""The read-noise monitor of READNOISE reference files (see README.md in this package)."""

from .monitor import ReadnoiseMonitor
from .options import ReadnoiseOptions

__all__ = ["ReadnoiseMonitor", "ReadnoiseOptions"]
