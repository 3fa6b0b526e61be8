"""Running the absl-flag scripts: one-line errors instead of tracebacks.

absl prints the whole module help before a `UsageError` raised in `main`.
`run(main)` instead prints one line, `<script>: error: <message>`, and exits
with status 2; an error a user can cause (bad data, a diverged run, a file
that cannot be written) is raised as `ScriptError` and printed the same way
with status 1.
"""

import os
import sys
from typing import Callable, List

from absl import app


class ScriptError(Exception):
    """An error a script reports as one line, naming the flag or file."""


def _fail(message: str, status: int) -> None:
    name = os.path.basename(sys.argv[0]) if sys.argv else "script"
    print(f"{name}: error: {message}", file=sys.stderr)
    sys.exit(status)


def run(main: Callable[[List[str]], None]) -> None:
    """`absl.app.run(main)`, printing a `UsageError` (status 2) or a
    `ScriptError` (status 1) raised by `main` as one line."""

    def guarded(argv):
        try:
            main(argv)
        except app.UsageError as error:
            _fail(str(error), 2)
        except ScriptError as error:
            _fail(str(error), 1)

    app.run(guarded)


def check_writable(path: str, flag: str) -> None:
    """Raises `UsageError` naming `flag` if `path` cannot be written (its
    folder is missing or read-only, or it is a folder)."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise app.UsageError(f"--{flag}: {path} is a folder, not a file.")
    if not os.path.isdir(folder):
        raise app.UsageError(f"--{flag}: folder {folder} does not exist.")
    if not os.access(folder, os.W_OK):
        raise app.UsageError(f"--{flag}: folder {folder} is not writable.")
