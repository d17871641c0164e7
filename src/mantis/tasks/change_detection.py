"""Bi-temporal change detection: ``model(image1, image2)``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mantis.tasks.dense import DenseTask


class ChangeDetectionTask(DenseTask):
    """Change detection with a two-date network (CEECNet V1/V2, FracTAL ResNet CD).

    Batches: ``"image1"``, ``"image2"`` B x C x H x W, ``"mask"`` B x H x W (0 no change, 1 change,
    ``ignore_index`` unlabelled), and for multitask training ``"segmentation"``, ``"boundary"``,
    ``"distance"`` B x K x H x W. With two classes they are named ``no_change`` and ``change``, so the
    headline metrics are ``val/f1_change``, ``val/mcc_change``, ...; the default monitor is
    ``val/mcc_change``. Arguments: see :class:`~mantis.tasks.dense.DenseTask`.

    Example:
        >>> task = ChangeDetectionTask("ceecnet_v1", {"nf": 8, "depth": 3})
        >>> task.hparams["task"], task.monitor
        ('change_detection', 'val/mcc_change')
    """

    task_name = "change_detection"
    inputs = 2

    def default_class_names(self, num_classes: int) -> list[str]:
        """``no_change``, ``change`` for two classes; class ids otherwise."""
        return ["no_change", "change"] if num_classes == 2 else [str(i) for i in range(num_classes)]

    def default_monitor(self) -> str:
        """``val/mcc_change`` when a class is called ``change``, else the macro MCC."""
        return "val/mcc_change" if "change" in self.class_names else "val/mcc_macro"

    def predict_probabilities(self, batch: Mapping[str, Any]) -> Any:
        """``model(image1, image2)``."""
        return self.model(batch["image1"], batch["image2"])
