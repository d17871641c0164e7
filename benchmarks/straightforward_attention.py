"""The baseline: a direct transcription of FRACTAL_SPEC.md section 2, as a port would first write it.

Each Tanimoto term is evaluated from the three inner products of the spec's formula, the complement
terms on materialised ``1 - p`` and ``1 - l``, and the spatial and channel maps separately.
Used only to measure the speed-up of :class:`mantis.nn.attention.FracTALAttention` (same parameters).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from mantis.nn.attention import FracTALAttention


def straightforward_tanimoto(p: torch.Tensor, l: torch.Tensor, depth: int, dims: tuple[int, ...]) -> torch.Tensor:  # noqa: E741
    """``FT^d(p, l)`` term by term, complement materialised (smooth 1e-5)."""

    def averaged(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ab = (a * b).sum(dims, keepdim=True)
        aa = (a * a).sum(dims, keepdim=True)
        bb = (b * b).sum(dims, keepdim=True)
        terms = max(depth, 1)
        total = torch.zeros_like(ab)
        for i in range(terms):
            total = total + 1.0 / (2**i * (aa + bb) - (2 ** (i + 1) - 1) * ab + 1e-5)
        return (ab + 1e-5) * total / terms

    return 0.5 * (averaged(p, l) + averaged(1 - p, 1 - l))


def straightforward_forward(
    self: FracTALAttention, q_src: torch.Tensor, k_src: torch.Tensor | None = None, v_src: torch.Tensor | None = None
) -> torch.Tensor:
    """FracTAL attention as written in the spec."""
    k_src = q_src if k_src is None else k_src
    v_src = k_src if v_src is None else v_src
    q = torch.sigmoid(self.query(q_src))
    k = torch.sigmoid(self.key(k_src))
    v = torch.sigmoid(self.value(v_src))
    spatial = straightforward_tanimoto(q, k, self.depth, (1,))
    channel = straightforward_tanimoto(q, k, self.depth, tuple(range(2, q.dim())))
    return self.norm(0.5 * (channel * v + spatial * v))


@contextlib.contextmanager
def straightforward_attention() -> Iterator[None]:
    """Within this context every FracTALAttention runs the straightforward forward."""
    original = FracTALAttention.forward
    FracTALAttention.forward = straightforward_forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        FracTALAttention.forward = original  # type: ignore[method-assign]


class _CoreFree(torch.autograd.Function):
    """``0.5 * v``, with zero gradients for q and k so that their convolutions still run backward."""

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return 0.5 * v

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        return torch.zeros_like(grad), torch.zeros_like(grad), 0.5 * grad


def core_free_attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, depth: int, smooth: float = 0.0
) -> torch.Tensor:
    """Stand-in for :func:`mantis.nn.attention.attend` that costs (almost) nothing: the bound on any core."""
    return _CoreFree.apply(q, k, v)


@contextlib.contextmanager
def core_free_attention() -> Iterator[None]:
    """Within this context every FracTALAttention's core (similarity maps and product) is ``0.5 * v``."""
    import mantis.nn.attention as attention

    original = attention.attend
    attention.attend = core_free_attend
    try:
        yield
    finally:
        attention.attend = original
