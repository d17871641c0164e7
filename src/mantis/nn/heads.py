"""Conditioned multitask heads: distance, then boundary, then segmentation, each conditioning the next."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
import torch.nn as nn

from mantis.nn.activations import SigmoidCrisp, class_activation
from mantis.nn.conv import ConvNormed
from mantis.nn.factories import NormArgs, conv_type, norm_args
from mantis.nn.pooling import PSPPooling

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack needs Python 3.11


_MIN_SHARE = 1e-4  # a class absent from the training masks still gets a finite bias


class MultitaskOutput(NamedTuple):
    """Outputs of the FracTAL/CEECNet heads, each B x K x S (class probabilities / [0,1] maps)."""

    segmentation: torch.Tensor
    boundary: torch.Tensor
    distance: torch.Tensor


class ResUNetAOutput(NamedTuple):
    """Outputs of ResUNet-a: the multitask maps (B x K x S) and the HSV colour reconstruction (B x 3 x S)."""

    segmentation: torch.Tensor
    boundary: torch.Tensor
    distance: torch.Tensor
    color: torch.Tensor


class HeadSingle(nn.Module):
    """[normed conv3 + ReLU] x 2 then a 1x1 conv with bias: B x in x S -> B x out x S logits."""

    def __init__(
        self,
        in_channels: int,
        channels: int,
        out_channels: int,
        **norm: Unpack[NormArgs],
    ) -> None:
        super().__init__()
        kw = norm_args(**norm)
        self.logits = nn.Sequential(
            ConvNormed(in_channels, channels, 3, **kw),
            nn.ReLU(),
            ConvNormed(channels, channels, 3, **kw),
            nn.ReLU(),
            conv_type(kw["spatial_dims"])(channels, out_channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)

    def start_at_class_prior(self, shares: Sequence[float]) -> None:
        """Set the output biases so that pixels whose last hidden features are all zero get the class shares.

        ``shares`` has one value per output (K >= 2: softmax, set to centred log-shares) or the foreground share
        (K = 1: sigmoid, set to its logit). Shares are clipped to [1e-4, 1 - 1e-4] (a class absent from the
        training masks). The weights are unchanged. Why: docs/training.md, "What holds a network there".

        Raises:
            ValueError: a count of shares that does not match the outputs.
        """
        last: Any = self.logits[-1]  # the 1x1 convolution of any spatial dims
        if len(shares) != last.out_channels:
            raise ValueError(f"class shares: {last.out_channels} outputs need {last.out_channels}, got {len(shares)}")
        clipped = _clipped(shares)
        if len(clipped) == 1:
            values = [math.log(clipped[0] / (1 - clipped[0]))]
        else:
            logs = [math.log(s) for s in clipped]
            values = [v - sum(logs) / len(logs) for v in logs]
        _set_bias(last, values)


def _clipped(shares: Sequence[float]) -> list[float]:
    return [min(max(float(s), _MIN_SHARE), 1 - _MIN_SHARE) for s in shares]


def _set_bias(conv: Any, values: Sequence[float]) -> None:
    with torch.no_grad():
        conv.bias.copy_(torch.tensor(values, dtype=conv.bias.dtype, device=conv.bias.device))


def start_sigmoid_at(conv: Any, shares: Sequence[float], scale: float = 1.0) -> None:
    """Set the biases of ``conv``, whose outputs go through ``sigmoid(x / scale)`` one channel each, so that
    pixels whose features are all zero get ``shares`` (clipped to [1e-4, 1 - 1e-4]).

    Raises:
        ValueError: a count of shares that does not match the outputs.
    """
    if len(shares) != conv.out_channels:
        raise ValueError(f"boundary shares: {conv.out_channels} outputs need {conv.out_channels}, got {len(shares)}")
    _set_bias(conv, [scale * math.log(s / (1 - s)) for s in _clipped(shares)])


class ConditionedMultitaskHead(nn.Module):
    """The FracTAL/CEECNet conditioned multitask head.

    ``convl = concat[stem, decoder]``; the distance is predicted first, its features condition the
    boundary, and both condition the segmentation. Shapes: decoder and stem B x nf x S -> three B x K x S.
    """

    def __init__(self, channels: int, num_classes: int, *, psp_depth: int = 4, **norm: Unpack[NormArgs]) -> None:
        super().__init__()
        nf, k = channels, num_classes
        kw = norm_args(**norm)
        self.psp = PSPPooling(2 * nf, nf, depth=psp_depth, **kw)
        self.distance_logits = HeadSingle(2 * nf, nf, k, **kw)
        self.dist_equalizer = ConvNormed(k, nf, 1, **kw)
        self.bound_logits = HeadSingle(2 * nf, nf, k, **kw)
        self.crisp = SigmoidCrisp()
        self.bound_equalizer = ConvNormed(k, nf, 1, **kw)
        self.comb_bound_dist = ConvNormed(2 * nf, nf, 1, **kw)
        self.segm_logits = HeadSingle(2 * nf, nf, k, **kw)
        self.class_act = class_activation(k)
        self.act = nn.ReLU()

    def forward(self, decoder: torch.Tensor, stem: torch.Tensor) -> MultitaskOutput:
        convl = torch.cat([stem, decoder], dim=1)
        feat = self.act(self.psp(convl))
        dist = self.class_act(self.distance_logits(convl))
        dist_eq = self.act(self.dist_equalizer(dist))
        bound = self.crisp(self.bound_logits(torch.cat([feat, dist_eq], dim=1)))
        bound_eq = self.act(self.bound_equalizer(bound))
        comb = self.act(self.comb_bound_dist(torch.cat([bound_eq, dist_eq], dim=1)))
        segm = self.class_act(self.segm_logits(torch.cat([comb, feat], dim=1)))
        return MultitaskOutput(segm, bound, dist)

    def start_at_class_prior(self, shares: Sequence[float]) -> None:
        """Start the segmentation output at the class shares (:meth:`HeadSingle.start_at_class_prior`)."""
        self.segm_logits.start_at_class_prior(shares)

    def start_boundary_at(self, shares: Sequence[float]) -> None:
        """Start the boundary output (a crisp sigmoid per class) at the classes' boundary shares."""
        with torch.no_grad():
            scale = float(self.crisp.smooth + torch.sigmoid(self.crisp.gamma))
        start_sigmoid_at(self.bound_logits.logits[-1], shares, scale)


class ResUNetAHead(nn.Module):
    """ResUNet-a head: distance, boundary on [feat, distance], segmentation on [feat, boundary, distance],
    and an HSV colour reconstruction from ``convl``."""

    def __init__(self, channels: int, num_classes: int, *, psp_depth: int = 4, **norm: Unpack[NormArgs]) -> None:
        super().__init__()
        nf, k = channels, num_classes
        kw = norm_args(**(NormArgs(norm="batch") | norm))  # ResUNet-a's BatchNorm unless told otherwise
        conv = conv_type(kw["spatial_dims"])
        self.psp = PSPPooling(2 * nf, nf, depth=psp_depth, branch_channels=max(nf // psp_depth, 1), **kw)
        self.distance_logits = HeadSingle(2 * nf, nf, k, **kw)
        self.bound_logits = nn.Sequential(ConvNormed(nf + k, nf, 3, **kw), nn.ReLU(), conv(nf, k, 1))
        self.segm_logits = HeadSingle(nf + 2 * k, nf, k, **kw)
        self.color_logits = conv(2 * nf, 3, 1)
        self.class_act = class_activation(k)
        self.act = nn.ReLU()

    def forward(self, decoder: torch.Tensor, stem: torch.Tensor) -> ResUNetAOutput:
        convl = torch.cat([stem, decoder], dim=1)
        feat = self.act(self.psp(convl))
        dist = self.class_act(self.distance_logits(convl))
        bound = torch.sigmoid(self.bound_logits(torch.cat([feat, dist], dim=1)))
        segm = self.class_act(self.segm_logits(torch.cat([feat, bound, dist], dim=1)))
        color = torch.sigmoid(self.color_logits(convl))
        return ResUNetAOutput(segm, bound, dist, color)

    def start_at_class_prior(self, shares: Sequence[float]) -> None:
        """Start the segmentation output at the class shares (:meth:`HeadSingle.start_at_class_prior`)."""
        self.segm_logits.start_at_class_prior(shares)

    def start_boundary_at(self, shares: Sequence[float]) -> None:
        """Start the boundary output (a sigmoid per class) at the classes' boundary shares."""
        start_sigmoid_at(self.bound_logits[-1], shares)
