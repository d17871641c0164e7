"""The resumable training order of the series data modules: an EpochSampler whose seed and position travel
in checkpoints, so that a resumed run trains on the batches the uninterrupted one would have."""

from __future__ import annotations

from typing import Any

import torch

from mantis.data.sampling import EpochSampler, epoch_batches_done

__all__ = ["TrainingOrder"]


class TrainingOrder:
    """Hands out the training sampler; saves and restores where training is in it."""

    def __init__(self) -> None:
        self.sampler: EpochSampler | None = None
        self._seed: int | None = None
        self._resume: dict[str, Any] | None = None

    def sampler_for(self, size: int, batch_size: int, drop_last: bool) -> EpochSampler:
        """The sampler of ``size`` samples; after :meth:`load_state_dict`, it continues at the saved batch."""
        if self.sampler is None or self.sampler.size != size:
            if self._seed is None:  # from torch's generator, which seed_everything seeds
                self._seed = int(torch.randint(0, 2**62, (1,)).item())
            self.sampler = EpochSampler(size, self._seed)
        if self._resume is not None:
            batches = size // batch_size if drop_last else -(-size // batch_size)
            epoch, done = self._resume["epoch"], self._resume["batches"]
            if self._resume["complete"] or done >= batches:
                self.sampler.resume(epoch + 1, 0)
            else:
                self.sampler.resume(epoch, done * batch_size)
            self._resume = None
        return self.sampler

    def state_dict(self, trainer: Any) -> dict[str, Any]:
        """The order's seed, the epoch being trained and its batches done (empty before training)."""
        if self.sampler is None or trainer is None:
            return {}
        batches, complete = epoch_batches_done(trainer)
        return {
            "sampler_seed": self.sampler.seed,
            "epoch": self.sampler.last_epoch,
            "batches": batches,
            "complete": complete,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the order saved by :meth:`state_dict`."""
        if not state:
            return
        self._seed = int(state["sampler_seed"])
        self.sampler = None
        self._resume = {k: state[k] for k in ("epoch", "batches", "complete")}
