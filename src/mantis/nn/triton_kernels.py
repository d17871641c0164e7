"""Triton kernels of the fused FracTAL attention core (see :mod:`mantis.nn.triton_attention`).

Every tensor is addressed as an N x C x S view through its strides, so one kernel serves the contiguous
(s fastest) and the channels-last (c fastest) layouts. A program owns one sample ``n`` and a tile of
``BLOCK_S`` positions and walks the channels in blocks of ``BLOCK_C``. Sums and Tanimoto terms are float32.

Forward: ``_reduce_kernel`` reads q and k once, finishes the spatial reductions (over C) and writes the
spatial weight map with its partial derivatives, plus per-tile partial channel sums; ``_channel_kernel`` adds
the partials up and writes the channel weights; ``_apply_kernel`` forms ``y = v * (w_sp + w_ch)``.
Backward: ``_grad_v_kernel`` reads the output gradient g and v once (grad of v, ``sum_c g v`` and per-tile
partial ``sum_s g v``); ``_grad_qk_kernel`` reads q and k once more and writes both gradients.

Weight maps (``stats``, float32, N x 4 x L with L = S or C): row 0 the weight ``W = FT / 4`` (0.5 of the
complement mean times 0.5 of the layer), rows 1-3 its derivatives in ``<q,k>``, ``<q-k,q-k>``, ``sum(q+k)``.
"""

# mypy: disable-error-code="no-untyped-def"
# (Triton reads a kernel's annotations as types, so the kernels stay unannotated but for constexprs.)

import triton
import triton.language as tl


@triton.jit
def _averaged_tanimoto(pl, dd, smooth, DEPTH: tl.constexpr):
    """``T = (pl + s)/d sum_i 1/(2^i dd + pl + s)`` and its partials dT/dpl, dT/ddd (elementwise)."""
    base = pl + smooth
    inv = tl.zeros_like(pl)
    inv_sq = tl.zeros_like(pl)
    inv_sq_scaled = tl.zeros_like(pl)
    scale = 1.0
    for _ in tl.static_range(DEPTH):  # unrolled: DEPTH is small and fixed per layer
        r = 1.0 / (dd * scale + base)
        r2 = r * r
        inv += r
        inv_sq += r2
        inv_sq_scaled += r2 * scale
        scale = scale * 2.0
    return base * inv / DEPTH, (inv - base * inv_sq) / DEPTH, -base * inv_sq_scaled / DEPTH


@triton.jit
def _store_weights(out_ptr, offs, mask, length, pl, dd, total, count, smooth, DEPTH: tl.constexpr):
    """Writes ``W = 0.25 (T(q,k) + T(1-q,1-k))`` and dW/dpl, dW/ddd, dW/dtotal as four rows of ``length``."""
    t, t_pl, t_dd = _averaged_tanimoto(pl, dd, smooth, DEPTH)
    # Complement: <1-q, 1-k> = count - sum(q + k) + <q, k>; the squared distance is unchanged.
    tc, tc_pl, tc_dd = _averaged_tanimoto(count - total + pl, dd, smooth, DEPTH)
    tl.store(out_ptr + offs, 0.25 * (t + tc), mask=mask)
    tl.store(out_ptr + length + offs, 0.25 * (t_pl + tc_pl), mask=mask)
    tl.store(out_ptr + 2 * length + offs, 0.25 * (t_dd + tc_dd), mask=mask)
    tl.store(out_ptr + 3 * length + offs, -0.25 * tc_pl, mask=mask)


@triton.jit
def _tile_offsets(n, offs_c, offs_s, stride_n, stride_c, stride_s):
    """Element offsets of a BLOCK_C x BLOCK_S tile of sample n, in int64 (volumes pass 2^31 elements)."""
    return n.to(tl.int64) * stride_n + offs_c[:, None].to(tl.int64) * stride_c + offs_s[None, :].to(tl.int64) * stride_s


@triton.jit
def _spatial_tile(S, BLOCK_S: tl.constexpr):
    """This program's sample ``n``, its tile index, the number of tiles, and the tile's positions and mask."""
    tile = tl.program_id(0)
    offs_s = tile * BLOCK_S + tl.arange(0, BLOCK_S)
    return tl.program_id(1), tile, tl.num_programs(0), offs_s, offs_s < S


@triton.jit
def _channel_block(n, c0, offs_s, mask_s, C, stride_n, stride_c, stride_s, BLOCK_C: tl.constexpr):
    """Channels ``c0 ..`` of the tile: their offsets and mask, and the tile's element offsets and mask."""
    offs_c = c0 + tl.arange(0, BLOCK_C)
    mask_c = offs_c < C
    offs = _tile_offsets(n, offs_c, offs_s, stride_n, stride_c, stride_s)
    return offs_c, mask_c, offs, mask_c[:, None] & mask_s[None, :]


@triton.jit
def _reduce_kernel(
    q_ptr, k_ptr, sp_ptr, part_ptr, C, S, stride_n, stride_c, stride_s, smooth,
    DEPTH: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
):  # fmt: skip
    """One read of q and k: spatial stats (N x 4 x S) and partial channel sums (N x tiles x 3 x C)."""
    n, tile, tiles, offs_s, mask_s = _spatial_tile(S, BLOCK_S)
    pl_s = tl.zeros([BLOCK_S], dtype=tl.float32)
    dd_s = tl.zeros([BLOCK_S], dtype=tl.float32)
    tot_s = tl.zeros([BLOCK_S], dtype=tl.float32)
    part = part_ptr + (n * tiles + tile) * 3 * C
    for c0 in range(0, C, BLOCK_C):
        offs_c, mask_c, offs, mask = _channel_block(n, c0, offs_s, mask_s, C, stride_n, stride_c, stride_s, BLOCK_C)
        # Masked entries load as 0 and add nothing to any of the three sums.
        q = tl.load(q_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        k = tl.load(k_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        prod = q * k
        diff = q - k
        sq = diff * diff
        plus = q + k
        pl_s += tl.sum(prod, axis=0)
        dd_s += tl.sum(sq, axis=0)
        tot_s += tl.sum(plus, axis=0)
        tl.store(part + offs_c, tl.sum(prod, axis=1), mask=mask_c)
        tl.store(part + C + offs_c, tl.sum(sq, axis=1), mask=mask_c)
        tl.store(part + 2 * C + offs_c, tl.sum(plus, axis=1), mask=mask_c)
    _store_weights(sp_ptr + n * 4 * S, offs_s, mask_s, S, pl_s, dd_s, tot_s, C * 1.0, smooth, DEPTH)


@triton.jit
def _channel_kernel(
    part_ptr, ch_ptr, C, S, tiles, smooth,
    DEPTH: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_T: tl.constexpr,
):  # fmt: skip
    """Adds the per-tile channel sums up (BLOCK_T tiles a step) and writes the channel stats (N x 4 x C)."""
    n = tl.program_id(1)
    offs_c = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_c = offs_c < C
    pl = tl.zeros([BLOCK_C], dtype=tl.float32)
    dd = tl.zeros([BLOCK_C], dtype=tl.float32)
    tot = tl.zeros([BLOCK_C], dtype=tl.float32)
    for t0 in range(0, tiles, BLOCK_T):
        offs_t = t0 + tl.arange(0, BLOCK_T)
        mask = (offs_t < tiles)[:, None] & mask_c[None, :]
        part = part_ptr + ((n * tiles + offs_t) * 3 * C)[:, None] + offs_c[None, :]
        pl += tl.sum(tl.load(part, mask=mask, other=0.0), axis=0)
        dd += tl.sum(tl.load(part + C, mask=mask, other=0.0), axis=0)
        tot += tl.sum(tl.load(part + 2 * C, mask=mask, other=0.0), axis=0)
    _store_weights(ch_ptr + n * 4 * C, offs_c, mask_c, C, pl, dd, tot, S * 1.0, smooth, DEPTH)


@triton.jit
def _apply_kernel(
    v_ptr, y_ptr, sp_ptr, ch_ptr, C, S, stride_n, stride_c, stride_s,
    BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
):  # fmt: skip
    """``y = v * (w_sp + w_ch)``, rounded once to y's dtype."""
    n, _, _, offs_s, mask_s = _spatial_tile(S, BLOCK_S)
    w_sp = tl.load(sp_ptr + n * 4 * S + offs_s, mask=mask_s, other=0.0)
    for c0 in range(0, C, BLOCK_C):
        offs_c, mask_c, offs, mask = _channel_block(n, c0, offs_s, mask_s, C, stride_n, stride_c, stride_s, BLOCK_C)
        w_ch = tl.load(ch_ptr + n * 4 * C + offs_c, mask=mask_c, other=0.0)
        v = tl.load(v_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        y = v * (w_sp[None, :] + w_ch[:, None])
        tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _grad_v_kernel(
    g_ptr, v_ptr, gv_ptr, sp_ptr, ch_ptr, gsp_ptr, part_ptr, C, S, stride_n, stride_c, stride_s,
    BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
):  # fmt: skip
    """One read of g and v: grad of v, ``sum_c g v`` (N x S) and per-tile partial ``sum_s g v`` (N x tiles x C)."""
    n, tile, tiles, offs_s, mask_s = _spatial_tile(S, BLOCK_S)
    w_sp = tl.load(sp_ptr + n * 4 * S + offs_s, mask=mask_s, other=0.0)
    g_sp = tl.zeros([BLOCK_S], dtype=tl.float32)
    part = part_ptr + (n * tiles + tile) * C
    for c0 in range(0, C, BLOCK_C):
        offs_c, mask_c, offs, mask = _channel_block(n, c0, offs_s, mask_s, C, stride_n, stride_c, stride_s, BLOCK_C)
        w_ch = tl.load(ch_ptr + n * 4 * C + offs_c, mask=mask_c, other=0.0)
        g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        v = tl.load(v_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        grad_v = g * (w_sp[None, :] + w_ch[:, None])
        tl.store(gv_ptr + offs, grad_v.to(gv_ptr.dtype.element_ty), mask=mask)
        gv = g * v
        g_sp += tl.sum(gv, axis=0)
        tl.store(part + offs_c, tl.sum(gv, axis=1), mask=mask_c)
    tl.store(gsp_ptr + n * S + offs_s, g_sp, mask=mask_s)


@triton.jit
def _grad_qk_kernel(
    q_ptr, k_ptr, gq_ptr, gk_ptr, sp_ptr, ch_ptr, gsp_ptr, gch_ptr, C, S, stride_n, stride_c, stride_s,
    BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
):  # fmt: skip
    """Gradients of q and k through the six reductions: one read of q and k.

    ``dL/dq = sum over both axes of G (W_pl k + 2 W_dd (q - k) + W_tot)``, and the same for k with q for k
    and the sign of the distance term flipped; G is ``sum g v`` over the other axis.
    """
    n, _, _, offs_s, mask_s = _spatial_tile(S, BLOCK_S)
    sp = sp_ptr + n * 4 * S + offs_s
    g_sp = tl.load(gsp_ptr + n * S + offs_s, mask=mask_s, other=0.0)
    sp_pl = g_sp * tl.load(sp + S, mask=mask_s, other=0.0)
    sp_dd = 2.0 * g_sp * tl.load(sp + 2 * S, mask=mask_s, other=0.0)
    sp_tot = g_sp * tl.load(sp + 3 * S, mask=mask_s, other=0.0)
    for c0 in range(0, C, BLOCK_C):
        offs_c, mask_c, offs, mask = _channel_block(n, c0, offs_s, mask_s, C, stride_n, stride_c, stride_s, BLOCK_C)
        ch = ch_ptr + n * 4 * C + offs_c
        g_ch = tl.load(gch_ptr + n * C + offs_c, mask=mask_c, other=0.0)
        coef_pl = sp_pl[None, :] + (g_ch * tl.load(ch + C, mask=mask_c, other=0.0))[:, None]
        coef_dd = sp_dd[None, :] + (2.0 * g_ch * tl.load(ch + 2 * C, mask=mask_c, other=0.0))[:, None]
        coef_tot = sp_tot[None, :] + (g_ch * tl.load(ch + 3 * C, mask=mask_c, other=0.0))[:, None]
        q = tl.load(q_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        k = tl.load(k_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        dist = coef_dd * (q - k)
        tl.store(gq_ptr + offs, (coef_tot + coef_pl * k + dist).to(gq_ptr.dtype.element_ty), mask=mask)
        tl.store(gk_ptr + offs, (coef_tot + coef_pl * q - dist).to(gk_ptr.dtype.element_ty), mask=mask)
