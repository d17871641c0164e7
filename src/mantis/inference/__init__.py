"""Inference: sliding-window prediction on tensors and large rasters, ensembles, TTA, export."""

from mantis.inference.checkpoint import ModelMeta, load_model, load_models, load_pretrained, save_pretrained
from mantis.inference.ensemble import ModelEnsemble
from mantis.inference.errors import InputError
from mantis.inference.export import ExportSpec, export_model, export_onnx, export_program
from mantis.inference.predict import predict_folder, predict_raster
from mantis.inference.sliding import sliding_window_predict
from mantis.inference.spec import WindowSpec
from mantis.inference.tiling import blend_weights
from mantis.inference.tta import d4_transforms

__all__ = [
    "ExportSpec",
    "InputError",
    "ModelEnsemble",
    "ModelMeta",
    "WindowSpec",
    "blend_weights",
    "d4_transforms",
    "export_model",
    "export_onnx",
    "export_program",
    "load_model",
    "load_models",
    "load_pretrained",
    "predict_folder",
    "predict_raster",
    "save_pretrained",
    "sliding_window_predict",
]
