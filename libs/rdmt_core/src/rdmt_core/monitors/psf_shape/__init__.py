"""The PSF shape monitor of Level-2 images (see README.md in this package)."""

from .monitor import PsfShapeMonitor
from .options import PsfShapeOptions

__all__ = ["PsfShapeMonitor", "PsfShapeOptions"]
