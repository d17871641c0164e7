"""FracTAL ResUNet: single-input segmentation U-Net of FracTAL ResNet units with a conditioned multitask head."""

from __future__ import annotations

import torch
import torch.nn as nn

from mantis.models.common import (
    HEAD_PSP_DEPTH,
    Decoder,
    Encoder,
    UNetBase,
    level_heads,
    level_widths,
    make_unit_factory,
    size_multiple,
)
from mantis.models.registry import register_model
from mantis.nn.conv import ConvNormed
from mantis.nn.factories import norm_args
from mantis.nn.heads import ConditionedMultitaskHead, MultitaskOutput
from mantis.nn.pooling import PSPPooling


class FracTALResUNet(UNetBase):
    """FracTAL ResUNet (Diakogiannis et al. 2021) for semantic segmentation.

    ``model(x)`` with x B x in_channels x S returns :class:`MultitaskOutput` (segmentation, boundary,
    distance), each B x num_classes x S. Every spatial size must be divisible by :attr:`size_multiple`.

    Args:
        in_channels: input bands.
        num_classes: classes K (K = 1: sigmoid outputs).
        spatial_dims: 1, 2 or 3.
        nf: width of the first level (doubles per level).
        depth: number of levels.
        nheads_start: attention heads of the first level (double per level; twice that in the decoder).
        norm: ``group``, ``batch``, ``instance``, ``layer`` or ``none``.
        norm_groups: groups of GroupNorm.
        attention_depth: fractal depth of the FracTAL attention.
        psp_depth: depth of the bridge PSP pooling.
        unit: residual unit, ``fractal`` (default), ``ceec_v1`` or ``ceec_v2``.
        grouped_attention: group the q/k/v convolutions of the units' attention by heads (the paper);
            ``False`` is the authors' ``decode`` variant (ungrouped attention, residual blocks still grouped).
        head_norm: norm of the multitask head (``None``: ``norm``, the paper's). A per-channel norm
            (``batch``, ``instance``) there lets classes of a few percent be learnt from the first steps, where
            GroupNorm held them back for 100-300 steps on real imagery (docs/training.md).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 2,
        *,
        spatial_dims: int = 2,
        nf: int = 32,
        depth: int = 6,
        nheads_start: int = 4,
        norm: str = "group",
        norm_groups: int = 4,
        attention_depth: int = 5,
        psp_depth: int = 4,
        unit: str = "fractal",
        grouped_attention: bool = True,
        head_norm: str | None = None,
    ) -> None:
        widths = level_widths(nf, depth)  # first: it refuses a depth below 1
        super().__init__(in_channels, num_classes, spatial_dims, size_multiple(depth, psp_depth, HEAD_PSP_DEPTH, unit))
        make_unit = make_unit_factory(unit, attention_depth, norm, norm_groups, spatial_dims, grouped_attention)
        kw = norm_args(norm, norm_groups, spatial_dims)
        self.stem = ConvNormed(in_channels, nf, 1, **kw)
        self.encoder = Encoder(widths, level_heads(nheads_start, depth), make_unit, **kw)
        self.bridge = PSPPooling(widths[-1], widths[-1], depth=psp_depth, **kw)
        self.decoder = Decoder(widths, level_heads(nheads_start, depth, decoder=True), make_unit, **kw)
        head_kw = kw if head_norm is None else norm_args(head_norm, norm_groups, spatial_dims)
        self.head = ConditionedMultitaskHead(nf, num_classes, psp_depth=HEAD_PSP_DEPTH, **head_kw)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> MultitaskOutput:
        self.check_input(x)
        stem = self.stem(x)
        feats = self.encoder(stem)
        out = self.decoder(self.act(self.bridge(feats[-1])), feats[:-1])
        return self.head(out, stem)


@register_model(
    "fractal_resunet",
    tiny={"nf": 8, "depth": 3, "nheads_start": 2, "psp_depth": 2},
    signature=FracTALResUNet,
    paper="Diakogiannis et al. 2021, Looking for change? Roll the dice and demand attention (FracTAL ResUNet)",
)
def fractal_resunet(**kwargs: object) -> FracTALResUNet:
    """FracTAL ResUNet for segmentation (defaults: depth 6, nf 32, 4 heads, GroupNorm(4), attention depth 5)."""
    return FracTALResUNet(**kwargs)  # type: ignore[arg-type]
