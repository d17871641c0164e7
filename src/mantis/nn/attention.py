"""FracTAL attention (self and relative) and the attention fusions."""

from __future__ import annotations

import warnings
from math import gcd
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from mantis.nn import triton_attention
from mantis.nn.conv import ConvNormed
from mantis.nn.factories import NormArgs, check_spatial_dims, norm_args, norm_layer_of
from mantis.nn.functional import DEFAULT_SMOOTH, fractal_tanimoto_from_sums

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack needs Python 3.11


def fractal_similarity_maps(
    q: torch.Tensor, k: torch.Tensor, depth: int, smooth: float = DEFAULT_SMOOTH
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial and channel fractal Tanimoto maps (with complement) of ``q`` and ``k``.

    The elementwise products are formed once and reduced twice: over channels for the
    spatial map (B x 1 x S) and over space for the channel map (B x C x 1...).
    Differentiable by autograd; :func:`attend` is the faster fused equivalent used by the layer.
    """
    spatial_axes = tuple(range(2, q.dim()))
    acc = _acc_dtype(q)
    prod = q * k
    diff = q - k
    sq = diff * diff
    plus = q + k
    maps = []
    for axes in ((1,), spatial_axes):
        pl = prod.sum(axes, keepdim=True, dtype=acc)
        dd = sq.sum(axes, keepdim=True, dtype=acc)
        total = plus.sum(axes, keepdim=True, dtype=acc)
        maps.append(fractal_tanimoto_from_sums(pl, dd, total, float(_count(q, axes)), depth, True, smooth))
    return maps[0], maps[1]


def _acc_dtype(x: torch.Tensor) -> torch.dtype:
    # Reductions and Tanimoto denominators stay in float32 (float64 for float64 inputs), bf16-safe.
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _count(x: torch.Tensor, axes: tuple[int, ...]) -> int:  # elements reduced over ``axes``
    n = 1
    for a in axes:
        n *= x.shape[a]
    return n


def _tanimoto_and_grads(
    pl: torch.Tensor, dd: torch.Tensor, depth: int, smooth: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``T = (pl + s)/d * sum_i 1/D_i`` with ``D_i = 2^i dd + pl + s``, and its partials dT/dpl, dT/ddd."""
    terms = max(int(depth), 1)
    base = pl + smooth
    # All terms at once along a leading axis (a few large passes instead of seven small ones per term).
    scales = torch.tensor([float(2**i) for i in range(terms)], dtype=pl.dtype, device=pl.device)
    scales = scales.view(terms, *([1] * pl.dim()))
    r = torch.addcmul(base, dd, scales).reciprocal_()
    r2 = r * r
    inv = r.sum(0)
    inv_sq = r2.sum(0)
    inv_sq_scaled = r2.mul_(scales).sum(0)
    return base * inv / terms, (inv - base * inv_sq) / terms, -base * inv_sq_scaled / terms


class _FusedAttention(torch.autograd.Function):
    """``y = 0.5 * v * (FT_spatial(q, k) + FT_channel(q, k))`` with an analytic backward.

    Works on N x C x S views of contiguous inputs and N x S x C views of channels-last ones, so that every
    elementwise pass runs in the inputs' own memory layout. The products are formed once in the accumulation
    dtype and reduced over both axes; the backward needs only q, k, v and a few reduced maps, and applies the
    gradient of the five reductions per axis in four fused passes.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, depth: int, smooth: float
    ) -> torch.Tensor:
        layout = _Layout(q)
        q, k, v = layout.rows(q), layout.rows(k), layout.rows(v)
        acc = _acc_dtype(q)
        prod = _in_dtype(torch.mul, q, k, acc)
        diff = q - k
        sq = _in_dtype(torch.mul, diff, diff, acc)
        plus = _in_dtype(torch.add, q, k, acc)
        del diff
        weights = []
        partials = []
        for axis in (layout.channel_axis, layout.space_axis):
            pl = prod.sum(axis, keepdim=True)
            dd = sq.sum(axis, keepdim=True)
            total = plus.sum(axis, keepdim=True)
            t, t_pl, t_dd = _tanimoto_and_grads(pl, dd, depth, smooth)
            # Complement: <1-q, 1-k> = n - sum(q + k) + <q, k>; the squared distance is unchanged.
            tc, tc_pl, tc_dd = _tanimoto_and_grads(q.shape[axis] - total + pl, dd, depth, smooth)
            weights.append(0.25 * (t + tc))  # 0.5 for the complement mean x 0.5 of the layer
            partials += [0.25 * (t_pl + tc_pl), 0.25 * (t_dd + tc_dd), -0.25 * tc_pl]
        y = v * _outer_sum(weights[0], weights[1], v.dtype)
        ctx.save_for_backward(q, k, v, *weights, *partials)
        ctx.layout = layout
        return layout.restore(y)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        q, k, v, w_sp, w_ch, sp_pl, sp_dd, sp_tot, ch_pl, ch_dd, ch_tot = ctx.saved_tensors
        layout: _Layout = ctx.layout
        grad = layout.rows(grad)
        acc = sp_pl.dtype
        grad_v = grad * _outer_sum(w_sp, w_ch, grad.dtype)
        gv = _in_dtype(torch.mul, grad, v, acc)
        g_sp = gv.sum(layout.channel_axis, keepdim=True)
        g_ch = gv.sum(layout.space_axis, keepdim=True)
        del gv
        dt = q.dtype
        coef_pl = _outer_sum(g_sp * sp_pl, g_ch * ch_pl, dt)
        coef_dd = _outer_sum(2 * g_sp * sp_dd, 2 * g_ch * ch_dd, dt)
        coef_tot = _outer_sum(g_sp * sp_tot, g_ch * ch_tot, dt)
        dd_term = coef_dd * (q - k)
        grad_q = torch.addcmul(coef_tot, coef_pl, k).add_(dd_term)
        grad_k = torch.addcmul(coef_tot, coef_pl, q).sub_(dd_term)
        return layout.restore(grad_q), layout.restore(grad_k), layout.restore(grad_v), None, None


class _Layout:
    """Flattens B x C x S... tensors to 3-D views in the memory order of a reference tensor, and back."""

    def __init__(self, ref: torch.Tensor) -> None:
        self.shape = ref.shape
        self.channels_last = ref.dim() > 2 and not ref.is_contiguous() and ref.movedim(1, -1).is_contiguous()
        self.channel_axis = 2 if self.channels_last else 1
        self.space_axis = 1 if self.channels_last else 2

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """N x S x C (channels-last) or N x C x S view of ``x``, copied only if ``x`` is in another layout."""
        n, c = self.shape[:2]
        if self.channels_last:
            return x.movedim(1, -1).contiguous().view(n, -1, c)
        return x.contiguous().view(n, c, -1)

    def restore(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            return x.view(self.shape[0], *self.shape[2:], self.shape[1]).movedim(-1, 1)
        return x.view(self.shape)


def _outer_sum(spatial: torch.Tensor, channel: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``spatial + channel`` (one map broadcast along space, the other along channels) as a full tensor of ``dtype``.

    Summed in the maps' own float32 (bf16 broadcasts along a short axis ran ~10x slower than a plain pass).
    """
    return (spatial + channel).to(dtype)


def _in_dtype(op: Any, a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # Writes op(a, b) straight into a tensor of the accumulation dtype (no separate up-cast pass).
    if a.dtype == dtype:
        return op(a, b)
    out = torch.empty(a.shape, dtype=dtype, device=a.device)
    return op(a, b, out=out)


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, depth: int, smooth: float = DEFAULT_SMOOTH
) -> torch.Tensor:
    """``0.5 * v * (spatial + channel similarity of q and k)``: the un-normalised FracTAL attention.

    Shapes: q, k, v B x C x S (values in [0, 1]) -> B x C x S. Same values as
    :func:`fractal_similarity_maps` followed by the product, with a fused analytic backward.
    CUDA tensors go to the Triton kernels when Triton is present (:mod:`mantis.nn.triton_attention`).
    """
    if q.is_cuda and triton_attention.supports(q, k, v):
        return triton_attention.fractal_attention(q, k, v, depth, smooth)
    return _FusedAttention.apply(q, k, v, depth, smooth)


class FracTALAttention(nn.Module):
    """FracTAL attention: fractal Tanimoto similarity of sigmoid queries and keys, applied to values.

    ``A = norm(0.5 * (channel_sim * v + spatial_sim * v))`` with ``q, k, v = sigmoid(normed conv)``.
    Memory is O(B C S): no S x S or C x C affinity matrix. Call ``att(x)`` for self-attention or
    ``att(q_src, k_src, v_src)`` for relative attention.

    Args:
        in_channels: channels of the query/key/value sources.
        nkeys: channels of q, k, v and of the output (defaults to ``in_channels``).
        nheads: groups of the q/k/v convolutions (reduced to a common divisor of the widths).
        attention_depth: fractal depth of the similarity (default 5, the authors').
        kernel_size: kernel of the q/k/v convolutions.
        norm: normalisation kind; norm_groups: its groups; spatial_dims: 1, 2 or 3.
        depth: the former name of ``attention_depth`` (deprecated).
    """

    def __init__(
        self,
        in_channels: int,
        nkeys: int | None = None,
        *,
        nheads: int = 1,
        attention_depth: int = 5,
        kernel_size: int = 3,
        smooth: float = DEFAULT_SMOOTH,
        depth: int | None = None,
        **norm: Unpack[NormArgs],
    ) -> None:
        super().__init__()
        kw = norm_args(**norm)
        attention_depth = attention_depth_alias(attention_depth, depth, type(self).__name__)
        check_spatial_dims(kw["spatial_dims"])
        nkeys = in_channels if nkeys is None else nkeys
        groups = gcd(gcd(in_channels, nkeys), nheads)
        self.depth = attention_depth
        self.smooth = smooth

        def proj() -> ConvNormed:
            return ConvNormed(in_channels, nkeys, kernel_size, groups=groups, **kw)

        self.query = proj()
        self.key = proj()
        self.value = proj()
        self.norm = norm_layer_of(nkeys, **norm)

    def forward(
        self, q_src: torch.Tensor, k_src: torch.Tensor | None = None, v_src: torch.Tensor | None = None
    ) -> torch.Tensor:
        k_src = q_src if k_src is None else k_src
        v_src = k_src if v_src is None else v_src
        q = torch.sigmoid(self.query(q_src))
        k = torch.sigmoid(self.key(k_src))
        v = torch.sigmoid(self.value(v_src))
        return self.norm(attend(q, k, v, self.depth, self.smooth))


def attention_depth_alias(attention_depth: int, depth: int | None, owner: str) -> int:
    """``depth``, the former name of ``attention_depth``, still accepted with a deprecation warning."""
    if depth is None:
        return attention_depth
    warnings.warn(f"{owner}(depth=...) is deprecated; use attention_depth=", DeprecationWarning, stacklevel=3)
    return depth


class CATFusion(nn.Module):
    """Relative-attention fusion of two feature maps, input width ``in_channels`` -> ``out_channels``.

    ``F1 = x1 * (1 + g1 * Att(q=x1, k=v=x2))``, ``F2 = x2 * (1 + g2 * Att(q=x2, k=v=x1))``,
    ``out = ReLU(normed conv3(concat[F1, F2]))``. The gates start at 0 (plain concat + conv).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        nheads: int = 1,
        attention_depth: int = 5,
        depth: int | None = None,
        **norm: Unpack[NormArgs],
    ) -> None:
        super().__init__()
        kw = norm_args(**norm)
        attention_depth = attention_depth_alias(attention_depth, depth, type(self).__name__)
        groups = gcd(gcd(2 * in_channels, out_channels), nheads)
        self.relatt12, self.relatt21 = (
            FracTALAttention(in_channels, nheads=nheads, attention_depth=attention_depth, **kw) for _ in range(2)
        )
        self.gamma1 = nn.Parameter(torch.zeros(()))
        self.gamma2 = nn.Parameter(torch.zeros(()))
        self.fuse = ConvNormed(
            2 * in_channels,
            out_channels,
            3,
            groups=groups,
            **kw,
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
        *,
        nheads: int = 1,
        attention_depth: int = 5,
        depth: int | None = None,
        **norm: Unpack[NormArgs],
    ) -> None:
        kw = norm_args(**norm)
        super().__init__(
            channels,
            channels,
            nheads=nheads,
            attention_depth=attention_depth_alias(attention_depth, depth, type(self).__name__),
            **kw,
        )
