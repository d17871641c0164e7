"""FracTAL attention (self and relative) and the attention fusions."""

from __future__ import annotations

from math import gcd

import torch
import torch.nn as nn

from mantis.nn.conv import ConvNormed
from mantis.nn.factories import check_spatial_dims, norm_layer
from mantis.nn.functional import DEFAULT_SMOOTH, fractal_tanimoto_from_sums


def fractal_similarity_maps(
    q: torch.Tensor, k: torch.Tensor, depth: int, smooth: float = DEFAULT_SMOOTH
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial and channel fractal Tanimoto maps (with complement) of ``q`` and ``k``.

    The elementwise products are formed once and reduced twice: over channels for the
    spatial map (B x 1 x S) and over space for the channel map (B x C x 1...).
    """
    spatial_axes = tuple(range(2, q.dim()))
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    prod = q * k
    diff = q - k
    sq = diff * diff
    plus = q + k
    maps = []
    for axes in ((1,), spatial_axes):
        count = 1
        for a in axes:
            count *= q.shape[a]
        pl = prod.sum(axes, keepdim=True, dtype=acc)
        dd = sq.sum(axes, keepdim=True, dtype=acc)
        total = plus.sum(axes, keepdim=True, dtype=acc)
        maps.append(fractal_tanimoto_from_sums(pl, dd, total, float(count), depth, True, smooth))
    return maps[0], maps[1]


class FracTALAttention(nn.Module):
    """FracTAL attention: fractal Tanimoto similarity of sigmoid queries and keys, applied to values.

    ``A = norm(0.5 * (channel_sim * v + spatial_sim * v))`` with ``q, k, v = sigmoid(normed conv)``.
    Memory is O(B C S): no S x S or C x C affinity matrix. Call ``att(x)`` for self-attention or
    ``att(q_src, k_src, v_src)`` for relative attention.

    Args:
        in_channels: channels of the query/key/value sources.
        nkeys: channels of q, k, v and of the output (defaults to ``in_channels``).
        nheads: groups of the q/k/v convolutions (reduced to a common divisor of the widths).
        depth: fractal depth of the similarity (default 5).
        kernel_size: kernel of the q/k/v convolutions.
        norm: normalisation kind; norm_groups: its groups; spatial_dims: 1, 2 or 3.
    """

    def __init__(
        self,
        in_channels: int,
        nkeys: int | None = None,
        nheads: int = 1,
        depth: int = 5,
        kernel_size: int = 3,
        norm: str = "group",
        norm_groups: int = 4,
        spatial_dims: int = 2,
        smooth: float = DEFAULT_SMOOTH,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        nkeys = in_channels if nkeys is None else nkeys
        groups = gcd(gcd(in_channels, nkeys), nheads)
        self.depth = depth
        self.smooth = smooth

        def proj() -> ConvNormed:
            return ConvNormed(
                in_channels,
                nkeys,
                kernel_size,
                groups=groups,
                norm=norm,
                norm_groups=norm_groups,
                spatial_dims=spatial_dims,
            )

        self.query = proj()
        self.key = proj()
        self.value = proj()
        self.norm = norm_layer(norm, nkeys, spatial_dims, norm_groups)

    def forward(
        self, q_src: torch.Tensor, k_src: torch.Tensor | None = None, v_src: torch.Tensor | None = None
    ) -> torch.Tensor:
        k_src = q_src if k_src is None else k_src
        v_src = k_src if v_src is None else v_src
        q = torch.sigmoid(self.query(q_src))
        k = torch.sigmoid(self.key(k_src))
        v = torch.sigmoid(self.value(v_src))
        spatial, channel = fractal_similarity_maps(q, k, self.depth, self.smooth)
        att = 0.5 * v * (spatial + channel).to(v.dtype)
        return self.norm(att)


class CATFusion(nn.Module):
    """Relative-attention fusion of two feature maps, input width ``in_channels`` -> ``out_channels``.

    ``F1 = x1 * (1 + g1 * Att(q=x1, k=v=x2))``, ``F2 = x2 * (1 + g2 * Att(q=x2, k=v=x1))``,
    ``out = ReLU(normed conv3(concat[F1, F2]))``. The gates start at 0 (plain concat + conv).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        nheads: int = 1,
        depth: int = 5,
        norm: str = "group",
        norm_groups: int = 4,
        spatial_dims: int = 2,
    ) -> None:
        super().__init__()
        groups = gcd(gcd(2 * in_channels, out_channels), nheads)
        self.relatt12 = FracTALAttention(in_channels, in_channels, nheads, depth, 3, norm, norm_groups, spatial_dims)
        self.relatt21 = FracTALAttention(in_channels, in_channels, nheads, depth, 3, norm, norm_groups, spatial_dims)
        self.gamma1 = nn.Parameter(torch.zeros(1))
        self.gamma2 = nn.Parameter(torch.zeros(1))
        self.fuse = ConvNormed(
            2 * in_channels,
            out_channels,
            3,
            groups=groups,
            norm=norm,
            norm_groups=norm_groups,
            spatial_dims=spatial_dims,
        )
        self.act = nn.ReLU()

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        f1 = x1 * (1 + self.gamma1 * self.relatt12(x1, x2, x2))
        f2 = x2 * (1 + self.gamma2 * self.relatt21(x2, x1, x1))
        return self.act(self.fuse(torch.cat([f1, f2], dim=1)))


class Fusion(CATFusion):
    """Relative-attention fusion of two maps of the same width ``channels`` (see :class:`CATFusion`)."""

    def __init__(
        self,
        channels: int,
        nheads: int = 1,
        depth: int = 5,
        norm: str = "group",
        norm_groups: int = 4,
        spatial_dims: int = 2,
    ) -> None:
        super().__init__(channels, channels, nheads, depth, norm, norm_groups, spatial_dims)
