"""Kept for compatibility: prediction's error is the data layer's :class:`~mantis.io.errors.DataError`."""

from __future__ import annotations

from mantis.io.errors import DataError


class InputError(DataError):
    """Bad input to prediction or export, described in one line that names the file and the problem.

    The same type as the training data's errors (a :class:`~mantis.io.errors.DataError`), built from the
    whole message. The CLI prints it as ``mantis predict: error: <message>`` and exits with status 2.
    """

    def __init__(self, message: str) -> None:
        super().__init__(None, message)
