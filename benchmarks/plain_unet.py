"""The straightforward U-Net that the real-data check compares the FracTAL networks with.

[conv 3x3 - BatchNorm - ReLU] x 2 per level, max-pool down, bilinear up and concat with the skip, a 1x1 conv
to class logits. The change-detection twin stacks the two dates as one image (early fusion). Nothing here is
FracTAL: it is the bar a new user would try first.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mantis.models.registry import create_model, list_models, register_model


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class PlainUNet(nn.Module):
    """``model(x)``: B x in_channels x H x W -> B x num_classes x H x W logits (H, W divisible by 2^(depth-1))."""

    def __init__(self, in_channels: int = 3, num_classes: int = 2, nf: int = 16, depth: int = 4) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        widths = [nf * 2**i for i in range(depth)]
        self.size_multiple = 2 ** (depth - 1)
        self.down = nn.ModuleList(_double_conv(a, b) for a, b in zip([in_channels, *widths[:-1]], widths))
        self.up = nn.ModuleList(_double_conv(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(depth - 1)))
        self.logits = nn.Conv2d(nf, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.logits(x)


class PlainUNetCD(PlainUNet):
    """``model(x1, x2)``: the plain U-Net on the two dates stacked as one image (early fusion)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 2, nf: int = 16, depth: int = 4) -> None:
        super().__init__(2 * in_channels, num_classes, nf, depth)
        self.in_channels = in_channels

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(torch.cat([x1, x2], dim=1))


def register() -> None:
    """Make ``plain_unet`` and ``plain_unet_cd`` known to ``mantis.create_model`` (idempotent)."""
    if "plain_unet" not in list_models():
        register_model("plain_unet")(PlainUNet)
        register_model("plain_unet_cd")(PlainUNetCD)


__all__ = ["PlainUNet", "PlainUNetCD", "create_model", "register"]
