"""What a bare ``mantis fit|validate|test`` trains: filled in only where the user names no class.

The defaults are a change detector on the built-in scenes, so that ``mantis fit`` alone finishes on a laptop
CPU. They must not reach a run whose config names its own task or data module: jsonargparse keeps the
arguments a default class shares with the class a config chooses instead (by design), so a default
``ChangeDetectionDataModule`` would hand its ``num_classes: 2`` or its ``patch_size`` to a
``SegmentationDataModule``. The defaults are therefore not parser defaults but a config placed first on the
command line, and only for the sections (``model``, ``data``) that neither the command line nor a config
file gives a class for.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

BARE_SECTIONS: dict[str, dict[str, Any]] = {
    "model": {"class_path": "mantis.tasks.ChangeDetectionTask", "init_args": {"model": "fractal_resnet_cd"}},
    "data": {"class_path": "mantis.data.ChangeDetectionDataModule", "init_args": {"patch_size": 64}},
}


def _named_on_command_line(args: Sequence[str], section: str) -> bool:
    # "--data X", "--data=X" and "--data.class_path X" choose a class; "--data.init_args.root X" does not.
    flags = (f"--{section}", f"--{section}.class_path")
    return any(arg in flags or arg.startswith(tuple(f"{flag}=" for flag in flags)) for arg in args)


def _config_texts(args: Sequence[str]) -> list[Any]:
    """The parsed content of every ``--config`` (a file, or YAML given inline); unreadable ones are skipped
    (the parser reports them)."""
    values = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg in ("-c", "--config")]
    values += [arg.split("=", 1)[1] for arg in args if arg.startswith("--config=")]
    loaded = []
    for value in values:
        try:
            path = Path(value)
            text = path.read_text() if path.is_file() else value
            loaded.append(yaml.safe_load(text))
        except (OSError, ValueError, yaml.YAMLError):
            continue
    return loaded


def _named_in_configs(configs: Sequence[Any], section: str) -> bool:
    for config in configs:
        node = config.get(section) if isinstance(config, dict) else None
        if isinstance(node, str) or (isinstance(node, dict) and "class_path" in node):
            return True
    return False


def with_bare_defaults(args: Sequence[str]) -> list[str]:
    """``args`` (starting with the command) with the bare defaults of the sections nobody named a class for,
    as an inline config right after the command, so that everything the user gives overrides them."""
    args = list(args)
    if not args:
        return args
    configs = _config_texts(args[1:])
    missing = {
        section: value
        for section, value in BARE_SECTIONS.items()
        if not _named_on_command_line(args[1:], section) and not _named_in_configs(configs, section)
    }
    if not missing:
        return args
    return [args[0], "--config", json.dumps(missing), *args[1:]]
