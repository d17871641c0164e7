"""Check that ``torch.compile(model, fullgraph=True)`` compiles every segmentation and change-detection model
without a graph break, and that compiled outputs and gradients match eager ones.

    .venv/bin/python benchmarks/check_compile.py [--models ...]

Not part of the test suite: compiling each model takes one to several minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import time

import torch

import mantis

CHANGE = {"ceecnet_v1", "ceecnet_v2", "fractal_resnet_cd"}
MODELS = ["fractal_resunet", "resunet_a_d6", "resunet_a_d7", "ceecnet_v1", "ceecnet_v2", "fractal_resnet_cd"]


def check(name: str) -> str:
    torch.manual_seed(0)
    model = mantis.create_model(name, nf=8, depth=2, psp_depth=2)
    x = torch.rand(2, 3, 16, 16)
    inputs = (x, x.flip(-1)) if name in CHANGE else (x,)
    start = time.perf_counter()
    compiled = torch.compile(model, fullgraph=True)  # fullgraph: any graph break raises
    out = compiled(*inputs)
    sum(t.sum() for t in out).backward()
    grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    seconds = time.perf_counter() - start
    model.zero_grad()
    ref = model(*inputs)
    sum(t.sum() for t in ref).backward()
    out_err = max((a - b).abs().max().item() for a, b in zip(out, ref))
    grad_err = max(
        (g - p.grad).abs().max().item() for g, p in zip(grads, (p for p in model.parameters() if p.grad is not None))
    )
    return f"| `{name}` | yes | {seconds:.0f} | {out_err:.1e} | {grad_err:.1e} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=MODELS)
    args = parser.parse_args()
    print("| model | fullgraph | compile + first step s | max output diff | max gradient diff |")
    print("|---|---|---:|---:|---:|")
    for name in args.models:
        print(check(name), flush=True)


if __name__ == "__main__":
    main()
