"""Exceptions raised by trackcore. Every message names the file, column or row at fault."""


class TrackcoreError(Exception):
    """Base class of all trackcore errors."""


class InputError(TrackcoreError, ValueError):
    """Malformed or inconsistent input data (a file, a column, a parameter)."""


class GeometryError(InputError):
    """A detector description that is malformed, or a lookup of a module that does not exist."""


class BackendError(TrackcoreError, RuntimeError):
    """A backend that is unknown, not installed, or cannot run on this machine."""


class BuildError(TrackcoreError, ImportError):
    """The compiled core ``trackcore._core`` is missing or older than its sources."""


class PluginError(TrackcoreError, RuntimeError):
    """A plugin failed to load or returned something unusable."""
