"""The one exception the data layer raises for bad user input."""

from __future__ import annotations

import os

__all__ = ["DataError"]


class DataError(ValueError):
    """Bad or inconsistent input data, reported as ONE line: ``"<file>: <problem>"``.

    The CLI prints ``str(error)`` to stderr and exits non-zero without a traceback, so the message
    must stand on its own: it names the offending file (or folder) first, then what is wrong with it.

    Args:
        path: The file or folder at fault (``None`` when no single file is to blame).
        problem: What is wrong, in a few words; newlines are folded into spaces.

    Example:
        >>> str(DataError("data/A/1.png", "cannot read image (truncated)"))
        'data/A/1.png: cannot read image (truncated)'
    """

    def __init__(self, path: str | os.PathLike[str] | None, problem: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.problem = " ".join(str(problem).split())
        message = self.problem if self.path is None else f"{self.path}: {self.problem}"
        super().__init__(message)
