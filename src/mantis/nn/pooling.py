"""Pyramid scene parsing (PSP) pooling with max-pooled grids."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from mantis.nn.conv import ConvNormed
from mantis.nn.factories import NormArgs, check_spatial_dims, norm_args

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack needs Python 3.11

_ADAPTIVE_MAX = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


class PSPPooling(nn.Module):
    """PSP pooling: the input plus ``depth`` max-pooled context branches, merged by a normed 1x1 conv.

    Branch 0 is a global max pool; branch k (1 <= k < depth) max-pools each cell of a 2^k grid per axis.
    Each branch has its own normed 1x1 conv; since the cells are equal, the conv runs on the pooled map
    and the result is broadcast back (identical to convolving the broadcast map, norm statistics included).
    Shapes: B x in_channels x S -> B x out_channels x S; every spatial size must divide by 2^(depth-1).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        depth: number of pooled branches.
        branch_channels: width of each branch (default ``out_channels``; ResUNet-a: ``out_channels // depth``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        depth: int = 4,
        branch_channels: int | None = None,
        **norm: Unpack[NormArgs],
    ) -> None:
        super().__init__()
        kw = norm_args(**norm)
        check_spatial_dims(kw["spatial_dims"])
        branch = out_channels if branch_channels is None else branch_channels
        self.depth = depth
        self.spatial_dims = kw["spatial_dims"]
        # BatchNorm's running statistics count pixels, so it must see the broadcast map.
        self.conv_on_pooled = kw["norm"] != "batch"
        self.convs = nn.ModuleList(ConvNormed(in_channels, branch, 1, **kw) for _ in range(depth))
        self.conv_final = ConvNormed(in_channels + depth * branch, out_channels, 1, **kw)

    @property
    def size_multiple(self) -> int:
        """Every spatial size must be a multiple of this."""
        return 2 ** (self.depth - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = tuple(x.shape[2:])
        bad = [s for s in size if s % self.size_multiple]
        if bad:
            raise ValueError(
                f"PSP pooling of depth {self.depth} needs spatial sizes divisible by {self.size_multiple}, got {size}"
            )
        pool = _ADAPTIVE_MAX[self.spatial_dims]
        pooled = [
            _conv_cells(conv, pool(x, 2**k)) if self.conv_on_pooled else pool(x, 2**k)
            for k, conv in enumerate(self.convs)
        ]
        if not self.conv_on_pooled:
            maps = [conv(_broadcast(p, size)) for p, conv in zip(pooled, self.convs)]
            return self.conv_final(torch.cat([x, *maps], dim=1))
        return self.conv_final.norm(self._merge(x, pooled, size))

    def _merge(self, x: torch.Tensor, branches: list[torch.Tensor], size: tuple[int, ...]) -> torch.Tensor:
        """The final 1x1 conv of ``concat[x, broadcast branches]`` without forming the concat.

        A 1x1 conv of a broadcast map is the broadcast of the conv of the small map, so each branch's
        slice of the weight acts on its pooled map; the results are summed on the finest grid and
        broadcast once (same values, no full-size concat).
        """
        conv = _CONV[self.spatial_dims]
        weight = self.conv_final.conv.weight
        assert isinstance(weight, torch.Tensor)
        in_x = x.shape[1]
        out = conv(x, weight[:, :in_x])
        finest = tuple(branches[-1].shape[2:])
        widths = [b.shape[1] for b in branches]
        small = torch.zeros((), dtype=out.dtype, device=out.device)
        for b, w in zip(branches, torch.split(weight[:, in_x:], widths, dim=1)):
            small = small + _broadcast(conv(b, w), finest)
        # Add each finest-grid cell to its block of the full map through a split view (no upsampled copy).
        blocks = [d for g, s in zip(finest, size) for d in (g, s // g)]
        cells = [d for g in finest for d in (g, 1)]
        out.view(*out.shape[:2], *blocks).add_(small.view(*small.shape[:2], *cells))
        return out


def _one_value_per_statistic(norm: nn.Module) -> bool:
    """Whether ``norm`` takes each statistic over one value per cell: GroupNorm with one channel per group,
    InstanceNorm."""
    if isinstance(norm, nn.GroupNorm):
        return norm.num_channels == norm.num_groups
    return isinstance(norm, nn.modules.instancenorm._InstanceNorm)


def _conv_cells(conv: nn.Module, pooled: torch.Tensor) -> torch.Tensor:
    """``conv`` (a normed 1x1 conv) of a pooled map, with the norm's statistics of the broadcast map.

    Where the norm would take a statistic over one value (one cell, and one channel per statistic), the cell
    is first repeated to two per axis: PyTorch refuses one value, and a map of equal cells has the broadcast
    map's mean and variance. Otherwise the pooled map is normalised as it is.
    """
    if any(s != 1 for s in pooled.shape[2:]) or not _one_value_per_statistic(conv.get_submodule("norm")):
        return conv(pooled)
    spatial = pooled.dim() - 2
    out = conv(pooled.expand(-1, -1, *(2,) * spatial).contiguous())
    return out[(..., *(slice(0, 1),) * spatial)]


def _broadcast(pooled: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    # Each pooled cell value fills its (equal) cell of the full map.
    if all(p == 1 for p in pooled.shape[2:]):
        return pooled.expand(-1, -1, *size)
    return F.interpolate(pooled, size=size, mode="nearest")
