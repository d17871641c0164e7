"""GroupNorm followed by ReLU as Triton kernels, registered as the torch custom op ``mantis::group_norm_relu``.

``group_norm_relu(x, weight, bias, groups, eps)`` equals ``relu(group_norm(x, groups, weight, bias, eps))``
with two reads of x forward (statistics, then the normalised and rectified output) and, backward, two reads
each of the output gradient and x (sums, then the input gradient): the rectifier's mask is recomputed from x,
so neither the normalised map nor the mask is stored, and the output keeps x's dtype (bf16 in, bf16 out, where
autocast would run ``group_norm`` in float32). Statistics are per-tile means and centred sums of squares in
float32, combined per group without cancellation (Chan et al.'s pairwise update).

Off unless the environment sets ``MANTIS_TRITON_NORM=1``: whether it beats PyTorch's GroupNorm and ReLU
kernels on a GPU is still to be measured (``benchmarks/gpu_report.py``); :data:`ENABLED` switches it in a
running process. CUDA tensors only; the CPU keeps :class:`mantis.nn.norm.GroupNorm`.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import TypeGuard

import torch
import torch.nn as nn
from torch import Tensor

from mantis.nn.triton_attention import KERNEL_DTYPES, TRITON_AVAILABLE
from mantis.nn.triton_launch import (
    Grid,
    empty_in_layout,
    grid,
    in_layout,
    is_channels_last,
    on_device,
    register_autograd_with_stats,
    strides,
)

ENABLED = TRITON_AVAILABLE and os.environ.get("MANTIS_TRITON_NORM", "0") == "1"


def supports(norm: nn.Module, x: torch.Tensor) -> TypeGuard[nn.GroupNorm]:
    """Whether ``relu(norm(x))`` runs fused: enabled, an affine GroupNorm, a CUDA map of a kernel dtype."""
    return (
        ENABLED
        and isinstance(norm, nn.GroupNorm)
        and norm.affine
        and x.is_cuda
        and x.dim() >= 3
        and x.numel() > 0
        and x.dtype in KERNEL_DTYPES
    )


def group_norm_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, groups: int, eps: float) -> torch.Tensor:
    """``relu(group_norm(x))`` by the Triton kernels; B x C x S1 x ... -> the same shape, dtype and layout."""
    return _forward(x, weight, bias, int(groups), float(eps))[0]


def _kernels() -> ModuleType:
    from mantis.nn import triton_norm_kernels  # needs Triton (and reads TRITON_INTERPRET) when imported

    return triton_norm_kernels


def _tile_counts(g: Grid, device: torch.device) -> torch.Tensor:
    """Positions in each tile (the last one may be short), float32."""
    counts = torch.full((g.tiles,), float(g.block_s), device=device)
    counts[-1] = g.s - (g.tiles - 1) * g.block_s
    return counts


def _group_stats(part: torch.Tensor, counts: torch.Tensor, groups: int, eps: float) -> tuple[torch.Tensor, ...]:
    """Mean and 1/std per sample and group (N x G) from per-tile, per-channel means and centred square sums."""
    n, tiles, _, c = part.shape
    per_group = c // groups
    means = part[:, :, 0].reshape(n, tiles, groups, per_group)
    squares = part[:, :, 1].reshape(n, tiles, groups, per_group)
    weights = counts.view(1, tiles, 1, 1)
    total = counts.sum() * per_group
    mean = (means * weights).sum((1, 3)) / total
    spread = squares.sum((1, 3)) + (weights * (means - mean[:, None, :, None]).square()).sum((1, 3))
    return mean, torch.rsqrt(spread / total + eps)


def _per_channel(values: torch.Tensor, channels: int) -> torch.Tensor:
    """N x G -> N x C (each group's value for its channels), contiguous."""
    return values.repeat_interleave(channels // values.shape[1], dim=1).contiguous()


def _coefficients(weight: Tensor, bias: Tensor, mean_c: Tensor, rstd_c: Tensor, *more: Tensor) -> Tensor:
    """Rows mean, ``scale = rstd w``, bias (then ``more``) per sample and channel: N x rows x C, float32.

    The pre-activation is ``(x - mean) scale + bias``.
    """
    scale = rstd_c * weight.float()
    return torch.stack([mean_c, scale, bias.float().expand_as(scale), *more], 1).contiguous()


def launch_forward(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    groups: int,
    eps: float,
    blocks: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Runs the forward kernels: ``(y, mean N x G, rstd N x G)``; ``blocks`` overrides the tile (tests)."""
    kern = _kernels()
    channels_last = is_channels_last(x)
    x = in_layout(x, channels_last)
    g = grid(x, blocks)
    stride = strides(x, channels_last)
    part = torch.empty((g.n, g.tiles, 2, g.c), dtype=torch.float32, device=x.device)
    y = empty_in_layout(x.shape, x.dtype, x.device, channels_last)
    with on_device(x):
        kern._stats_kernel[(g.tiles, g.n)](x, part, g.c, g.s, *stride, **g.tile)
        mean, rstd = _group_stats(part, _tile_counts(g, x.device), groups, eps)
        coef = _coefficients(weight, bias, _per_channel(mean, g.c), _per_channel(rstd, g.c))
        kern._norm_relu_kernel[(g.tiles, g.n)](x, y, coef, g.c, g.s, *stride, **g.tile)
    return y, mean, rstd


def launch_backward(
    grad: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    mean: torch.Tensor,
    rstd: torch.Tensor,
    blocks: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Runs the backward kernels: gradients of x (in x's layout), weight and bias."""
    kern = _kernels()
    channels_last = is_channels_last(x)
    grad, x = in_layout(grad, channels_last), in_layout(x, channels_last)
    g = grid(x, blocks)
    stride = strides(x, channels_last)
    mean_c, rstd_c = _per_channel(mean, g.c), _per_channel(rstd, g.c)
    part = torch.empty((g.n, g.tiles, 2, g.c), dtype=torch.float32, device=x.device)
    dx = empty_in_layout(x.shape, x.dtype, x.device, channels_last)
    with on_device(x):
        coef = _coefficients(weight, bias, mean_c, rstd_c, rstd_c)
        kern._grad_sums_kernel[(g.tiles, g.n)](grad, x, coef, part, g.c, g.s, *stride, **g.tile)
        sums = part.sum(1)  # N x 2 x C: sum of dz and of dz * xhat over every position
        groups = mean.shape[1]
        count = g.s * (g.c // groups)
        w = weight.float()
        # dx = rstd (w dz - mean_g(w dz) - xhat mean_g(w dz xhat)), as dz alpha + (x - mean) beta + gamma.
        m1 = _per_channel((sums[:, 0] * w).view(g.n, groups, -1).sum(2) / count, g.c)
        m2 = _per_channel((sums[:, 1] * w).view(g.n, groups, -1).sum(2) / count, g.c)
        coef = _coefficients(weight, bias, mean_c, rstd_c, rstd_c * w, -rstd_c * rstd_c * m2, -rstd_c * m1)
        kern._grad_kernel[(g.tiles, g.n)](grad, x, dx, coef, g.c, g.s, *stride, **g.tile)
    return dx, sums[:, 1].sum(0).to(weight.dtype), sums[:, 0].sum(0).to(bias.dtype)


@torch.library.custom_op("mantis::group_norm_relu", mutates_args=())
def _forward(x: Tensor, weight: Tensor, bias: Tensor, groups: int, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """``(y, mean, rstd)``; the statistics are what the backward needs besides x."""
    return launch_forward(x, weight, bias, groups, eps)


@torch.library.custom_op("mantis::group_norm_relu_backward", mutates_args=())
def _backward(
    grad: Tensor, x: Tensor, w: Tensor, b: Tensor, mean: Tensor, rstd: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of x, the weight w and the bias b."""
    return launch_backward(grad, x, w, b, mean, rstd)


@_forward.register_fake
def _forward_fake(x: Tensor, weight: Tensor, bias: Tensor, groups: int, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    stats = (x.shape[0], groups)
    y = empty_in_layout(x.shape, x.dtype, x.device, is_channels_last(x))
    return y, x.new_empty(stats, dtype=torch.float32), x.new_empty(stats, dtype=torch.float32)


@_backward.register_fake
def _backward_fake(grad: Tensor, x: Tensor, w: Tensor, b: Tensor, mean: Tensor, rstd: Tensor) -> tuple[Tensor, ...]:
    return empty_in_layout(x.shape, x.dtype, x.device, is_channels_last(x)), torch.empty_like(w), torch.empty_like(b)


register_autograd_with_stats(_forward, _backward)


__all__ = ["ENABLED", "group_norm_relu", "launch_backward", "launch_forward", "supports"]
