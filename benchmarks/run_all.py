"""`make bench`: run every CPU benchmark and rewrite their sections of docs/benchmarks.md.

    .venv/bin/python benchmarks/run_all.py [--quick]

``--quick`` measures fewer repeats, only the D6 FracTAL ResUNet and CEECNetV1, and no ``torch.compile``
(the full run compiles every model at full size and takes about two hours on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(*args: str) -> None:
    cmd = [sys.executable, *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=HERE.parent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats = "3" if args.quick else "5"
    run(str(HERE / "bench_units.py"), "--repeats", repeats, "--write-docs")
    models = ["--models", "fractal_resunet", "ceecnet_v1"] if args.quick else []
    train = ["train", "--repeats", "2" if args.quick else "3", *models] + ([] if args.quick else ["--compile"])
    run(str(HERE / "bench_models.py"), *train, "--write-docs")
    run(str(HERE / "bench_models.py"), "infer", "--repeats", repeats, *models, "--write-docs")
    run(str(HERE / "predict_bench.py"), "--write-docs")


if __name__ == "__main__":
    main()
