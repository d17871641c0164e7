"""Shared pieces of the U-Nets: widths and heads per level, the input contract and its check, encoder and
decoder stacks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import gcd
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from mantis.nn.factories import NormArgs, norm_args
from mantis.nn.resample import Combine, DownSample, FusionCombine
from mantis.nn.units import CEECUnitV1, CEECUnitV2, FracTALResNetUnit

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack needs Python 3.11

UnitFactory = Callable[[int, int], nn.Module]
HEAD_PSP_DEPTH = 4  # the PSP pooling depth of the authors' multitask heads, in every model


def lcm(a: int, b: int) -> int:
    """Least common multiple."""
    return a * b // gcd(a, b)


def size_multiple(depth: int, psp_depth: int, head_psp_depth: int, unit: str = "fractal") -> int:
    """What every spatial size must divide by: the bridge PSP grid at the deepest level (``2^(depth-1)``
    downsamplings, then ``2^(psp_depth-1)`` cells), the head PSP grid, and even sizes for CEEC units."""
    deepest = max(2 ** (psp_depth - 1), 2 if unit.startswith("ceec") else 1)
    return lcm(2 ** (depth - 1) * deepest, 2 ** (head_psp_depth - 1))


def nearest_sizes(size: int, multiple: int) -> str:
    """The valid sizes next to ``size`` for a network that needs multiples of ``multiple``: ``"96 or 128"``."""
    lower = size // multiple * multiple
    return f"{lower} or {lower + multiple}" if lower else str(multiple)


def check_input(x: torch.Tensor, in_channels: int, spatial_dims: int, multiple: int, model: str) -> None:
    """Raise a ValueError naming the problem if ``x`` is not B x in_channels x S with every S % multiple == 0."""
    if x.dim() != spatial_dims + 2:
        raise ValueError(
            f"{model}: expected a {spatial_dims + 2}D input (B x C x {spatial_dims} spatial axes), "
            f"got shape {tuple(x.shape)}"
        )
    if x.shape[1] != in_channels:
        raise ValueError(f"{model}: expected {in_channels} input channels (bands), got {x.shape[1]}")
    for size in x.shape[2:]:
        if size % multiple:
            raise ValueError(
                f"{model}: input size {size} is not divisible by {multiple} (needed by the network's depth "
                f"and PSP depth); nearest valid sizes: {nearest_sizes(size, multiple)}"
            )


class UNetBase(nn.Module):
    """What every U-Net here promises about its input: ``in_channels`` bands on ``spatial_dims`` axes, each
    size a multiple of ``size_multiple`` (see :meth:`check_input`); it predicts ``num_classes`` classes."""

    def __init__(self, in_channels: int, num_classes: int, spatial_dims: int, multiple: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.spatial_dims = spatial_dims
        self.size_multiple = multiple  # the tasks and prediction read it to choose valid window sizes

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError naming the model and the problem unless ``x`` is B x in_channels x S, every
        S a multiple of ``size_multiple``."""
        check_input(x, self.in_channels, self.spatial_dims, self.size_multiple, type(self).__name__)

    def start_at_class_prior(self, shares: Sequence[float]) -> None:
        """Set the segmentation output's biases so that it starts at the class shares (one per class; K = 1: the
        foreground's), as :meth:`~mantis.nn.heads.HeadSingle.start_at_class_prior` does."""
        head: Any = self.get_submodule("head")
        head.start_at_class_prior(shares)


def make_unit_factory(
    unit: str,
    attention_depth: int,
    norm: str,
    norm_groups: int,
    spatial_dims: int,
    grouped_attention: bool = True,
) -> UnitFactory:
    """A function ``(channels, nheads) -> unit`` for ``unit`` in ``fractal``, ``ceec_v1``, ``ceec_v2``."""
    kw = norm_args(norm, norm_groups, spatial_dims)
    units = {"fractal": FracTALResNetUnit, "ceec_v1": CEECUnitV1, "ceec_v2": CEECUnitV2}
    if unit not in units:
        raise ValueError(f"unknown unit {unit!r}; choose fractal, ceec_v1 or ceec_v2")
    kind = units[unit]

    def make(channels: int, nheads: int) -> nn.Module:
        # FracTAL ResNet units also group their convolutions by the level's heads.
        grouping = {"groups": nheads} if kind is FracTALResNetUnit else {}
        return kind(
            channels,
            nheads=nheads,
            attention_depth=attention_depth,
            **kw,
            grouped_attention=grouped_attention,
            **grouping,
        )

    return make


class Encoder(nn.Module):
    """One unit per level, a DownSample between levels; returns the features of every level (shallow first)."""

    def __init__(
        self,
        widths: Sequence[int],
        heads: Sequence[int],
        make_unit: UnitFactory,
        **kw: Unpack[NormArgs],
    ) -> None:
        super().__init__()
        self.units = nn.ModuleList(make_unit(w, h) for w, h in zip(widths, heads))
        self.downs = nn.ModuleList(DownSample(w, w2, **kw) for w, w2 in zip(widths[:-1], widths[1:]))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, unit in enumerate(self.units):
            x = unit(x)
            feats.append(x)
            if i < len(self.downs):
                x = self.downs[i](x)
        return feats


class Decoder(nn.Module):
    """From the bridge up: at each level merge with the skip (Combine or FusionCombine), then one unit."""

    def __init__(
        self,
        widths: Sequence[int],
        heads: Sequence[int],
        make_unit: UnitFactory,
        *,
        fusion_combine: bool = False,
        attention_depth: int = 5,
        **kw: Unpack[NormArgs],
    ) -> None:
        super().__init__()
        levels = range(len(widths) - 2, -1, -1)
        if fusion_combine:
            self.combines = nn.ModuleList(
                FusionCombine(
                    widths[i + 1],
                    widths[i],
                    nheads=heads[i],
                    attention_depth=attention_depth,
                    **kw,
                )
                for i in levels
            )
        else:
            self.combines = nn.ModuleList(Combine(widths[i + 1], widths[i], **kw) for i in levels)
        self.units = nn.ModuleList(make_unit(widths[i], heads[i]) for i in levels)

    def forward(self, x: torch.Tensor, skips: Sequence[torch.Tensor]) -> torch.Tensor:
        for combine, unit, skip in zip(self.combines, self.units, reversed(skips)):
            x = unit(combine(x, skip))
        return x


def level_widths(nf: int, depth: int) -> list[int]:
    """Channel widths per level: nf, 2nf, 4nf, ..."""
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    return [nf * 2**i for i in range(depth)]


def level_heads(nheads_start: int, depth: int, decoder: bool = False) -> list[int]:
    """Attention heads per level: nheads_start * 2^i in the encoder, twice that in the decoder."""
    return [nheads_start * 2 ** (i + int(decoder)) for i in range(depth)]
