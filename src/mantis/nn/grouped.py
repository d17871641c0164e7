"""2D convolution that runs narrow groups as wider block-diagonal groups where that is faster."""

from __future__ import annotations

import functools

import torch
import torch.nn as nn
import torch.nn.functional as F

from mantis.runtime import cpu_has_native_bf16

# oneDNN's bf16 channels-last grouped convolution is 1.5-6x slower with fewer than 8 input or output channels per
# group than the same sums as block-diagonal groups of 8 (forward + backward, 2-core AVX512-bf16 CPU,
# benchmarks/bench_units.py); in float32 the gain is small or negative there, but on a CPU without native bf16
# (AVX2 only, where training runs in float32) the merge makes a demo-size training step 1.04-1.12x faster.
_FAST_CHANNELS_PER_GROUP = 8


@functools.cache
def _merge_in_float32() -> bool:
    """Merge narrow float32 groups too: on CPUs without native bf16, where it was measured faster."""
    return not cpu_has_native_bf16()


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters and values) with a faster path for narrow groups in channels-last on a CPU.

    In bf16 (and in float32 on a CPU without native bf16), groups with fewer than 8 input or output channels are
    merged ``f`` at a time into wider groups whose weight is block-diagonal (zeros between the original groups): the
    same sums, in oneDNN's fast kernel.
    """

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        merge = self._merge_factor(input)
        if merge > 1:
            weight = _block_diagonal(weight, self.groups, merge).contiguous(memory_format=torch.channels_last)
            return F.conv2d(input, weight, bias, self.stride, self.padding, self.dilation, self.groups // merge)
        return super()._conv_forward(input, weight, bias)

    def _merge_factor(self, input: torch.Tensor) -> int:
        per_in = self.in_channels // self.groups
        per_out = self.out_channels // self.groups
        if self.groups == 1 or min(per_in, per_out) >= _FAST_CHANNELS_PER_GROUP:
            return 1
        if self.padding_mode != "zeros" or input.device.type != "cpu" or input.dim() != 4:
            return 1
        bf16 = input.dtype == torch.bfloat16 or (
            torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        )
        fp32 = input.dtype == torch.float32 and not torch.is_autocast_enabled("cpu") and _merge_in_float32()
        if not (bf16 or fp32) or input.is_contiguous() or not input.is_contiguous(memory_format=torch.channels_last):
            return 1
        # The fewest groups merged that give at least 8 input and output channels per group.
        for merge in range(2, self.groups + 1):
            if self.groups % merge == 0 and min(per_in, per_out) * merge >= _FAST_CHANNELS_PER_GROUP:
                return merge
        return self.groups


def _block_diagonal(weight: torch.Tensor, groups: int, merge: int) -> torch.Tensor:
    """Weight of ``groups // merge`` groups, each holding ``merge`` original groups on its block diagonal."""
    out_ch, per_in = weight.shape[:2]
    per_out = out_ch // groups
    kernel = weight.shape[2:]
    w = weight.reshape(groups // merge, merge, per_out, 1, per_in, *kernel)
    eye = torch.eye(merge, dtype=weight.dtype, device=weight.device).view(1, merge, 1, merge, 1, 1, 1)
    return (w * eye).reshape(out_ch, merge * per_in, *kernel)
