"""Torch datasets of sample dicts: folders on disk (PNG, JPEG, GeoTIFF) and built-in synthetic scenes.

Sample keys (tensors):

- change detection: ``"image1"``, ``"image2"`` float32 C x H x W, ``"mask"`` int64 H x W (0 no change,
  1 change, ``ignore_index`` unlabelled);
- segmentation: ``"image"`` float32 C x H x W, ``"mask"`` int64 H x W (class ids or ``ignore_index``);
- with ``multitask=True``: ``"segmentation"`` (one-hot), ``"boundary"``, ``"distance"``, float32 K x H x W,
  computed from the mask after augmentation (:mod:`mantis.data.labels`);
- segmentation with ``colour=True``: ``"colour"`` float32 3 x H x W, HSV of the RGB bands in [0, 1].

Large images are not pre-tiled: in training, each sample is a window at a random position
(``samples_per_image`` windows per image and epoch); in evaluation, windows on a regular grid cover each
image. Images smaller than ``patch_size`` are reflect-padded at the bottom and right (images and mask
alike, so labels stay true), or refused with ``small_images="error"``.
"""

from __future__ import annotations

import bisect
import dataclasses
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset

from mantis.data.augment import Augment
from mantis.data.folders import FolderItem, index_folder
from mantis.data.labels import boundary_shares, class_shares
from mantis.data.masks import MaskDecoder
from mantis.data.samples import SampleMaker, torch_seeded_rng
from mantis.data.sampling import SampleKey, split_key
from mantis.data.synthetic import synthetic_change_pair, synthetic_segmentation_scene
from mantis.data.windows import grid_windows, pad_to, random_window
from mantis.io.errors import DataError
from mantis.io.normalize import missing_pixels
from mantis.io.raster import Window, read_image, read_mask

__all__ = [
    "ChangeDetectionFolder",
    "SegmentationFolder",
    "SyntheticChangeDetection",
    "SyntheticSegmentation",
]

Sample = dict[str, torch.Tensor]
_SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2, "predict": 3}
T = TypeVar("T")
SHARE_SAMPLES = 64  # masks read for the class shares: enough for a starting value, bounded on large folders
BOUNDARY_SAMPLES = 16  # fewer for the boundary shares: each mask costs an erosion and a dilation per class


def evenly(items: Sequence[T], count: int) -> list[T]:
    """At most ``count`` items spread evenly over the sequence (all of them if there are fewer)."""
    if len(items) <= count or count < 2:
        return list(items[: max(count, 0)])
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)]


def _resolve_split_file(split_file: str | os.PathLike[str] | None, root: Path) -> Path | None:
    if split_file is None:
        return None
    path = Path(split_file)
    if not path.is_absolute() and not path.exists() and (root / path).exists():
        return root / path
    return path


def _check_colour(dataset: type[_FolderDataset | _SyntheticDataset], colour: bool) -> None:
    """Refuse ``colour=True`` for a dataset whose samples cannot carry the colour target."""
    if colour and not dataset.has_colour:
        raise ValueError(f"{dataset.__name__} has no colour target")


class _FolderDataset(Dataset[Sample]):
    """Samples from a folder of images and masks: the machinery and the arguments that
    :class:`ChangeDetectionFolder` and :class:`SegmentationFolder` share (they differ in inputs per sample,
    default folders and the colour target).

    Args:
        root: Dataset folder.
        split: Sub-folder of ``root`` holding this split (``"train"`` for ``root/train/A``...), or ``None``.
        dirs: Sub-folders of the inputs (one per date for pairs) and the masks; ``None`` for the dataset's
            default (``("A", "B", "label")`` for change detection, ``("images", "masks")`` for segmentation).
        split_file: Text file listing the file names of this split, one per line (absolute, or relative
            to the working directory or to the dataset folder); ``None`` for all files.
        patch_size: Side of the square windows cut from the images; ``None`` for whole images.
        train: Random windows (and fresh randomness every call) when ``True``; a grid of windows otherwise.
        files: Use only these file names (overrides ``split_file``).
        samples_per_image: Random windows per image and epoch in training; ``None`` for as many as the
            grid has (so an epoch covers about each image's area once).
        stride: Step of the evaluation grid (default ``patch_size``).
        num_classes: K (2 for change detection).
        mask_mapping: ``{stored value: class}``; ``None`` for ids 0..K-1 (plus 0/255 when K = 2, so change
            masks may be 0/1 or 0/255; see :mod:`mantis.data.masks`).
        ignore_index: Class id of unlabelled pixels.
        mean: Per-band means in stored units (both dates of a pair share them); ``None`` divides uint8
            images by 255 and leaves other dtypes as stored.
        std: Per-band standard deviations in stored units.
        augment: Augmentation (all inputs and the mask consistently), or ``None``.
        multitask: Add the ``"segmentation"``, ``"boundary"`` and ``"distance"`` targets.
        colour: Add the ``"colour"`` target (HSV of ``rgb_bands``, for ResUNet-a; segmentation only).
        rgb_bands: Indices of the red, green and blue bands.
        small_images: ``"pad"`` reflect-pads images smaller than ``patch_size``; ``"error"`` refuses them.
        check: Check every file when building the dataset.

    Raises:
        DataError: A file is missing, unreadable, truncated or inconsistent (one line naming it).
    """

    image_keys: tuple[str, ...] = ()
    default_dirs: tuple[str, ...] = ()
    has_colour = False  # whether the samples can carry the colour target

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str | None = None,
        dirs: Sequence[str] | None = None,
        split_file: str | os.PathLike[str] | None = None,
        patch_size: int | None = 256,
        train: bool = True,
        *,
        files: Sequence[str] | None = None,
        samples_per_image: int | None = None,
        stride: int | None = None,
        num_classes: int = 2,
        mask_mapping: Mapping[int, int] | None = None,
        ignore_index: int = 255,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        augment: Augment | None = None,
        multitask: bool = False,
        colour: bool = False,
        rgb_bands: tuple[int, int, int] = (0, 1, 2),
        small_images: Literal["pad", "error"] = "pad",
        check: bool = True,
    ) -> None:
        _check_colour(type(self), colour)
        dirs = self.default_dirs if dirs is None else dirs
        if len(dirs) != len(self.image_keys) + 1:
            raise ValueError(f"dirs needs {len(self.image_keys)} image folder(s) and one mask folder, got {list(dirs)}")
        if patch_size is not None and patch_size < 1:
            raise ValueError(f"patch_size must be positive or None, got {patch_size}")
        if samples_per_image is not None and samples_per_image < 1:
            raise ValueError(f"samples_per_image must be positive or None, got {samples_per_image}")
        if small_images not in ("pad", "error"):
            raise ValueError(f"small_images must be 'pad' or 'error', got {small_images!r}")
        self.root = Path(root) / split if split else Path(root)
        self.patch_size = patch_size
        self.train = train
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.decoder = MaskDecoder(num_classes, mask_mapping, ignore_index)
        self._index_args = (
            tuple(dirs),
            None if files is None else list(files),
            _resolve_split_file(split_file, self.root),
        )
        self.items: list[FolderItem] = self._index(check)
        self.in_channels = self.items[0].bands
        if colour and max(rgb_bands) >= self.in_channels:
            raise DataError(self.items[0].images[0], f"has {self.in_channels} bands; rgb_bands={rgb_bands} need more")
        if mean is not None and len(mean) != self.in_channels:
            raise DataError(self.items[0].images[0], f"has {self.in_channels} bands but mean has {len(mean)} values")
        if std is not None and len(std) != self.in_channels:
            raise DataError(self.items[0].images[0], f"has {self.in_channels} bands but std has {len(std)} values")
        if mean is None and self.items[0].dtype not in ("uint8", "float32", "float64"):
            warnings.warn(
                f"{self.items[0].images[0]}: {self.items[0].dtype} images without mean/std go to the model as "
                f"stored; run `mantis stats` on the image folders and set mean and std",
                stacklevel=2,
            )
        if patch_size is not None and small_images == "error":
            for item in self.items:
                if item.height < patch_size or item.width < patch_size:
                    raise DataError(
                        item.images[0],
                        f"is {item.height}x{item.width} pixels, smaller than patch_size={patch_size} "
                        "(use a smaller patch_size or small_images='pad')",
                    )
        self.maker = SampleMaker(
            num_classes=num_classes,
            ignore_index=ignore_index,
            mean=None if mean is None else tuple(mean),
            std=None if std is None else tuple(std),
            multitask=multitask,
            colour=colour,
            rgb_bands=rgb_bands,
            augment=None if augment is None else dataclasses.replace(augment, ignore_index=ignore_index),
        )
        self.windows: list[tuple[int, Window]] = []
        self._ends: list[int] = []
        if patch_size is None:
            self.windows = [(i, Window(0, 0, item.height, item.width)) for i, item in enumerate(self.items)]
        elif train:
            total = 0
            for item in self.items:
                total += samples_per_image or len(grid_windows(item.height, item.width, patch_size))
                self._ends.append(total)
        else:
            for i, item in enumerate(self.items):
                self.windows += [(i, w) for w in grid_windows(item.height, item.width, patch_size, stride)]

    def _index(self, check: bool) -> list[FolderItem]:
        dirs, files, split_file = self._index_args
        return index_folder(self.root, dirs, self.decoder, names=files, split_file=split_file, check=check)

    def validate(self) -> None:
        """Checks every file again (done when the dataset is built unless ``check=False``).

        Raises:
            DataError: One line naming the first missing, unreadable, truncated or inconsistent file.
        """
        self._index(check=True)

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else len(self.windows)

    def class_shares(self, most: int = SHARE_SAMPLES) -> list[float] | None:
        """Share of each class among the labelled pixels of the masks (at most ``most`` files, evenly spread)."""
        return class_shares(self._masks(most), self.num_classes, self.ignore_index)

    def boundary_shares(self, most: int = BOUNDARY_SAMPLES) -> list[float] | None:
        """Mean boundary target of each class over the labelled pixels of the masks (at most ``most`` files)."""
        return boundary_shares(self._masks(most), self.num_classes, self.ignore_index)

    def _masks(self, most: int) -> Iterator[np.ndarray]:
        return (self.decoder(read_mask(item.mask), item.mask) for item in evenly(self.items, most))

    def locate(self, index: int, rng: np.random.Generator | None = None) -> tuple[FolderItem, Window]:
        """The file and window behind sample ``index`` (random in training: pass the generator).

        Args:
            index: Sample index.
            rng: Generator for the random window of a training sample.

        Returns:
            ``(item, window)``.
        """
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range for {len(self)} samples")
        if self._ends:
            item = self.items[bisect.bisect_right(self._ends, index)]
            assert self.patch_size is not None
            generator = rng if rng is not None else torch_seeded_rng()
            return item, random_window(generator, item.height, item.width, self.patch_size)
        item_index, window = self.windows[index]
        return self.items[item_index], window

    def __getitem__(self, key: SampleKey) -> Sample:
        """Reads, windows, pads, augments and normalises one sample (see the module docstring for keys).

        ``key`` is an index, or ``(index, sample_seed)`` from :class:`~mantis.data.sampling.EpochSampler`
        (the seed then fixes the random window and the augmentation).
        """
        index, rng = split_key(key)
        if rng is None and self.train:
            rng = torch_seeded_rng()
        item, window = self.locate(index, rng if self.train else None)
        raw = {name: read_image(path, window) for name, path in zip(self.image_keys, item.images)}
        raw["mask"] = self.decoder(read_mask(item.mask, window), item.mask)
        blank_missing(raw, self.image_keys, item.nodata, self.maker.mean, self.ignore_index)
        if self.patch_size is not None:
            raw = {name: pad_to(value, self.patch_size) for name, value in raw.items()}
        return self.maker(raw, source_dtype=item.dtype, rng=rng)


def blank_missing(
    raw: dict[str, np.ndarray],
    image_keys: Sequence[str],
    nodata: Sequence[float | None],
    mean: Sequence[float] | None,
    ignore_index: int,
) -> None:
    """Pixels without a measurement in any image: the mask there becomes ``ignore_index`` (the loss and the
    metrics skip them) and the image values the band means (0 once standardised; 0 without statistics), so
    that NaN never reaches the network. Changes ``raw`` in place."""
    values = nodata if nodata else [None] * len(image_keys)
    union = None
    for key, value in zip(image_keys, values):
        where = missing_pixels(raw[key], value)
        if not where.any():
            continue
        fill = np.zeros(raw[key].shape[0], np.float32) if mean is None else np.asarray(mean, np.float32)
        raw[key] = np.where(where[None], fill[:, None, None], raw[key].astype(np.float32, copy=False))
        union = where if union is None else union | where
    if union is not None:
        raw["mask"] = np.where(union, ignore_index, raw["mask"]).astype(raw["mask"].dtype, copy=False)


class ChangeDetectionFolder(_FolderDataset):
    """Bi-temporal pairs and change masks from a folder (LEVIR-CD layout by default).

    Layout: ``root[/split]/A/x.png``, ``B/x.png``, ``label/x.png`` (names configurable with ``dirs``, e.g.
    WHU's ``("prev", "curr", "label")``); files of one sample share their name (or stem). All files are
    checked when the dataset is built (see :func:`~mantis.data.folders.index_folder`). Arguments: see
    :class:`_FolderDataset` (no ``colour`` target).
    """

    image_keys = ("image1", "image2")
    default_dirs = ("A", "B", "label")


class SegmentationFolder(_FolderDataset):
    """Images and class masks from a folder: ``root[/split]/images/x.tif`` and ``masks/x.tif`` (names
    configurable with ``dirs``). Arguments: see :class:`_FolderDataset`.
    """

    image_keys = ("image",)
    default_dirs = ("images", "masks")
    has_colour = True


class _SyntheticDataset(Dataset[Sample]):
    """Built-in synthetic samples, rendered on demand: sample ``i`` depends only on ``seed``, ``split`` and
    ``i``; only the augmentation (when given) is random.

    Args:
        num_samples: Number of samples.
        size: Side of each sample in pixels.
        bands: Bands per image (per date for pairs).
        seed: Seed of the scenes.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"predict"``: independent streams of scenes.
        augment: Augmentation, or ``None``.
        multitask: Add the ``"segmentation"``, ``"boundary"`` and ``"distance"`` targets.
        mean: Per-band means (images are float32 in [0, 1]); ``None`` leaves them as they are.
        std: Per-band standard deviations.
        colour: Add the ``"colour"`` target (HSV of bands 0, 1, 2; segmentation only).
    """

    num_classes: int = 2
    has_colour = False  # whether the samples can carry the colour target

    def __init__(
        self,
        num_samples: int = 256,
        size: int = 256,
        bands: int = 3,
        seed: int = 0,
        split: str = "train",
        *,
        augment: Augment | None = None,
        multitask: bool = False,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        colour: bool = False,
    ) -> None:
        _check_colour(type(self), colour)
        if split not in _SPLIT_STREAMS:
            raise ValueError(f"split must be one of {sorted(_SPLIT_STREAMS)}, got {split!r}")
        if num_samples < 0:
            raise ValueError(f"num_samples must not be negative, got {num_samples}")
        if colour and bands < 3:
            raise ValueError(f"colour needs 3 bands or more, got bands={bands}")
        self.num_samples = num_samples
        self.size = size
        self.bands = bands
        self.in_channels = bands
        self.seed = seed
        self.split = split
        self.maker = SampleMaker(
            num_classes=self.num_classes,
            mean=None if mean is None else tuple(mean),
            std=None if std is None else tuple(std),
            multitask=multitask,
            colour=colour,
            augment=augment,
        )

    def __len__(self) -> int:
        return self.num_samples

    def class_shares(self, most: int = SHARE_SAMPLES) -> list[float] | None:
        """Share of each class among the pixels of the scenes' masks (at most ``most`` scenes, evenly spread)."""
        return class_shares(self._masks(most), self.num_classes, None)

    def boundary_shares(self, most: int = BOUNDARY_SAMPLES) -> list[float] | None:
        """Mean boundary target of each class over the scenes' pixels (at most ``most`` scenes)."""
        return boundary_shares(self._masks(most), self.num_classes, None)

    def _masks(self, most: int) -> Iterator[np.ndarray]:
        return (self.render(self.scene_rng(i))["mask"] for i in evenly(range(self.num_samples), most))

    def scene_rng(self, index: int) -> np.random.Generator:
        """The generator that renders scene ``index``: depends only on ``seed``, ``split`` and ``index``."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"sample {index} out of range for {self.num_samples} samples")
        return np.random.default_rng([self.seed, _SPLIT_STREAMS[self.split], index])

    def render(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The raw arrays of one sample (the subclasses' scene generator)."""
        raise NotImplementedError

    def __getitem__(self, key: SampleKey) -> Sample:
        """Sample ``index`` as a sample dict (inputs, ``"mask"`` and the requested targets).

        ``key`` is an index, or ``(index, sample_seed)`` (the seed then fixes the augmentation).
        """
        index, rng = split_key(key)
        return self.maker(self.render(self.scene_rng(index)), source_dtype=np.float32, rng=rng)


class SyntheticChangeDetection(_SyntheticDataset):
    """Built-in synthetic change-detection pairs (:func:`~mantis.data.synthetic.synthetic_change_pair`):
    ``"image1"``, ``"image2"``, ``"mask"`` (and the multitask targets). Arguments: see :class:`_SyntheticDataset`.
    """

    num_classes = 2

    def render(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The raw arrays of one pair."""
        return synthetic_change_pair(rng, self.size, self.bands)


class SyntheticSegmentation(_SyntheticDataset):
    """Built-in synthetic land-cover scenes, classes 0 background, 1 building, 2 road: ``"image"``, ``"mask"``
    (and the multitask and colour targets). Arguments: see :class:`_SyntheticDataset`.
    """

    num_classes = 3
    has_colour = True

    def render(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The raw arrays of one scene."""
        return synthetic_segmentation_scene(rng, self.size, self.bands)
