"""onnxruntime inference of the cluster splitter graph: what the pipeline hook uses (no PyTorch needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trackcore.errors import InputError, PluginError

from .features import N_SCALARS, WINDOW_U, WINDOW_V

_N_SLOTS = 6


class OnnxClusterSplitter:
    """A session of a cluster splitter graph: maps (N, 1, WU, WV) + scalars (N, S) -> probabilities,
    positions and sigmas (pitch units).

    :raises InputError: the file is missing or is not a cluster splitter graph of this window size.
    :raises PluginError: onnxruntime is not installed.
    """

    def __init__(self, path: str | Path, threads: int = 1):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"cluster splitter: model file {self.path} not found (train one with "
                             f"'trackcore train cluster_splitter --output DIR')")
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise PluginError("cluster splitter: onnxruntime is not installed (pip install 'trackcore[ml]')") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)  # the cores belong to the rest of the pipeline
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own exception types for a corrupt graph
            raise InputError(f"cluster splitter: {self.path} is not a readable ONNX model: {exc}") from exc
        ins = {i.name: i.shape for i in self.session.get_inputs()}
        outs = [o.name for o in self.session.get_outputs()]
        if list(ins) != ["maps", "scalars"] or outs != ["probabilities", "positions", "sigmas"]:
            raise InputError(f"cluster splitter: {self.path} has inputs {list(ins)} and outputs {outs}, expected "
                             f"maps, scalars -> probabilities, positions, sigmas")
        if list(ins["maps"][1:]) != [1, WINDOW_U, WINDOW_V] or ins["scalars"][1] != N_SCALARS:
            raise InputError(f"cluster splitter: {self.path} expects maps {ins['maps']} and scalars "
                             f"{ins['scalars']}, but the features are (N, 1, {WINDOW_U}, {WINDOW_V}) and "
                             f"(N, {N_SCALARS}) (model from another version?)")

    def predict(self, maps: np.ndarray, scalars: np.ndarray):
        """(probabilities (N, 3), positions (N, 6, 2), sigmas (N, 6, 2)) float32."""
        maps, scalars = np.asarray(maps), np.asarray(scalars)
        if maps.ndim != 4 or maps.shape[1:] != (1, WINDOW_U, WINDOW_V):
            raise InputError(f"cluster splitter: maps must have shape (N, 1, {WINDOW_U}, {WINDOW_V}), got {maps.shape}")
        if scalars.shape != (len(maps), N_SCALARS):
            raise InputError(f"cluster splitter: scalars must have shape ({len(maps)}, {N_SCALARS}), got {scalars.shape}")
        if len(maps) == 0:
            return (np.zeros((0, 3), np.float32), np.zeros((0, _N_SLOTS, 2), np.float32),
                    np.zeros((0, _N_SLOTS, 2), np.float32))
        maps = np.ascontiguousarray(maps, np.float32)
        scalars = np.ascontiguousarray(scalars, np.float32)
        if not (np.isfinite(maps).all() and np.isfinite(scalars).all()):
            raise InputError("cluster splitter: non-finite input (charge map or scalars)")
        prob, pos, sig = self.session.run(None, {"maps": maps, "scalars": scalars})
        return prob, pos, sig
