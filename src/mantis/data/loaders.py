"""What every Mantis data module shares: batch settings and Lightning's three loader hooks; the resumable
loaders of the in-memory data modules; the label and statistics contract the tasks read."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence, Sized
from typing import Any, Literal, cast

import lightning
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mantis.data.datasets import BOUNDARY_SAMPLES, evenly
from mantis.data.labels import boundary_shares, class_shares, make_multitask_labels
from mantis.data.series_order import TrainingOrder

Stage = Literal["train", "val", "test"]


def auto_workers(on_gpu: bool, cpus: int, devices: int = 1) -> int:
    """Loader workers for ``num_workers: null``: none on the CPU, where workers would take the cores the model
    trains on; on GPUs the cores of each device's share but one (for its training process), from 1 to 8."""
    if not on_gpu:
        return 0
    return max(1, min(8, cpus // max(1, devices) - 1))


class StageDataModule(lightning.LightningDataModule):
    """A data module whose train, val and test loaders all come from one :meth:`_loader` per stage.

    Args:
        batch_size: Samples per batch.
        num_workers: DataLoader worker processes (0 loads in the main process; ``None``: :func:`auto_workers`).
    """

    def __init__(self, batch_size: int, num_workers: int | None) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if num_workers is not None and num_workers < 0:
            raise ValueError(f"num_workers must not be negative, got {num_workers}")
        self.batch_size = batch_size
        self.num_workers = num_workers

    @property
    def on_gpu(self) -> bool:
        """Whether the trainer this module is attached to trains on CUDA devices."""
        trainer = self.trainer
        return trainer is not None and trainer.strategy.root_device.type == "cuda"

    def loader_workers(self) -> int:
        """``num_workers``, or :func:`auto_workers` for the trainer's devices when it is ``None``."""
        if self.num_workers is not None:
            return self.num_workers
        devices = self.trainer.num_devices if self.trainer is not None else 1
        return auto_workers(self.on_gpu, os.cpu_count() or 1, devices)

    def _loader(self, stage: Stage) -> Any:
        """The loader of ``stage`` (``"train"``, ``"val"`` or ``"test"``); ``[]`` where the split is empty."""
        raise NotImplementedError

    def train_dataloader(self) -> Any:
        """Shuffled training batches (augmented where the data module augments)."""
        return self._loader("train")

    def val_dataloader(self) -> Any:
        """Validation batches, never augmented (empty without a validation split)."""
        return self._loader("val")

    def test_dataloader(self) -> Any:
        """Test batches, never augmented (empty without a test split)."""
        return self._loader("test")


class OrderedLoaders(StageDataModule):
    """Loaders of splits held in memory, training in a resumable :class:`TrainingOrder`.

    Subclasses set ``splits`` (``{}`` until :meth:`setup`, which fills every stage with a map-style dataset).
    Training batches follow ``order`` and drop a last batch of one (BatchNorm cannot take it); validation and
    test batches are in the datasets' order. The order travels in checkpoints (:meth:`state_dict`).
    """

    splits: Mapping[Stage, Dataset[Any]]

    def __init__(self, batch_size: int, num_workers: int | None) -> None:
        super().__init__(batch_size, num_workers)
        self.order = TrainingOrder()

    def setup(self, stage: str | None = None) -> None:
        """Fill ``splits`` with the (prepared) datasets of every stage."""
        raise NotImplementedError

    def _loader(self, stage: Stage) -> Any:
        if not self.splits:
            self.setup()
        data = self.splits[stage]
        size = len(cast(Sized, data))  # torch's Dataset declares no __len__; these map-style ones have one
        if size == 0:
            return []
        train = stage == "train"
        drop_last = train and size > self.batch_size  # no batch of one for BatchNorm
        sampler = self.order.sampler_for(size, self.batch_size, drop_last) if train else None
        return DataLoader(
            data,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.loader_workers(),
            pin_memory=self.on_gpu,  # page-locked batches: host-to-device copies overlap compute
        )

    def state_dict(self) -> dict[str, Any]:
        """Where training is in its order (saved in checkpoints: a resumed run continues at the next batch)."""
        return self.order.state_dict(self.trainer)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the training order of a checkpoint."""
        self.order.load_state_dict(state_dict)


class LabelledDataModule(StageDataModule):
    """A data module that names its classes and standardises its inputs: what a task reads of it.

    Subclasses set ``_class_names`` (class-id order), ``_mean`` and ``_std`` (``None`` without
    standardisation), ``_ignore_index`` where some targets are unlabelled, and define ``in_channels``.
    """

    _class_names: list[str]
    _mean: list[float] | None
    _std: list[float] | None
    _ignore_index: int | None = None  # every target labelled

    @property
    def num_classes(self) -> int:
        """K: number of classes."""
        return len(self._class_names)

    @property
    def class_names(self) -> list[str]:
        """The class names, in class-id order."""
        return list(self._class_names)

    @property
    def ignore_index(self) -> int | None:
        """Label of unlabelled targets (not scored), or ``None`` when every target has a class."""
        return self._ignore_index

    @property
    def mean(self) -> list[float] | None:
        """Per-channel (per-feature) means of the training samples (``None`` without standardisation)."""
        return self._mean

    @property
    def std(self) -> list[float] | None:
        """Per-channel (per-feature) standard deviations of the training samples."""
        return self._std


class ClassificationDataModule(LabelledDataModule):
    """A data module of whole samples with one class each (table rows, time series), for ``ClassificationTask``.

    Subclasses set ``_class_names`` (numeric order when all labels are numbers), ``_mean`` and ``_std`` and
    define ``in_channels`` (see :class:`LabelledDataModule`); every sample has a label.
    """

    target = "label"  # batches hold one class per sample


class DenseLabelsDataModule(OrderedLoaders, LabelledDataModule):
    """Samples with a class per element (step, voxel), for ``SegmentationTask``, held in memory.

    Subclasses set ``multitask`` (also give the ``segmentation``, ``boundary`` and ``distance`` targets; the
    CLI sets it from the network) and ``_ignore_index``, and name their classes with :meth:`_name_classes`.
    """

    target = "mask"  # a class per element
    multitask: bool
    _labels: Mapping[Stage, Iterable[np.ndarray]]  # each stage's class ids, one array a sample

    def class_shares(self) -> list[float] | None:
        """Share of each class among the labelled elements of the training samples, or ``None`` without any;
        what the task's ``head_prior`` starts the network at."""
        return class_shares(self._labels.get("train", ()), self.num_classes, self._ignore_index)

    def boundary_shares(self) -> list[float] | None:
        """Mean boundary target of each class over the labelled elements of the training samples (at most 16,
        evenly spread; the centre of large volumes), or ``None`` without any; what ``head_prior`` starts the
        boundary output at."""
        samples = evenly(list(self._labels.get("train", ())), BOUNDARY_SAMPLES)
        return boundary_shares(samples, self.num_classes, self._ignore_index)

    def _name_classes(self, names: Sequence[str], k: int) -> None:
        """Name the K classes ``names``, else ``"0"``, ``"1"``, ...; a ValueError when there are not K names."""
        self._class_names = list(names) or [str(i) for i in range(k)]
        if len(self._class_names) != k:
            raise ValueError(f"{len(self._class_names)} class names for {k} classes")

    def _mask_targets(self) -> tuple[int, int | None] | None:
        """What a dataset needs to add the multitask targets to a mask (K, ignore_index); ``None`` without."""
        return (self.num_classes, self._ignore_index) if self.multitask else None


def add_mask_targets(
    sample: dict[str, torch.Tensor], mask: np.ndarray, targets: tuple[int, int | None] | None
) -> dict[str, torch.Tensor]:
    """``sample`` with the multitask targets of ``mask`` (K x S float32 each) when ``targets`` (K, ignore_index)
    asks for them (see :meth:`DenseLabelsDataModule._mask_targets`)."""
    if targets is not None:
        for name, target in make_multitask_labels(mask, *targets).items():
            sample[name] = torch.from_numpy(target)
    return sample
