"""Kept for compatibility: the error type lives in :mod:`mantis.io.errors`."""

from mantis.io.errors import DataError

__all__ = ["DataError"]
