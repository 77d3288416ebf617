"""The GAN fast-simulation plugin: hook implementations (entry point ``fastsim_gan``).

``trackcore_fast_simulate`` transports the particles with the core and replaces the full
digitisation by the shipped generator (``generator.npz``, numpy inference: no PyTorch needed);
``trackcore train fastsim_gan`` (needs PyTorch) makes a new one. To use another generator, pass
``{"model": path}`` in the hook's config or register ``FastSimGAN(path)`` instead of this module.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Mapping

from trackcore.errors import InputError
from trackcore.plugins import add_train_parser, command_line, hookimpl, require_torch

#: Folder of the shipped model files.
MODEL_DIR = Path(__file__).resolve().parent
#: The shipped generator used for inference.
MODEL_PATH = MODEL_DIR / "generator.npz"
#: Version of the model layout (2: classifier of the integer observables + GAN; 1: plain GAN); bump when it changes.
MODEL_VERSION = "2"


class FastSimGAN:
    """Fast simulation with a generator file (loaded on first use).

    :param model_path: the ``.npz`` generator (default: the shipped :data:`MODEL_PATH`).
    """

    def __init__(self, model_path: str | Path | None = None):
        self.model_path = Path(model_path) if model_path is not None else MODEL_PATH
        self._generators: dict[Path, Any] = {}

    def generator(self, path: Path | None = None):
        """The :class:`~.model.NumpyGenerator` of ``path`` (default: :attr:`model_path`); raises InputError if missing."""
        from .model import NumpyGenerator

        path = Path(path) if path is not None else self.model_path
        if path not in self._generators:
            self._generators[path] = NumpyGenerator(path)
        return self._generators[path]

    @hookimpl
    def trackcore_fast_simulate(self, particles, detector, config: Mapping[str, Any]):
        from trackcore.sim.simulate import SimulationConfig

        from .fastsim import fast_simulate_event, settings

        if not isinstance(config, Mapping):
            raise InputError(f"fastsim: config must be a mapping, got {type(config).__name__}")
        s = settings(config)
        generator = self.generator(s["model"])
        return fast_simulate_event(detector, particles, generator, seed=int(s["seed"]), event_id=int(s["event_id"]),
                                   config=SimulationConfig(noise_fraction=s["noise_fraction"]), backend=s["backend"])

    @hookimpl
    def trackcore_model_status(self) -> list[dict]:
        return [{"name": "fastsim_gan", "version": MODEL_VERSION, "path": str(self.model_path),
                 "present": self.model_path.is_file()}]


_default = FastSimGAN()


@hookimpl
def trackcore_fast_simulate(particles, detector, config):
    """One event, the digitisation by the shipped generator (see :class:`FastSimGAN`)."""
    return _default.trackcore_fast_simulate(particles, detector, config)


@hookimpl
def trackcore_model_status() -> list[dict]:
    """The shipped generator: where it is expected and whether it is there."""
    return _default.trackcore_model_status()


@hookimpl
def trackcore_add_commands(subparsers: argparse._SubParsersAction) -> None:
    """``trackcore train fastsim_gan [--quick] [--events N] [--test-events N] [--steps N] [--seed S] [--output DIR]``."""
    p = add_train_parser(
        subparsers, "fastsim_gan", help="train the GAN fast simulation of pixel and strip clusters",
        description="Simulate <mu>=200 events with the full digitisation, train the conditional GAN of cluster "
                    "observables, export the generator and evaluate on held-out events against the full "
                    "digitisation and a geometric baseline (distributions, classifier two-sample test, "
                    "reconstruction, speed). Writes model.pt, generator.npz, report.json and PNG plots. Needs PyTorch.")
    p.add_argument("--events", type=int, default=None, help="training events (default 3; --quick 1)")
    p.add_argument("--test-events", type=int, default=None, help="held-out events (default 2; --quick 1)")
    p.add_argument("--steps", type=int, default=None, help="GAN training steps (default 12000; --quick 300)")
    p.add_argument("--pileup", type=float, default=None, help="<mu> of the events (default 200; --quick 10)")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    require_torch("trackcore train fastsim_gan")
    from .train import config_from_args, run_training

    config = config_from_args(args)
    config.notes["command"] = command_line()
    report = run_training(config, args.output, progress=not args.quiet)
    print(f"wrote {args.output}/generator.npz, model.pt, report.json")
    for group in ("pixel", "strip"):
        c = report["held_out"][group]["c2st_auc"]
        print(f"{group}: classifier two-sample AUC GAN {c['gan']:.3f}, baseline {c['baseline']:.3f} (target <= 0.6)")
    sp = report["speed"]
    print(f"digitisation speed-up: GAN x{sp['speedup_gan']:.1f}, baseline x{sp['speedup_baseline']:.1f} (target 10)")
    for name, row in report.get("reconstruction", {}).get("mean", {}).items():
        print(f"{name:>9}: score {row['score']:.4f}, efficiency {row['efficiency']:.4f}")
    return 0
