"""ResUNet-a d6 and d7 (Diakogiannis et al. 2020): atrous residual U-Nets with a multitask head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from mantis.models.common import HEAD_PSP_DEPTH, UNetBase, level_widths, size_multiple
from mantis.models.registry import MULTITASK, register_model
from mantis.nn.conv import ConvNormed
from mantis.nn.factories import conv_type, norm_args
from mantis.nn.heads import ResUNetAHead, ResUNetAOutput
from mantis.nn.pooling import PSPPooling
from mantis.nn.resample import Combine
from mantis.nn.units import AtrousUnit

D6_DILATIONS: tuple[tuple[int, ...], ...] = (
    (1, 3, 15, 31),
    (1, 3, 15, 31),
    (1, 3, 15),
    (1, 3, 5),
    (1,),
    (1,),
)
D7_DILATIONS: tuple[tuple[int, ...], ...] = D6_DILATIONS + ((1,),)
# The decoder does not mirror the encoder (read off the authors' code): per level, shallow first; the deepest
# level has no decoder unit.
D6_DECODER_DILATIONS: tuple[tuple[int, ...], ...] = (
    (1, 3, 15, 31),
    (1, 3, 15, 31),
    (1, 3, 15, 31),
    (1, 3, 15),
    (1, 3, 5),
)
D7_DECODER_DILATIONS: tuple[tuple[int, ...], ...] = (
    (1, 3, 15, 31),
    (1, 3, 15, 31),
    (1, 3, 15, 31),
    (1, 3, 15, 31),
    (1, 3, 15),
    (1,),
)


class ResUNetA(UNetBase):
    """ResUNet-a: ``model(x)`` -> :class:`ResUNetAOutput` (segmentation, boundary, distance B x K x S; color
    B x 3 x S, the HSV reconstruction of the RGB bands).

    Args:
        in_channels: input bands; num_classes: K; spatial_dims: 1, 2 or 3; nf: first width.
        dilations: dilation rates of the encoder's atrous unit per level, shallow first (its length is the depth).
        decoder_dilations: the decoder's, per level, shallow first (the authors' differ from the encoder's);
            ``None`` mirrors the encoder.
        depth: keep only the first ``depth`` levels (for small inputs); levels beyond the lists get rate 1.
        norm: BatchNorm by default (the authors' models are BatchNorm-only); psp_depth: bridge PSP depth.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 2,
        *,
        spatial_dims: int = 2,
        nf: int = 32,
        dilations: Sequence[Sequence[int]] = D6_DILATIONS,
        decoder_dilations: Sequence[Sequence[int]] | None = D6_DECODER_DILATIONS,
        depth: int | None = None,
        norm: str = "batch",
        norm_groups: int = 4,
        psp_depth: int = 4,
    ) -> None:
        levels_total = depth or len(dilations)
        widths = level_widths(nf, levels_total)  # first: it refuses a depth below 1
        super().__init__(in_channels, num_classes, spatial_dims, size_multiple(levels_total, psp_depth, HEAD_PSP_DEPTH))
        rates = _per_level(dilations, levels_total)
        decoder_rates = rates if decoder_dilations is None else _per_level(decoder_dilations, levels_total)
        kw = norm_args(norm, norm_groups, spatial_dims)
        conv = conv_type(spatial_dims)
        self.stem = ConvNormed(in_channels, nf, 1, **kw)
        self.encoder_units = nn.ModuleList(AtrousUnit(w, r, kernel_size=3, **kw) for w, r in zip(widths, rates))
        # ResUNet-a downsamples with a bare strided 3x3 convolution (no norm, no bias).
        self.downs = nn.ModuleList(
            conv(w, w2, 3, stride=2, padding=1, bias=False) for w, w2 in zip(widths[:-1], widths[1:])
        )
        self.bridge = PSPPooling(
            widths[-1], widths[-1], depth=psp_depth, branch_channels=max(widths[-1] // psp_depth, 1), **kw
        )
        levels = range(len(widths) - 2, -1, -1)
        self.combines = nn.ModuleList(Combine(widths[i + 1], widths[i], **kw) for i in levels)
        self.decoder_units = nn.ModuleList(AtrousUnit(widths[i], decoder_rates[i], kernel_size=3, **kw) for i in levels)
        self.head = ResUNetAHead(nf, num_classes, psp_depth=HEAD_PSP_DEPTH, **kw)

    def forward(self, x: torch.Tensor) -> ResUNetAOutput:
        self.check_input(x)
        stem = torch.relu(self.stem(x))  # the first unit and the head both see the stem after a ReLU
        skips = []
        out = stem
        for i, unit in enumerate(self.encoder_units):
            out = unit(out)
            if i < len(self.downs):
                skips.append(out)
                out = self.downs[i](out)
        out = torch.relu(self.bridge(out))
        for combine, unit, skip in zip(self.combines, self.decoder_units, reversed(skips)):
            out = unit(combine(out, skip))
        return self.head(out, stem)


# What both depths are (see mantis.models.registry.ModelInfo).
DESCRIPTION: dict[str, Any] = {
    "outputs": (*MULTITASK, "color"),
    "tiny": {"nf": 8, "depth": 3, "psp_depth": 2},
    "paper": "Diakogiannis et al. 2020, ResUNet-a: a deep learning framework for semantic segmentation",
    "signature": ResUNetA,
}


def _per_level(dilations: Sequence[Sequence[int]], levels: int) -> list[tuple[int, ...]]:
    """The first ``levels`` rate sets of ``dilations``, padded with rate 1 beyond its end."""
    rates = [tuple(r) for r in dilations][:levels]
    return rates + [(1,)] * (levels - len(rates))


@register_model("resunet_a_d6", **DESCRIPTION)
def resunet_a_d6(**kwargs: object) -> ResUNetA:
    """ResUNet-a d6 (6 levels, PSP depth 4, BatchNorm)."""
    defaults = {"dilations": D6_DILATIONS, "decoder_dilations": D6_DECODER_DILATIONS, "psp_depth": 4}
    return ResUNetA(**{**defaults, **kwargs})  # type: ignore[arg-type]


@register_model("resunet_a_d7", **DESCRIPTION)
def resunet_a_d7(**kwargs: object) -> ResUNetA:
    """ResUNet-a d7 (7 levels up to 2048 channels, PSP depth 3, BatchNorm)."""
    defaults = {"dilations": D7_DILATIONS, "decoder_dilations": D7_DECODER_DILATIONS, "psp_depth": 3}
    return ResUNetA(**{**defaults, **kwargs})  # type: ignore[arg-type]
