"""Particle sources for the fast simulation: gun, pile-up minimum bias, jets, B-hadron decays, file.

Every source returns a :class:`~trackcore.event.Table` named ``"particles"`` with the TrackML
particle columns (``schema.PARTICLES``): vertex in mm, momentum in GeV, ``q`` = +-1 only (neutral
particles are never produced), ``nhits`` = 0 (the simulation fills it), ``particle_id`` = 1..N.
Some sources add extra columns (``collision_id``, ``jet_id``, ``b_id``). All take a
``numpy.random.Generator`` or an integer seed: the same seed gives identical tables.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputError
from ..event import Table
from ..event.schema import PARTICLES
from . import pdg as _pdg

RngLike = np.random.Generator | int

# --- minimum-bias calibration -------------------------------------------------------------------
# Measured on the full particle table of TrackML event 1000 (12,263 charged particles, <mu> = 200;
# /work/shared/data/trackml/event000001000-particles.csv). "Prompt" = produced within 1 mm of the
# beam line (70%), "displaced" = r > 1 mm (30%, made in the detector material).
#: The table keeps particles with pT > 0.1 GeV (min 0.10006) and, for prompt ones, |eta| < 4.
MB_PT_MIN, MB_ETA_MAX = 0.1, 4.0
#: Luminous region (mm). The collision vertices of event 1000 have sigma_z = 5.5 mm (quantile
#: width; rms 6.0 mm) and sigma_x,y = 15 um: TrackML used 5.5 mm, not the 55 mm of the real LHC.
MB_VERTEX_SIGMA = (0.015, 0.015, 5.5)
#: Prompt charged particles per collision: negative binomial, mean 8568/200 and shape k from the
#: per-collision counts (collision = top 12 bits of particle_id), broad as minimum bias is.
MB_PROMPT_MEAN, MB_PROMPT_K = 42.84, 0.81
#: Displaced particles per collision ~ Poisson(ratio x prompt count); counts correlate at r = 0.95.
MB_DISPLACED_RATIO = 0.431
#: Tsallis/Levy pT shape dN/dpT ~ pT (1 + pT/(n T))^-n fitted (max. likelihood, pT > 0.1 GeV).
MB_PROMPT_TSALLIS = (0.160, 6.61)  # (T GeV, n): median 0.45 GeV, 15% above 1 GeV
MB_DISPLACED_TSALLIS = (0.0467, 5.17)  # softer: median 0.23 GeV, 3.5% above 1 GeV
#: Fraction of positive charges: prompt 50.1%, displaced 67.6% (protons from nuclear interactions).
MB_PROMPT_Q_PLUS, MB_DISPLACED_Q_PLUS = 0.501, 0.676
#: Prompt eta is flat in |eta| < 4. Displaced |eta| in bins of 0.25 from 0 to 4 (counts, measured):
MB_DISPLACED_ABS_ETA = (831, 716, 565, 426, 292, 191, 120, 100, 82, 58, 64, 60, 56, 35, 53, 46)
#: Displaced production vertices: counts in (r, |z|) bins (mm), measured; uniform inside a bin.
MB_DISPLACED_R_EDGES = (1, 10, 30, 60, 100, 150, 200, 300, 400, 550, 700, 850, 1100)
MB_DISPLACED_Z_EDGES = (0, 100, 300, 600, 1100, 1600, 2000, 3000)
MB_DISPLACED_RZ = (  # rows: r bins, columns: |z| bins
    (209, 30, 5, 3, 0, 0, 0), (185, 98, 120, 17, 1, 0, 0), (130, 191, 191, 130, 40, 4, 1),
    (27, 101, 116, 68, 26, 0, 1), (37, 67, 75, 57, 20, 4, 3), (32, 36, 59, 37, 31, 5, 27),
    (48, 73, 138, 133, 92, 44, 101), (29, 32, 57, 54, 46, 14, 37), (17, 27, 46, 42, 58, 10, 37),
    (8, 9, 20, 36, 26, 0, 20), (7, 24, 24, 33, 39, 6, 23), (0, 0, 0, 2, 42, 18, 39))
#: Species mix given the charge sign (the accuracy-phase table has no particle_type, so these are
#: assumptions, not fits): prompt = typical minimum bias; displaced = conversions (e), nuclear
#: interactions (pi, p) and delta rays (e-).
MB_PROMPT_SPECIES = {_pdg.PION: 0.80, _pdg.KAON: 0.12, _pdg.PROTON: 0.06, _pdg.ELECTRON: 0.01, _pdg.MUON: 0.01}
MB_DISPLACED_SPECIES_POS = {_pdg.ELECTRON: 0.22, _pdg.PION: 0.38, _pdg.KAON: 0.05, _pdg.PROTON: 0.35}
MB_DISPLACED_SPECIES_NEG = {_pdg.ELECTRON: 0.46, _pdg.PION: 0.50, _pdg.KAON: 0.04}

# --- jets and b hadrons -------------------------------------------------------------------------
#: Light constituents and B decay products (charged species mix).
JET_SPECIES = {_pdg.PION: 0.80, _pdg.KAON: 0.12, _pdg.PROTON: 0.06, _pdg.ELECTRON: 0.01, _pdg.MUON: 0.01}
B_DECAY_SPECIES = {_pdg.PION: 0.75, _pdg.KAON: 0.20, _pdg.ELECTRON: 0.025, _pdg.MUON: 0.025}
#: b-hadron production fractions (f_u = f_d = 0.4, f_s = 0.1, baryons 0.1).
B_SPECIES = {_pdg.B0: 0.4, _pdg.B_PLUS: 0.4, _pdg.B_S: 0.1, _pdg.LAMBDA_B: 0.1}
#: Lower end of the fragmentation variable z (fraction of the jet pT before normalisation).
JET_Z_MIN = 0.01
#: Flavour labels in the "jets" table (hadron-flavour convention: 5 = b, 0 = light).
FLAVOUR_LABEL = {"light": 0, "b": 5}


def _generator(rng: RngLike) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise InputError(f"rng must be a numpy.random.Generator or an integer seed, got {type(rng).__name__}")


def _interval(name: str, value, *, lo: float = -math.inf, hi: float = math.inf,
              positive: bool = False) -> tuple[float, float]:
    """A validated (low, high) pair: finite, ordered, inside [lo, hi], > 0 when ``positive``."""
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a (low, high) pair of numbers, got {value!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise InputError(f"{name} must be finite, got {value!r}")
    if a > b:
        raise InputError(f"{name} range is inverted: low {a} > high {b}")
    if positive and a <= 0:
        raise InputError(f"{name} must be > 0, got low end {a}")
    for v in (a, b):
        if v < lo or v > hi:
            raise InputError(f"{name} value {v} is outside the allowed range [{lo}, {hi}]")
    return a, b


def _sigmas(vertex_sigma) -> np.ndarray:
    s = np.asarray(vertex_sigma, dtype=float)
    if s.shape != (3,) or not np.all(np.isfinite(s)) or np.any(s < 0):
        raise InputError(f"vertex_sigma must be three finite values >= 0 (mm), got {vertex_sigma!r}")
    return s


def _choose(rng: np.random.Generator, mix: dict[int, float], size: int) -> np.ndarray:
    codes = np.array(list(mix), dtype=np.int64)
    weights = np.array(list(mix.values()), dtype=float)
    return codes[rng.choice(len(codes), size=size, p=weights / weights.sum())]


def _momentum(pt, eta, phi) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)


def _wrap(phi: np.ndarray) -> np.ndarray:
    return (phi + np.pi) % (2 * np.pi) - np.pi


def _tsallis(rng: np.random.Generator, size: int, t: float, n: float, pt_min: float) -> np.ndarray:
    """pT (GeV) from dN/dpT ~ pT (1 + pT/(n T))^-n above pt_min, by inverse CDF on a log grid."""
    grid = np.geomspace(pt_min, 1000.0, 4096)
    density = grid * (1 + grid / (n * t)) ** (-n)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(grid))])
    return np.exp(np.interp(rng.random(size), cdf / cdf[-1], np.log(grid)))


def _table(ptype, vx, vy, vz, px, py, pz, q, extra: dict | None = None) -> Table:
    n = len(q)
    values = {"particle_id": np.arange(1, n + 1), "particle_type": ptype, "vx": vx, "vy": vy, "vz": vz,
              "px": px, "py": py, "pz": pz, "q": q, "nhits": np.zeros(n)}
    cols = {k: np.asarray(values[k]).astype(dtype) for k, dtype in PARTICLES.items()}
    cols.update(extra or {})
    return Table(cols, name="particles")


def particle_gun(n: int, rng: RngLike, *, pt: tuple[float, float] = (1.0, 10.0),
                 eta: tuple[float, float] = (-2.5, 2.5), phi: tuple[float, float] = (-math.pi, math.pi),
                 charge: int | None = None, pdg: int = _pdg.MUON,
                 vertex_sigma: Sequence[float] = (0.015, 0.015, 50.0),
                 pt_distribution: str = "uniform") -> Table:
    """``n`` single particles of species ``|pdg|`` from a Gaussian vertex around the origin.

    pT in GeV is flat (``"uniform"``), flat in log pT (``"log"``) or flat in 1/pT (``"inverse"``,
    i.e. flat in curvature) over ``pt``; eta and phi (rad) are flat. ``charge`` None draws +-1 at
    random; the sign of the PDG code follows the charge (muon with q=+1 -> -13). ``vertex_sigma``
    is the (x, y, z) spread in mm. |eta| beyond 4 (outside any tracker) is an InputError.
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise InputError(f"particle_gun: n must be an integer >= 0, got {n!r}")
    gen = _generator(rng)
    pt_lo, pt_hi = _interval("pt", pt, positive=True)
    eta_lo, eta_hi = _interval("eta", eta, lo=-4.0, hi=4.0)
    phi_lo, phi_hi = _interval("phi", phi)
    if phi_hi - phi_lo > 2 * math.pi + 1e-9:
        raise InputError(f"phi range {phi!r} is wider than 2 pi")
    if charge is not None and charge not in (-1, 1):
        raise InputError(f"particle_gun: charge must be +1, -1 or None, got {charge!r}")
    _pdg.with_charge(pdg, 1)  # rejects unknown or neutral species
    sig = _sigmas(vertex_sigma)
    u = gen.random(n)
    if pt_distribution == "uniform":
        pts = pt_lo + u * (pt_hi - pt_lo)
    elif pt_distribution == "log":
        pts = np.exp(math.log(pt_lo) + u * (math.log(pt_hi) - math.log(pt_lo)))
    elif pt_distribution == "inverse":
        pts = 1.0 / (1.0 / pt_lo + u * (1.0 / pt_hi - 1.0 / pt_lo))
    else:
        raise InputError(f"pt_distribution must be 'uniform', 'log' or 'inverse', got {pt_distribution!r}")
    etas = gen.uniform(eta_lo, eta_hi, n)
    phis = _wrap(gen.uniform(phi_lo, phi_hi, n))
    q = gen.choice([-1, 1], size=n) if charge is None else np.full(n, charge)
    vx, vy, vz = (gen.normal(0.0, s, n) for s in sig)
    return _table(_pdg.with_charge(pdg, q), vx, vy, vz, *_momentum(pts, etas, phis), q)


def _charged_species(gen, q_plus: float, size: int, pos: dict, neg: dict | None = None):
    """Charges (+-1 with P(+) = q_plus) and signed PDG codes drawn from the mix given the sign."""
    q = np.where(gen.random(size) < q_plus, 1, -1)
    species = _choose(gen, pos, size)
    if neg is not None:
        species = np.where(q > 0, species, _choose(gen, neg, size))
    return q, _pdg.with_charge(species, q)


def minimum_bias(rng: RngLike, *, pileup: float = 200.0,
                 vertex_sigma: Sequence[float] = MB_VERTEX_SIGMA, pt_min: float = MB_PT_MIN,
                 eta_max: float = MB_ETA_MAX, secondaries: bool = True) -> Table:
    """Charged particles of Poisson(``pileup``) minimum-bias collisions, calibrated on TrackML.

    Each collision has a Gaussian vertex (``vertex_sigma`` mm, default 15 um x 15 um x 5.5 mm as in
    TrackML), a negative-binomial number of prompt particles (flat eta in |eta| < 4, Tsallis pT
    above 0.1 GeV) and, with ``secondaries``, displaced particles made in the detector material
    (production radius and |z| from the measured (r, z) table, softer and more central). Raising
    ``pt_min`` (GeV) or lowering ``eta_max`` drops particles from that calibrated sample. Extra
    columns: ``collision_id`` (0-based) names the pile-up collision; ``secondary`` is 1 for the
    particles made in the detector material (TrackML gives their hits weight 0). See the MB_* constants.
    """
    gen = _generator(rng)
    if not (math.isfinite(pileup) and pileup >= 0):
        raise InputError(f"minimum_bias: pileup must be finite and >= 0, got {pileup!r}")
    if not (math.isfinite(pt_min) and pt_min >= MB_PT_MIN):
        raise InputError(f"minimum_bias: pt_min must be >= {MB_PT_MIN} GeV (calibrated range), got {pt_min!r}")
    if not (math.isfinite(eta_max) and 0 < eta_max <= MB_ETA_MAX):
        raise InputError(f"minimum_bias: eta_max must be in (0, {MB_ETA_MAX}], got {eta_max!r}")
    sig = _sigmas(vertex_sigma)
    n_coll = gen.poisson(pileup)
    centres = np.column_stack([gen.normal(0.0, s, n_coll) for s in sig]).reshape(n_coll, 3)
    k = MB_PROMPT_K
    n_prompt = gen.negative_binomial(k, k / (k + MB_PROMPT_MEAN), n_coll)
    n_disp = gen.poisson(MB_DISPLACED_RATIO * n_prompt) if secondaries else np.zeros(n_coll, int)

    coll = np.repeat(np.arange(n_coll), n_prompt)
    m = len(coll)
    q, ptype = _charged_species(gen, MB_PROMPT_Q_PLUS, m, MB_PROMPT_SPECIES)
    p_pt = _tsallis(gen, m, *MB_PROMPT_TSALLIS, MB_PT_MIN)
    p_eta = gen.uniform(-MB_ETA_MAX, MB_ETA_MAX, m)
    prompt = dict(coll=coll, q=q, ptype=ptype, pt=p_pt, eta=p_eta, phi=gen.uniform(-np.pi, np.pi, m),
                  vx=centres[coll, 0], vy=centres[coll, 1], vz=centres[coll, 2], secondary=np.zeros(m, np.int8))

    coll = np.repeat(np.arange(n_coll), n_disp)
    m = len(coll)
    q, ptype = _charged_species(gen, MB_DISPLACED_Q_PLUS, m, MB_DISPLACED_SPECIES_POS, MB_DISPLACED_SPECIES_NEG)
    weights = np.asarray(MB_DISPLACED_ABS_ETA, float)
    eta_bin = gen.choice(len(weights), size=m, p=weights / weights.sum())
    d_eta = (eta_bin + gen.random(m)) * (MB_ETA_MAX / len(weights)) * gen.choice([-1, 1], size=m)
    rz = np.asarray(MB_DISPLACED_RZ, float).ravel()
    cell = gen.choice(len(rz), size=m, p=rz / rz.sum())
    r_edges, z_edges = np.asarray(MB_DISPLACED_R_EDGES, float), np.asarray(MB_DISPLACED_Z_EDGES, float)
    ri, zi = np.divmod(cell, len(z_edges) - 1)
    r = gen.uniform(r_edges[ri], r_edges[ri + 1])
    vphi = gen.uniform(-np.pi, np.pi, m)
    displaced = dict(coll=coll, q=q, ptype=ptype, pt=_tsallis(gen, m, *MB_DISPLACED_TSALLIS, MB_PT_MIN),
                     eta=d_eta, phi=gen.uniform(-np.pi, np.pi, m), vx=r * np.cos(vphi), vy=r * np.sin(vphi),
                     vz=gen.uniform(z_edges[zi], z_edges[zi + 1]) * gen.choice([-1, 1], size=m),
                     secondary=np.ones(m, np.int8))

    # Order by collision, prompt before displaced, so ids group by collision.
    cols = {key: np.concatenate([prompt[key], displaced[key]]) for key in prompt}
    keep = (cols["pt"] >= pt_min) & (np.abs(cols["eta"]) <= eta_max)
    order = np.argsort(cols["coll"], kind="stable")
    order = order[keep[order]]
    cols = {key: v[order] for key, v in cols.items()}
    px, py, pz = _momentum(cols["pt"], cols["eta"], cols["phi"])
    return _table(cols["ptype"], cols["vx"], cols["vy"], cols["vz"], px, py, pz, cols["q"],
                  {"collision_id": cols["coll"].astype(np.int32), "secondary": cols["secondary"]})


def _b_decays(gen: np.random.Generator, codes: np.ndarray, mom: np.ndarray, prod: np.ndarray,
              mean_charged: float) -> tuple[dict, dict]:
    """Decay b hadrons (codes, momenta (n, 3) GeV, production vertices (n, 3) mm) in flight.

    Rest frame: the charged products get isotropic directions and exponential momentum weights;
    one invisible neutral system (pi0s, photons, neutrinos) of random mass takes minus their
    summed momentum, and a common scale is solved so that the energies add up to the B mass.
    Four-momentum is conserved exactly over charged + neutral, so the charged sum points along
    the B within a cone of roughly (neutral momentum)/(B momentum). Then boosted with the B.
    """
    nb = len(codes)
    mass, qb = _pdg.mass_of(codes), _pdg.charge_of(codes)
    # Charge conservation: even multiplicity for neutral, odd for charged b hadrons; <= 9 keeps
    # nine kaons (4.4 GeV) below the B mass.
    n = gen.poisson(mean_charged, nb)
    n = np.where(n % 2 != np.abs(qb) % 2, n + gen.choice([-1, 1], nb), n)
    n = np.clip(n, np.where(qb == 0, 2, 3), np.where(qb == 0, 8, 9))
    parent = np.repeat(np.arange(nb), n)
    rank = np.arange(len(parent)) - np.repeat(np.cumsum(n) - n, n)
    q = np.where(rank < ((n + qb) // 2)[parent], 1, -1)
    species = _choose(gen, B_DECAY_SPECIES, len(parent))
    # baryon number: a Lambda_b gives a proton (first, positive product), an anti-Lambda_b an
    # antiproton (last, negative product)
    baryon = np.sign(codes) * (np.abs(codes) == _pdg.LAMBDA_B)
    species[((baryon[parent] > 0) & (rank == 0)) | ((baryon[parent] < 0) & (rank == n[parent] - 1))] = _pdg.PROTON
    ptype = _pdg.with_charge(species, q)
    m = _pdg.mass_of(ptype)

    def by_b(values):  # per-hadron sums; float even when there are no hadrons
        return np.bincount(parent, values, nb).astype(float)

    cos_t, ang = gen.uniform(-1, 1, len(parent)), gen.uniform(-np.pi, np.pi, len(parent))
    sin_t = np.sqrt(1 - cos_t**2)
    unit = np.column_stack([sin_t * np.cos(ang), sin_t * np.sin(ang), cos_t])
    w = gen.exponential(1.0, len(parent))[:, None] * unit  # isotropic, exponential momentum weights
    wsum = np.column_stack([by_b(w[:, k]) for k in range(3)])
    m_x = gen.uniform(0.0, 0.6, nb) * (mass - by_b(m))
    lo, hi = np.zeros(nb), mass / by_b(np.linalg.norm(w, axis=1))
    for _ in range(60):  # bisection on the momentum scale: total energy is monotonic in it
        s = 0.5 * (lo + hi)
        e = by_b(np.sqrt(m**2 + (s[parent] * np.linalg.norm(w, axis=1)) ** 2))
        e += np.sqrt(m_x**2 + (s * np.linalg.norm(wsum, axis=1)) ** 2)
        lo, hi = np.where(e < mass, s, lo), np.where(e < mass, hi, s)
    p_star = 0.5 * (lo + hi)[parent, None] * w
    e_star = np.sqrt(m**2 + np.sum(p_star**2, axis=1))
    e_b = np.sqrt(np.sum(mom**2, axis=1) + mass**2)
    gamma, beta = e_b / mass, mom / e_b[:, None]
    bp = np.sum(beta[parent] * p_star, axis=1)
    p_lab = p_star + ((gamma**2 / (gamma + 1))[parent] * bp + gamma[parent] * e_star)[:, None] * beta[parent]
    ctau = np.array([_pdg.CTAU_MM[abs(int(c))] for c in codes])
    proper = gen.exponential(ctau) if nb else np.zeros(0)
    flight = np.linalg.norm(mom, axis=1) / mass * proper
    decay = prod + flight[:, None] * mom / np.linalg.norm(mom, axis=1)[:, None]
    products = dict(parent=parent, ptype=ptype, q=q, p=p_lab, v=decay[parent])
    return products, dict(decay=decay, proper=proper, flight=flight)


def _direction_momenta(pt, eta, phi) -> np.ndarray:
    return np.column_stack(_momentum(np.asarray(pt), np.asarray(eta), np.asarray(phi)))


def b_hadron_decays(rng: RngLike, n: int = 1, *, pt: tuple[float, float] = (20.0, 200.0),
                    eta: tuple[float, float] = (-2.5, 2.5), phi: tuple[float, float] = (-math.pi, math.pi),
                    vertex_sigma: Sequence[float] = MB_VERTEX_SIGMA,
                    mean_charged: float = 5.0) -> tuple[Table, Table]:
    """``n`` b hadrons (B0/B+/Bs/Lambda_b by production fraction, random b / anti-b) decaying in flight.

    Kinematics flat in pT (GeV), eta, phi; production vertex Gaussian (``vertex_sigma`` mm). The
    proper decay length c*t is exponential with the species' c*tau (~0.455 mm); the flight length is
    (p/m) c*t = beta*gamma*c*t along the B momentum. Each decays at that displaced vertex into
    about ``mean_charged`` charged particles (see :func:`_b_decays` for the kinematics).

    Returns ``(particles, b_hadrons)``: particles carry the extra column ``b_id`` (row of their B);
    ``b_hadrons`` has b_id, particle_type, px, py, pz (GeV), vx, vy, vz (production, mm),
    decay_vx, decay_vy, decay_vz (mm), proper_ct and flight_length (mm).
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise InputError(f"b_hadron_decays: n must be an integer >= 0, got {n!r}")
    if not (math.isfinite(mean_charged) and 2 <= mean_charged <= 9):
        raise InputError(f"b_hadron_decays: mean_charged must be in [2, 9], got {mean_charged!r}")
    gen = _generator(rng)
    pt_lo, pt_hi = _interval("pt", pt, positive=True)
    eta_lo, eta_hi = _interval("eta", eta, lo=-4.0, hi=4.0)
    phi_lo, phi_hi = _interval("phi", phi)
    sig = _sigmas(vertex_sigma)
    codes = _choose(gen, B_SPECIES, n) * gen.choice([-1, 1], size=n)
    mom = _direction_momenta(gen.uniform(pt_lo, pt_hi, n), gen.uniform(eta_lo, eta_hi, n),
                             _wrap(gen.uniform(phi_lo, phi_hi, n)))
    prod = np.column_stack([gen.normal(0.0, s, n) for s in sig]).reshape(n, 3)
    products, info = _b_decays(gen, codes, mom, prod, mean_charged)
    p, v = products["p"], products["v"]
    particles = _table(products["ptype"], v[:, 0], v[:, 1], v[:, 2], p[:, 0], p[:, 1], p[:, 2], products["q"],
                       {"b_id": products["parent"].astype(np.int32)})
    dec = info["decay"]
    hadrons = Table({"b_id": np.arange(n, dtype=np.int32), "particle_type": codes.astype(np.int32),
                     "px": mom[:, 0], "py": mom[:, 1], "pz": mom[:, 2],
                     "vx": prod[:, 0], "vy": prod[:, 1], "vz": prod[:, 2],
                     "decay_vx": dec[:, 0], "decay_vy": dec[:, 1], "decay_vz": dec[:, 2],
                     "proper_ct": info["proper"], "flight_length": info["flight"]}, name="b_hadrons")
    return particles, hadrons


def jets(rng: RngLike, *, n_jets: int = 2, jet_pt: tuple[float, float] = (100.0, 500.0),
         eta: tuple[float, float] = (-2.0, 2.0), flavour: str | Sequence[str] = "light",
         n_constituents: tuple[int, int] = (20, 40), frag_a: float = 2.0, cone: float = 0.4,
         kt_mean: float = 0.5, charged_fraction: float = 0.65,
         vertex_sigma: Sequence[float] = MB_VERTEX_SIGMA) -> tuple[Table, Table]:
    """Collimated charged sprays around ``n_jets`` axes from one hard-scatter vertex.

    Jet pT (GeV), eta and phi are flat. Each jet has a uniform integer number of charged particles
    in ``n_constituents``; their momentum fractions follow z ~ (1-z)^frag_a / z on [0.01, 1],
    scaled so the charged pT sums to ``charged_fraction`` x jet pT. A constituent's angle to the axis
    is dR = cone (1 - exp(-x/cone)), x = kT/pT with kT ~ exponential(``kt_mean`` GeV): hard
    particles hug the axis, soft ones reach the cone. ``flavour`` "b" (one string for all jets or one
    per jet) puts one b hadron carrying z_B ~ Beta(6, 2.5) (mean 0.7) of the jet pT near the axis
    and decays it in flight (:func:`b_hadron_decays` physics); its products replace light ones.

    Returns ``(particles, jets)``. Particles carry ``jet_id`` and ``b_id`` (= jet_id for products of
    that jet's b hadron, -1 otherwise). ``jets``: jet_id, pt, eta, phi, flavour (5 = b, 0 = light),
    n_constituents, and the b-hadron decay vertex b_decay_vx/vy/vz in mm (NaN for light jets).
    """
    if not isinstance(n_jets, (int, np.integer)) or isinstance(n_jets, bool) or n_jets < 0:
        raise InputError(f"jets: n_jets must be an integer >= 0, got {n_jets!r}")
    gen = _generator(rng)
    pt_lo, pt_hi = _interval("jet_pt", jet_pt, positive=True)
    eta_lo, eta_hi = _interval("eta", eta, lo=-4.0, hi=4.0)
    n_lo, n_hi = (int(v) for v in _interval("n_constituents", n_constituents, lo=1))
    for name, value, top in (("frag_a", frag_a, 20), ("cone", cone, 1.5), ("kt_mean", kt_mean, 10),
                             ("charged_fraction", charged_fraction, 1)):
        if not (math.isfinite(value) and 0 < value <= top):
            raise InputError(f"jets: {name} must be in (0, {top}], got {value!r}")
    flavours = [flavour] * n_jets if isinstance(flavour, str) else list(flavour)
    if len(flavours) != n_jets or any(f not in FLAVOUR_LABEL for f in flavours):
        raise InputError(f"jets: flavour must be 'light' or 'b', or one of those per jet ({n_jets}), got {flavour!r}")
    is_b = np.array([f == "b" for f in flavours], dtype=bool)
    sig = _sigmas(vertex_sigma)
    vertex = np.array([gen.normal(0.0, s) for s in sig])
    j_pt, j_eta = gen.uniform(pt_lo, pt_hi, n_jets), gen.uniform(eta_lo, eta_hi, n_jets)
    j_phi = gen.uniform(-np.pi, np.pi, n_jets)
    n_total = gen.integers(n_lo, n_hi + 1, n_jets)

    def smear(pt_c, parent):  # angles around the jet axis, harder = narrower
        x = gen.exponential(kt_mean, len(pt_c)) / pt_c
        dr, alpha = cone * (1 - np.exp(-x / cone)), gen.uniform(-np.pi, np.pi, len(pt_c))
        return j_eta[parent] + dr * np.cos(alpha), _wrap(j_phi[parent] + dr * np.sin(alpha))

    b_jets = np.flatnonzero(is_b)
    z_b = np.zeros(n_jets)
    z_b[b_jets] = gen.beta(6.0, 2.5, len(b_jets))
    b_pt = z_b[b_jets] * j_pt[b_jets]
    b_codes = _choose(gen, B_SPECIES, len(b_jets)) * gen.choice([-1, 1], size=len(b_jets))
    b_mom = _direction_momenta(b_pt, *smear(b_pt, b_jets))
    products, info = _b_decays(gen, b_codes, b_mom, np.tile(vertex, (len(b_jets), 1)), 5.0)
    n_b = np.zeros(n_jets, dtype=int)
    n_b[b_jets] = np.bincount(products["parent"], minlength=len(b_jets))

    n_light = np.maximum(n_total - n_b, 5)
    parent = np.repeat(np.arange(n_jets), n_light)
    z_grid = np.geomspace(JET_Z_MIN, 1.0, 2048)
    density = (1 - z_grid) ** frag_a / z_grid
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(z_grid))])
    z = np.interp(gen.random(len(parent)), cdf / cdf[-1], z_grid)
    budget = charged_fraction * j_pt * (1 - z_b)
    pt_c = z / np.bincount(parent, z, n_jets)[parent] * budget[parent]
    c_eta, c_phi = smear(pt_c, parent)
    q, ptype = _charged_species(gen, 0.5, len(parent), JET_SPECIES)
    p = np.concatenate([_direction_momenta(pt_c, c_eta, c_phi), products["p"]])
    v = np.concatenate([np.tile(vertex, (len(parent), 1)), products["v"]])
    jet_of = np.concatenate([parent, b_jets[products["parent"]]]).astype(np.int32)
    b_id = np.concatenate([np.full(len(parent), -1), b_jets[products["parent"]]]).astype(np.int32)
    order = np.argsort(jet_of, kind="stable")
    particles = _table(np.concatenate([ptype, products["ptype"]])[order], v[order, 0], v[order, 1], v[order, 2],
                       p[order, 0], p[order, 1], p[order, 2], np.concatenate([q, products["q"]])[order],
                       {"jet_id": jet_of[order], "b_id": b_id[order]})
    decay = np.full((n_jets, 3), np.nan)
    decay[b_jets] = info["decay"]
    table = Table({"jet_id": np.arange(n_jets, dtype=np.int32), "pt": j_pt, "eta": j_eta, "phi": j_phi,
                   "flavour": np.where(is_b, FLAVOUR_LABEL["b"], FLAVOUR_LABEL["light"]).astype(np.int32),
                   "n_constituents": (n_light + n_b).astype(np.int32),
                   "b_decay_vx": decay[:, 0], "b_decay_vy": decay[:, 1], "b_decay_vz": decay[:, 2]}, name="jets")
    return particles, table


def read_particle_table(path: str | Path) -> Table:
    """Read a TrackML particles CSV (``.csv`` or ``.csv.gz``) as a source of charged particles.

    Accepts both formats: with ``particle_type`` (Codalab / open data) or without it (Kaggle
    accuracy phase); when absent, particle_type is inferred from the charge as +-211 (charged pions,
    the dominant species) - an assumption, not information from the file. Rows with q == 0 are
    dropped (neutral particles are not tracked). InputError names the file, line and column for a
    missing column, a non-numeric or non-finite value, a charge outside {-1, 0, 1} or a duplicate id.
    """
    from ..event.io.trackml_csv import check_unique, parse_csv

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read particle table {path}: {exc.strerror}") from None
    parsed = parse_csv(data, str(path), PARTICLES, optional=("particle_type",))
    t = parsed.table
    for name, dtype in PARTICLES.items():
        if name in t and np.dtype(dtype).kind == "f" and not np.all(np.isfinite(t[name])):
            row = int(np.flatnonzero(~np.isfinite(t[name]))[0])
            raise InputError(f"{path}, {parsed.locate(row)}, column {name!r}: non-finite value {t[name][row]}")
    bad_q = ~np.isin(t["q"], (-1, 0, 1))
    if bad_q.any():
        row = int(np.flatnonzero(bad_q)[0])
        raise InputError(f"{path}, {parsed.locate(row)}, column 'q': charge {int(t['q'][row])} is not -1, 0 or 1")
    check_unique(t["particle_id"], str(path), parsed.locate, column="particle_id")
    cols = {k: np.asarray(t[k], dtype=dtype) for k, dtype in PARTICLES.items() if k in t}
    if "particle_type" not in t:
        cols["particle_type"] = (_pdg.PION * t["q"]).astype(np.int32)
    cols = {k: cols[k] for k in PARTICLES}
    cols.update({k: t[k] for k in t.columns if k not in PARTICLES})
    return Table(cols, name="particles").take(t["q"] != 0)


def _fill_value(dtype: np.dtype):
    return {"i": -1, "u": 0, "f": np.nan, "b": False}.get(dtype.kind, "")


def combine(*tables: Table) -> Table:
    """Concatenate particle tables with fresh unique particle_ids 1..N (in argument order).

    Every table needs the TrackML particle columns. Extra columns (``jet_id``, ``collision_id``,
    ...) are kept; rows of a table without one get -1 (integers), NaN (floats), False or "".
    Ids in extra columns are not renumbered, so ``jet_id`` 0 of two tables stays 0 in both.
    """
    extras: dict[str, np.dtype] = {}
    for i, t in enumerate(tables):
        if not isinstance(t, Table):
            raise InputError(f"combine: argument {i} is a {type(t).__name__}, not a Table")
        missing = [c for c in PARTICLES if c not in t]
        if missing:
            raise InputError(f"combine: table {i} ({t.name!r}) lacks particle column(s) {missing}")
        for c in t.columns:
            if c not in PARTICLES:
                extras[c] = np.result_type(extras[c], t[c].dtype) if c in extras else t[c].dtype
    cols: dict[str, np.ndarray] = {}
    for c, dtype in {**PARTICLES, **extras}.items():
        dtype = np.dtype(dtype)
        parts = [np.asarray(t[c], dtype=dtype) if c in t else np.full(len(t), _fill_value(dtype), dtype=dtype)
                 for t in tables]
        cols[c] = np.concatenate(parts) if parts else np.empty(0, dtype=dtype)
    cols["particle_id"] = np.arange(1, len(cols["q"]) + 1, dtype=np.int64)
    return Table(cols, name="particles")
