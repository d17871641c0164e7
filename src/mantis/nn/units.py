"""Residual units: ResNet-v2 block, atrous unit, FracTAL ResNet unit, CEEC units V1 and V2."""

from __future__ import annotations

from collections.abc import Sequence
from math import gcd
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from mantis.nn import triton_norm
from mantis.nn.attention import CATFusion, FracTALAttention, Fusion
from mantis.nn.conv import ConvNormed
from mantis.nn.factories import NormArgs, conv_type, interp_mode, norm_args, norm_layer_of, same_padding

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack needs Python 3.11


class ResNetV2Block(nn.Module):
    """Pre-activation residual branch: norm -> ReLU -> conv -> norm -> ReLU -> conv (with bias).

    Returns the branch only (B x C x S); the caller adds the input.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        *,
        dilation: int = 1,
        groups: int = 1,
        **norm: Unpack[NormArgs],
    ) -> None:
        super().__init__()
        conv = conv_type(norm_args(**norm)["spatial_dims"])
        pad = same_padding(kernel_size, dilation)
        groups = gcd(channels, groups)
        self.norm1 = norm_layer_of(channels, **norm)
        self.conv1 = conv(channels, channels, kernel_size, padding=pad, dilation=dilation, groups=groups, bias=False)
        self.norm2 = norm_layer_of(channels, **norm)
        self.conv2 = conv(channels, channels, kernel_size, padding=pad, dilation=dilation, groups=groups)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self._norm_act(self.norm1, x))
        return self.conv2(self._norm_act(self.norm2, out))

    def _norm_act(self, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if triton_norm.supports(norm, x):  # CUDA, enabled: one fused pass instead of norm then ReLU
            return triton_norm.group_norm_relu(x, norm.weight, norm.bias, norm.num_groups, norm.eps)
        return self.act(norm(x))


class AtrousUnit(nn.Module):
    """ResUNet-a residual unit: ``x + sum_r ResNetV2Block_r(x)`` over the dilation rates ``r``."""

    def __init__(
        self,
        channels: int,
        dilations: Sequence[int] = (1,),
        *,
        kernel_size: int = 3,
        **norm: Unpack[NormArgs],
    ) -> None:
        super().__init__()
        kw = norm_args(**(NormArgs(norm="batch") | norm))  # ResUNet-a's BatchNorm unless told otherwise
        self.blocks = nn.ModuleList(ResNetV2Block(channels, kernel_size, dilation=r, **kw) for r in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for block in self.blocks:
            out = out + block(x)
        return out


class FracTALResNetUnit(nn.Module):
    """FracTAL ResNet unit: ``(x + ResNetV2Block(x)) * (1 + gamma * FracTALAttention(x))``.

    The attention reads the unit's input; ``gamma`` starts at 0, so a new unit is a plain residual unit.
    ``grouped_attention=False`` leaves the attention's q/k/v convolutions ungrouped (the authors' ``decode``
    variant) while the residual block stays grouped.
    """

    def __init__(
        self,
        channels: int,
        *,
        nheads: int = 1,
        groups: int = 1,
        attention_depth: int = 5,
        grouped_attention: bool = True,
        **norm: Unpack[NormArgs],
    ) -> None:
        super().__init__()
        kw = norm_args(**norm)
        self.block = ResNetV2Block(channels, 3, groups=groups, **kw)
        heads = nheads if grouped_attention else 1
        self.attention = FracTALAttention(channels, nheads=heads, attention_depth=attention_depth, **kw)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.block(x)) * (1 + self.gamma * self.attention(x))


def _up2(x: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    # Corner-aligned (align_corners=True) x2 interpolation, as in the authors' CEEC units.
    return F.interpolate(x, scale_factor=2.0, mode=interp_mode(spatial_dims), align_corners=True)


class _Expand(nn.Module):
    """Upsample x2 then normed convs with ReLU: the "expand" steps of the CEEC units."""

    def __init__(self, widths: Sequence[int], *, groups: int, **norm: Unpack[NormArgs]):
        super().__init__()
        kw = norm_args(**norm)
        self.spatial_dims = kw["spatial_dims"]
        self.convs = nn.ModuleList(
            ConvNormed(cin, cout, 3, groups=groups, **kw) for cin, cout in zip(widths[:-1], widths[1:])
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _up2(x, self.spatial_dims)
        for conv in self.convs:
            x = self.act(conv(x))
        return x


class CEECUnitV1(nn.Module):
    """CEEC unit V1 ("compress-expand / expand-compress"), C -> C channels, same size.

    Two branches see the input at half and at double resolution, exchange information through
    relative FracTAL attention, are collected by a normed conv and added to the input, which is then
    modulated by the FracTAL self-attention of the input. Needs even spatial sizes.

    Args:
        channels: C (even, C/2 and C/4 divisible by the groups used).
        nheads: attention heads and groups of the unit's convolutions.
        attention_depth: fractal depth of the attentions.
        grouped_attention: group the q/k/v convolutions of the unit's three attentions by heads (``False``:
            ungrouped; the unit's other convolutions stay grouped).
    """

    fusion_steps = False

    def __init__(
        self,
        channels: int,
        *,
        nheads: int = 1,
        attention_depth: int = 5,
        grouped_attention: bool = True,
        **norm: Unpack[NormArgs],
    ) -> None:
        super().__init__()
        if channels % 4:
            raise ValueError(f"CEEC units need channels divisible by 4, got {channels}")
        c, ni = channels, channels // 2
        g = gcd(ni // 2, nheads)
        kw = norm_args(**norm)
        self.spatial_dims = kw["spatial_dims"]
        # CE branch: compress (stride 2) then expand back.
        self.conv_init_1 = ConvNormed(c, ni, 3, groups=g, **kw)
        self.compr11 = ConvNormed(ni, c, 3, stride=2, groups=g, **kw)
        self.compr12 = ConvNormed(c, c, 3, groups=g, **kw)
        # EC branch: expand (x2) then compress back.
        self.conv_init_2 = ConvNormed(c, ni, 3, groups=g, **kw)
        self.expand2 = _Expand((ni, ni // 2, ni // 2), groups=g, **kw)
        self.compr21 = ConvNormed(ni // 2, ni, 3, stride=2, groups=g, **kw)
        heads = nheads if grouped_attention else 1

        def attention(channels: int) -> FracTALAttention:
            return FracTALAttention(channels, nheads=heads, attention_depth=attention_depth, **kw)

        self.att = attention(c)
        self.ratt122 = attention(ni)
        self.ratt211 = attention(ni)
        self.gamma1 = nn.Parameter(torch.zeros(()))
        self.gamma2 = nn.Parameter(torch.zeros(()))
        self.gamma3 = nn.Parameter(torch.zeros(()))
        self.act = nn.ReLU()
        self._build_merges(c, ni, g, nheads, attention_depth, kw)

    def _build_merges(self, c: int, ni: int, g: int, nheads: int, depth: int, kw: NormArgs) -> None:
        self.expand1 = _Expand((c, ni), groups=g, **kw)
        self.combine1: nn.Module = ConvNormed(2 * ni, ni, 3, groups=g, **kw)
        self.compr22: nn.Module = ConvNormed(2 * ni, ni, 3, groups=g, **kw)
        self.collect: nn.Module = ConvNormed(2 * ni, c, 3, groups=1, **kw)

    def _merge_ce(self, up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.act(self.combine1(torch.cat([up, skip], dim=1)))

    def _merge_ec(self, down: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.act(self.compr22(torch.cat([down, skip], dim=1)))

    def _collect(self, o1: torch.Tensor, o2: torch.Tensor) -> torch.Tensor:
        return self.act(self.collect(torch.cat([o1, o2], dim=1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o10 = self.conv_init_1(x)
        ce = self.act(self.compr11(o10))
        ce = self.act(self.compr12(ce))
        out1 = self._merge_ce(self.expand1(ce), o10)

        o20 = self.conv_init_2(x)
        ec = self.expand2(o20)
        ec = self.act(self.compr21(ec))
        out2 = self._merge_ec(ec, o20)

        o1 = out1 * (1 + self.gamma2 * self.ratt122(out1, out2, out2))
        o2 = out2 * (1 + self.gamma3 * self.ratt211(out2, out1, out1))
        collected = self._collect(o1, o2)
        return (x + collected) * (1 + self.gamma1 * self.att(x))


class CEECUnitV2(CEECUnitV1):
    """CEEC unit V2: V1 with each concat + conv merge replaced by relative-attention fusion."""

    def _build_merges(self, c: int, ni: int, g: int, nheads: int, depth: int, kw: NormArgs) -> None:
        self.expand1 = _Expand((c, ni), groups=g, **kw)
        self.skip1 = ConvNormed(ni, ni, 3, groups=g, **kw)
        self.combine1 = Fusion(ni, nheads=nheads, attention_depth=depth, **kw)
        self.compr22 = Fusion(ni, nheads=nheads, attention_depth=depth, **kw)
        self.collect = CATFusion(ni, c, nheads=1, attention_depth=depth, **kw)

    def _merge_ce(self, up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        # The authors' V2 passes the skip through its own normed conv + ReLU before the fusion.
        return self.combine1(up, self.act(self.skip1(skip)))

    def _merge_ec(self, down: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.compr22(down, skip)

    def _collect(self, o1: torch.Tensor, o2: torch.Tensor) -> torch.Tensor:
        return self.collect(o1, o2)
