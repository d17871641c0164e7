"""Weights from the authors' MXNet/Gluon code: read ``.params`` files, map the names, load them."""

from mantis.convert.gluon import GluonMappingError, gluon_to_mantis_name, load_gluon_state, match_gluon_names
from mantis.convert.mxnet_params import ParamsFormatError, read_mxnet_params

__all__ = [
    "GluonMappingError",
    "ParamsFormatError",
    "gluon_to_mantis_name",
    "load_gluon_state",
    "match_gluon_names",
    "read_mxnet_params",
]
