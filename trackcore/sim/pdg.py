"""PDG particle codes used by the particle sources: masses (GeV), charges (e) and B-hadron lifetimes.

Values are from the Particle Data Group review (2024), rounded to the precision that matters for
tracking. Negative codes are antiparticles (opposite charge); self-conjugate particles (photon,
pi0, K0S, K0L) have no negative code.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError

ELECTRON, MUON, PION, KAON, PROTON = 11, 13, 211, 321, 2212
PHOTON, PI0, K0L, K0S, NEUTRON = 22, 111, 130, 310, 2112
D0, D_PLUS, D_S = 421, 411, 431
B0, B_PLUS, B_S, LAMBDA_B = 511, 521, 531, 5122

#: |code| -> (mass in GeV, charge in e of the positive code). Note that for leptons the positive
#: code is the negative particle (11 = e-, 13 = mu-).
_PARTICLES: dict[int, tuple[float, int]] = {
    ELECTRON: (0.000510999, -1),
    MUON: (0.105658, -1),
    PION: (0.139570, +1),
    KAON: (0.493677, +1),
    PROTON: (0.938272, +1),
    PHOTON: (0.0, 0),
    PI0: (0.134977, 0),
    K0L: (0.497611, 0),
    K0S: (0.497611, 0),
    NEUTRON: (0.939565, 0),
    D0: (1.86484, 0),
    D_PLUS: (1.86966, +1),
    D_S: (1.96835, +1),
    B0: (5.27966, 0),
    B_PLUS: (5.27934, +1),
    B_S: (5.36692, 0),
    LAMBDA_B: (5.61960, 0),
}
_SELF_CONJUGATE = frozenset({PHOTON, PI0, K0L, K0S})

#: Proper decay length c*tau in mm of the weakly decaying b hadrons (PDG: B0 1.519 ps, B+ 1.638 ps,
#: Bs 1.520 ps, Lambda_b 1.471 ps).
CTAU_MM: dict[int, float] = {B0: 0.4555, B_PLUS: 0.4911, B_S: 0.4557, LAMBDA_B: 0.4410}

_CODES = np.array(sorted(_PARTICLES), dtype=np.int64)
_MASSES = np.array([_PARTICLES[c][0] for c in _CODES.tolist()])
_CHARGES = np.array([_PARTICLES[c][1] for c in _CODES.tolist()], dtype=np.int32)


def _lookup(pdg_codes) -> tuple[np.ndarray, np.ndarray]:
    """Index into the tables and the sign of each code; InputError naming the first unknown code."""
    codes = np.asarray(pdg_codes)
    if codes.size and not np.issubdtype(codes.dtype, np.integer):
        if not np.issubdtype(codes.dtype, np.floating) or not np.all(np.isfinite(codes)) \
                or not np.all(codes == np.round(codes)):
            raise InputError(f"PDG codes must be integers, got dtype {codes.dtype} with values {codes.ravel()[:5]}")
    codes = codes.astype(np.int64)
    absolute = np.abs(codes)
    index = np.clip(np.searchsorted(_CODES, absolute), 0, len(_CODES) - 1)
    unknown = _CODES[index] != absolute
    unknown |= (codes < 0) & np.isin(absolute, list(_SELF_CONJUGATE))
    if np.any(unknown):
        bad = np.unique(codes[unknown])
        raise InputError(f"unknown PDG code(s) {bad[:10].tolist()} "
                         f"(known: {_CODES.tolist()}, negative = antiparticle)")
    return index, np.where(codes < 0, -1, 1)


def mass_of(pdg_codes) -> np.ndarray:
    """Masses in GeV of an array of PDG codes (same shape); InputError naming any unknown code."""
    index, _ = _lookup(pdg_codes)
    return _MASSES[index]


def charge_of(pdg_codes) -> np.ndarray:
    """Electric charges (int32, units of e) of an array of PDG codes; InputError for unknown codes."""
    index, sign = _lookup(pdg_codes)
    return (_CHARGES[index] * sign).astype(np.int32)


def with_charge(species, charge) -> np.ndarray:
    """Signed PDG codes of the species ``|species|`` carrying ``charge`` (+1/-1), e.g. (13, +1) -> -13.

    InputError if a species is neutral (it cannot carry a charge of +-1).
    """
    absolute, charge = np.broadcast_arrays(np.abs(np.asarray(species, dtype=np.int64)), np.asarray(charge))
    base = charge_of(absolute)
    if np.any(base == 0):
        raise InputError(f"PDG code(s) {np.unique(absolute[base == 0]).tolist()} "
                         "are neutral; only charged particles are tracked")
    return np.where(base == charge, absolute, -absolute).astype(np.int32)
