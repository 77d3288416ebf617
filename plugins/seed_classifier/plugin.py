"""The seed classifier plugin: hook implementations (entry point ``seed_classifier``).

Inference runs the shipped ONNX graph through onnxruntime, so reconstruction does not need
PyTorch; ``trackcore train seed_classifier`` (which does) makes a new one. A seed is labelled bad
when P(bad) >= ``bad_threshold`` (default :data:`DEFAULT_BAD_THRESHOLD`), otherwise good or
medium, whichever is likelier; the score is P(good). To use another model or threshold,
register ``SeedClassifier(path, bad_threshold=...)`` in a plugin manager instead of this module.
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from trackcore.errors import InputError, PluginError
from trackcore.hookspecs import SEED_BAD, SEED_GOOD, SEED_MEDIUM, SeedClasses, Seeds
from trackcore.plugins import add_train_parser, command_line, hookimpl, require_torch

#: Folder of the shipped model files.
MODEL_DIR = Path(__file__).resolve().parent
#: The shipped ONNX graph used for inference.
MODEL_PATH = MODEL_DIR / "model.onnx"
#: Version of the model format / feature set; bump when the features change.
MODEL_VERSION = "2"
#: P(bad) above which a seed is dropped; None means argmax. On 3 held-out mu=200 events (sixth
#: session): 0.8 and 0.9 cut the CKF time alike (1.10x), but the TrackML score loses 0.0062 at 0.8
#: and 0.0031 at 0.9 (0.95: 1.08x, -0.0014; 0.98: 1.07x, -0.0003); the real event 0.759 / 0.777 (0.857 without).
DEFAULT_BAD_THRESHOLD = 0.9


class SeedClassifier:
    """Classifies triplet seeds with an ONNX seed classifier (loaded on first use).

    :param model_path: the ``.onnx`` file (default: the shipped :data:`MODEL_PATH`).
    :param bad_threshold: label bad when P(bad) >= this (in (0, 1]); ``None``: when bad is likeliest.
    """

    def __init__(self, model_path: str | Path | None = None, bad_threshold: float | None = DEFAULT_BAD_THRESHOLD):
        if bad_threshold is not None and not 0.0 < float(bad_threshold) <= 1.0:
            raise InputError(f"seed classifier: bad_threshold must be in (0, 1], got {bad_threshold!r}")
        self.model_path = Path(model_path) if model_path is not None else MODEL_PATH
        self.bad_threshold = None if bad_threshold is None else float(bad_threshold)
        self._session = None
        self._warned_no_cells = False

    @property
    def session(self):
        """The :class:`~.onnx_runtime.OnnxSeedClassifier` (raises :class:`InputError` if the file is missing)."""
        if self._session is None:
            from .onnx_runtime import OnnxSeedClassifier

            self._session = OnnxSeedClassifier(self.model_path)
        return self._session

    def probabilities(self, event, hit_index: np.ndarray) -> np.ndarray:
        """(N, 3) float32 P(good), P(medium), P(bad) of seeds ``hit_index`` (N, 3 rows of ``event.hits``)."""
        from .features import seed_features

        session = self.session  # first, so that a missing model is reported even for an empty event
        features = seed_features(event, hit_index)
        return session.predict(features)

    def labels(self, prob: np.ndarray) -> np.ndarray:
        """(N,) int8 labels from probabilities (N, 3) under :attr:`bad_threshold`."""
        prob = np.asarray(prob)
        if len(prob) == 0:
            return np.zeros(0, np.int8)
        keep_label = np.where(prob[:, SEED_GOOD] >= prob[:, SEED_MEDIUM], SEED_GOOD, SEED_MEDIUM)
        bad = prob.argmax(1) == SEED_BAD if self.bad_threshold is None else prob[:, SEED_BAD] >= self.bad_threshold
        return np.where(bad, SEED_BAD, keep_label).astype(np.int8)

    @hookimpl
    def trackcore_classify_seeds(self, event, seeds: Seeds) -> SeedClasses | None:
        if not isinstance(seeds, Seeds):
            raise PluginError(f"seed classifier: expected trackcore.hookspecs.Seeds, got {type(seeds).__name__}")
        if event.cells is None:
            # The cluster-shape features need cells; without them the model would see a sample
            # unlike its training data and could drop good seeds, so leave the seeds alone.
            if not self._warned_no_cells:
                warnings.warn(f"seed classifier: {event.name} has no cells table; seeds are not classified",
                              stacklevel=2)
                self._warned_no_cells = True
            return None
        prob = self.probabilities(event, seeds.hit_index)
        return SeedClasses(self.labels(prob), np.ascontiguousarray(prob[:, SEED_GOOD], np.float32))

    @hookimpl
    def trackcore_model_status(self) -> list[dict]:
        return [{"name": "seed_classifier", "version": MODEL_VERSION, "path": str(self.model_path),
                 "present": self.model_path.is_file()}]


_default = SeedClassifier()


@hookimpl
def trackcore_classify_seeds(event, seeds: Seeds) -> SeedClasses | None:
    """Label seeds with the shipped model (see :class:`SeedClassifier`)."""
    return _default.trackcore_classify_seeds(event, seeds)


@hookimpl
def trackcore_model_status() -> list[dict]:
    """The shipped ONNX model: where it is expected and whether it is there."""
    return _default.trackcore_model_status()


# -- command line ------------------------------------------------------------------------------
@hookimpl
def trackcore_add_commands(subparsers: argparse._SubParsersAction) -> None:
    """``trackcore train seed_classifier [--quick] [--events N] [--seed S] [--output DIR]``."""
    p = add_train_parser(
        subparsers, "seed_classifier", help="train the good/medium/bad seed classifier",
        description="Simulate <mu>=200 events on the TrackML-like detector, label their triplet seeds from truth "
                    "(medium seeds: good seeds with one hit moved to a neighbouring hit on the same layer), train "
                    "the MLP, export it to ONNX and evaluate on held-out events against a seed-weight cut. Writes "
                    "model.pt, model.onnx, report.json and PNG plots to --output. Needs PyTorch.")
    p.add_argument("--events", type=int, default=None, help="training events (default 8; --quick 2)")
    p.add_argument("--test-events", type=int, default=None, help="held-out events (default 3; --quick 1)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 12; --quick 6)")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    require_torch("trackcore train seed_classifier")
    from .train import config_from_args, run_training

    config = config_from_args(args)
    config.notes["command"] = command_line()
    report = run_training(config, args.output, progress=not args.quiet)
    held = report["held_out"]
    print(f"wrote {args.output}/model.onnx, model.pt, report.json ({', '.join(held['plots'])})")
    print("held-out recall: " + ", ".join(f"{k} {100 * v:.1f}% (published {100 * held['published_recall'][k]:.1f}%)"
                                          for k, v in held["recall"].items()))
    for name, row in report.get("pipeline", {}).items():
        print(f"{name:>24}: CKF cpu {row['ckf_cpu_s']:.2f}s (x{row['ckf_cpu_speedup']:.2f}), "
              f"eff(pT>1) {100 * row['efficiency_pt']:.2f}%, score {row['trackml_score']:.4f}, "
              f"fake {100 * row['fake_rate']:.2f}%")
    return 0
