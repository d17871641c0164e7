"""The Triton attention core: interpreted against the reference form, compiled for sm_90, off the CPU path.

The value and gradient cases live in ``triton_interpreted_cases.py`` and run here in a child process with
TRITON_INTERPRET=1, which Triton reads when it is imported (it must not leak into the rest of the suite).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton", reason="Triton is not installed (pip install 'mantis-cd[gpu]')")

from mantis.nn import triton_attention  # noqa: E402
from mantis.nn.attention import attend, fractal_similarity_maps  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _child(args: list[str], interpret: bool) -> subprocess.CompletedProcess[str]:
    env = {key: val for key, val in os.environ.items() if key != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    env["OMP_NUM_THREADS"] = "1"
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_interpreted_kernels_match_the_reference_form() -> None:
    """fp32 and bf16, 1D/2D/3D, depths 1-10, ragged tiles, layouts, opcheck (see triton_interpreted_cases.py)."""
    cases = "tests/nn/triton_interpreted_cases.py"
    args = ["-m", "pytest", cases, "-o", "addopts=", "-q", "-p", "no:cacheprovider", "-W", "ignore", "-rs"]
    run = _child(args, interpret=True)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout, run.stdout[-2000:]


def test_the_kernels_compile_for_sm90_with_the_real_compiler() -> None:
    """The interpreter accepts constructs the compiler rejects: lower every kernel to a cubin, no GPU needed."""
    run = _child(["-m", "tests.nn.triton_compile_check", "90"], interpret=False)
    if run.returncode != 0 and "ptxas" in run.stderr and "not found" in run.stderr:
        pytest.skip("this Triton build has no CUDA compiler tools (ptxas)")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("cubin") == 15


def test_cpu_tensors_stay_on_the_pytorch_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object) -> torch.Tensor:
        raise AssertionError("the Triton core ran on CPU tensors")

    monkeypatch.setattr(triton_attention, "fractal_attention", fail)
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.rand(1, 3, 4, 4, generator=g) for _ in range(3))
    assert not triton_attention.supports(q, k, v)
    sp, ch = fractal_similarity_maps(q, k, 5)
    torch.testing.assert_close(attend(q, k, v, 5), 0.5 * v * (sp + ch))
