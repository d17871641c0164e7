"""The receptive field of a model's output, measured by the gradient of one centre output cell.

Two figures, both measured on a copy of the model in evaluation mode (float64, weights jittered so that
gates still at zero, such as the FracTAL units' ``gamma``, count as paths; ReLU, maxout and max-pooling
modules pass the gradient to every cell they read, so that a unit that happens to be off at the probe's
random input does not hide a path):

- whether one output cell depends on *every* input cell: the input cells with a non-zero gradient of that
  cell. Operations that reduce over the whole map make it so: normalisation statistics (group, layer and
  instance norm), the FracTAL attention's channel similarity, PSP pooling, global pooling;
- the *local* receptive field: the same measurement with those global statistics held fixed (their
  gradient stopped by forward hooks), which leaves what the convolutions, strides and resampling see:
  the cells per axis between the first and the last input cell with a non-zero gradient.

A field that reaches the border of the probe is reported as "at least" the probe's size: measure with a
larger input to see all of it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from mantis.nn.activations import Maxout
from mantis.nn.attention import FracTALAttention, fractal_similarity_maps
from mantis.nn.pooling import PSPPooling

__all__ = ["ReceptiveField", "input_support", "receptive_field"]

_INSTANCE = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
_ADAPTIVE = (
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)
_MAX_POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_ADAPTIVE_MAX = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}


@dataclass(frozen=True)
class ReceptiveField:
    """What one centre output cell sees of an input of ``input_size`` cells.

    Attributes:
        input_size: the probe's spatial size.
        whole_input: the cell depends on every input cell.
        reasons: the operations that reduce over the whole map (why ``whole_input``), in words.
        local: cells per axis that the cell sees through its local operations (global statistics held
            fixed); ``None`` when the output has no spatial axes (a classifier).
        clipped: per axis, whether the local field reaches the probe's border (it is then at least that).
    """

    input_size: tuple[int, ...]
    whole_input: bool
    reasons: tuple[str, ...]
    local: tuple[int, ...] | None
    clipped: tuple[bool, ...]

    def describe(self) -> str:
        """One line, e.g. ``whole input (group norm statistics); through its convolutions alone 45x45 cells``."""
        local = None
        if self.local is not None:
            at_least = any(self.clipped)
            local = ("at least " if at_least else "") + "x".join(map(str, self.local)) + " cells"
            if at_least:
                probe = "x".join(map(str, self.input_size))
                local += f" (the whole {probe} probe: give a larger input to see all of it)"
        if not self.whole_input or (not self.reasons and local is not None):
            return local or "-"
        why = ", ".join(self.reasons) if self.reasons else "its convolutions reach every cell"
        text = f"whole input ({why})"
        if local is not None and self.reasons:
            text += f"; through its local operations alone {local}"
        return text


def input_support(
    model: nn.Module, inputs: Sequence[torch.Tensor], *, local: bool = False, seed: int = 0
) -> list[torch.Tensor]:
    """Which input cells change one centre cell of the model's (first) output: a boolean map per input.

    Args:
        model: any network taking ``inputs``; it is copied, not changed.
        inputs: tensors B x C x S giving the probe's shape (their values are not used: random ones are).
        local: hold the global statistics fixed (see the module docstring).
        seed: seed of the random input and weight jitter.

    Returns:
        One boolean tensor of shape S per input: the cells with a non-zero gradient, over the batch and
        every output channel.
    """
    return _measure(model, inputs, local, seed).support


@dataclass
class _Measurement:
    support: list[torch.Tensor]
    spatial_output: bool
    reasons: tuple[str, ...]


def _measure(model: nn.Module, inputs: Sequence[torch.Tensor], local: bool, seed: int) -> _Measurement:
    generator = torch.Generator().manual_seed(seed)
    probe = copy.deepcopy(model).to(torch.float64).eval()
    with torch.no_grad():
        for p in probe.parameters():  # untrained gates (zero) would hide the path they open
            p.add_(0.05 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    seen: dict[str, None] = {}  # the global operations that ran, in order

    def note(reason: str) -> None:
        seen[reason] = None

    hooks = [
        module.register_forward_hook(lambda *_, r=reason: note(r))
        for module in probe.modules()
        if (reason := _global_reason(module))
    ]
    hooks += _open_paths(probe)
    if local:
        hooks += _hold_global_statistics(probe)
    # two random samples: a path that one sample's ReLUs happen to close, the other's likely opens
    shapes = [(max(2, x.shape[0]), *x.shape[1:]) for x in inputs]
    xs = [
        torch.randn(shape, generator=generator, dtype=torch.float64).to(x.device).requires_grad_(True)
        for shape, x in zip(shapes, inputs)
    ]
    try:
        out = _first_tensor(probe(*xs))
        spatial = out.dim() > 2
        if spatial:
            for n in out.shape[2:]:  # the centre cell, one axis at a time
                out = out.narrow(2, n // 2, 1).squeeze(2)
        # random weights per channel: a softmax's outputs sum to one, so their plain sum has no gradient
        coefficients = torch.rand(out.shape, generator=generator, dtype=out.dtype).to(out.device) + 0.5
        grads = torch.autograd.grad((out * coefficients).sum(), xs, allow_unused=True)
    finally:
        for hook in hooks:
            hook.remove()
    support = [
        torch.zeros(x.shape[2:], dtype=torch.bool) if g is None else (g != 0).any(0).any(0).cpu()
        for x, g in zip(xs, grads)
    ]
    return _Measurement(support, spatial, tuple(seen))


def receptive_field(model: nn.Module, inputs: Sequence[torch.Tensor], *, seed: int = 0) -> ReceptiveField:
    """Measure the receptive field of one centre output cell for inputs shaped like ``inputs`` (B x C x S).

    One or two forward and backward passes of a float64 copy of the model; see the module docstring.
    """
    size = tuple(int(n) for n in inputs[0].shape[2:])
    local = _measure(model, inputs, True, seed)
    if local.spatial_output and all(bool(s.all()) for s in local.support):
        whole, reasons = True, local.reasons  # the local paths alone reach every cell: no second pass needed
    else:
        full = _measure(model, inputs, False, seed)
        whole = all(bool(s.all()) for s in full.support)
        reasons = full.reasons if whole else ()
    if not local.spatial_output:
        return ReceptiveField(size, whole, tuple(dict.fromkeys([*reasons, "global pooling"])), None, ())
    union = torch.stack(local.support).any(0)
    extent, clipped = [], []
    for axis in range(union.dim()):
        others = tuple(a for a in range(union.dim()) if a != axis)
        seen = union.any(others) if others else union
        cells = torch.nonzero(seen).flatten()
        if cells.numel() == 0:
            extent.append(0)
            clipped.append(False)
            continue
        first, last = int(cells[0]), int(cells[-1])
        extent.append(last - first + 1)
        clipped.append(first == 0 or last == union.shape[axis] - 1)
    return ReceptiveField(size, whole, reasons, tuple(extent), tuple(clipped))


def _first_tensor(output: Any) -> torch.Tensor:
    """The model's first output tensor (a multitask model's ``segmentation``)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (list, tuple)) and output:
        return _first_tensor(output[0])
    raise TypeError(f"the model returned {type(output).__name__}, not a tensor")


def _global_reason(module: nn.Module) -> str:
    if isinstance(module, nn.GroupNorm):
        return "group norm statistics"
    if isinstance(module, _INSTANCE) and not module.track_running_stats:
        return "instance norm statistics"
    if isinstance(module, FracTALAttention):
        return "FracTAL channel attention"
    if isinstance(module, PSPPooling):
        return "PSP pooling"
    if isinstance(module, _ADAPTIVE):
        return "global pooling"
    return ""


def _hold_global_statistics(model: nn.Module) -> list[torch.utils.hooks.RemovableHandle]:
    """Forward hooks that recompute each global operation with its statistics detached (same local paths)."""
    hooks = []
    for module in model.modules():
        replace: Callable[[Any, tuple[Any, ...], Any], Any] | None = None
        if isinstance(module, nn.GroupNorm):
            replace = _group_norm_held
        elif isinstance(module, _INSTANCE) and not module.track_running_stats:
            replace = _instance_norm_held
        elif isinstance(module, FracTALAttention):
            replace = _attention_held
        elif isinstance(module, PSPPooling):
            replace = _psp_held
        if replace is not None:
            hooks.append(module.register_forward_hook(replace))
    return hooks


def _open_paths(model: nn.Module) -> list[torch.utils.hooks.RemovableHandle]:
    """Forward hooks that keep each ReLU's, maxout's and max pool's values but pass the gradient to every
    cell they read (a straight-through gradient: its support is the layer's, not the winning cells')."""
    hooks = []
    for module in model.modules():
        if isinstance(module, (nn.ReLU, nn.ReLU6, nn.Hardtanh)):
            hooks.append(module.register_forward_hook(_through_elementwise))
        elif isinstance(module, Maxout):
            hooks.append(module.register_forward_hook(_through_maxout))
        elif isinstance(module, _MAX_POOL):
            hooks.append(module.register_forward_hook(_through_max_pool))
    return hooks


def _straight_through(output: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    return output.detach() + (surrogate - surrogate.detach())  # values of output, gradient of surrogate


def _through_elementwise(module: Any, args: tuple[Any, ...], output: Any) -> torch.Tensor:
    return _straight_through(output, args[0])


def _through_maxout(module: Any, args: tuple[Any, ...], output: Any) -> torch.Tensor:
    x = args[0]
    mean = x.reshape(x.shape[0], x.shape[1] // module.pieces, module.pieces, *x.shape[2:]).mean(2)
    return _straight_through(output, mean)


def _through_max_pool(module: Any, args: tuple[Any, ...], output: Any) -> torch.Tensor:
    x = args[0]
    average = _AVG_POOL[x.dim() - 2](x, module.kernel_size, module.stride, module.padding, module.ceil_mode)
    return _straight_through(output, average)


def _normalise_held(x: torch.Tensor, groups: int, eps: float) -> torch.Tensor:
    rows = x.reshape(x.shape[0], groups, -1)
    mean = rows.mean(-1, keepdim=True).detach()
    var = rows.var(-1, unbiased=False, keepdim=True).detach()
    return ((rows - mean) / torch.sqrt(var + eps)).reshape(x.shape)


def _affine(y: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None) -> torch.Tensor:
    shape = (1, -1, *[1] * (y.dim() - 2))
    if weight is not None:
        y = y * weight.view(shape)
    if bias is not None:
        y = y + bias.view(shape)
    return y


def _group_norm_held(module: Any, args: tuple[Any, ...], output: Any) -> torch.Tensor:
    y = _normalise_held(args[0], module.num_groups, module.eps)
    return _affine(y, module.weight, module.bias)


def _instance_norm_held(module: Any, args: tuple[Any, ...], output: Any) -> torch.Tensor:
    y = _normalise_held(args[0], args[0].shape[1], module.eps)
    return _affine(y, module.weight, module.bias)


def _attention_held(module: Any, args: tuple[Any, ...], output: Any) -> torch.Tensor:
    q_src = args[0]
    k_src = args[1] if len(args) > 1 and args[1] is not None else q_src
    v_src = args[2] if len(args) > 2 and args[2] is not None else k_src
    q = torch.sigmoid(module.query(q_src))
    k = torch.sigmoid(module.key(k_src))
    v = torch.sigmoid(module.value(v_src))
    spatial, channel = fractal_similarity_maps(q, k, module.depth, module.smooth)
    return module.norm(0.5 * v * (spatial + channel.detach()))  # the spatial map reduces over channels: local


def _psp_held(module: Any, args: tuple[Any, ...], output: Any) -> torch.Tensor:
    x = args[0]
    size = tuple(x.shape[2:])
    pool = _ADAPTIVE_MAX[len(size)]
    branches = [
        F.interpolate(conv(pool(x, 2**k)), size=size, mode="nearest").detach() for k, conv in enumerate(module.convs)
    ]
    return module.conv_final(torch.cat([x, *branches], dim=1))
