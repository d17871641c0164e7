"""Model outputs as named fields: a tensor, a NamedTuple (``segmentation`` first) or a dict of tensors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Union

import torch

from mantis.inference.errors import InputError

ModelOutput = Union[torch.Tensor, tuple[torch.Tensor, ...], Mapping[str, torch.Tensor]]

#: The field name under which a single-tensor output is handled.
TENSOR_FIELD = "segmentation"


def output_fields(out: Any) -> dict[str, torch.Tensor]:
    """The fields of a model output by name: ``{"segmentation": out}`` for a tensor."""
    if isinstance(out, torch.Tensor):
        return {TENSOR_FIELD: out}
    if isinstance(out, tuple) and hasattr(out, "_fields"):
        return {name: value for name, value in zip(out._fields, out) if isinstance(value, torch.Tensor)}
    if isinstance(out, Mapping):
        return {str(k): v for k, v in out.items() if isinstance(v, torch.Tensor)}
    raise TypeError(f"model output must be a tensor, a NamedTuple or a dict of tensors, got {type(out).__name__}")


def rebuild_output(template: Any, fields: Mapping[str, torch.Tensor]) -> ModelOutput:
    """An output of the same kind as ``template`` (tensor, NamedTuple class, dict) holding ``fields``."""
    if isinstance(template, torch.Tensor):
        return fields[TENSOR_FIELD]
    if isinstance(template, tuple) and hasattr(template, "_fields"):
        return type(template)(**{name: fields[name] for name in template._fields})
    return dict(fields)


def select_fields(available: Sequence[str], wanted: Sequence[str] | None) -> list[str]:
    """Check the ``wanted`` output fields exist; ``None`` means all of them."""
    if wanted is None:
        return list(available)
    missing = [w for w in wanted if w not in available]
    if missing:
        raise InputError(f"the model has no output {', '.join(map(repr, missing))}; it gives {', '.join(available)}")
    return list(dict.fromkeys(wanted))


def mean_outputs(outputs: Sequence[Any]) -> ModelOutput:
    """The field-wise mean of several outputs of the same kind (an ensemble's or TTA's average)."""
    if not outputs:
        raise ValueError("nothing to average")
    fields = [output_fields(o) for o in outputs]
    names = list(fields[0])
    mean = {n: torch.stack([f[n] for f in fields]).mean(dim=0) for n in names}
    return rebuild_output(outputs[0], mean)
