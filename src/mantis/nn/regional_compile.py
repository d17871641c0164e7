"""Regional compilation: ``torch.compile`` on each repeated unit of a network rather than on the whole network.

The units of one class share their compiled code (Dynamo treats a module's parameters as inputs), so a U-Net
with a dozen units compiles a handful of regions in a fraction of the whole model's compile time. The rest
(stem, resampling, heads: run once per step) stays eager. Compilation is lazy (on the first call) and in
place (``nn.Module.compile``): parameter names, ``state_dict`` and checkpoints are unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from mantis.nn.attention import CATFusion, FracTALAttention
from mantis.nn.units import AtrousUnit, CEECUnitV1, FracTALResNetUnit, ResNetV2Block

# torch.compile's modes; "reduce-overhead" records CUDA graphs of the compiled units (on CUDA; ignored on CPUs).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

# The repeated units of the registry's networks; outermost first wins (a CEEC V2 unit holds CATFusions).
REGION_TYPES: tuple[type[nn.Module], ...] = (
    FracTALResNetUnit,
    CEECUnitV1,
    AtrousUnit,
    CATFusion,
    FracTALAttention,
    ResNetV2Block,
)


def compile_regions(model: nn.Module, **options: Any) -> list[str]:
    """Compiles, in place, every outermost submodule of ``model`` that is one of :data:`REGION_TYPES`.

    Args:
        model: any network; ``model`` itself is compiled if it is such a unit.
        options: keyword arguments of ``torch.compile`` (``backend``, ``mode``, ``dynamic``, ...).

    Returns:
        The qualified names of the compiled modules ("" for ``model`` itself), in module order.
    """
    compiled: list[str] = []
    for name, module in model.named_modules():
        inside = any(name.startswith(f"{done}.") for done in compiled) or "" in compiled
        if isinstance(module, REGION_TYPES) and not inside:
            module.compile(**options)
            compiled.append(name)
    _allow_recompiles(4 * len(compiled))
    return compiled


def _allow_recompiles(versions: int) -> None:
    """Raises Dynamo's per-function recompile limit to ``versions`` if it is lower.

    Units of one class at different widths (a U-Net level each) can be separate compilations of one ``forward``,
    and training and validation (grad mode, ``module.training``) double them again; past the limit (8 by
    default) Dynamo would silently run the remaining units eager. Four versions a unit leave room for both
    modes and the one recompilation with dynamic sizes that a second input size brings.
    """
    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"  # before torch 2.6
    setattr(config, name, max(getattr(config, name), versions))
