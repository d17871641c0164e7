"""Lightning data modules: folders on disk or, with ``root: null``, the built-in synthetic scenes.

How a folder is split (first rule that applies):

1. split files (``train_file``, ``val_file``, ``test_file``; names one per line, paths absolute or
   relative to ``root``): each listed split uses its names; without ``train_file``, training uses
   every file that the val and test lists do not name;
2. split sub-folders: if ``root/<train_split>`` exists (LEVIR-CD's ``train/``, ``val/``, ``test/``),
   each split is its sub-folder (a missing ``val``/``test`` sub-folder means no such split);
3. otherwise a seeded random split of the files in ``root``: ``val_fraction`` and ``test_fraction``.

Every file of a split is checked in ``setup`` (one-line DataError naming the first bad file) before
training starts. The training order and each sample's randomness (random window, augmentation) depend
only on a seed drawn from torch's generator (which ``seed_everything`` seeds), the epoch and the position
(:class:`~mantis.data.sampling.EpochSampler`): runs are reproducible when seeded, whatever the number of
workers, and a run resumed from a checkpoint taken in the middle of an epoch continues with the next batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mantis.data.augment import Augment
from mantis.data.datasets import (
    ChangeDetectionFolder,
    SegmentationFolder,
    SyntheticChangeDetection,
    SyntheticSegmentation,
    evenly,
)
from mantis.data.folders import list_images, split_from_files
from mantis.data.loaders import Stage, StageDataModule
from mantis.data.sampling import EpochSampler, epoch_batches_done
from mantis.data.splits import random_split
from mantis.data.stats import BandStats, compute_band_stats
from mantis.data.synthetic import SEGMENTATION_CLASSES, synthetic_change_pair, synthetic_segmentation_scene
from mantis.io.errors import DataError
from mantis.io.raster import IMAGE_SUFFIXES, raster_info

__all__ = ["ChangeDetectionDataModule", "SegmentationDataModule"]

DEFAULT_AUGMENT = Augment()  # immutable, so one shared default is safe
STATS_MAX_FILES = 64  # automatic band statistics read at most this many files per image folder


_STATS_SCENES = range(16)  # synthetic training scenes that give the automatic statistics


def _scene_rng(seed: int, index: int) -> np.random.Generator:
    # The generator of training scene ``index`` (as the synthetic datasets draw it).
    return np.random.default_rng([seed, 0, index])


def _listed_images(folder: Path, files: dict[str, str | None], root: Path) -> dict[str, list[str]]:
    """The file names of each split that the split files give: a name pairs with a file of ``folder`` of that
    name, else of that stem; errors name the list and its line."""
    images = [p.name for p in list_images(folder)]
    names = set(images)

    def as_listed(name: str) -> str:  # x.tif names x.png: the stem, unless a file has that very name
        return name if name in names or Path(name).suffix.lower() not in IMAGE_SUFFIXES else Path(name).stem

    return split_from_files(root, files, images, lambda name: (name, Path(name).stem), f"is not in {folder}", as_listed)


class _SplitPlan:
    """Where each split's files are: a folder and, optionally, a list of names in it."""

    def __init__(self) -> None:
        self.folders: dict[str, Path] = {}
        self.names: dict[str, list[str] | None] = {}

    def add(self, stage: str, folder: Path, names: list[str] | None) -> None:
        self.folders[stage] = folder
        self.names[stage] = names


class _BaseDataModule(StageDataModule):
    """Split planning, checks, statistics and data loaders shared by the two data modules.

    The subclasses add what differs (folders, classes, extra targets) and take every argument below by name.

    Args:
        root: Dataset folder (see the module docstring for splits); ``None`` for synthetic data.
        dirs: Sub-folders of the inputs and the masks (set by the subclasses' defaults).
        train_split: Sub-folder of the training split, if ``root`` has split sub-folders.
        val_split: Sub-folder of the validation split.
        test_split: Sub-folder of the test split.
        train_file: File listing the training file names (one per line), or ``None``.
        val_file: File listing the validation file names, or ``None``.
        test_file: File listing the test file names, or ``None``.
        val_fraction: Share of a folder without splits used for validation (seeded).
        test_fraction: Share of a folder without splits used for testing (seeded).
        patch_size: Side of the square windows (and of synthetic samples).
        samples_per_image: Random training windows per image and epoch; ``None`` for the grid's count.
        batch_size: Samples per batch.
        num_workers: DataLoader worker processes (0 loads in the main process); ``None`` (default): none on the
            CPU, on GPUs each device's share of the cores but one, up to 8.
        mean: Per-band means in stored units (``mantis stats``; change detection: shared by both dates);
            ``None``: see ``auto_stats``.
        std: Per-band standard deviations in stored units.
        auto_stats: Without ``mean``/``std``, standardise with the per-band mean and std of the training
            images (at most 64 files per folder, evenly spread), computed on first use and saved in the
            checkpoint; ``False`` divides uint8 images by 255 and leaves other dtypes as stored.
        mask_mapping: ``{stored mask value: class}``; ``None`` for ids 0..K-1 (plus 0/255 when K = 2).
        ignore_index: Class id of unlabelled pixels in the batches' masks.
        multitask: Add boundary and distance targets (and the one-hot mask) for multitask models.
        augment: Training augmentation (validation and test are never augmented); ``None`` for none.
        small_images: ``"pad"`` reflect-pads images smaller than ``patch_size``; ``"error"`` refuses them.
        num_train: Synthetic training samples per epoch.
        num_val: Synthetic validation samples.
        num_test: Synthetic test samples.
        bands: Bands (per date) of synthetic samples.
        seed: Seed of the synthetic samples and of the random val/test split of a folder.
    """

    num_classes: int  # set by the subclasses
    target = "mask"  # batches hold a class per pixel (tasks check that they take this kind)
    spatial_dims = 2  # images

    def __init__(
        self,
        root: str | None = None,
        dirs: Sequence[str] = (),
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "test",
        train_file: str | None = None,
        val_file: str | None = None,
        test_file: str | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        patch_size: int = 256,
        samples_per_image: int | None = None,
        batch_size: int = 8,
        num_workers: int | None = None,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        auto_stats: bool = True,
        mask_mapping: dict[int, int] | None = None,
        ignore_index: int = 255,
        multitask: bool = False,
        augment: Augment | None = DEFAULT_AUGMENT,
        small_images: Literal["pad", "error"] = "pad",
        num_train: int = 256,
        num_val: int = 32,
        num_test: int = 32,
        bands: int = 3,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers)
        if not (0.0 <= val_fraction < 1.0 and 0.0 <= test_fraction < 1.0 and val_fraction + test_fraction < 1.0):
            raise ValueError("val_fraction and test_fraction must be in [0, 1) and sum to less than 1")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        self.root = None if root is None else Path(root)
        self.dirs = tuple(dirs)
        self.patch_size = patch_size
        self.samples_per_image = samples_per_image
        self._mean = mean
        self._std = std
        self.auto_stats = auto_stats
        self._stats_resolved = mean is not None or not auto_stats
        self.seed = seed
        self.datasets: dict[str, Dataset[Any]] = {}
        self._split_args = (train_split, val_split, test_split, train_file, val_file, test_file)
        self._fractions = (val_fraction, test_fraction)
        self._plan: _SplitPlan | None = None
        self._in_channels: int | None = None
        self.mask_mapping = mask_mapping
        self.ignore_index = ignore_index
        self.multitask = multitask
        self.augment = None if augment is None else dataclasses.replace(augment, ignore_index=ignore_index)
        self.small_images: Literal["pad", "error"] = small_images
        self.sizes = dict(zip(("train", "val", "test"), (num_train, num_val, num_test)))
        self.bands = bands
        self._sampler: EpochSampler | None = None
        self._sampler_seed: int | None = None
        self._resume: dict[str, Any] | None = None

    # Files are looked at lazily, on first use, so that bad data surfaces as a DataError of its own
    # rather than inside a configuration parser's error when the module is instantiated.
    @property
    def plan(self) -> _SplitPlan:
        """Where each split's files are (folder data only); found on first use."""
        if self._plan is None:
            if self.root is None:
                raise ValueError("synthetic data has no folder splits")
            self._plan = self._plan_splits(self.root, *self._split_args, *self._fractions)
        return self._plan

    @property
    def mean(self) -> list[float] | None:
        """Per-band means the images are standardised with: given, or those of the training images
        (``auto_stats``, computed on first use), or ``None`` (uint8 / 255, other dtypes as stored)."""
        self._resolve_stats()
        return self._mean

    @property
    def std(self) -> list[float] | None:
        """Per-band standard deviations that go with :attr:`mean`."""
        self._resolve_stats()
        return self._std

    def _resolve_stats(self) -> None:
        if self._stats_resolved:
            return
        self._stats_resolved = True
        mean, std = self._training_stats()
        # A constant band has no spread: leave it unscaled rather than divide by zero.
        self._mean, self._std = mean, [s if s > 0 else 1.0 for s in std]

    def _training_stats(self) -> tuple[list[float], list[float]]:
        """Per-band mean and std of (a sample of) the training images, every date pooled."""
        if self.root is None:
            stats = BandStats(self.bands)
            for sample in self._synthetic_stats_samples():
                stats.update(sample)
            return stats.result()
        stage = "train" if "train" in self.plan.folders else next(iter(self.plan.folders))
        files: list[Path] = []
        for folder in self.dirs[:-1]:
            files += evenly(self._split_files(stage, folder), STATS_MAX_FILES)
        return compute_band_stats(files, progress=False)

    def _synthetic_stats_samples(self) -> list[np.ndarray]:
        raise NotImplementedError

    def _split_files(self, stage: str, folder: str) -> list[Path]:
        """The image files of sub-folder ``folder`` that belong to split ``stage``, in name order."""
        images = list_images(self.plan.folders[stage] / folder)
        names = self.plan.names[stage]
        if names is None:
            return images
        wanted = set(names) | {Path(n).stem for n in names}
        return [p for p in images if p.name in wanted or p.stem in wanted]

    @property
    def in_channels(self) -> int:
        """Bands per image (per date for change detection), read from the first image's header."""
        if self._in_channels is None:
            self._in_channels = self.bands if self.root is None else raster_info(self._first_image()).bands
        return self._in_channels

    def _plan_splits(
        self,
        root: Path,
        train_split: str,
        val_split: str,
        test_split: str,
        train_file: str | None,
        val_file: str | None,
        test_file: str | None,
        val_fraction: float,
        test_fraction: float,
    ) -> _SplitPlan:
        plan = _SplitPlan()
        if not root.is_dir():
            raise DataError(root, "dataset folder not found")
        files = {"train": train_file, "val": val_file, "test": test_file}
        if any(files.values()):
            for stage, names in _listed_images(root / self.dirs[0], files, root).items():
                plan.add(stage, root, names)
        elif (root / train_split).is_dir():
            for stage, sub in (("train", train_split), ("val", val_split), ("test", test_split)):
                if (root / sub).is_dir():
                    plan.add(stage, root / sub, None)
        else:
            names = [p.name for p in list_images(root / self.dirs[0])]
            if not names:
                raise DataError(root / self.dirs[0], "no images found")
            try:
                splits = random_split(names, val_fraction, test_fraction, self.seed)
            except ValueError as error:
                raise DataError(root, str(error)) from None
            for stage, chosen in splits.items():
                plan.add(stage, root, chosen)
        if not plan.folders:
            raise DataError(root, "no splits found")
        return plan

    def _first_image(self) -> Path:
        stage = "train" if "train" in self.plan.folders else next(iter(self.plan.folders))
        folder = self.plan.folders[stage] / self.dirs[0]
        names = self.plan.names[stage]
        images = list_images(folder)
        if not images:
            raise DataError(folder, "no images found")
        if names:
            by_name = {p.name: p for p in images} | {p.stem: p for p in images}
            if names[0] in by_name:
                return by_name[names[0]]
        return images[0]

    def _folder_kwargs(self, stage: Stage) -> dict[str, Any]:
        """Arguments every folder dataset takes, for ``stage``."""
        return {
            "dirs": self.dirs,
            "patch_size": self.patch_size,
            "train": stage == "train",
            "files": self.plan.names[stage],
            "samples_per_image": self.samples_per_image,
            "num_classes": self.num_classes,
            "mask_mapping": self.mask_mapping,
            "ignore_index": self.ignore_index,
            "mean": self.mean,
            "std": self.std,
            "augment": self.augment if stage == "train" else None,
            "multitask": self.multitask,
            "small_images": self.small_images,
        }

    def _synthetic_kwargs(self, stage: Stage) -> dict[str, Any]:
        """Arguments every synthetic dataset takes, for ``stage``."""
        return {
            "size": self.patch_size,
            "bands": self.bands,
            "seed": self.seed,
            "split": stage,
            "augment": self.augment if stage == "train" else None,
            "multitask": self.multitask,
            "mean": self.mean,
            "std": self.std,
        }

    def _folder_dataset(self, stage: Stage) -> Dataset[Any]:
        raise NotImplementedError

    def _synthetic_dataset(self, stage: Stage) -> Dataset[Any]:
        raise NotImplementedError

    def _dataset(self, stage: Stage) -> Dataset[Any] | None:
        if stage not in self.datasets:
            if self.root is None:
                self.datasets[stage] = self._synthetic_dataset(stage)
            elif stage in self.plan.folders:
                self.datasets[stage] = self._folder_dataset(stage)
            else:
                return None
        return self.datasets[stage]

    def class_shares(self) -> list[float] | None:
        """Share of each class among the labelled pixels of the training masks (up to 64 files read), or
        ``None`` without a training split; what ``head_prior`` starts the network at."""
        shares = getattr(self._dataset("train"), "class_shares", None)
        return None if shares is None else shares()

    def boundary_shares(self) -> list[float] | None:
        """Mean boundary target of each class over the labelled pixels of the training masks (up to 16 files
        read), or ``None`` without a training split; what ``head_prior`` starts the boundary output at."""
        shares = getattr(self._dataset("train"), "boundary_shares", None)
        return None if shares is None else shares()

    def setup(self, stage: str | None = None) -> None:
        """Builds (and checks every file of) the datasets that ``stage`` needs.

        Args:
            stage: ``"fit"``, ``"validate"``, ``"test"``, or ``None`` for all.
        """
        wanted: dict[str | None, tuple[Stage, ...]] = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
            None: ("train", "val", "test"),
        }
        for split in wanted.get(stage, ()):
            self._dataset(split)
        if stage == "fit" and self._dataset("train") is None:
            raise DataError(self.root, "no training split found")
        if stage == "test" and self._dataset("test") is None:
            raise DataError(self.root, "no test split: add a test/ sub-folder, a test_file or test_fraction > 0")
        if stage == "validate" and self._dataset("val") is None:
            raise DataError(self.root, "no validation split: add a val/ sub-folder, a val_file or val_fraction > 0")

    def _loader(self, stage: Stage) -> DataLoader[Any] | list[Any]:
        dataset = self._dataset(stage)
        if dataset is None:
            return []
        train = stage == "train"
        size = len(dataset)  # type: ignore[arg-type]
        drop_last = train and size > self.batch_size
        distributed = self.trainer is not None and self.trainer.world_size > 1
        workers = self.loader_workers()
        sampler = None
        if train and not distributed:  # several processes: Lightning's DistributedSampler shuffles (not resumable)
            sampler = self._train_sampler(size, size // self.batch_size if drop_last else -(-size // self.batch_size))
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=train and sampler is None,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=workers,
            pin_memory=self.on_gpu,  # page-locked batches: host-to-device copies overlap compute
            persistent_workers=workers > 0,
            # its own generator: building a loader draws nothing from torch's global one (exact resume)
            generator=None if distributed else torch.Generator().manual_seed(sampler.seed if sampler else 0),
        )

    def _train_sampler(self, size: int, num_batches: int) -> EpochSampler:
        """The training order; continues where a resumed checkpoint stopped (see :meth:`load_state_dict`)."""
        if self._sampler is None or self._sampler.size != size:
            if self._sampler_seed is None:  # from torch's generator, which seed_everything seeds
                self._sampler_seed = int(torch.randint(0, 2**62, (1,)).item())
            self._sampler = EpochSampler(size, self._sampler_seed)
        if self._resume is not None:
            epoch, batches = self._resume["epoch"], self._resume["batches"]
            if self._resume["complete"] or batches >= num_batches:
                self._sampler.resume(epoch + 1, 0)
            else:
                self._sampler.resume(epoch, batches * self.batch_size)
            self._resume = None
        return self._sampler

    def state_dict(self) -> dict[str, Any]:
        """Where training is in its data (saved in checkpoints): the order's seed, the epoch and the batches
        of it already trained on."""
        if self._sampler is None or self.trainer is None:
            return {}
        batches, complete = epoch_batches_done(self.trainer)
        return {
            "sampler_seed": self._sampler.seed,
            "epoch": self._sampler.last_epoch,  # the epoch being trained
            "batches": batches,
            "complete": complete,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the training order of a checkpoint: same seed, next batch (see :meth:`state_dict`)."""
        if not state_dict:
            return
        self._sampler_seed = int(state_dict["sampler_seed"])
        self._sampler = None
        self._resume = {k: state_dict[k] for k in ("epoch", "batches", "complete")}


class ChangeDetectionDataModule(_BaseDataModule):
    """Bi-temporal change detection data: a LEVIR-CD style folder, or synthetic pairs with ``root=None``.

    Batches: ``"image1"``, ``"image2"`` float32 B x C x H x W, ``"mask"`` int64 B x H x W, plus
    ``"segmentation"``, ``"boundary"``, ``"distance"`` float32 B x K x H x W when ``multitask``.
    ``in_channels`` (bands per date, read from the first image's header on first access) and
    ``num_classes`` tell the task how to build the model.

    Args:
        root: Dataset folder (see the module docstring for splits); ``None`` for synthetic pairs.
        dirs: Sub-folders of the first date, the second date and the change masks (WHU: prev, curr, label).
        num_classes: K; 2 (no change, change).
        **kwargs: the shared arguments of :class:`_BaseDataModule` (splits, windows, batches, statistics,
            targets, augmentation, synthetic data), by name.
    """

    def __init__(
        self,
        root: str | None = None,
        dirs: tuple[str, str, str] = ("A", "B", "label"),
        num_classes: int = 2,
        **kwargs: Any,
    ) -> None:
        if len(dirs) != 3:
            raise ValueError(f"dirs needs three folders (first date, second date, masks), got {list(dirs)}")
        super().__init__(root, dirs, **kwargs)
        self.num_classes = num_classes
        self.class_names = ["no change", "change"] if num_classes == 2 else [f"class {k}" for k in range(num_classes)]

    def _folder_dataset(self, stage: Stage) -> Dataset[Any]:
        return ChangeDetectionFolder(self.plan.folders[stage], **self._folder_kwargs(stage))

    def _synthetic_stats_samples(self) -> list[np.ndarray]:
        scenes = [synthetic_change_pair(_scene_rng(self.seed, i), self.patch_size, self.bands) for i in _STATS_SCENES]
        return [scene[key] for scene in scenes for key in ("image1", "image2")]

    def _synthetic_dataset(self, stage: Stage) -> Dataset[Any]:
        if self.num_classes != 2:
            raise ValueError(f"synthetic change detection has 2 classes, got num_classes={self.num_classes}")
        return SyntheticChangeDetection(self.sizes[stage], **self._synthetic_kwargs(stage))


class SegmentationDataModule(_BaseDataModule):
    """Semantic segmentation data: an images/masks folder, or synthetic scenes with ``root=None``.

    Batches: ``"image"`` float32 B x C x H x W, ``"mask"`` int64 B x H x W, plus ``"segmentation"``,
    ``"boundary"``, ``"distance"`` float32 B x K x H x W when ``multitask`` and ``"colour"`` float32
    B x 3 x H x W when ``colour``. ``in_channels`` (read from the first image's header on first access)
    and ``num_classes`` tell the task how to build the model.

    Args:
        root: Dataset folder (see the module docstring for splits); ``None`` for synthetic scenes
            (classes background, building, road).
        dirs: Sub-folders of the images and the masks.
        num_classes: K; ``None`` for 3 with synthetic scenes and 2 with a folder.
        class_names: K names used in metric keys (``val/f1_building``); ``None``: ``class 0``, ``class 1``, ...
            for a folder, the scene classes for synthetic data.
        colour: Add the HSV colour target of ResUNet-a.
        rgb_bands: Indices of the red, green and blue bands (for ``colour``).
        **kwargs: the shared arguments of :class:`_BaseDataModule` (splits, windows, batches, statistics,
            targets, augmentation, synthetic data), by name.
    """

    def __init__(
        self,
        root: str | None = None,
        dirs: tuple[str, str] = ("images", "masks"),
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        colour: bool = False,
        rgb_bands: tuple[int, int, int] = (0, 1, 2),
        **kwargs: Any,
    ) -> None:
        if len(dirs) != 2:
            raise ValueError(f"dirs needs two folders (images, masks), got {list(dirs)}")
        super().__init__(root, dirs, **kwargs)
        synthetic = self.root is None
        self.num_classes = num_classes if num_classes is not None else (len(SEGMENTATION_CLASSES) if synthetic else 2)
        if synthetic and self.num_classes != len(SEGMENTATION_CLASSES):
            raise ValueError(f"synthetic scenes have {len(SEGMENTATION_CLASSES)} classes, got {self.num_classes}")
        self.colour = colour
        self.rgb_bands = rgb_bands
        if class_names is not None and len(class_names) != self.num_classes:
            raise ValueError(f"{len(class_names)} class names given for {self.num_classes} classes")
        default_names = list(SEGMENTATION_CLASSES) if synthetic else [f"class {k}" for k in range(self.num_classes)]
        self.class_names = list(class_names) if class_names is not None else default_names

    def _folder_dataset(self, stage: Stage) -> Dataset[Any]:
        kwargs = self._folder_kwargs(stage)
        return SegmentationFolder(self.plan.folders[stage], **kwargs, colour=self.colour, rgb_bands=self.rgb_bands)

    def _synthetic_stats_samples(self) -> list[np.ndarray]:
        return [
            synthetic_segmentation_scene(_scene_rng(self.seed, i), self.patch_size, self.bands)["image"]
            for i in _STATS_SCENES
        ]

    def _synthetic_dataset(self, stage: Stage) -> Dataset[Any]:
        return SyntheticSegmentation(self.sizes[stage], **self._synthetic_kwargs(stage), colour=self.colour)
