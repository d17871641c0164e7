"""Object-level scores: how many buildings (or changes) were found, not only how many pixels.

Objects are the connected regions of one class (8-connected by default; in a volume, connectivity 8 means the
26 neighbours of a voxel and 4 the 6 that share a face; along a series, runs of steps). A predicted object and a
true object
match when their intersection over union is at least ``iou_threshold`` (0.5 by default); each object matches
at most one other, the pairs of highest IoU first. Then, per class:

- true positives: matched pairs; false positives: predicted objects left unmatched; false negatives: true
  objects left unmatched;
- precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2 TP / (2 TP + FP + FN), undefined (``None``)
  where the denominator is zero.

Pixels marked ``ignore`` (unlabelled) belong to no object, in the prediction as in the truth. With a
threshold of 0.5 or more the matching is unique (an object cannot overlap two others by more than half).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

__all__ = ["ObjectCounts", "label_objects", "match_objects"]


def label_objects(mask: np.ndarray, connectivity: int = 8, min_area: int = 0) -> tuple[np.ndarray, int]:
    """Connected regions of a boolean mask (T, H x W or X x Y x Z): ``(labels, count)``, labels 1..count (0 outside).

    Args:
        mask: booleans, one to three axes.
        connectivity: 4 (neighbours that share an edge; in 3D a face) or 8 (any neighbour, corners included).
        min_area: regions of fewer pixels (voxels, steps) are dropped (and the rest renumbered).
    """
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    structure = ndimage.generate_binary_structure(mask.ndim, 1 if connectivity == 4 else mask.ndim)
    labels, count = ndimage.label(mask, structure=structure)
    if min_area > 0 and count:
        areas = np.bincount(labels.ravel(), minlength=count + 1)
        keep = areas >= min_area
        keep[0] = False
        renumber = np.zeros(count + 1, dtype=labels.dtype)
        renumber[keep] = np.arange(1, int(keep.sum()) + 1)
        labels, count = renumber[labels], int(keep.sum())
    return labels, int(count)


@dataclass
class ObjectCounts:
    """Matched and unmatched objects of one class, summed over images."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    matched_iou: list[float] = field(default_factory=list)

    def add(self, other: ObjectCounts) -> None:
        """Add the counts of another image."""
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.matched_iou += other.matched_iou

    def scores(self) -> dict[str, float | int | None]:
        """Counts, precision, recall, F1 and the mean IoU of matched pairs (``None`` where undefined)."""
        tp, fp, fn = self.tp, self.fp, self.fn
        return {
            "objects_true": tp + fn,
            "objects_predicted": tp + fp,
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "precision": tp / (tp + fp) if tp + fp else None,
            "recall": tp / (tp + fn) if tp + fn else None,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None,
            "mean_matched_iou": float(np.mean(self.matched_iou)) if self.matched_iou else None,
        }


def match_objects(
    predicted: np.ndarray,
    truth: np.ndarray,
    *,
    ignore: np.ndarray | None = None,
    iou_threshold: float = 0.5,
    connectivity: int = 8,
    min_area: int = 0,
) -> ObjectCounts:
    """Match the objects of two boolean masks of one class, of any of the shapes :func:`label_objects` takes.

    Args:
        predicted: Pixels predicted as the class.
        truth: Pixels of the class in the reference.
        ignore: Unlabelled pixels (part of no object), or ``None``.
        iou_threshold: Smallest IoU of a match, in (0, 1].
        connectivity: 4 or 8.
        min_area: Objects (predicted and true) of fewer pixels are left out.
    """
    if predicted.shape != truth.shape:
        raise ValueError(f"prediction {predicted.shape} and truth {truth.shape} differ in shape")
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    if ignore is not None:
        predicted, truth = predicted & ~ignore, truth & ~ignore
    pred_labels, n_pred = label_objects(predicted, connectivity, min_area)
    true_labels, n_true = label_objects(truth, connectivity, min_area)
    counts = ObjectCounts()
    if n_pred == 0 or n_true == 0:
        counts.fp, counts.fn = n_pred, n_true
        return counts
    # overlap of every (true, predicted) pair from one pass over the pixels
    both = (true_labels > 0) & (pred_labels > 0)
    pairs = true_labels[both].astype(np.int64) * (n_pred + 1) + pred_labels[both]
    overlap = np.bincount(pairs, minlength=(n_true + 1) * (n_pred + 1)).reshape(n_true + 1, n_pred + 1)
    area_true = np.bincount(true_labels.ravel(), minlength=n_true + 1)
    area_pred = np.bincount(pred_labels.ravel(), minlength=n_pred + 1)
    t_index, p_index = np.nonzero(overlap[1:, 1:])
    t_index, p_index = t_index + 1, p_index + 1
    inter = overlap[t_index, p_index]
    iou = inter / (area_true[t_index] + area_pred[p_index] - inter)
    taken_true, taken_pred = set(), set()
    for k in np.argsort(-iou, kind="stable"):
        if iou[k] < iou_threshold:
            break
        t, p = int(t_index[k]), int(p_index[k])
        if t in taken_true or p in taken_pred:
            continue
        taken_true.add(t)
        taken_pred.add(p)
        counts.matched_iou.append(float(iou[k]))
    counts.tp = len(taken_true)
    counts.fp = n_pred - counts.tp
    counts.fn = n_true - counts.tp
    return counts
