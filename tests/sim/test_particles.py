"""Particle sources: schema, reproducibility, validation, physics checks, calibration vs TrackML."""
from __future__ import annotations

import math

import numpy as np
import pytest

from trackcore.errors import InputError
from trackcore.event import Table
from trackcore.event.schema import PARTICLES
from trackcore.sim import pdg
from trackcore.sim.particles import (b_hadron_decays, combine, jets, minimum_bias, particle_gun,
                                     read_particle_table)

EVENT1000 = "event000001000-particles.csv"


def kinematics(t: Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pt = np.hypot(t["px"], t["py"])
    return pt, np.arcsinh(t["pz"] / pt), np.arctan2(t["py"], t["px"])


def check_schema(t: Table) -> None:
    assert t.name == "particles"
    assert t.columns[:len(PARTICLES)] == list(PARTICLES)
    for col, dtype in PARTICLES.items():
        assert t[col].dtype == np.dtype(dtype), col
    ids = t["particle_id"]
    assert np.all(ids > 0) and len(np.unique(ids)) == len(ids)
    assert np.all(np.isin(t["q"], (-1, 1)))
    assert np.array_equal(pdg.charge_of(t["particle_type"]), t["q"])
    assert np.all(t["nhits"] == 0)
    for col in ("vx", "vy", "vz", "px", "py", "pz"):
        assert np.all(np.isfinite(t[col])), col


# -- pdg ------------------------------------------------------------------------------------------
def test_pdg_masses_and_charges():
    codes = np.array([[211, -211], [13, -13], [2212, 521]])
    assert pdg.mass_of(codes).shape == codes.shape
    np.testing.assert_allclose(pdg.mass_of([211, 321, 2212, 511]), [0.13957, 0.493677, 0.938272, 5.27966])
    assert pdg.charge_of(codes).tolist() == [[1, -1], [-1, 1], [1, 1]]
    assert pdg.with_charge(13, [1, -1]).tolist() == [-13, 13]
    assert pdg.with_charge([211, 11], [-1, -1]).tolist() == [-211, 11]


@pytest.mark.parametrize("bad", [[211, 999], [-22], [0]])
def test_pdg_unknown_code_is_named(bad):
    with pytest.raises(InputError, match=str(bad[-1])):
        pdg.mass_of(bad)
    with pytest.raises(InputError):
        pdg.charge_of(bad)


def test_pdg_neutral_cannot_carry_charge():
    with pytest.raises(InputError, match="22"):
        pdg.with_charge(22, 1)


# -- particle gun ---------------------------------------------------------------------------------
def test_gun_schema_ranges_and_species():
    t = particle_gun(2000, 7, pt=(2.0, 5.0), eta=(0.5, 1.5), phi=(0.0, 1.0))
    check_schema(t)
    pt, eta, phi = kinematics(t)
    assert len(t) == 2000
    assert pt.min() >= 2.0 and pt.max() <= 5.0
    assert eta.min() >= 0.5 and eta.max() <= 1.5
    assert phi.min() >= 0.0 and phi.max() <= 1.0
    assert set(np.abs(t["particle_type"])) == {13}
    assert 0.4 < np.mean(t["q"] > 0) < 0.6
    assert np.std(t["vz"]) == pytest.approx(50.0, rel=0.1)
    assert np.std(t["vx"]) == pytest.approx(0.015, rel=0.1)


def test_gun_fixed_charge_sets_code_sign():
    t = particle_gun(10, 1, charge=1)
    assert np.all(t["q"] == 1) and np.all(t["particle_type"] == -13)  # mu+ is -13
    t = particle_gun(10, 1, charge=-1, pdg=211)
    assert np.all(t["particle_type"] == -211)


@pytest.mark.parametrize("dist,stat,expected", [
    ("uniform", lambda pt: pt.mean(), 5.5),
    ("log", lambda pt: np.median(pt), math.sqrt(10.0)),
    ("inverse", lambda pt: (1 / pt).mean(), 0.55),
])
def test_gun_pt_distributions(dist, stat, expected):
    pt, _, _ = kinematics(particle_gun(20000, 3, pt=(1.0, 10.0), pt_distribution=dist))
    assert stat(pt) == pytest.approx(expected, rel=0.03)


@pytest.mark.parametrize("kwargs,match", [
    ({"pt": (0.0, 1.0)}, "> 0"),
    ({"pt": (-1.0, 1.0)}, "> 0"),
    ({"pt": (5.0, 1.0)}, "inverted"),
    ({"pt": (1.0, float("nan"))}, "finite"),
    ({"eta": (-5.0, 0.0)}, "-5.0"),
    ({"eta": (0.0, 4.5)}, "4.5"),
    ({"phi": (-7.0, 7.0)}, "2 pi"),
    ({"charge": 2}, "charge"),
    ({"pdg": 22}, "neutral"),
    ({"pdg": 12345}, "12345"),
    ({"pt_distribution": "gauss"}, "pt_distribution"),
    ({"vertex_sigma": (0.1, -1.0, 1.0)}, "vertex_sigma"),
])
def test_gun_rejects_bad_input(kwargs, match):
    with pytest.raises(InputError, match=match):
        particle_gun(5, 0, **kwargs)


def test_bad_n_and_rng():
    with pytest.raises(InputError, match="n must"):
        particle_gun(-1, 0)
    with pytest.raises(InputError, match="rng"):
        particle_gun(3, "seed")
    assert len(particle_gun(0, 0)) == 0


SOURCES = {
    "gun": lambda rng: particle_gun(100, rng),
    "minimum_bias": lambda rng: minimum_bias(rng, pileup=20),
    "jets": lambda rng: jets(rng, n_jets=3, flavour="b")[0],
    "b_decays": lambda rng: b_hadron_decays(rng, 50)[0],
}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_sources_are_reproducible(name):
    make = SOURCES[name]
    a, b, c = make(11), make(np.random.default_rng(11)), make(12)
    check_schema(a)
    assert a == b
    assert a != c


# -- minimum bias ---------------------------------------------------------------------------------
def test_minimum_bias_structure():
    t = minimum_bias(5, pileup=50)
    check_schema(t)
    r = np.hypot(t["vx"], t["vy"])
    prompt = r < 1.0
    # prompt particles of one collision share its vertex; collisions spread along z as in TrackML
    coll = t["collision_id"]
    z_of = {c: t["vz"][prompt & (coll == c)] for c in np.unique(coll[prompt])}
    assert all(np.ptp(z) == 0 for z in z_of.values())
    zs = np.array([z[0] for z in z_of.values()])
    assert 3.0 < np.std(zs) < 8.5
    assert 0.2 < np.mean(~prompt) < 0.4
    pt, eta, _ = kinematics(t)
    assert pt.min() >= 0.1 and np.abs(eta[prompt]).max() <= 4.0
    assert np.all(np.diff(coll) >= 0)


def test_minimum_bias_cuts_and_options():
    assert len(minimum_bias(1, pileup=0)) == 0
    cut = minimum_bias(1, pt_min=0.5, eta_max=2.5)
    pt, eta, _ = kinematics(cut)
    assert pt.min() >= 0.5 and np.abs(eta).max() <= 2.5
    assert len(cut) < len(minimum_bias(1))
    assert np.all(np.hypot(minimum_bias(1, secondaries=False)["vx"], minimum_bias(1, secondaries=False)["vy"]) < 1)
    for kwargs in ({"pileup": -1.0}, {"pt_min": 0.05}, {"eta_max": 5.0}, {"pileup": float("nan")}):
        with pytest.raises(InputError):
            minimum_bias(1, **kwargs)


def summary(t: Table) -> dict[str, float]:
    pt, eta, _ = kinematics(t)
    return {"q25": np.quantile(pt, 0.25), "median": np.median(pt), "q75": np.quantile(pt, 0.75),
            "q90": np.quantile(pt, 0.9), "pt>1": np.mean(pt > 1.0), "|eta|<2.5": np.mean(np.abs(eta) < 2.5)}


def test_minimum_bias_matches_real_trackml_event(shared_trackml):
    path = shared_trackml / EVENT1000
    if not path.exists():
        pytest.skip(f"{path} not found")
    real = read_particle_table(path)
    assert len(real) == 12263
    # per-event multiplicity fluctuates by ~12% (broad minimum-bias multiplicity): compare the mean
    counts = [len(minimum_bias(seed, pileup=200)) for seed in range(8)]
    assert np.mean(counts) == pytest.approx(len(real), rel=0.15)
    sim, ref = summary(minimum_bias(0, pileup=200)), summary(real)
    for key in ("q25", "median", "q75", "q90", "pt>1"):
        assert sim[key] == pytest.approx(ref[key], rel=0.20), key
    assert sim["|eta|<2.5"] == pytest.approx(ref["|eta|<2.5"], rel=0.15)


# -- reading a particle table -----------------------------------------------------------------------
def test_read_particle_table_with_and_without_type(shared_trackml):
    t = read_particle_table(shared_trackml / "event000000001-particles.csv.gz")
    assert t.columns == list(PARTICLES) and len(t) > 0 and np.all(np.isin(t["q"], (-1, 1)))
    assert np.array_equal(pdg.charge_of(t["particle_type"]), t["q"])
    path = shared_trackml / EVENT1000
    if path.exists():
        real = read_particle_table(path)
        assert set(np.unique(real["particle_type"])) == {-211, 211}
        assert real["particle_id"].dtype == np.int64 and real["particle_id"][0] == 4503668346847232


HEADER = "particle_id,vx,vy,vz,px,py,pz,q,nhits\n"


def test_read_particle_table_drops_neutral_and_validates(tmp_path):
    good = tmp_path / "p.csv"
    good.write_text(HEADER + "1,0,0,0,1,0,0,1,3\n2,0,0,0,1,0,0,0,0\n3,0,0,0,0,1,2,-1,5\n")
    t = read_particle_table(good)
    assert t["particle_id"].tolist() == [1, 3]
    assert t["particle_type"].tolist() == [211, -211]
    assert t["nhits"].tolist() == [3, 5]
    cases = {
        "nan.csv": (HEADER + "1,0,0,0,1,0,0,1,3\n2,0,nan,0,1,0,0,1,3\n", "line 3.*'vy'"),
        "missing.csv": ("particle_id,vx,vy,vz,px,py,q,nhits\n1,0,0,0,1,0,1,3\n", "missing column 'pz'"),
        "text.csv": (HEADER + "1,0,0,0,abc,0,0,1,3\n", "line 2.*'px'"),
        "charge.csv": (HEADER + "1,0,0,0,1,0,0,2,3\n", "line 2.*charge 2"),
        "dup.csv": (HEADER + "1,0,0,0,1,0,0,1,3\n1,0,0,0,1,0,0,1,3\n", "duplicate particle_id 1"),
    }
    for name, (text, match) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(InputError, match=match) as err:
            read_particle_table(tmp_path / name)
        assert name in str(err.value)
    with pytest.raises(InputError, match="cannot read"):
        read_particle_table(tmp_path / "absent.csv")


# -- b hadrons ------------------------------------------------------------------------------------
def test_b_decay_flight_length_and_lifetime():
    particles, hadrons = b_hadron_decays(4, 20000)
    p = np.sqrt(hadrons["px"] ** 2 + hadrons["py"] ** 2 + hadrons["pz"] ** 2)
    ctau = np.array([pdg.CTAU_MM[abs(int(c))] for c in hadrons["particle_type"]])
    betagamma = p / pdg.mass_of(hadrons["particle_type"])
    assert hadrons["flight_length"].mean() == pytest.approx(np.mean(betagamma * ctau), rel=0.05)
    assert hadrons["proper_ct"].mean() == pytest.approx(ctau.mean(), rel=0.05)
    assert 0.44 < ctau.mean() < 0.48  # ~455 um, 1.5 ps
    disp = np.column_stack([hadrons[f"decay_v{a}"] - hadrons[f"v{a}"] for a in "xyz"])
    np.testing.assert_allclose(np.linalg.norm(disp, axis=1), hadrons["flight_length"], rtol=1e-9)


def test_b_decay_products_are_displaced_and_collimated():
    particles, hadrons = b_hadron_decays(5, 5000, pt=(20.0, 100.0))
    check_schema(particles)
    b = particles["b_id"]
    for a in "xyz":  # every product starts at its hadron's decay vertex
        np.testing.assert_array_equal(particles[f"v{a}"], hadrons[f"decay_v{a}"][b])
    assert np.array_equal(np.bincount(b, particles["q"]), pdg.charge_of(hadrons["particle_type"]))
    assert 4.5 < np.bincount(b).mean() < 5.5
    for row in np.flatnonzero(np.abs(hadrons["particle_type"]) == pdg.LAMBDA_B)[:20]:  # baryon number
        sign = np.sign(hadrons["particle_type"][row])
        assert np.sum(particles["particle_type"][b == row] == sign * pdg.PROTON) >= 1
    # transverse impact parameter w.r.t. the beam line, straight-line approximation (the 2 T
    # curvature changes d0 by < 1 um over mm flight lengths at these momenta)
    d0 = np.abs(particles["vx"] * particles["py"] - particles["vy"] * particles["px"]) / np.hypot(
        particles["px"], particles["py"])
    gun = particle_gun(5000, 5, vertex_sigma=(0.015, 0.015, 5.5))
    d0_prompt = np.abs(gun["vx"] * gun["py"] - gun["vy"] * gun["px"]) / np.hypot(gun["px"], gun["py"])
    assert d0.mean() > 0.2 and d0_prompt.mean() < 0.02
    total = np.column_stack([np.bincount(b, particles[f"p{a}"]) for a in "xyz"])
    mom = np.column_stack([hadrons[f"p{a}"] for a in "xyz"])
    cos = np.sum(total * mom, axis=1) / np.linalg.norm(total, axis=1) / np.linalg.norm(mom, axis=1)
    angle = np.arccos(np.clip(cos, -1, 1))
    assert np.median(angle) < 0.05 and np.quantile(angle, 0.95) < 0.2
    # the invisible neutral system takes its share of the B energy
    e_charged = np.bincount(b, np.sqrt(np.sum([particles[f"p{a}"] ** 2 for a in "xyz"], axis=0)
                                       + pdg.mass_of(particles["particle_type"]) ** 2))
    e_b = np.sqrt(np.sum(mom**2, axis=1) + pdg.mass_of(hadrons["particle_type"]) ** 2)
    assert np.all(e_charged < e_b) and 0.5 < np.mean(e_charged / e_b) < 0.95


# -- jets -----------------------------------------------------------------------------------------
def delta_r(eta, phi, eta0, phi0):
    return np.hypot(eta - eta0, (phi - phi0 + np.pi) % (2 * np.pi) - np.pi)


def test_light_jets_are_collimated_sprays():
    particles, table = jets(8, n_jets=40, jet_pt=(100.0, 500.0), cone=0.4)
    check_schema(particles)
    assert table.name == "jets" and np.all(table["flavour"] == 0)
    jid = particles["jet_id"]
    counts = np.bincount(jid, minlength=40)
    assert np.array_equal(counts, table["n_constituents"]) and counts.min() >= 20 and counts.max() <= 40
    assert np.all(particles["b_id"] == -1) and np.all(np.isnan(table["b_decay_vx"]))
    pt, eta, phi = kinematics(particles)
    dr = delta_r(eta, phi, table["eta"][jid], table["phi"][jid])
    assert dr.max() <= 0.4 + 1e-12 and 0.03 < np.median(dr) < 0.3
    assert np.corrcoef(np.log(pt), dr)[0, 1] < -0.3  # harder particles closer to the axis
    np.testing.assert_allclose(np.bincount(jid, pt), 0.65 * table["pt"], rtol=1e-9)
    lead = np.array([pt[jid == j].max() for j in range(40)]) / np.bincount(jid, pt)
    assert 0.1 < np.median(lead) < 0.6  # steep (1-z)^a / z fragmentation


def test_b_jets_hold_a_displaced_b_decay():
    particles, table = jets(9, n_jets=20, flavour="b")
    assert np.all(table["flavour"] == 5)
    from_b = particles["b_id"] >= 0
    assert np.array_equal(particles["b_id"][from_b], particles["jet_id"][from_b])
    for j in range(20):
        sel = from_b & (particles["jet_id"] == j)
        assert 2 <= sel.sum() <= 9
        assert np.all(particles["vx"][sel] == table["b_decay_vx"][j])
    lxy = np.hypot(table["b_decay_vx"], table["b_decay_vy"])
    assert np.median(lxy) > 1.0  # B flight ~ beta*gamma*c*tau: several mm at > 50 GeV
    mixed = jets(1, n_jets=2, flavour=["b", "light"])[1]
    assert mixed["flavour"].tolist() == [5, 0]


@pytest.mark.parametrize("kwargs,match", [
    ({"flavour": "c"}, "flavour"), ({"flavour": ["b"]}, "flavour"), ({"jet_pt": (0.0, 10.0)}, "jet_pt"),
    ({"cone": 0.0}, "cone"), ({"n_constituents": (40, 20)}, "inverted"), ({"eta": (-4.5, 0.0)}, "-4.5"),
])
def test_jets_reject_bad_input(kwargs, match):
    with pytest.raises(InputError, match=match):
        jets(0, n_jets=2, **kwargs)


# -- combine --------------------------------------------------------------------------------------
def test_combine_renumbers_and_keeps_extra_columns():
    gun = particle_gun(5, 1)
    jet_particles, _ = jets(2, n_jets=1)
    mb = minimum_bias(3, pileup=2)
    t = combine(gun, jet_particles, mb)
    check_schema(t)
    n = len(gun) + len(jet_particles) + len(mb)
    assert t["particle_id"].tolist() == list(range(1, n + 1))
    assert t["jet_id"][:5].tolist() == [-1] * 5 and np.all(t["jet_id"][5:5 + len(jet_particles)] == 0)
    assert np.all(t["collision_id"][:n - len(mb)] == -1)
    np.testing.assert_array_equal(t["px"][:5], gun["px"])
    assert len(combine()) == 0
    with pytest.raises(InputError, match="argument 1"):
        combine(gun, "not a table")
    with pytest.raises(InputError, match="'q'"):
        combine(Table({k: gun[k] for k in gun.columns if k != "q"}))
