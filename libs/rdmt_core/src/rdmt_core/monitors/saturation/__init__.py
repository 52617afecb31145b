"""The saturation monitor of SATURATION reference files (see README.md in this package)."""

from .monitor import SaturationMonitor
from .options import SaturationOptions

__all__ = ["SaturationMonitor", "SaturationOptions"]
