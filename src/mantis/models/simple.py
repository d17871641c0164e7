"""Small baselines: a Dense stack for tabular data and a Sequential ConvNet classifier."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn as nn

from mantis.models.registry import LOGITS, register_model
from mantis.nn.activations import activation_pieces, create_activation
from mantis.nn.conv import ConvNormed
from mantis.nn.factories import check_spatial_dims, norm_args

_ADAPTIVE_AVG = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}
_MAXPOOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}


@register_model(
    "mlp", outputs=LOGITS, spatial_dims=(), tiny={"in_channels": 5, "num_classes": 3, "hidden": (8,)}, tiny_size=0
)
def mlp(
    in_channels: int = 16,
    num_classes: int = 2,
    hidden: Sequence[int] = (64, 64),
    activation: str = "relu",
    dropout: float = 0.0,
) -> nn.Sequential:
    """Dense stack for tabular data: B x in_channels -> B x num_classes logits."""
    layers: list[nn.Module] = []
    width = in_channels
    pieces = activation_pieces(activation)  # maxout: each layer gives 2 h values, the activation keeps h
    for h in hidden:
        layers += [nn.Linear(width, h * pieces), create_activation(activation)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


@register_model("cnn", outputs=LOGITS, tiny={"num_classes": 4, "widths": (4, 8)})
def cnn(
    in_channels: int = 3,
    num_classes: int = 2,
    spatial_dims: int = 2,
    widths: Sequence[int] = (16, 32, 64),
    norm: str = "batch",
    norm_groups: int = 4,
    activation: str = "relu",
) -> nn.Sequential:
    """Small ConvNet classifier: [normed conv3 + act + max-pool 2] per width, global average, linear.

    B x in_channels x S -> B x num_classes logits.
    """
    kw = norm_args(norm, norm_groups, spatial_dims)
    check_spatial_dims(spatial_dims)
    layers: list[nn.Module] = []
    width = in_channels
    pieces = activation_pieces(activation)  # maxout: each conv gives 2 w channels, the activation keeps w
    for w in widths:
        layers += [
            ConvNormed(width, w * pieces, 3, **kw),
            create_activation(activation),
            _MAXPOOL[spatial_dims](2, ceil_mode=True),
        ]
        width = w
    layers += [_ADAPTIVE_AVG[spatial_dims](1), nn.Flatten(), nn.Linear(width, num_classes)]
    model = nn.Sequential(*layers)
    model.spatial_dims = spatial_dims  # type: ignore[assignment]  # the tasks check it against the data (one line)
    return model
