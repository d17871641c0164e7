"""Folder prediction on several processes: ``mantis predict --devices 2`` next to one process.

Writes 8 change-detection pairs of GeoTIFFs (3 bands, uint8) and a checkpoint of a small FracTAL ResNet CD
(random weights: the cost, not the values, matters here), then predicts the folder with the ``mantis``
command, one thread per process: once in one process, once in two (Lightning Fabric, gloo). Each run is a
fresh command, so the times include what a user waits for: imports, the second process's start, the
ranks' agreement. The outputs of both runs are compared byte for byte.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/predict_ranks_bench.py [--size 384] [--files 8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
MODEL = {"in_channels": 3, "num_classes": 2, "nf": 16, "depth": 3, "nheads_start": 2, "psp_depth": 2}


def _data(root: Path, files: int, size: int) -> tuple[Path, Path, Path]:
    import rasterio
    from rasterio.transform import from_origin

    import mantis

    rng = np.random.default_rng(0)
    for i in range(files):
        for folder in ("A", "B"):
            (root / folder).mkdir(parents=True, exist_ok=True)
            data = rng.integers(0, 255, (3, size, size), dtype=np.uint8)
            profile = {"driver": "GTiff", "height": size, "width": size, "count": 3, "dtype": "uint8"}
            with rasterio.open(
                root / folder / f"scene_{i}.tif",
                "w",
                **profile,
                crs="EPSG:32631",
                transform=from_origin(440000, 5100000, 10, 10),
            ) as ds:
                ds.write(data)
    torch.manual_seed(0)
    net = mantis.create_model("fractal_resnet_cd", **MODEL)
    ckpt = root / "model.ckpt"
    hparams = {"model": "fractal_resnet_cd", "model_kwargs": MODEL, "task": "change_detection"}
    torch.save(
        {"state_dict": {f"model.{k}": v for k, v in net.state_dict().items()}, "hyper_parameters": hparams}, ckpt
    )
    return root / "A", root / "B", ckpt


def _predict(a: Path, b: Path, ckpt: Path, out: Path, devices: int) -> float:
    command = [sys.executable, "-m", "mantis.cli", "predict", "-c", str(ckpt), "-i", str(a), str(b), "-o", str(out)]
    command += ["--window", "128", "--stride", "64", "--device", "cpu", "--no-progress", "--threads", "1"]
    command += ["--devices", str(devices)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, cwd=ROOT, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    """Print the wall times of one and two processes, the speed-up, and whether the outputs are equal."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=384, help="side of each raster (384)")
    parser.add_argument("--files", type=int, default=8, help="number of pairs (8)")
    args = parser.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        a, b, ckpt = _data(root, args.files, args.size)
        one = _predict(a, b, ckpt, root / "one", 1)
        two = _predict(a, b, ckpt, root / "two", 2)
        names = sorted(p.name for p in (root / "one").iterdir())
        same = names == sorted(p.name for p in (root / "two").iterdir()) and all(
            (root / "one" / n).read_bytes() == (root / "two" / n).read_bytes() for n in names
        )
    print(f"{args.files} pairs of {args.size}², window 128 stride 64, 1 thread a process, {os.cpu_count()} cores")
    print(f"load average before: {load[0]:.1f} (other work on the machine slows both runs, unevenly)")
    print(f"1 process : {one:6.1f} s")
    print(f"2 processes: {two:6.1f} s   speed-up {one / two:.2f}x   outputs byte-identical: {same}")


if __name__ == "__main__":
    main()
