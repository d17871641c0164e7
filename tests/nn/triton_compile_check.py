"""Compiles every Triton kernel (attention; GroupNorm + ReLU) with Triton's real compiler for a CUDA GPU, without one.

    python -m tests.nn.triton_compile_check [capability]     # prints one line per kernel and dtype

The interpreter runs kernels as NumPy and accepts constructs the compiler rejects; this lowers each kernel to a
cubin (TTIR, TTGIR, LLVM IR, PTX, ptxas) for sm_<capability>, so a kernel that does not compile fails here.
Run in a fresh process: TRITON_INTERPRET must be unset when the kernels are decorated.
"""

from __future__ import annotations

import sys

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from mantis.nn import triton_kernels, triton_norm_kernels

KERNELS = [
    (triton_kernels, ["_reduce_kernel", "_channel_kernel", "_apply_kernel", "_grad_v_kernel", "_grad_qk_kernel"]),
    (triton_norm_kernels, ["_stats_kernel", "_norm_relu_kernel", "_grad_sums_kernel", "_grad_kernel"]),
]
# Statistics, partial sums and per-channel coefficients: float32 whatever the data's dtype.
FLOAT32_POINTERS = {"sp_ptr", "ch_ptr", "part_ptr", "gsp_ptr", "gch_ptr"}
FLOAT32_POINTERS |= {"coef_ptr"}
# The tiles the launcher uses on large maps (32 x 64 with 4 warps, 32 x 128 with 8) and its smallest (1 x 2).
SETTINGS = {
    "fp32": ({"DEPTH": 5, "BLOCK_C": 32, "BLOCK_S": 64, "BLOCK_T": 64}, 4),
    "bf16": ({"DEPTH": 5, "BLOCK_C": 32, "BLOCK_S": 128, "BLOCK_T": 64}, 8),
    "fp16": ({"DEPTH": 1, "BLOCK_C": 1, "BLOCK_S": 2, "BLOCK_T": 1}, 4),
}


def signature(
    kernel: triton.JITFunction, dtype: str, values: dict[str, int]
) -> tuple[dict[str, str], dict[tuple[int, ...], int]]:
    """Argument types (data pointers of ``dtype``, stats in fp32, sizes i32, smooth fp32) and constexprs."""
    types: dict[str, str] = {}
    constexprs: dict[tuple[int, ...], int] = {}
    for i, name in enumerate(kernel.arg_names):
        if name in values:
            types[name] = "constexpr"
            constexprs[(i,)] = values[name]
        elif name.endswith("_ptr"):
            types[name] = "*fp32" if name in FLOAT32_POINTERS else f"*{dtype}"
        else:
            types[name] = "fp32" if name == "smooth" else "i32"
    return types, constexprs


def main(capability: int = 90) -> None:
    target = GPUTarget("cuda", capability, 32)
    for dtype, (values, warps) in SETTINGS.items():
        for module, names in KERNELS:
            for name in names:
                compile_one(getattr(module, name), name, dtype, values, warps, target, capability)


def compile_one(
    kernel: triton.JITFunction, name: str, dtype: str, values: dict[str, int], warps: int, target: GPUTarget, cap: int
) -> None:
    """Lowers one kernel to a cubin and prints its size."""
    types, constexprs = signature(kernel, dtype, values)
    source = ASTSource(kernel, types, constexprs=constexprs)
    compiled = triton.compile(source, target=target, options={"num_warps": warps})
    print(f"{name} {dtype} sm_{cap} {warps} warps: cubin {len(compiled.asm['cubin'])} bytes")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 90)
