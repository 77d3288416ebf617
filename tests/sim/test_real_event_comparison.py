"""The simulation against a real TrackML event: its own particles through the real detectors.csv."""
import numpy as np
import pytest

from trackcore._corelib import core_available

pytestmark = pytest.mark.skipif(not core_available(), reason="compiled core not built")

GROUPS = {"pixel endcap": (7, 9), "pixel barrel": (8,), "short-strip endcap": (12, 14), "short-strip barrel": (13,),
          "long-strip endcap": (16, 18), "long-strip barrel": (17,)}


def summary(event) -> dict:
    truth = event.truth_aligned()
    signal = truth["particle_id"] != 0
    volume = event.hits["volume_id"]
    order = np.argsort(event.hits["hit_id"])
    per_sorted = np.bincount(np.searchsorted(event.hits["hit_id"][order], event.cells["hit_id"]),
                             minlength=len(order))
    cells = np.empty(len(order))
    cells[order] = per_sorted
    _, hits_per_particle = np.unique(truth["particle_id"][signal], return_counts=True)
    out = {"noise fraction": float(np.mean(~signal)), "hits per particle": float(hits_per_particle.mean())}
    for name, vols in GROUPS.items():
        sel = np.isin(volume, vols) & signal
        out[f"cells per hit, {name}"] = float(cells[sel].mean())
    return out


def test_simulated_event_matches_the_real_one_within_20_percent(shared_trackml):
    from trackcore.event.io import read_event
    from trackcore.geometry.io import read_detector
    from trackcore.sim.simulate import SimulationConfig, simulate_event

    real = read_event(shared_trackml / "event000000001")
    detector = read_detector(shared_trackml / "detectors.csv.gz")
    config = SimulationConfig(noise_fraction=0.135)  # the real event's noise level
    sims = [summary(simulate_event(detector, real.particles.copy(), config=config, seed=s)) for s in range(3)]
    ref = summary(real)
    for key, value in ref.items():
        sim = float(np.mean([s[key] for s in sims]))
        assert abs(sim / value - 1) < 0.2, f"{key}: simulated {sim:.3f} vs real {value:.3f}"
