"""Networks: create them by name with :func:`mantis.create_model`."""

from mantis.models.fractal_resunet import FracTALResUNet
from mantis.models.mantis_cd import MantisChangeDetector
from mantis.models.registry import create_model, list_models, register_model
from mantis.models.resunet_a import ResUNetA

__all__ = [
    "FracTALResUNet",
    "MantisChangeDetector",
    "ResUNetA",
    "create_model",
    "list_models",
    "register_model",
]
