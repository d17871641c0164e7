"""The channels-last memory layout, made unambiguous for single-channel maps."""

from __future__ import annotations

import torch


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` (N x C x H x W) in the channels-last layout, same values.

    A single-channel map is contiguous in both layouts, and convolutions then keep the plain layout for
    their output, so a panchromatic image would run its whole first level in the slow mixed layout; giving
    the channel axis stride 1 marks it channels-last.
    """
    x = x.contiguous(memory_format=torch.channels_last)
    if x.shape[1] == 1:
        n_stride, _, h_stride, w_stride = x.stride()
        x = x.as_strided(x.shape, (n_stride, 1, h_stride, w_stride))
    return x
