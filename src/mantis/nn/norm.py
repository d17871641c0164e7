"""GroupNorm with a fast backward for channels-last, low-precision inputs with few channels per group."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

# PyTorch's channels-last GroupNorm backward is 3-5x slower than this one for bf16 maps with at most
# 8 channels per group (e.g. 32 channels, 4 groups at 256²) and faster above that (benchmarks/bench_units.py).
_MAX_CHANNELS_PER_GROUP = 8
_LOW_PRECISION = (torch.bfloat16, torch.float16)
_CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}


class GroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` (same parameters, same values) with an analytic channels-last backward.

    The native forward is kept; the backward reduces over space in the channels-last layout and
    applies ``dx = a_c * dy + b_g * x + c_g`` in one pass, instead of PyTorch's slow path for
    narrow groups. Used only where it measured faster; otherwise this is ``nn.GroupNorm``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._use_fast_backward(x):
            return _ChannelsLastGroupNorm.apply(x, self.weight, self.bias, self.num_groups, self.eps)
        return super().forward(x)

    def _use_fast_backward(self, x: torch.Tensor) -> bool:
        return (
            torch.is_grad_enabled()
            and x.device.type == "cpu"  # measured on CPUs only
            and x.dtype in _LOW_PRECISION
            and self.affine
            and self.num_channels // self.num_groups <= _MAX_CHANNELS_PER_GROUP
            and x.dim() in _CHANNELS_LAST
            and x.is_contiguous(memory_format=_CHANNELS_LAST[x.dim()])
            and not x.is_contiguous()
            and not torch.jit.is_scripting()
            and not torch.compiler.is_compiling()
        )


class _ChannelsLastGroupNorm(torch.autograd.Function):
    """GroupNorm of a channels-last tensor; backward in float32 from per-channel sums over space."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, groups: int, eps: float
    ) -> torch.Tensor:
        n, c = x.shape[:2]
        hw = x.numel() // (n * c)
        y, mean, rstd = torch.ops.aten.native_group_norm(x, weight, bias, n, c, hw, groups, eps)
        ctx.save_for_backward(x, weight, mean, rstd)
        ctx.groups = groups
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        x, weight, mean, rstd = ctx.saved_tensors
        groups = ctx.groups
        n, c = x.shape[:2]
        per_group = c // groups
        # (N, S, C) views: free for channels-last tensors.
        xs = x.movedim(1, -1).reshape(n, -1, c)
        gs = grad.movedim(1, -1).reshape(n, -1, c)
        count = xs.shape[1] * per_group
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        sum_gx = _sum_over_space(gs * xs, acc)  # N x C
        sum_g = _sum_over_space(gs, acc)
        m, r = mean.to(acc), rstd.to(acc)
        mean_c = m.repeat_interleave(per_group, 1)
        rstd_c = r.repeat_interleave(per_group, 1)
        w = weight.to(acc)
        grad_weight = ((sum_gx - sum_g * mean_c) * rstd_c).sum(0)
        grad_bias = sum_g.sum(0)
        # dx = rstd w dy + b x + c with per-group b, c (the derivative of the normalisation).
        ds = (sum_gx * w).view(n, groups, per_group).sum(2)
        db = (sum_g * w).view(n, groups, per_group).sum(2)
        b = (db * m - ds) * r.pow(3) / count
        c0 = -b * m - db * r / count
        dt = x.dtype
        a_c = (rstd_c * w).to(dt).unsqueeze(1)
        b_c = b.repeat_interleave(per_group, 1).to(dt).unsqueeze(1)
        c_c = c0.repeat_interleave(per_group, 1).to(dt).unsqueeze(1)
        grad_x = torch.addcmul(c_c, xs, b_c).addcmul_(gs, a_c)
        grad_x = grad_x.view(x.movedim(1, -1).shape).movedim(-1, 1)
        return grad_x, grad_weight.to(weight.dtype), grad_bias.to(weight.dtype), None, None


def _sum_over_space(t: torch.Tensor, acc: torch.dtype = torch.float32, chunk: int = 256) -> torch.Tensor:
    """Sums in ``acc`` (float32 or float64) over axis 1 of an N x S x C tensor.

    Low-precision tensors are summed in chunks of ``chunk`` positions first (float32 accumulation inside
    each chunk), so that no float32 copy of the whole tensor is made; the chunk sums add up in float32.
    """
    n, s, c = t.shape
    if t.dtype not in _LOW_PRECISION or s % chunk:
        return t.sum(1, dtype=acc)
    return t.view(n, s // chunk, chunk, c).sum(2).sum(1, dtype=acc)
