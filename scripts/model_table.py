"""Print the Markdown table of parameter counts of every default 2D model (``make models-table``)."""

from __future__ import annotations

import torch

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
        with torch.device("meta"):  # counts and sizes only
            model = mantis.create_model(name, **kwargs)
        count = sum(p.numel() for p in model.parameters())
        inputs = "(x1, x2)" if mantis.model_info(name).pair else "x"
        multiple = getattr(model, "size_multiple", "")
        print(f"| `{name}` | {inputs} | {kwargs['in_channels']} | {kwargs['num_classes']} | {count:,} | {multiple} |")
    for name, kwargs in (("mlp", {"in_channels": 16, "num_classes": 2}), ("cnn", DEFAULT), ("fractal_resnet", DEFAULT)):
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
`psp_depth`; change detectors take `fusion_attention_depth` (5, the authors'; the fusions of the dates); the FracTAL models take `grouped_attention=False` (the units' attention q/k/v convolutions
ungrouped, as in the authors' `decode` repository); change detectors also take `fusion_combine=True` (the
paper's V2 decoder merges); ResUNet-a takes `dilations` and `decoder_dilations` (per level, shallow first).
Every spatial size must be a multiple of `model.size_multiple` (2^(depth-1) x 2^(psp_depth-1), at least 8);
other sizes raise a `ValueError` naming the size and the nearest valid ones.
Multitask outputs are NamedTuples: `segmentation`, `boundary`, `distance` (B x K x S), plus `color`
(B x 3 x S) for ResUNet-a. `mlp`, `cnn` and `fractal_resnet` (a classifier, docs/series.md) return logits B x K.

## From the authors' MXNet code

Each network of the authors' code (MXNet/Gluon) is one Mantis call; weights saved by their
`save_parameters` load into it:

| authors' constructor | Mantis |
|---|---|
| ceecnet `mantis_dn_cmtsk(nfilters_init=32, depth=6, NClasses=2, widths=[1], psp_depth=4, norm_type='GroupNorm', norm_groups=4, nheads_start=4, model='CEECNetV1', upFuse=False, ftdepth=5)` | `create_model("ceecnet_v1")` |
| the same with `model='CEECNetV2'` | `create_model("ceecnet_v2")` |
| the same with `model='FracTALResNet'` | `create_model("fractal_resnet_cd")` |
| ceecnet `X_dn_cmtsk(...the same arguments..., model='FracTALResNet')` | `create_model("fractal_resunet")` |
| decode `FracTAL_ResUNet_cmtsk(...the same arguments...)` | `create_model("fractal_resunet", grouped_attention=False)` |
| resuneta `ResUNet_d6(_nfilters_init=32, _NClasses=K)` on B bands | `create_model("resunet_a_d6", in_channels=B, num_classes=K)` |
| resuneta `ResUNet_d7(_nfilters_init=32, _NClasses=K)` | `create_model("resunet_a_d7", in_channels=B, num_classes=K)` |

Other arguments map one to one: `nfilters_init` -> `nf`, `depth`, `nheads_start`, `psp_depth`,
`norm_groups`, `ftdepth` -> `attention_depth`, `NClasses` -> `num_classes`, `upFuse=True` -> `fusion_combine=True`
(the names of that variant are not mapped yet).

Convert a `.params` file (read with numpy; MXNet is not needed) into a folder that `mantis predict -c` and
`mantis.inference.load_pretrained` use as they are:

```bash
mantis convert ceecnetv2_levir.params --model ceecnet_v2 -o ceecnetv2-levir/
mantis convert decode_resunet.params --model fractal_resunet --model-kwargs '{grouped_attention: false, num_classes: 6}' -o resunet/
mantis predict -c ceecnetv2-levir/ -i A/ B/ -o change/
```

or in Python: `mantis.convert.load_gluon_state(model, mantis.convert.read_mxnet_params(path))`.
GroupNorm's per-group scale and shift become per-channel; BatchNorm running statistics go to the buffers;
the units' 1-element gates become scalars. Loading is strict: a name left over on either side or a shape
that differs is an error that names the first few (e.g. CEECNet V2 weights into `ceecnet_v1`). Give
`--band-mean`/`--band-std` if the network was trained on standardised inputs.

What was checked (tests, run by `make test`):
- every block of the authors' code (FracTAL attention, fusions, FracTAL ResNet and CEEC V1/V2 units, PSP
  pooling, conditioned multitask head), loaded through `load_gluon_state` with the authors' weights, gives
  their outputs to 1e-5 (`tests/nn/test_reference.py`, data in `tests/fixtures/authors_reference/`);
- every parameter name and shape of the seven networks above (as `save_parameters` writes them) lands 1:1
  on the Mantis model, and the parameter counts equal theirs (ResUNet-a d6 58,037,781, d7 184,537,873; the
  decode FracTAL ResUNet 64,281,682 with per-channel GroupNorm affine) (`tests/test_convert.py`);
- the `.params` reader against files written by MXNet 1.9.1 itself (array formats V2 and V3, seven data
  types, a Gluon `save_parameters` file), and `mantis convert` then `mantis predict -c` end to end
  (`tests/fixtures/mxnet/`, written by `scripts/mxnet_fixtures.py`).
"""  # noqa: E501


if __name__ == "__main__":
    main()
