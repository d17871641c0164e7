"""Print the Markdown table of parameter counts of every default 2D model (``make models-table``)."""

from __future__ import annotations

import mantis

# ResUNet-a is shown as in its paper (5 bands, 6 classes); the others with 3 bands and 2 classes.
SETTINGS: dict[str, dict[str, int]] = {
    "resunet_a_d6": {"in_channels": 5, "num_classes": 6},
    "resunet_a_d7": {"in_channels": 5, "num_classes": 6},
}
DEFAULT = {"in_channels": 3, "num_classes": 2}
SPATIAL_MODELS = ("fractal_resunet", "ceecnet_v1", "ceecnet_v2", "fractal_resnet_cd", "resunet_a_d6", "resunet_a_d7")


def main() -> None:
    print("# Models\n")
    print("Parameter counts of the default 2D models, produced by `make models-table` (scripts/model_table.py).")
    print("Defaults: depth 6 (d7: 7), nf 32, nheads_start 4, GroupNorm with 4 groups (ResUNet-a: BatchNorm),")
    print("attention depth 5, PSP depth 4 (d7: 3). PyTorch's GroupNorm has an affine pair per channel, so")
    print("counts exceed the authors' MXNet ones by 2 x (channels - groups) per GroupNorm.\n")
    print("| model | input | bands | classes | parameters | size multiple |")
    print("|---|---|---|---|---:|---:|")
    for name in SPATIAL_MODELS:
        kwargs = SETTINGS.get(name, DEFAULT)
        model = mantis.create_model(name, **kwargs)
        count = sum(p.numel() for p in model.parameters())
        inputs = "(x1, x2)" if name in ("ceecnet_v1", "ceecnet_v2", "fractal_resnet_cd") else "x"
        multiple = getattr(model, "size_multiple", "")
        print(f"| `{name}` | {inputs} | {kwargs['in_channels']} | {kwargs['num_classes']} | {count:,} | {multiple} |")
    for name, kwargs in (("mlp", {"in_channels": 16, "num_classes": 2}), ("cnn", DEFAULT)):
        count = sum(p.numel() for p in mantis.create_model(name, **kwargs).parameters())
        print(f"| `{name}` | x | {kwargs['in_channels']} | {kwargs['num_classes']} | {count:,} | |")
    print(USAGE)


USAGE = """
## Building a model

```python
import torch
import mantis

model = mantis.create_model("ceecnet_v2", in_channels=4, num_classes=2)  # any band count
out = model(torch.rand(1, 4, 256, 256), torch.rand(1, 4, 256, 256))  # change detection: (x1, x2)
out.segmentation.shape  # (1, 2, 256, 256) class probabilities; then out.boundary, out.distance

seg = mantis.create_model("fractal_resunet", in_channels=3, num_classes=6, spatial_dims=3, depth=4, nf=16)
vol = seg(torch.rand(1, 3, 64, 64, 64)).segmentation  # 3D volumes (and 1D series) from the same code
```

Common keyword arguments: `in_channels`, `num_classes`, `spatial_dims` (1, 2, 3), `nf`, `depth`,
`nheads_start`, `norm` (`group`, `batch`, `instance`, `layer`, `none`), `norm_groups`, `attention_depth`,
`psp_depth`; change detectors also take `fusion_combine=True` (the paper's V2 decoder merges).
Every spatial size must be a multiple of `model.size_multiple` (2^(depth-1) x 2^(psp_depth-1), at least 8);
other sizes raise a `ValueError` naming the size and the nearest valid ones.
Multitask outputs are NamedTuples: `segmentation`, `boundary`, `distance` (B x K x S), plus `color`
(B x 3 x S) for ResUNet-a. `mlp` and `cnn` return logits B x K.

Fidelity: `tests/nn/test_reference.py` loads the authors' weights into each block (attention, fusions,
FracTAL and CEEC units, PSP, head) and the losses, and matches their outputs to 1e-5.
"""


if __name__ == "__main__":
    main()
