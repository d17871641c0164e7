"""A callback that kills its own process (SIGKILL: no cleanup, as a crash or ``kill -9``) at a chosen step."""

from __future__ import annotations

import os
import signal
from typing import Any

import lightning


class KillAtStep(lightning.Callback):
    """SIGKILL this process when the global step reaches ``step`` (after that step's optimiser update)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: lightning.Trainer, *args: Any) -> None:
        """Die here, before any checkpoint of this step is written."""
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)
