"""trackcore/_core.pyi (the compiled module's type stub) must name what the built module has: every
public function and class, and each function's parameters in order. A stale stub fails here;
regenerate it as its header says."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

core = pytest.importorskip("trackcore._core", reason="compiled core not built")
STUB = Path(__file__).resolve().parents[1] / "trackcore" / "_core.pyi"


def _stub_tree() -> ast.Module:
    return ast.parse(STUB.read_text())


def _runtime_parameters(fn) -> list[str]:
    # pybind11 puts the signature on the docstring's first line: name(a: T, b: T = ..., *, c: T) -> R
    first = (fn.__doc__ or "").splitlines()[0]
    inside = first[first.index("(") + 1:first.rindex(") ->")]
    names, depth, token = [], 0, ""
    for ch in inside + ",":
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            token = token.strip()
            if token and token != "*":
                names.append(re.match(r"\w+", token).group(0))
            token = ""
        else:
            token += ch
    return names


def test_stub_names_the_modules_functions_and_classes():
    tree = _stub_tree()
    in_stub = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    in_stub |= {t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                for t in ([node.target] if isinstance(node, ast.AnnAssign) else node.targets) if isinstance(t, ast.Name)}
    public = {name for name in dir(core) if not name.startswith("_")}
    assert public <= in_stub, f"missing from _core.pyi: {sorted(public - in_stub)}"
    assert not (in_stub - public - {"__all__"}), f"_core.pyi names what the module lacks: {sorted(in_stub - public)}"


def test_stub_parameters_match_the_module():
    for node in _stub_tree().body:
        if isinstance(node, ast.FunctionDef):
            a = node.args
            stub = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
            assert stub == _runtime_parameters(getattr(core, node.name)), node.name


def test_device_only_headers_are_not_in_the_core():
    """The staleness warning skips DEVICE_ONLY_HEADERS: no C++ source of _core may include them,
    directly or through another header."""
    import re
    from pathlib import Path

    from trackcore._corelib import DEVICE_ONLY_HEADERS

    csrc = Path(__file__).resolve().parents[1] / "csrc"
    include = re.compile(r'#include "(?:trackcore/)?([\w.]+)"')
    headers = {p.name: p for p in csrc.rglob("*.hpp")}

    def closure(path: Path, seen: set) -> set:
        for name in include.findall(path.read_text()):
            if name not in seen and name in headers:
                seen.add(name)
                closure(headers[name], seen)
        return seen

    core_sources = list((csrc / "src").glob("*.cpp")) + list((csrc / "bindings").glob("*.cpp"))
    used = set().union(*(closure(p, set()) for p in core_sources))
    assert "bound_transport.hpp" in used and "digitization_device.hpp" in used  # shared with the kernels
    assert not used & set(DEVICE_ONLY_HEADERS), sorted(used & set(DEVICE_ONLY_HEADERS))
    assert all(name in headers for name in DEVICE_ONLY_HEADERS)
