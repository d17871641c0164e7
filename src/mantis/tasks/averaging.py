"""An exponential moving average of the weights, validated, checkpointed and tested in their place.

Lightning's :class:`~lightning.pytorch.callbacks.WeightAveraging` (an ``AveragedModel`` updated after every
optimiser step) with the EMA rule ``avg = decay * avg + (1 - decay) * w``. Validation, the checkpoints'
``state_dict`` and the weights left after training are the average; the raw weights keep training (and are
kept in checkpoints as ``current_model_state``, so a resumed run continues both). Averaging smooths the
step-to-step jitter of the weights: with a small validation set, the checkpoint chosen as best is then less
of an accident of one step.

Config (any run)::

    trainer:
      callbacks:
        - class_path: mantis.tasks.averaging.EMAWeights
          init_args: {decay: 0.98, start_step: 0}
"""

from __future__ import annotations

from lightning.pytorch.callbacks import WeightAveraging
from torch.optim.swa_utils import get_ema_multi_avg_fn

__all__ = ["EMAWeights"]


class EMAWeights(WeightAveraging):
    """EMA of the weights (and buffers) after every step from ``start_step`` on.

    Args:
        decay: Weight of the running average at each step, in [0, 1); ``1 / (1 - decay)`` steps is about
            how far back it reaches (0.98: the last ~50 steps).
        start_step: First global step that updates the average (before it, the average follows the weights).
    """

    def __init__(self, decay: float = 0.98, start_step: int = 0) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        if start_step < 0:
            raise ValueError(f"start_step must not be negative, got {start_step}")
        super().__init__(multi_avg_fn=get_ema_multi_avg_fn(decay))
        self.decay = decay
        self.start_step = start_step

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        """After every optimiser step from ``start_step`` on (never per epoch)."""
        return step_idx is not None and step_idx >= self.start_step
