"""Plugin discovery through entry points, hook calls, the disable switch, broken plugins, the CLI."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from trackcore.cli.main import main
from trackcore.errors import InputError, PluginError
from trackcore.event import Event, Table
from trackcore.hookspecs import SEED_BAD, SEED_GOOD, SeedClasses, Seeds
from trackcore.plugins import DISABLE_AUTOLOAD_ENV, get_plugin_manager, list_plugins

GOOD_PLUGIN = '''
import os
import numpy as np
from trackcore.hookspecs import SeedClasses
from trackcore.plugins import hookimpl

MODEL = os.path.join(os.path.dirname(__file__), "seedcls.onnx")

@hookimpl
def trackcore_classify_seeds(event, seeds):
    # A real rule (good when |d0| < 1 mm) so the test sees the seeds' data reach the plugin.
    d0 = np.abs(seeds.params[:, 0])
    return SeedClasses(np.where(d0 < 1.0, 0, 2).astype(np.int8), np.exp(-d0).astype(np.float32))

@hookimpl
def trackcore_add_commands(subparsers):
    p = subparsers.add_parser("hello", help="greet")
    p.add_argument("--name", default="world")
    p.set_defaults(func=run)

def run(args):
    print(f"hello {args.name} from {len(args.plugin_manager.get_plugins())} plugin(s)")
    return 3

@hookimpl
def trackcore_model_status():
    return [{"name": "seedcls", "version": "1.0", "path": MODEL, "present": os.path.exists(MODEL)}]
'''


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path where :func:`make_dist` installs throwaway distributions."""
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for name in [m for m in sys.modules if m.startswith("tcplug_")]:
        del sys.modules[name]


def make_dist(site: Path, module: str, source: str, version: str = "1.2.3", ep_name: str | None = None) -> Path:
    """Install package ``module`` with ``source`` as a distribution with a ``trackcore`` entry point."""
    pkg = site / module
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(source))
    dist_name = module.replace("_", "-")
    info = site / f"{module}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[trackcore]\n{ep_name or module} = {module}\n")
    return pkg


def _seeds(n: int) -> Seeds:
    params = np.zeros((n, 5))
    params[:, 0] = np.linspace(-2.0, 2.0, n)  # d0, mm
    return Seeds(np.arange(3 * n).reshape(n, 3), params)


def _event() -> Event:
    return Event(Table({"hit_id": [1, 2, 3], "x": [1.0, 2, 3], "y": [0.0, 0, 0], "z": [0.0, 0, 0],
                        "volume_id": [8, 8, 8], "layer_id": [2, 4, 6], "module_id": [1, 1, 1]}, name="hits"))


def test_entry_point_is_discovered_with_its_distribution(site):
    make_dist(site, "tcplug_good", GOOD_PLUGIN)
    pm = get_plugin_manager()
    assert pm.has_plugin("tcplug_good")
    assert pm.distributions["tcplug_good"] == ("tcplug-good", "1.2.3")
    info = {i.name: i for i in list_plugins(pm)}["tcplug_good"]
    assert info.version == "1.2.3"
    assert info.hooks == ("trackcore_add_commands", "trackcore_classify_seeds", "trackcore_model_status")
    assert [(m.name, m.version, m.present) for m in info.models] == [("seedcls", "1.0", False)]


def test_classify_seeds_hook_returns_the_plugins_arrays(site):
    make_dist(site, "tcplug_good", GOOD_PLUGIN)
    pm = get_plugin_manager()
    # Only this plugin's implementation, whatever else is installed.
    others = [p for name, p in pm.list_name_plugin() if name != "tcplug_good"]
    call = pm.subset_hook_caller("trackcore_classify_seeds", remove_plugins=others)
    seeds = _seeds(5)
    result = call(event=_event(), seeds=seeds)
    assert isinstance(result, SeedClasses)
    result.check(len(seeds), "tcplug_good")
    np.testing.assert_array_equal(result.label, [SEED_BAD, SEED_BAD, SEED_GOOD, SEED_BAD, SEED_BAD])
    np.testing.assert_allclose(result.score, np.exp(-np.abs([-2.0, -1.0, 0.0, 1.0, 2.0])), rtol=1e-6)


def test_plugin_command_runs_through_main(site, capsys):
    make_dist(site, "tcplug_good", GOOD_PLUGIN)
    assert main(["hello", "--name", "tracker"]) == 3
    assert capsys.readouterr().out.startswith("hello tracker from ")
    assert main(["--help"]) == 0
    assert "hello" in capsys.readouterr().out


def test_disable_env_var_stops_autoload(site, monkeypatch, capsys):
    make_dist(site, "tcplug_good", GOOD_PLUGIN)
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    assert not get_plugin_manager().has_plugin("tcplug_good")
    assert get_plugin_manager(load_entrypoints=True).has_plugin("tcplug_good")  # an explicit request wins
    assert main(["hello"]) == 2  # the command is gone: a usage error
    assert "invalid choice: 'hello'" in capsys.readouterr().err
    assert main(["plugins"]) == 0
    assert f"no plugins ({DISABLE_AUTOLOAD_ENV} is set)" in capsys.readouterr().out


def test_broken_plugin_gives_plugin_error_naming_it(site, capsys):
    make_dist(site, "tcplug_broken", "import tcplug_missing_dependency\n", version="0.4.0", ep_name="broken")
    with pytest.raises(PluginError) as err:
        get_plugin_manager()
    msg = str(err.value)
    for part in ("'broken'", "tcplug-broken 0.4.0", "broken = tcplug_broken", "ModuleNotFoundError",
                 "tcplug_missing_dependency", DISABLE_AUTOLOAD_ENV):
        assert part in msg
    assert main(["backends"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("trackcore: error: plugin 'broken'")
    assert "Traceback" not in captured.err


def test_unknown_hook_name_is_rejected(site):
    make_dist(site, "tcplug_typo", """
        from trackcore.plugins import hookimpl

        @hookimpl
        def trackcore_classify_seed(event, seeds):
            return None
        """)
    with pytest.raises(PluginError, match="'tcplug_typo' implements unknown hook 'trackcore_classify_seed'"):
        get_plugin_manager()


def test_bad_model_status_is_a_plugin_error(site):
    make_dist(site, "tcplug_badmodel", """
        from trackcore.plugins import hookimpl

        @hookimpl
        def trackcore_model_status():
            return [{"name": "x", "path": "/nowhere"}]
        """)
    with pytest.raises(PluginError, match="'tcplug_badmodel'.*entry 0 lacks version, present"):
        list_plugins(get_plugin_manager())


def test_plugins_command_lists_version_hooks_and_model(site, capsys):
    pkg = make_dist(site, "tcplug_good", GOOD_PLUGIN)
    assert main(["plugins"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("tcplug_good "))
    assert "1.2.3" in row and "tcplug-good" in row
    assert "add_commands, classify_seeds, model_status" in row
    assert "seedcls 1.0: MISSING" in row
    (pkg / "seedcls.onnx").write_bytes(b"model")
    assert main(["plugins", "--json"]) == 0
    entry = next(p for p in json.loads(capsys.readouterr().out) if p["name"] == "tcplug_good")
    assert entry["version"] == "1.2.3"
    assert entry["models"] == [{"name": "seedcls", "version": "1.0", "path": str(pkg / "seedcls.onnx"),
                                "present": True}]


def test_seed_contracts_check_shapes():
    with pytest.raises(InputError, match=r"hit_index must have shape \(N, 3\), got \(4, 2\)"):
        Seeds(np.zeros((4, 2), np.int64), np.zeros((4, 5)))
    with pytest.raises(InputError, match=r"params must have shape \(4, 5\)"):
        Seeds(np.zeros((4, 3), np.int64), np.zeros((4, 4)))
    assert len(Seeds(np.zeros((0, 3), np.int64), np.zeros((0, 5)))) == 0
    with pytest.raises(PluginError, match=r"tagger: trackcore_classify_seeds returned label \(3,\)"):
        SeedClasses(np.zeros(3, np.int8), np.zeros(3)).check(4, "tagger")
    with pytest.raises(PluginError, match="labels outside 0, 1, 2"):
        SeedClasses(np.full(2, 7, np.int8), np.zeros(2)).check(2, "tagger")


def test_console_script_entry_point():
    script = Path(sys.executable).with_name("trackcore")
    if not script.exists():
        pytest.skip(f"console script {script} not installed (pip install -e .)")
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: trackcore")
    for command in ("info", "plugins", "backends"):
        assert command in done.stdout
