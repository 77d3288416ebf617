"""Plugin discovery and listing (pluggy).

Plugins register through the ``trackcore`` entry-point group, the same way for first-party
plugins (``plugins/``) and third parties::

    [project.entry-points.trackcore]
    my_tagger = "my_package.trackcore_plugin"

and implement hooks from :mod:`trackcore.hookspecs` marked with :data:`hookimpl`. Setting the
environment variable ``TRACKCORE_DISABLE_PLUGIN_AUTOLOAD`` to any non-empty value (as with
pytest's ``PYTEST_DISABLE_PLUGIN_AUTOLOAD``) starts trackcore without them.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError

PROJECT_NAME = "trackcore"
ENTRYPOINT_GROUP = "trackcore"
DISABLE_AUTOLOAD_ENV = "TRACKCORE_DISABLE_PLUGIN_AUTOLOAD"
_HOOK_PREFIX = "trackcore_"
_MODEL_KEYS = ("name", "version", "path", "present")

#: Marks a function as a hook implementation: ``@hookimpl def trackcore_classify_seeds(...)``.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class TrackcorePluginManager(pluggy.PluginManager):
    """A pluggy plugin manager that also remembers which distribution gave each plugin."""

    def __init__(self) -> None:
        super().__init__(PROJECT_NAME)
        #: plugin name -> (distribution name, version) for plugins loaded from entry points.
        self.distributions: dict[str, tuple[str, str]] = {}


@dataclass(frozen=True)
class ModelStatus:
    """A trained model a plugin needs: whether its file is present where it is expected."""

    name: str
    version: str
    path: str
    present: bool


@dataclass(frozen=True)
class PluginInfo:
    """One registered plugin, as ``trackcore plugins`` shows it."""

    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]
    models: tuple[ModelStatus, ...] = field(default_factory=tuple)


def autoload_disabled() -> bool:
    """Whether :data:`DISABLE_AUTOLOAD_ENV` is set to a non-empty value."""
    return bool(os.environ.get(DISABLE_AUTOLOAD_ENV))


def get_plugin_manager(load_entrypoints: bool | None = None) -> TrackcorePluginManager:
    """A fresh plugin manager with trackcore's hook specifications and the installed plugins.

    :param load_entrypoints: load the ``trackcore`` entry points (``True``), or not
        (``False``); ``None`` loads them unless :data:`DISABLE_AUTOLOAD_ENV` is set.
    :raises PluginError: a plugin failed to import or register, or implements a
        ``trackcore_*`` hook that does not exist; the message names its distribution and
        entry point.
    """
    pm = TrackcorePluginManager()
    pm.add_hookspecs(hookspecs)
    if load_entrypoints is None:
        load_entrypoints = not autoload_disabled()
    if load_entrypoints:
        _load_entrypoints(pm)
    return pm


def _load_entrypoints(pm: TrackcorePluginManager) -> None:
    for dist in list(importlib.metadata.distributions()):
        for ep in dist.entry_points:
            # The same distribution can be seen twice (e.g. an editable install and its
            # source folder on sys.path); the first one found wins, as in pluggy.
            if ep.group != ENTRYPOINT_GROUP or pm.has_plugin(ep.name) or pm.is_blocked(ep.name):
                continue
            dist_name = dist.metadata["Name"] or "?"
            where = (f"plugin {ep.name!r} (entry point '{ep.name} = {ep.value}' of distribution "
                     f"{dist_name} {dist.version})")
            hint = f"; set {DISABLE_AUTOLOAD_ENV}=1 to run without plugins"
            try:
                plugin = ep.load()
            except Exception as exc:  # any import-time failure of third-party code
                raise PluginError(f"{where} failed to load: {type(exc).__name__}: {exc}{hint}") from exc
            try:
                pm.register(plugin, name=ep.name)
            except (ValueError, pluggy.PluginValidationError) as exc:
                raise PluginError(f"{where} could not be registered: {exc}{hint}") from exc
            pm.distributions[ep.name] = (dist_name, dist.version)
    _check_hook_names(pm)


def _check_hook_names(pm: pluggy.PluginManager) -> None:
    """Reject ``trackcore_*`` implementations of hooks that have no spec (usually a typo)."""
    for name, plugin in pm.list_name_plugin():
        for caller in pm.get_hookcallers(plugin) or ():
            if caller.spec is None and caller.name.startswith(_HOOK_PREFIX):
                known = ", ".join(sorted(n for n in dir(hookspecs) if n.startswith(_HOOK_PREFIX)))
                raise PluginError(f"plugin {name!r} implements unknown hook {caller.name!r} (known hooks: {known})")


def plugin_hooks(pm: pluggy.PluginManager, plugin: object) -> tuple[str, ...]:
    """Names of the hooks ``plugin`` implements, sorted."""
    return tuple(sorted(c.name for c in pm.get_hookcallers(plugin) or ()))


def model_status(pm: pluggy.PluginManager, plugin_name: str) -> tuple[ModelStatus, ...]:
    """The models plugin ``plugin_name`` reports through ``trackcore_model_status``.

    :raises PluginError: the hook raised or returned something other than a list of dicts with
        keys name, version, path and present.
    """
    out: list[ModelStatus] = []
    for impl in pm.hook.trackcore_model_status.get_hookimpls():
        if impl.plugin_name != plugin_name:
            continue
        try:
            reported = impl.function()
        except Exception as exc:
            raise PluginError(f"plugin {plugin_name!r}: trackcore_model_status failed: "
                              f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(reported, (list, tuple)):
            raise PluginError(f"plugin {plugin_name!r}: trackcore_model_status returned "
                              f"{type(reported).__name__}, expected a list of dicts")
        for i, entry in enumerate(reported):
            missing = [k for k in _MODEL_KEYS if not isinstance(entry, dict) or k not in entry]
            if missing:
                raise PluginError(f"plugin {plugin_name!r}: trackcore_model_status entry {i} lacks "
                                  f"{', '.join(missing)} (expected keys {', '.join(_MODEL_KEYS)})")
            out.append(ModelStatus(str(entry["name"]), str(entry["version"]), str(entry["path"]),
                                   bool(entry["present"])))
    return tuple(out)


def list_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Every registered plugin with its distribution, version, hooks and model status, by name."""
    dists: dict[str, tuple[str, str]] = getattr(pm, "distributions", {})
    infos = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:  # a blocked name
            continue
        dist, version = dists.get(name, (None, None))
        infos.append(PluginInfo(name=name, distribution=dist, version=version,
                                hooks=plugin_hooks(pm, plugin), models=model_status(pm, name)))
    return sorted(infos, key=lambda info: info.name)


def as_dict(info: PluginInfo) -> dict[str, Any]:
    """A JSON-ready dict of ``info``."""
    return {"name": info.name, "distribution": info.distribution, "version": info.version,
            "hooks": list(info.hooks), "models": [asdict(m) for m in info.models]}


__all__ = [
    "DISABLE_AUTOLOAD_ENV", "ENTRYPOINT_GROUP", "ModelStatus", "PluginInfo", "TrackcorePluginManager",
    "as_dict", "autoload_disabled", "get_plugin_manager", "hookimpl", "list_plugins", "model_status",
    "plugin_hooks", "train_subparsers", "add_train_parser", "require_torch", "command_line", "json_default",
    "write_json",
]


def train_subparsers(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The sub-parsers of ``trackcore train STAGE``, creating ``train`` if no plugin has yet.

    Several ML plugins add a stage to ``trackcore train``; the first one creates the command.
    """
    train = subparsers.choices.get("train")
    if train is None:
        train = subparsers.add_parser("train", help="train an ML stage (simulate, train, evaluate, write model)",
                                      description="Train the model of an ML plugin stage.")
        stages = train.add_subparsers(dest="stage", metavar="STAGE", title="stages")
        stages.required = True
        return stages
    for action in train._actions:  # argparse keeps the sub-parser action only here
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise PluginError("a 'train' command exists but takes no STAGE")


def add_train_parser(subparsers: argparse._SubParsersAction, stage: str, *, help: str, description: str,
                     ) -> argparse.ArgumentParser:
    """``trackcore train STAGE`` with the options every ML stage shares: ``--quick``, ``--seed``,
    ``--output`` (default ``STAGE-output``) and ``--quiet``; the plugin adds its own and ``set_defaults``."""
    p = train_subparsers(subparsers).add_parser(stage, help=help, description=description)
    p.add_argument("--quick", action="store_true", help="small, fast settings (tests, smoke runs)")
    p.add_argument("--seed", type=int, default=1, help="random seed of simulation and training (default 1)")
    p.add_argument("--output", "-o", type=Path, default=Path(f"{stage}-output"), help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def require_torch(what: str) -> None:
    """Raise :class:`PluginError` naming ``what`` (e.g. "trackcore train jet_tagger") without PyTorch."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise PluginError(f"{what} needs PyTorch (pip install 'trackcore[ml]')") from exc


def command_line() -> str:
    """The command being run (program name and quoted arguments), for training reports."""
    import shlex
    import sys

    return " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else ""


def json_default(obj: Any) -> Any:
    """``json.dumps`` fallback for numpy scalars and arrays."""
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON (numpy values converted); the report file of ML training."""
    import json

    path = Path(path)
    path.write_text(json.dumps(data, indent=2, default=json_default) + "\n")
    return path
