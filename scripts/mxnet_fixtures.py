"""Write the small MXNet parameter files of tests/fixtures/mxnet/ (run once; the outputs are committed).

Two steps, in two environments (MXNet 1.9 runs beside numpy < 1.24 only, so not in the project's venv):

    .venv/bin/python scripts/mxnet_fixtures.py names        # Mantis side: Gluon names of a tiny network
    python3 -m venv /tmp/mxenv && /tmp/mxenv/bin/pip install numpy==1.23.5 mxnet==1.9.1
    /tmp/mxenv/bin/python scripts/mxnet_fixtures.py write   # MXNet side: the .params files

``names`` writes ``/tmp/tiny_fractal_resnet_cd.npz``: seeded random weights of ``fractal_resnet_cd`` at
:data:`TINY` under the authors' Gluon structural names (GroupNorm scale and shift per group, as Gluon keeps
them). The names are those of the authors' full-size network (tests/fixtures/authors_reference/gluon_names)
whose parameters exist in the tiny one: depth and PSP depth only cut indices.

``write`` saves, with MXNet itself:

- ``tiny_fractal_resnet_cd.params``: those arrays with ``mx.nd.save`` (what Gluon's ``save_parameters`` does);
- ``gluon_block.params`` and ``gluon_block.npz``: a small Gluon network of our own (conv, GroupNorm, BatchNorm,
  dense) saved by ``save_parameters``, and its parameters as numpy arrays;
- ``dtypes.params`` / ``dtypes_np.params`` and ``dtypes.npz``: arrays of several types and shapes saved
  with MXNet's legacy shape semantics (array format V2) and with numpy semantics (V3).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "mxnet"
NAMES = ROOT / "tests" / "fixtures" / "authors_reference" / "gluon_names" / "g_mantis_fractalresnet.tsv"
TINY = {"nf": 8, "depth": 2, "psp_depth": 1, "nheads_start": 1}
SOURCE = Path("/tmp/tiny_fractal_resnet_cd.npz")  # from ``names`` to ``write``; not kept


def names() -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from mantis.convert import gluon_to_mantis_name
    from mantis.models import create_model

    model = create_model("fractal_resnet_cd", **TINY)
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    rows = [line.split("\t") for line in NAMES.read_text().splitlines()[1:]]
    by_key = {gluon_to_mantis_name(r[0]): (r[0], r[2]) for r in rows}
    rng = np.random.default_rng(20261130)
    arrays = {}
    for key, shape in own.items():
        gluon, owner = by_key[key]
        if owner == "GroupNorm":  # one value per group, as Gluon keeps them
            shape = (model.get_submodule(key.rsplit(".", 1)[0]).num_groups,)
        shape = shape or (1,)  # Gluon keeps scalar gates as 1-element arrays
        scale = 1.0 if key.endswith("norm.weight") else 0.0
        arrays[gluon] = (scale + 0.3 * rng.standard_normal(shape)).astype(np.float32)
    np.savez(SOURCE, **arrays)
    print(f"{len(arrays)} arrays -> {SOURCE}")


def write() -> None:
    import mxnet as mx
    from mxnet import gluon

    with np.load(SOURCE) as data:
        mx.nd.save(str(OUT / "tiny_fractal_resnet_cd.params"), {k: mx.nd.array(data[k]) for k in data.files})

    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Conv2D(4, 3, padding=1, in_channels=2))
    net.add(gluon.nn.GroupNorm(num_groups=2))
    net.add(gluon.nn.BatchNorm(in_channels=4))
    net.add(gluon.nn.Dense(3, in_units=4 * 5 * 5))
    net.initialize(mx.init.Normal(0.5))
    net(mx.nd.random.uniform(shape=(2, 2, 5, 5)))
    net.save_parameters(str(OUT / "gluon_block.params"))
    params = net._collect_params_with_prefix()
    np.savez(OUT / "gluon_block.npz", **{k: v.data().asnumpy() for k, v in params.items()})

    rng = np.random.default_rng(7)
    typed = {
        "float32": rng.standard_normal((2, 3)).astype(np.float32),
        "float64": rng.standard_normal((4,)).astype(np.float64),
        "float16": rng.standard_normal((2, 2, 2)).astype(np.float16),
        "uint8": rng.integers(0, 255, (5,)).astype(np.uint8),
        "int32": rng.integers(-9, 9, (3, 1)).astype(np.int32),
        "int64": rng.integers(-9, 9, (2,)).astype(np.int64),
        "gate": np.array([0.25], np.float32),
    }
    mx.nd.save(str(OUT / "dtypes.params"), {k: mx.nd.array(v, dtype=v.dtype) for k, v in typed.items()})
    mx.npx.set_np()  # numpy shape semantics: arrays saved in format V3
    mx.nd.save(str(OUT / "dtypes_np.params"), {k: mx.nd.array(v, dtype=v.dtype) for k, v in typed.items()})
    np.savez(OUT / "dtypes.npz", **typed)
    print(f"wrote {sorted(p.name for p in OUT.iterdir())}")


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    {"names": names, "write": write}[sys.argv[1]]()
