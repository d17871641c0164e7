"""Triton kernels of the fused GroupNorm + ReLU (see :mod:`mantis.nn.triton_norm`).

Tensors are addressed as N x C x S views through their strides (both dense layouts), a program per sample and
tile of ``BLOCK_S`` positions walking the channels in blocks of ``BLOCK_C``, as the attention kernels do.
Sums are float32. Per-sample, per-channel coefficients (N x rows x C, float32) come from the launcher, so each
kernel is one pass:

- ``_stats_kernel``: per tile and channel, the mean and the centred sum of squares of the tile's positions
  (combined per group by the launcher without cancellation);
- ``_norm_relu_kernel``: ``y = max((x - mean) * scale + bias, 0)`` (centred first: no cancellation when the
  mean is large against the spread);
- ``_grad_sums_kernel``: per tile and channel, ``sum dz`` and ``sum dz * xhat`` with ``dz = g`` where the
  pre-activation is positive (recomputed from x), else 0;
- ``_grad_kernel``: ``dx = dz * alpha + (x - mean) * beta + gamma``.
"""

# mypy: disable-error-code="no-untyped-def"
# (Triton reads a kernel's annotations as types, so the kernels stay unannotated but for constexprs.)

import triton
import triton.language as tl

from mantis.nn.triton_kernels import _channel_block, _spatial_tile


# Per tile and channel: mean and centred sum of squares over the tile's positions (N x tiles x 2 x C).
@triton.jit
def _stats_kernel(
    x_ptr, part_ptr, C, S, stride_n, stride_c, stride_s,
    BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
):  # fmt: skip
    n, tile, tiles, offs_s, mask_s = _spatial_tile(S, BLOCK_S)
    count = tl.sum(mask_s.to(tl.float32), axis=0)
    part = part_ptr + (n * tiles + tile) * 2 * C
    for c0 in range(0, C, BLOCK_C):
        offs_c, mask_c, offs, mask = _channel_block(n, c0, offs_s, mask_s, C, stride_n, stride_c, stride_s, BLOCK_C)
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        mean = tl.sum(x, axis=1) / count
        centred = tl.where(mask, x - mean[:, None], 0.0)
        tl.store(part + offs_c, mean, mask=mask_c)
        tl.store(part + C + offs_c, tl.sum(centred * centred, axis=1), mask=mask_c)


@triton.jit
def _pre_activation(x_ptr, coef_ptr, n, offs_c, mask_c, offs, mask, C, ROWS: tl.constexpr):
    """x centred (float32) and the pre-activation ``(x - mean) * scale + bias`` of a channel block, from rows 0-2
    (mean, scale, bias) of the sample's coefficients (``ROWS`` x C)."""
    row = coef_ptr + n * ROWS * C + offs_c
    mean = tl.load(row, mask=mask_c, other=0.0)
    scale = tl.load(row + C, mask=mask_c, other=0.0)
    bias = tl.load(row + 2 * C, mask=mask_c, other=0.0)
    centred = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32) - mean[:, None]
    return centred, centred * scale[:, None] + bias[:, None]


# ``y = max((x - mean) * scale + bias, 0)``; coefficients N x 3 x C (mean, scale, bias); rounded once.
@triton.jit
def _norm_relu_kernel(
    x_ptr, y_ptr, coef_ptr, C, S, stride_n, stride_c, stride_s, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
):  # fmt: skip
    n, _, _, offs_s, mask_s = _spatial_tile(S, BLOCK_S)
    for c0 in range(0, C, BLOCK_C):
        offs_c, mask_c, offs, mask = _channel_block(n, c0, offs_s, mask_s, C, stride_n, stride_c, stride_s, BLOCK_C)
        _centred, z = _pre_activation(x_ptr, coef_ptr, n, offs_c, mask_c, offs, mask, C, 3)
        tl.store(y_ptr + offs, tl.maximum(z, 0.0).to(y_ptr.dtype.element_ty), mask=mask)


# Per tile and channel: ``sum dz`` and ``sum dz * (x - mean) * rstd`` (N x tiles x 2 x C); coefficients
# N x 4 x C (mean, scale, bias, rstd).
@triton.jit
def _grad_sums_kernel(
    g_ptr, x_ptr, coef_ptr, part_ptr, C, S, stride_n, stride_c, stride_s, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
):  # fmt: skip
    n, tile, tiles, offs_s, mask_s = _spatial_tile(S, BLOCK_S)
    part = part_ptr + (n * tiles + tile) * 2 * C
    for c0 in range(0, C, BLOCK_C):
        offs_c, mask_c, offs, mask = _channel_block(n, c0, offs_s, mask_s, C, stride_n, stride_c, stride_s, BLOCK_C)
        centred, z = _pre_activation(x_ptr, coef_ptr, n, offs_c, mask_c, offs, mask, C, 4)
        rstd = tl.load(coef_ptr + (n * 4 + 3) * C + offs_c, mask=mask_c, other=0.0)
        g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        dz = tl.where(z > 0.0, g, 0.0)  # masked entries: g is 0
        tl.store(part + offs_c, tl.sum(dz, axis=1), mask=mask_c)
        tl.store(part + C + offs_c, tl.sum(dz * centred, axis=1) * rstd, mask=mask_c)


# ``dx = dz * alpha + (x - mean) * beta + gamma`` (the GroupNorm derivative); coefficients N x 6 x C (mean,
# scale, bias, alpha, beta, gamma).
@triton.jit
def _grad_kernel(
    g_ptr, x_ptr, dx_ptr, coef_ptr, C, S, stride_n, stride_c, stride_s, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
):  # fmt: skip
    n, _, _, offs_s, mask_s = _spatial_tile(S, BLOCK_S)
    for c0 in range(0, C, BLOCK_C):
        offs_c, mask_c, offs, mask = _channel_block(n, c0, offs_s, mask_s, C, stride_n, stride_c, stride_s, BLOCK_C)
        centred, z = _pre_activation(x_ptr, coef_ptr, n, offs_c, mask_c, offs, mask, C, 6)
        row = coef_ptr + (n * 6 + 3) * C + offs_c
        alpha = tl.load(row, mask=mask_c, other=0.0)
        beta = tl.load(row + C, mask=mask_c, other=0.0)
        gamma = tl.load(row + 2 * C, mask=mask_c, other=0.0)
        g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        dz = tl.where(z > 0.0, g, 0.0)
        dx = dz * alpha[:, None] + centred * beta[:, None] + gamma[:, None]
        tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)
