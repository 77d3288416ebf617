"""Jet finding with FastJet's anti-kt (E-scheme, rapidity-azimuth distance) on particles or tracks.

Units: momenta and masses in GeV, angles in rad, lengths in mm. The clustering itself is FastJet's
(``pip install fastjet``); this module only builds the four-vectors and the output tables.
"""
from __future__ import annotations

import numpy as np

from trackcore.errors import InputError
from trackcore.event import Table

#: Jet radius of the issue's anti-kt jets.
R_DEFAULT = 0.4
#: Mass (GeV) given to reconstructed tracks: charged pions dominate jets.
PION_MASS = 0.13957
#: Track-jet track selection: fitted tracks above this pT (GeV) enter the clustering.
TRACK_PT_MIN = 0.5


def _fastjet():
    try:
        import fastjet
    except ImportError as exc:  # an optional dependency of the plugin only
        raise InputError("jet tagger: jet finding needs the 'fastjet' package (pip install fastjet)") from exc
    return fastjet


def four_momenta(px, py, pz, mass) -> np.ndarray:
    """(N, 4) float64 (px, py, pz, E) in GeV from momenta and masses (GeV)."""
    p = np.column_stack([np.asarray(px, np.float64), np.asarray(py, np.float64), np.asarray(pz, np.float64)])
    m = np.broadcast_to(np.asarray(mass, np.float64), (len(p),))
    return np.column_stack([p, np.sqrt(np.sum(p**2, axis=1) + m**2)])


def antikt(p4: np.ndarray, *, r: float = R_DEFAULT, pt_min: float = 0.0, where: str = "jets") -> tuple[Table, np.ndarray]:
    """Cluster four-vectors ``p4`` (N, 4: px, py, pz, E in GeV) with FastJet's anti-kt of radius ``r``.

    :return: ``(jets, jet_index)``: ``jets`` has one row per jet with pT >= ``pt_min`` (GeV), hardest
        first: ``jet_id`` (0..J-1), ``pt``, ``eta``, ``phi`` (rad, in [-pi, pi]), ``mass`` (GeV),
        ``px``, ``py``, ``pz``, ``e`` and ``n_constituents``; ``jet_index`` (N,) int64 is the jet_id of
        each input row, -1 when it is in no kept jet.
    :raises InputError: ``p4`` is not (N, 4), not finite, or ``r`` is not in (0, 2].
    """
    p4 = np.asarray(p4, np.float64)
    if p4.ndim != 2 or p4.shape[1] != 4:
        raise InputError(f"{where}: four-momenta must have shape (N, 4) (px, py, pz, E), got {p4.shape}")
    if not np.isfinite(p4).all():
        row = int(np.flatnonzero(~np.isfinite(p4).all(1))[0])
        raise InputError(f"{where}: four-momentum row {row} is not finite: {p4[row].tolist()}")
    if not 0.0 < r <= 2.0:
        raise InputError(f"{where}: jet radius must be in (0, 2], got {r}")
    jet_index = np.full(len(p4), -1, np.int64)
    cols: dict[str, list] = {k: [] for k in ("pt", "eta", "phi", "mass", "px", "py", "pz", "e", "n_constituents")}
    if len(p4):
        fj = _fastjet()
        inputs = []
        for i, (x, y, z, e) in enumerate(p4):
            pj = fj.PseudoJet(float(x), float(y), float(z), float(e))
            pj.set_user_index(i)
            inputs.append(pj)
        seq = fj.ClusterSequence(inputs, fj.JetDefinition(fj.antikt_algorithm, float(r)))
        for k, jet in enumerate(fj.sorted_by_pt(seq.inclusive_jets(float(pt_min)))):
            members = [c.user_index() for c in jet.constituents()]
            jet_index[members] = k
            m2 = jet.m2()
            for key, value in (("pt", jet.pt()), ("eta", jet.eta()), ("phi", jet.phi_std()),
                               ("mass", np.sqrt(max(m2, 0.0))), ("px", jet.px()), ("py", jet.py()),
                               ("pz", jet.pz()), ("e", jet.e()), ("n_constituents", len(members))):
                cols[key].append(value)
    table = {"jet_id": np.arange(len(cols["pt"]), dtype=np.int64)}
    table.update({k: np.asarray(v, np.int64 if k == "n_constituents" else np.float64) for k, v in cols.items()})
    return Table(table, name=where), jet_index


def particle_jets(particles: Table, *, r: float = R_DEFAULT, pt_min: float = 5.0) -> tuple[Table, np.ndarray]:
    """Anti-kt jets of generated particles (TrackML particles table: px, py, pz in GeV, particle_type).

    Masses come from ``particle_type`` when present, else the pion mass. See :func:`antikt`.
    """
    from trackcore.sim import pdg

    for col in ("px", "py", "pz"):
        if col not in particles:
            raise InputError(f"jet tagger: particles table {particles.name!r} has no column {col!r}")
    mass = pdg.mass_of(particles["particle_type"]) if "particle_type" in particles else PION_MASS
    return antikt(four_momenta(particles["px"], particles["py"], particles["pz"], mass), r=r, pt_min=pt_min,
                  where="particle jets")


def track_momenta(tracks: Table) -> np.ndarray:
    """(N, 4) four-momenta (GeV) of reconstructed tracks from perigee phi, theta, qop (e/GeV), pion mass."""
    for col in ("phi", "theta", "qop"):
        if col not in tracks:
            raise InputError(f"jet tagger: tracks table {tracks.name!r} has no column {col!r}")
    qop = np.asarray(tracks["qop"], np.float64)
    bad = ~np.isfinite(qop) | (qop == 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(f"jet tagger: tracks table {tracks.name!r} row {row}: qop must be finite and non-zero, "
                         f"got {qop[row]}")
    p = 1.0 / np.abs(qop)
    theta, phi = np.asarray(tracks["theta"], np.float64), np.asarray(tracks["phi"], np.float64)
    pt = p * np.sin(theta)
    return four_momenta(pt * np.cos(phi), pt * np.sin(phi), p * np.cos(theta), PION_MASS)


def track_jets(tracks: Table, *, r: float = R_DEFAULT, pt_min: float = 10.0,
               track_pt_min: float = TRACK_PT_MIN) -> tuple[Table, np.ndarray]:
    """Anti-kt jets of reconstructed tracks (perigee columns, optional ``fitted``).

    Only fitted tracks (when the column exists) with pT >= ``track_pt_min`` GeV are clustered.
    :return: ``(jets, jet_index)`` as :func:`antikt`, ``jet_index`` over all rows of ``tracks``.
    """
    use = np.ones(len(tracks), bool)
    if "fitted" in tracks:  # a failed fit can leave qop = 0: such tracks have no momentum to cluster
        use &= np.asarray(tracks["fitted"]).astype(bool)
    p4 = track_momenta(tracks.take(use)) if use.any() else np.zeros((0, 4))
    hard = np.hypot(p4[:, 0], p4[:, 1]) >= track_pt_min
    use[use] = hard
    jets, idx = antikt(p4[hard], r=r, pt_min=pt_min, where="track jets")
    jet_index = np.full(len(tracks), -1, np.int64)
    jet_index[use] = idx
    return jets, jet_index


def delta_r(eta1, phi1, eta2, phi2) -> np.ndarray:
    """Distance in (eta, phi), broadcast; phi difference wrapped into [-pi, pi]."""
    dphi = (np.asarray(phi1) - np.asarray(phi2) + np.pi) % (2 * np.pi) - np.pi
    return np.hypot(np.asarray(eta1) - np.asarray(eta2), dphi)


def match(jets: Table, truth: Table, max_dr: float = 0.3) -> np.ndarray:
    """Row of the closest ``truth`` jet within ``max_dr`` of each row of ``jets`` (-1 for none)."""
    if len(jets) == 0 or len(truth) == 0:
        return np.full(len(jets), -1, np.int64)
    d = delta_r(jets["eta"][:, None], jets["phi"][:, None], truth["eta"][None, :], truth["phi"][None, :])
    best = d.argmin(1)
    return np.where(d[np.arange(len(jets)), best] < max_dr, best, -1).astype(np.int64)
