"""trackcore: charged-particle tracking for HEP detectors.

Data flows one way: read or simulate -> :class:`Event` -> reconstruction stages -> tracks ->
metrics and plots. Hot loops run on a backend chosen with :func:`use_backend`.
"""
from importlib.metadata import PackageNotFoundError, version as _version

from .backends import available_backends, get_backend, use_backend
from .errors import BackendError, BuildError, GeometryError, InputError, PluginError, TrackcoreError
from .event import Event, Table
from .plugins import hookimpl

try:
    __version__ = _version("trackcore")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

def __getattr__(name: str):
    # Lazy, so that importing trackcore does not import the pipeline and Dask.
    if name == "run_dataset":
        from .distributed import run_dataset

        return run_dataset
    raise AttributeError(f"module 'trackcore' has no attribute {name!r}")


__all__ = [
    "run_dataset",
    "Event", "Table", "hookimpl", "available_backends", "get_backend", "use_backend",
    "TrackcoreError", "InputError", "GeometryError", "BackendError", "BuildError", "PluginError",
]
