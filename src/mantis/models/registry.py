"""Model registry: ``create_model(name, **kwargs)``, ``list_models()`` and what each model is (``model_info``).

Each entry keeps, next to its constructor, a :class:`ModelInfo`: whether the network takes one image or a
pair, the fields of its output, the spatial dimensions it runs in, a tiny configuration for tests and
examples, and its paper. Nothing else in Mantis infers a capability from a model's name.

This module imports no model: the model modules import it to register, and ``mantis.models`` imports them
all, so any ``import mantis.models.registry`` finds the built-in models registered.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

import torch.nn as nn

MULTITASK = ("segmentation", "boundary", "distance")
LOGITS = ("logits",)


@dataclass(frozen=True)
class ModelInfo:
    """What a registered model is, kept beside its constructor.

    Attributes:
        name: registry name.
        inputs: tensors the forward pass takes: 1 (an image) or 2 (the two dates of a pair).
        outputs: fields of the output: ``segmentation, boundary, distance`` (multitask heads, class
            probabilities), plus ``color`` for ResUNet-a; ``logits`` for a single head of raw scores.
        spatial_dims: spatial dimensions it runs in (``()`` for feature vectors: tables).
        tiny: keyword arguments of a small, fast configuration (tests, examples).
        tiny_size: a spatial size the tiny configuration accepts (0 for feature vectors).
        paper: where the architecture comes from.
        arguments: the keyword arguments the constructor takes (``None``: any).
    """

    name: str
    inputs: int = 1
    outputs: tuple[str, ...] = MULTITASK
    spatial_dims: tuple[int, ...] = (1, 2, 3)
    tiny: Mapping[str, Any] = field(default_factory=dict)
    tiny_size: int = 8
    paper: str = ""
    arguments: tuple[str, ...] | None = None

    @property
    def pair(self) -> bool:
        """Takes two dates (change detection)."""
        return self.inputs == 2

    @property
    def multitask(self) -> bool:
        """Returns the multitask heads (segmentation, boundary, distance) the dense tasks train."""
        return "boundary" in self.outputs

    @property
    def colour(self) -> bool:
        """Also reconstructs the input's colour (HSV), a ResUNet-a head that needs a colour target."""
        return "color" in self.outputs


_MODELS: dict[str, Callable[..., nn.Module]] = {}
_INFO: dict[str, ModelInfo] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(
    name: str,
    *,
    inputs: int = 1,
    outputs: tuple[str, ...] = MULTITASK,
    spatial_dims: tuple[int, ...] = (1, 2, 3),
    tiny: Mapping[str, Any] | None = None,
    tiny_size: int = 8,
    paper: str = "",
    signature: Callable[..., Any] | None = None,
    fixed: tuple[str, ...] = (),
) -> Callable[[F], F]:
    """Decorator that registers a model constructor under ``name``, with what it is (see :class:`ModelInfo`).

    ``signature`` is the callable whose keyword arguments the constructor accepts (default: the constructor
    itself; give the model class when the constructor forwards ``**kwargs``); ``fixed`` names those the
    constructor sets itself.
    """
    if inputs not in (1, 2):
        raise ValueError(f"model {name!r}: inputs must be 1 or 2, got {inputs}")
    info = ModelInfo(
        name, inputs, tuple(outputs), tuple(spatial_dims), MappingProxyType(dict(tiny or {})), tiny_size, paper
    )

    def wrap(fn: F) -> F:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = fn
        _INFO[name] = dataclasses.replace(info, arguments=_keyword_arguments(signature or fn, fixed))
        return fn

    return wrap


def unregister_model(name: str) -> None:
    """Remove ``name`` from the registry (models registered for a test or a session)."""
    _MODELS.pop(name, None)
    _INFO.pop(name, None)


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_MODELS)


def model_info(name: str) -> ModelInfo:
    """What the model registered as ``name`` is; ValueError naming the choices if unknown."""
    if name not in _INFO:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(sorted(_MODELS))}")
    return _INFO[name]


def check_model_kwargs(name: str, kwargs: Mapping[str, Any]) -> None:
    """ValueError naming any key of ``kwargs`` that model ``name`` does not take (before anything is built)."""
    known = model_info(name).arguments
    unknown = [k for k in kwargs if known is not None and k not in known]
    if unknown:
        assert known is not None
        raise ValueError(
            f"model {name!r} has no argument {', '.join(map(repr, unknown))}; its arguments: {', '.join(known)}"
        )


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the model registered as ``name`` with keyword arguments ``kwargs`` (checked against its arguments)."""
    check_model_kwargs(name, kwargs)
    return _MODELS[name](**kwargs)


def _keyword_arguments(fn: Callable[..., Any], fixed: tuple[str, ...]) -> tuple[str, ...] | None:
    """Names ``fn`` takes by keyword, without ``fixed``; ``None`` when it takes any (``**kwargs``)."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(p.name for p in params if p.kind in kinds and p.name not in fixed and p.name != "self")


def count_inputs(model: nn.Module) -> int:
    """Number of tensors ``model.forward`` takes (2 for change detection networks), from its signature."""
    params = inspect.signature(model.forward).parameters.values()
    return sum(
        p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params
    )
