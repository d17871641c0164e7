"""What the Triton launchers share: tensors as N x C x S views in either dense layout, and the tiling of them.

Kernels address a tensor through three strides (sample, channel, flattened position), so one kernel serves
the contiguous (positions fastest) and the channels-last (channels fastest) layouts; outputs follow the
layout of the first input. A program owns one sample and a tile of ``block_s`` positions, and walks the
channels in blocks of ``block_c``.
"""

from __future__ import annotations

import contextlib
from typing import Any, NamedTuple

import torch


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether ``x`` is dense with the channels fastest (and not also contiguous)."""
    return x.dim() > 2 and not x.is_contiguous() and x.movedim(1, -1).is_contiguous()


def empty_in_layout(shape: torch.Size, dtype: torch.dtype, device: torch.device, channels_last: bool) -> torch.Tensor:
    """An uninitialised tensor in the contiguous or the channels-last layout."""
    if channels_last:
        return torch.empty((shape[0], *shape[2:], shape[1]), dtype=dtype, device=device).movedim(-1, 1)
    return torch.empty(shape, dtype=dtype, device=device)


def in_layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``x`` in the given layout, copied only if it is in another one."""
    if channels_last:
        return x if is_channels_last(x) else x.movedim(1, -1).contiguous().movedim(-1, 1)
    return x.contiguous()


def strides(x: torch.Tensor, channels_last: bool) -> tuple[int, int, int]:
    """Strides of sample, channel and (flattened) position of a tensor in the given dense layout."""
    return x.stride(0), x.stride(1), (x.shape[1] if channels_last else 1)


def next_pow2(n: int) -> int:
    """The smallest power of two >= n (and >= 1)."""
    return 1 << max(int(n) - 1, 0).bit_length()


def blocks(batch: int, channels: int, size: int) -> tuple[int, int]:
    """Tile of BLOCK_C x BLOCK_S: at most 32 x 128, narrowed on small maps so that enough programs run."""
    block_c = min(32, next_pow2(channels))
    block_s = min(128, next_pow2(size))
    while block_s > 16 and batch * -(-size // block_s) < 512:
        block_s //= 2
    return block_c, block_s


def warps(block_c: int, block_s: int) -> int:
    # 4 warps up to 2048 elements a tile, 8 above: about 16 float32 values a thread per tensor held.
    return 4 if block_c * block_s <= 2048 else 8


def on_device(x: torch.Tensor) -> contextlib.AbstractContextManager[object]:
    """Triton launches on the current CUDA device and stream: make that the tensor's device."""
    return torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()


class Grid(NamedTuple):
    """Sizes of the N x C x S problem and its tiling."""

    n: int
    c: int
    s: int
    block_c: int
    block_s: int
    tiles: int  # tiles of BLOCK_S positions per sample
    warps: int

    @property
    def tile(self) -> dict[str, int]:
        """The launch keywords of a tile kernel: block sizes and warps."""
        return {"BLOCK_C": self.block_c, "BLOCK_S": self.block_s, "num_warps": self.warps}


def grid(x: torch.Tensor, tile: tuple[int, int] | None = None) -> Grid:
    """The tiling of ``x`` (N x C x ...): ``tile`` (BLOCK_C, BLOCK_S, powers of two) or the heuristic's."""
    n, c = x.shape[:2]
    s = x.numel() // max(n * c, 1)
    block_c, block_s = tile or blocks(n, c, s)
    return Grid(n, c, s, block_c, block_s, -(-s // block_s), warps(block_c, block_s))


def register_autograd_with_stats(forward: Any, backward: Any) -> None:
    """Autograd for a custom op ``forward(a, b, c, int, float) -> (y, s1, s2)`` whose gradient is the custom op
    ``backward(grad, a, b, c, s1, s2) -> (grad a, grad b, grad c)``; s1, s2 are statistics kept for the backward
    (not differentiable)."""

    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, ...]) -> None:
        ctx.mark_non_differentiable(*output[1:])
        ctx.save_for_backward(*inputs[:3], *output[1:])

    def gradients(ctx: Any, grad: torch.Tensor, *_stats_grads: Any) -> tuple[torch.Tensor | None, ...]:
        return (*backward(grad, *ctx.saved_tensors), None, None)

    forward.register_autograd(gradients, setup_context=setup_context)
