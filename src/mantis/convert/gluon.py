"""Map the authors' Gluon parameter names onto Mantis models and load their weights.

Gluon names every parameter by its structural path (what ``save_parameters`` writes), e.g.
``features.convs_dn.0.0.attn.att.query.conv2d.weight``. :func:`gluon_to_mantis_name` rewrites such a path
into the Mantis attribute path (``encoder.units.0.attention.query.conv.weight``); :func:`load_gluon_state`
copies the arrays into a model built with the matching arguments, strictly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping

import numpy as np
import torch
import torch.nn as nn

Rule = tuple[str, str | Callable[[re.Match[str]], str]]


def _minus_one(*groups: str) -> Callable[[re.Match[str]], str]:
    """A replacement that writes the template with the matched 1-based indices turned 0-based."""

    def replace(match: re.Match[str]) -> str:
        return groups[0].format(*(int(g) - 1 for g in match.groups()))

    return replace


# Rules are applied in order to "." + name, so that "\.x\." also matches a block's own top-level names.
# The FracTAL family: the mantis change detectors (features.fuse*, two dates) and the single-input X-net.
FRACTAL_RULES: list[Rule] = [
    (r"^\.features\.conv_first\.", ".stem."),
    (r"^\.features\.fuse_first\.", ".stem_fusion."),
    (r"^\.features\.fuse\.(\d+)\.", r".skip_fusions.\1."),
    (r"^\.features\.convs_dn\.(\d+)\.0\.", r".encoder.units.\1."),
    (r"^\.features\.pools\.(\d+)\.convdn\.", r".encoder.downs.\1.conv."),
    (r"^\.features\.middle\.", ".bridge."),
    (r"^\.features\.UpCombs\.(\d+)\.up\.convup_normed\.", r".decoder.combines.\1.up.conv."),
    (r"^\.features\.UpCombs\.(\d+)\.conv_normed\.", r".decoder.combines.\1.conv."),
    (r"^\.features\.convs_up\.(\d+)\.0\.", r".decoder.units.\1."),
    (r"\.attn\.att\.", ".attention."),
    (r"\.att\.att\.", ".att."),
    (r"\.block1\.", ".block."),
    (r"\.expand2\.conv(\d)\.", lambda m: f".expand2.convs.{int(m.group(1)) - 1}."),
    (r"\.expand1\.conv1\.", ".expand1.convs.0."),
    (r"\.psp_2ndlast\.", ".psp."),
    (r"\.bound_Equalizer\.", ".bound_equalizer."),
    (r"\.dist_Equalizer\.", ".dist_equalizer."),
    (r"\.Comb_bound_dist\.", ".comb_bound_dist."),
    (r"\.final_segm_logits\.", ".segm_logits."),
    (r"\.CrispSigm\.", ".crisp."),
]
# Inside a CEEC V1 unit the second conv of ``expand1`` merges the branches; in V2 it is a skip conv and the
# merge is the Fusion ``conv3``.
CEEC_V1_RULES: list[Rule] = [(r"\.expand1\.conv2\.", ".combine1.")]
CEEC_V2_RULES: list[Rule] = [(r"\.expand1\.conv2\.", ".skip1."), (r"\.expand1\.conv3\.", ".combine1.")]
RESUNET_A_RULES: list[Rule] = [
    (r"^\.encoder\.conv_first_normed\.", ".stem."),
    (r"^\.encoder\.Dn(\d+)\.ResBlock(\d+)\.", _minus_one(".encoder_units.{}.blocks.{}.")),
    (r"^\.encoder\.pool(\d+)\.convdn\.", _minus_one(".downs.{}.")),
    (r"^\.encoder\.middle\.", ".bridge."),
    (r"^\.UpComb(\d+)\.up\.convup_normed\.", _minus_one(".combines.{}.up.conv.")),
    (r"^\.UpComb(\d+)\.conv_normed\.", _minus_one(".combines.{}.conv.")),
    (r"^\.UpConv(\d+)\.ResBlock(\d+)\.", _minus_one(".decoder_units.{}.blocks.{}.")),
    (r"^\.psp_2ndlast\.", ".head.psp."),
    (r"^\.logits\.", ".head.segm_logits.logits."),
    (r"^\.bound_logits\.", ".head.bound_logits."),
    (r"^\.distance_logits\.", ".head.distance_logits.logits."),
    (r"^\.color_logits\.", ".head.color_logits."),
]
# Layer names shared by every network (applied last).
COMMON_RULES: list[Rule] = [
    (r"\.conv2d\.", ".conv."),
    (r"\.norm_layer\.", ".norm."),
    (r"\.BN(\d)\.", r".norm\1."),
    (r"\.conv_norm_final\.", ".conv_final."),
    (r"\.(norm\d?)\.gamma$", r".\1.weight"),
    (r"\.(norm\d?)\.beta$", r".\1.bias"),
]
SKIPPED_BUFFERS = ("num_batches_tracked",)  # Gluon keeps no such counter
SHOWN = 3  # names listed in an error
NORM_VALUE = re.compile(r"(^|\.)norm\d?\.(weight|bias)$")


class GluonMappingError(ValueError):
    """The Gluon parameters do not fit the model: names left over on either side, or shapes that differ."""


def gluon_to_mantis_name(name: str, family: str = "fractal", ceec_v2: bool = False) -> str:
    """The Mantis attribute path of Gluon structural parameter name ``name``.

    Args:
        name: e.g. ``features.convs_dn.0.0.attn.att.query.conv2d.weight`` (a whole network's) or
            ``attn.att.query.conv2d.weight`` (a unit's own).
        family: ``fractal`` (FracTAL ResUNet, CEECNets, FracTAL ResNet CD and their blocks) or ``resunet_a``.
        ceec_v2: the network has CEEC V2 units (``expand1.conv2`` is then a skip conv, not the merge).
    """
    if family not in ("fractal", "resunet_a"):
        raise ValueError(f"unknown network family {family!r}; choose fractal or resunet_a")
    rules = (RESUNET_A_RULES if family == "resunet_a" else FRACTAL_RULES) + (
        CEEC_V2_RULES if ceec_v2 else CEEC_V1_RULES
    )
    path = "." + name
    for pattern, replacement in rules + COMMON_RULES:
        path = re.sub(pattern, replacement, path)
    return path[1:]


def match_gluon_names(
    own: Mapping[str, tuple[int, ...]], theirs: Mapping[str, tuple[int, ...]], model_name: str = "model"
) -> dict[str, str]:
    """Pair each Gluon name with a Mantis state-dict key, checking that every name and shape fits.

    Args:
        own: the model's state-dict keys and shapes (``num_batches_tracked`` may be left out).
        theirs: the Gluon structural names and shapes.
        model_name: what the error message calls the model.

    Returns:
        Gluon name -> Mantis key, for every Gluon name.

    Raises:
        GluonMappingError: names left over on either side or shapes that differ, in one line.
    """
    own = {k: tuple(v) for k, v in own.items() if not k.endswith(SKIPPED_BUFFERS)}
    ceec_v2 = any(k.startswith("skip1.") or ".skip1." in k for k in own)
    family = "resunet_a" if any(k.startswith(("encoder_units.", "decoder_units.")) for k in own) else "fractal"
    pairs: dict[str, str] = {}
    taken: dict[str, str] = {}
    for name in theirs:
        key = gluon_to_mantis_name(name, family, ceec_v2)
        if key in taken:
            raise GluonMappingError(f"two parameters, {taken[key]} and {name}, both map to {key}")
        pairs[name], taken[key] = key, name
    unknown = [n for n, k in pairs.items() if k not in own]
    missing = [k for k in own if k not in taken]
    misfits = [
        f"{n} {_shape(theirs[n])} vs {k} {_shape(own[k])}"
        for n, k in pairs.items()
        if k in own and not _fits(tuple(theirs[n]), own[k], k)
    ]
    problems = []
    if unknown:
        problems.append(f"{_count(unknown, 'parameter')} of the weights have no place in the model ({_few(unknown)})")
    if missing:
        problems.append(f"{_count(missing, 'parameter')} of the model get no value ({_few(missing)})")
    if misfits:
        problems.append(f"{_count(misfits, 'shape')} differ ({_few(misfits)})")
    if problems:
        raise GluonMappingError(
            f"the weights do not fit this {model_name}: " + "; ".join(problems) + " (check the model and its arguments)"
        )
    return pairs


def load_gluon_state(model: nn.Module, params: Mapping[str, np.ndarray | torch.Tensor], prefix: str = "") -> nn.Module:
    """Fill every parameter and buffer of ``model`` from the authors' Gluon parameters ``params``.

    GroupNorm's per-group scale and shift are repeated over each group's channels; BatchNorm's running
    statistics go to the buffers; the units' scalar gates take the 1-element arrays. Strict: every name of
    ``params`` must land on the model and every parameter and buffer of the model must get a value, with
    the same shape.

    Args:
        model: a Mantis model built with the arguments the weights were trained with.
        params: Gluon structural names to arrays (see :func:`mantis.convert.read_mxnet_params`).
        prefix: load only the names that start with it, without it (one block of a whole network's
            weights, e.g. ``features.convs_dn.0.0.`` into ``model.encoder.units[0]``).

    Returns:
        ``model``, loaded.

    Raises:
        GluonMappingError: what does not fit, in one line.
    """
    own = model.state_dict()
    arrays = {
        n[len(prefix) :]: torch.from_numpy(np.ascontiguousarray(v))
        if not isinstance(v, torch.Tensor)
        else v.detach().cpu()
        for n, v in params.items()
        if n.startswith(prefix)
    }
    pairs = match_gluon_names(
        {k: tuple(v.shape) for k, v in own.items()},
        {n: tuple(a.shape) for n, a in arrays.items()},
        type(model).__name__,
    )
    new = {key: _reshape(arrays[name].to(own[key].dtype), own[key].shape) for name, key in pairs.items()}
    model.load_state_dict(new, strict=False)
    return model


def _fits(shape: tuple[int, ...], target: tuple[int, ...], key: str) -> bool:
    """Equal shapes, a 1-element gate for a scalar, or one norm value per group for per-channel values."""
    if shape == target:
        return True
    if math.prod(shape) == 1 and math.prod(target) == 1:
        return True
    per_group = len(shape) == 1 and len(target) == 1 and shape[0] > 0 and target[0] % shape[0] == 0
    return per_group and NORM_VALUE.search(key) is not None


def _reshape(value: torch.Tensor, target: torch.Size) -> torch.Tensor:
    if value.shape == target or value.numel() == 1:
        return value.reshape(target)
    return value.repeat_interleave(target.numel() // value.numel())  # GroupNorm: one value per group


def _count(items: list[str], what: str) -> str:
    return f"{len(items)} {what}{'s' if len(items) != 1 else ''}"


def _few(items: list[str]) -> str:
    more = f", and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def _shape(shape: tuple[int, ...] | torch.Size) -> str:
    return "x".join(map(str, shape)) or "scalar"
