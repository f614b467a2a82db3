"""The command-line tests' runner (imported by tests/test_cli*.py)."""

from __future__ import annotations

import contextlib
import io

from bayesgmm.cli import main


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``bayesgmm.cli.main(argv)`` with stdout and stderr captured: (exit code, out, err)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()
