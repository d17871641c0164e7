"""Check that ``torch.compile(model, fullgraph=True)`` compiles every segmentation and change-detection model
without a graph break, and that compiled outputs and gradients match eager ones.

    .venv/bin/python benchmarks/check_compile.py [--models ...] [--bf16-channels-last]

Not part of the test suite: compiling each model takes one to several minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import time

# Compile from scratch: a warm on-disk inductor cache would hide the compile time we report.
os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")

import torch  # noqa: E402

import mantis

CHANGE = {"ceecnet_v1", "ceecnet_v2", "fractal_resnet_cd"}
MODELS = ["fractal_resunet", "resunet_a_d6", "resunet_a_d7", "ceecnet_v1", "ceecnet_v2", "fractal_resnet_cd"]


def check(name: str, bf16_channels_last: bool = False) -> str:
    torch.manual_seed(0)
    model = mantis.create_model(name, nf=8, depth=2, psp_depth=2)
    x = torch.rand(2, 3, 16, 16)
    if bf16_channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        x = x.contiguous(memory_format=torch.channels_last)
    inputs = (x, x.flip(-1)) if name in CHANGE else (x,)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_channels_last)
    start = time.perf_counter()
    compiled = torch.compile(model, fullgraph=True)  # fullgraph: any graph break raises
    with autocast:
        out = compiled(*inputs)
    # A random weighting of every output: a plain sum would give zero gradients through softmax heads.
    weights = [torch.rand(t.shape, generator=torch.Generator().manual_seed(i)) for i, t in enumerate(out)]
    sum((t.float() * w).sum() for t, w in zip(out, weights)).backward()
    grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    seconds = time.perf_counter() - start
    model.zero_grad()
    with autocast:
        ref = model(*inputs)
    sum((t.float() * w).sum() for t, w in zip(ref, weights)).backward()
    out_err = max((a - b).abs().max().item() for a, b in zip(out, ref))
    # Relative to the largest gradient entry of the model: some gradients are zero in exact arithmetic (a bias
    # before a norm) and only rounding noise in both modes, so a per-parameter relative error would mislead.
    eager_grads = [p.grad for p in model.parameters() if p.grad is not None]
    scale = max(g.abs().max().item() for g in eager_grads)
    grad_err = max((g - e).abs().max().item() for g, e in zip(grads, eager_grads)) / scale
    return f"| `{name}` | yes | {seconds:.0f} | {out_err:.1e} | {grad_err:.1e} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--bf16-channels-last", action="store_true", help="bf16 autocast, channels-last model")
    args = parser.parse_args()
    print("| model | fullgraph | compile + first step s | max output diff | max gradient diff / max gradient |")
    print("|---|---|---:|---:|---:|")
    for name in args.models:
        print(check(name, args.bf16_channels_last), flush=True)


if __name__ == "__main__":
    main()
