"""Kept for compatibility: importing :mod:`mantis.models` registers every model family."""

import mantis.models  # noqa: F401
