"""What a network computes, as arrays: feature maps per level, FracTAL attention maps, gates, first-layer
filters, input-gradient saliency and activation maximisation. Drawing is in :mod:`mantis.inspect.figures`.

Everything here reads a model from outside (forward hooks, gradients); nothing changes it. Tensors come back
detached, on the CPU, for the first sample of the batch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from mantis.nn.activations import SigmoidCrisp
from mantis.nn.attention import FracTALAttention, fractal_similarity_maps

__all__ = [
    "AttentionMaps",
    "FeatureMap",
    "Maximised",
    "attention_maps",
    "feature_maps",
    "first_layer_filters",
    "gates",
    "maximise_activation",
    "output_tensors",
    "saliency",
    "selected",
]

# The modules whose outputs are a U-Net's levels: the stem, each encoder and decoder unit, the bridge.
_STAGE = re.compile(r"(stem|bridge|(encoder|decoder)[._]units\.\d+)")
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class FeatureMap:
    """The output of one stage for the first sample: ``values`` C x S; ``call`` counts repeated calls (the
    encoder of a change detector runs once per date)."""

    name: str
    values: torch.Tensor
    call: int = 1

    @property
    def label(self) -> str:
        """``encoder.units.0`` or ``encoder.units.0 (call 2)``."""
        return self.name if self.call == 1 else f"{self.name} (call {self.call})"


@dataclass(frozen=True)
class AttentionMaps:
    """The two similarity maps of one FracTAL attention call (first sample): ``spatial`` S (the similarity of
    query and key at each position, over channels) and ``channel`` C (per channel, over positions)."""

    name: str
    spatial: torch.Tensor
    channel: torch.Tensor
    call: int = 1

    @property
    def label(self) -> str:
        """The module's name, with the call number when it ran more than once."""
        return self.name if self.call == 1 else f"{self.name} (call {self.call})"


@contextmanager
def _hooks(modules: Sequence[tuple[str, nn.Module]], hook: Callable[[str, Any, Any], None]) -> Iterator[None]:
    handles = [
        module.register_forward_hook(lambda _m, args, out, name=name: hook(name, args, out)) for name, module in modules
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def selected(name: str, units: Sequence[str] | None) -> bool:
    """Whether module ``name`` is one of ``units`` or inside one (``encoder`` selects ``encoder.units.0``,
    not ``encoder_fusion``); every module when ``units`` is empty."""
    return not units or any(name == u or name.startswith(u.rstrip(".") + ".") for u in units)


def output_tensors(output: Any) -> dict[str, torch.Tensor]:
    """A model's outputs by field name (``segmentation``, ``boundary``, ...; ``logits`` for a plain tensor)."""
    if isinstance(output, torch.Tensor):
        return {"logits": output}
    if hasattr(output, "_asdict"):
        return {k: v for k, v in output._asdict().items() if isinstance(v, torch.Tensor)}
    if isinstance(output, (list, tuple)):
        return {f"output {i}": v for i, v in enumerate(output) if isinstance(v, torch.Tensor)}
    raise TypeError(f"the model returned {type(output).__name__}, not tensors")


def stage_names(model: nn.Module) -> list[str]:
    """The modules whose outputs are the model's levels: ``stem``, ``encoder.units.N``, ``bridge``,
    ``decoder.units.N`` (also ``encoder_units.N``); empty for a model without them."""
    return [name for name, _ in model.named_modules() if _STAGE.fullmatch(name)]


def feature_maps(model: nn.Module, inputs: Sequence[torch.Tensor]) -> tuple[list[FeatureMap], Any]:
    """The feature maps of every level, in the order they are computed, and the model's output.

    Levels are the outputs of :func:`stage_names`; a model without named stages (a ``Sequential``) gives,
    for each resolution its top-level layers pass through, the last output at that resolution.
    """
    names = stage_names(model)
    modules = dict(model.named_modules())
    fallback = not names
    if fallback:
        names = [name for name, _ in model.named_children()]
    captured: list[FeatureMap] = []
    calls: dict[str, int] = {}

    def keep(name: str, args: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor) and out.dim() > 2:
            calls[name] = calls.get(name, 0) + 1
            captured.append(FeatureMap(name, out[0].detach().float().cpu(), calls[name]))

    with _hooks([(n, modules[n]) for n in names], keep), torch.no_grad():
        output = model.eval()(*inputs)
    if fallback:  # one map per resolution: the last of each run of equal sizes, larger than one cell
        runs = [
            m
            for i, m in enumerate(captured)
            if i + 1 == len(captured) or captured[i + 1].values.shape[1:] != m.values.shape[1:]
        ]
        captured = [m for m in runs if m.values[0].numel() > 1]
    return captured, output


def attention_maps(
    model: nn.Module, inputs: Sequence[torch.Tensor], units: Sequence[str] | None = None
) -> list[AttentionMaps]:
    """The spatial and channel similarity maps of the FracTAL attention modules (all, or those in ``units``:
    see :func:`selected`), recomputed from each call's inputs by a forward hook."""
    chosen = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, FracTALAttention) and selected(name, units)
    ]
    found: list[AttentionMaps] = []
    calls: dict[str, int] = {}
    modules = dict(chosen)

    def keep(name: str, args: Any, out: Any) -> None:
        module: Any = modules[name]
        q_src = args[0]
        k_src = args[1] if len(args) > 1 and args[1] is not None else q_src
        q = torch.sigmoid(module.query(q_src))
        k = torch.sigmoid(module.key(k_src))
        spatial, channel = fractal_similarity_maps(q[:1], k[:1], module.depth, module.smooth)
        calls[name] = calls.get(name, 0) + 1
        found.append(AttentionMaps(name, spatial[0, 0].float().cpu(), channel[0].flatten().float().cpu(), calls[name]))

    with _hooks(chosen, keep), torch.no_grad():
        model.eval()(*inputs)
    return found


def gates(model: nn.Module) -> list[tuple[str, float]]:
    """Every learned scalar gate: the ``gamma`` of FracTAL units and ``gamma1``/``gamma2`` of the attention
    fusions (0 at initialisation: the attention's share of the unit's output), with its parameter name."""
    crisp = {name for name, module in model.named_modules() if isinstance(module, SigmoidCrisp)}
    found = []
    for name, p in model.named_parameters():
        owner, _, leaf = name.rpartition(".")
        if p.numel() == 1 and leaf.startswith("gamma") and owner not in crisp:
            found.append((name, float(p.detach())))
    return found


def first_layer_filters(model: nn.Module) -> tuple[str, torch.Tensor]:
    """The first convolution's name and weights, C_out x C_in/groups x k..."""
    for name, module in model.named_modules():
        if isinstance(module, _CONV):
            return name, module.weight.detach().float().cpu()
    raise ValueError("the model has no convolution: no filters to draw")


def _objective_output(output: Any, class_index: int, pixel: Sequence[int] | None) -> torch.Tensor:
    """The value of class ``class_index`` of the first output field at ``pixel`` (all pixels summed if
    ``None``), for the first sample."""
    first = next(iter(output_tensors(output).values()))
    if not 0 <= class_index < first.shape[1]:
        raise ValueError(
            f"--class {class_index}: the model has {first.shape[1]} output channels (0 to {first.shape[1] - 1})"
        )
    values = first[0, class_index]
    if pixel is None or values.dim() == 0:
        return values.sum()
    if len(pixel) != values.dim() or not all(0 <= p < n for p, n in zip(pixel, values.shape)):
        size = "x".join(map(str, values.shape))
        raise ValueError(f"--pixel {','.join(map(str, pixel))}: the output is {size} cells")
    return values[tuple(pixel)]


def saliency(
    model: nn.Module, inputs: Sequence[torch.Tensor], class_index: int, pixel: Sequence[int] | None = None
) -> list[torch.Tensor]:
    """Input-gradient saliency: ``|d output / d input|``, the largest over bands, one S map per input.

    The output is class ``class_index`` of the model's first field at ``pixel`` (or summed over every
    pixel), for the first sample.
    """
    xs = [x[:1].detach().clone().requires_grad_(True) for x in inputs]
    target = _objective_output(model.eval()(*xs), class_index, pixel)
    grads = torch.autograd.grad(target, xs, allow_unused=True)
    return [torch.zeros(x.shape[2:]) if g is None else g[0].abs().amax(0).float().cpu() for x, g in zip(xs, grads)]


@dataclass
class Maximised:
    """Inputs found by :func:`maximise_activation` (C x S each) and the objective along the way."""

    images: list[torch.Tensor]
    start: float  # the objective for the initial noise
    end: float  # for the final images
    history: list[float] = field(default_factory=list)


def _blur(x: torch.Tensor) -> torch.Tensor:
    """A [1, 2, 1] / 4 blur along every spatial axis, per band (the image prior's smoothing)."""
    taps = torch.tensor([0.25, 0.5, 0.25], dtype=x.dtype, device=x.device)
    dims = x.dim() - 2
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[dims]
    for axis in range(dims):
        shape = [1] * dims
        shape[axis] = 3
        weight = taps.view(1, 1, *shape).repeat(x.shape[1], 1, *[1] * dims)
        pad = [0, 0] * dims
        pad[2 * (dims - 1 - axis)] = pad[2 * (dims - 1 - axis) + 1] = 1
        x = conv(F.pad(x, pad, mode="replicate"), weight, groups=x.shape[1])
    return x


def maximise_activation(
    model: nn.Module,
    inputs: Sequence[torch.Tensor],
    *,
    layer: str | None = None,
    channel: int = 0,
    steps: int = 64,
    lr: float = 0.05,
    decay: float = 1e-3,
    blur_every: int = 4,
    jitter: int = 2,
    seed: int = 0,
) -> Maximised:
    """Gradient ascent from noise on the input: the pattern that most excites one channel or one class.

    The objective is the mean of channel ``channel`` of module ``layer``'s output (over all its calls), or, with
    ``layer=None``, the mean over space of class ``channel`` of the model's first output field. The prior
    keeps the image natural-looking: L2 decay, a blur every ``blur_every`` steps and a random shift of up to
    ``jitter`` cells per step. Seeded, a fixed number of steps; the model is in eval mode and not changed.

    Args:
        model: the network.
        inputs: tensors whose shapes (B x C x S) the found inputs take (one per model input).
        layer: a module name (``model.named_modules()``), or ``None`` for a class of the output.
        channel: the channel of ``layer``, or the class.
        steps, lr, decay, blur_every, jitter: the ascent and its prior.
        seed: seed of the initial noise and the shifts.
    """
    modules = dict(model.named_modules())
    if layer is not None and layer not in modules:
        raise ValueError(f"--layer {layer!r}: no such module (see `mantis summary` for the names)")
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    trainable = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    xs = [(0.1 * torch.randn((1, *x.shape[1:]), generator=generator)).to(x.device).requires_grad_(True) for x in inputs]

    def objective(images: Sequence[torch.Tensor]) -> torch.Tensor:
        if layer is None:
            first = next(iter(output_tensors(model(*images)).values()))
            if not 0 <= channel < first.shape[1]:
                raise ValueError(f"--channel {channel}: the output has {first.shape[1]} classes")
            return first[:, channel].mean()
        seen: list[Any] = []

        def keep(_name: str, _args: Any, out: Any) -> None:
            seen.append(out)

        with _hooks([(layer, modules[layer])], keep):
            model(*images)
        if not seen or not all(isinstance(o, torch.Tensor) and o.dim() >= 2 for o in seen):
            raise ValueError(f"--layer {layer}: gives no tensor with channels (or does not run)")
        if not 0 <= channel < seen[0].shape[1]:
            raise ValueError(f"--channel {channel}: {layer} gives {seen[0].shape[1]} channels")
        # every call counts: a change detector's encoder runs once per date, and both dates are optimised
        return torch.stack([out[:, channel].mean() for out in seen]).mean()

    try:
        with torch.no_grad():
            start = float(objective(xs))
        history = []
        for step in range(steps):
            shifts = [int(s) for s in torch.randint(-jitter, jitter + 1, (xs[0].dim() - 2,), generator=generator)]
            axes = list(range(2, xs[0].dim()))
            value = objective([torch.roll(x, shifts, axes) for x in xs])
            grads = torch.autograd.grad(value, xs, allow_unused=True)  # a layer may see one date only
            history.append(float(value.detach()))
            with torch.no_grad():
                for x, g in zip(xs, grads):
                    if g is not None:
                        x.add_(lr * g / (g.abs().mean() + 1e-12))  # a normalised step: the same pace at any scale
                    x.mul_(1 - decay)
                    if blur_every and (step + 1) % blur_every == 0:
                        x.copy_(_blur(x))
        with torch.no_grad():
            end = float(objective(xs))
    finally:
        for p, flag in zip(model.parameters(), trainable):
            p.requires_grad_(flag)
    return Maximised([x[0].detach().cpu() for x in xs], start, end, history)
