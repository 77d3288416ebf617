"""The per-event luminous-region estimate that narrows the seeding window along the beam."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from trackcore.errors import InputError
from trackcore.reco.collision_region import (CollisionRegionConfig, barrel_layers, estimate_collision_region,
                                             find_tracklets)
from trackcore.reco.pipeline import ReconstructionConfig, reconstruct
from trackcore.reco.spacepoints import SpacePoints
from trackcore.sim.particles import particle_gun
from trackcore.sim.simulate import simulate_event

PIXELS = (7, 8, 9)


def _gun_event(detector, n: int, z_centre: float, sigma_z: float, seed: int):
    """n muons (pT 1-20 GeV, |eta| < 2.5) from a luminous region centred at z_centre (mm)."""
    parts = particle_gun(n, np.random.default_rng(seed), pt=(1.0, 20.0), eta=(-2.5, 2.5),
                         vertex_sigma=(0.015, 0.015, sigma_z))
    parts["vz"] = parts["vz"] + z_centre
    return simulate_event(detector, parts, seed=seed), parts


@pytest.fixture(scope="module")
def shifted_event(reco_detector):
    """600 muons from a 5.5 mm luminous region centred at z = +30 mm."""
    return _gun_event(reco_detector, 600, 30.0, 5.5, 21)


def test_barrel_layers_are_the_pixel_barrel_innermost_first(reco_detector):
    layers = barrel_layers(reco_detector, PIXELS)
    assert len(layers) == 4
    assert all(reco_detector.layers[i].volume_id == 8 and reco_detector.layers[i].kind == "barrel" for i in layers)
    radii = [reco_detector.layers[i].r_min for i in layers]
    assert radii == sorted(radii)
    assert barrel_layers(reco_detector, (7, 9)) == []


def test_estimate_finds_a_shifted_narrow_region(reco_detector, shifted_event):
    event, parts = shifted_event
    sp = SpacePoints.from_event(event, reco_detector, volumes=PIXELS)
    region = estimate_collision_region(sp, reco_detector, -150.0, 150.0, 2.0, volumes=PIXELS)
    assert region.estimated and region.n_tracklets >= 100
    assert abs(region.centre - 30.0) < 2.0
    assert 3.0 < region.sigma < 9.0
    # Every collision vertex lies well inside the narrowed window, which is much narrower than +-150 mm.
    vz = np.asarray(parts["vz"])
    assert region.z_min < vz.min() - 15 and region.z_max > vz.max() + 15
    assert region.z_max - region.z_min < 120.0
    # The tracklets are the muons' own: their z0 follow the vertices, not random combinations.
    z0 = find_tracklets(sp, barrel_layers(reco_detector, PIXELS), 2.0, (-150.0, 150.0), CollisionRegionConfig())
    assert np.mean(np.abs(z0 - 30.0) < 25.0) > 0.95


def test_estimate_never_widens_the_configured_window(reco_detector):
    event, _ = _gun_event(reco_detector, 600, 0.0, 50.0, 22)  # a 50 mm region, like the real TrackML subset
    sp = SpacePoints.from_event(event, reco_detector, volumes=PIXELS)
    region = estimate_collision_region(sp, reco_detector, -150.0, 150.0, 2.0, volumes=PIXELS)
    assert region.estimated and region.sigma > 30.0
    assert (region.z_min, region.z_max) == (-150.0, 150.0)
    narrow = estimate_collision_region(sp, reco_detector, -40.0, 60.0, 2.0, volumes=PIXELS)
    assert -40.0 <= narrow.z_min and narrow.z_max <= 60.0


def test_too_few_tracklets_or_no_barrel_keep_the_configured_window(reco_detector, shifted_event):
    sparse, _ = _gun_event(reco_detector, 10, 0.0, 5.5, 23)
    sp = SpacePoints.from_event(sparse, reco_detector, volumes=PIXELS)
    region = estimate_collision_region(sp, reco_detector, -150.0, 150.0, 2.0, volumes=PIXELS)
    assert not region.estimated and (region.z_min, region.z_max) == (-150.0, 150.0)
    assert np.isnan(region.centre) and region.n_tracklets < CollisionRegionConfig().min_tracklets
    event, _ = shifted_event
    endcaps = estimate_collision_region(SpacePoints.from_event(event, reco_detector, volumes=(7, 9)),
                                        reco_detector, -150.0, 150.0, 2.0, volumes=(7, 9))
    assert not endcaps.estimated and endcaps.n_tracklets == 0
    empty = estimate_collision_region(sp.take(np.zeros(len(sp), bool)), reco_detector, -150.0, 150.0, 2.0,
                                      volumes=PIXELS)
    assert not empty.estimated and (empty.z_min, empty.z_max) == (-150.0, 150.0)


@pytest.mark.parametrize("kwargs", [{"min_pt": 0.0}, {"n_sigma": float("nan")}, {"margin": -1.0},
                                    {"min_tracklets": 0}, {"max_inner_points": 2.5}])
def test_bad_settings_are_named(kwargs):
    with pytest.raises(InputError, match=next(iter(kwargs))):
        CollisionRegionConfig(**kwargs)


def test_bad_window_or_field_is_named(reco_detector, shifted_event):
    event, _ = shifted_event
    sp = SpacePoints.from_event(event, reco_detector, volumes=PIXELS)
    with pytest.raises(InputError, match="window"):
        estimate_collision_region(sp, reco_detector, 10.0, -10.0, 2.0)
    with pytest.raises(InputError, match="bz"):
        estimate_collision_region(sp, reco_detector, -150.0, 150.0, 0.0)


def test_pipeline_seeds_inside_the_estimated_region(reco_detector, shifted_event):
    event, _ = shifted_event
    rec = reconstruct(event, reco_detector)
    assert "collision_region" in rec.timings
    region = rec.outputs["collision_region"]["region"]
    narrowed = rec.outputs["collision_region"]["seeding"]
    assert region.estimated and (narrowed.z0_min, narrowed.z0_max) == (region.z_min, region.z_max)
    # Every seed's bottom-middle line meets the beam inside the narrowed window.
    sp = rec.outputs["spacepoints"]["spacepoints"]
    b, m = rec.outputs["seeding"]["seeds"].hits[:, 0], rec.outputs["seeding"]["seeds"].hits[:, 1]
    z0 = sp.z[m] - sp.r[m] * (sp.z[m] - sp.z[b]) / (sp.r[m] - sp.r[b])
    assert len(z0) and (z0 >= region.z_min - 1e-6).all() and (z0 <= region.z_max + 1e-6).all()
    # Without the estimate there is no such stage and the configured window is used as it is.
    fixed = reconstruct(event, reco_detector, dataclasses.replace(ReconstructionConfig(), collision_region=None))
    assert "collision_region" not in fixed.timings
    assert len(fixed.tracks) >= len(rec.tracks) - 5
