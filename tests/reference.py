"""The authors' reference cases (tests/fixtures/authors_reference/*.npz, copied from ../shared/reference)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch.nn as nn

from mantis.convert import load_gluon_state

REFERENCE_DIR = Path(__file__).resolve().parent / "fixtures" / "authors_reference"


def load_case(name: str) -> dict[str, np.ndarray]:
    """The arrays of reference case ``name``."""
    with np.load(REFERENCE_DIR / f"{name}.npz") as data:
        return {k: data[k] for k in data.files}


def case_params(case: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The case's weights under their Gluon structural names, as ``save_parameters`` would write them."""
    return {str(s): case[f"param__{n}"] for s, n in zip(case["param_struct_names"], case["param_names"])}


def load_reference(module: nn.Module, case: dict[str, np.ndarray], prefix: str = "") -> nn.Module:
    """``module`` with the case's weights, through the public converter (strict)."""
    return load_gluon_state(module, case_params(case), prefix=prefix)
