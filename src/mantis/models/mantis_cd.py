"""Change detection with the "mantis" topology: a Siamese FracTAL encoder, attention fusion of the dates,
and one decoder (CEECNet V1/V2, FracTAL ResNet)."""

from __future__ import annotations

from typing import Any

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
from mantis.nn.attention import Fusion
from mantis.nn.conv import ConvNormed
from mantis.nn.factories import norm_args
from mantis.nn.heads import ConditionedMultitaskHead, MultitaskOutput
from mantis.nn.pooling import PSPPooling

FUSION_ATTENTION_DEPTH = 5  # the authors' date fusions always use depth 5, whatever the units use


class MantisChangeDetector(UNetBase):
    """Bi-temporal change detector: ``model(x1, x2)`` -> :class:`MultitaskOutput`, each B x K x S.

    Both dates go through ONE shared encoder (stem, units, DownSamples). The stems are fused by a relative
    attention Fusion (one head) for the head; at every level but the deepest a Fusion of the two dates is the
    skip; the deepest features of both dates are concatenated and pooled (PSP); no feature subtraction.

    Args:
        unit: ``ceec_v1``, ``ceec_v2`` or ``fractal``.
        in_channels: bands per date.
        num_classes: K (2: no change / change).
        spatial_dims, nf, depth, nheads_start, norm, norm_groups, attention_depth, psp_depth:
            as in :class:`~mantis.models.fractal_resunet.FracTALResUNet`.
        fusion_combine: decoder merges by bilinear upsampling + Fusion (the paper's V2 macro-topology)
            instead of nearest UpSample + concat + 1x1 conv.
        fusion_attention_depth: fractal depth of the attention in the fusions of the two dates (and of the
            ``fusion_combine`` merges): 5 in the authors' code whatever ``attention_depth`` (the units') is.
        grouped_attention: group the q/k/v convolutions of the units' attentions by heads (the fusions
            between the dates keep theirs).
        head_norm: norm of the multitask head (``None``: ``norm``), as in FracTAL ResUNet.
    """

    def __init__(
        self,
        unit: str = "ceec_v1",
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
        fusion_combine: bool = False,
        fusion_attention_depth: int = FUSION_ATTENTION_DEPTH,
        grouped_attention: bool = True,
        head_norm: str | None = None,
    ) -> None:
        widths = level_widths(nf, depth)  # first: it refuses a depth below 1
        super().__init__(in_channels, num_classes, spatial_dims, size_multiple(depth, psp_depth, HEAD_PSP_DEPTH, unit))
        enc_heads = level_heads(nheads_start, depth)
        make_unit = make_unit_factory(unit, attention_depth, norm, norm_groups, spatial_dims, grouped_attention)
        kw = norm_args(norm, norm_groups, spatial_dims)
        self.stem = ConvNormed(in_channels, nf, 1, **kw)
        self.stem_fusion = Fusion(nf, nheads=1, attention_depth=fusion_attention_depth, **kw)
        self.encoder = Encoder(widths, enc_heads, make_unit, **kw)
        self.skip_fusions = nn.ModuleList(
            Fusion(w, nheads=h, attention_depth=fusion_attention_depth, **kw)
            for w, h in zip(widths[:-1], enc_heads[:-1])
        )
        self.bridge = PSPPooling(2 * widths[-1], widths[-1], depth=psp_depth, **kw)
        self.decoder = Decoder(
            widths,
            level_heads(nheads_start, depth, decoder=True),
            make_unit,
            **kw,
            fusion_combine=fusion_combine,
            attention_depth=fusion_attention_depth,
        )
        head_kw = kw if head_norm is None else norm_args(head_norm, norm_groups, spatial_dims)
        self.head = ConditionedMultitaskHead(nf, num_classes, psp_depth=HEAD_PSP_DEPTH, **head_kw)
        self.act = nn.ReLU()

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> MultitaskOutput:
        self.check_input(x1)
        if x1.shape != x2.shape:
            name = type(self).__name__
            raise ValueError(f"{name}: the two dates differ in shape: {tuple(x1.shape)} vs {tuple(x2.shape)}")
        stem1, stem2 = self.stem(x1), self.stem(x2)
        feats1, feats2 = self.encoder(stem1), self.encoder(stem2)
        skips = [fuse(a, b) for fuse, a, b in zip(self.skip_fusions, feats1[:-1], feats2[:-1])]
        bridge = self.act(self.bridge(torch.cat([feats1[-1], feats2[-1]], dim=1)))
        out = self.decoder(bridge, skips)
        return self.head(out, self.stem_fusion(stem1, stem2))


TINY = {"nf": 8, "depth": 3, "nheads_start": 2, "psp_depth": 2}
PAPER = "Diakogiannis et al. 2021, Looking for change? Roll the dice and demand attention"
# What the three change detectors are (see mantis.models.registry.ModelInfo); they fix the unit themselves.
DESCRIPTION: dict[str, Any] = {"inputs": 2, "tiny": TINY, "signature": MantisChangeDetector, "fixed": ("unit",)}


@register_model("ceecnet_v1", **DESCRIPTION, paper=f"{PAPER} (CEECNet V1)")
def ceecnet_v1(**kwargs: object) -> MantisChangeDetector:
    """CEECNet V1: the mantis change detector with CEEC V1 units."""
    return MantisChangeDetector("ceec_v1", **kwargs)  # type: ignore[arg-type]


@register_model("ceecnet_v2", **DESCRIPTION, paper=f"{PAPER} (CEECNet V2)")
def ceecnet_v2(**kwargs: object) -> MantisChangeDetector:
    """CEECNet V2: the mantis change detector with CEEC V2 units."""
    return MantisChangeDetector("ceec_v2", **kwargs)  # type: ignore[arg-type]


@register_model("fractal_resnet_cd", **DESCRIPTION, paper=f"{PAPER} (FracTAL ResNet)")
def fractal_resnet_cd(**kwargs: object) -> MantisChangeDetector:
    """FracTAL ResNet change detector: the mantis topology with FracTAL ResNet units."""
    return MantisChangeDetector("fractal", **kwargs)  # type: ignore[arg-type]
