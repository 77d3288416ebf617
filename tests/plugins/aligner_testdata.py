"""Events shared by the aligner tests: muons through a ring of the generic detector's barrel.

A wedge in eta lights up one or two modules per stave, so the alignment problems stay small; no
noise, scattering or energy loss, so the residuals are the misalignment and the hit resolution.
"""
from __future__ import annotations

from trackcore.sim.particles import particle_gun
from trackcore.sim.simulate import SimulationConfig, simulate_event
from trackcore.sim.transport import TransportConfig

BZ = 2.0  # T
WEDGE = {"eta": (0.1, 0.5)}
SIM = SimulationConfig(noise_fraction=0.0, transport=TransportConfig(multiple_scattering=False, energy_loss=False))


def muon_events(det, truth_det, n_events: int, muons: int, seed: int) -> list:
    """``n_events`` events of ``muons`` muons (pT 2-20 GeV) in the wedge, simulated through ``truth_det``
    (the misaligned detector) and digitised on ``det``; event ``i`` uses seed ``seed + i``."""
    return [simulate_event(det, particle_gun(muons, seed + i, pt=(2.0, 20.0), vertex_sigma=(0.015, 0.015, 50.0),
                                             **WEDGE), simulation_detector=truth_det, config=SIM, seed=seed + i,
                           event_id=i) for i in range(n_events)]
