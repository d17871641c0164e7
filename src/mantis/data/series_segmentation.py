"""Per-step segmentation of time series (a class for every step) for ``SegmentationTask`` with a 1D network.

Layout: two ``.npy`` files, ``series_path`` (N x C x T floats, or N x T for one channel) and ``labels_path``
(N x T class ids; ``ignore_index`` marks unlabelled steps), split by seeded ``val_fraction``/``test_fraction``;
without files, :func:`synthetic_series_segmentation` makes a built-in example.

Training samples are random windows of ``patch_size`` steps (drawn per sample from seed, epoch and
position); validation and test series are cut into windows of ``patch_size`` that cover them (the last one
ends at the series' end and may overlap its neighbour). ``patch_size: null`` uses whole series. Channels are
standardised with the training series' statistics (kept in the checkpoint); training windows may be
amplitude-scaled and jittered (the steps stay where their labels are).

Batches: ``{"image": B x C x P float32, "mask": B x P int64}``, plus ``segmentation``/``boundary``/``distance``
(B x K x P) with ``multitask`` (set by the CLI for networks with those heads).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mantis.data.former_keywords import augment_with_former
from mantis.data.loaders import DenseLabelsDataModule, Stage, add_mask_targets
from mantis.data.sampling import SampleKey, split_key
from mantis.data.series_augment import SeriesAugment
from mantis.data.splits import random_split
from mantis.io.errors import DataError

__all__ = ["SeriesSegmentationDataModule", "synthetic_series_segmentation"]

SYNTHETIC_CLASSES = ["background", "burst", "plateau"]
_STAGES: tuple[Stage, ...] = ("train", "val", "test")


def synthetic_series_segmentation(
    count: int, length: int = 256, seed: int = 0, channels: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Series with labelled events: ``(series N x C x T float32, labels N x T int64)``.

    Background (0) is a slow random walk plus noise; a ``burst`` (1) adds a fast oscillation, a ``plateau``
    (2) a raised level; one to three events of 8 to ``length // 4`` steps each, placed without overlap.
    """
    rng = np.random.default_rng(seed)
    series = np.zeros((count, channels, length), dtype=np.float32)
    labels = np.zeros((count, length), dtype=np.int64)
    steps = np.arange(length)
    for i in range(count):
        walk = np.cumsum(rng.normal(0, 0.05, (channels, length)), axis=1)
        x = walk + rng.normal(0, 0.1, (channels, length))
        for _ in range(int(rng.integers(1, 4))):
            width = int(rng.integers(8, max(9, length // 4)))
            start = int(rng.integers(0, length - width))
            if labels[i, start : start + width].any():
                continue  # keep events apart
            kind = int(rng.integers(1, 3))
            span = slice(start, start + width)
            if kind == 1:
                x[:, span] += np.sin(steps[span] * rng.uniform(1.5, 2.5)) * rng.uniform(0.6, 1.0)
            else:
                x[:, span] += rng.uniform(0.8, 1.2)
            labels[i, span] = kind
        series[i] = x
    return series, labels


class SeriesSegmentationDataModule(DenseLabelsDataModule):
    """Series with a class per step (see the module docstring).

    Args:
        series_path: ``.npy`` of N x C x T (or N x T) values; ``None``: the built-in synthetic series.
        labels_path: ``.npy`` of N x T class ids.
        num_classes: K (default: the largest label + 1).
        class_names: K names (default: ``"0"``, ``"1"``, ...; the synthetic series name theirs).
        ignore_index: label of unlabelled steps (not scored), or ``None``.
        patch_size: steps per window (``None``: whole series).
        val_fraction: share of the series for validation.
        test_fraction: share of the series for testing.
        standardize: scale each channel with the training series' mean and standard deviation.
        augment: augmentation of training windows (:class:`~mantis.data.series_augment.SeriesAugment`;
            ``window_slice`` and ``time_warp`` move the labels with the values; ``None``: none).
        multitask: also give the boundary and distance targets (the CLI sets it from the network).
        num_synthetic: number of synthetic series (without files).
        synthetic_length: steps per synthetic series.
        batch_size: windows per batch.
        num_workers: data-loader workers.
        seed: seed of the split (and of the synthetic series).
    """

    spatial_dims = 1

    def __init__(
        self,
        series_path: str | None = None,
        labels_path: str | None = None,
        *,
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        ignore_index: int | None = None,
        patch_size: int | None = 64,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        standardize: bool = True,
        augment: SeriesAugment | None = None,
        multitask: bool = False,
        num_synthetic: int = 64,
        synthetic_length: int = 256,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        **former: float,  # scale=, jitter=, ...: the former spelling of augment (deprecated)
    ) -> None:
        super().__init__(batch_size, num_workers)
        if patch_size is not None and patch_size < 1:
            raise ValueError(f"patch_size must be positive, got {patch_size}")
        self.patch_size = patch_size
        self.multitask = multitask
        self._ignore_index = ignore_index
        self.augment = augment_with_former(augment, former, SeriesAugment, type(self).__name__)
        if series_path is None:
            values, labels = synthetic_series_segmentation(num_synthetic, synthetic_length, seed)
            names = class_names or SYNTHETIC_CLASSES
        else:
            if labels_path is None:
                raise ValueError("give labels_path with series_path")
            values, labels = _read_pair(Path(series_path), Path(labels_path), ignore_index)
            names = class_names or []
        known = labels[labels != ignore_index] if ignore_index is not None else labels
        k = num_classes or max(int(known.max(initial=0)) + 1, len(names), 2)
        if known.size and int(known.max()) >= k:
            raise DataError(labels_path, f"holds class {int(known.max())}, but num_classes is {k}")
        self._name_classes(names, k)
        if patch_size is not None and patch_size > values.shape[-1]:
            raise DataError(series_path, f"series of {values.shape[-1]} steps are shorter than patch_size {patch_size}")
        parts = random_split([f"{i:09d}" for i in range(len(values))], val_fraction, test_fraction, seed)
        index = {stage: [int(i) for i in parts.get(stage, [])] for stage in _STAGES}
        self._values = {stage: values[index[stage]] for stage in _STAGES}
        self._labels: dict[Stage, np.ndarray] = {stage: labels[index[stage]] for stage in _STAGES}
        train = self._values["train"]
        if standardize:
            self._mean = [float(v) for v in train.mean(axis=(0, 2))]
            self._std = [float(v) if v > 0 else 1.0 for v in train.std(axis=(0, 2))]
        else:
            self._mean = self._std = None
        self.splits: dict[Stage, _Windows] = {}

    # -- what the task is given (linked by the CLI) --------------------------------------------------------

    @property
    def in_channels(self) -> int:
        """C: channels per series."""
        return int(self._values["train"].shape[1])

    # -- Lightning ----------------------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        """Standardised series of every split, cut into windows."""
        for name in _STAGES:
            x = self._values[name]
            if self._mean is not None and self._std is not None:
                x = (x - np.asarray(self._mean, np.float32)[:, None]) / np.asarray(self._std, np.float32)[:, None]
            self.splits[name] = _Windows(
                x.astype(np.float32),
                self._labels[name],
                self.patch_size,
                random=name == "train",
                augment=self.augment if name == "train" else SeriesAugment(),
                targets=self._mask_targets(),
            )


def _read_pair(series_path: Path, labels_path: Path, ignore_index: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The two ``.npy`` files, checked: N x C x T floats and N x T whole numbers."""
    arrays = []
    for path in (series_path, labels_path):
        if not path.is_file():
            raise DataError(path, "no such file")
        try:
            arrays.append(np.load(path, allow_pickle=False))
        except (ValueError, OSError) as error:
            raise DataError(path, f"cannot read as .npy ({error})") from None
    values, labels = arrays
    if values.ndim == 2:
        values = values[:, None]
    if values.ndim != 3 or not np.issubdtype(values.dtype, np.number):
        raise DataError(series_path, f"needs N x C x T (or N x T) numbers, got shape {values.shape} {values.dtype}")
    if labels.shape != (values.shape[0], values.shape[2]):
        raise DataError(
            labels_path, f"has shape {labels.shape}, but the series need {(values.shape[0], values.shape[2])} (N x T)"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(labels_path, f"holds {labels.dtype} values; labels are whole class ids")
    if not np.isfinite(values).all():
        raise DataError(series_path, "holds NaN or infinite values")
    bad = labels[(labels < 0) & (labels != (ignore_index if ignore_index is not None else 0))]
    if bad.size:
        raise DataError(labels_path, f"holds the negative label {int(bad[0])} (set ignore_index for unlabelled steps)")
    return values.astype(np.float32), labels.astype(np.int64)


class _Windows(Dataset[dict[str, torch.Tensor]]):
    """Windows of series: random ones (training, per sample seed) or the tiles that cover each series."""

    def __init__(
        self,
        values: np.ndarray,
        labels: np.ndarray,
        patch: int | None,
        *,
        random: bool,
        augment: SeriesAugment,
        targets: tuple[int, int | None] | None,
    ) -> None:
        self.values, self.labels = values, labels
        length = values.shape[-1]
        self.patch = patch or length
        self.random = random
        self.augment = augment
        self.targets = targets
        starts = list(range(0, length - self.patch + 1, self.patch))
        if starts and starts[-1] + self.patch < length:
            starts.append(length - self.patch)  # the tail, overlapping its neighbour
        self.windows = [(i, s) for i in range(len(values)) for s in ([0] if random else starts)]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, key: SampleKey) -> dict[str, torch.Tensor]:
        index, rng = split_key(key)
        series, start = self.windows[index]
        if self.random and rng is not None:
            start = int(rng.integers(0, self.values.shape[-1] - self.patch + 1))
        x = self.values[series, :, start : start + self.patch]
        mask = self.labels[series, start : start + self.patch]
        if rng is not None and self.augment.active:
            x, mask = self.augment.with_labels(x, mask, rng)
        sample = {
            "image": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
            "mask": torch.from_numpy(mask.copy()),
        }
        return add_mask_targets(sample, mask, self.targets)
