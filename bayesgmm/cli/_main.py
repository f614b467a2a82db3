"""The parser of the ``bayesgmm`` command and its entry point :func:`main`."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Callable, Sequence

from bayesgmm.cli._common import PROG, CommandError, _Parser
from bayesgmm.cli._demo import _add_demo_parser
from bayesgmm.cli._fit import _add_fit_parser
from bayesgmm.cli._select import _add_select_parser


class _Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so cleanup runs as on Ctrl-C."""


@contextlib.contextmanager
def _terminate_as_interrupt():
    """While inside, SIGTERM raises :class:`_Terminated` (unwinding ``finally`` blocks and
    removing staging folders) instead of killing the process on the spot."""

    def handler(signum, frame):
        raise _Terminated

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. main() called from a worker thread)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


#: One function per subcommand; each adds its parser and sets ``handler``.
_SUBCOMMANDS: tuple[Callable[..., None], ...] = (
    _add_fit_parser,
    _add_select_parser,
    _add_demo_parser,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bayesgmm`` command.

    Examples
    --------
    >>> args = build_parser().parse_args(["demo", "--max-components", "3"])
    >>> args.command, args.max_components, args.n_init, args.seed
    ('demo', 3, 5, 0)
    """
    from bayesgmm import __version__

    parser = _Parser(
        prog=PROG,
        description="Gaussian mixtures fitted by maximum likelihood, MAP and full posterior.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands", required=True
    )
    for add_subcommand in _SUBCOMMANDS:
        add_subcommand(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``bayesgmm`` command and return its exit code.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        0 on success, 1 if the command failed, 2 for bad arguments or unusable data,
        130 if interrupted (Ctrl-C), 143 if terminated (SIGTERM; as on Ctrl-C, no
        staging folder is left behind). Errors are one line on stderr, without a
        traceback.

    Examples
    --------
    >>> main(["demo", "--max-components", "0"])  # message on stderr
    2
    """
    try:
        args = build_parser().parse_args(argv)
    except CommandError as err:
        print(err, file=sys.stderr)
        return err.code
    except SystemExit as exc:  # --help and --version print, then exit
        return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
    try:
        with _terminate_as_interrupt():
            return int(args.handler(args))
    except CommandError as err:
        print(err, file=sys.stderr)
        return err.code
    except _Terminated:
        print(f"{PROG}: terminated (SIGTERM); no output was left half-written", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as err:
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return 1
