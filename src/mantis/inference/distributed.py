"""``mantis predict --devices N [--num-nodes M]``: a folder (of rasters, pairs or volumes) predicted by several
processes (GPUs, or CPU processes), each writing the complete outputs of its share of the files.

Processes are started and joined by Lightning Fabric, the engine behind ``mantis fit``'s DDP: ``--devices N``
launches N processes on this machine (one per GPU, or N CPU processes talking over gloo), and under
``torchrun`` (or SLURM) Fabric finds the ranks the launcher made, on any number of nodes. Every rank checks
every file (as one process would, so a bad file stops all of them before any work), then predicts its share:
files are dealt largest first to the rank with the fewest pixels so far, so ranks finish close together.
Outputs are written atomically by the rank that owns them; no file is written twice. The ranks agree at the
start and at the end, so the command returns once every output is complete, and fails (exit status 2) if
any rank failed.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from mantis.commands import CommandError
from mantis.inference.checkpoint import ModelMeta, load_models
from mantis.inference.errors import InputError
from mantis.inference.options import PredictOptions
from mantis.inference.predict import Job, PredictJob, plan_jobs, run_job
from mantis.inference.series_steps import is_series_steps_input

__all__ = ["accelerator_of", "deal_jobs", "launched_by_torchrun", "predict_folder_distributed"]


def _size(job: Job) -> int:
    """Pixels of a raster, voxels of a volume: the work a job holds."""
    if isinstance(job, PredictJob):
        return job.header.height * job.header.width
    return math.prod(job[0].header.shape)


def deal_jobs(jobs: Sequence[Job], world_size: int) -> list[list[int]]:
    """Indices of ``jobs`` per rank: largest raster (or volume) first to the rank with the fewest pixels so far
    (ties: the lower rank), each rank's share in the original order. The same on every rank (it depends only
    on the headers)."""
    load = [0] * world_size
    shares: list[list[int]] = [[] for _ in range(world_size)]
    order = sorted(range(len(jobs)), key=lambda i: (-_size(jobs[i]), i))
    for i in order:
        rank = min(range(world_size), key=lambda r: (load[r], r))
        shares[rank].append(i)
        load[rank] += _size(jobs[i])
    return [sorted(share) for share in shares]


def launched_by_torchrun() -> bool:
    """Whether this process is one of several that ``torchrun`` (torch elastic) started."""
    return "TORCHELASTIC_RUN_ID" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def _messages_to_stdout() -> None:
    """Fabric's progress lines ("Initializing distributed ...") on stdout: stderr is for problems."""
    for name in ("lightning", "lightning.fabric", "lightning.pytorch"):  # whichever imported the rank-zero log
        for handler in logging.getLogger(name).handlers:
            if type(handler) is logging.StreamHandler:
                handler.setStream(sys.stdout)


def _agree(fabric: Any, failed: bool) -> int:
    """How many ranks failed: a collective that every rank reaches, failed or not, so that none waits forever."""
    count = torch.tensor([1 if failed else 0], device=fabric.device)
    return int(fabric.all_reduce(count, reduce_op="sum").item())


def accelerator_of(device: str) -> str:
    """Fabric's accelerator for ``--device`` (``cpu`` or ``cuda``; ``auto`` already resolved) on several ranks.

    Raises:
        InputError: one GPU named (``cuda:1``) with several processes, which take GPUs 0 .. N-1.
    """
    if device == "cpu":
        return "cpu"
    if device == "cuda":
        return "gpu"
    raise InputError(f"--device {device}: several processes take --device cpu or cuda (each rank its own GPU)")


def predict_folder_distributed(
    checkpoints: Sequence[str],
    folders: Sequence[Path],
    output_dir: Path,
    options: PredictOptions,
    accelerator: str,
    devices: int,
    num_nodes: int = 1,
    threads: int | None = None,
) -> list[dict[str, Path]]:
    """Launch (or join) the ranks and predict this rank's share of a folder (see the module docstring).

    Args:
        checkpoints: checkpoint paths (several: an ensemble), loaded on each rank's device.
        folders: one folder, or two (change detection).
        output_dir: folder of every output.
        options: windows, outputs and progress bar (:class:`~mantis.inference.options.PredictOptions`; its
            device is each rank's own).
        accelerator: ``"cpu"`` or ``"gpu"`` (:func:`accelerator_of`).
        devices: processes per node (GPUs per node on GPUs); under torchrun, its ``--nproc-per-node``.
        num_nodes: machines taking part; under torchrun, its ``--nnodes``.
        threads: torch threads per CPU process (default: this machine's cores shared among ``devices``).

    Returns:
        For each file this rank predicted, product name -> path written.

    Raises:
        InputError: a file at fault (every rank stops before any output is written).
        CommandError: another rank failed (its message is on its own stderr).
    """
    from lightning.fabric import Fabric

    def plan(device: str) -> tuple[Any, ModelMeta, list[Job]]:
        model, meta = load_models(list(checkpoints), device)
        if is_series_steps_input(folders[0], meta):
            raise InputError(f"{folders[0]}: per-step series are predicted in one process; leave out --devices")
        return model, meta, plan_jobs(model, folders, output_dir, meta, options)

    if launched_by_torchrun():  # torchrun already made the ranks: their layout is its, whatever the flags say
        devices = int(os.environ.get("LOCAL_WORLD_SIZE", devices))
        num_nodes = max(1, int(os.environ["WORLD_SIZE"]) // devices)
    elif "LOCAL_RANK" not in os.environ:
        plan("cpu")  # refuse bad inputs once, in the command's own process, before any process starts
    _messages_to_stdout()
    fabric = Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy="ddp")
    fabric.launch()
    try:
        return _predict_on_rank(fabric, accelerator, devices, threads, plan, options)
    finally:
        # Gloo's threads must stop before the interpreter does, or a rank may abort at exit
        # ("terminate called without an active exception").
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _predict_on_rank(
    fabric: Any,
    accelerator: str,
    devices: int,
    threads: int | None,
    plan: Callable[[str], tuple[Any, ModelMeta, list[Job]]],
    options: PredictOptions,
) -> list[dict[str, Path]]:
    """This rank's share of the folder, after every rank has agreed that the inputs are sound."""
    device = str(fabric.device)
    if accelerator == "cpu":  # N processes on one machine: share its cores instead of oversubscribing them
        torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // devices))
    error: BaseException | None = None
    try:
        model, meta, jobs = plan(device)
    except Exception as problem:  # every rank must reach the collective below, failed or not
        error = problem
    if _agree(fabric, error is not None):  # a file at fault stops every rank before any output is written
        if error is not None:
            raise error
        raise CommandError(f"rank {fabric.global_rank}: stopped, another process refused the inputs")
    mine = deal_jobs(jobs, fabric.world_size)[fabric.global_rank]
    on_rank = options.replace(device=device, progress=options.progress and fabric.global_rank == 0)
    results: list[dict[str, Path]] = []
    try:
        for i in mine:
            results.append(run_job(jobs[i], model, meta, on_rank))
    except Exception as problem:  # as above: the others must not wait for this rank forever
        error = problem
    failed = _agree(fabric, error is not None)
    if error is not None:
        raise error
    if failed:
        raise CommandError(f"{failed} of {fabric.world_size} processes failed; their files are not all written")
    return results
