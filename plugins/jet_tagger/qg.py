"""Quark/gluon inputs: toy-shower jets clustered by FastJet, jet images, the multiplicity-width baseline."""
from __future__ import annotations

import numpy as np

from trackcore.errors import InputError

from .jets import antikt, delta_r

#: Image size (pixels per side) and half-width in eta and phi (rad) around the jet axis.
PIXELS, HALF_WIDTH = 24, 0.4
#: Image channels.
CHANNELS = ("charged_pt", "neutral_pt", "charged_multiplicity")
#: Baseline template bins: constituent multiplicity and width (pT-weighted mean dR).
MULT_EDGES = np.arange(0.0, 121.0, 4.0)
WIDTH_EDGES = np.linspace(0.0, 0.3, 16)


def jet_image(eta: np.ndarray, phi: np.ndarray, pt: np.ndarray, charge: np.ndarray, jet_eta: float, jet_phi: float,
              jet_pt: float, pixels: int = PIXELS, half_width: float = HALF_WIDTH) -> np.ndarray:
    """(3, pixels, pixels) float32 image of a jet's constituents around its axis.

    Channels (:data:`CHANNELS`): charged pT / jet pT, neutral pT / jet pT, number of charged particles.
    Rows are d_eta, columns d_phi, each over [-half_width, half_width]; constituents outside are dropped.
    """
    if jet_pt <= 0:
        raise InputError(f"jet image: jet pT must be > 0 GeV, got {jet_pt}")
    deta = np.asarray(eta) - jet_eta
    dphi = (np.asarray(phi) - jet_phi + np.pi) % (2 * np.pi) - np.pi
    i = np.floor((deta + half_width) / (2 * half_width) * pixels).astype(np.int64)
    j = np.floor((dphi + half_width) / (2 * half_width) * pixels).astype(np.int64)
    inside = (i >= 0) & (i < pixels) & (j >= 0) & (j < pixels)
    image = np.zeros((3, pixels, pixels), np.float64)
    charged = np.asarray(charge) != 0
    for c, sel, w in ((0, charged, pt / jet_pt), (1, ~charged, pt / jet_pt), (2, charged, np.ones(len(pt)))):
        s = inside & sel
        np.add.at(image[c], (i[s], j[s]), np.asarray(w)[s])
    return image.astype(np.float32)


def simulate_qg_sample(n_per_class: int, seed: int, *, pt: tuple[float, float] = (100.0, 200.0),
                       eta_max: float = 1.5, progress: bool = True, desc: str = "q/g jets") -> dict:
    """``n_per_class`` quark and as many gluon jets from the toy shower, clustered by FastJet anti-kt 0.4.

    Each parton (pT flat in ``pt`` GeV, |eta| < ``eta_max``, flat phi) is showered and hadronised
    (:mod:`.shower`); the hardest anti-kt jet within dR < 0.3 of the parton is kept (a parton whose
    radiation leaves none is re-drawn). Rows alternate quark, gluon.
    :return: dict with ``images`` (n, 3, P, P), ``is_quark`` (bool), ``multiplicity``, ``width``, ``pt``.
    """
    from tqdm import tqdm

    from .shower import jet_particles

    if n_per_class < 1:
        raise InputError(f"q/g sample: n_per_class must be >= 1, got {n_per_class}")
    rng = np.random.default_rng(seed)
    images, quark, mult, width, jet_pt = [], [], [], [], []
    for k in tqdm(range(2 * n_per_class), desc=desc, unit="jet", disable=not progress):
        is_quark = k % 2 == 0
        while True:
            p_pt, p_eta, p_phi = rng.uniform(*pt), rng.uniform(-eta_max, eta_max), rng.uniform(-np.pi, np.pi)
            h = jet_particles(rng, p_pt, p_eta, p_phi, gluon=not is_quark)
            if len(h["e"]) == 0:
                continue
            jets, idx = antikt(np.column_stack([h["px"], h["py"], h["pz"], h["e"]]), pt_min=1.0, where="toy jets")
            if len(jets) and delta_r(jets["eta"][0], jets["phi"][0], p_eta, p_phi) < 0.3:
                break
        sel = idx == 0
        c_pt = np.hypot(h["px"][sel], h["py"][sel])
        j_eta, j_phi, j_pt = float(jets["eta"][0]), float(jets["phi"][0]), float(jets["pt"][0])
        images.append(jet_image(h["eta"][sel], h["phi"][sel], c_pt, h["charge"][sel], j_eta, j_phi, j_pt))
        dr = delta_r(h["eta"][sel], h["phi"][sel], j_eta, j_phi)
        quark.append(is_quark), mult.append(int(sel.sum())), width.append(float((c_pt * dr).sum() / c_pt.sum()))
        jet_pt.append(j_pt)
    return {"images": np.stack(images), "is_quark": np.asarray(quark), "multiplicity": np.asarray(mult, np.int64),
            "width": np.asarray(width), "pt": np.asarray(jet_pt)}


class MultiplicityWidth:
    """Baseline without ML: log-likelihood ratio log(p_quark / p_gluon) of the 2-D (multiplicity, width)
    histogram templates filled on training jets, one pseudo-count per bin."""

    def __init__(self) -> None:
        self.llr: np.ndarray | None = None

    def _bins(self, mult: np.ndarray, width: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i = np.clip(np.digitize(mult, MULT_EDGES) - 1, 0, len(MULT_EDGES) - 2)
        j = np.clip(np.digitize(width, WIDTH_EDGES) - 1, 0, len(WIDTH_EDGES) - 2)
        return i, j

    def fit(self, mult: np.ndarray, width: np.ndarray, is_quark: np.ndarray) -> "MultiplicityWidth":
        is_quark = np.asarray(is_quark, bool)
        if len(np.unique(is_quark)) < 2:
            raise InputError("q/g baseline: need both quark and gluon jets to build templates")
        i, j = self._bins(np.asarray(mult), np.asarray(width))
        shape = (len(MULT_EDGES) - 1, len(WIDTH_EDGES) - 1)
        hist = [np.bincount(i[s] * shape[1] + j[s], minlength=shape[0] * shape[1]).reshape(shape) + 1.0
                for s in (is_quark, ~is_quark)]
        self.llr = np.log(hist[0] / hist[0].sum()) - np.log(hist[1] / hist[1].sum())
        return self

    def score(self, mult: np.ndarray, width: np.ndarray) -> np.ndarray:
        """(n,) log-likelihood ratio, larger = more quark-like."""
        if self.llr is None:
            raise InputError("q/g baseline: fit() the templates before scoring")
        i, j = self._bins(np.asarray(mult), np.asarray(width))
        return self.llr[i, j]
