"""Data: raster IO, label making, augmentation, synthetic scenes, datasets and data modules."""

from typing import TYPE_CHECKING, Any

from mantis.data.augment import Augment, d4_transform
from mantis.data.datasets import (
    ChangeDetectionFolder,
    SegmentationFolder,
    SyntheticChangeDetection,
    SyntheticSegmentation,
)
from mantis.data.labels import boundary_labels, distance_labels, hsv_colour, make_multitask_labels, one_hot
from mantis.data.masks import MaskDecoder, default_mask_mapping
from mantis.data.stats import compute_band_stats
from mantis.data.synthetic import synthetic_change_pair, synthetic_segmentation_scene
from mantis.data.windows import grid_windows, random_window
from mantis.io.errors import DataError
from mantis.io.normalize import dtype_scale, normalize_image
from mantis.io.raster import RasterInfo, Window, check_image, raster_info, read_image, read_mask, write_image

__all__ = [
    "Augment",
    "ChangeDetectionDataModule",
    "ChangeDetectionFolder",
    "DataError",
    "ImageClassesDataModule",
    "MaskDecoder",
    "PixelSeriesDataModule",
    "RasterInfo",
    "SegmentationDataModule",
    "SegmentationFolder",
    "SeriesDataModule",
    "SeriesSegmentationDataModule",
    "SyntheticChangeDetection",
    "TabularDataModule",
    "SyntheticSegmentation",
    "VolumeSegmentationDataModule",
    "Window",
    "boundary_labels",
    "check_image",
    "compute_band_stats",
    "d4_transform",
    "default_mask_mapping",
    "distance_labels",
    "dtype_scale",
    "grid_windows",
    "hsv_colour",
    "make_multitask_labels",
    "normalize_image",
    "one_hot",
    "random_window",
    "raster_info",
    "read_image",
    "read_mask",
    "synthetic_change_pair",
    "synthetic_segmentation_scene",
    "write_image",
]

if TYPE_CHECKING:
    from mantis.data.datamodule import ChangeDetectionDataModule, SegmentationDataModule
    from mantis.data.image_classes import ImageClassesDataModule
    from mantis.data.pixel_series import PixelSeriesDataModule
    from mantis.data.series import SeriesDataModule
    from mantis.data.series_segmentation import SeriesSegmentationDataModule
    from mantis.data.tabular import TabularDataModule
    from mantis.data.volumes import VolumeSegmentationDataModule

_LAZY = {"ChangeDetectionDataModule", "SegmentationDataModule"}


def __getattr__(name: str) -> Any:
    # The data modules import Lightning (seconds); readers and `mantis stats` should not pay for it.
    if name in _LAZY:
        from mantis.data import datamodule

        return getattr(datamodule, name)
    if name == "ImageClassesDataModule":
        from mantis.data.image_classes import ImageClassesDataModule

        return ImageClassesDataModule
    if name == "PixelSeriesDataModule":
        from mantis.data.pixel_series import PixelSeriesDataModule

        return PixelSeriesDataModule
    if name == "TabularDataModule":
        from mantis.data.tabular import TabularDataModule

        return TabularDataModule
    if name == "SeriesDataModule":
        from mantis.data.series import SeriesDataModule

        return SeriesDataModule
    if name == "SeriesSegmentationDataModule":
        from mantis.data.series_segmentation import SeriesSegmentationDataModule

        return SeriesSegmentationDataModule
    if name == "VolumeSegmentationDataModule":
        from mantis.data.volumes import VolumeSegmentationDataModule

        return VolumeSegmentationDataModule
    raise AttributeError(f"module 'mantis.data' has no attribute {name!r}")
