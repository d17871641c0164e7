"""The ``mantis`` command.

``mantis fit | validate | test`` run through Lightning's CLI (``--config FILE.yaml``, dotted overrides
such as ``--model.lr 1e-4`` or ``--data.patch_size 512``, ``--print_config``); ``mantis predict``,
``export``, ``stats`` and ``summary`` hand over to their own modules. Every run writes to its own folder
(``--run_dir``, default ``runs/<run_name or model>/version_N``): the resolved ``config.yaml``, TensorBoard
events, ``metrics.csv``, ``checkpoints/`` (``last.ckpt`` and the best by the task's monitor, validation MCC
of the change class for change detection), ``training_curves.png`` after ``fit``, and
``test_metrics.json`` / ``validate_metrics.json``.

Bad input ends the command before any training with ONE line on stderr, naming the file and the problem,
and exit status 2 (set ``MANTIS_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import re
import sys
import warnings
from argparse import ArgumentError
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from jsonargparse import ParserError, get_loader, set_loader
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.plugins.io import CheckpointIO

from mantis.cli_defaults import with_bare_defaults
from mantis.commands import USER_ERRORS, CommandError, debugging, one_line, run_command
from mantis.data.former_keywords import FORMER_FLAT_AUGMENT, field_names, move_former_keywords
from mantis.entry import main as entry_main
from mantis.entry import usage
from mantis.inference.spec import WindowSpec
from mantis.inference.tiled_test import use_tiled_test, window_spec
from mantis.io.errors import DataError
from mantis.io.folders import writable_folder
from mantis.models.registry import check_model_kwargs, list_models, model_info
from mantis.run_folders import (
    ContinuingCSVLogger,
    claim_next_version,
    latest_checkpoint,
    missing_folders,
    remove_empty_folders,
    run_folder_of,
)
from mantis.runtime import bf16_training_fallback, keep_freed_memory
from mantis.tasks.checkpoints import AtomicCheckpointIO, StepCheckpoint
from mantis.tasks.guards import StatusProgressBar

__all__ = ["MantisCLI", "main"]

PROG = "mantis"
LIGHTNING_COMMANDS = ("fit", "validate", "test")
TASKS = {
    "change_detection": "mantis.tasks.ChangeDetectionTask",
    "segmentation": "mantis.tasks.SegmentationTask",
    "classification": "mantis.tasks.ClassificationTask",
    "regression": "mantis.tasks.RegressionTask",
}
# Module and function run by each non-Lightning command.
DISPATCH: dict[str, tuple[str, str]] = {
    "predict": ("mantis.inference.predict_cli", "main"),
    "export": ("mantis.inference.export_cli", "main"),
    "stats": ("mantis.data.stats", "main"),
    "summary": ("mantis.inspect.summary", "main"),
    "conv": ("mantis.inspect.conv_cli", "main"),
    "visualize": ("mantis.inspect.visualize_cli", "main"),
    "evaluate": ("mantis.evaluate", "main"),
    "sweep": ("mantis.sweep", "main"),
    "report": ("mantis.report_cli", "main"),
    "convert": ("mantis.convert.cli", "main"),
}
#: How long bare `mantis fit` trains (not Lightning's 1000 epochs); configs set their own.
BARE_MAX_EPOCHS = 8
_RUN_DIR_ENV = "MANTIS_RUN_DIR"
_CREATED_FOLDERS: list[Path] = []  # deepest first
_RUN_DIR_OWNER_ENV = "MANTIS_RUN_DIR_OWNER"
_METRICS_FILE = {"test": "test_metrics.json", "validate": "validate_metrics.json"}


class RunConfigSaver(SaveConfigCallback):
    """Saves the resolved config in the run folder: ``config.yaml`` for fit, ``config_<stage>.yaml`` else."""

    def setup(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        """Pick the file name for this stage, then save as Lightning does."""
        if not self.already_saved:
            name = str(getattr(stage, "value", stage))  # Lightning passes a TrainerFn enum
            self.config_filename = "config.yaml" if name == "fit" else f"config_{name}.yaml"
            folder = Path(trainer.log_dir or ".")
            if name == "fit" and (folder / "config.yaml").exists():  # a resumed run: keep the first config
                number = 1
                while (folder / f"config_resume_{number}.yaml").exists():
                    number += 1
                self.config_filename = f"config_resume_{number}.yaml"
        super().setup(trainer, pl_module, stage)


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Lightning's progress messages go to stdout (stderr is for problems); advertisements are dropped."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        """Whatever ``sys.stdout`` is at the time of writing (tests swap it)."""
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass

    def filter(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        """Drop Lightning's product tips."""
        return not str(record.msg).startswith("\N{ELECTRIC LIGHT BULB}") and bool(super().filter(record))


def _route_lightning_logs() -> None:
    for name in ("lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
        if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
            logger.addHandler(_StdoutHandler())


NOISY_WARNINGS = (
    # the run folder holds config.yaml before the CSV logger starts: not a previous run's logs
    "Experiment logs directory .* exists and is not empty",
    ".*does not have many workers",
    "The number of training batches .* is smaller than the logging interval",
    ".*isinstance\\(treespec, LeafSpec\\)",
    # main() passes the command line on as args, with the bare defaults (mantis.cli_defaults) added
    "LightningCLI's args parameter is intended",
    # no validation split: the task says so in words (mantis.tasks.base); Lightning raises instead of warning
    # about a missing monitored key once validation has run, so a misspelt monitor still stops the run
    "Total length of `list` across ranks is zero",
    "`ModelCheckpoint\\(monitor=.*\\)` could not find the monitored key",
)


def _as_list(value: Any) -> list[Any]:
    """A config entry that may be one item, a list or absent, as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _is_child_process() -> bool:
    """True in the processes that Lightning's DDP launcher starts (they re-run this command)."""
    return (
        os.environ.get("LOCAL_RANK", "0") != "0"
        and os.environ.get(_RUN_DIR_OWNER_ENV) == str(os.getppid())
        and _RUN_DIR_ENV in os.environ
    )


class MantisCLI(LightningCLI):
    """LightningCLI with Mantis defaults: change detection on the built-in scenes, run folders with
    TensorBoard and CSV logs, ``last`` + best checkpoints, and the data's bands, classes and statistics
    passed to the task."""

    run_dir: Path
    best_checkpoint: ModelCheckpoint | None = None
    _resume_step = 0  # global step of the checkpoint given with --ckpt_path

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
            "--checkpoint_every_n_steps",
            type=int,
            default=100,
            help="Also write checkpoints/last.ckpt every N training steps (0: at epoch ends only).",
        )
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=False,
            help="After fit, test the best checkpoint on the test split and write test_metrics.json.",
        )
        parser.add_argument(
            "--test_window",
            type=WindowSpec | None,
            default=None,
            help="Test whole rasters tile by tile as mantis predict does, with these window settings "
            "(e.g. '{window: 256, stride: 64}'); default: windows of patch_size (docs/inference.md).",
        )
        # Bare `mantis fit`: a run that finishes on a laptop CPU (configs set their own values); its task and
        # data module come from mantis.cli_defaults, only where the user names none.
        parser.set_defaults({"trainer.max_epochs": BARE_MAX_EPOCHS})
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
        if model_name is not None:  # a misspelt model argument: one line now, before data or model are built
            check_model_kwargs(model_name, cfg.model.init_args.get("model_kwargs") or {})
        data_args = cfg.data.init_args if cfg.get("data") is not None else None
        if data_args is not None and model_name in list_models():
            info = model_info(model_name)  # what the model returns decides the targets the data make
            if "multitask" in data_args:
                data_args.multitask = info.multitask
            if "colour" in data_args:
                data_args.colour = info.colour
        self._use_fast_precision(cfg.trainer)
        self.run_dir = self._resolve_run_dir(cfg, model_name)

    def _use_fast_precision(self, trainer: Any) -> None:
        """bfloat16 asked for on a CPU that only emulates it (several times slower than float32): float32."""
        asked = trainer.get("precision")
        fallback = bf16_training_fallback(asked, trainer.get("accelerator", "auto"))
        if fallback is not None:
            trainer.precision = fallback
            print(
                f"{PROG} {self.subcommand}: this CPU has no bfloat16 instructions (AVX512-BF16 or AMX), so "
                f"trainer.precision {asked} would run several times slower than float32: training in {fallback} "
                "(MANTIS_CPU_BF16=1 keeps bfloat16)",
                file=sys.stderr,
            )

    def _resolve_run_dir(self, cfg: Any, model_name: str | None) -> Path:
        if _is_child_process():
            return Path(os.environ[_RUN_DIR_ENV])
        # `fit --ckpt_path` of a run's checkpoint continues that run in its own folder (unless --run_dir)
        home = run_folder_of(cfg.get("ckpt_path")) if self.subcommand == "fit" else None
        _CREATED_FOLDERS.clear()  # folders this command creates: removed again if it is refused before using them
        if cfg.get("run_dir"):
            run_dir = Path(cfg.run_dir)
            resuming_here = home is not None and run_dir.resolve() == home
            if (run_dir / "config.yaml").exists() and self.subcommand == "fit" and not resuming_here:
                raise CommandError(f"{run_dir}: already holds a run (config.yaml); choose another --run_dir")
            _CREATED_FOLDERS[:] = missing_folders(run_dir)
        elif home is not None:
            run_dir = home
        else:
            root = Path(cfg.trainer.get("default_root_dir") or "runs")
            family = root / (cfg.get("run_name") or model_name or "mantis")
            missing = missing_folders(family)
            try:
                run_dir = claim_next_version(family)
            except OSError as error:
                raise DataError(family, f"cannot create the run folder ({error.strerror or error})") from None
            _CREATED_FOLDERS[:] = [run_dir, *missing]
        writable_folder(run_dir)  # one line now if it cannot be written, not after setup or an epoch
        os.environ[_RUN_DIR_ENV] = str(run_dir)
        os.environ[_RUN_DIR_OWNER_ENV] = str(os.getpid())
        return run_dir

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The trainer, with run-folder loggers and checkpoints unless the config sets its own."""
        trainer_cfg = self._get(self.config_init, "trainer", default={})
        if not trainer_cfg.get("default_root_dir"):
            # Without a logger Lightning's log_dir (where config.yaml goes) is this root: the run folder, not cwd.
            kwargs["default_root_dir"] = str(self.run_dir)
        if trainer_cfg.get("logger") in (None, True):
            kwargs["logger"] = [
                TensorBoardLogger(save_dir=str(self.run_dir), name="", version="", default_hp_metric=False)
            ]
            if self.subcommand == "fit":
                # Not for validate/test: a CSV logger would replace the metrics.csv of a training run in the
                # same folder (their metrics go to *_metrics.json).
                continuing = run_folder_of(self._subconfig().get("ckpt_path")) == self.run_dir.resolve()
                resume_step = self._resume_step if continuing else 0
                kwargs["logger"].append(ContinuingCSVLogger(str(self.run_dir), resume_step=resume_step))
        callbacks = list(trainer_cfg.get("callbacks") or [])
        if trainer_cfg.get("enable_checkpointing") is not False and not any(
            isinstance(c, ModelCheckpoint) for c in callbacks
        ):
            folder = str(self.run_dir / "checkpoints")
            self.best_checkpoint = ModelCheckpoint(
                dirpath=folder,
                filename="best-{epoch:03d}",
                monitor=self.model.monitor,
                mode=self.model.monitor_mode,
                save_top_k=1,
            )
            # Lightning's save_last only writes when the best changes: keep the latest epoch separately.
            latest = ModelCheckpoint(dirpath=folder, filename="last", save_top_k=1, enable_version_counter=False)
            callbacks += [self.best_checkpoint, latest]
            every = self._subconfig().get("checkpoint_every_n_steps") or 0
            if every > 0:  # and within epochs, so that a kill loses at most `every` steps
                callbacks.append(StepCheckpoint(folder, every))
            kwargs["callbacks"] = callbacks
        if not any(isinstance(p, CheckpointIO) for p in _as_list(trainer_cfg.get("plugins"))):
            kwargs["plugins"] = [*_as_list(trainer_cfg.get("plugins")), AtomicCheckpointIO()]
        if trainer_cfg.get("enable_progress_bar") is not False and not any(
            isinstance(c, ProgressBar) for c in callbacks
        ):
            # Lightning's bar plus the task's warnings in words (e.g. one class predicted everywhere).
            kwargs["callbacks"] = [*callbacks, StatusProgressBar()]
        return super().instantiate_trainer(**kwargs)

    # -- after each command ---------------------------------------------------------------------

    def before_fit(self) -> None:
        """With ``--test_after_fit``, check the test files now rather than after training."""
        if self._subconfig().get("test_after_fit") and self.datamodule is not None:
            self.datamodule.setup("test")

    def after_fit(self) -> None:
        """Plot the training curves; with ``--test_after_fit``, test the best checkpoint."""
        cfg = self._subconfig()
        if self.trainer.is_global_zero:
            _plot_curves(self.run_dir)
        if cfg.get("test_after_fit"):
            callback = self.best_checkpoint or self.trainer.checkpoint_callback
            best = callback.best_model_path if isinstance(callback, ModelCheckpoint) else ""
            data = use_tiled_test(self.model, self.datamodule, window_spec(cfg.get("test_window")))
            self.trainer.test(self.model, datamodule=data, ckpt_path=best or None)
            self._write_metrics("test", best or None)

    def before_test(self) -> None:
        """With ``--test_window``, whole test rasters predicted tile by tile (mantis.inference.tiled_test)."""
        spec = window_spec(self._subconfig().get("test_window"))
        self.datamodule = use_tiled_test(self.model, self.datamodule, spec)

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

    @staticmethod
    def _latest_checkpoint(cfg: Any) -> Path:
        """``--ckpt_path last``: ``checkpoints/last.ckpt`` of the newest run of the run family."""
        root = Path(cfg.trainer.get("default_root_dir") or "runs")
        family = root / (cfg.get("run_name") or cfg.model.init_args.get("model") or "mantis")
        found = latest_checkpoint(family)
        if found is None:
            raise CommandError(f"{family}: no run with checkpoints/last.ckpt to resume (--ckpt_path last)")
        return found

    def _parse_ckpt_path(self) -> None:
        """A checkpoint given with ``--ckpt_path`` must exist; its task and network settings apply."""
        if not self.config.get("subcommand"):
            return
        sub = self.config[self.config.subcommand]
        ckpt_path = sub.get("ckpt_path")
        if ckpt_path == "last" and self.config.subcommand == "fit":
            ckpt_path = sub.ckpt_path = str(self._latest_checkpoint(sub))
        if not ckpt_path or ckpt_path in ("last", "best", "hpc", "registry"):
            return
        from mantis.inference.checkpoint import read_checkpoint

        checkpoint = read_checkpoint(ckpt_path)
        hparams = checkpoint["hyper_parameters"]
        self._resume_step = int(checkpoint.get("global_step") or 0)
        task = hparams.get("task")
        if task not in TASKS:
            raise CommandError(f"{ckpt_path}: not a Mantis checkpoint (no known 'task' in its hyper-parameters)")
        links = {"in_channels", "num_classes", "class_names", "ignore_index", "band_mean", "band_std"}
        init_args = {k: v for k, v in hparams.items() if k not in links | {"task"} and not k.startswith("_")}
        # The data gives bands and classes; the checkpoint's network must agree with them (checked by the task).
        update: dict[str, Any] = {"model": {"class_path": TASKS[task], "init_args": init_args}}
        data = sub.get("data")
        if data is not None and data.get("init_args") is not None:
            data_args = data.init_args
            if data_args.get("mean") is None and "auto_stats" in data_args:
                # Normalise as the checkpoint's network was trained (None: uint8 / 255), not with new statistics.
                stats = {"mean": hparams.get("band_mean"), "std": hparams.get("band_std"), "auto_stats": False}
                update["data"] = {"class_path": data.class_path, "init_args": stats}
        self.config = self.parser.parse_object({self.config.subcommand: update}, self.config)


def _plot_curves(run_dir: Path) -> None:
    csv = run_dir / "metrics.csv"
    if not csv.is_file():
        return
    from mantis.plots import plot_training_curves

    plot_training_curves(csv, run_dir / "training_curves.png")


_SKIPPED_PARSER_LINES = (
    "Does not validate against any",
    "Subtypes:",
    "Errors:",
    "Given value type:",
    "Given value:",
    "Expected a <class 'NoneType'>",
    "Not a valid subclass",
)


def config_error_line(message: str, args: Sequence[str] = ()) -> str:
    """One line from jsonargparse's nested error message: the dotted key, the problem and, when the key is
    not on the command line but written in a ``--config`` file of ``args``, that file.

    Example:
        ``configs/x.yaml: model.init_args.foo: unknown key`` for an option the task does not take.
    """
    keys: list[str] = []
    problem = ""
    for raw in message.splitlines():
        line = raw.strip().lstrip("- ").strip()
        if not line or line.startswith(_SKIPPED_PARSER_LINES):
            continue
        match = re.match(r'Parser key "([^"]+)":?\s*(.*)$', line)
        if match:
            keys.append(match.group(1))
            if match.group(2):
                problem = match.group(2)
                break
            continue
        if line.startswith("Problem with given class_path"):
            keys.append("init_args")
            continue
        problem = line
        break
    unknown = (
        re.fullmatch(r"Option '([^']+)' is not accepted", problem)
        or re.search(r'Key "([^"]+)" is not expected', problem)
        or re.search(r"does not accept option '([^']+)'", problem)
    )
    if unknown:
        keys.append(unknown.group(1))
        problem = "unknown key"
        former = keys[-1].split(".")[-1]
        if keys[0] == "data" and any(former in field_names(kind) for kind in FORMER_FLAT_AUGMENT.values()):
            problem += f" (the series and volume data modules take it under augment: data.init_args.augment.{former})"
    typed = re.fullmatch(r"Expected a <class '([^']+)'>\. Got value: (.*)", problem)
    if typed:
        problem = f"expected {typed.group(1)}, got {typed.group(2)!r}"
    key = ".".join(k for k in keys if k)
    text = f"{key}: {problem}" if key and problem else (problem or key or one_line(Exception(message)))
    name = keys[-1].split(".")[-1] if keys else ""
    if any(a.startswith("--") and re.search(rf"\b{re.escape(name)}\b", a) for a in args):
        return " ".join(text.split())
    for path in _config_files(args):
        try:
            if name and re.search(rf"\b{re.escape(name)}\b", Path(path).read_text()):
                return " ".join(f"{path}: {text}".split())
        except OSError:
            continue
    return " ".join(text.split())


def _config_files(args: Sequence[str]) -> list[str]:
    files = []
    for i, arg in enumerate(args):
        if arg in ("-c", "--config") and i + 1 < len(args):
            files.append(args[i + 1])
        elif arg.startswith("--config="):
            files.append(arg.split("=", 1)[1])
    return files


def _dispatch(command: str, argv: list[str]) -> int:
    module_name, function = DISPATCH[command]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        print(f"{PROG} {command}: unavailable: cannot import {error.name} ({one_line(error)})", file=sys.stderr)
        return 2
    entry: Callable[[list[str]], int] = getattr(module, function)
    try:
        return int(entry(argv) or 0)
    except SystemExit as stop:  # argparse's --help and usage errors
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)


def _usage() -> str:
    return usage()


def run_lightning_command(argv: Sequence[str] | None) -> MantisCLI:
    """Run ``fit``, ``validate`` or ``test`` (``argv`` starts with the command; ``None``: ``sys.argv[1:]``)
    and return the CLI object.

    Errors propagate; :func:`main` turns them into one line.
    """
    no_exit = {"exit_on_error": False}
    for message in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    _route_lightning_logs()
    child = _is_child_process()
    try:
        return _make_cli(argv, no_exit)
    finally:
        if not child:  # the run folder was for the processes this command started
            os.environ.pop(_RUN_DIR_ENV, None)
            os.environ.pop(_RUN_DIR_OWNER_ENV, None)
            remove_empty_folders(_CREATED_FOLDERS)  # claimed, then refused before anything was written
            _CREATED_FOLDERS.clear()


@contextlib.contextmanager
def _former_keywords_moved() -> Iterator[None]:
    """Configs read meanwhile have the former flat augmentation keys of the series and volume data modules moved
    into ``augment`` (:mod:`mantis.data.former_keywords`)."""
    plain = get_loader("yaml")
    set_loader("yaml", lambda text: move_former_keywords(plain(text)), (yaml.YAMLError,))
    try:
        yield
    finally:
        set_loader("yaml", plain, (yaml.YAMLError,))


def _make_cli(argv: Sequence[str] | None, no_exit: dict[str, Any]) -> MantisCLI:
    with _former_keywords_moved():
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
                "allow_abbrev": False,
                # No abbreviations: a misspelt --trainer.max_epoch must not pass for --trainer.max_epochs.
                **{cmd: {**no_exit, "default_config_files": [], "allow_abbrev": False} for cmd in LIGHTNING_COMMANDS},
            },
            args=None if argv is None else list(argv),
            auto_configure_optimizers=False,
            load_from_checkpoint_support=False,
        )


T = TypeVar("T")


def guarded(command: str, run: Callable[[], T], args: Sequence[str] = ()) -> tuple[int, T | None]:
    """Call ``run()`` under :mod:`mantis.commands`' policy; config-parser errors are shortened to one line.

    Returns:
        ``(exit status, result)``, the result being ``None`` unless ``run`` finished.
    """
    result: list[T] = []

    def body() -> int:
        try:
            result.append(run())
        except (ArgumentError, ParserError) as error:
            if debugging():
                raise
            raise CommandError(config_error_line(str(error), args)) from None
        except ValueError as error:
            # A class that refused its arguments while the parser built it: report the class's own reason.
            cause = error.__cause__
            if str(error).startswith("Does not validate against any") and isinstance(cause, USER_ERRORS):
                raise cause from None
            raise
        return 0

    code = run_command(f"{PROG} {command}", body)
    return code, (result[0] if result else None)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mantis``; returns the exit status.

    Args:
        argv: the arguments after ``mantis`` (default ``sys.argv[1:]``).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    keep_freed_memory()
    if not args or args[0] in ("-h", "--help", "-V", "--version"):
        return entry_main(args)
    command = args[0]
    if command in DISPATCH:
        return _dispatch(command, args[1:])
    if command not in LIGHTNING_COMMANDS:
        print(f"{PROG}: error: unknown command {command!r}; {_usage()}", file=sys.stderr)
        return 2
    code, _ = guarded(command, lambda: run_lightning_command(with_bare_defaults(args)), args)
    return code


if __name__ == "__main__":
    sys.exit(main())
