"""Activation registry: build any activation from its name."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn


class SigmoidCrisp(nn.Module):
    """Sharpened sigmoid ``sigmoid(x / (smooth + sigmoid(gamma)))`` with learnable ``gamma`` (init 1)."""

    def __init__(self, smooth: float = 1e-2) -> None:
        super().__init__()
        self.smooth = smooth
        self.gamma = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x / (self.smooth + torch.sigmoid(self.gamma)))


class Maxout(nn.Module):
    """Maxout over channel groups: B x (k * C) x S -> B x C x S, the max of each group of ``pieces``."""

    def __init__(self, pieces: int = 2) -> None:
        super().__init__()
        self.pieces = pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        if c % self.pieces:
            raise ValueError(f"maxout with {self.pieces} pieces needs channels divisible by it, got {c}")
        return x.reshape(b, c // self.pieces, self.pieces, *x.shape[2:]).amax(dim=2)


_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=False),
    "leaky_relu": lambda: nn.LeakyReLU(0.1),
    "elu": nn.ELU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softmax": lambda: nn.Softmax(dim=1),
    "swish": nn.SiLU,
    "maxout": Maxout,
    "sigmoid_crisp": SigmoidCrisp,
    "identity": nn.Identity,
}


def list_activations() -> list[str]:
    """Names accepted by :func:`create_activation`."""
    return sorted(_ACTIVATIONS)


def create_activation(name: str) -> nn.Module:
    """Build the activation registered as ``name`` (e.g. ``relu``, ``swish``, ``sigmoid_crisp``)."""
    key = name.lower()
    if key not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(list_activations())}")
    return _ACTIVATIONS[key]()


def activation_pieces(name: str) -> int:
    """How many inputs per output the activation ``name`` takes along the channels: the layer before it must
    be that many times wider (2 for ``maxout``, which keeps the larger of each pair; 1 for the others)."""
    module = create_activation(name)
    return module.pieces if isinstance(module, Maxout) else 1


def class_activation(num_classes: int) -> nn.Module:
    """Softmax over classes when K > 1, sigmoid when K = 1 (the heads' output activation)."""
    return nn.Softmax(dim=1) if num_classes > 1 else nn.Sigmoid()
