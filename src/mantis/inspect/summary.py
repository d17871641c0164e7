"""``mantis summary``: a table of a model's parts with their parameters and output shapes."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from mantis.models.registry import count_inputs, create_model, list_models, model_info

__all__ = ["count_inputs", "format_table", "summarize"]

__all__ = ["ModuleRow", "main", "summarize"]


@dataclass
class ModuleRow:
    """One line of the summary: a module's dotted name, class, own parameter count and output shape."""

    name: str
    kind: str
    params: int
    output: str


def _shape(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return "x".join(str(s) for s in value.shape)
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_shape(v) for v in value) + ")"
    return type(value).__name__


def summarize(model: nn.Module, inputs: Sequence[torch.Tensor], depth: int = 2) -> tuple[list[ModuleRow], Any]:
    """Run ``model(*inputs)`` once and describe its modules down to ``depth`` levels.

    Args:
        model: any network.
        inputs: its input tensors, B x C x S each.
        depth: how many levels of sub-modules to list (1 = direct children).

    Returns:
        The rows (in registration order; shapes of modules run several times are those of the last call)
        and the model's output.
    """
    rows: dict[str, ModuleRow] = {}
    hooks = []
    for name, module in model.named_modules():
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
    return list(rows.values()), output


def format_table(rows: Sequence[ModuleRow], total: int, output: Any) -> str:
    """The summary as aligned text."""
    header = ModuleRow("module", "type", 0, "output")
    width_name = max(len(r.name) + 2 * r.name.count(".") for r in [header, *rows])
    width_kind = max(len(r.kind) for r in [header, *rows])
    lines = [f"{'module':<{width_name}}  {'type':<{width_kind}}  {'params':>12}  output"]
    lines.append("-" * len(lines[0]) + "-" * 20)
    for r in rows:
        label = "  " * r.name.count(".") + r.name
        lines.append(f"{label:<{width_name}}  {r.kind:<{width_kind}}  {r.params:>12,}  {r.output}")
    lines.append("-" * len(lines[1]))
    lines.append(f"total parameters: {total:,}")
    if hasattr(output, "_fields"):
        lines.append("outputs: " + ", ".join(f"{k} {_shape(v)}" for k, v in output._asdict().items()))
    else:
        lines.append(f"output: {_shape(output)}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mantis summary", description=__doc__)
    parser.add_argument("--model", required=True, help=f"registry name: {', '.join(list_models())}")
    parser.add_argument("--model_kwargs", default="{}", help="JSON object of model arguments, e.g. '{\"nf\": 16}'")
    parser.add_argument(
        "--size", type=int, nargs="+", default=[256], help="input size: one value for every spatial axis, or one each"
    )
    parser.add_argument("--batch", type=int, default=1, help="batch size of the probe input")
    parser.add_argument("--depth", type=int, default=2, help="levels of sub-modules to list")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Print the summary of ``--model`` built with ``--model_kwargs`` for an input of ``--size``."""
    from mantis.commands import run_command

    return run_command("mantis summary", lambda: _summary(_parser().parse_args(argv)))


def _summary(args: argparse.Namespace) -> int:
    kwargs = json.loads(args.model_kwargs)
    if not isinstance(kwargs, dict):
        raise ValueError("--model_kwargs must be a JSON object")
    model = create_model(args.model, **kwargs)
    n_inputs = count_inputs(model)
    if not model_info(args.model).spatial_dims:  # feature vectors (tables)
        probe = torch.zeros(args.batch, int(kwargs.get("in_channels", 16)))
    else:
        dims = int(kwargs.get("spatial_dims", 2))
        size = args.size * dims if len(args.size) == 1 else args.size
        if len(size) != dims:
            raise ValueError(f"--size needs 1 or {dims} values for spatial_dims={dims}, got {len(size)}")
        channels = int(kwargs.get("in_channels", getattr(model, "in_channels", 3)))
        probe = torch.zeros(args.batch, channels, *size)
    rows, output = summarize(model, [probe] * n_inputs, args.depth)
    total = sum(p.numel() for p in model.parameters())
    print(f"{args.model} {json.dumps(kwargs)}; input {'x'.join(str(s) for s in probe.shape)} x {n_inputs}")
    print(format_table(rows, total, output))
    return 0
