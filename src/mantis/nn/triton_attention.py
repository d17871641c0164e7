"""The FracTAL attention core as Triton kernels, registered as the torch custom op ``mantis::fractal_attention``.

``fractal_attention(q, k, v, depth, smooth)`` returns ``0.5 * v * (FT_spatial(q, k) + FT_channel(q, k))`` as
:func:`mantis.nn.attention.attend` does, from one read of q and k, one of v, and in the backward one read each
of g, v, q and k (kernels in :mod:`mantis.nn.triton_kernels`). The op has an autograd formula and a fake
(meta) implementation, so autograd and ``torch.compile`` both see it; the kernels are imported only when the
op runs, and Triton is needed only then. :func:`supports` says when :func:`~mantis.nn.attention.attend`
dispatches here (CUDA tensors, Triton importable, and the environment variable MANTIS_TRITON not ``0``).
"""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType

import torch

from mantis.nn.triton_launch import (
    empty_in_layout,
    grid,
    in_layout,
    is_channels_last,
    next_pow2,
    on_device,
    register_autograd_with_stats,
    strides,
)

# Half precisions and float32 accumulate in float32 inside the kernels; float64 stays on the PyTorch path.
KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


# Looked up once, without importing Triton; a constant, so torch.compile traces the dispatch without a break.
# MANTIS_TRITON=0 keeps CUDA tensors on the PyTorch core (a way around a Triton build that fails on a machine).
TRITON_AVAILABLE = importlib.util.find_spec("triton") is not None and os.environ.get("MANTIS_TRITON", "1") != "0"


def supports(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """Whether the Triton core takes these inputs: CUDA, Triton present, one shape and dtype, 3+ dims, not empty."""
    return (
        q.is_cuda
        and TRITON_AVAILABLE
        and q.dim() >= 3
        and q.numel() > 0
        and q.shape == k.shape == v.shape
        and q.dtype == k.dtype == v.dtype
        and q.dtype in KERNEL_DTYPES
    )


def fractal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, depth: int, smooth: float) -> torch.Tensor:
    """``0.5 * v * (spatial + channel fractal Tanimoto of q and k)`` by the Triton kernels.

    Shapes: q, k, v B x C x S1 x ... (values in [0, 1]) -> B x C x S1 x ..., in q's memory layout.
    """
    return _forward(q, k, v, max(int(depth), 1), float(smooth))[0]


def _kernels() -> ModuleType:
    # Imported on first use: the module decorates the kernels, which needs Triton (and reads TRITON_INTERPRET).
    from mantis.nn import triton_kernels

    return triton_kernels


def launch_forward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, depth: int, smooth: float, blocks: tuple[int, int] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Runs the forward kernels: ``(y, spatial stats N x 4 x S, channel stats N x 4 x C)``.

    ``blocks`` (BLOCK_C, BLOCK_S), powers of two, overrides the tile (tests use tiny tiles to cross edges).
    """
    kern = _kernels()
    channels_last = is_channels_last(q)
    q, k, v = (in_layout(t, channels_last) for t in (q, k, v))
    g = grid(q, blocks)
    stride = strides(q, channels_last)
    tile = g.tile
    y = empty_in_layout(q.shape, q.dtype, q.device, channels_last)
    sp = torch.empty((g.n, 4, g.s), dtype=torch.float32, device=q.device)
    ch = torch.empty((g.n, 4, g.c), dtype=torch.float32, device=q.device)
    part = torch.empty((g.n, g.tiles, 3, g.c), dtype=torch.float32, device=q.device)
    with on_device(q):
        kern._reduce_kernel[(g.tiles, g.n)](q, k, sp, part, g.c, g.s, *stride, smooth, DEPTH=depth, **tile)
        block_t = min(64, next_pow2(g.tiles))  # tiles summed a step: a few steps, not one per tile
        kern._channel_kernel[(-(-g.c // g.block_c), g.n)](
            part, ch, g.c, g.s, g.tiles, smooth, DEPTH=depth, BLOCK_C=g.block_c, BLOCK_T=block_t
        )
        kern._apply_kernel[(g.tiles, g.n)](v, y, sp, ch, g.c, g.s, *stride, **tile)
    return y, sp, ch


def launch_backward(
    grad: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    sp: torch.Tensor,
    ch: torch.Tensor,
    blocks: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Runs the backward kernels: gradients of q, k and v, in q's layout."""
    kern = _kernels()
    channels_last = is_channels_last(q)
    grad, q, k, v = (in_layout(t, channels_last) for t in (grad, q, k, v))
    g = grid(q, blocks)
    stride = strides(q, channels_last)
    tile = g.tile
    grad_q, grad_k, grad_v = (empty_in_layout(q.shape, q.dtype, q.device, channels_last) for _ in range(3))
    g_sp = torch.empty((g.n, g.s), dtype=torch.float32, device=q.device)
    part = torch.empty((g.n, g.tiles, g.c), dtype=torch.float32, device=q.device)
    with on_device(q):
        kern._grad_v_kernel[(g.tiles, g.n)](grad, v, grad_v, sp, ch, g_sp, part, g.c, g.s, *stride, **tile)
        g_ch = part.sum(1)  # N x C: the per-tile sums over space, added up (small)
        kern._grad_qk_kernel[(g.tiles, g.n)](q, k, grad_q, grad_k, sp, ch, g_sp, g_ch, g.c, g.s, *stride, **tile)
    return grad_q, grad_k, grad_v


@torch.library.custom_op("mantis::fractal_attention", mutates_args=())
def _forward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, depth: int, smooth: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(y, spatial stats, channel stats)``; the stats are what the backward needs besides q, k and v."""
    return launch_forward(q, k, v, depth, smooth)


@torch.library.custom_op("mantis::fractal_attention_backward", mutates_args=())
def _backward(
    grad: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sp: torch.Tensor, ch: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of q, k and v."""
    return launch_backward(grad, q, k, v, sp, ch)


@_forward.register_fake
def _forward_fake(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, depth: int, smooth: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n, c = q.shape[:2]
    s = q.numel() // max(n * c, 1)
    y = empty_in_layout(q.shape, q.dtype, q.device, is_channels_last(q))
    return y, q.new_empty((n, 4, s), dtype=torch.float32), q.new_empty((n, 4, c), dtype=torch.float32)


@_backward.register_fake
def _backward_fake(
    grad: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sp: torch.Tensor, ch: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    channels_last = is_channels_last(q)
    return tuple(empty_in_layout(q.shape, q.dtype, q.device, channels_last) for _ in range(3))  # type: ignore[return-value]


register_autograd_with_stats(_forward, _backward)
