"""Whole-sample classification with the small baselines (``mlp``, ``cnn``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from mantis.tasks.base import BaseTask


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
    target = "label"

    def __init__(
        self,
        model: str,
        model_kwargs: dict[str, Any] | None = None,
        *,
        ignore_index: int | None = None,
        label_smoothing: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, model_kwargs, ignore_index=ignore_index, **kwargs)
        self.label_smoothing = label_smoothing

    def compute_loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cross-entropy; returns (loss, logits B x K, labels B)."""
        inputs, labels = self._unpack(batch)
        logits = self.model(inputs).float()
        ignore = -100 if self.ignore_index is None else self.ignore_index
        loss = F.cross_entropy(logits, labels.long(), ignore_index=ignore, label_smoothing=self.label_smoothing)
        return loss, logits.detach(), labels
