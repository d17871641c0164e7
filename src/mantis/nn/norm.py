"""GroupNorm with a fast backward for channels-last CPU maps with few channels per group, that keeps the autocast
dtype on accelerators."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

# PyTorch's channels-last GroupNorm backward is 3-5x slower than this one for bf16 maps with at most
# 8 channels per group (e.g. 32 channels, 4 groups at 256²) and faster above that (benchmarks/bench_units.py);
# in float32 it is 1.5-2.4x slower up to 4 channels per group and faster from 8 (benchmarks/bench_units.py norm).
_MAX_CHANNELS_PER_GROUP = {torch.bfloat16: 8, torch.float16: 8, torch.float32: 4}
# Its forward is 2-5x slower than :func:`_group_norm_rows` for bf16 maps of at most 8 channels, faster above;
# in float32 3x slower for 4 channels, faster from 8 (float64: the exact checks of the tests).
_MAX_CHANNELS_OWN_FORWARD = {torch.bfloat16: 8, torch.float16: 8, torch.float32: 4, torch.float64: 8}
_LOW_PRECISION = (torch.bfloat16, torch.float16)
_CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}


class GroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` (same parameters, same values) with an analytic channels-last backward.

    For bf16 channels-last maps on the CPU: the backward reduces over space in the channels-last layout and
    applies ``dx = a_c * dy + b_g * x + c_g`` in one pass, and maps of at most 8 channels are normalised by
    :func:`_group_norm_rows`, instead of PyTorch's slow paths for narrow channel axes. Used only where it
    measured faster; otherwise this is ``nn.GroupNorm``.

    Under autocast on a CUDA device the output keeps the autocast dtype: PyTorch lists
    ``group_norm`` among the ops it runs in float32 there, which leaves every map after a norm (activations,
    attention, sums) in float32 and is why bf16 gained nothing on the GroupNorm networks on an H100 while the
    BatchNorm ones gained 1.7x (docs/benchmarks.md). The statistics are still accumulated in float32 inside
    the kernel; BatchNorm under autocast, and this class on the CPU, already work this way.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = _autocast_dtype(x)
        if low is not None:
            weight = None if self.weight is None else self.weight.to(low)
            bias = None if self.bias is None else self.bias.to(low)
            with torch.autocast(x.device.type, enabled=False):
                return F.group_norm(x.to(low), self.num_groups, weight, bias, self.eps)
        path = self.path(x)
        if path == "analytic backward":
            return _ChannelsLastGroupNorm.apply(x, self.weight, self.bias, self.num_groups, self.eps)
        if path == "rows":
            return _group_norm_rows(x, self.weight, self.bias, self.num_groups, self.eps)[0]
        return super().forward(x)

    def path(self, x: torch.Tensor) -> str:
        """Which code normalises ``x``: ``"analytic backward"``, ``"rows"`` (forward only) or ``"native"``."""
        if self._fast_layout(x):
            if torch.is_grad_enabled() and self.num_channels // self.num_groups <= _MAX_CHANNELS_PER_GROUP[x.dtype]:
                return "analytic backward"
            if self.num_channels <= _MAX_CHANNELS_OWN_FORWARD[x.dtype]:
                return "rows"
        return "native"

    def _fast_layout(self, x: torch.Tensor) -> bool:
        """A channels-last map on the CPU in a dtype where the faster paths were measured."""
        return (
            x.device.type == "cpu"
            and x.dtype in _MAX_CHANNELS_PER_GROUP
            and self.affine
            and x.dim() in _CHANNELS_LAST
            and x.is_contiguous(memory_format=_CHANNELS_LAST[x.dim()])
            and not x.is_contiguous()
            and not torch.jit.is_scripting()
            and not torch.compiler.is_compiling()
        )


def _autocast_dtype(x: torch.Tensor) -> torch.dtype | None:
    """The autocast dtype where ``x`` is on CUDA and autocast is on there, else None (every other device: meta
    tensors have no autocast at all, and the CPU keeps its own paths)."""
    if x.device.type != "cuda" or not torch.is_autocast_enabled("cuda"):
        return None
    return torch.get_autocast_dtype("cuda")


class _ChannelsLastGroupNorm(torch.autograd.Function):
    """GroupNorm of a channels-last tensor; backward in float32 from per-channel sums over space."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, groups: int, eps: float
    ) -> torch.Tensor:
        n, c = x.shape[:2]
        if c <= _MAX_CHANNELS_OWN_FORWARD[x.dtype]:
            y, mean, rstd = _group_norm_rows(x, weight, bias, groups, eps)
        else:
            y, mean, rstd = torch.ops.aten.native_group_norm(x, weight, bias, n, c, x.numel() // (n * c), groups, eps)
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
        # Rows of `wide` positions: the per-channel coefficients repeat along a longer inner axis, which
        # vectorises (an inner axis of 16 bf16 channels ran ~10x slower, benchmarks/bench_units.py).
        wide = _row_positions(xs.shape[1], c)
        xs, gs = xs.reshape(n, -1, wide * c), gs.reshape(n, -1, wide * c)
        a_c = (rstd_c * w).to(dt).repeat(1, wide).unsqueeze(1)
        b_c = b.repeat_interleave(per_group, 1).to(dt).repeat(1, wide).unsqueeze(1)
        c_c = c0.repeat_interleave(per_group, 1).to(dt).repeat(1, wide).unsqueeze(1)
        grad_x = torch.addcmul(c_c, xs, b_c).addcmul_(gs, a_c)
        grad_x = grad_x.view(x.movedim(1, -1).shape).movedim(-1, 1)
        return grad_x, grad_weight.to(weight.dtype), grad_bias.to(weight.dtype), None, None


def _group_norm_rows(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, groups: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GroupNorm of a channels-last map in float32 on rows of several positions: output, mean and rstd (N x G).

    Two passes (mean, then the centred sum of squares), so no cancellation; the output is rounded once.
    """
    n, c = x.shape[:2]
    per_group = c // groups
    xs = x.movedim(1, -1).reshape(n, -1, c)
    positions = xs.shape[1]
    wide = _row_positions(positions, c)
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    xf = xs.reshape(n, -1, wide * c).to(acc, copy=True)  # centred in place below
    mean = xf.sum(1).view(n, wide, groups, per_group).sum((1, 3)) / (positions * per_group)
    centred = xf.sub_(mean.repeat_interleave(per_group, 1).repeat(1, wide).unsqueeze(1))
    square_sums = torch.linalg.vecdot(centred, centred, dim=1)
    var = square_sums.view(n, wide, groups, per_group).sum((1, 3)) / (positions * per_group)
    rstd = torch.rsqrt(var + eps)
    scale = rstd.repeat_interleave(per_group, 1) * weight.to(acc)
    y = torch.empty(centred.shape, dtype=x.dtype, device=x.device)
    torch.addcmul(bias.to(acc).repeat(wide).view(1, 1, -1), centred, scale.repeat(1, wide).unsqueeze(1), out=y)
    return y.view(n, *x.shape[2:], c).movedim(-1, 1), mean, rstd


def _row_positions(positions: int, channels: int, row: int = 256) -> int:
    """How many positions of ``channels`` values make one row of about ``row`` values (a divisor of ``positions``)."""
    wide = max(1, row // channels)
    while positions % wide:
        wide -= 1
    return wide


def _sum_over_space(t: torch.Tensor, acc: torch.dtype = torch.float32, chunk: int = 256) -> torch.Tensor:
    """Sums in ``acc`` (float32 or float64) over axis 1 of an N x S x C tensor.

    Low-precision tensors are summed in chunks of ``chunk`` positions first (float32 accumulation inside
    each chunk), so that no float32 copy of the whole tensor is made; the chunk sums add up in float32.
    """
    n, s, c = t.shape
    if t.dtype not in _LOW_PRECISION or s % chunk:
        return t.sum(1, dtype=acc)
    return t.view(n, s // chunk, chunk, c).sum(2).sum(1, dtype=acc)
