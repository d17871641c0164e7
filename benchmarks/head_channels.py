"""Which classes can a trained segmentation head still express? Its last hidden channels, class by class.

    .venv/bin/python benchmarks/head_channels.py CHECKPOINT... --root DIR --files LIST [--patch-size 128] [--branches]

The conditioned multitask head of the FracTAL networks ends its segmentation branch in
``normed conv -> ReLU -> 1x1 conv -> softmax``. Channel i of that last hidden layer votes for class k where its
weight toward k is above its mean weight toward the other classes. For each checkpoint (``mantis fit``'s
``.ckpt``) this scores every window of the listed images (the folder layout of training, the checkpoint's own
normalisation, no augmentation) and reports per class:

- how many hidden channels vote for it, and on how many of its pixels at least one of them is active;
- the largest probability the head gives it on any pixel;
- the share of its pixels on which every hidden channel is silent: there the prediction is set by the biases
  of the 1x1 convolution alone, ``softmax(b)``, whatever the input.

A class whose voting channels are all dead (never active) can only be predicted on silent pixels, with the
probability ``softmax(b)_k``: as long as its bias is below another class's, on no pixel at all. That is the
"no change everywhere" start of some runs (docs/training.md, "When the network predicts one class everywhere").

With ``--branches`` it reports instead, for each branch of the head (distance, boundary, segmentation), how many
of its last hidden channels are dead (never active) or nearly (active on under 1 % of the pixels), and for the
boundary output its largest value and its F1 at 0.5 per class against the boundary targets.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]


def _batches(meta: Any, root: Path, files: Path, patch_size: int) -> list[dict[str, torch.Tensor]]:
    """Every window of the listed images, as the test split of the task's data module scores them."""
    from mantis.data import ChangeDetectionDataModule, SegmentationDataModule

    module = ChangeDetectionDataModule if meta.pair else SegmentationDataModule
    norm: dict[str, Any] = {"auto_stats": False, "multitask": True}
    if not meta.pair and meta.class_names:  # masks of more than two classes
        norm["num_classes"] = len(meta.class_names)
    if meta.band_mean is not None:
        norm.update(mean=list(meta.band_mean), std=list(meta.band_std))
    data = module(root=str(root), test_file=str(files), patch_size=patch_size, batch_size=8, num_workers=0, **norm)
    data.setup("test")
    dataset: Any = data._dataset("test")
    return list(torch.utils.data.DataLoader(dataset, batch_size=8))


def probe(checkpoint: Path, batches: list[dict[str, torch.Tensor]], meta: Any, model: torch.nn.Module) -> list[str]:
    """One line per class: voting channels, their activity on the class's pixels, largest probability."""
    logits: Any = model.get_submodule("head.segm_logits.logits")
    hidden: list[torch.Tensor] = []
    hook = logits[-2].register_forward_hook(lambda _m, _i, out: hidden.append(out.detach()))
    probs, masks = [], []
    with torch.no_grad():
        for batch in batches:
            images = (batch["image1"], batch["image2"]) if meta.pair else (batch["image"],)
            probs.append(model(*images).segmentation.float())
            masks.append(batch["mask"])
    hook.remove()
    k = probs[0].shape[1]
    features = torch.cat(hidden).movedim(1, -1).reshape(-1, logits[-1].in_channels)
    prob = torch.cat(probs).movedim(1, -1).reshape(-1, k)
    mask = torch.cat(masks).reshape(-1)
    keep = mask != 255
    features, prob, mask = features[keep], prob[keep], mask[keep]
    weight, bias = logits[-1].weight.flatten(1), logits[-1].bias
    active = features > 0
    silent = ~active.any(1)
    names = meta.class_names or [str(i) for i in range(k)]
    lines = [f"{checkpoint}: {silent.float().mean():.3f} of the pixels silent (prediction = softmax of the biases)"]
    for c in range(k):
        others = torch.cat([weight[:c], weight[c + 1 :]]).mean(0)
        voters = (weight[c] - others) > 0
        own = mask == c
        reached = (active[own][:, voters].any(1).float().mean() if own.any() else torch.tensor(float("nan"))).item()
        lines.append(
            f"  {names[c]}: {int(voters.sum())} of {len(voters)} channels vote for it, at least one active on "
            f"{reached:.3f} of its pixels; silent on {silent[own].float().mean():.3f} of them; bias {bias[c]:+.3f}; "
            f"largest probability {prob[:, c].max():.3f}"
        )
    return lines


def branches(checkpoint: Path, batches: list[dict[str, torch.Tensor]], meta: Any, model: torch.nn.Module) -> list[str]:
    """Per branch of the head (distance, boundary, segmentation): its dead last hidden channels; and how well the
    boundary output has learnt: its largest value and its F1 at 0.5 per class, against the boundary targets."""
    hidden: dict[str, list[torch.Tensor]] = {}
    hooks = []
    for branch in ("distance_logits", "bound_logits", "segm_logits"):
        layers: Any = model.get_submodule(f"head.{branch}.logits")
        hidden[branch] = []
        hooks.append(layers[-2].register_forward_hook(lambda _m, _i, out, b=branch: hidden[b].append(out.detach())))
    boundary = []
    with torch.no_grad():
        for batch in batches:
            images = (batch["image1"], batch["image2"]) if meta.pair else (batch["image"],)
            boundary.append(model(*images).boundary.float())
    for hook in hooks:
        hook.remove()
    lines = [f"{checkpoint}:"]
    for branch, maps in hidden.items():
        active = (torch.cat(maps).movedim(1, -1).flatten(0, -2) > 0).float().mean(0)
        lines.append(
            f"  {branch}: {int((active == 0).sum())} of {len(active)} last hidden channels dead, "
            f"{int((active < 0.01).sum())} active on under 1 % of the pixels"
        )
    pred = torch.cat(boundary)
    true = torch.cat([b["boundary"] for b in batches]) > 0.5
    axes = [0, *range(2, pred.dim())]
    tp, fp = (pred.gt(0.5) & true).sum(axes), (pred.gt(0.5) & ~true).sum(axes)
    fn = (pred.le(0.5) & true).sum(axes)
    f1 = (2 * tp / (2 * tp + fp + fn).clamp_min(1)).tolist()
    lines.append(
        "  boundary: largest value per class "
        + ", ".join(f"{v:.2f}" for v in pred.amax(axes).tolist())
        + "; F1 at 0.5 per class "
        + ", ".join(f"{v:.2f}" for v in f1)
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--root", type=Path, required=True, help="the data folder, laid out as for training")
    parser.add_argument("--files", type=Path, required=True, help="a list of the images to score (a split file)")
    parser.add_argument("--patch-size", type=int, default=128)
    parser.add_argument("--branches", action="store_true", help="dead channels of every branch, boundary F1")
    args = parser.parse_args()
    from mantis.inference.checkpoint import load_model

    batches = None
    for checkpoint in args.checkpoints:
        model, meta = load_model(checkpoint)
        batches = batches or _batches(meta, args.root, args.files, args.patch_size)
        report = branches if args.branches else probe
        print("\n".join(report(checkpoint, batches, meta, model.eval())), flush=True)


if __name__ == "__main__":
    main()
