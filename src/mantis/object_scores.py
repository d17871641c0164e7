"""Object scores accumulated over batches (``mantis test``): :func:`mantis.objects.match_objects` per sample.

Each sample of a batch is one image: its objects (connected regions of a class) are matched to the
reference's by IoU, and the matched and unmatched objects are summed over the test set (and over processes:
a torchmetrics state). The same counts as ``mantis evaluate`` on the same class maps and masks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric

from mantis.metrics import _as_class_ids
from mantis.objects import ObjectCounts, match_objects

__all__ = ["ObjectScores"]


class ObjectScores(Metric):
    """Object precision, recall and F1 with counts, per class, from predictions and masks of series, images or
    volumes (each sample's objects matched on their own).

    Args:
        classes: class ids scored as objects.
        class_names: a (metric-safe) name per class id, used in the keys.
        ignore_index: mask value of unlabelled pixels (part of no object), or ``None``.
        iou_threshold: smallest IoU of a match.
        connectivity: 4 or 8.
        min_area: objects of fewer pixels are left out.

    ``compute()`` returns ``object_{tp,fp,fn}_{name}`` (counts), ``object_{precision,recall,f1}_{name}`` and
    ``object_iou_{name}`` (mean IoU of the matched pairs), NaN where undefined.
    """

    full_state_update = False
    tp: torch.Tensor
    fp: torch.Tensor
    fn: torch.Tensor
    iou_sum: torch.Tensor

    def __init__(
        self,
        classes: Sequence[int],
        class_names: Sequence[str],
        ignore_index: int | None = 255,
        iou_threshold: float = 0.5,
        connectivity: int = 8,
        min_area: int = 0,
    ) -> None:
        super().__init__()
        if not 0 < iou_threshold <= 1:
            raise ValueError(f"object iou_threshold must be in (0, 1], got {iou_threshold}")
        if connectivity not in (4, 8):
            raise ValueError(f"object connectivity must be 4 or 8, got {connectivity}")
        bad = [c for c in classes if not 0 <= c < len(class_names)]
        if bad:
            raise ValueError(f"object class {bad[0]} is not one of the {len(class_names)} classes")
        self.classes = [int(c) for c in classes]
        self.names = [class_names[c] for c in self.classes]
        self.ignore_index = ignore_index
        self.iou_threshold, self.connectivity, self.min_area = iou_threshold, connectivity, min_area
        n = len(self.classes)
        for name in ("tp", "fp", "fn"):
            self.add_state(name, default=torch.zeros(n, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("iou_sum", default=torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: class ids B x S or scores B x K x S, and true ids B x S (S: T, H x W or X x Y x Z)."""
        if not 2 <= target.dim() <= 4:
            raise ValueError(f"object scores need masks B x T, B x H x W or B x X x Y x Z, got {tuple(target.shape)}")
        ids = _as_class_ids(preds.detach(), target).cpu().numpy()
        truth = target.detach().cpu().numpy()
        counts = [ObjectCounts() for _ in self.classes]
        for pred_b, true_b in zip(ids, truth):
            ignore = None if self.ignore_index is None else true_b == self.ignore_index
            for total, c in zip(counts, self.classes):
                total.add(
                    match_objects(
                        pred_b == c,
                        true_b == c,
                        ignore=ignore,
                        iou_threshold=self.iou_threshold,
                        connectivity=self.connectivity,
                        min_area=self.min_area,
                    )
                )
        self.tp += torch.tensor([t.tp for t in counts], device=self.tp.device)
        self.fp += torch.tensor([t.fp for t in counts], device=self.fp.device)
        self.fn += torch.tensor([t.fn for t in counts], device=self.fn.device)
        self.iou_sum += torch.tensor([float(np.sum(t.matched_iou)) for t in counts], dtype=torch.float64).to(
            self.iou_sum.device
        )

    def compute(self) -> dict[str, torch.Tensor]:
        """Counts and scores per class (see the class docstring)."""
        out: dict[str, torch.Tensor] = {}
        nan = torch.tensor(float("nan"), dtype=torch.float64)
        for i, name in enumerate(self.names):
            tp, fp, fn = (int(s[i]) for s in (self.tp, self.fp, self.fn))
            out[f"object_tp_{name}"] = torch.tensor(tp)
            out[f"object_fp_{name}"] = torch.tensor(fp)
            out[f"object_fn_{name}"] = torch.tensor(fn)
            out[f"object_precision_{name}"] = torch.tensor(tp / (tp + fp), dtype=torch.float64) if tp + fp else nan
            out[f"object_recall_{name}"] = torch.tensor(tp / (tp + fn), dtype=torch.float64) if tp + fn else nan
            f1 = torch.tensor(2 * tp / (2 * tp + fp + fn), dtype=torch.float64) if tp + fp + fn else nan
            out[f"object_f1_{name}"] = f1
            out[f"object_iou_{name}"] = self.iou_sum[i].cpu() / tp if tp else nan
        return out
