"""Inference with onnxruntime: what the pipeline hook uses, so reconstruction needs no PyTorch."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trackcore.errors import InputError, PluginError

from .features import N_FEATURES


class OnnxSeedClassifier:
    """An onnxruntime session of a seed classifier graph: (N, F) float32 features -> (N, 3) probabilities.

    :raises InputError: the file is missing or is not a seed classifier graph (wrong input width
        or output classes).
    :raises PluginError: onnxruntime is not installed.
    """

    def __init__(self, path: str | Path, threads: int = 1):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"seed classifier: model file {self.path} not found (train one with "
                             f"'trackcore train seed_classifier --output DIR')")
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise PluginError("seed classifier: onnxruntime is not installed (pip install 'trackcore[ml]')") from exc
        options = ort.SessionOptions()
        # One thread: the machine's cores belong to the rest of the pipeline (and other jobs).
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for a corrupt graph
            raise InputError(f"seed classifier: {self.path} is not a readable ONNX model: {exc}") from exc
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise InputError(f"seed classifier: {self.path} must have one input and one output, "
                             f"has {len(inputs)} and {len(outputs)}")
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        width = inputs[0].shape[1] if len(inputs[0].shape) == 2 else None
        if width != N_FEATURES:
            raise InputError(f"seed classifier: {self.path} expects input shape {inputs[0].shape}, but the "
                             f"features have {N_FEATURES} columns (model from another version?)")
        self.n_features = N_FEATURES

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(N, 3) float32 probabilities (good, medium, bad) of ``features`` (N, :data:`N_FEATURES`)."""
        x = np.asarray(features)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise InputError(f"seed classifier: features must have shape (N, {self.n_features}), got {x.shape}")
        if len(x) == 0:
            return np.zeros((0, 3), np.float32)
        x = np.ascontiguousarray(x, np.float32)
        if not np.isfinite(x).all():
            row = int(np.flatnonzero(~np.isfinite(x).all(1))[0])
            raise InputError(f"seed classifier: features row {row} is not finite")
        out = self.session.run([self.output_name], {self.input_name: x})[0]
        if out.shape != (len(x), 3):
            raise InputError(f"seed classifier: {self.path} returned shape {out.shape}, expected ({len(x)}, 3)")
        return out
