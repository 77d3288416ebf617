"""Loads the private compiled module ``trackcore._core`` and checks it matches the sources.

The check is an ABI number compiled into the module from ``csrc/include/trackcore/version.hpp``;
bump both when a binding changes shape so that a stale build fails loudly instead of misbehaving.
"""
from __future__ import annotations

import functools
from pathlib import Path

from .errors import BuildError

#: Must equal ``TRACKCORE_CORE_ABI`` in csrc/include/trackcore/version.hpp.
EXPECTED_CORE_ABI = 1

_BUILD_HINT = (
    "build it from the project root with `pip install -e .` "
    "(or `python setup.py build_ext --inplace` for a quick rebuild)"
)


@functools.lru_cache(maxsize=None)
def core():
    """Return the compiled module, or raise :class:`BuildError` saying how to build it."""
    try:
        from . import _core  # type: ignore[attr-defined]
    except ImportError as exc:
        raise BuildError(f"trackcore's compiled core (trackcore._core) is not built: {exc}; {_BUILD_HINT}") from exc
    abi = getattr(_core, "ABI_VERSION", None)
    if abi != EXPECTED_CORE_ABI:
        raise BuildError(
            f"trackcore._core is stale (ABI {abi}, sources expect {EXPECTED_CORE_ABI}); {_BUILD_HINT}"
        )
    _warn_if_sources_newer(Path(_core.__file__))
    return _core


#: Headers only the CUDA kernels (csrc/cuda) include: _core is not built from them (tests/test_core_stub.py
#: checks that no core source includes them).
DEVICE_ONLY_HEADERS = ("ckf_device.hpp", "ckf_state_device.hpp", "layer_search_device.hpp", "navigation_device.hpp",
                       "transport_device.hpp")


def _device_only(path: Path) -> bool:
    return path.name in DEVICE_ONLY_HEADERS


def _warn_if_sources_newer(so_path: Path) -> None:
    """In a source checkout, warn when a C++ file changed after the extension was built."""
    csrc = Path(__file__).resolve().parent.parent / "csrc"
    if not csrc.is_dir():
        return
    built = so_path.stat().st_mtime
    newer = [p for p in csrc.rglob("*") if p.suffix in {".cpp", ".hpp"} and not _device_only(p)
             and p.stat().st_mtime > built]
    if newer:
        import warnings

        warnings.warn(
            f"trackcore._core is older than {len(newer)} C++ source file(s) (e.g. {newer[0].name}); {_BUILD_HINT}",
            stacklevel=3,
        )


def core_available() -> bool:
    try:
        core()
    except BuildError:
        return False
    return True
