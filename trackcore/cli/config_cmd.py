"""``trackcore config``: print the pipeline's configuration file, or check one."""
from __future__ import annotations

import argparse
from pathlib import Path

NAME = "config"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME, help="print every pipeline parameter (TOML, with unit and default) or check a file",
        description="With --dump: print the TOML configuration of the whole pipeline, every parameter "
                    "preceded by its unit, meaning and default (save it, edit it, pass it to "
                    "'trackcore reconstruct --config FILE'). With a FILE: check it and print the "
                    "configuration it gives, defaults filled in. --list prints a table instead.")
    p.add_argument("file", nargs="?", type=Path, help="a TOML configuration to check")
    p.add_argument("--dump", action="store_true", help="print the default configuration (or FILE's) as TOML")
    p.add_argument("--list", action="store_true", help="print a table: section, name, unit, default, meaning")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..config import dump_config, load_config, parameters
    from ..errors import InputError
    from ._common import format_table

    if not (args.file or args.dump or args.list):
        raise InputError("give --dump, --list or a FILE to check (see 'trackcore config --help')")
    config = load_config(args.file) if args.file else None
    if args.list:
        rows = [(p.section, p.name, p.unit or "-", _short(p.default), p.doc) for p in parameters()]
        print(format_table(["section", "name", "unit", "default", "meaning"], rows, align="<<<<<"))
    else:
        print(dump_config(config), end="")
    return 0


def _short(value) -> str:
    return "none" if value is None else str(list(value) if isinstance(value, tuple) else value)
