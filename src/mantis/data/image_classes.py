"""Whole-image classification from class sub-folders (``root/<class>/*.png|jpg|tif``), for ``ClassificationTask``
with ``cnn`` or ``fractal_resnet``.

- Layout: ``root/<class>/<image>``, split by seeded, per-class fractions (``val_fraction``, ``test_fraction``);
  or, when ``root/train`` exists, ``root/train/<class>/``, ``root/val/<class>/``, ``root/test/<class>/`` (a
  missing ``val``/``test`` means no such split). Classes are the training sub-folders, sorted by name.
- Files are read by :mod:`mantis.io` (the band and mode rules of every other reader), any band count; every
  image needs the first one's band count.
- Size (``image_size``, ``size_policy``): ``resize`` scales the whole image to ``image_size`` squared
  (bilinear, antialiased; the aspect ratio is not kept); ``crop`` takes an ``image_size`` square, at random
  for training and centred for validation and test, reflect-padding images that are smaller.
- Standardisation: each band's mean and standard deviation over the training images (``auto_stats``), or
  ``mean``/``std`` given in stored units; kept in the checkpoint (``band_mean``/``band_std``).
- Augmentation (training only): ``d4`` applies one of the 8 flips and quarter turns, drawn from (seed, epoch,
  position) as everywhere.

Batches: ``{"image": B x C x image_size x image_size float32, "label": B int64}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from mantis.data.augment import d4_transform
from mantis.data.loaders import ClassificationDataModule, OrderedLoaders, Stage
from mantis.data.sampling import SampleKey, split_key
from mantis.data.series import stratified_parts
from mantis.data.stats import compute_band_stats
from mantis.io.errors import DataError
from mantis.io.folders import list_images
from mantis.io.normalize import normalize_image
from mantis.io.raster import IMAGE_SUFFIXES, check_image, read_image

__all__ = ["ImageClassesDataModule", "class_folders"]

SizePolicy = Literal["resize", "crop"]
_STAGES: tuple[Stage, ...] = ("train", "val", "test")


def class_folders(root: Path) -> dict[str, list[Path]]:
    """``{class name: sorted image files}`` of the sub-folders of ``root``; one line for an empty class folder."""
    if not root.is_dir():
        raise DataError(root, "folder not found")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(root, "has no class sub-folders (expected root/<class>/<image>)")
    found: dict[str, list[Path]] = {}
    for folder in folders:
        files = list_images(folder)
        if not files:
            raise DataError(folder, f"no images found (looked for {', '.join(IMAGE_SUFFIXES)})")
        found[folder.name] = files
    return found


class ImageClassesDataModule(OrderedLoaders, ClassificationDataModule):
    """Images of class sub-folders as whole-image classification samples (see the module docstring).

    Args:
        root: Folder of class sub-folders, or of ``train``/``val``/``test`` folders of class sub-folders.
        image_size: Side of the square every sample is brought to.
        size_policy: ``resize`` (the whole image, scaled) or ``crop`` (a random square in training, the centre
            in validation and test).
        val_fraction: Share of each class held out for validation (without split folders).
        test_fraction: Share of each class held out for testing (without split folders).
        seed: Seed of that split.
        d4: Flip and turn training images at random (one of 8 symmetries).
        auto_stats: Standardise each band with the training images' mean and standard deviation.
        mean: Per-band means in stored units (instead of ``auto_stats``).
        std: Per-band standard deviations in stored units.
        batch_size: Images per batch.
        num_workers: Data-loader workers.
    """

    spatial_dims = 2

    def __init__(
        self,
        root: str,
        *,
        image_size: int = 64,
        size_policy: SizePolicy = "resize",
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        seed: int = 0,
        d4: bool = True,
        auto_stats: bool = True,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers)
        if image_size < 1:
            raise ValueError(f"image_size must be positive, got {image_size}")
        if size_policy not in ("resize", "crop"):
            raise ValueError(f"size_policy must be 'resize' or 'crop', got {size_policy!r}")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        self.root = Path(root)
        self.image_size = image_size
        self.size_policy: SizePolicy = size_policy
        self.d4 = d4
        self.files, self._labels = self._split(val_fraction, test_fraction, seed)
        self.bands = self._check_bands()
        if mean is not None and std is not None:
            self._mean, self._std = [float(v) for v in mean], [float(v) for v in std]
        elif auto_stats:
            means, stds = compute_band_stats(self.files["train"], progress=False)
            self._mean, self._std = means, [s if s > 0 else 1.0 for s in stds]  # a constant band stays unscaled
        else:
            self._mean = self._std = None
        self.splits: dict[Stage, _ClassImages] = {}

    # -- reading ------------------------------------------------------------------------------------------

    def _split(self, val: float, test: float, seed: int) -> tuple[dict[Stage, list[Path]], dict[Stage, np.ndarray]]:
        """Files and class ids of each split, from split folders or a seeded per-class split."""
        if (self.root / "train").is_dir():
            per_stage = {s: class_folders(self.root / s) if (self.root / s).is_dir() else {} for s in _STAGES}
            self._class_names = self._classes(per_stage["train"])
            files: dict[Stage, list[Path]] = {}
            labels: dict[Stage, np.ndarray] = {}
            for stage, found in per_stage.items():
                unknown = sorted(set(found) - set(self._class_names))
                if unknown:
                    raise DataError(
                        self.root / stage / unknown[0],
                        f"is not a class of {self.root / 'train'} ({', '.join(self._class_names)})",
                    )
                files[stage] = [f for name in found for f in found[name]]
                labels[stage] = np.array(
                    [self._class_names.index(name) for name in found for _ in found[name]], dtype=np.int64
                )
            return files, labels
        found = class_folders(self.root)
        self._class_names = self._classes(found)
        every = [f for name in self._class_names for f in found[name]]
        ids = np.array([k for k, name in enumerate(self._class_names) for _ in found[name]], dtype=np.int64)
        index = stratified_parts(ids, val, test, seed)
        return {s: [every[i] for i in index[s]] for s in _STAGES}, {s: ids[index[s]] for s in _STAGES}

    def _classes(self, found: dict[str, list[Path]]) -> list[str]:
        names = sorted(found)
        if len(names) < 2:
            raise DataError(self.root, f"has one class folder only ({names[0]!r}); classification needs two or more")
        return names

    def _check_bands(self) -> int:
        """The band count of the first training image, which every other image must have; every file is
        checked for truncation before the first batch (as the folder modules do)."""
        if not self.files["train"]:
            raise DataError(self.root, "no training images left (lower val_fraction and test_fraction)")
        first = self.files["train"][0]
        bands = check_image(first).bands
        for stage in _STAGES:
            for path in self.files[stage]:
                found = check_image(path).bands
                if found != bands:
                    raise DataError(path, f"has {found} bands but {first} has {bands}")
        return bands

    # -- what the task is given (linked by the CLI) --------------------------------------------------------

    @property
    def in_channels(self) -> int:
        """C: bands per image."""
        return self.bands

    # -- Lightning ----------------------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        """The three splits (training ones cropped at random and flipped)."""
        for name in _STAGES:
            train = name == "train"
            self.splits[name] = _ClassImages(
                self.files[name],
                self._labels[name],
                self.image_size,
                self.size_policy,
                self._mean,
                self._std,
                d4=self.d4 and train,
                random_crop=train,
            )


def _crop_or_pad(image: torch.Tensor, size: int, rng: np.random.Generator | None) -> torch.Tensor:
    """A ``size`` square of a C x H x W image: at a random position with ``rng``, else centred; reflect-padded
    (edge-padded where the image is too small to reflect) when smaller."""
    height, width = image.shape[-2:]
    pad_h, pad_w = max(size - height, 0), max(size - width, 0)
    if pad_h or pad_w:
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        image = F.pad(image[None], (0, pad_w, 0, pad_h), mode=mode)[0]
        height, width = image.shape[-2:]
    if rng is not None:
        top, left = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
    else:
        top, left = (height - size) // 2, (width - size) // 2
    return image[:, top : top + size, left : left + size]


class _ClassImages(Dataset[dict[str, torch.Tensor]]):
    """Files read, standardised and brought to one size: ``{"image": C x S x S, "label": id}``."""

    def __init__(
        self,
        files: list[Path],
        labels: np.ndarray,
        size: int,
        policy: SizePolicy,
        mean: list[float] | None,
        std: list[float] | None,
        *,
        d4: bool,
        random_crop: bool,
    ) -> None:
        self.files, self.labels = files, labels
        self.size, self.policy = size, policy
        self.mean, self.std = mean, std
        self.d4, self.random_crop = d4, random_crop

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: SampleKey) -> dict[str, torch.Tensor]:
        index, rng = split_key(key)
        stored = read_image(self.files[index])
        array = np.nan_to_num(normalize_image(stored, self.mean, self.std), nan=0.0, posinf=0.0, neginf=0.0)
        image = torch.from_numpy(array)
        if self.policy == "resize":
            if tuple(image.shape[-2:]) != (self.size, self.size):
                image = F.interpolate(image[None], size=(self.size, self.size), mode="bilinear", antialias=True)[0]
        else:
            image = _crop_or_pad(image, self.size, rng if self.random_crop else None)
        if self.d4 and rng is not None:
            turned = d4_transform(image.numpy(), int(rng.integers(0, 4)), bool(rng.integers(0, 2)))
            image = torch.from_numpy(np.ascontiguousarray(turned))
        return {"image": image.contiguous(), "label": torch.tensor(int(self.labels[index]))}
