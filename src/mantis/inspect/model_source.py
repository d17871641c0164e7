"""The model a command inspects: a checkpoint (or export folder), or a registry name with JSON arguments."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch.nn as nn

from mantis.models.registry import create_model


@dataclass
class ModelSource:
    """What was built: the registry name, its arguments, the model and (from a checkpoint) its band statistics."""

    name: str
    kwargs: dict[str, Any]
    model: nn.Module
    band_mean: list[float] | None = None
    band_std: list[float] | None = None


def model_kwargs_from_json(text: str) -> dict[str, Any]:
    """``--model_kwargs``: a JSON object, else a ValueError in words."""
    try:
        kwargs = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--model_kwargs {text!r}: not JSON ({error})") from None
    if not isinstance(kwargs, dict):
        raise ValueError("--model_kwargs must be a JSON object, e.g. '{\"nf\": 16}'")
    return kwargs


def load_model_source(
    checkpoint: str | None,
    model: str | None,
    model_kwargs: str = "{}",
    adjust: Callable[[dict[str, Any]], None] | None = None,
) -> ModelSource:
    """Exactly one of ``checkpoint`` and ``model`` (with ``model_kwargs``, JSON); one-line ValueErrors.

    ``adjust`` may change a ``--model``'s arguments before it is built (e.g. from the probe's shape).
    """
    if (checkpoint is None) == (model is None):
        raise ValueError("give a checkpoint or --model NAME (one of them)")
    if checkpoint is not None:
        from mantis.inference.checkpoint import load_model

        network, meta = load_model(checkpoint)
        if meta.model is None:
            raise ValueError(f"{checkpoint}: the model's registry name is not recorded")
        return ModelSource(meta.model, dict(meta.model_kwargs), network, meta.band_mean, meta.band_std)
    assert model is not None
    kwargs = model_kwargs_from_json(model_kwargs)
    if adjust is not None:
        adjust(kwargs)
    return ModelSource(model, kwargs, create_model(model, **kwargs))
