"""One policy for every ``mantis`` command: how it ends and what a user's mistake prints.

- success: exit status 0 (or what the command returns);
- a user's mistake (bad data, bad arguments, a missing file): ONE line ``mantis <command>: error: <message>``
  on stderr and exit status 2; ``MANTIS_DEBUG=1`` re-raises it with its traceback instead;
- argparse's ``--help`` (0) and usage errors (2, message already printed) pass through;
- Ctrl-C: one line and exit status 130 (outputs are written atomically, so nothing half-written is left).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from mantis.io.errors import DataError


class CommandError(Exception):
    """A mistake in a command's arguments or its files, already phrased for the user in one line."""


# What a user's mistake raises: bad data, bad values, missing or unreadable files, wrong argument types.
USER_ERRORS: tuple[type[BaseException], ...] = (CommandError, DataError, ValueError, OSError, TypeError)


def command_parser(
    prog: str, description: str | None, epilog: str | None = None, **kwargs: Any
) -> argparse.ArgumentParser:
    """The argument parser of a command: no abbreviated options (a misspelt ``--out`` must not pass for
    ``--output``), description and epilog printed as written (examples keep their lines)."""
    return argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
        **kwargs,
    )


def debugging() -> bool:
    """Whether ``MANTIS_DEBUG`` asks for tracebacks."""
    return os.environ.get("MANTIS_DEBUG", "") not in ("", "0")


def one_line(error: BaseException) -> str:
    """The error's message folded onto one line (its type's name if it has none)."""
    return " ".join(str(error).split()) or type(error).__name__


def run_command(prog: str, body: Callable[[], int | None]) -> int:
    """Run ``body()`` under the policy above and return the exit status."""
    try:
        return int(body() or 0)
    except SystemExit as stop:
        code = stop.code
        return code if isinstance(code, int) else (0 if code is None else 2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; no partial output was left", file=sys.stderr)
        return 130
    except USER_ERRORS as error:
        if debugging():
            raise
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
        return 2
