"""The astrometry monitor of Level-2 images (see README.md in this package)."""

from .monitor import AstrometryMonitor
from .options import AstrometryOptions

__all__ = ["AstrometryMonitor", "AstrometryOptions"]
