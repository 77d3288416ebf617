"""The cluster splitter plugin: hook implementations (entry point ``cluster_splitter``).

Inference runs the shipped ONNX graph through onnxruntime (no PyTorch in reconstruction);
``trackcore train cluster_splitter`` (needs PyTorch) makes a new one. To use another model, detector or
threshold, register ``ClusterSplitter(path, detector=..., p_single_max=...)`` instead of this module.
"""
from __future__ import annotations

import argparse

from trackcore.plugins import add_train_parser, command_line, hookimpl, require_torch

from .split import DEFAULT_P_SINGLE_MAX, MODEL_PATH, MODEL_VERSION, ClusterSplitter

__all__ = ["ClusterSplitter", "MODEL_PATH", "MODEL_VERSION", "DEFAULT_P_SINGLE_MAX"]

_default = ClusterSplitter()


def _hooks(splitter: ClusterSplitter):
    """Hook functions bound to ``splitter`` (used for the module-level default)."""

    def trackcore_split_clusters(event, clusters):
        result = splitter.split(event, clusters)
        return None if result is None else (result.hits, result.cells)

    def trackcore_model_status():
        return [{"name": "cluster_splitter", "version": MODEL_VERSION, "path": str(splitter.model_path),
                 "present": splitter.model_path.is_file()}]

    return trackcore_split_clusters, trackcore_model_status


_split, _status = _hooks(_default)


@hookimpl
def trackcore_split_clusters(event, clusters):
    """Replace merged pixel clusters by one hit per predicted particle (shipped model, see :class:`ClusterSplitter`)."""
    return _split(event, clusters)


@hookimpl
def trackcore_model_status() -> list[dict]:
    """The shipped ONNX model: where it is expected and whether it is there."""
    return _status()


class SplitterPlugin:
    """A registrable plugin object around a :class:`ClusterSplitter` of your choice."""

    def __init__(self, splitter: ClusterSplitter):
        self.splitter = splitter
        self._split, self._status = _hooks(splitter)

    @hookimpl
    def trackcore_split_clusters(self, event, clusters):
        return self._split(event, clusters)

    @hookimpl
    def trackcore_model_status(self) -> list[dict]:
        return self._status()


# -- command line ------------------------------------------------------------------------------
@hookimpl
def trackcore_add_commands(subparsers: argparse._SubParsersAction) -> None:
    """``trackcore train cluster_splitter [--quick] [--events N] [--test-events N] [--epochs E] [--seed S] [--output DIR]``."""
    p = add_train_parser(
        subparsers, "cluster_splitter", help="train the merged-cluster splitter CNN",
        description="Simulate high-pT jet events (jet pT 0.5-2 TeV) on the TrackML-like detector, label every pixel "
                    "cluster with its particles from the simulation, train the CNN (particle count and crossing "
                    "positions), export it to ONNX and evaluate on held-out events against a charge-ratio "
                    "baseline, then reconstruct held-out jet events (and <mu>=200 events) with and without "
                    "splitting. Writes model.pt, model.onnx, report.json and PNG plots to --output. Needs PyTorch.")
    p.add_argument("--events", type=int, default=None, help="training events (default 1500; --quick 60)")
    p.add_argument("--test-events", type=int, default=None, help="held-out events (default 300; --quick 20)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 40; --quick 6)")
    p.add_argument("--pipeline-events", type=int, default=None, help="held-out jet events reconstructed (default 30)")
    p.add_argument("--mu200-events", type=int, default=None, help="<mu>=200 events reconstructed (default 1)")
    p.set_defaults(func=_run_train)


def config_from_args(args: argparse.Namespace):
    """The :class:`~.train.TrainConfig` of the command line (``--quick`` first, then explicit options)."""
    from dataclasses import replace

    from .train import QUICK, TrainConfig

    config = replace(QUICK) if args.quick else TrainConfig()
    for name in ("events", "test_events", "epochs", "pipeline_events", "mu200_events"):
        if getattr(args, name) is not None:
            setattr(config, name, getattr(args, name))
    config.seed = args.seed
    return config.check()


def _run_train(args: argparse.Namespace) -> int:
    require_torch("trackcore train cluster_splitter")
    from .train import run_training

    config = config_from_args(args)
    config.notes["command"] = command_line()
    report = run_training(config, args.output, progress=not args.quiet)
    held = report["held_out"]
    print(f"wrote {args.output}/model.onnx, model.pt, report.json ({', '.join(report['plots'])})")
    print(f"held-out balanced accuracy: CNN {held['cnn']['balanced_accuracy']:.3f}, "
          f"charge baseline {held['charge_baseline']['balanced_accuracy']:.3f}")
    for key in ("jet_pipeline", "mu200_pipeline"):
        for name, row in (report.get(key) or {}).items():
            if isinstance(row, dict) and "score" in row:
                extra = (f", core shared {100 * row['shared_cluster_fraction']:.2f}%, core eff "
                         f"{100 * row['core_efficiency']:.2f}%" if "core_efficiency" in row else "")
                print(f"{key} {name:>7} splitting: score {row['score']:.4f}{extra}")
    return 0
