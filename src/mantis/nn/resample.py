"""Layers between units: DownSample, UpSample and the decoder's skip merges."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from mantis.nn.attention import Fusion
from mantis.nn.conv import ConvNormed
from mantis.nn.factories import NormArgs, interp_mode, norm_args

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack needs Python 3.11


class DownSample(nn.Module):
    """Normed conv 3, stride 2: B x C x S -> B x out_channels x S/2 (default out = 2C), no activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        **norm: Unpack[NormArgs],
    ) -> None:
        super().__init__()
        kw = norm_args(**norm)
        out = 2 * in_channels if out_channels is None else out_channels
        self.conv = ConvNormed(in_channels, out, 3, stride=2, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class UpSample(nn.Module):
    """Nearest x2 then normed 1x1 conv: B x C x S -> B x out_channels x 2S."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        **norm: Unpack[NormArgs],
    ) -> None:
        super().__init__()
        kw = norm_args(**norm)
        self.conv = ConvNormed(in_channels, out_channels, 1, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Combine(nn.Module):
    """Decoder skip merge: ``normed conv1x1(concat[ReLU(UpSample(low)), skip])`` -> skip width.

    Shapes: low B x low_channels x S/2, skip B x C x S -> B x C x S (the upsampled branch has C/2 channels).
    """

    def __init__(
        self,
        low_channels: int,
        skip_channels: int,
        **norm: Unpack[NormArgs],
    ) -> None:
        super().__init__()
        kw = norm_args(**norm)
        half = max(skip_channels // 2, 1)
        self.up = UpSample(low_channels, half, **kw)
        self.conv = ConvNormed(
            half + skip_channels,
            skip_channels,
            1,
            **kw,
        )
        self.act = nn.ReLU()

    def forward(self, low: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.act(self.up(low)), skip], dim=1))


class FusionCombine(nn.Module):
    """Decoder skip merge of the paper's V2 macro-topology: bilinear x2, normed conv3 + ReLU, Fusion with skip."""

    def __init__(
        self,
        low_channels: int,
        skip_channels: int,
        *,
        nheads: int = 1,
        attention_depth: int = 5,
        **norm: Unpack[NormArgs],
    ) -> None:
        super().__init__()
        kw = norm_args(**norm)
        self.spatial_dims = kw["spatial_dims"]
        self.conv = ConvNormed(low_channels, skip_channels, 3, **kw)
        self.fuse = Fusion(
            skip_channels,
            nheads=nheads,
            attention_depth=attention_depth,
            **kw,
        )
        self.act = nn.ReLU()

    def forward(self, low: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(low, scale_factor=2.0, mode=interp_mode(self.spatial_dims), align_corners=True)
        return self.fuse(self.act(self.conv(up)), skip)
