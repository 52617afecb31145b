"""The flat monitor of FLAT reference files (see README.md in this package)."""

from .monitor import FlatMonitor
from .options import FlatOptions

__all__ = ["FlatMonitor", "FlatOptions"]
