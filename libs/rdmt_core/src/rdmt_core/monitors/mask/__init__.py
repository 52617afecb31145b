"""The mask monitor of MASK reference files (see README.md in this package)."""

from .monitor import MaskMonitor
from .options import MaskOptions

__all__ = ["MaskMonitor", "MaskOptions"]
