"""Kept for compatibility: the raster reader and writer live in :mod:`mantis.io.raster`."""

from mantis.io import raster as _raster
from mantis.io.raster import *  # noqa: F403

__all__ = _raster.__all__
