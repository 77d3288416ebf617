"""b-tagging inputs: signed impact-parameter significances, per-jet track sets, the IP3D-like baseline.

Signs follow the lifetime convention: an impact parameter is positive when the track's point of
closest approach lies on the jet's side of the primary vertex (b-hadron decay products mostly do),
negative otherwise (resolution only). d0 is measured from the beam line (the perigee's reference),
z0 from the primary vertex z (the median z0 of the event's fitted tracks). Lengths in mm, pT in GeV.
"""
from __future__ import annotations

import numpy as np

from trackcore.errors import InputError
from trackcore.event import Table

from .jets import delta_r

#: Tracks kept per jet (highest |d0 significance| first); the rest are dropped.
MAX_TRACKS = 25
#: Per-track features of the Deep Sets network, in column order.
TRACK_FEATURES = ("sd0", "sz0", "log_pt_frac", "dr", "d0_signed", "z0_signed", "log_sigma_d0", "log_sigma_z0")
N_TRACK_FEATURES = len(TRACK_FEATURES)
#: Bin edges of the IP3D templates in squashed significance s = sign(x) log(1 + |x|).
IP3D_EDGES = np.linspace(-4.0, 6.0, 41)


def squash(x: np.ndarray) -> np.ndarray:
    """sign(x) log(1 + |x|): keeps the sign, tames the long tails of significances."""
    x = np.asarray(x, np.float64)
    return np.sign(x) * np.log1p(np.abs(x))


def _column(tracks: Table, name: str) -> np.ndarray:
    if name not in tracks:
        raise InputError(f"jet tagger: tracks table {tracks.name!r} has no column {name!r} "
                         f"(b-tagging needs the perigee d0, z0, phi, theta, qop and sigma_d0, sigma_z0)")
    return np.asarray(tracks[name], np.float64)


def track_errors(tracks: Table) -> tuple[np.ndarray, np.ndarray]:
    """(sigma_d0, sigma_z0) in mm from ``sigma_*`` columns, else from ``cov_d0_d0``/``cov_z0_z0``."""
    if "sigma_d0" in tracks and "sigma_z0" in tracks:
        sd, sz = _column(tracks, "sigma_d0"), _column(tracks, "sigma_z0")
    elif "cov_d0_d0" in tracks and "cov_z0_z0" in tracks:
        sd, sz = np.sqrt(np.maximum(_column(tracks, "cov_d0_d0"), 0)), np.sqrt(np.maximum(_column(tracks, "cov_z0_z0"), 0))
    else:
        _column(tracks, "sigma_d0")  # raises the message naming the missing column
        raise AssertionError  # pragma: no cover
    return sd, sz


def primary_vertex_z(tracks: Table) -> float:
    """Primary vertex z (mm): median z0 of the fitted tracks (0 when there are none)."""
    z0 = _column(tracks, "z0")
    use = np.asarray(tracks["fitted"]).astype(bool) if "fitted" in tracks else np.ones(len(z0), bool)
    return float(np.median(z0[use])) if use.any() else 0.0


def signed_impact_parameters(tracks: Table, jet_eta: np.ndarray, jet_phi: np.ndarray, pv_z: float) -> dict:
    """Lifetime-signed impact parameters of each track with respect to its jet's axis.

    :param jet_eta: (N,) axis eta of each track's jet; :param jet_phi: (N,) axis phi (rad).
    :param pv_z: primary-vertex z (mm).
    :return: dict of (N,) arrays: ``d0``, ``z0`` (signed, mm), ``sd0``, ``sz0`` (significances), ``sigma_d0``,
        ``sigma_z0`` (mm). The transverse sign is that of (point of closest approach) . (jet direction):
        the perigee point is d0 (-sin phi, cos phi), so sign(d0 sin(phi_jet - phi)); the longitudinal
        sign is sign((eta_jet - eta_track) (z0 - z_pv)).
    """
    d0, z0 = _column(tracks, "d0"), _column(tracks, "z0") - pv_z
    phi, theta = _column(tracks, "phi"), _column(tracks, "theta")
    sigma_d0, sigma_z0 = track_errors(tracks)
    bad = ~(np.isfinite(sigma_d0) & np.isfinite(sigma_z0) & (sigma_d0 > 0) & (sigma_z0 > 0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(f"jet tagger: tracks table {tracks.name!r} row {row}: impact-parameter errors must be "
                         f"finite and > 0, got sigma_d0={sigma_d0[row]}, sigma_z0={sigma_z0[row]}")
    eta = -np.log(np.tan(np.clip(theta, 1e-9, np.pi - 1e-9) / 2))
    s_t = np.where(d0 * np.sin(jet_phi - phi) >= 0, 1.0, -1.0)
    s_z = np.where((jet_eta - eta) * z0 >= 0, 1.0, -1.0)
    d0s, z0s = s_t * np.abs(d0), s_z * np.abs(z0)
    return {"d0": d0s, "z0": z0s, "sd0": d0s / sigma_d0, "sz0": z0s / sigma_z0,
            "sigma_d0": sigma_d0, "sigma_z0": sigma_z0}


def jet_track_sets(tracks: Table, jets: Table, jet_index: np.ndarray, *, pv_z: float | None = None,
                   max_tracks: int = MAX_TRACKS) -> tuple[np.ndarray, np.ndarray]:
    """Per-jet padded track features for the Deep Sets network.

    :param tracks: reconstructed tracks (perigee, errors); :param jets: jets (pt, eta, phi);
    :param jet_index: (n_tracks,) row of ``jets`` of each track, -1 for none.
    :return: ``(x, mask)``: x (n_jets, max_tracks, :data:`N_TRACK_FEATURES`) float32 in the order of
        :data:`TRACK_FEATURES`, tracks sorted by decreasing |sd0|; mask (n_jets, max_tracks) bool.
    """
    jet_index = np.asarray(jet_index, np.int64)
    if jet_index.shape != (len(tracks),):
        raise InputError(f"jet tagger: jet_index must have one entry per track ({len(tracks)}), got {jet_index.shape}")
    if len(jet_index) and jet_index.max(initial=-1) >= len(jets):
        raise InputError(f"jet tagger: track jet index {int(jet_index.max())} is not a row of the {len(jets)} jets")
    x = np.zeros((len(jets), max_tracks, N_TRACK_FEATURES), np.float32)
    mask = np.zeros((len(jets), max_tracks), bool)
    rows = np.flatnonzero(jet_index >= 0)
    if len(rows) == 0:
        return x, mask
    sub, jrow = tracks.take(rows), jet_index[rows]
    pv = primary_vertex_z(tracks) if pv_z is None else pv_z
    ip = signed_impact_parameters(sub, np.asarray(jets["eta"])[jrow], np.asarray(jets["phi"])[jrow], pv)
    theta = _column(sub, "theta")
    pt = np.sin(theta) / np.abs(_column(sub, "qop"))
    eta = -np.log(np.tan(np.clip(theta, 1e-9, np.pi - 1e-9) / 2))
    feats = np.column_stack([
        squash(ip["sd0"]), squash(ip["sz0"]), np.log(pt / np.asarray(jets["pt"])[jrow]),
        delta_r(eta, _column(sub, "phi"), np.asarray(jets["eta"])[jrow], np.asarray(jets["phi"])[jrow]),
        squash(ip["d0"] / 0.01), squash(ip["z0"] / 0.01),  # 10 um units before squashing
        np.log(ip["sigma_d0"]), np.log(ip["sigma_z0"])])
    order = np.lexsort((-np.abs(ip["sd0"]), jrow))
    jrow, feats = jrow[order], feats[order]
    rank = np.arange(len(jrow)) - np.searchsorted(jrow, jrow)  # position inside its jet
    keep = rank < max_tracks
    x[jrow[keep], rank[keep]] = feats[keep]
    mask[jrow[keep], rank[keep]] = True
    return x, mask


class IP3D:
    """IP3D-like baseline: per-track log-likelihood ratio log(p_b / p_light) of the 2-D (sd0, sz0)
    templates, summed over the jet's tracks. Templates are histograms on :data:`IP3D_EDGES` of the
    squashed significances of training tracks, with one pseudo-count per bin (empty bins stay finite).
    """

    def __init__(self, edges: np.ndarray = IP3D_EDGES):
        self.edges = np.asarray(edges, np.float64)
        self.llr: np.ndarray | None = None

    def fit(self, x: np.ndarray, mask: np.ndarray, is_b: np.ndarray) -> "IP3D":
        """Fill the templates from jet track sets ``x``/``mask`` (see :func:`jet_track_sets`) and labels."""
        x, mask, is_b = np.asarray(x), np.asarray(mask, bool), np.asarray(is_b, bool)
        if len(np.unique(is_b)) < 2:
            raise InputError("jet tagger IP3D: need both b and light jets to build templates")
        hist = []
        for label in (True, False):
            t = x[is_b == label][mask[is_b == label]]
            h, _, _ = np.histogram2d(np.clip(t[:, 0], self.edges[0], self.edges[-1] - 1e-9),
                                     np.clip(t[:, 1], self.edges[0], self.edges[-1] - 1e-9), bins=[self.edges] * 2)
            hist.append((h + 1.0) / (h + 1.0).sum())
        self.llr = np.log(hist[0] / hist[1])
        return self

    def score(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(n_jets,) summed log-likelihood ratio (larger = more b-like); 0 for a jet without tracks."""
        if self.llr is None:
            raise InputError("jet tagger IP3D: fit() the templates before scoring")
        x, mask = np.asarray(x), np.asarray(mask, bool)
        i = np.clip(np.digitize(x[..., 0], self.edges) - 1, 0, len(self.edges) - 2)
        j = np.clip(np.digitize(x[..., 1], self.edges) - 1, 0, len(self.edges) - 2)
        return np.where(mask, self.llr[i, j], 0.0).sum(axis=1)

    def state(self) -> dict:
        return {"edges": self.edges.tolist(), "llr": None if self.llr is None else self.llr.tolist()}

    @classmethod
    def from_state(cls, state: dict) -> "IP3D":
        out = cls(np.asarray(state["edges"]))
        out.llr = None if state["llr"] is None else np.asarray(state["llr"], np.float64)
        return out


def simulate_btag_sample(n_events: int, first_seed: int, *, jets_per_event: int = 4, pileup: float = 0.0,
                         jet_pt: tuple[float, float] = (50.0, 250.0), progress: bool = True, desc: str = "b-tag") -> dict:
    """Simulate, reconstruct and cluster jet events; return the labelled jet track sets.

    Event ``i`` uses seed ``first_seed + i``; its ``jets_per_event`` truth jets are b or light at
    random (50/50). Track jets (anti-kt 0.4, pT >= 10 GeV) are matched to the truth jets within
    dR < 0.3; unmatched track jets are dropped.
    :return: dict with ``x``, ``mask`` (see :func:`jet_track_sets`), ``is_b`` (bool), ``pt``, ``eta`` (track jet).
    """
    from tqdm import tqdm

    from trackcore.geometry.builders import trackml_like_detector
    from trackcore.output import tracks_table
    from trackcore.reco.pipeline import reconstruct
    from trackcore.sim import particles as src
    from trackcore.sim.simulate import simulate_event

    from .jets import match, track_jets

    detector = trackml_like_detector()
    xs, masks, labels, pts, etas = [], [], [], [], []
    for i in tqdm(range(n_events), desc=desc, unit="event", disable=not progress):
        seed = first_seed + i
        rng = np.random.default_rng(seed)
        flav = rng.choice(["b", "light"], jets_per_event).tolist()
        parts, truth = src.jets(rng, n_jets=jets_per_event, jet_pt=jet_pt, flavour=flav)
        if pileup > 0:
            parts = src.combine(parts, src.minimum_bias(rng, pileup=pileup))
        event = simulate_event(detector, parts, seed=seed, event_id=seed)
        tracks = tracks_table(reconstruct(event, detector).tracks)
        jets, jet_index = track_jets(tracks)
        m = match(jets, truth)
        x, mask = jet_track_sets(tracks, jets, jet_index)
        ok = m >= 0
        xs.append(x[ok]), masks.append(mask[ok]), pts.append(jets["pt"][ok]), etas.append(jets["eta"][ok])
        labels.append(truth["flavour"][m[ok]] == src.FLAVOUR_LABEL["b"])
    if not xs or sum(len(x) for x in xs) == 0:
        raise InputError("jet tagger: the simulated events gave no matched track jets")
    return {"x": np.concatenate(xs), "mask": np.concatenate(masks), "is_b": np.concatenate(labels),
            "pt": np.concatenate(pts), "eta": np.concatenate(etas)}
