"""Model registry: ``create_model(name, **kwargs)`` and ``list_models()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch.nn as nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(name: str) -> Callable[[F], F]:
    """Decorator that registers a model constructor under ``name``."""

    def wrap(fn: F) -> F:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = fn
        return fn

    return wrap


def _load_builtin() -> None:
    # Importing the families fills the registry through their decorators.
    import mantis.models.families  # noqa: F401


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    _load_builtin()
    return sorted(_MODELS)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the model registered as ``name`` with keyword arguments ``kwargs``."""
    _load_builtin()
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(sorted(_MODELS))}")
    return _MODELS[name](**kwargs)
