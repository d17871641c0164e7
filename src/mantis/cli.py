"""The ``mantis`` command.

``mantis fit | validate | test`` run through Lightning's CLI (``--config FILE.yaml``, dotted overrides such
as ``--model.init_args.lr 1e-4``, ``--print_config``); ``mantis predict``, ``export``, ``stats`` and
``summary`` hand over to their own modules. Every run writes to its own folder (``--run_dir``, default
``runs/<run_name or model>/version_N``): the resolved ``config.yaml``, TensorBoard events, ``metrics.csv``,
``checkpoints/`` (``last.ckpt`` and the best by the task's monitor, validation MCC of the change class for
change detection), ``training_curves.png`` after ``fit``, and ``test_metrics.json`` / ``validate_metrics.json``.

Bad input ends the command before any training with ONE line on stderr, naming the file and the problem,
and exit status 2 (set ``MANTIS_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from mantis.data.errors import DataError

__all__ = ["MantisCLI", "main"]

PROG = "mantis"
LIGHTNING_COMMANDS = ("fit", "validate", "test")
TASKS = {
    "change_detection": "mantis.tasks.ChangeDetectionTask",
    "segmentation": "mantis.tasks.SegmentationTask",
    "classification": "mantis.tasks.ClassificationTask",
}
# Models whose output is one logits tensor, not the multitask heads.
SINGLE_HEAD_MODELS = ("mlp", "cnn")
# Module and function run by each non-Lightning command.
DISPATCH: dict[str, tuple[str, str]] = {
    "predict": ("mantis.inference.predict_cli", "main"),
    "export": ("mantis.inference.export_cli", "main"),
    "stats": ("mantis.data.stats", "main"),
    "summary": ("mantis.inspect.summary", "main"),
}
_RUN_DIR_ENV = "MANTIS_RUN_DIR"
_RUN_DIR_OWNER_ENV = "MANTIS_RUN_DIR_OWNER"
_METRICS_FILE = {"test": "test_metrics.json", "validate": "validate_metrics.json"}


class CommandError(Exception):
    """A user mistake found by the CLI itself; printed as one line."""


class RunConfigSaver(SaveConfigCallback):
    """Saves the resolved config in the run folder: ``config.yaml`` for fit, ``config_<stage>.yaml`` else."""

    def setup(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        """Pick the file name for this stage, then save as Lightning does."""
        if not self.already_saved:
            self.config_filename = "config.yaml" if stage == "fit" else f"config_{stage}.yaml"
        super().setup(trainer, pl_module, stage)


def _next_version(folder: Path) -> Path:
    versions = [int(m.group(1)) for p in folder.glob("version_*") if (m := re.fullmatch(r"version_(\d+)", p.name))]
    return folder / f"version_{max(versions, default=-1) + 1}"


def _is_child_process() -> bool:
    """True in the processes that Lightning's DDP launcher starts (they re-run this command)."""
    return os.environ.get(_RUN_DIR_OWNER_ENV) == str(os.getppid()) and _RUN_DIR_ENV in os.environ


class MantisCLI(LightningCLI):
    """LightningCLI with Mantis defaults: change detection on the built-in scenes, run folders with
    TensorBoard and CSV logs, ``last`` + best checkpoints, and the data's bands, classes and statistics
    passed to the task."""

    run_dir: Path

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """fit, validate and test (prediction on rasters is ``mantis predict``)."""
        return {k: v for k, v in LightningCLI.subcommands().items() if k in LIGHTNING_COMMANDS}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Run-folder options and the links from the data to the task."""
        parser.add_argument(
            "--run_dir", type=str | None, default=None, help="Folder of this run (default: runs/<name>/version_N)."
        )
        parser.add_argument(
            "--run_name", type=str | None, default=None, help="Name of the run family (default: the model name)."
        )
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=False,
            help="After fit, test the best checkpoint on the test split and write test_metrics.json.",
        )
        parser.set_defaults(
            {
                "model": {"class_path": TASKS["change_detection"], "init_args": {"model": "ceecnet_v1"}},
                "data": {"class_path": "mantis.data.ChangeDetectionDataModule"},
            }
        )
        for source, target in (
            ("data.in_channels", "model.init_args.in_channels"),
            ("data.num_classes", "model.init_args.num_classes"),
            ("data.class_names", "model.init_args.class_names"),
            ("data.ignore_index", "model.init_args.ignore_index"),
            ("data.mean", "model.init_args.band_mean"),
            ("data.std", "model.init_args.band_std"),
        ):
            parser.link_arguments(source, target, apply_on="instantiate")

    # -- before anything is built -------------------------------------------------------------

    def _subconfig(self) -> Any:
        return self.config[self.subcommand] if self.subcommand else self.config

    def before_instantiate_classes(self) -> None:
        """Give the data the targets the model needs; choose the run folder."""
        cfg = self._subconfig()
        model_name = cfg.model.init_args.get("model")
        data_args = cfg.data.init_args if cfg.get("data") is not None else None
        if data_args is not None and model_name is not None:
            if "multitask" in data_args:
                data_args.multitask = model_name not in SINGLE_HEAD_MODELS
            if "colour" in data_args:
                data_args.colour = str(model_name).startswith("resunet_a")
        self.run_dir = self._resolve_run_dir(cfg, model_name)

    def _resolve_run_dir(self, cfg: Any, model_name: str | None) -> Path:
        if _is_child_process():
            return Path(os.environ[_RUN_DIR_ENV])
        if cfg.get("run_dir"):
            run_dir = Path(cfg.run_dir)
            if (run_dir / "config.yaml").exists() and self.subcommand == "fit":
                raise CommandError(f"{run_dir}: already holds a run (config.yaml); choose another --run_dir")
        else:
            root = Path(cfg.trainer.get("default_root_dir") or "runs")
            run_dir = _next_version(root / (cfg.get("run_name") or model_name or "mantis"))
        os.environ[_RUN_DIR_ENV] = str(run_dir)
        os.environ[_RUN_DIR_OWNER_ENV] = str(os.getpid())
        return run_dir

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The trainer, with run-folder loggers and checkpoints unless the config sets its own."""
        trainer_cfg = self._get(self.config_init, "trainer", default={})
        if trainer_cfg.get("logger") in (None, True):
            kwargs["logger"] = [
                TensorBoardLogger(save_dir=str(self.run_dir), name="", version="", default_hp_metric=False),
                CSVLogger(save_dir=str(self.run_dir), name="", version=""),
            ]
        callbacks = list(trainer_cfg.get("callbacks") or [])
        if trainer_cfg.get("enable_checkpointing") is not False and not any(
            isinstance(c, ModelCheckpoint) for c in callbacks
        ):
            callbacks.append(
                ModelCheckpoint(
                    dirpath=str(self.run_dir / "checkpoints"),
                    filename="best-{epoch:03d}",
                    monitor=self.model.monitor,
                    mode=self.model.monitor_mode,
                    save_top_k=1,
                    save_last=True,
                )
            )
            kwargs["callbacks"] = callbacks
        return super().instantiate_trainer(**kwargs)

    # -- after each command ---------------------------------------------------------------------

    def after_fit(self) -> None:
        """Plot the training curves; with ``--test_after_fit``, test the best checkpoint."""
        cfg = self._subconfig()
        if self.trainer.is_global_zero:
            _plot_curves(self.run_dir)
        if cfg.get("test_after_fit"):
            callback = self.trainer.checkpoint_callback
            best = callback.best_model_path if isinstance(callback, ModelCheckpoint) else ""
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None)
            self._write_metrics("test", best or None)

    def after_validate(self) -> None:
        """Write ``validate_metrics.json``."""
        self._write_metrics("validate", self._subconfig().get("ckpt_path"))

    def after_test(self) -> None:
        """Write ``test_metrics.json``."""
        self._write_metrics("test", self._subconfig().get("ckpt_path"))

    def _write_metrics(self, stage: str, ckpt_path: str | None) -> None:
        if not self.trainer.is_global_zero:
            return
        results = self.model.test_results if stage == "test" else self.model.val_results
        hp = self.model.hparams
        record = {
            "stage": stage,
            "task": hp.get("task"),
            "model": hp.get("model"),
            "model_kwargs": hp.get("model_kwargs"),
            "checkpoint": ckpt_path,
            "metrics": results,
        }
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / _METRICS_FILE[stage]
        path.write_text(json.dumps(record, indent=2, allow_nan=False) + "\n")
        print(f"{stage} metrics written to {path}")

    # -- checkpoints --------------------------------------------------------------------------

    def _parse_ckpt_path(self) -> None:
        """A checkpoint given with ``--ckpt_path`` must exist; its task and network settings apply."""
        if not self.config.get("subcommand"):
            return
        sub = self.config[self.config.subcommand]
        ckpt_path = sub.get("ckpt_path")
        if not ckpt_path or ckpt_path in ("last", "best", "hpc", "registry"):
            return
        path = Path(ckpt_path)
        if not path.is_file():
            raise CommandError(f"{ckpt_path}: checkpoint not found")
        try:
            ckpt = torch.load(path, weights_only=True, map_location="cpu")
        except Exception as error:  # any unreadable file: say so in one line
            raise CommandError(f"{ckpt_path}: not a readable checkpoint ({type(error).__name__})") from None
        hparams = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
        task = hparams.get("task")
        if task not in TASKS:
            raise CommandError(f"{ckpt_path}: not a Mantis checkpoint (no known 'task' in its hyper-parameters)")
        links = {"in_channels", "num_classes", "class_names", "ignore_index", "band_mean", "band_std"}
        init_args = {k: v for k, v in hparams.items() if k not in links | {"task"} and not k.startswith("_")}
        # The data gives bands and classes; the checkpoint's network must agree with them (checked by the task).
        update = {"model": {"class_path": TASKS[task], "init_args": init_args}}
        self.config = self.parser.parse_object({self.config.subcommand: update}, self.config)


def _plot_curves(run_dir: Path) -> None:
    csv = run_dir / "metrics.csv"
    if not csv.is_file():
        return
    from mantis.plots import plot_training_curves

    plot_training_curves(csv, run_dir / "training_curves.png")


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _dispatch(command: str, argv: list[str]) -> int:
    module_name, function = DISPATCH[command]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        print(f"{PROG} {command}: unavailable: cannot import {error.name} ({_one_line(error)})", file=sys.stderr)
        return 2
    entry: Callable[[list[str]], int] = getattr(module, function)
    return int(entry(argv) or 0)


def _usage() -> str:
    commands = ", ".join((*LIGHTNING_COMMANDS, *DISPATCH))
    return f"usage: {PROG} COMMAND [options]; commands: {commands}; '{PROG} COMMAND --help' for each"


def run_lightning_command(argv: Sequence[str] | None) -> MantisCLI:
    """Run ``fit``, ``validate`` or ``test`` (``argv`` starts with the command; ``None``: ``sys.argv[1:]``)
    and return the CLI object.

    Errors propagate; :func:`main` turns them into one line.
    """
    no_exit = {"exit_on_error": False}
    return MantisCLI(
        model_class=None,
        datamodule_class=None,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=RunConfigSaver,
        save_config_kwargs={"overwrite": True},
        seed_everything_default=0,
        parser_kwargs={
            "prog": PROG,
            **no_exit,
            **{cmd: {**no_exit, "default_config_files": []} for cmd in LIGHTNING_COMMANDS},
        },
        args=None if argv is None else list(argv),
        auto_configure_optimizers=False,
        load_from_checkpoint_support=False,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mantis``; returns the exit status.

    Args:
        argv: the arguments after ``mantis`` (default ``sys.argv[1:]``).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage(), file=sys.stderr if not args else sys.stdout)
        return 0 if args else 2
    command = args[0]
    debug = os.environ.get("MANTIS_DEBUG", "") not in ("", "0")
    if command in DISPATCH:
        return _dispatch(command, args[1:])
    if command not in LIGHTNING_COMMANDS:
        print(f"{PROG}: error: unknown command {command!r}; {_usage()}", file=sys.stderr)
        return 2
    try:
        run_lightning_command(None if argv is None else args)
    except SystemExit as stop:  # --help, --print_config
        code = stop.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except (CommandError, DataError, ValueError, FileNotFoundError, TypeError, KeyError) as error:
        if debug:
            raise
        print(f"{PROG} {command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
