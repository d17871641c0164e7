"""The one error class that inference raises for bad input."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input to prediction or export, described in one line that names the file and the problem.

    The CLI prints the message as ``mantis predict: error: <message>`` and exits with status 2.
    """

    def __init__(self, message: str) -> None:
        # One line, whatever the caller passed: a traceback-free CLI must print exactly one line.
        super().__init__(" ".join(str(message).split()))
