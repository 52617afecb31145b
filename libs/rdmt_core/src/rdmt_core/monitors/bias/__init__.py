"""The bias monitor of SUPERBIAS reference files (reftype BIAS; see README.md in this package)."""

from .monitor import BiasMonitor
from .options import BiasOptions

__all__ = ["BiasMonitor", "BiasOptions"]
