"""Semantic segmentation: ``model(image)``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mantis.tasks.dense import DenseTask


class SegmentationTask(DenseTask):
    """Semantic segmentation with a single-input network (FracTAL ResUNet, ResUNet-a d6/d7).

    Batches: ``"image"`` B x C x H x W, ``"mask"`` B x H x W class ids, and for multitask training
    ``"segmentation"``, ``"boundary"``, ``"distance"`` B x K x H x W (``"colour"`` B x 3 x H x W for
    ResUNet-a). The default monitor is the macro validation MCC. Arguments: see
    :class:`~mantis.tasks.dense.DenseTask`.
    """

    task_name = "segmentation"

    def predict_probabilities(self, batch: Mapping[str, Any]) -> Any:
        """``model(image)``."""
        return self.model(batch["image"])
