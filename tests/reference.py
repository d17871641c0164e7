"""Load the authors' reference cases (../shared/reference/*.npz) into Mantis blocks."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference"

# Authors' attribute names -> ours, applied in order to each structural parameter path.
RENAMES: list[tuple[str, str]] = [
    (r"\.conv2d\.", ".conv."),
    (r"\.norm_layer\.", ".norm."),
    (r"^attn\.att\.", "attention."),
    (r"^att\.att\.", "att."),
    (r"^block1\.", "block."),
    (r"\.BN1\.", ".norm1."),
    (r"\.BN2\.", ".norm2."),
    (r"conv_norm_final\.", "conv_final."),
    (r"^psp_2ndlast\.", "psp."),
    (r"^bound_Equalizer\.", "bound_equalizer."),
    (r"^dist_Equalizer\.", "dist_equalizer."),
    (r"^Comb_bound_dist\.", "comb_bound_dist."),
    (r"^final_segm_logits\.", "segm_logits."),
    (r"^CrispSigm\.", "crisp."),
    (r"^expand2\.conv1\.", "expand2.convs.0."),
    (r"^expand2\.conv2\.", "expand2.convs.1."),
    (r"^expand1\.conv1\.", "expand1.convs.0."),
]


def load_case(name: str) -> dict[str, np.ndarray]:
    """The arrays of reference case ``name``; skips the test when ../shared is absent."""
    path = REFERENCE_DIR / f"{name}.npz"
    if not path.exists():
        pytest.skip(f"reference data not found: {path}")
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def reference_state(
    case: dict[str, np.ndarray], extra: list[tuple[str, str]] | None = None, strip_prefix: str = ""
) -> dict[str, np.ndarray]:
    """Map the case's parameters to our names (GroupNorm gamma/beta still per group)."""
    renames = (extra or []) + RENAMES
    out: dict[str, np.ndarray] = {}
    for struct, name in zip(case["param_struct_names"], case["param_names"]):
        path = str(struct)
        if strip_prefix and path.startswith(strip_prefix):
            path = path[len(strip_prefix) :]
        for pattern, repl in renames:
            path = re.sub(pattern, repl, path)
        path = re.sub(r"\.gamma$", ".weight", path) if _is_norm(case, name) else path
        path = re.sub(r"\.beta$", ".bias", path)
        out[path] = case[f"param__{name}"]
    return out


def _is_norm(case: dict[str, np.ndarray], name: str) -> bool:
    idx = list(case["param_names"]).index(name)
    return str(case["param_owner_class"][idx]) in ("GroupNorm", "BatchNorm")


def load_into(module: nn.Module, state: dict[str, np.ndarray]) -> None:
    """Copy ``state`` into ``module``; per-group norm parameters are repeated over their channels."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unknown = sorted(set(state) - set(own))
    if missing or unknown:
        raise KeyError(f"missing {missing}, unknown {unknown}")
    new = {}
    for key, value in state.items():
        tensor = torch.from_numpy(np.asarray(value, dtype=np.float32))
        target = own[key]
        if tensor.shape != target.shape:
            if tensor.dim() == 1 and target.dim() == 1 and target.numel() % tensor.numel() == 0:
                tensor = tensor.repeat_interleave(target.numel() // tensor.numel())
            else:
                tensor = tensor.reshape(target.shape)
        new[key] = tensor
    module.load_state_dict(new)
