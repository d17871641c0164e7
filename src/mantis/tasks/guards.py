"""Guard rails a user sees during training: a network that keeps predicting one class everywhere is named in
words, and a loss that is no longer a number stops the run in one line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch.callbacks import TQDMProgressBar

# A round counts as "one class everywhere" when at most this share of the pixels is predicted as anything else.
COLLAPSE_SHARE = 0.999


def dominant_prediction(confmat: torch.Tensor) -> tuple[int, float]:
    """The most predicted class of a K x K confusion matrix (rows truth, columns prediction) and its share."""
    predicted = confmat.sum(0).double()
    total = float(predicted.sum())
    if total == 0:
        return 0, float("nan")
    k = int(predicted.argmax())
    return k, float(predicted[k]) / total


class DivergedError(ValueError):
    """The training loss stopped being a finite number; the run ends before a checkpoint can take NaN weights."""


def diverged_message(batch: Any, step: int, epoch: int, lr: float) -> str:
    """Why the loss of ``batch`` is not finite, in one line: bad input values, else divergence."""
    if isinstance(batch, dict):
        bad = [
            key
            for key, value in batch.items()
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(value.isfinite().all())
        ]
        if bad:
            return (
                f"the training loss is NaN at step {step} (epoch {epoch}) because the batch's {', '.join(bad)} "
                "holds NaN or infinite values: set such pixels to the file's nodata value or fix the files; "
                "no checkpoint was written from this step on"
            )
    return (
        f"the training loss became NaN or infinite at step {step} (epoch {epoch}): training diverged; lower the "
        f"learning rate (now {lr:g}, --model.init_args.lr) or use fp32 (--trainer.precision 32-true); "
        "no checkpoint was written from this step on"
    )


class CollapseWatch:
    """Counts consecutive validation rounds in which the network predicted (almost) one class everywhere.

    Args:
        patience: rounds in a row after which :meth:`update` returns a warning (0 never warns).
        class_names: names of the classes, for the message.
    """

    def __init__(self, patience: int, class_names: Sequence[str]) -> None:
        if patience < 0:
            raise ValueError(f"collapse_patience must not be negative, got {patience}")
        self.patience = patience
        self.class_names = list(class_names)
        self.rounds = 0

    def update(self, confmat: torch.Tensor) -> str | None:
        """Add one validation round; returns the warning text when the patience is reached, else ``None``."""
        k, share = dominant_prediction(confmat)
        self.rounds = self.rounds + 1 if share >= COLLAPSE_SHARE else 0
        if not self.patience or self.rounds != self.patience:
            return None
        return (
            f"the network has predicted '{self.class_names[k]}' for {100 * share:.2f} % of the validation pixels "
            f"in {self.rounds} validation rounds in a row: it has not learnt the other classes yet. Likely causes: "
            "too few training steps so far; a loss that weighs classes by their area (keep loss_per_class true); "
            "a learning rate cut before learning began (keep schedule_after_progress above 0); rare classes "
            "missing from the training windows (check the masks and mask_mapping); 16-bit images without "
            "data.mean/std; dead channels in a GroupNorm head (keep head_prior true, or try "
            "model_kwargs head_norm: batch). See docs/training.md, 'When the network predicts one class everywhere'."
        )

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps."""
        return {"rounds": self.rounds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.rounds = int(state.get("rounds", 0))


class StatusProgressBar(TQDMProgressBar):
    """Lightning's progress bar plus the task's :attr:`status` text (e.g. "predicts one class everywhere")."""

    def get_metrics(self, trainer: Any, pl_module: Any) -> dict[str, int | str | float | dict[str, float]]:
        """The usual metrics, then ``status`` when the task has one."""
        items = super().get_metrics(trainer, pl_module)
        status = getattr(pl_module, "status", "")
        if status:
            items["status"] = status
        return items
