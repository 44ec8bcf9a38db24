"""The ``blocklake`` console script: the command line, or a one-line reason it cannot run.

The SDK installs with no extras (the standard library and ``lz4``); the command line needs the
``lake`` extra, and says so instead of a traceback when it is missing.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from blocklake.cli import app
    except ModuleNotFoundError as error:
        print(
            f"blocklake: the command line needs {error.name}, which comes with the lake extra: "
            "pip install 'blocklake[lake]'",
            file=sys.stderr,
        )
        sys.exit(1)
    app()
