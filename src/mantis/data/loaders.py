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
