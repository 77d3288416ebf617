"""A toy final-state parton shower and hadronisation, for quark and gluon jets.

Shower: angular-ordered (evolution variable theta^2, the opening angle of a branching), collinear
DGLAP splitting functions with their colour factors

* q -> q g : C_F (1 + z^2) / (1 - z),                     C_F = 4/3
* g -> g g : C_A [z / (1 - z) + (1 - z) / z + z (1 - z)],  C_A = 3
* g -> q q~: T_R n_f [z^2 + (1 - z)^2],                    T_R = 1/2, n_f = 5

emission density (alpha_s(kT) / 2 pi) P(z) dz dtheta^2 / theta^2 with one-loop running alpha_s at
kT = z (1 - z) E theta and a cut-off kT >= Q0 = 1 GeV. Branchings are generated with the Sudakov
veto algorithm: trial emissions from simple overestimates (alpha_s(Q0), 2 C/(1 - z) or 1/z + 1/(1 - z),
a constant for g -> q q~), accepted with probability (true / overestimate). Kinematics are
small-angle: a parton is a direction offset (d_eta, d_phi) from the jet axis and an energy (GeV);
daughters share the opening angle in proportion to their energy fractions (momentum balance).

Hadronisation: independent (Field-Feynman-like) fragmentation of each final parton into massless
hadrons taking z ~ 1 - a + 3 a (1 - z)^2 (a = 0.77) of the remaining energy until below 0.4 GeV, each with
a Gaussian transverse momentum (0.35 GeV per component) about its parton; 2/3 are charged (pi+-), 1/3
neutral (pi0 -> photons, one neutral deposit). Toy physics: enough to give gluon jets the C_A / C_F
more radiation that real ones have, not a tuned generator.
"""
from __future__ import annotations

import math

import numpy as np

from trackcore.errors import InputError

CF, CA, TR, NF = 4.0 / 3.0, 3.0, 0.5, 5
#: Shower cut-off in kT (GeV) and Lambda_QCD (GeV) of the one-loop alpha_s.
Q0, LAMBDA_QCD = 1.0, 0.2
_B0 = (33 - 2 * NF) / (12 * math.pi)
#: Field-Feynman fragmentation parameter, hadron energy floor (GeV), hadron kT width (GeV).
FF_A, HADRON_E_MIN, HADRON_KT = 0.77, 0.4, 0.35
CHARGED_FRACTION = 2.0 / 3.0


def alpha_s(kt: float) -> float:
    """One-loop running coupling at scale ``kt`` (GeV), n_f = 5."""
    return 1.0 / (_B0 * math.log(kt * kt / (LAMBDA_QCD * LAMBDA_QCD)))


_ALPHA_MAX = alpha_s(Q0)  # alpha_s falls with kT >= Q0: a valid overestimate


def shower(rng: np.random.Generator, energy: float, gluon: bool, theta_max: float = 0.8) -> np.ndarray:
    """Final partons of a quark (``gluon=False``) or gluon of ``energy`` GeV showering below ``theta_max`` rad.

    :return: (n, 4) float64 rows (energy GeV, d_eta, d_phi, is_gluon) with offsets from the initiator.
    """
    if not (math.isfinite(energy) and energy > 0 and 0 < theta_max < math.pi):
        raise InputError(f"toy shower: need energy > 0 GeV and 0 < theta_max < pi, got {energy}, {theta_max}")
    stack = [(float(energy), 0.0, 0.0, bool(gluon), float(theta_max))]
    final = []
    while stack:
        e, x, y, g, theta = stack.pop()
        while True:
            eps = Q0 / (e * theta)  # kT >= Q0 needs z (1 - z) >= eps; z in [eps, 1 - eps] overestimates that
            if eps >= 0.25:  # even z = 1/2 is below the cut-off: no more branchings
                final.append((e, x, y, g))
                break
            log_range = math.log((1 - eps) / eps)
            # overestimated z integrals of the channels (per d ln theta^2, times alpha_max / 2 pi)
            i_main = 2 * (CA if g else CF) * log_range
            i_qq = TR * NF * (1 - 2 * eps) if g else 0.0
            rate = _ALPHA_MAX / (2 * math.pi) * (i_main + i_qq)
            theta *= rng.random() ** (0.5 / rate)  # theta^2 -> theta^2 U^(1/rate)
            z_w = eps * ((1 - eps) / eps) ** rng.random()  # density 1/w on [eps, 1 - eps]
            if rng.random() * (i_main + i_qq) < i_main:
                if g:  # g -> g g: 1/z + 1/(1 - z), symmetric
                    z = z_w if rng.random() < 0.5 else 1 - z_w
                    accept = z * z + (1 - z) ** 2 + (z * (1 - z)) ** 2
                    kids = (True, True)
                else:  # q -> q g, z = quark's fraction, 1 - z = w the gluon's
                    z = 1 - z_w
                    accept = 0.5 * (1 + z * z)
                    kids = (False, True)
            else:  # g -> q q~
                z = eps + (1 - 2 * eps) * rng.random()
                accept = z * z + (1 - z) ** 2
                kids = (False, False)
            kt = z * (1 - z) * e * theta
            if kt < Q0:
                if e * theta / 4 < Q0:  # no z can pass any more at this or smaller angles
                    final.append((e, x, y, g))
                    break
                continue  # vetoed: continue evolving downwards from this angle
            if rng.random() > accept * alpha_s(kt) / _ALPHA_MAX:
                continue
            a = rng.uniform(-math.pi, math.pi)
            ux, uy = math.cos(a), math.sin(a)
            stack.append((z * e, x + (1 - z) * theta * ux, y + (1 - z) * theta * uy, kids[0], theta))
            stack.append(((1 - z) * e, x - z * theta * ux, y - z * theta * uy, kids[1], theta))
            break
    return np.asarray(final, np.float64).reshape(-1, 4)


def _ff_z(rng: np.random.Generator) -> float:
    """z from f(z) = 1 - a + 3 a (1 - z)^2 on [0, 1] (by rejection; max f = 1 + 2a at z = 0)."""
    while True:
        z = rng.random()
        if rng.random() * (1 + 2 * FF_A) <= 1 - FF_A + 3 * FF_A * (1 - z) ** 2:
            return z


def hadronise(rng: np.random.Generator, partons: np.ndarray) -> np.ndarray:
    """Hadrons of final ``partons`` (from :func:`shower`): (m, 4) rows (energy GeV, d_eta, d_phi, charge).

    ``charge`` is +-1 for charged hadrons, 0 for neutral ones; hadrons are massless.
    """
    out = []
    for e, x, y, _ in np.asarray(partons, np.float64).reshape(-1, 4):
        rest = e
        while rest > HADRON_E_MIN:
            eh = _ff_z(rng) * rest
            rest -= eh
            if eh < 0.5 * HADRON_E_MIN:
                continue  # too soft to matter (and to keep the angle below ~1 rad)
            kx, ky = rng.normal(0.0, HADRON_KT, 2)
            charged = rng.random() < CHARGED_FRACTION
            q = (1.0 if rng.random() < 0.5 else -1.0) if charged else 0.0
            out.append((eh, x + kx / eh, y + ky / eh, q))
    return np.asarray(out, np.float64).reshape(-1, 4)


def jet_particles(rng: np.random.Generator, pt: float, eta: float, phi: float, gluon: bool) -> dict:
    """Hadrons of one showered, hadronised parton of transverse momentum ``pt`` (GeV) at (eta, phi).

    The shower runs in the parton's frame with energy ``pt`` (small angles around eta, treated as
    flat offsets in eta-phi), so jets at any eta look alike in (d_eta, d_phi).
    :return: dict of (m,) arrays px, py, pz, e (GeV), eta, phi, charge.
    """
    had = hadronise(rng, shower(rng, pt, gluon))
    h_eta = eta + had[:, 1]
    h_phi = (phi + had[:, 2] + math.pi) % (2 * math.pi) - math.pi
    h_pt = had[:, 0]  # energy in the frame where the parton has E = pT
    px, py, pz = h_pt * np.cos(h_phi), h_pt * np.sin(h_phi), h_pt * np.sinh(h_eta)
    return {"px": px, "py": py, "pz": pz, "e": h_pt * np.cosh(h_eta), "eta": h_eta, "phi": h_phi,
            "charge": had[:, 3]}
