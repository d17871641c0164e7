"""The baselines: direct transcriptions of FRACTAL_SPEC.md section 2, as a port would first write them.

- ``straightforward``: the d-term average from the three inner products of each call (the spec's cost note),
  the complement terms on materialised ``1 - p`` and ``1 - l``, the spatial and channel maps separately.
- ``per-term``: the formulas read literally, each ``T^i`` from its own three inner products (d passes per
  call), the complement materialised. Its cost matches the issue's description of "a straightforward
  PyTorch transcription" (unit about 4.6x a ResNet-v2 block at 32 channels, 128^2).

Used only to measure the speed-up of :class:`mantis.nn.attention.FracTALAttention` (same parameters, same
values: ``tests/test_benchmark_baselines.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from functools import partialmethod
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


def per_term_tanimoto(p: torch.Tensor, l: torch.Tensor, depth: int, dims: tuple[int, ...]) -> torch.Tensor:  # noqa: E741
    """``FT^d(p, l)`` with each ``T^i`` computed from its own inner products, complement materialised."""

    def term(a: torch.Tensor, b: torch.Tensor, i: int) -> torch.Tensor:
        ab = (a * b).sum(dims, keepdim=True)
        aa = (a * a).sum(dims, keepdim=True)
        bb = (b * b).sum(dims, keepdim=True)
        return (ab + 1e-5) / (2**i * (aa + bb) - (2 ** (i + 1) - 1) * ab + 1e-5)

    def averaged(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        terms = max(depth, 1)
        total = term(a, b, 0)
        for i in range(1, terms):
            total = total + term(a, b, i)
        return total / terms

    return 0.5 * (averaged(p, l) + averaged(1 - p, 1 - l))


Tanimoto = Callable[[torch.Tensor, torch.Tensor, int, tuple[int, ...]], torch.Tensor]


def transcribed_forward(
    self: FracTALAttention,
    q_src: torch.Tensor,
    k_src: torch.Tensor | None = None,
    v_src: torch.Tensor | None = None,
    tanimoto: Tanimoto = straightforward_tanimoto,
) -> torch.Tensor:
    """FracTAL attention as written in the spec, with the given transcription of ``FT^d``."""
    k_src = q_src if k_src is None else k_src
    v_src = k_src if v_src is None else v_src
    q = torch.sigmoid(self.query(q_src))
    k = torch.sigmoid(self.key(k_src))
    v = torch.sigmoid(self.value(v_src))
    spatial = tanimoto(q, k, self.depth, (1,))
    channel = tanimoto(q, k, self.depth, tuple(range(2, q.dim())))
    return self.norm(0.5 * (channel * v + spatial * v))


@contextlib.contextmanager
def transcribed_attention(tanimoto: Tanimoto) -> Iterator[None]:
    """Within this context every FracTALAttention runs the spec's forward with ``tanimoto``."""
    original = FracTALAttention.forward
    FracTALAttention.forward = partialmethod(transcribed_forward, tanimoto=tanimoto)  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        FracTALAttention.forward = original  # type: ignore[method-assign]


def straightforward_attention() -> contextlib.AbstractContextManager[None]:
    """Within this context every FracTALAttention runs the straightforward forward."""
    return transcribed_attention(straightforward_tanimoto)


def per_term_attention() -> contextlib.AbstractContextManager[None]:
    """Within this context every FracTALAttention runs the per-term forward."""
    return transcribed_attention(per_term_tanimoto)


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
