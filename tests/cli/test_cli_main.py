"""The trackcore command line: help of every subcommand, version, usage errors, backends, plugins."""
from __future__ import annotations

import json

import pytest

import trackcore
from trackcore.cli._common import format_table
from trackcore.cli.main import COMMANDS, main
from trackcore.plugins import DISABLE_AUTOLOAD_ENV


@pytest.fixture(autouse=True)
def _no_installed_plugins(monkeypatch):
    # The built-in CLI is tested alone; plugin discovery has its own tests (tests/test_plugins.py).
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")


@pytest.mark.parametrize("command", [[]] + [[m.NAME] for m in COMMANDS], ids=lambda c: c[0] if c else "main")
def test_help(command, capsys):
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: trackcore {command[0] if command else ''}".rstrip())
    if not command:
        for m in COMMANDS:
            assert f"    {m.NAME} " in out


def test_commands_are_modules_with_add_parser_and_run():
    for m in COMMANDS:
        assert callable(m.add_parser) and callable(m.run), m.__name__


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"trackcore {trackcore.__version__}"


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert "the following arguments are required: COMMAND" in capsys.readouterr().err
    assert main(["nosuchcommand"]) == 2
    assert "invalid choice: 'nosuchcommand'" in capsys.readouterr().err


def test_backends(capsys):
    assert main(["backends"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["backend", "usable", "why", "not"]
    numpy_row = next(line for line in lines if line.startswith("numpy"))
    assert numpy_row.split()[1] == "yes" or numpy_row.split()[2] == "yes"  # "numpy (default) yes"
    assert any(line.startswith("cupy") for line in lines)
    from trackcore.threads import default_threads

    assert f"run on {default_threads()} worker thread(s)" in "\n".join(lines)
    assert main(["backends", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["backends"]["numpy"] == {"usable": True, "status": "ok"}
    assert set(data["backends"]) == set(trackcore.available_backends())
    assert data["default"] in data["backends"]
    assert data["worker_threads"] == default_threads()
    # The GPU kernels: the reconstruction chain's and the simulation's; the hashing strategy's are missing.
    assert {"ckf", "find_seeds", "global_to_local", "transport", "digitize_segments"} <= set(data["gpu_kernels"])
    assert data["no_gpu_version"] == ["lsh_knn", "seed_buckets"]
    assert "without a GPU version: lsh_knn, seed_buckets" in "\n".join(lines)


def test_bad_backend_env_is_a_clean_error(monkeypatch, capsys):
    monkeypatch.setenv("TRACKCORE_BACKEND", "abacus")
    assert main(["backends"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("trackcore: error: TRACKCORE_BACKEND='abacus' is not a backend")
    assert "Traceback" not in err


def test_plugins_without_plugins(capsys):
    assert main(["plugins"]) == 0
    assert capsys.readouterr().out.strip() == f"no plugins ({DISABLE_AUTOLOAD_ENV} is set)"
    assert main(["plugins", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_format_table_aligns_columns():
    text = format_table(["name", "n"], [["a", 1], ["bbb", 22]])
    assert text.splitlines() == ["name   n", "----  --", "a      1", "bbb   22"]
