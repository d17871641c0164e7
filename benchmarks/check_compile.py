"""Check that ``torch.compile(model, fullgraph=True)`` compiles every segmentation and change-detection model
without a graph break, and that compiled outputs and gradients match eager ones.

    .venv/bin/python benchmarks/check_compile.py [--models ...] [--bf16-channels-last] [--noise-only [--full-size]]

The last column is the rounding noise of the setting itself (eager against eager in the next precision up),
the scale against which the compiled-vs-eager gradient difference is to be read.

Not part of the test suite: compiling each model takes one to several minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import cast

# Compile from scratch: a warm on-disk inductor cache would hide the compile time we report.
os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")

import torch  # noqa: E402

import mantis

MODELS = ["fractal_resunet", "resunet_a_d6", "resunet_a_d7", "ceecnet_v1", "ceecnet_v2", "fractal_resnet_cd"]


def run(
    model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], bf16: bool
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Outputs and parameter gradients of one forward + backward of a random weighting of every output."""
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(*inputs)
    # A random weighting: a plain sum would give zero gradients through softmax heads.
    weights = [torch.rand(t.shape, generator=torch.Generator().manual_seed(i)) for i, t in enumerate(out)]
    sum((t.double() * w.double()).sum() for t, w in zip(out, weights)).backward()
    grads = [p.grad.double().clone() for p in model.parameters() if p.grad is not None]
    return [t.detach().double() for t in out], grads


def grad_diff(grads: list[torch.Tensor], ref: list[torch.Tensor]) -> float:
    # Relative to the largest gradient entry of the model: some gradients are zero in exact arithmetic (a bias
    # before a norm) and only rounding noise in both modes, so a per-parameter relative error would mislead.
    scale = max(g.abs().max().item() for g in ref)
    return max((g - r).abs().max().item() for g, r in zip(grads, ref)) / scale


def build(name: str, full_size: bool = False) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    if full_size:  # the default network, one 256^2 image
        model, x = mantis.create_model(name), torch.rand(1, 3, 256, 256)
    else:
        model, x = mantis.create_model(name, nf=8, depth=2, psp_depth=2), torch.rand(2, 3, 16, 16)
    return model, ((x, x.flip(-1)) if mantis.model_info(name).pair else (x,))


def channels_last(
    model: torch.nn.Module, inputs: tuple[torch.Tensor, ...]
) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model, tuple(t.contiguous(memory_format=torch.channels_last) for t in inputs)


def rounding_noise(name: str, bf16_channels_last: bool, full_size: bool = False) -> float:
    """Gradient difference of eager mode against eager in the next precision up (fp64 for fp32, fp32 for bf16)."""
    model, inputs = build(name, full_size)
    if bf16_channels_last:
        _, ref_grads = run(model, inputs, False)
        _, grads = run(*channels_last(model, inputs), True)
    else:
        _, grads = run(model, inputs, False)
        _, ref_grads = run(model.double(), tuple(t.double() for t in inputs), False)
    return grad_diff(grads, ref_grads)


def check(name: str, bf16_channels_last: bool = False) -> str:
    model, inputs = build(name)
    if bf16_channels_last:
        model, inputs = channels_last(model, inputs)
    start = time.perf_counter()
    compiled = cast(torch.nn.Module, torch.compile(model, fullgraph=True))  # fullgraph: a graph break raises
    out, grads = run(compiled, inputs, bf16_channels_last)
    seconds = time.perf_counter() - start
    eager_out, eager_grads = run(model, inputs, bf16_channels_last)
    out_err = max((a - b).abs().max().item() for a, b in zip(out, eager_out))
    return (
        f"| `{name}` | yes | {seconds:.0f} | {out_err:.1e} | {grad_diff(grads, eager_grads):.1e} "
        f"| {rounding_noise(name, bf16_channels_last):.1e} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--bf16-channels-last", action="store_true", help="bf16 autocast, channels-last model")
    parser.add_argument("--noise-only", action="store_true", help="only the last column (eager, no compiling)")
    parser.add_argument("--full-size", action="store_true", help="with --noise-only: default networks at 256^2")
    args = parser.parse_args()
    if args.noise_only:
        print("| model | eager vs higher precision: max gradient diff / max gradient |\n|---|---:|")
        for name in args.models:
            print(f"| `{name}` | {rounding_noise(name, args.bf16_channels_last, args.full_size):.1e} |", flush=True)
        return
    print(
        "| model | fullgraph | compile + first step s | max output diff | max gradient diff / max gradient "
        "| eager vs higher precision, same measure |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for name in args.models:
        print(check(name, args.bf16_channels_last), flush=True)


if __name__ == "__main__":
    main()
