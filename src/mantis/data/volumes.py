"""Segmentation of volumes (a class per voxel) for ``SegmentationTask`` with a 3D network.

Layouts under ``root`` (``layout: auto`` picks the one present):

- ``folders``: ``images/`` and ``masks/`` (``dirs`` renames them), files paired by name, else stem;
- ``decathlon``: the Medical Segmentation Decathlon's ``imagesTr/`` and ``labelsTr/``, class names from
  ``dataset.json`` when it has ``labels`` (``imagesTs/`` has no labels and is not read).

Splits, the first rule that applies (as for image folders): split files (``train_file``, ``val_file``,
``test_file``: volume names one per line, with or without their ending; without ``train_file`` training takes
every volume the other lists do not name); ``train/`` (and optionally ``val/``, ``test/``) sub-folders, each in
one of these layouts; otherwise a random split by ``val_fraction``/``test_fraction``.

Files are NIfTI (``.nii``, ``.nii.gz``) or ``.npy`` (:mod:`mantis.data.volumes_io`); channels come from a 4th
axis. Without ``root``, built-in synthetic volumes (spheres and boxes in noise) are used. The volumes are split
(above), checked and held in memory as float32.

Training samples are random patches of ``patch_size`` voxels (drawn per sample from seed, epoch and position),
``samples_per_volume`` per volume and epoch, a share ``foreground_p`` of them centred on a labelled voxel of a
class other than 0; validation and test volumes are cut into patches that cover them (the last one along an
axis ends at the volume's end and may overlap its neighbour, whose voxels are then scored twice). Volumes
smaller than a patch are mirrored at their far end, images and labels alike. Channels are standardised with
the training volumes' statistics (kept in the checkpoint). Training patches may be flipped and turned
(:class:`~mantis.data.volumes_augment.VolumeAugment`).

Batches: ``{"image": B x C x X x Y x Z float32, "mask": B x X x Y x Z int64}``, plus ``segmentation``,
``boundary`` and ``distance`` (B x K x X x Y x Z) with ``multitask`` (set by the CLI for networks with those
heads).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from mantis.data.folders import split_from_files
from mantis.data.former_keywords import augment_with_former
from mantis.data.loaders import DenseLabelsDataModule, Stage, add_mask_targets
from mantis.data.sampling import SampleKey, split_key
from mantis.data.splits import random_split
from mantis.data.volumes_augment import VolumeAugment
from mantis.data.volumes_io import (
    VolumeHeader,
    pair_volumes,
    read_header,
    read_label_names,
    read_labels,
    read_volume,
    volume_stem,
)
from mantis.data.volumes_synthetic import SYNTHETIC_VOLUME_CLASSES, synthetic_volumes
from mantis.io.errors import DataError

__all__ = ["VolumeSegmentationDataModule"]

Layout = Literal["auto", "folders", "decathlon"]
_STAGES: tuple[Stage, ...] = ("train", "val", "test")
_LAYOUT_DIRS = {"folders": ("images", "masks"), "decathlon": ("imagesTr", "labelsTr")}
_FOREGROUND_KEPT = 4096  # labelled voxels remembered per volume for foreground-centred patches
_SPACING_TOLERANCE = 0.01  # relative difference of two axes' spacing still called equal


class VolumeSegmentationDataModule(DenseLabelsDataModule):
    """Volumes with a class per voxel (see the module docstring).

    Args:
        root: folder of the layout; ``None``: the built-in synthetic volumes.
        layout: ``auto``, ``folders`` (``images/`` + ``masks/``) or ``decathlon`` (``imagesTr/`` + ``labelsTr/``).
        dirs: the image and label folder names, replacing the layout's.
        num_classes: K (default: the number of class names, else the largest label + 1).
        class_names: K names (default: ``dataset.json``'s labels, else ``"0"``, ``"1"``, ...).
        ignore_index: label of unlabelled voxels (not scored), or ``None``.
        patch_size: patch side in voxels, one for all axes or one per axis.
        samples_per_volume: training patches per volume and epoch.
        foreground_p: share of training patches centred on a voxel of a class other than 0 (and not ignored).
        train_file: file listing the training volumes (one name per line; relative to ``root`` or absolute).
        val_file: file listing the validation volumes.
        test_file: file listing the test volumes.
        val_fraction: share of the volumes for validation (random split only).
        test_fraction: share of the volumes for testing (random split only).
        intensity_range: ``[low, high]``: every voxel of the images clipped to it first, before the statistics
            (a CT window, e.g. ``[-1000, 1000]`` Hounsfield units); kept in checkpoints, so that ``mantis
            predict`` clips new volumes alike. ``None``: values as stored.
        mean: per-channel means to standardise with (as stored in the files); ``None``: see ``auto_stats``.
        std: per-channel standard deviations, with ``mean``.
        auto_stats: without ``mean``/``std``, standardise each channel with the training volumes' mean and
            standard deviation (``mantis test --ckpt_path`` passes the checkpoint's instead).
        augment: augmentation of training patches (:class:`~mantis.data.volumes_augment.VolumeAugment`):
            ``flip_axes`` (spatial axes 0-2, in file order, each flipped with probability ``flip_p``),
            ``rotate_planes`` (planes of two spatial axes in which patches turn by random quarter turns; the two
            axes must have the same voxel spacing in every training file, checked), ``gain``, ``offset`` and
            ``noise`` (a per-channel factor from N(1, gain), a per-channel value from N(0, offset), Gaussian
            noise; standardised units); ``None``: none.
        multitask: also give the boundary and distance targets (the CLI sets it from the network).
        num_synthetic: number of synthetic volumes (without ``root``).
        synthetic_size: side of the synthetic volumes, one or three.
        synthetic_channels: channels of the synthetic volumes.
        batch_size: patches per batch.
        num_workers: data-loader workers.
        seed: seed of the split (and of the synthetic volumes).
    """

    spatial_dims = 3

    def __init__(
        self,
        root: str | None = None,
        *,
        layout: Layout = "auto",
        dirs: list[str] | None = None,
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        ignore_index: int | None = None,
        patch_size: int | list[int] = 32,
        samples_per_volume: int = 4,
        foreground_p: float = 0.0,
        train_file: str | None = None,
        val_file: str | None = None,
        test_file: str | None = None,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        intensity_range: list[float] | None = None,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        auto_stats: bool = True,
        augment: VolumeAugment | None = None,
        multitask: bool = False,
        num_synthetic: int = 24,
        synthetic_size: int | list[int] = 48,
        synthetic_channels: int = 1,
        batch_size: int = 4,
        num_workers: int = 0,
        seed: int = 0,
        **former: Any,  # flip_axes=, flip_p=, ...: the former spelling of augment (deprecated)
    ) -> None:
        super().__init__(batch_size, num_workers)
        patch = _three(patch_size, "patch_size")
        if samples_per_volume < 1:
            raise ValueError(f"samples_per_volume must be positive, got {samples_per_volume}")
        if not 0.0 <= foreground_p <= 1.0:
            raise ValueError(f"foreground_p must be in [0, 1], got {foreground_p}")
        if intensity_range is not None and not (len(intensity_range) == 2 and intensity_range[0] < intensity_range[1]):
            raise ValueError(f"intensity_range must be [low, high] with low < high, got {intensity_range}")
        # what mantis predict needs to bring new volumes to the training values (kept in checkpoints)
        self.save_hyperparameters({"intensity_range": intensity_range}, logger=False)
        self.patch = patch
        # An int when the patch is a cube, so that the task checks it against the network's size multiple.
        self.patch_size: int | tuple[int, int, int] = patch[0] if len(set(patch)) == 1 else patch
        self.samples_per_volume = samples_per_volume
        self.foreground_p = foreground_p
        self.multitask = multitask
        self._ignore_index = ignore_index
        self.augment = augment_with_former(augment, former, VolumeAugment, type(self).__name__)
        if root is None:
            volumes = synthetic_volumes(
                num_synthetic, _three(synthetic_size, "synthetic_size"), seed, synthetic_channels
            )
            names: dict[str, tuple[np.ndarray, np.ndarray]] = {f"synthetic_{i:04d}": v for i, v in enumerate(volumes)}
            headers: dict[str, VolumeHeader] = {}
            pairs: dict[str, tuple[Path, Path]] = {}
            found_names = class_names or SYNTHETIC_VOLUME_CLASSES
            given: dict[Stage, list[str]] | None = None
        else:
            pairs, given, found = _find_pairs(Path(root), layout, dirs)
            lists = {"train": train_file, "val": val_file, "test": test_file}
            if any(lists.values()):
                given = _listed(Path(root), sorted(pairs), {s: f for s, f in lists.items() if f})
            headers = {key: _check_pair(image, label) for key, (image, label) in pairs.items()}
            _check_channels(headers)
            names = {}
            found_names = class_names or (read_label_names(found) if found is not None else None) or []
        if given is None:
            parts = random_split(sorted(names) if root is None else sorted(headers), val_fraction, test_fraction, seed)
            given = {stage: list(parts.get(stage, [])) for stage in _STAGES}
        self.files = given
        self._label_paths = {key: label for key, (_, label) in pairs.items()}
        if headers:
            self._check_rotations([headers[k] for k in self.files["train"]])
        self._volumes: dict[Stage, list[np.ndarray]] = {}
        self._labels: dict[Stage, list[np.ndarray]] = {}
        for stage in _STAGES:
            loaded = [names[key] if root is None else _read_pair(pairs[key]) for key in self.files[stage]]
            self._volumes[stage] = [v for v, _ in loaded]
            if intensity_range is not None:
                low, high = intensity_range
                for volume in self._volumes[stage]:
                    np.clip(volume, low, high, out=volume)
            self._labels[stage] = [m for _, m in loaded]
        largest = max((_largest_label(m, ignore_index) for ms in self._labels.values() for m in ms), default=0)
        k = num_classes or len(found_names) or max(largest + 1, 2)  # named classes say how many there are
        self._check_labels(k)
        self._name_classes(found_names, k)
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        self._mean = None if mean is None else [float(v) for v in mean]
        self._std = None if std is None else [float(v) if v > 0 else 1.0 for v in std]
        if self._mean is None and auto_stats:
            self._mean, self._std = _channel_stats(self._volumes["train"])
        if self._mean is not None and self._std is not None:
            if len(self._mean) != self.in_channels or len(self._std) != self.in_channels:
                raise ValueError(
                    f"mean and std need {self.in_channels} values (one per channel), got {len(self._mean)}"
                )
            shift = np.asarray(self._mean, np.float32).reshape(-1, 1, 1, 1)
            scale = np.asarray(self._std, np.float32).reshape(-1, 1, 1, 1)
            for held in self._volumes.values():
                for v in held:  # in place: the volumes are held once
                    v -= shift
                    v /= scale
        self.splits: dict[Stage, _VolumePatches] = {}

    # -- checks --------------------------------------------------------------------------------------------

    def _check_rotations(self, headers: Sequence[VolumeHeader]) -> None:
        """Quarter turns only in planes whose two axes have the same spacing in every training file."""
        for a, b in self.augment.rotate_planes:
            for header in headers:
                za, zb = header.zooms[a], header.zooms[b]
                if abs(za - zb) > _SPACING_TOLERANCE * max(abs(za), abs(zb), 1e-12):
                    raise DataError(
                        header.path,
                        f"voxel spacing {za:g} along axis {a} and {zb:g} along axis {b} differ: quarter turns in "
                        f"rotate_planes [{a}, {b}] would distort it (leave that plane out)",
                    )

    def _check_labels(self, k: int) -> None:
        for stage in _STAGES:
            for key, labels in zip(self.files[stage], self._labels[stage]):
                known = labels if self._ignore_index is None else labels[labels != self._ignore_index]
                if known.size and (int(known.min()) < 0 or int(known.max()) >= k):
                    bad = int(known.min()) if int(known.min()) < 0 else int(known.max())
                    where = self._label_paths.get(key, key)
                    raise DataError(where, f"holds label {bad}, outside the classes 0 to {k - 1} (num_classes {k})")

    # -- what the task is given (linked by the CLI) --------------------------------------------------------

    @property
    def in_channels(self) -> int:
        """C: channels per volume."""
        return int(self._volumes["train"][0].shape[0])

    # -- Lightning ----------------------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        """The (standardised) volumes of every split, as patches."""
        for name in _STAGES:
            train = name == "train"
            self.splits[name] = _VolumePatches(
                [_pad_to(v, self.patch, channels=True) for v in self._volumes[name]],
                [_pad_to(m, self.patch, channels=False) for m in self._labels[name]],
                self.patch,
                samples=self.samples_per_volume if train else 0,
                foreground_p=self.foreground_p if train else 0.0,
                ignore_index=self._ignore_index,
                augment=self.augment if train else VolumeAugment(),
                targets=self._mask_targets(),
            )


class _VolumePatches(Dataset[dict[str, torch.Tensor]]):
    """Patches of volumes: random ones (``samples`` per volume, per-sample seed) or a grid covering each."""

    def __init__(
        self,
        volumes: list[np.ndarray],
        labels: list[np.ndarray],
        patch: tuple[int, int, int],
        *,
        samples: int,
        foreground_p: float,
        ignore_index: int | None,
        augment: VolumeAugment,
        targets: tuple[int, int | None] | None,
    ) -> None:
        self.volumes, self.labels, self.patch = volumes, labels, patch
        self.random = samples > 0
        self.foreground_p = foreground_p
        self.augment = augment
        self.targets = targets
        self.foreground = [_foreground(m, ignore_index) if foreground_p > 0 else None for m in labels]
        if self.random:
            self.items: list[tuple[int, tuple[int, ...]]] = [
                (i, (0, 0, 0)) for i in range(len(volumes)) for _ in range(samples)
            ]
        else:
            self.items = [(i, start) for i, m in enumerate(labels) for start in _grid(m.shape, patch)]

    def __len__(self) -> int:
        return len(self.items)

    def _random_start(self, index: int, rng: np.random.Generator) -> tuple[int, ...]:
        shape = self.labels[index].shape
        found = self.foreground[index]
        if found is not None and found.size and rng.random() < self.foreground_p:
            centre = np.unravel_index(int(found[rng.integers(0, found.size)]), shape)
            return tuple(min(max(int(c) - p // 2, 0), n - p) for c, p, n in zip(centre, self.patch, shape))
        return tuple(int(rng.integers(0, n - p + 1)) for p, n in zip(self.patch, shape))

    def __getitem__(self, key: SampleKey) -> dict[str, torch.Tensor]:
        index, rng = split_key(key)
        volume, start = self.items[index]
        if self.random and rng is not None:
            start = self._random_start(volume, rng)
        box = tuple(slice(s, s + p) for s, p in zip(start, self.patch))
        image, labels = self.volumes[volume][(slice(None), *box)], self.labels[volume][box]
        if rng is not None and self.augment.active:
            image, labels = self.augment(image, labels, rng)
        sample = {
            "image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
            "mask": torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
        }
        return add_mask_targets(sample, labels, self.targets)


def _three(value: int | Sequence[int], name: str) -> tuple[int, int, int]:
    values = [int(value)] * 3 if isinstance(value, int) else [int(v) for v in value]
    if len(values) == 1:
        values *= 3
    if len(values) != 3 or min(values) < 1:
        raise ValueError(f"{name} needs one or three positive sides, got {value}")
    return values[0], values[1], values[2]


def _layout(root: Path, layout: Layout, dirs: list[str] | None) -> tuple[Path, Path, Path | None]:
    """The image folder, the label folder and ``dataset.json`` (if any) of ``root``."""
    if not root.is_dir():
        raise DataError(root, "folder not found")
    if layout not in ("auto", *_LAYOUT_DIRS):
        raise ValueError(f"layout must be auto, folders or decathlon, got {layout!r}")
    if dirs is not None:
        if len(dirs) != 2:
            raise ValueError(f"dirs names the image and the label folder, got {dirs}")
        names = (dirs[0], dirs[1])
    elif layout == "auto":
        found = [d for d in ("decathlon", "folders") if (root / _LAYOUT_DIRS[d][0]).is_dir()]
        if not found:
            raise DataError(root, "holds neither images/ + masks/ nor imagesTr/ + labelsTr/ (set dirs)")
        names = _LAYOUT_DIRS[found[0]]
    else:
        names = _LAYOUT_DIRS[layout]
    for name in names:
        if not (root / name).is_dir():
            raise DataError(root / name, "folder not found")
    dataset_json = root / "dataset.json"
    return root / names[0], root / names[1], dataset_json if dataset_json.is_file() else None


def _check_pair(image: Path, label: Path) -> VolumeHeader:
    """The image's header, once its label volume is known to have the same spatial shape."""
    header, label_header = read_header(image), read_header(label)
    if label_header.shape != header.shape:
        raise DataError(
            label,
            f"is {'x'.join(map(str, label_header.shape))} voxels but {image} is {'x'.join(map(str, header.shape))}",
        )
    if label_header.channels != 1:
        raise DataError(
            label, f"a label volume holds one value per voxel, this one has {label_header.channels} channels"
        )
    return header


def _check_channels(headers: dict[str, VolumeHeader]) -> None:
    first = next(iter(headers.values()))
    for header in headers.values():
        if header.channels != first.channels:
            raise DataError(header.path, f"has {header.channels} channels but {first.path} has {first.channels}")


def _listed(root: Path, keys: list[str], files: dict[str, str]) -> dict[Stage, list[str]]:
    """The split the split files give, errors naming the file and its line."""
    split = split_from_files(
        root, files, keys, lambda key: (Path(key).name, volume_stem(key)), f"is not a volume of {root}"
    )
    return {stage: split.get(stage, []) for stage in _STAGES}


def _read_pair(pair: tuple[Path, Path]) -> tuple[np.ndarray, np.ndarray]:
    return read_volume(pair[0]), read_labels(pair[1])


def _find_pairs(
    root: Path, layout: Layout, dirs: list[str] | None
) -> tuple[dict[str, tuple[Path, Path]], dict[Stage, list[str]] | None, Path | None]:
    """``{image: (image, label)}`` of ``root``, the split of each image when ``root`` has split sub-folders
    (``train/``, ``val/``, ``test/``, each in the layout; else ``None``), and ``dataset.json`` if any."""
    if not (root / "train").is_dir():
        images, labels, found = _layout(root, layout, dirs)
        return {str(i): (i, m) for i, m in pair_volumes(images, labels)}, None, found
    pairs: dict[str, tuple[Path, Path]] = {}
    splits: dict[Stage, list[str]] = {stage: [] for stage in _STAGES}
    found = root / "dataset.json" if (root / "dataset.json").is_file() else None
    for stage in _STAGES:
        if (root / stage).is_dir():
            images, labels, inner = _layout(root / stage, layout, dirs)
            found = found or inner
            for image, label in pair_volumes(images, labels):
                pairs[str(image)] = (image, label)
                splits[stage].append(str(image))
    return pairs, splits, found


def _largest_label(labels: np.ndarray, ignore_index: int | None) -> int:
    known = labels if ignore_index is None else labels[labels != ignore_index]
    return int(known.max()) if known.size else 0


def _channel_stats(volumes: Sequence[np.ndarray]) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation over every voxel of ``volumes`` (C x S each), in float64."""
    count = sum(v[0].size for v in volumes)
    total = sum(v.reshape(v.shape[0], -1).sum(1, dtype=np.float64) for v in volumes)
    mean = np.asarray(total) / count
    squares = sum(((v.reshape(v.shape[0], -1) - mean[:, None]) ** 2).sum(1) for v in volumes)
    std = np.sqrt(np.asarray(squares) / count)
    return [float(m) for m in mean], [float(s) if s > 0 else 1.0 for s in std]


def _pad_to(array: np.ndarray, patch: tuple[int, int, int], *, channels: bool) -> np.ndarray:
    """Mirror ``array`` at the far end of each spatial axis shorter than the patch."""
    spatial = array.shape[1:] if channels else array.shape
    widths = [(0, max(p - n, 0)) for p, n in zip(patch, spatial)]
    if not any(w for _, w in widths):
        return array
    return np.pad(array, ([(0, 0)] if channels else []) + widths, mode="symmetric")


def _grid(shape: tuple[int, ...], patch: tuple[int, int, int]) -> list[tuple[int, ...]]:
    """Patch origins covering ``shape``: every ``patch`` voxels, the last one flush with the end."""
    axes = []
    for n, p in zip(shape, patch):
        starts = list(range(0, n - p + 1, p))
        if starts[-1] + p < n:
            starts.append(n - p)
        axes.append(starts)
    return [(a, b, c) for a in axes[0] for b in axes[1] for c in axes[2]]


def _foreground(labels: np.ndarray, ignore_index: int | None) -> np.ndarray:
    """Flat indices of up to ``_FOREGROUND_KEPT`` labelled voxels of a class other than 0, evenly spread."""
    found = np.flatnonzero((labels > 0) & (labels != (ignore_index if ignore_index is not None else -1)))
    if found.size > _FOREGROUND_KEPT:
        found = found[np.linspace(0, found.size - 1, _FOREGROUND_KEPT).astype(np.int64)]
    return found
