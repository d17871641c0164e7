"""Kept for compatibility: normalisation lives in :mod:`mantis.io.normalize`."""

from mantis.io.normalize import dtype_scale, normalize_image

__all__ = ["dtype_scale", "normalize_image"]
