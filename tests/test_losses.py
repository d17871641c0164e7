"""Losses: values, options and gradients."""

from __future__ import annotations

import pytest
import torch

from mantis.losses import FractalTanimotoLoss, MultitaskLoss, TanimotoWithComplementLoss, to_one_hot
from mantis.nn.functional import fractal_tanimoto


def _probs(b: int = 2, k: int = 3, s: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, k, s, s, generator=torch.Generator().manual_seed(seed)).softmax(1)


def test_loss_is_one_minus_similarity_per_sample() -> None:
    p, l = _probs(), _probs(seed=1)  # noqa: E741
    per_sample = FractalTanimotoLoss(depth=5, reduction="none")(p, l)
    assert per_sample.shape == (2,)
    torch.testing.assert_close(per_sample, 1 - fractal_tanimoto(p, l, 5, (1, 2, 3), keepdim=False))
    torch.testing.assert_close(FractalTanimotoLoss(depth=5)(p, l), per_sample.mean())


def test_perfect_prediction_has_zero_loss_and_depth_is_settable() -> None:
    mask = torch.randint(0, 3, (2, 6, 6))
    onehot = to_one_hot(mask, 3)
    loss = FractalTanimotoLoss()
    assert loss(onehot, mask).item() == pytest.approx(0.0, abs=1e-6)
    p = _probs()
    before = loss(p, mask).item()
    loss.depth = 10
    assert loss(p, mask).item() > before  # steeper with depth


def test_per_channel_reduction() -> None:
    p, l = _probs(), _probs(seed=1)  # noqa: E741
    got = FractalTanimotoLoss(depth=3, per_channel=True, reduction="none")(p, l)
    want = 1 - fractal_tanimoto(p, l, 3, (2, 3), keepdim=False).mean(1)
    torch.testing.assert_close(got, want)


def test_ignore_index_drops_pixels() -> None:
    mask = torch.randint(0, 2, (1, 6, 6))
    p = _probs(1, 2)
    ignored = mask.clone()
    ignored[0, :, 3:] = 255
    got = FractalTanimotoLoss(ignore_index=255)(p, ignored)
    want = FractalTanimotoLoss()(p[..., :3], mask[..., :3])
    torch.testing.assert_close(got, want)


def test_gradcheck_loss() -> None:
    logits = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    target = to_one_hot(torch.randint(0, 2, (1, 3, 3)), 2).double()
    assert torch.autograd.gradcheck(lambda z: FractalTanimotoLoss(depth=4)(z.softmax(1), target), (logits,))


def test_tanimoto_with_complement_weights() -> None:
    p = _probs(2, 2)
    l = to_one_hot(torch.randint(0, 2, (2, 6, 6)), 2)  # noqa: E741
    sim = TanimotoWithComplementLoss().similarity(p, l)
    # Direct transcription.
    vol = l.sum((2, 3)).mean(0)
    w = 1 / vol**2

    def t(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        num = (w * (a * b).sum((2, 3))).sum(1) + 1e-5
        return num / ((w * (a * a + b * b - a * b).sum((2, 3))).sum(1) + 1e-5)

    vol_c = (1 - l).sum((2, 3)).mean(0)
    torch.testing.assert_close(sim, 0.5 * (t(p, l, w) + t(1 - p, 1 - l, 1 / vol_c**2)))
    assert TanimotoWithComplementLoss()(l, l).item() == pytest.approx(0.0, abs=1e-6)


def test_multitask_loss_weights_and_tasks() -> None:
    out = {"segmentation": _probs(), "boundary": _probs(seed=2), "distance": _probs(seed=3)}
    tgt = {"segmentation": _probs(seed=4), "boundary": _probs(seed=5), "distance": _probs(seed=6)}
    single = {k: FractalTanimotoLoss(2, reduction="none")(out[k], tgt[k]) for k in out}
    got = MultitaskLoss(2, weights={"segmentation": 2.0, "boundary": 1.0, "distance": 1.0}, reduction="none")(out, tgt)
    torch.testing.assert_close(got, (2 * single["segmentation"] + single["boundary"] + single["distance"]) / 4)
    loss = MultitaskLoss()
    loss.depth = 20
    assert loss.ftnmt.depth == 20
    with pytest.raises(ValueError, match="no task in common"):
        MultitaskLoss()({"a": out["boundary"]}, tgt)


def test_multitask_loss_per_class_weighs_every_class_alike() -> None:
    out = {"segmentation": _probs(), "boundary": _probs(seed=2)}
    tgt = {"segmentation": _probs(seed=4), "boundary": _probs(seed=5)}
    got = MultitaskLoss(3, reduction="none", per_channel=True)(out, tgt)
    # Written out: each class's similarity over space, then the mean over classes, then the mean over heads.
    want = sum(1 - fractal_tanimoto(out[k], tgt[k], 3, (2, 3), keepdim=False).mean(1) for k in out) / 2
    torch.testing.assert_close(got, want)


def test_per_class_loss_does_not_let_the_majority_class_hide_the_rare_one() -> None:
    # 5 % of the pixels are class 1; predicting class 0 everywhere is nearly perfect for the joint reduction.
    mask = torch.zeros(1, 20, 20, dtype=torch.long)
    mask[0, :2, :10] = 1
    target = to_one_hot(mask, 2)
    all_majority = to_one_hot(torch.zeros_like(mask), 2)
    joint = MultitaskLoss(0)({"segmentation": all_majority}, {"segmentation": target}).item()
    per_class = MultitaskLoss(0, per_channel=True)({"segmentation": all_majority}, {"segmentation": target}).item()
    # joint: 1 - 380/420 (Tanimoto of the one-hot maps); per class: 1 - (380/400 + 0/20) / 2
    assert joint == pytest.approx(1 - 380 / 420, abs=1e-5)
    assert per_class == pytest.approx(1 - (380 / 400 + 0.0) / 2, abs=1e-5)
