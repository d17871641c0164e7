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
