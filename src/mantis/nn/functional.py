"""Pure functions: the fractal Tanimoto similarity and its reductions.

The denominators are written as ``2^i <p-l, p-l> + <p,l>``, which equals the paper's
``2^i(<p,p> + <l,l>) - (2^(i+1) - 1)<p,l>`` but does not cancel catastrophically at high depth.
The complement terms come from three reductions: with ``t = sum(p + l)`` and ``n`` elements,
``<1-p, 1-l> = n - t + <p,l>`` and ``<(1-p)-(1-l), (1-p)-(1-l)> = <p-l, p-l>``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

DEFAULT_SMOOTH = 1e-5

Dims = int | Sequence[int]


def _dims(dim: Dims) -> tuple[int, ...]:
    return (dim,) if isinstance(dim, int) else tuple(dim)


def _accumulation_dtype(x: torch.Tensor) -> torch.dtype:
    # Reductions and denominators run in float32 at least, so bf16/fp16 inputs stay accurate.
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def tanimoto_from_sums(pl: torch.Tensor, dd: torch.Tensor, depth: int, smooth: float = DEFAULT_SMOOTH) -> torch.Tensor:
    """Averaged fractal Tanimoto ``<T>^d`` from the reductions ``<p,l>`` and ``<p-l, p-l>``.

    Args:
        pl: inner products ``<p, l>``.
        dd: squared distances ``<p - l, p - l>``, same shape as ``pl``.
        depth: number of terms d (0 is treated as 1).
        smooth: added once to the numerator and to each denominator.

    Returns:
        ``(pl + s) * (1/d) * sum_{i<d} 1 / (2^i dd + pl + s)``, same shape as ``pl``.
    """
    terms = max(int(depth), 1)
    base = pl + smooth
    acc = torch.reciprocal(dd + base)
    for i in range(1, terms):
        acc = acc + torch.reciprocal(dd * float(2**i) + base)
    return base * acc / terms


def fractal_tanimoto_from_sums(
    pl: torch.Tensor,
    dd: torch.Tensor,
    total: torch.Tensor,
    count: torch.Tensor | float,
    depth: int,
    complement: bool = True,
    smooth: float = DEFAULT_SMOOTH,
) -> torch.Tensor:
    """Fractal Tanimoto with complement from ``<p,l>``, ``<p-l,p-l>``, ``sum(p+l)`` and the element count.

    Returns ``0.5 * (<T>^d(p, l) + <T>^d(1-p, 1-l))``, or ``<T>^d(p, l)`` when ``complement`` is False.
    """
    sim = tanimoto_from_sums(pl, dd, depth, smooth)
    if not complement:
        return sim
    pl_dual = count - total + pl
    return 0.5 * (sim + tanimoto_from_sums(pl_dual, dd, depth, smooth))


def fractal_tanimoto(
    p: torch.Tensor,
    l: torch.Tensor,  # noqa: E741
    depth: int = 0,
    dim: Dims = 1,
    complement: bool = True,
    smooth: float = DEFAULT_SMOOTH,
    keepdim: bool = True,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fractal Tanimoto similarity ``FT^d(p, l)`` reduced over ``dim``.

    Args:
        p: values in [0, 1], any shape (e.g. B x C x S).
        l: values in [0, 1], broadcastable with ``p``.
        depth: fractal depth d (number of averaged terms; 0 behaves as 1).
        dim: axis or axes of the inner products (1 = channels: one score per position;
            ``(2, ..., n+1)`` = space: one score per channel).
        complement: average with the similarity of the complements ``(1-p, 1-l)``.
        smooth: smoothing added to numerator and each denominator (two all-zero inputs give 1).
        keepdim: keep the reduced axes with size 1.
        weight: optional per-element weights (e.g. 0 on ignored pixels), broadcastable with ``p``.

    Returns:
        Similarity in [0, 1], ``p``'s shape with ``dim`` reduced, in float32 (float64 for float64 inputs).
    """
    dims = _dims(dim)
    acc = _accumulation_dtype(p)
    p = p.to(acc)
    l = l.to(acc)  # noqa: E741
    diff = p - l
    prod = p * l
    sq = diff * diff
    if weight is not None:
        weight = weight.to(acc)
        prod = prod * weight
        sq = sq * weight
    pl = prod.sum(dims, keepdim=keepdim)
    dd = sq.sum(dims, keepdim=keepdim)
    if not complement:
        return tanimoto_from_sums(pl, dd, depth, smooth)
    plus = p + l
    if weight is None:
        count: torch.Tensor | float = float(_count(torch.broadcast_shapes(p.shape, l.shape), dims))
    else:
        plus = plus * weight
        count = torch.broadcast_to(weight, torch.broadcast_shapes(p.shape, l.shape, weight.shape)).sum(
            dims, keepdim=keepdim
        )
    total = plus.sum(dims, keepdim=keepdim)
    return fractal_tanimoto_from_sums(pl, dd, total, count, depth, True, smooth)


def _count(shape: torch.Size, dims: tuple[int, ...]) -> int:
    n = 1
    for d in dims:
        n *= shape[d]
    return n
