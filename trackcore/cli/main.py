"""``trackcore`` entry point: builds the parser from the subcommand modules and plugins, runs one.

To add a subcommand, write ``trackcore/cli/<name>.py`` with ``add_parser(subparsers)`` (which
calls ``parser.set_defaults(func=run)``) and ``run(args) -> int``, and list it in :data:`COMMANDS`.
"""
from __future__ import annotations

import argparse
import sys
import traceback
from types import ModuleType
from typing import Sequence

from ..errors import TrackcoreError
from . import backends_cmd, config_cmd, demo, info, plot, plugins_cmd, reconstruct, report, score, simulate

#: Built-in subcommand modules, in the order ``--help`` lists them.
COMMANDS: list[ModuleType] = [demo, simulate, reconstruct, score, plot, report, config_cmd, info, plugins_cmd, backends_cmd]

PROG = "trackcore"
EXIT_ERROR = 2


def build_parser(plugin_manager=None) -> argparse.ArgumentParser:
    """The full parser: global options, built-in subcommands, then those plugins add."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Charged-particle tracking for HEP detectors (TrackML-style data; mm, GeV, T).",
        epilog=f"Run '{PROG} COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of errors (allowed anywhere on the line)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    subparsers.required = True
    for module in COMMANDS:
        module.add_parser(subparsers)
    if plugin_manager is not None:
        plugin_manager.hook.trackcore_add_commands(subparsers=subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit status.

    A :class:`TrackcoreError` prints ``trackcore: error: <message>`` to stderr and gives exit
    status 2 (with the traceback under ``--debug``); usage errors also give 2, ``--help`` 0.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug is taken anywhere before "--" (also after the subcommand, and for errors raised
    # before parsing, e.g. a plugin that fails to load), so it is handled here, not by argparse.
    end = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:end]
    argv = [a for a in argv[:end] if a != "--debug"] + argv[end:]
    try:
        from ..plugins import get_plugin_manager

        pm = get_plugin_manager()
        parser = build_parser(pm)
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version and usage errors
            return _exit_code(exc.code)
        args.plugin_manager = pm
        func = getattr(args, "func", None)
        if func is None:
            raise TrackcoreError(f"command {args.command!r} has no function to run "
                                 "(its add_parser must call parser.set_defaults(func=run))")
        status = func(args)
        return 0 if status is None else int(status)
    except TrackcoreError as exc:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: stop quietly, without a traceback at exit.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
