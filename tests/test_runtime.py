"""Process settings: freed feature maps are reused, not paid again in page faults."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")

_PROBE = textwrap.dedent(
    """
    import resource, sys, torch
    from mantis.runtime import keep_freed_memory

    kept = keep_freed_memory() if sys.argv[1] == "keep" else False
    def faults():
        start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):  # as in a training step: 20 maps of 4 MiB held, then all freed
            maps = [torch.empty(2**20).fill_(1) for _ in range(20)]
            del maps
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start
    faults()
    print(kept, faults())
    """
)


def _probe(mode: str, **env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], env={**clean, **env}, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1])


def test_freed_maps_are_reused_without_new_page_faults() -> None:
    kept, faults = _probe("keep")
    if kept != "True":
        pytest.skip("not glibc")
    # 5 x 20 maps of 4 MiB are 102,400 pages; kept memory is reused, so almost none fault again.
    assert faults < 2000
    if _probe("default")[1] < 50_000:
        pytest.skip("this allocator keeps the memory by itself: nothing to compare with")


def test_the_user_can_switch_it_off() -> None:
    assert _probe("keep", MANTIS_KEEP_MEMORY="0")[0] == "False"
    assert _probe("keep", MALLOC_ARENA_MAX="2")[0] == "False"  # the user's own malloc settings win


@pytest.mark.parametrize(
    ("precision", "accelerator", "cuda", "native", "keep", "expected"),
    [
        ("bf16-mixed", "cpu", False, False, False, "32-true"),
        ("bf16-true", "auto", False, False, False, "32-true"),
        ("bf16", "cpu", False, False, False, "32-true"),
        ("bf16-mixed", "auto", True, False, False, None),  # the GPU runs it
        ("bf16-mixed", "gpu", False, False, False, None),
        ("bf16-mixed", "cpu", False, True, False, None),  # AVX512-BF16 or AMX
        ("bf16-mixed", "cpu", False, False, True, None),  # MANTIS_CPU_BF16=1
        ("32-true", "cpu", False, False, False, None),
        ("16-mixed", "cpu", False, False, False, None),
    ],
)
def test_bf16_training_falls_back_to_float32_only_on_a_cpu_that_emulates_it(
    monkeypatch: pytest.MonkeyPatch,
    precision: str,
    accelerator: str,
    cuda: bool,
    native: bool,
    keep: bool,
    expected: str | None,
) -> None:
    import torch

    from mantis import runtime

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    monkeypatch.delenv("MANTIS_CPU_BF16", raising=False)
    if keep:
        monkeypatch.setenv("MANTIS_CPU_BF16", "1")
    assert runtime.bf16_training_fallback(precision, accelerator) == expected
