"""Losses: the fractal Tanimoto loss, ResUNet-a's class-weighted Tanimoto with complement, and the
multitask loss over segmentation, boundary and distance (and colour)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from mantis.nn.functional import DEFAULT_SMOOTH, fractal_tanimoto

Reduction = Literal["mean", "none"]


def to_one_hot(target: torch.Tensor, num_classes: int, ignore_index: int | None = None) -> torch.Tensor:
    """Class ids B x S (int) -> one-hot B x K x S float; ignored pixels become all-zero."""
    t = target.long()
    valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
    onehot = F.one_hot(torch.where(valid, t, 0), num_classes).movedim(-1, 1).float()
    return onehot * valid.unsqueeze(1)


class FractalTanimotoLoss(nn.Module):
    """``1 - FT^d(prediction, target)``: the fractal Tanimoto loss with complement.

    Args:
        depth: fractal depth d (0 = plain Tanimoto); a plain attribute, so training can raise it
            (the "evolving loss").
        complement: include the similarity of the complements (the paper's dual form).
        per_channel: reduce over space per channel then average the channels, instead of over
            (channels, space) jointly.
        reduction: ``mean`` over the batch (default) or ``none`` (a per-sample vector B).
        ignore_index: with class-id targets, pixels with this id do not count.
        smooth: smoothing of the similarity.

    Shapes: prediction B x K x S probabilities; target B x K x S in [0, 1] or class ids B x S.
    """

    def __init__(
        self,
        depth: int = 0,
        complement: bool = True,
        per_channel: bool = False,
        reduction: Reduction = "mean",
        ignore_index: int | None = None,
        smooth: float = DEFAULT_SMOOTH,
    ) -> None:
        super().__init__()
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
        self.depth = depth
        self.complement = complement
        self.per_channel = per_channel
        self.reduction = reduction
        self.ignore_index = ignore_index
        self.smooth = smooth

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weight = None
        if target.dim() == prediction.dim() - 1:
            if self.ignore_index is not None:
                weight = (target != self.ignore_index).unsqueeze(1)
            target = to_one_hot(target, prediction.shape[1], self.ignore_index)
        if target.shape != prediction.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ")
        spatial = tuple(range(2, prediction.dim()))
        dims = spatial if self.per_channel else (1, *spatial)
        sim = fractal_tanimoto(
            prediction, target, self.depth, dims, self.complement, self.smooth, keepdim=False, weight=weight
        )
        if self.per_channel:
            sim = sim.mean(dim=1)
        loss = 1.0 - sim
        return loss.mean() if self.reduction == "mean" else loss


def class_weighted_tanimoto(
    prediction: torch.Tensor, target: torch.Tensor, smooth: float = DEFAULT_SMOOTH
) -> torch.Tensor:
    """ResUNet-a's class-volume weighted Tanimoto (no complement), per sample.

    ``w_l = 1 / V_l^2`` with ``V_l`` the label volume of class l summed over space and averaged over the
    batch; infinite weights (absent classes) take the largest finite weight.
    ``T = (sum_l w_l sum p l + s) / (sum_l w_l sum (p^2 + l^2 - p l) + s)``. Returns B.
    """
    spatial = tuple(range(2, prediction.dim()))
    p = prediction.float()
    l = target.float()  # noqa: E741
    volume = l.sum(spatial).mean(0)
    weight = torch.reciprocal(volume * volume)
    finite = torch.isfinite(weight)
    largest = torch.where(finite, weight, torch.zeros_like(weight)).max()
    weight = torch.where(finite, weight, largest)
    pl = (p * l).sum(spatial)
    denom = (p * p + l * l - p * l).sum(spatial)
    return ((weight * pl).sum(1) + smooth) / ((weight * denom).sum(1) + smooth)


class TanimotoWithComplementLoss(nn.Module):
    """ResUNet-a's loss: ``1 - 0.5 (T(p, l) + T(1-p, 1-l))`` with class-volume weights (see
    :func:`class_weighted_tanimoto`). Shapes: B x K x S (or class ids B x S); ``reduction`` as above."""

    def __init__(self, reduction: Reduction = "mean", smooth: float = DEFAULT_SMOOTH) -> None:
        super().__init__()
        self.reduction = reduction
        self.smooth = smooth

    def similarity(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-sample similarity ``0.5 (T(p, l) + T(1-p, 1-l))``, B."""
        t = class_weighted_tanimoto(prediction, target, self.smooth)
        return 0.5 * (t + class_weighted_tanimoto(1 - prediction, 1 - target, self.smooth))

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.dim() == prediction.dim() - 1:
            target = to_one_hot(target, prediction.shape[1])
        loss = 1.0 - self.similarity(prediction, target)
        return loss.mean() if self.reduction == "mean" else loss


DEFAULT_TASK_WEIGHTS: dict[str, float] = {"segmentation": 1.0, "boundary": 1.0, "distance": 1.0, "color": 1.0}


class MultitaskLoss(nn.Module):
    """Weighted mean of fractal Tanimoto losses over the multitask outputs.

    ``L = sum_t w_t L_t / sum_t w_t`` over the tasks present in both outputs and targets:
    ``segmentation``, ``boundary``, ``distance`` and, for ResUNet-a, ``color``. With the default equal
    weights this is the authors' ``(L_segm + L_bound + L_dist) / 3``.

    Each term is reduced per sample, over classes and space jointly (the authors' form) or, with
    ``per_channel``, over space for each class (channel) separately and then averaged over the classes, so
    that a class covering 5 % of the pixels weighs as much as one covering 95 % (``docs/training.md``).

    Args:
        depth: fractal depth of every term (settable at run time through :attr:`depth`).
        weights: per-task weights (defaults 1).
        reduction: ``mean`` or ``none``.
        ignore_index: pixels of the mask with this id do not count (needs ``mask`` in the targets).
        per_channel: reduce each class (channel) separately, then average the classes.
    """

    def __init__(
        self,
        depth: int = 0,
        weights: Mapping[str, float] | None = None,
        reduction: Reduction = "mean",
        ignore_index: int | None = None,
        per_channel: bool = False,
    ) -> None:
        super().__init__()
        self.weights = {**DEFAULT_TASK_WEIGHTS, **(weights or {})}
        self.ftnmt = FractalTanimotoLoss(depth, reduction="none", per_channel=per_channel)
        self.reduction = reduction
        self.ignore_index = ignore_index
        self.per_channel = per_channel

    @property
    def depth(self) -> int:
        """Fractal depth of every term."""
        return self.ftnmt.depth

    @depth.setter
    def depth(self, value: int) -> None:
        self.ftnmt.depth = value

    def forward(self, outputs: Any, targets: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Args: outputs a NamedTuple (or mapping) of B x K x S maps; targets a mapping of the same keys."""
        pred = outputs._asdict() if hasattr(outputs, "_asdict") else dict(outputs)
        weight = None
        if self.ignore_index is not None and "mask" in targets:
            weight = (targets["mask"] != self.ignore_index).unsqueeze(1)
        total: torch.Tensor | None = None
        norm = 0.0
        for task, w in self.weights.items():
            if task not in pred or task not in targets or w == 0:
                continue
            p, t = pred[task], targets[task]
            dims = tuple(range(2 if self.per_channel else 1, p.dim()))
            sim = fractal_tanimoto(p, t, self.ftnmt.depth, dims, True, keepdim=False, weight=weight)
            if self.per_channel:
                sim = sim.mean(dim=1)
            term = w * (1.0 - sim)
            total = term if total is None else total + term
            norm += w
        if total is None:
            raise ValueError(f"no task in common between outputs {sorted(pred)} and targets {sorted(targets)}")
        loss = total / norm
        return loss.mean() if self.reduction == "mean" else loss


def task_targets(sample: Mapping[str, torch.Tensor], tasks: Sequence[str]) -> dict[str, torch.Tensor]:
    """Pick the target maps named ``tasks`` from a batch dict."""
    return {t: sample[t] for t in tasks if t in sample}
