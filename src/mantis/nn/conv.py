"""Normed convolution: convolution without bias followed by a normalisation layer."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from mantis.nn.factories import NormArgs, conv_type, norm_args, norm_layer_of, same_padding

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack needs Python 3.11


class ConvNormed(nn.Module):
    """Convolution (no bias, "same" padding for odd kernels) then normalisation, no activation.

    Shapes: B x C_in x S -> B x C_out x S' (S' = ceil(S / stride)).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd kernel size.
        stride: convolution stride.
        dilation: dilation rate.
        groups: convolution groups.
        norm: ``batch``, ``group``, ``instance``, ``layer`` or ``none``.
        norm_groups: groups of the GroupNorm.
        spatial_dims: 1, 2 or 3.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        **norm: Unpack[NormArgs],
    ) -> None:
        super().__init__()
        self.conv = conv_type(norm_args(**norm)["spatial_dims"])(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=same_padding(kernel_size, dilation),
            dilation=dilation,
            groups=groups,
            bias=False,
        )
        self.norm = norm_layer_of(out_channels, **norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))
