"""``mantis summary``: a table of a model's parts with their parameters and output shapes."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from mantis.commands import command_parser
from mantis.inspect.model_source import load_model_source
from mantis.inspect.receptive_field import ReceptiveField, receptive_field
from mantis.models.registry import count_inputs, list_models, model_info
from mantis.nn.pooling import PSPPooling

__all__ = ["ModuleRow", "format_table", "layer_macs", "main", "summarize"]


@dataclass
class ModuleRow:
    """One line of the summary: a module's dotted name, class, parameter count, output shape, and the
    multiply-adds of its convolutions and linear layers (summed over every call)."""

    name: str
    kind: str
    params: int
    output: str
    macs: int = 0


_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def layer_macs(module: nn.Module, inputs: Sequence[Any], output: Any) -> int:
    """Multiply-adds of one call of a convolution, transposed convolution or linear layer (0 for others):
    every output value of a convolution takes ``in_channels / groups x kernel volume`` of them; every input
    value of a transposed one spreads over ``out_channels / groups x kernel volume``."""
    if isinstance(module, _CONV) and isinstance(output, torch.Tensor):
        kernel = int(torch.tensor(module.kernel_size).prod())
        return output.numel() * (module.in_channels // module.groups) * kernel
    if isinstance(module, _TRANSPOSED) and isinstance(inputs[0], torch.Tensor):
        kernel = int(torch.tensor(module.kernel_size).prod())
        return inputs[0].numel() * (module.out_channels // module.groups) * kernel
    if isinstance(module, nn.Linear) and isinstance(output, torch.Tensor):
        return output.numel() * module.in_features
    if isinstance(module, PSPPooling) and module.conv_on_pooled and isinstance(inputs[0], torch.Tensor):
        return _psp_merge_macs(module, inputs[0])
    return 0


def _psp_merge_macs(module: PSPPooling, x: torch.Tensor) -> int:
    """The final 1x1 convolution that PSP pooling computes with ``F.conv`` on weight slices (not a module
    call): the input's slice at full size, each branch's slice on its pooled map (2^k cells per axis)."""
    batch, in_x, *size = x.shape
    final: Any = module.conv_final  # ConvNormed: .conv is the Conv module
    branches: list[Any] = list(module.convs)
    out = int(final.conv.out_channels)
    macs = batch * math.prod(size) * out * in_x
    for k, branch in enumerate(branches):
        macs += batch * (2**k) ** len(size) * out * int(branch.conv.out_channels)
    return int(macs)


@dataclass
class Totals:
    """Whole-model figures of one forward pass."""

    params: int
    macs: int
    activation_values: int  # output values of every leaf module (what training keeps for the backward pass)
    receptive_field: ReceptiveField | None = None  # of one centre output cell (None: not measured, or no space)


def _shape(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return "x".join(str(s) for s in value.shape)
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_shape(v) for v in value) + ")"
    return type(value).__name__


def summarize(
    model: nn.Module, inputs: Sequence[torch.Tensor], depth: int = 2, *, measure_receptive_field: bool = True
) -> tuple[list[ModuleRow], Any, Totals]:
    """Run ``model(*inputs)`` once and describe its modules down to ``depth`` levels.

    Args:
        model: any network.
        inputs: its input tensors, B x C x S each.
        depth: how many levels of sub-modules to list (1 = direct children).
        measure_receptive_field: also measure the receptive field of one centre output cell (one or two more
            forward and backward passes of a float64 copy: :func:`mantis.inspect.receptive_field`).

    Returns:
        The rows (in registration order; shapes of modules run several times are those of the last call,
        multiply-adds the sum over calls), the model's output and the whole model's totals.
    """
    rows: dict[str, ModuleRow] = {}
    names = {module: name for name, module in model.named_modules()}
    hooks = []
    totals = Totals(sum(p.numel() for p in model.parameters()), 0, 0)

    def count(mod: nn.Module, args: Any, out: Any) -> None:
        macs = layer_macs(mod, args, out)
        totals.macs += macs
        if not any(True for _ in mod.children()):
            totals.activation_values += sum(t.numel() for t in _tensors(out))
        name = names.get(mod, "")
        parts = name.split(".") if name else []
        for level in range(1, min(len(parts), depth) + 1):  # credit every listed ancestor (and itself)
            key = ".".join(parts[:level])
            if key in rows:
                rows[key].macs += macs

    for name, module in model.named_modules():
        hooks.append(module.register_forward_hook(count))
        if not name or name.count(".") >= depth:
            continue
        params = sum(p.numel() for p in module.parameters())
        rows[name] = ModuleRow(name, type(module).__name__, params, "-")

        def record(mod: nn.Module, args: Any, out: Any, key: str = name) -> None:
            rows[key].output = _shape(out)

        hooks.append(module.register_forward_hook(record))
    try:
        with torch.no_grad():
            output = model.eval()(*inputs)
    finally:
        for hook in hooks:
            hook.remove()
    if measure_receptive_field and inputs and inputs[0].dim() > 2:
        totals.receptive_field = receptive_field(model, inputs)
    return list(rows.values()), output, totals


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def _count(n: int) -> str:
    """1,234 / 12.3 M / 4.56 G."""
    for size, unit in ((1e9, "G"), (1e6, "M")):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:,}"


def format_table(rows: Sequence[ModuleRow], totals: Totals, output: Any, batch: int = 1) -> str:
    """The summary as aligned text."""
    width_name = max(len(r.name) + 2 * r.name.count(".") for r in [ModuleRow("module", "", 0, ""), *rows])
    width_kind = max(len(r.kind) for r in [ModuleRow("", "type", 0, ""), *rows])
    lines = [f"{'module':<{width_name}}  {'type':<{width_kind}}  {'params':>12}  {'mult-adds':>10}  output"]
    lines.append("-" * len(lines[0]) + "-" * 20)
    for r in rows:
        label = "  " * r.name.count(".") + r.name
        macs = _count(r.macs) if r.macs else "-"
        lines.append(f"{label:<{width_name}}  {r.kind:<{width_kind}}  {r.params:>12,}  {macs:>10}  {r.output}")
    lines.append("-" * len(lines[1]))
    lines.append(f"total parameters: {totals.params:,}")
    lines.append(
        f"multiply-adds (convolutions and linear layers), batch {batch}: {_count(totals.macs)} "
        f"({_count(totals.macs // max(batch, 1))} per sample)"
    )
    if totals.activation_values:
        mib = totals.activation_values / 2**20
        lines.append(
            f"activations kept for training (outputs of every layer), batch {batch}: "
            f"{4 * mib:,.1f} MiB in float32, {2 * mib:,.1f} MiB in bfloat16"
        )
    if totals.receptive_field is not None:
        lines.append(f"receptive field of one centre output cell: {totals.receptive_field.describe()}")
    if hasattr(output, "_fields"):
        lines.append("outputs: " + ", ".join(f"{k} {_shape(v)}" for k, v in output._asdict().items()))
    else:
        lines.append(f"output: {_shape(output)}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = command_parser("mantis summary", __doc__)
    parser.add_argument("checkpoint", nargs="?", help="a .ckpt or an export folder (or give --model)")
    parser.add_argument("--model", help=f"registry name: {', '.join(list_models())}")
    parser.add_argument("--model_kwargs", default="{}", help="JSON object of model arguments, e.g. '{\"nf\": 16}'")
    parser.add_argument(
        "--size", type=int, nargs="+", default=[256], help="input size: one value for every spatial axis, or one each"
    )
    parser.add_argument(
        "--input",
        type=_input_shape,
        help="bands and spatial sizes of the probe, e.g. 3x256x256 (2D), 1x512 (1D), 2x64x64x64 (3D); "
        "sets the model's in_channels and spatial_dims where --model_kwargs does not (instead of --size)",
    )
    parser.add_argument("--spatial-dims", type=int, choices=(1, 2, 3), help="build --model in 1, 2 or 3 dimensions")
    parser.add_argument("--batch", type=int, default=1, help="batch size of the probe input")
    parser.add_argument("--depth", type=int, default=2, help="levels of sub-modules to list")
    parser.add_argument(
        "--no-receptive-field",
        dest="receptive_field",
        action="store_false",
        help="skip the receptive field measurement (one or two float64 forward and backward passes)",
    )
    return parser


def _input_shape(text: str) -> list[int]:
    """``"3x256x256"`` -> ``[3, 256, 256]``: bands, then one size per spatial axis (1 to 3 of them)."""
    try:
        values = [int(part) for part in text.lower().split("x")]
    except ValueError:
        values = []
    if not 2 <= len(values) <= 4 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give bands and 1-3 sizes joined by x, e.g. 3x256x256")
    return values


def _apply_input_options(args: argparse.Namespace, kwargs: dict[str, Any]) -> None:
    """``--input`` and ``--spatial-dims`` into the model arguments (those given in ``--model_kwargs`` win only
    when they agree; a disagreement is named)."""
    wanted: dict[str, int] = {}
    if args.input is not None:
        wanted = {"in_channels": args.input[0], "spatial_dims": len(args.input) - 1}
    if args.spatial_dims is not None:
        if wanted and wanted["spatial_dims"] != args.spatial_dims:
            raise ValueError(f"--input has {wanted['spatial_dims']} sizes but --spatial-dims is {args.spatial_dims}")
        wanted["spatial_dims"] = args.spatial_dims
    for key, value in wanted.items():
        if key in kwargs and kwargs[key] != value:
            raise ValueError(f"--model_kwargs sets {key}={kwargs[key]} but the input asks for {value}")
        kwargs[key] = value


def main(argv: Sequence[str] | None = None) -> int:
    """Print the summary of a checkpoint's model, or of ``--model`` built with ``--model_kwargs``, for an input
    of ``--size``."""
    from mantis.commands import run_command

    return run_command("mantis summary", lambda: _summary(_parser().parse_args(argv)))


def _model(args: argparse.Namespace) -> tuple[str, dict[str, Any], nn.Module]:
    """The registry name, arguments and model of ``--model``/``--model_kwargs`` or of the checkpoint."""
    source = load_model_source(
        args.checkpoint, args.model, args.model_kwargs, lambda kw: _apply_input_options(args, kw)
    )
    if args.checkpoint is not None:  # the checkpoint's model is fixed: only agreement with --input is checked
        recorded = dict(source.kwargs)
        recorded.setdefault("in_channels", getattr(source.model, "in_channels", 3))
        recorded.setdefault("spatial_dims", getattr(source.model, "spatial_dims", 2))
        _apply_input_options(args, recorded)
    return source.name, source.kwargs, source.model


def _summary(args: argparse.Namespace) -> int:
    if args.batch < 1:
        raise ValueError(f"--batch {args.batch}: give at least 1")
    if min(args.size) < 1:
        raise ValueError(f"--size {' '.join(map(str, args.size))}: sizes must be at least 1")
    name, kwargs, model = _model(args)
    n_inputs = count_inputs(model)
    if not model_info(name).spatial_dims:  # feature vectors (tables)
        probe = torch.zeros(args.batch, int(kwargs.get("in_channels", 16)))
    else:
        dims = int(kwargs.get("spatial_dims", getattr(model, "spatial_dims", 2)))
        size = args.input[1:] if args.input is not None else args.size * dims if len(args.size) == 1 else args.size
        if len(size) != dims:
            raise ValueError(f"--size needs 1 or {dims} values for spatial_dims={dims}, got {len(size)}")
        channels = int(kwargs.get("in_channels", getattr(model, "in_channels", 3)))
        probe = torch.zeros(args.batch, channels, *size)
    rows, output, totals = summarize(
        model, [probe] * n_inputs, args.depth, measure_receptive_field=args.receptive_field
    )
    print(f"{name} {json.dumps(kwargs)}; input {'x'.join(str(s) for s in probe.shape)} x {n_inputs}")
    print(format_table(rows, totals, output, args.batch))
    return 0
