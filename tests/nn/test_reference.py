"""Fidelity: our blocks, loaded with the authors' weights, reproduce their outputs (about 1e-5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from mantis.losses import FractalTanimotoLoss, MultitaskLoss, TanimotoWithComplementLoss
from mantis.nn.attention import CATFusion, FracTALAttention, Fusion
from mantis.nn.functional import fractal_tanimoto
from mantis.nn.heads import ConditionedMultitaskHead
from mantis.nn.pooling import PSPPooling
from mantis.nn.units import CEECUnitV1, CEECUnitV2, FracTALResNetUnit
from tests.reference import load_case, load_reference

ATOL = 1e-5


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a))


def _zero_gates(module: nn.Module) -> None:
    for name, p in module.named_parameters():
        if name.rsplit(".", 1)[-1] in ("gamma", "gamma1", "gamma2", "gamma3") and p.numel() == 1:
            p.data.zero_()


@pytest.mark.parametrize(
    ("case", "depth", "nheads"),
    [("c_ftattention", 5, 4), ("c_ftattention_ftdepth0", 0, 4), ("c_ftattention_decode_ungrouped", 5, 1)],
)
def test_self_attention(case: str, depth: int, nheads: int) -> None:
    c = load_case(case)
    m = FracTALAttention(16, 16, nheads=nheads, attention_depth=depth)
    load_reference(m, c, prefix="att.")
    with torch.no_grad():
        out = m(_t(c["in__x"]))
    torch.testing.assert_close(out, _t(c["out__att"]), atol=ATOL, rtol=0)


def test_relative_attention_three_inputs() -> None:
    c = load_case("c_relftattention_3inputs")
    m = FracTALAttention(16, 16, nheads=4)
    load_reference(m, c)
    with torch.no_grad():
        out = m(_t(c["in__q_src"]), _t(c["in__k_src"]), _t(c["in__v_src"]))
    torch.testing.assert_close(out, _t(c["out__att"]), atol=ATOL, rtol=0)


@pytest.mark.parametrize("gates_zero", [False, True])
@pytest.mark.parametrize(
    ("case", "make"), [("d_fusion", lambda: Fusion(32, nheads=4)), ("d_catfusion", lambda: CATFusion(16, 32, nheads=1))]
)
def test_fusions(case: str, make: object, gates_zero: bool) -> None:
    c = load_case(case)
    m = make()  # type: ignore[operator]
    load_reference(m, c)
    if gates_zero:
        _zero_gates(m)
    with torch.no_grad():
        out = m(_t(c["in__x1"]), _t(c["in__x2"]))
    key = "out__fuse__gates_zero" if gates_zero else "out__fuse"
    torch.testing.assert_close(out, _t(c[key]), atol=ATOL, rtol=0)


@pytest.mark.parametrize("gates_zero", [False, True])
@pytest.mark.parametrize(
    ("case", "make"),
    [
        ("d_fractalresnet_unit", lambda: FracTALResNetUnit(32, nheads=4, groups=4)),
        ("d_ceec_v1", lambda: CEECUnitV1(32, nheads=4)),
        ("d_ceec_v2", lambda: CEECUnitV2(32, nheads=4)),
    ],
)
def test_units(case: str, make: object, gates_zero: bool) -> None:
    c = load_case(case)
    m = make()  # type: ignore[operator]
    load_reference(m, c)
    if gates_zero:
        _zero_gates(m)
    with torch.no_grad():
        out = m(_t(c["in__x"]))
    key = "out__out__gates_zero" if gates_zero else "out__out"
    torch.testing.assert_close(out, _t(c[key]), atol=ATOL, rtol=0)


def test_psp_pooling() -> None:
    c = load_case("e_psp")
    m = PSPPooling(32, 32, depth=4)
    load_reference(m, c)
    with torch.no_grad():
        out = m(_t(c["in__x"]))
    torch.testing.assert_close(out, _t(c["out__out"]), atol=ATOL, rtol=0)


def test_conditioned_multitask_head() -> None:
    c = load_case("f_head_cmtsk")
    m = ConditionedMultitaskHead(32, 2)
    load_reference(m, c)
    with torch.no_grad():
        out = m(_t(c["in__UpConv4"]), _t(c["in__conv1"]))
    for got, key in zip(out, ("out__segm", "out__bound", "out__dist")):
        torch.testing.assert_close(got, _t(c[key]), atol=ATOL, rtol=0)


PAIRS = {
    "rand": ("p_rand", "l_rand"),
    "zeros": (None, None),
    "zero_vs_rand": (None, "l_rand"),
    "same": ("p_rand", "p_rand"),
}


@pytest.mark.parametrize("pair", sorted(PAIRS))
@pytest.mark.parametrize(("axis", "dim"), [("axis1", 1), ("axis23", (2, 3))])
@pytest.mark.parametrize("depth", [0, 1, 5, 10])
def test_fractal_tanimoto_matches_reference(pair: str, axis: str, dim: int | tuple[int, int], depth: int) -> None:
    c = load_case("a_ftanimoto")
    shape = c["in__p_rand"].shape
    p_key, l_key = PAIRS[pair]
    p = _t(c[f"in__{p_key}"]) if p_key else torch.zeros(shape)
    l = _t(c[f"in__{l_key}"]) if l_key else torch.zeros(shape)  # noqa: E741
    got = fractal_tanimoto(p, l, depth, dim)
    # The reference itself drifts by up to 5e-6 from the exact value for p == l at depth 10.
    torch.testing.assert_close(got, _t(c[f"out__{pair}__{axis}__depth{depth}"]), atol=ATOL, rtol=0)


@pytest.mark.parametrize("depth", [0, 5, 10])
@pytest.mark.parametrize(
    ("kind", "p", "l"),
    [("softmax_onehot", "preds_softmax", "labels_onehot"), ("uniform", "preds_uniform", "labels_uniform")],
)
def test_fractal_tanimoto_loss_reference(depth: int, kind: str, p: str, l: str) -> None:  # noqa: E741
    c = load_case("b_losses")
    got = FractalTanimotoLoss(depth, reduction="none")(_t(c[f"in__{p}"]), _t(c[f"in__{l}"]))
    torch.testing.assert_close(got, _t(c[f"out__ftnmt_loss__{kind}__depth{depth}"]), atol=ATOL, rtol=0)


@pytest.mark.parametrize("depth", [0, 5])
def test_multitask_loss_reference(depth: int) -> None:
    c = load_case("b_losses")
    labels = _t(c["in__labels_mtsk"])
    outputs = {
        "segmentation": _t(c["in__preds_softmax"]),
        "boundary": _t(c["in__bound_pred"]),
        "distance": _t(c["in__dist_pred"]),
    }
    targets = {"segmentation": labels[:, :2], "boundary": labels[:, 2:4], "distance": labels[:, 4:6]}
    got = MultitaskLoss(depth, reduction="none")(outputs, targets)
    torch.testing.assert_close(got, _t(c[f"out__mtsk_loss__depth{depth}"]), atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    ("labels", "key"), [("labels_onehot", "softmax_onehot"), ("labels_allclass0", "softmax_allclass0")]
)
def test_resunet_a_tanimoto_with_complement_reference(labels: str, key: str) -> None:
    c = load_case("b_losses")
    sim = TanimotoWithComplementLoss().similarity(_t(c["in__preds_softmax"]), _t(c[f"in__{labels}"]))
    torch.testing.assert_close(sim, _t(c[f"out__resuneta_tanimoto_wth_dual__{key}"]), atol=ATOL, rtol=0)
