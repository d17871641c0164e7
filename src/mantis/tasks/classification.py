"""Whole-sample classification with the small baselines (``mlp``, ``cnn``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from mantis.tasks.base import BaseTask, OptimizerName


class ClassificationTask(BaseTask):
    """Classification of whole samples with cross-entropy: ``model(x)`` -> B x K logits.

    Batches: a dict with ``"image"`` (B x C x S, or B x F for ``mlp``) and ``"label"`` (B class ids), or a
    ``(inputs, labels)`` pair. Arguments: see :class:`~mantis.tasks.base.BaseTask`; ``label_smoothing``
    is passed to the cross-entropy.

    Example:
        >>> task = ClassificationTask("mlp", {"in_channels": 4, "hidden": [8]}, num_classes=3)
        >>> task.model(torch.zeros(2, 4)).shape
        torch.Size([2, 3])
    """

    task_name = "classification"

    def __init__(
        self,
        model: str,
        model_kwargs: dict[str, Any] | None = None,
        in_channels: int | None = None,
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        ignore_index: int | None = None,
        band_mean: list[float] | None = None,
        band_std: list[float] | None = None,
        label_smoothing: float = 0.0,
        optimizer: OptimizerName = "adam",
        lr: float = 1e-3,
        betas: Sequence[float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        lr_factor: float = 0.1,
        lr_patience: int = 10,
        min_lr: float = 1e-6,
        monitor: str | None = None,
        channels_last: bool | None = None,
        schedule_after_progress: float = 0.05,
        collapse_patience: int = 3,
    ) -> None:
        super().__init__(
            model, model_kwargs, in_channels, num_classes, class_names, ignore_index, band_mean, band_std,
            optimizer, lr, betas, weight_decay, lr_factor, lr_patience, min_lr, monitor, channels_last,
            schedule_after_progress=schedule_after_progress, collapse_patience=collapse_patience,
        )  # fmt: skip
        self.label_smoothing = label_smoothing

    @staticmethod
    def _unpack(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(batch, Mapping):
            return batch["image"], batch["label"]
        inputs, labels = batch
        return inputs, labels

    def compute_loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cross-entropy; returns (loss, logits B x K, labels B)."""
        inputs, labels = self._unpack(batch)
        logits = self.model(inputs).float()
        ignore = -100 if self.ignore_index is None else self.ignore_index
        loss = F.cross_entropy(logits, labels.long(), ignore_index=ignore, label_smoothing=self.label_smoothing)
        return loss, logits.detach(), labels
