"""Window placement, reflect indexing and blending weights, for any number of spatial dimensions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

BlendMode = Literal["mean", "gaussian", "linear"]
BLEND_MODES: tuple[str, ...] = ("mean", "gaussian", "linear")


def as_tuple(value: int | Sequence[int], ndim: int, name: str) -> tuple[int, ...]:
    """Broadcast an int to ``ndim`` ints, or check a sequence has ``ndim`` of them."""
    if isinstance(value, int):
        return (int(value),) * ndim
    out = tuple(int(v) for v in value)
    if len(out) != ndim:
        raise ValueError(f"{name} has {len(out)} values for {ndim} spatial dimensions")
    return out


def resolve_stride(
    window: tuple[int, ...], stride: int | Sequence[int] | None, overlap: float | None
) -> tuple[int, ...]:
    """Stride per dimension from an explicit ``stride`` or a fractional ``overlap`` (default 0.5).

    Args:
        window: window size per spatial dimension.
        stride: step between windows; excludes ``overlap``.
        overlap: fraction of the window shared by neighbours, in [0, 1).

    Returns:
        The stride per dimension, each in [1, window].
    """
    if stride is not None and overlap is not None:
        raise ValueError("give stride or overlap, not both")
    if any(w < 1 for w in window):
        raise ValueError(f"window must be positive, got {window}")
    if stride is None:
        overlap = 0.5 if overlap is None else float(overlap)
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {overlap}")
        return tuple(max(1, int(round(w * (1.0 - overlap)))) for w in window)
    out = as_tuple(stride, len(window), "stride")
    for s, w in zip(out, window):
        if not 1 <= s <= w:
            raise ValueError(f"stride must be in [1, window], got stride {s} for window {w}")
    return out


def resolve_pad(window: tuple[int, ...], stride: tuple[int, ...], pad: int | Sequence[int] | None) -> tuple[int, ...]:
    """Reflect padding per side; default ``(window - stride) // 2`` keeps border pixels off window edges."""
    if pad is None:
        return tuple((w - s) // 2 for w, s in zip(window, stride))
    out = as_tuple(pad, len(window), "pad")
    if any(p < 0 for p in out):
        raise ValueError(f"pad must be non-negative, got {out}")
    return out


def padded_extent(size: int, window: int, pad: int) -> int:
    """Length of the padded axis: ``size + 2 * pad``, grown at the end to at least one window."""
    return max(size + 2 * pad, window)


def window_starts(extent: int, window: int, stride: int) -> list[int]:
    """Starts of ``window``-long windows every ``stride`` over ``extent``, the last flush with the end."""
    if extent <= window:
        return [0]
    n = math.ceil((extent - window) / stride) + 1
    return sorted({min(i * stride, extent - window) for i in range(n)})


def reflect_indices(start: int, stop: int, size: int) -> np.ndarray:
    """Indices into an axis of length ``size`` for positions ``start..stop-1``, reflected at both ends.

    Reflection does not repeat the edge (like ``numpy.pad(mode="reflect")``) and repeats as often as needed,
    so any padding works on any axis length.
    """
    pos = np.arange(start, stop, dtype=np.int64)
    if size == 1:
        return np.zeros_like(pos)
    period = 2 * (size - 1)
    pos = np.mod(pos, period)
    return np.where(pos >= size, period - pos, pos)


def _profile(length: int, stride: int, mode: str, sigma_scale: float) -> np.ndarray:
    i = np.arange(length, dtype=np.float64)
    if mode == "mean":
        return np.ones(length)
    if mode == "gaussian":
        sigma = max(sigma_scale * length, 1e-3)
        centre = (length - 1) / 2.0
        return np.exp(-0.5 * ((i - centre) / sigma) ** 2)
    if mode == "linear":
        # Trapezoid: rises over the overlap, flat in the middle, strictly positive everywhere.
        ramp = length - stride
        if ramp <= 0:
            return np.ones(length)
        return np.minimum(1.0, np.minimum(i + 1.0, length - i) / (ramp + 1.0))
    raise ValueError(f"unknown blend mode {mode!r}; choose one of {', '.join(BLEND_MODES)}")


def blend_weights(
    window: Sequence[int],
    stride: Sequence[int],
    mode: str = "mean",
    sigma_scale: float = 0.125,
) -> torch.Tensor:
    """Weight of each window pixel when blending overlapping windows; strictly positive.

    ``mean`` weighs every pixel 1 (the paper's average); ``gaussian`` is a separable Gaussian with standard
    deviation ``sigma_scale * window``; ``linear`` is a separable trapezoid ramping over ``window - stride``.

    Args:
        window: window size per spatial dimension, S.
        stride: stride per spatial dimension (shapes the linear ramp).
        mode: ``"mean"``, ``"gaussian"`` or ``"linear"``.
        sigma_scale: Gaussian standard deviation as a fraction of the window.

    Returns:
        float32 tensor of shape S, maximum 1.
    """
    w = np.ones((), dtype=np.float64)
    for length, s in zip(window, stride):
        w = np.multiply.outer(w, _profile(int(length), int(s), mode, sigma_scale))
    w = w / w.max()
    return torch.from_numpy(np.maximum(w, 1e-12).astype(np.float32))
