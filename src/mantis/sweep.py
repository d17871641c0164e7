"""``mantis sweep --seeds 0 1 2 -- fit --config FILE.yaml``: the same training once per seed, each run in its
own folder and tested, then every test metric summarised over the seeds (mean, standard deviation, min, max).

Each seed runs ``mantis fit ARGS --seed_everything S --run_dir OUT/seed_S --test_after_fit true`` in a fresh
process, one after the other (so a DDP run launches as it would alone). A seed whose folder already holds
``test_metrics.json`` is not trained again, and one stopped before it continues from its own
``checkpoints/last.ckpt`` (``--ckpt_path``): an interrupted sweep resumes where it stopped. The summary goes to
``OUT/summary.json`` (written atomically) and a table on stdout (``OUT/sweep_args.json`` keeps the fit
arguments: a folder of another sweep's seeds is refused); the standard deviation is the sample one
(n - 1 in the denominator, 0 for one seed); a metric undefined (``null``) for some seeds is summarised over the
others, and ``n`` says over how many.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mantis.commands import CommandError, command_parser

PROG = "mantis sweep"
METRICS_FILE = "test_metrics.json"
SUMMARY_FILE = "summary.json"
ARGS_FILE = "sweep_args.json"  # the fit arguments of the seeds in the folder
#: Options the sweep sets for every seed; a user giving them after ``--`` would fight it.
OWNED = ("--seed_everything", "--run_dir", "--test_after_fit")

__all__ = ["main", "summarise", "sweep"]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def summarise(runs: Mapping[int, Mapping[str, Any]]) -> dict[str, dict[str, float | int | None]]:
    """Mean, sample standard deviation, min, max and count of every numeric metric over the seeds.

    Args:
        runs: seed -> that run's test metrics (``null`` for undefined scores).

    Returns:
        metric -> ``{"mean", "std", "min", "max", "n"}``, in the order the metrics first appear (``null`` and
        ``n`` 0 for a metric undefined for every seed).
    """
    values: dict[str, list[float]] = {}
    for metrics in runs.values():
        for key, value in metrics.items():
            seen = values.setdefault(key, []) if value is None or _number(value) else None
            if seen is not None and value is not None and math.isfinite(value):
                seen.append(float(value))
    out: dict[str, dict[str, float | int | None]] = {}
    for key, seen in values.items():
        n = len(seen)
        if not n:  # undefined for every seed (a class absent from the test set): listed, not dropped
            out[key] = {"mean": None, "std": None, "min": None, "max": None, "n": 0}
            continue
        mean = math.fsum(seen) / n
        var = math.fsum((v - mean) ** 2 for v in seen) / (n - 1) if n > 1 else 0.0
        out[key] = {"mean": mean, "std": math.sqrt(var), "min": min(seen), "max": max(seen), "n": n}
    return out


def _fit_command(fit_args: Sequence[str], seed: int, run_dir: Path, resume: Path | None = None) -> list[str]:
    args = [*fit_args, "--seed_everything", str(seed), "--run_dir", str(run_dir), "--test_after_fit", "true"]
    if resume is not None:  # the seed's own last checkpoint: fit continues that run in its folder
        args += ["--ckpt_path", str(resume)]
    return [sys.executable, "-m", "mantis.cli", "fit", *args]


def _seed_metrics(run_dir: Path, seed: int) -> dict[str, Any]:
    path = run_dir / METRICS_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CommandError(f"{path}: seed {seed} left no readable test metrics ({error})") from None
    metrics = record.get("metrics") if isinstance(record, dict) else None
    if not isinstance(metrics, dict):
        raise CommandError(f"{path}: holds no 'metrics' mapping")
    return metrics


def _claim(out: Path, fit_args: Sequence[str]) -> None:
    """Record the fit arguments in ``out``; refuse a folder that holds the seeds of other arguments (a resumed
    sweep must not mix them in)."""
    path = out / ARGS_FILE
    if path.is_file():
        try:
            before = json.loads(path.read_text()).get("fit_args")
        except (OSError, ValueError, AttributeError):
            before = None
        if before != list(fit_args):
            raise CommandError(f"{out}: holds a sweep of other fit arguments ({path}); choose another --out")
        return
    out.mkdir(parents=True, exist_ok=True)
    _write_json(path, {"fit_args": list(fit_args)})


def sweep(fit_args: Sequence[str], seeds: Sequence[int], out: Path) -> dict[str, Any]:
    """Train and test once per seed (see the module docstring) and return the summary record.

    Raises:
        CommandError: a seed's run failed (its exit status and folder named), or left no test metrics.
    """
    owned = [a for a in fit_args if a.split("=", 1)[0] in OWNED]
    if owned:
        raise CommandError(f"{owned[0]}: set by the sweep for each seed; leave it out of the fit arguments")
    if not fit_args:
        raise CommandError("nothing to train: give the fit arguments after --, e.g. -- --config FILE.yaml")
    if len(set(seeds)) != len(seeds):
        raise CommandError(f"--seeds {' '.join(map(str, seeds))}: a seed is repeated")
    _claim(out, fit_args)
    runs: dict[int, dict[str, Any]] = {}
    for seed in seeds:
        run_dir = out / f"seed_{seed}"
        if not (run_dir / METRICS_FILE).is_file():
            last = run_dir / "checkpoints" / "last.ckpt"
            resume = last if last.is_file() else None
            if resume is None and (run_dir / "config.yaml").exists():
                raise CommandError(f"{run_dir}: an unfinished run of seed {seed}; remove it to train that seed again")
            verb = f"resumed from {resume}" if resume is not None else f"-> {run_dir}"
            print(f"{PROG}: seed {seed} {verb}", flush=True)
            code = subprocess.run(_fit_command(fit_args, seed, run_dir, resume)).returncode
            if code != 0:
                raise CommandError(f"{run_dir}: mantis fit of seed {seed} failed with exit status {code}")
        else:
            print(f"{PROG}: seed {seed} already tested in {run_dir}", flush=True)
        runs[seed] = _seed_metrics(run_dir, seed)
    return {
        "seeds": list(seeds),
        "runs": {str(s): str(out / f"seed_{s}") for s in seeds},
        "fit_args": list(fit_args),
        "metrics": summarise(runs),
        "per_seed": {str(s): runs[s] for s in seeds},  # the values behind each mean, for tables and tests
    }


def table(summary: Mapping[str, Mapping[str, float | int | None]]) -> str:
    """The summary as aligned text: one metric a line, ``mean ± std (min .. max, n)``."""
    width = max((len(k) for k in summary), default=6)
    lines = [f"{'metric':<{width}}  {'mean':>9} ± {'std':<8}  {'min':>9}  {'max':>9}  n"]
    for key, s in summary.items():
        if not s["n"]:
            lines.append(f"{key:<{width}}  {'undefined for every seed':>44}  0")
            continue
        lines.append(
            f"{key:<{width}}  {s['mean']:>9.4f} ± {s['std']:<8.4f}  {s['min']:>9.4f}  {s['max']:>9.4f}  {s['n']}"
        )
    return "\n".join(lines)


def _write_json(path: Path, record: Mapping[str, Any]) -> None:
    # Atomic: a reader never sees half a summary.
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(record, indent=2, allow_nan=False) + "\n")
    os.replace(temporary, path)


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        PROG,
        "Train and test once per seed; report mean ± std (min, max) of every test metric.",
        "example: mantis sweep --num-seeds 3 --out runs/sweep -- fit --config configs/demo.yaml",
        usage=f"{PROG} (--seeds S [S ...] | --num-seeds N) [--out DIR] -- fit ARGS...",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--seeds", type=int, nargs="+", metavar="S", help="the seeds (seed_everything) to train")
    which.add_argument("-n", "--num-seeds", type=int, metavar="N", help="seeds 0 .. N-1")
    parser.add_argument("--out", type=Path, default=Path("runs/sweep"), help="folder of the runs (default runs/sweep)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mantis sweep``; exit status 2 and one line for a user's mistake or a failed seed."""
    from mantis.commands import run_command

    args = list(sys.argv[1:] if argv is None else argv)
    own, fit_args = (args[: args.index("--")], args[args.index("--") + 1 :]) if "--" in args else (args, [])

    def body() -> int:
        parsed = _parser().parse_args(own)
        if fit_args[:1] != ["fit"]:
            raise CommandError("give the training command after --: -- fit --config FILE.yaml [overrides]")
        if parsed.num_seeds is not None and parsed.num_seeds < 1:
            raise CommandError(f"--num-seeds must be at least 1, got {parsed.num_seeds}")
        seeds = parsed.seeds if parsed.seeds is not None else list(range(parsed.num_seeds))
        out: Path = parsed.out
        record = sweep(fit_args[1:], seeds, out)
        print(table(record["metrics"]))
        _write_json(out / SUMMARY_FILE, record)
        print(f"wrote {out / SUMMARY_FILE}")
        return 0

    return run_command(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
