"""Does each network learn from a few real images? Train from scratch for a fixed wall time through the CLI.

    .venv/bin/python benchmarks/real_data.py [--task cd seg] [--models ...] [--seeds 0 1 2] [--minutes 15]
                                             [--shared ../shared] [--workdir /tmp/mantis-real] [--write-docs]

Every run is ``mantis fit ... --test_after_fit true`` in a fresh process with the task's default recipe; only
the data, the network size ("demo size": nf 16, depth 4), the window and batch size and the wall time are set
here. A straightforward U-Net (``benchmarks/plain_unet.py``) is trained the same way as the bar.

- Change detection: the nine LEVIR-CD pairs of ``shared/data/levir-cd-samples`` (256², 0.5 m). Split fixed here:
  six pairs train (among them the no-change pair, the forest clearing and the large construction site),
  ``val_27`` validates (best checkpoint, learning-rate schedule) and the two pairs of new houses on cleared
  land, ``test_121`` and ``test_55``, test. Score: change-class F1 of the best checkpoint on the test pairs.
- Segmentation: the SpaceNet Atlanta tile of ``shared/data/spacenet-atlanta-sample`` (900², panchromatic,
  uint16) with its 43 building footprints burnt from ``geotiff_labels.geojson`` (the folder's mask file is of
  another place, see :func:`spacenet_mask`), cut into four 450² quadrants written to ``--workdir``: the
  bottom-left quadrant tests, the other three train; no validation split (constant learning rate, last
  weights tested). Score: building F1.

After every training epoch a callback scores the test split for the report only (it changes nothing in the
run); each run's line (and its record) also gives the mean of those scores over the second half of the
time, steadier than the end score on the small test splits. Results go to ``<workdir>/results.json``;
``--write-docs`` writes the section of docs/benchmarks.md.
The data are read from ``--shared`` and never copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning
import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]  # the code of this checkout, even beside another install

from benchmarks.common import machine_line, write_section  # noqa: E402

LEVIR_TRAIN = [
    "train_36_0512_0512.png",
    "train_386_0512_0768.png",
    "train_412_0512_0768.png",
    "test_2_0000_0000.png",
    "test_2_0000_0512.png",
    "test_77_0512_0256.png",
]
LEVIR_VAL = ["val_27_0000_0256.png"]
LEVIR_TEST = ["test_121_0768_0256.png", "test_55_0256_0000.png"]
DEMO_SIZE = {"nf": 16, "depth": 4, "psp_depth": 3}
MODELS = {
    "cd": ["fractal_resnet_cd", "ceecnet_v1", "ceecnet_v2", "plain_unet_cd"],
    "seg": ["fractal_resunet", "plain_unet"],
}
POSITIVE = {"cd": "change", "seg": "building"}
SECTION = "Learning from a few real images"


class EpochScores(lightning.Callback):
    """After each training epoch (and its validation): F1 of class 1 on the test split, appended to a JSON-lines file.

    For the report only: the model is put back in training mode and nothing else is touched.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.start = 0.0

    def on_fit_start(self, trainer: lightning.Trainer, pl_module: Any) -> None:
        """Start the clock."""
        self.start = time.monotonic()

    def on_train_epoch_end(self, trainer: lightning.Trainer, pl_module: Any) -> None:
        """Score the test split with the current weights."""
        elapsed = time.monotonic() - self.start
        dataset = trainer.datamodule._dataset("test")  # type: ignore[attr-defined]
        loader = torch.utils.data.DataLoader(dataset, batch_size=8)
        confusion = torch.zeros(2, 2, dtype=torch.long)
        was_training = pl_module.training
        pl_module.eval()
        bf16 = str(trainer.precision).startswith("bf16")
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            for batch in loader:
                _, scores, mask = pl_module.compute_loss(batch)
                keep = mask != 255
                pred, true = scores.argmax(1)[keep], mask[keep]
                confusion += torch.bincount(true * 2 + pred, minlength=4).reshape(2, 2)
        pl_module.train(was_training)
        tp, fp, fn = int(confusion[1, 1]), int(confusion[0, 1]), int(confusion[1, 0])
        val = trainer.callback_metrics.get(pl_module.monitor.replace("mcc", "f1"))
        record = {
            "epoch": trainer.current_epoch,
            "step": trainer.global_step,
            "seconds": round(elapsed, 1),
            "test_f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan"),
            "test_positive_share": float(confusion[:, 1].sum()) / max(int(confusion.sum()), 1),
            "val_f1": float(val) if val is not None else None,
            "lr": pl_module.current_lr(),
        }
        with self.path.open("a") as out:
            out.write(json.dumps(record) + "\n")


def spacenet_mask(source: Path) -> np.ndarray:
    """The building footprints of ``geotiff_labels.geojson`` burnt into the image's pixel grid (uint8 0/1).

    The folder's ``sample_fp_mask.tif`` is not this image's mask: it has no georeference and overlaps these
    footprints with an IoU of 0.04 (it shows a denser neighbourhood), so the labels are made from the polygons.
    """
    import rasterio
    from rasterio import features

    with rasterio.open(source / "sample_geotiff.tif") as image:
        shape, transform = image.shape, image.transform
    polygons = json.loads((source / "geotiff_labels.geojson").read_text())["features"]
    return features.rasterize([p["geometry"] for p in polygons], out_shape=shape, transform=transform, dtype="uint8")


def prepare_spacenet(shared: Path, workdir: Path) -> Path:
    """Four 450² quadrants of the SpaceNet tile as images/ and masks/ GeoTIFFs, with split files; returns the folder."""
    from mantis.data.io import read_image, write_image

    source = shared / "data" / "spacenet-atlanta-sample"
    folder = workdir / "spacenet-quadrants"
    image, mask = read_image(source / "sample_geotiff.tif"), spacenet_mask(source)
    half = image.shape[-1] // 2
    names = []
    for i, (r, c) in enumerate([(0, 0), (0, half), (half, 0), (half, half)]):
        name = f"q{i}.tif"
        write_image(folder / "images" / name, np.ascontiguousarray(image[:, r : r + half, c : c + half]))
        write_image(folder / "masks" / name, np.ascontiguousarray(mask[r : r + half, c : c + half]))
        names.append(name)
    # The bottom-left quadrant (9 buildings) tests; the other three (18, 15 and 6 buildings) train.
    (folder / "train.txt").write_text("\n".join([names[0], names[1], names[3]]) + "\n")
    (folder / "test.txt").write_text(names[2] + "\n")
    return folder


def prepare_levir(shared: Path, workdir: Path) -> Path:
    """Split files for the LEVIR pairs (the images stay where they are); returns the folder of the lists."""
    folder = workdir / "levir-split"
    folder.mkdir(parents=True, exist_ok=True)
    for stage, names in (("train", LEVIR_TRAIN), ("val", LEVIR_VAL), ("test", LEVIR_TEST)):
        (folder / f"{stage}.txt").write_text("\n".join(names) + "\n")
    return folder


def run_config(task: str, model: str, seed: int, minutes: float, data: Path, run_dir: Path, shared: Path) -> dict:
    """The CLI config of one run: the task's defaults, demo-size network, 128² windows, batch 8, bf16."""
    kwargs = demo_size(model)
    trainer = {
        "accelerator": "cpu",
        "devices": 1,
        "precision": "bf16-mixed",
        "max_epochs": -1,
        "max_time": {"seconds": int(minutes * 60)},
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 5,
        "enable_progress_bar": False,
        "callbacks": [
            {"class_path": "benchmarks.real_data.EpochScores", "init_args": {"path": str(run_dir / "epochs.jsonl")}}
        ],
    }
    common = {"patch_size": 128, "batch_size": 8, "num_workers": 0, "samples_per_image": 16}
    task_class = "ChangeDetectionTask" if task == "cd" else "SegmentationTask"
    model_cfg = {"class_path": f"mantis.tasks.{task_class}", "init_args": {"model": model, "model_kwargs": kwargs}}
    if task == "cd":
        data_cfg = {
            "class_path": "mantis.data.ChangeDetectionDataModule",
            "init_args": {
                "root": str(shared / "data" / "levir-cd-samples"),
                **{f"{s}_file": str(data / f"{s}.txt") for s in ("train", "val", "test")},
                **common,
            },
        }
    else:
        data_cfg = {
            "class_path": "mantis.data.SegmentationDataModule",
            "init_args": {
                "root": str(data),
                "train_file": str(data / "train.txt"),
                "test_file": str(data / "test.txt"),
                "num_classes": 2,
                "class_names": ["background", "building"],
                # 36 windows of 128² per 450² quadrant and epoch: about twice its area
                **{**common, "samples_per_image": 36},
            },
        }
    return {
        "seed_everything": seed,
        "run_dir": str(run_dir),
        "test_after_fit": True,
        "trainer": trainer,
        "model": model_cfg,
        "data": data_cfg,
    }


def apply_settings(config: dict, items: Sequence[str]) -> None:
    """Apply ``--set`` items (``dotted.key=YAML value``) to ``config`` in place, making missing levels."""
    for item in items:
        key, value = item.split("=", 1)
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)


def demo_size(model: str) -> dict[str, int]:
    """The demo size as ``model`` takes it: the settings its constructor accepts (the plain U-Nets have no PSP)."""
    from benchmarks.plain_unet import register
    from mantis.models.registry import model_info

    register()
    accepted = model_info(model).arguments
    return {k: v for k, v in DEMO_SIZE.items() if accepted is None or k in accepted}


def child(config: Path) -> int:
    """Run ``mantis fit`` in this process with the plain U-Nets registered."""
    from benchmarks.plain_unet import register
    from mantis.cli import main as mantis_main

    register()
    return mantis_main(["fit", "--config", str(config)])


def run_one(task: str, model: str, seed: int, args: argparse.Namespace, data: Path) -> dict:
    """One training run in a fresh process; returns its per-epoch records and final test scores."""
    run_dir = args.workdir / "runs" / task / f"{model}{'-' + args.label if args.label else ''}-seed{seed}"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    config = run_dir.parent / f"{run_dir.name}.yaml"
    settings = run_config(task, model, seed, args.minutes, data, run_dir, args.shared)
    apply_settings(settings, args.set)
    callbacks = settings["trainer"]["callbacks"]
    if args.ema is not None:
        callbacks.append({"class_path": "mantis.tasks.averaging.EMAWeights", "init_args": {"decay": args.ema}})
    if args.epoch_checkpoints:  # for benchmarks/head_channels.py
        every_epoch = {"dirpath": str(run_dir / "epochs"), "filename": "{epoch:02d}", "save_top_k": -1}
        callbacks.append({"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": every_epoch})
    config.write_text(yaml.safe_dump(settings))
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
    }
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "_child", str(config)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - start
    (run_dir / "stdout.txt").write_text(proc.stdout + proc.stderr)
    if proc.returncode:
        raise RuntimeError(f"{model} seed {seed} failed (exit {proc.returncode}); see {run_dir / 'stdout.txt'}")
    metrics = json.loads((run_dir / "test_metrics.json").read_text())["metrics"]
    epochs = [json.loads(line) for line in (run_dir / "epochs.jsonl").read_text().splitlines()]
    name = POSITIVE[task]
    return {
        "task": task,
        "model": model + (f" ({args.label})" if args.label else ""),
        "seed": seed,
        "minutes": args.minutes,
        "threads": args.threads,
        "wall_s": round(wall, 1),
        "steps": epochs[-1]["step"] if epochs else 0,
        "epochs": len(epochs),
        "test_f1": metrics.get(f"f1_{name}"),
        "test_iou": metrics.get(f"iou_{name}"),
        "test_mcc": metrics.get(f"mcc_{name}"),
        "test_positive_share": _positive_share(metrics, name),
        "checkpoint": "best by validation MCC" if task == "cd" else "last",
        "late_mean_f1": late_mean(epochs, args.minutes),
        "per_epoch": epochs,
    }


def late_mean(epochs: list[dict], minutes: float) -> float | None:
    """Mean test F1 of the epochs that ended in the second half of the wall time (None if there were none).

    Steadier than the end score where the test split is small (SpaceNet's test quadrant holds 9 buildings:
    one seed's F1 moves by 0.1-0.2 between neighbouring epochs).
    """
    late = [_score(e["test_f1"]) for e in epochs if e["seconds"] > minutes * 60 / 2]
    return statistics.mean(late) if late else None


def _score(f1: float | None) -> float:
    """A missing or NaN F1 (the class never predicted nor present) counts as 0."""
    return 0.0 if f1 is None or math.isnan(f1) else float(f1)


def _positive_share(metrics: dict[str, Any], name: str) -> float | None:
    """Share of the test pixels predicted as class ``name``: (tp + fp) / pixels, with tp = recall x support."""
    support = {k: v for k, v in metrics.items() if k.startswith("support_") and v is not None}
    total = sum(support.values())
    recall, precision = metrics.get(f"recall_{name}"), metrics.get(f"precision_{name}")
    if precision is None:  # never predicted
        return 0.0
    if not total or recall is None or not precision:
        return None
    return recall * support[f"support_{name}"] / precision / total


def _mean_sd(values: Sequence[float | None]) -> str:
    clean = [_score(v) for v in values]
    if not clean:
        return "-"
    sd = statistics.stdev(clean) if len(clean) > 1 else 0.0
    return f"{statistics.mean(clean):.3f} ± {sd:.3f} (min {min(clean):.3f})"


def _curve(records: list[dict], minutes: float) -> list[str]:
    """Mean test F1 over seeds at a few wall times: each run's last epoch scored before that time."""
    marks = [m for m in (1, 2, 5, 10, 15, 20, 25, 30) if m <= minutes + 1e-9]
    cells = []
    for m in marks:
        values = []
        for run in records:
            before = [e["test_f1"] for e in run["per_epoch"] if e["seconds"] <= m * 60]
            values.append(_score(before[-1]) if before else 0.0)
        cells.append(f"{statistics.mean(values):.2f}")
    return cells


def _at_steps(records: list[dict], marks: Sequence[int]) -> list[str]:
    """Mean test F1 over seeds after a few numbers of steps: each run's last epoch ending at or before them
    ('-' where a run stopped earlier), to compare networks whose steps cost differently."""
    cells = []
    for mark in marks:
        values = []
        for run in records:
            before = [e["test_f1"] for e in run["per_epoch"] if e["step"] <= mark]
            if run["steps"] < mark:
                break
            values.append(_score(before[-1]) if before else 0.0)
        cells.append(f"{statistics.mean(values):.2f}" if len(values) == len(records) else "-")
    return cells


STEP_MARKS = (100, 250, 500, 1000, 1500, 2000, 3000, 4000)


def markdown(results: list[dict], args: argparse.Namespace) -> str:
    """The docs/benchmarks.md section, from every run recorded in the work folder."""
    tasks = [t for t in MODELS if any(r["task"] == t for r in results)]
    minutes = {t: max(r.get("minutes", args.minutes) for r in results if r["task"] == t) for t in tasks}
    threads = sorted({r.get("threads", args.threads) for r in results})
    lines = [
        "Each network trained from scratch through `mantis fit ... --test_after_fit true` with the task's default "
        "recipe for a fixed wall time, several seeds; a straightforward U-Net (`benchmarks/plain_unet.py`: "
        "conv-BN-ReLU x 2 per level, early fusion of the dates) trained the same way is the bar. Data, split and "
        "scores are described in the script's docstring (LEVIR-CD: 6 pairs train, 1 validates, 2 test; SpaceNet: "
        "3 quadrants train, 1 tests).",
        "",
        *(
            f"- Command ({task}): `python benchmarks/real_data.py --task {task} --seeds 0 1 2 "
            f"--minutes {minutes[task]:g} --write-docs` (runs may be added a few at a time with --models and "
            "--seeds: results accumulate in the work folder)"
            for task in tasks
        ),
        f"- {machine_line()} One run at a time, {'/'.join(map(str, threads))} threads each.",
        "",
    ]
    for task in tasks:
        runs = [r for r in results if r["task"] == task]
        if not runs:
            continue
        title = (
            "Change detection, LEVIR-CD (change F1)" if task == "cd" else "Segmentation, SpaceNet Atlanta (building F1)"
        )
        lines += [f"### {title}", ""]
        marks = [m for m in (1, 2, 5, 10, 15, 20, 25, 30) if m <= minutes[task] + 1e-9]
        lines.append(
            "| network | seeds | steps | test F1 at the end: mean ± sd (min) | per seed | predicted share | "
            + " | ".join(f"{m} min" for m in marks)
            + " |"
        )
        lines.append("|---|---:|---:|---|---|---:|" + "---:|" * len(marks))
        for model in dict.fromkeys(r["model"] for r in runs):
            mine = [r for r in runs if r["model"] == model]
            per_seed = ", ".join("-" if r["test_f1"] is None else f"{r['test_f1']:.2f}" for r in mine)
            shares = [r["test_positive_share"] for r in mine if r["test_positive_share"] is not None]
            share = f"{statistics.mean(shares):.3f}" if shares else "-"
            steps = round(statistics.mean(r["steps"] for r in mine))
            end = _mean_sd([r["test_f1"] for r in mine])
            curve = " | ".join(_curve(mine, minutes[task]))
            lines.append(f"| {model} | {len(mine)} | {steps} | {end} | {per_seed} | {share} | {curve} |")
        lines.append("")
        lines += [
            "Test F1 (mean over seeds) after the same number of training steps:",
            "",
            "| network | " + " | ".join(f"{m} steps" for m in STEP_MARKS) + " |",
            "|---|" + "---:|" * len(STEP_MARKS),
        ]
        for model in dict.fromkeys(r["model"] for r in runs):
            mine = [r for r in runs if r["model"] == model]
            lines.append(f"| {model} | " + " | ".join(_at_steps(mine, STEP_MARKS)) + " |")
        lines.append("")
    lines.append(
        "The minute columns are the test F1 (mean over seeds) of the weights at the end of the last epoch before "
        "that time, scored for the report only; the end column is what `--test_after_fit` reports "
        "(change detection: the best checkpoint by validation MCC; segmentation: the last weights). "
        "'predicted share' is the share of test pixels predicted as the positive class at the end "
        "(true share: LEVIR test 0.164, SpaceNet test quadrant "
        f"{SPACENET_TEST_SHARE:.3f})."
    )
    if any(" (" in r["model"] for r in results):
        lines.append(
            "A name in brackets is the variant (`--label`) or the earlier commit a row was measured at, before "
            "changes that alter a step's cost."
        )
    if args.notes is not None:
        lines.append(args.notes.read_text().strip())
    return "\n".join(lines)


SPACENET_TEST_SHARE = 0.0  # filled in from the data by main()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", nargs="+", choices=["cd", "seg"], default=["cd", "seg"])
    parser.add_argument("--models", nargs="+", default=None, help="default: every network of the task and the bar")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--minutes", type=float, default=15.0, help="wall time of each training run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mantis-real-data"))
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change the config of every run, e.g. model.init_args.loss_per_class=false (an ablation)",
    )
    parser.add_argument("--label", default="", help="name of the variant in the results (with --set)")
    parser.add_argument(
        "--ema", type=float, default=None, help="also average the weights (mantis.tasks.averaging.EMAWeights decay)"
    )
    parser.add_argument(
        "--epoch-checkpoints", action="store_true", help="keep a checkpoint of every epoch (<run>/epochs/)"
    )
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--report", action="store_true", help="train nothing: rebuild the report from the work folder")
    parser.add_argument(
        "--notes", type=Path, default=None, help="a text file appended to the report (how particular runs went)"
    )
    args = parser.parse_args(argv)
    args.workdir = args.workdir.resolve()
    if not (args.shared / "data").is_dir():
        parser.error(f"{args.shared / 'data'}: not found (give --shared)")
    global SPACENET_TEST_SHARE
    data = {"cd": prepare_levir(args.shared, args.workdir), "seg": prepare_spacenet(args.shared, args.workdir)}
    from mantis.data.io import read_mask

    SPACENET_TEST_SHARE = float((read_mask(data["seg"] / "masks" / "q2.tif") > 0).mean())
    results_path = args.workdir / f"results{'-' + args.label if args.label else ''}.json"
    # earlier runs of other (task, model, seed) are kept, so the benchmark can be run a few runs at a time
    results: list[dict] = json.loads(results_path.read_text()) if results_path.exists() else []
    for task in [] if args.report else args.task:
        models = [m for m in (args.models or MODELS[task]) if m in MODELS[task]]
        for model in models:
            for seed in args.seeds:
                result = run_one(task, model, seed, args, data[task])
                key = (result["task"], result["model"], result["seed"])
                results = [r for r in results if (r["task"], r["model"], r["seed"]) != key] + [result]
                print(
                    f"{task} {model} seed {seed}: test F1 {result['test_f1']}, {result['steps']} steps, "
                    f"{result['epochs']} epochs, {result['wall_s']:.0f} s; mean test F1 over the second half of "
                    f"the time {result['late_mean_f1']}",
                    flush=True,
                )
                results_path.write_text(json.dumps(results, indent=1))
    text = markdown(results, args)
    print(text)
    if args.write_docs:
        write_section(SECTION, text)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_child":
        sys.exit(child(Path(sys.argv[2])))
    main()
