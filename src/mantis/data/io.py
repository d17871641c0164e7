"""Kept for compatibility: the raster reader and writer live in :mod:`mantis.io.raster`."""

from mantis.io.raster import (
    IMAGE_SUFFIXES,
    RasterInfo,
    Window,
    check_image,
    image_array,
    is_image_file,
    raster_info,
    read_image,
    read_mask,
    write_image,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "RasterInfo",
    "Window",
    "check_image",
    "image_array",
    "is_image_file",
    "raster_info",
    "read_image",
    "read_mask",
    "write_image",
]
