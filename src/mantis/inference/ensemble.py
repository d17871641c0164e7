"""An ensemble of checkpoints: one module whose output is the field-wise mean of its members'."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from mantis.inference.outputs import ModelOutput, mean_outputs


class ModelEnsemble(nn.Module):
    """Averages the outputs (tensor, NamedTuple or dict; every field) of models that share one interface.

    Args:
        models: models called alike (``model(x)`` or ``model(x1, x2)``) returning outputs of one kind.
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if not models:
            raise ValueError("an ensemble needs at least one model")
        self.members = nn.ModuleList(models)

    def forward(self, *inputs: torch.Tensor) -> ModelOutput:
        """Mean of ``member(*inputs)`` over the members; inputs N x C x S, fields N x K x S."""
        outs: list[Any] = [m(*inputs) for m in self.members]
        return outs[0] if len(outs) == 1 else mean_outputs(outs)
