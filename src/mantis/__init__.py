"""Mantis: FracTAL attention U-Nets and the fractal Tanimoto loss for dense prediction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "list_models", "model_info"]

if TYPE_CHECKING:
    from mantis.models.registry import create_model, list_models, model_info


def __getattr__(name: str) -> Any:
    # The model registry (and torch) load on first use, so that `mantis --help` starts at once.
    if name in ("create_model", "list_models", "model_info"):
        from mantis.models import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'mantis' has no attribute {name!r}")
