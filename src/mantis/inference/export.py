"""Export a model as safetensors + config.json, ONNX (checked with onnxruntime) and torch.export (.pt2)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, Unpack

import numpy as np
import torch
from torch import nn

from mantis.inference.checkpoint import ModelMeta, save_pretrained
from mantis.inference.errors import InputError
from mantis.inference.outputs import output_fields

FORMATS = ("safetensors", "onnx", "pt2")
ONNX_FILE = "model.onnx"
PT2_FILE = "model.pt2"


@dataclass(frozen=True)
class ExportSpec:
    """The shape of an exported graph and how closely it must match PyTorch.

    Args:
        window: input window, an int for every spatial axis or one per axis.
        batch_size: batch of the graph (with ``dynamic_batch``: the traced one, at least 2).
        dynamic_batch: let the batch dimension vary.
        opset: ONNX opset (default: the exporter's); ``torch.export`` ignores it.
        atol: largest absolute difference from PyTorch accepted on fresh inputs.
    """

    window: int | tuple[int, ...] = 256
    batch_size: int = 1
    dynamic_batch: bool = False
    opset: int | None = None
    atol: float = 1e-4

    def __post_init__(self) -> None:
        if isinstance(self.window, Sequence):  # lists from the CLI or configs: one side, or a hashable tuple
            window = tuple(int(w) for w in self.window)
            object.__setattr__(self, "window", window[0] if len(window) == 1 else window)

    @classmethod
    def build(cls, spec: ExportSpec | None = None, **changes: Any) -> ExportSpec:
        """``spec`` (default: the defaults) with the fields given as keywords replaced.

        Raises:
            TypeError: a keyword that is not a field, named in the message.
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(changes) - fields)
        if unknown:
            raise TypeError(f"unknown export option {unknown[0]!r}; choose from {', '.join(sorted(fields))}")
        return dataclasses.replace(spec if spec is not None else cls(), **changes)


class ExportArgs(TypedDict, total=False):
    """The fields of :class:`ExportSpec` as keywords of the export functions."""

    window: int | Sequence[int]
    batch_size: int
    dynamic_batch: bool
    opset: int | None
    atol: float


class TupleOutput(nn.Module):
    """Wraps a model so that it returns a plain tuple of its output fields (exporters' common ground).

    Args:
        model: the model to wrap.
        fields: the output fields to return, in order.
    """

    def __init__(self, model: nn.Module, fields: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.fields = list(fields)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The fields of ``model(*inputs)`` as a tuple, each N x K x S."""
        out = output_fields(self.model(*inputs))
        return tuple(out[f] for f in self.fields)


def example_inputs(
    meta: ModelMeta, window: int | Sequence[int], batch_size: int = 1, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """Random inputs of the exported shape: one or two N x C x W tensors (C from ``meta.in_channels``)."""
    if meta.in_channels is None:
        raise InputError("the model's config has no 'in_channels'; cannot build an example input to export")
    spatial_dims = int(meta.model_kwargs.get("spatial_dims", 2))
    win = (window,) * spatial_dims if isinstance(window, int) else tuple(window)
    g = torch.Generator().manual_seed(seed)
    shape = (batch_size, meta.in_channels, *win)
    return tuple(torch.rand(shape, generator=g) for _ in range(2 if meta.pair else 1))


def _fields(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[list[str], dict[str, torch.Tensor]]:
    with torch.inference_mode():
        out = output_fields(model(*inputs))
    return list(out), out


def _dynamic_shapes(inputs: tuple[torch.Tensor, ...], dynamic_batch: bool) -> Any:
    if not dynamic_batch:
        return None
    batch = torch.export.Dim("batch", min=1, max=4096)
    return (tuple({0: batch} for _ in inputs),)  # one entry: the wrapper takes the inputs as *inputs


def _input_names(n: int) -> list[str]:
    return ["x"] if n == 1 else ["x1", "x2"]


def _compare(name: str, got: Sequence[np.ndarray], want: dict[str, torch.Tensor], atol: float) -> float:
    worst = 0.0
    for (field, w), g in zip(want.items(), got):
        worst = max(worst, float(np.abs(np.asarray(g) - w.detach().cpu().numpy()).max()))
        if not worst <= atol:
            raise InputError(f"{name}: output {field!r} differs from PyTorch by {worst:.3g} (> {atol:g})")
    return worst


def _check_inputs(inputs: tuple[torch.Tensor, ...], dynamic_batch: bool) -> list[tuple[torch.Tensor, ...]]:
    # Check on fresh data, and on another batch size when the batch is meant to be dynamic.
    fresh = tuple(torch.rand_like(t) for t in inputs)
    checks = [fresh]
    if dynamic_batch:
        checks.append(tuple(torch.cat([t, t.flip(0)]) for t in fresh))
    return checks


def _prepare(
    model: nn.Module, meta: ModelMeta, spec: ExportSpec
) -> tuple[tuple[torch.Tensor, ...], list[str], TupleOutput]:
    """What both exporters start from: the example inputs, the model's output fields and the tuple wrapper."""
    # torch.export fixes a dimension of size 1, so a dynamic batch is traced with two
    inputs = example_inputs(meta, spec.window, max(spec.batch_size, 2) if spec.dynamic_batch else spec.batch_size)
    fields, _ = _fields(model, inputs)
    return inputs, fields, TupleOutput(model, fields).eval()


def _check_against_pytorch(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    run: Callable[[tuple[torch.Tensor, ...]], Sequence[np.ndarray]],
    path: str | os.PathLike[str],
    spec: ExportSpec,
) -> float:
    """Runs the export (``run(check_inputs) -> outputs``) and the model on fresh inputs; the worst difference.

    Raises:
        InputError: an output differs from PyTorch by more than ``atol``.
    """
    worst = 0.0
    for check in _check_inputs(inputs, spec.dynamic_batch):
        _, want = _fields(model, check)
        worst = max(worst, _compare(str(path), run(check), want, spec.atol))
    return worst


def export_onnx(
    model: nn.Module,
    meta: ModelMeta,
    path: str | os.PathLike[str],
    spec: ExportSpec | None = None,
    **changes: Unpack[ExportArgs],
) -> float:
    """Write an ONNX graph and check it with onnxruntime against PyTorch on random inputs.

    Inputs are named ``x`` (or ``x1``, ``x2``), shape N x C x W (N = ``batch_size`` unless ``dynamic_batch``);
    outputs are named after the model's fields (``segmentation``, ``boundary``...). ``spec`` (default:
    :class:`ExportSpec`'s defaults) with the fields given as keywords (``window=512``...) replaced sets the shape.

    Returns:
        The largest absolute difference between onnxruntime and PyTorch.

    Raises:
        InputError: the export fails or its outputs differ from PyTorch by more than ``atol``.
    """
    import onnxruntime as ort

    spec = ExportSpec.build(spec, **changes)
    model = model.eval()
    inputs, fields, wrapped = _prepare(model, meta, spec)
    names = _input_names(len(inputs))
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter narrates its steps on stdout
            torch.onnx.export(
                wrapped,
                inputs,
                str(path),
                dynamo=True,
                input_names=names,
                output_names=fields,
                dynamic_shapes=_dynamic_shapes(inputs, spec.dynamic_batch),
                opset_version=spec.opset,
                external_data=False,
                verbose=False,
            )
    except Exception as error:
        raise InputError(f"{path}: ONNX export failed ({_first_line(error)})") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(check: tuple[torch.Tensor, ...]) -> Sequence[np.ndarray]:
        return session.run(None, {n: t.numpy() for n, t in zip(names, check)})

    return _check_against_pytorch(model, inputs, run, path, spec)


def export_program(
    model: nn.Module,
    meta: ModelMeta,
    path: str | os.PathLike[str],
    spec: ExportSpec | None = None,
    **changes: Unpack[ExportArgs],
) -> float:
    """Write a ``torch.export`` program (.pt2) returning a tuple of the output fields, and check it.

    The field names and the model config are stored in the archive as ``fields.json`` and ``config.json``
    (read them with ``torch.export.load(path, extra_files={"fields.json": "", "config.json": ""})``).

    Returns:
        The largest absolute difference between the reloaded program and the model.
    """
    spec = ExportSpec.build(spec, **changes)
    model = model.eval()
    inputs, fields, wrapped = _prepare(model, meta, spec)
    try:
        program = torch.export.export(wrapped, inputs, dynamic_shapes=_dynamic_shapes(inputs, spec.dynamic_batch))
        extra = {"fields.json": json.dumps(fields), "config.json": json.dumps(meta.to_config())}
        torch.export.save(program, str(path), extra_files=extra)
    except Exception as error:
        raise InputError(f"{path}: torch.export failed ({_first_line(error)})") from None
    loaded = torch.export.load(str(path)).module()

    def run(check: tuple[torch.Tensor, ...]) -> Sequence[np.ndarray]:
        with torch.inference_mode():
            return [t.numpy() for t in loaded(*check)]

    return _check_against_pytorch(model, inputs, run, path, spec)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line if len(line) <= 200 else line[:197] + "..."


def export_model(
    model: nn.Module,
    meta: ModelMeta,
    directory: str | os.PathLike[str],
    formats: Sequence[str] = FORMATS,
    spec: ExportSpec | None = None,
    **changes: Unpack[ExportArgs],
) -> dict[str, Path]:
    """Export ``model`` into ``directory`` in each of ``formats`` (safetensors always writes config.json);
    ``spec`` and the keywords as for :func:`export_onnx`.

    Returns:
        Format -> file written (``safetensors`` -> the weights file; the directory loads with
        :func:`mantis.inference.load_pretrained`).
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise InputError(f"unknown export format {unknown!r}; choose from {', '.join(FORMATS)}")
    spec = ExportSpec.build(spec, **changes)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    if "safetensors" in formats:
        written["safetensors"] = save_pretrained(model, meta, out) / "model.safetensors"
    if "onnx" in formats:
        export_onnx(model, meta, out / ONNX_FILE, spec)
        written["onnx"] = out / ONNX_FILE
    if "pt2" in formats:
        export_program(model, meta, out / PT2_FILE, spec)
        written["pt2"] = out / PT2_FILE
    return written
