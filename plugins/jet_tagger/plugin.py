"""The jet tagger plugin: hook implementations (entry point ``jet_tagger``).

``trackcore_tag_jets`` scores track jets with the shipped Deep Sets b-tagger (``"b"``: P(b)) and the
IP3D-like baseline (``"ip3d"``: log-likelihood ratio). The quark/gluon CNN needs neutral particles
(jet images with a neutral-pT channel), which reconstructed tracks do not give, so it is not run by
the hook; use :func:`plugins.jet_tagger.qg.jet_image` and the model in ``qg_cnn.pt`` on particle-level
jets. ``trackcore tag`` finds anti-kt 0.4 track jets in reconstructed events and runs every tagger;
``trackcore train jet_tagger`` makes new models. Needs PyTorch and fastjet.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from trackcore.errors import InputError, PluginError
from trackcore.event import Table
from trackcore.plugins import add_train_parser, command_line, hookimpl, require_torch

MODEL_DIR = Path(__file__).resolve().parent
BTAG_MODEL = MODEL_DIR / "btag_deepsets.pt"
IP3D_TEMPLATES = MODEL_DIR / "ip3d.json"
QG_MODEL = MODEL_DIR / "qg_cnn.pt"
MODEL_VERSION = "1"


class JetTagger:
    """b-tags jets with a Deep Sets model and IP3D templates (loaded on first use).

    :param model_path: ``.pt`` file of :class:`~.models.DeepSets` (default: the shipped one).
    :param ip3d_path: ``.json`` IP3D templates (default: the shipped ones).
    """

    def __init__(self, model_path: str | Path | None = None, ip3d_path: str | Path | None = None):
        self.model_path = Path(model_path) if model_path is not None else BTAG_MODEL
        self.ip3d_path = Path(ip3d_path) if ip3d_path is not None else IP3D_TEMPLATES
        self._model = None
        self._ip3d = None

    def _load(self):
        if self._model is None:
            from .btag import IP3D
            from .models import DeepSets, load

            model = load(DeepSets, self.model_path)
            if not self.ip3d_path.is_file():
                raise InputError(f"jet tagger: IP3D templates {self.ip3d_path} not found")
            try:
                self._ip3d = IP3D.from_state(json.loads(self.ip3d_path.read_text()))
            except (ValueError, KeyError) as exc:
                raise InputError(f"jet tagger: {self.ip3d_path} holds no IP3D templates ({exc})") from exc
            self._model = model
        return self._model, self._ip3d

    def scores(self, jets: Table, tracks: Table) -> dict[str, np.ndarray]:
        """``{"b": P(b), "ip3d": LLR}``, (n_jets,) each in jet row order; tracks' ``jet_id`` names their jet."""
        from .btag import jet_track_sets
        from .models import predict

        model, ip3d = self._load()  # first, so a missing model is reported even for an event without jets
        for col in ("jet_id", "pt", "eta", "phi"):
            if col not in jets:
                raise InputError(f"jet tagger: jets table {jets.name!r} has no column {col!r}")
        if "jet_id" not in tracks:
            raise InputError(f"jet tagger: tracks table {tracks.name!r} has no column 'jet_id'")
        if len(jets) == 0:
            return {"b": np.zeros(0), "ip3d": np.zeros(0)}
        jet_ids = np.asarray(jets["jet_id"], np.int64)
        order = np.argsort(jet_ids)
        tid = np.asarray(tracks["jet_id"], np.int64)
        pos = np.clip(np.searchsorted(jet_ids[order], tid), 0, len(jet_ids) - 1)
        row = np.where(jet_ids[order][pos] == tid, order[pos], -1)
        unknown = (tid >= 0) & (row < 0)
        if unknown.any():
            raise InputError(f"jet tagger: tracks table row {int(np.flatnonzero(unknown)[0])} names jet_id "
                             f"{int(tid[unknown][0])}, which is not in the jets table")
        x, mask = jet_track_sets(tracks, jets, row)
        return {"b": predict(model, x, mask), "ip3d": ip3d.score(x, mask)}

    @hookimpl
    def trackcore_tag_jets(self, event, jets: Table, tracks: Table) -> dict[str, np.ndarray] | None:
        return self.scores(jets, tracks)

    @hookimpl
    def trackcore_model_status(self) -> list[dict]:
        return [{"name": "jet_tagger.btag", "version": MODEL_VERSION, "path": str(self.model_path),
                 "present": self.model_path.is_file() and self.ip3d_path.is_file()},
                {"name": "jet_tagger.qg", "version": MODEL_VERSION, "path": str(QG_MODEL), "present": QG_MODEL.is_file()}]


_default = JetTagger()


@hookimpl
def trackcore_tag_jets(event, jets: Table, tracks: Table) -> dict[str, np.ndarray] | None:
    """b-tag scores of the shipped models (see :class:`JetTagger`)."""
    return _default.trackcore_tag_jets(event, jets, tracks)


@hookimpl
def trackcore_model_status() -> list[dict]:
    """The shipped b-tagging and q/g models: where they are expected and whether they are there."""
    return _default.trackcore_model_status()


# -- tagging reconstructed events -----------------------------------------------------------
def tag_tracks(tracks: Table, plugin_manager, event=None, *, pt_min: float = 10.0) -> Table:
    """Track jets (anti-kt 0.4, pT >= ``pt_min`` GeV) of a reconstructed tracks table, with every tagger's scores.

    :return: jets table (jet_id, pt, eta, phi, mass, n_constituents, one column per tagger score).
    :raises PluginError: a tagger returned scores of the wrong length.
    """
    from trackcore.event import Event

    from .jets import track_jets

    jets, jet_index = track_jets(tracks, pt_min=pt_min)
    tracks = tracks.copy()
    tracks["jet_id"] = jet_index
    jets = Table({k: jets[k] for k in ("jet_id", "pt", "eta", "phi", "mass", "n_constituents")}, name="jets")
    if event is None:  # the hook wants an event; a tracks file alone has no hits
        event = Event(hits=Table({c: np.zeros(0) for c in ("hit_id", "x", "y", "z")}, name="hits"))
    for answer in plugin_manager.hook.trackcore_tag_jets(event=event, jets=jets, tracks=tracks):
        for name, score in (answer or {}).items():
            score = np.asarray(score, np.float64)
            if score.shape != (len(jets),):
                raise PluginError(f"trackcore_tag_jets: tagger {name!r} returned shape {score.shape}, "
                                  f"expected ({len(jets)},)")
            jets[f"score_{name}"] = score
    return jets


def _run_tag(args: argparse.Namespace) -> int:
    from trackcore.output import format_table, read_outputs

    folder = Path(args.reco)
    if not folder.is_dir():
        raise InputError(f"trackcore tag: {folder} is not a folder of reconstruction outputs")
    names = sorted({p.name.split("-tracks.")[0] for p in folder.glob("*-tracks.*")})
    if not names:
        raise InputError(f"trackcore tag: {folder} holds no <event>-tracks.csv|.parquet (run trackcore reconstruct)")
    out = Path(args.output) if args.output else folder
    out.mkdir(parents=True, exist_ok=True)
    pm = args.plugin_manager
    for name in names:
        tracks, _ = read_outputs(folder, name)
        jets = tag_tracks(tracks, pm, pt_min=args.jet_pt_min)
        (out / f"{name}-jets.csv").write_bytes(format_table(jets, "csv"))
        b = jets["score_b"] if "score_b" in jets else np.zeros(0)
        print(f"{name}: {len(jets)} jets, {int((b > args.b_cut).sum())} b-tagged (P(b) > {args.b_cut})")
    return 0


# -- command line ------------------------------------------------------------------------------
@hookimpl
def trackcore_add_commands(subparsers: argparse._SubParsersAction) -> None:
    """``trackcore tag RECO_DIR`` and ``trackcore train jet_tagger``."""
    p = subparsers.add_parser(
        "tag", help="find anti-kt 0.4 track jets in reconstructed events and tag them (b-tagging)",
        description="Read <event>-tracks.csv|.parquet from RECO_DIR (written by trackcore reconstruct), cluster "
                    "fitted tracks with pT >= 0.5 GeV into anti-kt R = 0.4 jets (fastjet), call every "
                    "trackcore_tag_jets tagger and write <event>-jets.csv with a score_<tagger> column each.")
    p.add_argument("reco", type=Path, help="folder of reconstruction outputs")
    p.add_argument("--output", "-o", type=Path, default=None, help="output folder (default: RECO_DIR)")
    p.add_argument("--jet-pt-min", type=float, default=10.0, help="minimum track-jet pT in GeV (default 10)")
    p.add_argument("--b-cut", type=float, default=0.5, help="P(b) above which a jet counts as b-tagged in the summary")
    p.set_defaults(func=_run_tag)

    t = add_train_parser(
        subparsers, "jet_tagger", help="train the Deep Sets b-tagger and the quark/gluon CNN",
        description="Simulate and reconstruct b and light jet events (TrackML-like detector), train the Deep "
                    "Sets b-tagger beside an IP3D-like baseline; shower quark and gluon jets with the toy "
                    "parton shower, train the jet-image CNN beside a multiplicity-width baseline; evaluate "
                    "both on held-out jets. Writes btag_deepsets.pt, ip3d.json, qg_cnn.pt, report.json and "
                    "PNG plots to --output. Needs PyTorch and fastjet.")
    t.add_argument("--tasks", nargs="+", choices=("btag", "qg"), default=None, help="what to train (default both)")
    t.add_argument("--btag-events", type=int, default=None, help="b-tag training events (default 2000, 4 jets each)")
    t.add_argument("--btag-epochs", type=int, default=None, help="Deep Sets epochs (default 40)")
    t.add_argument("--qg-jets", type=int, default=None, help="q/g training jets per class (default 20000)")
    t.add_argument("--qg-epochs", type=int, default=None, help="CNN epochs (default 15)")
    t.add_argument("--pileup", type=float, default=None, help="<mu> added to the b-tag events (default 0)")
    t.add_argument("--cache-dir", type=Path, default=None, help="where reconstructed track sets are cached (.npz)")
    t.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    require_torch("trackcore train jet_tagger")
    from .train import config_from_args, run_training

    config = config_from_args(args)
    config.notes["command"] = command_line()
    report = run_training(config, args.output, progress=not args.quiet)
    if "btag" in report:
        r = report["btag"]
        rej = {k: (f"{r[k]['rejection']:.1f}" if r[k]["rejection"] is not None
                   else f"> {r[k]['rejection_lower_95cl']:.0f} (95% CL, no light jet passes)") for k in ("deep_sets", "ip3d_baseline")}
        print(f"b vs light, light rejection at 70% b eff: Deep Sets {rej['deep_sets']}, "
              f"IP3D {rej['ip3d_baseline']} ({r['test_jets']} held-out jets)")
    if "qg" in report:
        r = report["qg"]
        print(f"quark vs gluon AUC: CNN {r['auc_cnn']:.3f}, multiplicity+width {r['auc_baseline']:.3f}")
    print(f"wrote {args.output}/report.json and plots")
    return 0
