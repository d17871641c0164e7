"""Whether another of PyTorch's CPU convolution kernels would run a network's convolutions faster than the one
training uses.

    .venv/bin/python benchmarks/conv_kernels.py [--precision 32|bf16] [--models ...] [--repeats 5] [--write-docs]

Every convolution call of one forward pass of each network at demo size (nf 16, depth 4, PSP depth 3; a batch of
eight 128² windows: one band for the segmentation networks, as the SpaceNet tile, three-band pairs for the change
detectors) is recorded with its input shape, weight and groups. Each distinct call is then timed alone, forward
and backward (the input's gradient only where the network needs it, as in training), in three ways:

- ``channels-last``: oneDNN on channels-last maps through ``mantis.nn.grouped.Conv2d`` where the network uses it
  (narrow groups merged as block-diagonal groups of 8 where that path applies), as ``mantis fit`` trains;
- ``contiguous``: oneDNN on contiguous maps, groups as they are;
- ``native``: oneDNN switched off (``torch.backends.mkldnn.flags(enabled=False)``): PyTorch's own kernels, on
  contiguous maps.

The networks' maps are channels-last, so the last two ways include copying the input into contiguous memory and
the output back (and their gradients, in the backward pass): what choosing that kernel for one call would cost.

The table sums each way over the calls (times the number of calls), with "best per call" the sum of the fastest
of the three for each call: what choosing the kernel per convolution could at most save. The plain U-Net of
``benchmarks/plain_unet.py`` is measured the same way as the baseline.
"""

from __future__ import annotations

import argparse
import collections
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from benchmarks.common import interleaved_medians, machine_line, write_section  # noqa: E402

SECTION = "Convolution kernels at demo size"
DEMO = {"nf": 16, "depth": 4, "psp_depth": 3}
NETWORKS = {
    "fractal_resunet": (1, False, DEMO),
    "plain_unet": (1, False, {"nf": 16, "depth": 4}),
    "ceecnet_v2": (3, True, DEMO),
}
WAYS = ("channels-last", "contiguous", "native")


class Call(NamedTuple):
    """One convolution call of the forward pass: what it needs to be rebuilt and timed alone."""

    input_shape: tuple[int, ...]
    weight_shape: tuple[int, ...]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    mantis_conv: bool
    input_grad: bool


def record_calls(name: str) -> collections.Counter[Call]:
    """The convolution calls of one training-mode forward pass of ``name`` at demo size, counted."""
    from benchmarks.plain_unet import register
    from mantis.models import create_model
    from mantis.nn.grouped import Conv2d as MantisConv2d

    register()
    bands, pair, kwargs = NETWORKS[name]
    model = create_model(name, in_channels=bands, num_classes=2, **kwargs)
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    inputs = [torch.randn(8, bands, 128, 128).contiguous(memory_format=torch.channels_last) for _ in range(1 + pair)]
    calls: collections.Counter[Call] = collections.Counter()

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], _: object) -> None:
        assert isinstance(module, nn.Conv2d)
        x = args[0]
        calls[
            Call(
                tuple(x.shape),
                tuple(module.weight.shape),
                (module.stride[0], module.stride[1]),
                (int(module.padding[0]), int(module.padding[1])),
                (module.dilation[0], module.dilation[1]),
                module.groups,
                isinstance(module, MantisConv2d),
                x.requires_grad,
            )
        ] += 1

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    model(*inputs)
    for h in hooks:
        h.remove()
    return calls


def time_call(call: Call, dtype: torch.dtype, repeats: int) -> dict[str, float]:
    """Median seconds of one forward and backward of ``call`` in each way, the ways interleaved."""
    return interleaved_medians({way: _step(call, way, dtype) for way in WAYS}, repeats=repeats)


def build(call: Call, way: str, dtype: torch.dtype) -> tuple[nn.Conv2d, torch.Tensor]:
    """The convolution and an input of ``call`` for the ``way`` named (the input channels-last, as in the network)."""
    from mantis.nn.grouped import Conv2d as MantisConv2d
    from mantis.nn.layout import channels_last

    kind = MantisConv2d if call.mantis_conv and way == "channels-last" else nn.Conv2d
    conv = kind(
        call.input_shape[1],
        call.weight_shape[0],
        (call.weight_shape[2], call.weight_shape[3]),
        stride=call.stride,
        padding=call.padding,
        dilation=call.dilation,
        groups=call.groups,
    ).to(dtype)
    if way == "channels-last":
        conv = conv.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    x = channels_last(torch.randn(call.input_shape, dtype=dtype))
    return conv, x.requires_grad_(call.input_grad)


def forward(conv: nn.Conv2d, x: torch.Tensor, way: str) -> torch.Tensor:
    """``conv(x)`` computed the ``way`` named; the output channels-last, as the network's next layer takes it."""
    with torch.backends.mkldnn.flags(enabled=way != "native"):
        if way == "channels-last":
            return conv(x)
        # The other ways pay for the copies into their layout and back (their gradients too, in the backward).
        return conv(x.contiguous()).contiguous(memory_format=torch.channels_last)


def _step(call: Call, way: str, dtype: torch.dtype) -> Callable[[], None]:
    """One forward and backward of ``call`` computed the ``way`` named."""
    conv, x = build(call, way, dtype)

    def step() -> None:
        y = forward(conv, x, way)
        with torch.backends.mkldnn.flags(enabled=way != "native"):
            y.backward(torch.ones_like(y))

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", choices=("32", "bf16"), default="32")
    parser.add_argument("--models", nargs="+", choices=sorted(NETWORKS), default=list(NETWORKS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = torch.float32 if args.precision == "32" else torch.bfloat16
    rows, wins = [], []
    spent: dict[str, dict[str, float]] = {}
    for name in args.models:
        calls = record_calls(name)
        totals = dict.fromkeys((*WAYS, "best"), 0.0)
        for call, count in calls.items():
            seconds = {way: s * count for way, s in time_call(call, dtype, args.repeats).items()}
            for way, s in seconds.items():
                totals[way] += s
            totals["best"] += min(seconds.values())
            best = min(seconds, key=seconds.__getitem__)
            if seconds[best] < 0.9 * seconds["channels-last"] and seconds["channels-last"] >= 0.005:
                wins.append(
                    f"| {name} | {count} | {'x'.join(map(str, call.input_shape))} | "
                    f"{'x'.join(map(str, call.weight_shape))} / {call.groups} | {best} | "
                    f"{seconds['channels-last'] * 1e3:.0f} | {seconds[best] * 1e3:.0f} |"
                )
            print(name, count, call.input_shape, call.weight_shape, call.groups, seconds, flush=True)
        spent[name] = totals
        ms = {k: v * 1e3 for k, v in totals.items()}
        rows.append(
            f"| {name} | {sum(calls.values())} | "
            + " | ".join(f"{ms[w]:.0f}" for w in WAYS)
            + f" | {ms['best']:.0f} | {totals['channels-last'] / totals['best']:.2f} |"
        )
    ratio = ""
    if {"fractal_resunet", "plain_unet"} <= spent.keys():
        frac, unet = spent["fractal_resunet"], spent["plain_unet"]
        ratio = (
            f"FracTAL ResUNet's convolutions / the plain U-Net's: {frac['channels-last'] / unet['channels-last']:.2f}x "
            f"as trained, {frac['best'] / unet['best']:.2f}x with the fastest way for every call of both."
        )
    body = "\n".join(
        [
            f"- Command: `python benchmarks/conv_kernels.py --precision {args.precision} --repeats {args.repeats}`",
            f"- {machine_line()}",
            f"- Each network's convolutions, one forward and backward of every call of a forward pass, "
            f"{'float32' if dtype == torch.float32 else 'bf16'}, summed in milliseconds.",
            "",
            "| network | calls | channels-last (as trained) | contiguous | native | best per call "
            "| channels-last / best |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            ratio,
            "",
            "Calls of at least 5 ms where another way is at least 10 % faster than channels-last "
            "(milliseconds, all calls of the shape):",
            "",
            "| network | calls | input | weight / groups | fastest | channels-last | fastest |",
            "|---|---:|---|---|---|---:|---:|",
            *(wins or ["| (none) | | | | | | |"]),
        ]
    )
    print(body)
    if args.write_docs:
        write_section(SECTION + ("" if dtype == torch.bfloat16 else " in float32"), body)


if __name__ == "__main__":
    main()
