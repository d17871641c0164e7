"""What every Mantis data module shares: batch settings and Lightning's three loader hooks."""

from __future__ import annotations

from typing import Any, Literal

import lightning

Stage = Literal["train", "val", "test"]


class StageDataModule(lightning.LightningDataModule):
    """A data module whose train, val and test loaders all come from one :meth:`_loader` per stage.

    Args:
        batch_size: Samples per batch.
        num_workers: DataLoader worker processes (0 loads in the main process).
    """

    def __init__(self, batch_size: int, num_workers: int) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must not be negative, got {num_workers}")
        self.batch_size = batch_size
        self.num_workers = num_workers

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


class ClassificationDataModule(StageDataModule):
    """A data module of whole samples with one class each (table rows, time series), for ``ClassificationTask``.

    Subclasses set ``_class_names`` (class-id order), ``_mean`` and ``_std`` (``None`` without
    standardisation) and define ``in_channels``; this class gives the task the rest.
    """

    target = "label"  # batches hold one class per sample
    _class_names: list[str]
    _mean: list[float] | None
    _std: list[float] | None

    @property
    def num_classes(self) -> int:
        """Number of distinct labels."""
        return len(self._class_names)

    @property
    def class_names(self) -> list[str]:
        """The labels, in class-id order (numeric order when all are numbers)."""
        return list(self._class_names)

    @property
    def ignore_index(self) -> None:
        """Every sample has a label."""
        return None

    @property
    def mean(self) -> list[float] | None:
        """Per-channel (per-feature) means of the training samples (``None`` without standardisation)."""
        return self._mean

    @property
    def std(self) -> list[float] | None:
        """Per-channel (per-feature) standard deviations of the training samples."""
        return self._std
