"""The background monitor of Level-2 images (see README.md in this package)."""

from .monitor import BackgroundMonitor
from .options import BackgroundOptions

__all__ = ["BackgroundMonitor", "BackgroundOptions"]
