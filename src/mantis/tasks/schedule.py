"""The learning-rate schedule of the dense tasks: ReduceLROnPlateau that waits for the network to start learning."""

from __future__ import annotations

import math
from typing import Any, Literal, SupportsFloat

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau


class PlateauAfterProgress(ReduceLROnPlateau):
    """``ReduceLROnPlateau`` whose plateau counter runs only once the monitored value has moved off its start.

    A network trained on a few real images can sit at its first score for many epochs (e.g. "no change"
    everywhere: change F1 and MCC 0) before it starts to learn. A plain plateau schedule reads that as a
    plateau and cuts the learning rate (and, with the evolving loss, raises the loss depth), which freezes
    the network where it started. Here nothing is counted until the monitored value has improved on its
    first (finite) value by ``progress``; from then on this is ``ReduceLROnPlateau``.

    Args:
        optimizer: the optimiser whose learning rate is scheduled.
        mode: ``min`` or ``max`` (as ``ReduceLROnPlateau``).
        progress: absolute improvement on the first value that starts the plateau counter; 0 counts from
            the first epoch, as ``ReduceLROnPlateau``.
        **kwargs: ``factor``, ``patience``, ``min_lr``, ... of ``ReduceLROnPlateau``.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        mode: Literal["min", "max"] = "max",
        progress: float = 0.0,
        **kwargs: Any,
    ) -> None:
        if progress < 0:
            raise ValueError(f"progress must not be negative, got {progress}")
        super().__init__(optimizer, mode=mode, **kwargs)
        self.progress = progress
        self.first: float | None = None
        self.progressed = progress == 0

    def step(self, metrics: SupportsFloat, epoch: int | None = None) -> None:  # type: ignore[override]
        """One validation epoch's monitored value (``epoch`` is deprecated in PyTorch and ignored here)."""
        current = float(metrics)
        if not self.progressed:
            if self.first is None and math.isfinite(current):
                self.first = current
            elif self.first is not None and math.isfinite(current):
                gain = current - self.first if self.mode == "max" else self.first - current
                self.progressed = gain >= self.progress
            if not self.progressed:
                self.last_epoch += 1
                self.best = current if math.isfinite(current) else self.best
                self.num_bad_epochs = 0
                return
        super().step(current)
