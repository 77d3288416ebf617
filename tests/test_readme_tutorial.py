"""The tutorial's code runs: every ``python`` block, in order, in one namespace; every ``trackcore``
command of its ``bash`` blocks parses; every image it shows exists and is small.

The tutorial is the README's Python section (:data:`TUTORIAL`).
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from trackcore.backends import available_backends
from trackcore.plugins import DISABLE_AUTOLOAD_ENV

REPO = Path(__file__).resolve().parent.parent
TUTORIAL = REPO / "README.md"
MAX_IMAGE_BYTES = 200_000

pytestmark = pytest.mark.skipif(available_backends()["cpu"] != "ok", reason="compiled core not built")


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", TUTORIAL.read_text(), flags=re.S | re.M)


def test_python_blocks_run(tmp_path, monkeypatch):
    for module in ("matplotlib", "dask.distributed", "uproot"):
        pytest.importorskip(module)
    code = blocks("python")
    assert len(code) >= 7, f"{TUTORIAL}: expected the tutorial's python blocks"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")  # the tutorial's results must not depend on installed plugins
    namespace: dict = {"__name__": "__tutorial__"}
    for i, block in enumerate(code):
        exec(compile(block, f"{TUTORIAL.name}[python block {i + 1}]", "exec"), namespace)  # noqa: S102
    for name in ("plots/display.png", "plots/efficiency.pdf", "plots/pulls.png", "plots/seeds.png",
                 "reco-out/config.toml", "reco-out/report/report.html", "out/event000000001-reco.root"):
        assert (tmp_path / name).stat().st_size > 0, name


def test_shell_commands_parse():
    from trackcore.cli.main import build_parser

    parser = build_parser()
    commands = [shlex.split(line) for block in blocks("bash") for line in block.splitlines()
                if line.startswith("trackcore ")]
    kinds = {c[2] for c in commands if c[1] == "plot"}
    assert kinds == {"display", "efficiency", "residuals", "pulls", "seeds", "timing"}
    for argv in commands:
        parser.parse_args(argv[1:])  # SystemExit (a failure) on an unknown option


def test_images_exist_and_are_small():
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", TUTORIAL.read_text())
    assert len(images) == 6
    for rel in images:
        path = REPO / rel
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and 10_000 < len(data) < MAX_IMAGE_BYTES, rel
