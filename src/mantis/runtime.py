"""Process settings that make long CPU runs faster."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 * 2**20  # glibc's largest: blocks up to 32 MiB come from the reusable heap
_TRIM_THRESHOLD = 2**31 - 1  # freed heap memory stays with the process
_TOP_PAD = 256 * 2**20


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks for reuse instead of returning them to the system; True if it did.

    A training step frees and re-allocates hundreds of feature maps of a few MiB. By default glibc gives
    blocks of that size back to the kernel, and every new one is paid again in page faults: about 2 GiB of
    fresh pages per FracTAL step at 128², 7-10 % of the step on a 2-core CPU (docs/benchmarks.md). The cost
    is a resident size that stays at its peak. Skipped (False) off glibc, or when the user set
    ``MALLOC_*`` variables or ``MANTIS_KEEP_MEMORY=0``.
    """
    if not sys.platform.startswith("linux") or os.environ.get("MANTIS_KEEP_MEMORY", "1") == "0":
        return False
    if any(name.startswith("MALLOC_") for name in os.environ) or "GLIBC_TUNABLES" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = [
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD),
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD),
        mallopt(_M_TOP_PAD, _TOP_PAD),
    ]
    return all(result == 1 for result in done)


BF16_PRECISIONS = ("bf16-mixed", "bf16-true", "bf16")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX), as oneDNN reports it."""
    import torch

    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def bf16_training_fallback(precision: object, accelerator: object) -> str | None:
    """``"32-true"`` where a bfloat16 ``precision`` would train on a CPU that only emulates bfloat16, else None.

    Without AVX512-BF16 or AMX every bfloat16 operation is converted in software: a FracTAL training step at
    demo size took 6.4 s in bf16-mixed against 0.97 s in float32 on such a 2-core CPU (26x the 0.25 s of a CPU
    with AVX512-BF16). ``MANTIS_CPU_BF16=1`` keeps bfloat16 anyway (e.g. to check numerics).
    """
    import torch

    if str(precision) not in BF16_PRECISIONS or os.environ.get("MANTIS_CPU_BF16") == "1":
        return None
    if str(accelerator) == "auto":
        if torch.cuda.is_available() or torch.backends.mps.is_available():
            return None
    elif str(accelerator) != "cpu":
        return None
    return None if cpu_has_native_bf16() else "32-true"
