"""``trackcore plugins``: the installed plugins, their versions, hooks and whether their models are present."""
from __future__ import annotations

import argparse

from ..plugins import DISABLE_AUTOLOAD_ENV, ENTRYPOINT_GROUP, PluginInfo, as_dict, autoload_disabled, list_plugins
from ._common import format_table, to_json

NAME = "plugins"
_PREFIX = "trackcore_"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME, help="list installed plugins and their trained models",
        description=f"List the plugins registered in the '{ENTRYPOINT_GROUP}' entry-point group: "
                    "version, hooks implemented and whether each trained model file is present.")
    p.add_argument("-v", "--verbose", action="store_true", help="also list each model's file path")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=run)
    return p


def _models_cell(info: PluginInfo) -> str:
    if not info.models:
        return "-"
    return ", ".join(f"{m.name} {m.version}: {'present' if m.present else 'MISSING'}" for m in info.models)


def run(args: argparse.Namespace) -> int:
    infos = list_plugins(args.plugin_manager)
    if args.json:
        print(to_json([as_dict(i) for i in infos]))
        return 0
    if not infos:
        why = (f" ({DISABLE_AUTOLOAD_ENV} is set)" if autoload_disabled()
               else f" (none registered in the '{ENTRYPOINT_GROUP}' entry-point group)")
        print("no plugins" + why)
        return 0
    rows = [[i.name, i.version or "-", i.distribution or "-",
             ", ".join(h[len(_PREFIX):] if h.startswith(_PREFIX) else h for h in i.hooks), _models_cell(i)]
            for i in infos]
    print(format_table(["plugin", "version", "distribution", "hooks", "models"], rows, align="<<<<<"))
    if args.verbose:
        for i in infos:
            for m in i.models:
                print(f"{i.name}: {m.name} {m.version} -> {m.path} ({'present' if m.present else 'missing'})")
    return 0
