"""The augmentation keywords that the series and volume data modules took one by one before their ``augment``
option object (the image data modules' spelling): still accepted, with a warning naming the new spelling.

In Python, ``SeriesDataModule(path, scale=0.1)`` builds ``augment=SeriesAugment(scale=0.1)``
(:func:`augment_with_former`); in a config, ``data.init_args.scale`` moves to ``data.init_args.augment.scale``
as the config is read (:func:`move_former_keywords`, used by ``mantis fit|validate|test``).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from typing import Any, TypeVar

from mantis.data.series_augment import SeriesAugment
from mantis.data.volumes_augment import VolumeAugment

__all__ = ["FORMER_FLAT_AUGMENT", "augment_with_former", "field_names", "move_former_keywords"]

A = TypeVar("A")

#: Data module class name -> the option object whose fields it once took as keywords.
FORMER_FLAT_AUGMENT: dict[str, type] = {
    "SeriesDataModule": SeriesAugment,
    "PixelSeriesDataModule": SeriesAugment,
    "SeriesSegmentationDataModule": SeriesAugment,
    "VolumeSegmentationDataModule": VolumeAugment,
}


def field_names(kind: type) -> list[str]:
    """The field names of the option object ``kind`` (a dataclass)."""
    return [f.name for f in dataclasses.fields(kind)]


def augment_with_former(augment: A | None, former: Mapping[str, Any], kind: type[A], owner: str) -> A:
    """``augment`` (default: ``kind()``, nothing on), or one built from the former keywords ``former``.

    Raises:
        TypeError: a keyword that never was one (worded as Python words it), or both spellings at once.
    """
    unknown = [name for name in former if name not in field_names(kind)]
    if unknown:
        raise TypeError(f"{owner}.__init__() got an unexpected keyword argument {unknown[0]!r}")
    if not former:
        return kind() if augment is None else augment
    if augment is not None:
        raise TypeError(f"{owner}: give augment or the former keywords {', '.join(former)}, not both")
    names = ", ".join(former)
    message = f"{owner}: the keywords {names} are deprecated; pass augment={kind.__name__}({names}) instead"
    warnings.warn(message, DeprecationWarning, stacklevel=3)
    return kind(**former)


def move_former_keywords(config: Any) -> Any:
    """A loaded config (or one ``data`` section) with the former augmentation keys of a series or volume data
    module moved into its ``init_args.augment``, a warning naming each; anything else is returned as it is."""
    if not isinstance(config, dict):
        return config
    for section in (config, config.get("data")):
        if not isinstance(section, dict) or not isinstance(section.get("init_args"), dict):
            continue
        kind = FORMER_FLAT_AUGMENT.get(str(section.get("class_path", "")).rsplit(".", 1)[-1])
        init = section["init_args"]
        moved = {name: init.pop(name) for name in field_names(kind) if name in init} if kind else {}
        if not moved:
            continue
        given = init.get("augment")
        init["augment"] = {**moved, **(given if isinstance(given, dict) else {})}  # the new spelling wins
        keys = ", ".join(f"init_args.{name}" for name in moved)
        # FutureWarning: shown to users of the command line, whom a DeprecationWarning would not reach.
        warnings.warn(f"data {keys}: deprecated, now under init_args.augment", FutureWarning, stacklevel=1)
    return config
