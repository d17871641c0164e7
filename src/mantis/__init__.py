"""Mantis: FracTAL attention U-Nets and the fractal Tanimoto loss for dense prediction."""

from mantis.models.registry import create_model, list_models, model_info

__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "list_models", "model_info"]
