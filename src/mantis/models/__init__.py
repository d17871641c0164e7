"""Networks: create them by name with :func:`mantis.create_model`; :func:`model_info` says what each is."""

# Importing the families registers their models (their decorators run): keep these imports first.
from mantis.models import classifier, fractal_resunet, mantis_cd, resunet_a, simple  # noqa: F401  isort: skip
from mantis.models.classifier import FracTALResNetClassifier
from mantis.models.fractal_resunet import FracTALResUNet
from mantis.models.mantis_cd import MantisChangeDetector
from mantis.models.registry import ModelInfo, create_model, list_models, model_info, register_model
from mantis.models.resunet_a import ResUNetA

__all__ = [
    "FracTALResNetClassifier",
    "FracTALResUNet",
    "MantisChangeDetector",
    "ModelInfo",
    "ResUNetA",
    "create_model",
    "list_models",
    "model_info",
    "register_model",
]
