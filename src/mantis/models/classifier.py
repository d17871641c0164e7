"""FracTAL ResNet classifier: the FracTAL ResUNet encoder, global average pooling and a linear layer."""

from __future__ import annotations

import torch
import torch.nn as nn

from mantis.models.common import Encoder, level_heads, level_widths, make_unit_factory
from mantis.models.registry import LOGITS, register_model
from mantis.nn.conv import ConvNormed
from mantis.nn.factories import check_spatial_dims, norm_args, norm_layer

_ADAPTIVE_AVG = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}


class FracTALResNetClassifier(nn.Module):
    """Whole-sample classifier of FracTAL ResNet units (the encoder of FracTAL ResUNet, Diakogiannis et al.
    2021): normed stem convolution, ``depth`` levels of one unit each with a stride-2 normed convolution between
    them, then norm + ReLU, global average pooling, dropout and a linear layer.

    ``model(x)`` with x B x in_channels x S (any S, in 1, 2 or 3 dimensions) returns B x num_classes logits.

    Args:
        in_channels: input bands (channels of a series).
        num_classes: classes K.
        spatial_dims: 1 (series), 2 (images) or 3 (volumes).
        nf: width of the first level (doubles per level).
        depth: number of levels.
        nheads_start: attention heads of the first level (double per level).
        norm: ``group``, ``batch``, ``instance``, ``layer`` or ``none``.
        norm_groups: groups of GroupNorm.
        attention_depth: fractal depth of the FracTAL attention.
        dropout: dropout before the linear layer.
        stem_kernel: kernel size of the stem convolution (odd; 1 as in FracTAL ResUNet, wider lets the first
            unit see shapes rather than single steps of a series).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 2,
        *,
        spatial_dims: int = 2,
        nf: int = 32,
        depth: int = 4,
        nheads_start: int = 4,
        norm: str = "group",
        norm_groups: int = 4,
        attention_depth: int = 5,
        dropout: float = 0.0,
        stem_kernel: int = 1,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.spatial_dims = spatial_dims
        widths = level_widths(nf, depth)
        kw = norm_args(norm, norm_groups, spatial_dims)
        self.stem = ConvNormed(in_channels, nf, stem_kernel, **kw)
        make_unit = make_unit_factory("fractal", attention_depth, norm, norm_groups, spatial_dims)
        self.encoder = Encoder(widths, level_heads(nheads_start, depth), make_unit, **kw)
        # the units are pre-activation residual blocks: normalise and activate their sum once before pooling
        self.norm = norm_layer(norm, widths[-1], spatial_dims, norm_groups)
        self.act = nn.ReLU()
        self.pool = _ADAPTIVE_AVG[spatial_dims](1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__}: expected B x {self.in_channels} x {self.spatial_dims} spatial axes, "
                f"got shape {tuple(x.shape)}"
            )
        deepest = self.encoder(self.stem(x))[-1]
        pooled = self.pool(self.act(self.norm(deepest))).flatten(1)
        return self.fc(self.dropout(pooled))


@register_model(
    "fractal_resnet",
    outputs=LOGITS,
    tiny={"num_classes": 3, "nf": 8, "depth": 2, "nheads_start": 2},
    signature=FracTALResNetClassifier,
    paper="Diakogiannis et al. 2021 (FracTAL ResNet units); encoder + global pooling classifier",
)
def fractal_resnet(**kwargs: object) -> FracTALResNetClassifier:
    """FracTAL ResNet classifier (defaults: depth 4, nf 32, 4 heads, GroupNorm(4), attention depth 5)."""
    return FracTALResNetClassifier(**kwargs)  # type: ignore[arg-type]
