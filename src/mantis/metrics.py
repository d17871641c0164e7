"""Honest dense-prediction metrics from a confusion matrix: per-class precision, recall, F1, IoU and MCC,
their macro means, and overall accuracy.

One stateful metric, :class:`ConfusionScores` (a torchmetrics ``Metric`` whose only state is a K x K
confusion matrix, summed across processes under DDP), and its functional twins
:func:`confusion_matrix`, :func:`scores_from_confusion` and :func:`class_scores`.

Conventions (tested against scikit-learn):

- Rows of the confusion matrix are the true class, columns the predicted class.
- Every class is scored one-vs-rest. A score whose denominator is zero is **NaN** (undefined), as
  scikit-learn's ``zero_division=np.nan``: precision when the class is never predicted, recall when it is
  absent from the truth, F1 and IoU when it is absent from both. MCC is NaN when the class is absent from
  both truth and prediction; otherwise a zero denominator gives 0, as ``sklearn.metrics.matthews_corrcoef``.
- Macro means (``*_macro``) average the classes whose score is defined (NaN classes are excluded); they are
  NaN only when no class has a defined score.
- Pixels whose truth equals ``ignore_index`` are not counted at all. Any other truth value outside
  ``[0, num_classes)`` is an error.
- JSON has no NaN: :func:`scores_to_json` writes undefined scores as ``null``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torchmetrics import Metric

__all__ = [
    "SCORE_NAMES",
    "ConfusionScores",
    "class_scores",
    "confusion_matrix",
    "scores_from_confusion",
    "scores_to_json",
]

SCORE_NAMES = ("precision", "recall", "f1", "iou", "mcc")


def _as_class_ids(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Class ids with the target's shape from ids (same shape) or scores (B x K x S, argmax over K)."""
    if preds.is_floating_point() and preds.dim() == target.dim() + 1:
        return preds.argmax(dim=1)
    if preds.shape != target.shape:
        raise ValueError(
            f"predictions {tuple(preds.shape)} fit neither the target {tuple(target.shape)} (class ids) "
            "nor B x K x ... (class scores)"
        )
    return preds.long()


def confusion_matrix(
    preds: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = None
) -> torch.Tensor:
    """Count (true class, predicted class) pairs.

    Args:
        preds: predicted class ids with the target's shape (B x S), or class scores B x K x S
            (probabilities or logits; the argmax over K is taken).
        target: true class ids B x S (any integer dtype).
        num_classes: K.
        ignore_index: truth value whose pixels are not counted.

    Returns:
        K x K int64 matrix, rows = truth, columns = prediction.

    Raises:
        ValueError: a truth or predicted value outside ``[0, K)`` (other than ``ignore_index``).
    """
    pred = _as_class_ids(preds, target).reshape(-1)
    true = target.long().reshape(-1)
    if ignore_index is not None:
        keep = true != ignore_index
        pred, true = pred[keep], true[keep]
    if true.numel():
        lo, hi = int(true.min()), int(true.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(f"target holds class id {bad}, outside 0..{num_classes - 1}")
        plo, phi = int(pred.min()), int(pred.max())
        if plo < 0 or phi >= num_classes:
            raise ValueError(f"prediction holds class id {plo if plo < 0 else phi}, outside 0..{num_classes - 1}")
    counts = torch.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den with 0/0 (and x/0) -> NaN."""
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.full_like(num, math.nan))


def scores_from_confusion(confmat: torch.Tensor, class_names: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """Per-class and macro scores from a K x K confusion matrix (rows = truth).

    Args:
        confmat: K x K counts.
        class_names: K names used as key suffixes (default ``"0"``, ``"1"``, ...).

    Returns:
        A flat dict of 0-d float64 tensors: ``accuracy``; for every score in :data:`SCORE_NAMES`
        ``{score}_{name}`` per class and ``{score}_macro``; ``support_{name}`` (true pixels per class).
        Undefined scores are NaN (see the module docstring).
    """
    k = confmat.shape[0]
    if confmat.shape != (k, k):
        raise ValueError(f"confusion matrix must be square, got {tuple(confmat.shape)}")
    names = [str(i) for i in range(k)] if class_names is None else [str(n) for n in class_names]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names given for {k} classes")
    cm = confmat.double()
    total = cm.sum()
    tp = cm.diagonal()
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    tn = total - tp - fp - fn
    per_class = {
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "iou": _ratio(tp, tp + fp + fn),
    }
    # MCC one-vs-rest; products of marginals in float64 stay exact enough for billions of pixels.
    den = torch.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    mcc = torch.where(den > 0, (tp * tn - fp * fn) / den.clamp_min(1e-300), torch.zeros_like(den))
    per_class["mcc"] = torch.where(tp + fp + fn > 0, mcc, torch.full_like(mcc, math.nan))

    out: dict[str, torch.Tensor] = {"accuracy": _ratio(tp.sum(), total)}
    for score, values in per_class.items():
        for name, value in zip(names, values):
            out[f"{score}_{name}"] = value
        out[f"{score}_macro"] = values.nanmean()
    for name, value in zip(names, tp + fn):
        out[f"support_{name}"] = value
    return out


def class_scores(
    preds: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    ignore_index: int | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Functional twin of :class:`ConfusionScores`: scores of one batch (see :func:`scores_from_confusion`)."""
    return scores_from_confusion(confusion_matrix(preds, target, num_classes, ignore_index), class_names)


class ConfusionScores(Metric):
    """Accumulates a confusion matrix over batches (and processes) and scores it.

    ``update(preds, target)`` takes class ids B x S or class scores B x K x S and true ids B x S;
    ``compute()`` returns the dict of :func:`scores_from_confusion`.

    Args:
        num_classes: K.
        ignore_index: truth value whose pixels are not counted.
        class_names: K names used as key suffixes (default ``"0"``, ``"1"``, ...).

    Example:
        >>> m = ConfusionScores(2, class_names=["no_change", "change"])
        >>> m.update(torch.tensor([[0, 1, 1]]), torch.tensor([[0, 1, 0]]))
        >>> round(float(m.compute()["f1_change"]), 3)
        0.667
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    confmat: torch.Tensor

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = None,
        class_names: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names given for {num_classes} classes")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = None if class_names is None else [str(n) for n in class_names]
        self.add_state("confmat", default=torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch: preds B x S ids or B x K x S scores, target B x S ids."""
        self.confmat += confusion_matrix(preds.detach(), target, self.num_classes, self.ignore_index).to(
            self.confmat.device
        )

    def compute(self) -> dict[str, torch.Tensor]:
        """Scores of everything accumulated so far."""
        return scores_from_confusion(self.confmat, self.class_names)


def scores_to_json(scores: Mapping[str, Any]) -> dict[str, float | None]:
    """Plain floats for ``json.dump``; NaN and infinities become ``None`` (JSON ``null``)."""
    out: dict[str, float | None] = {}
    for key, value in scores.items():
        number = float(value.item() if isinstance(value, torch.Tensor) else value)
        out[key] = number if math.isfinite(number) else None
    return out
