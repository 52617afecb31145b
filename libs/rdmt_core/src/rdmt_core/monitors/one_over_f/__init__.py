"""The residual 1/f noise monitor of Level-2 images (see README.md in this package)."""

from .monitor import OneOverFMonitor
from .options import OneOverFOptions

__all__ = ["OneOverFMonitor", "OneOverFOptions"]
