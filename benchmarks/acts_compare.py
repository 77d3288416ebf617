"""ACTS and trackcore side by side on the same events (issue #13, item 6).

ACTS (the ``pyacts`` wheel, ``import acts``) simulates particle-gun events on its generic detector
with Fatras, smears the hits (Gaussian, sigma = pitch / sqrt(12)), and reconstructs them with its
grid triplet seeding, combinatorial Kalman filter and greedy ambiguity resolution. The same events
and the detector are written in TrackML format (``detectors.csv``, hits/truth/particles), read
back with trackcore's readers and reconstructed with ``trackcore.reco.pipeline.reconstruct``.
Both track lists are scored with ``trackcore.metrics.score_event``; times are wall seconds per
event of the reconstruction only (ACTS: space points to ambiguity resolution; trackcore: the whole
``reconstruct`` call), both on one thread.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/acts_compare.py [--events 3] [--particles 5000]

The ACTS generic detector numbers its volumes like TrackML (7/8/9 pixel, 12/13/14 short strips,
16/17/18 long strips; layers 2, 4, ...), so its geometry ids map one to one onto TrackML's
(volume_id, layer_id, module_id = sensitive id). Units: mm, GeV, Tesla.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trackcore.errors import GeometryError, InputError

#: Readout pitches (u, v) in mm per volume: the generic detector's pixel / short-strip / long-strip
#: modules. ACTS smears with sigma = pitch / sqrt(12); trackcore reads them from detectors.csv.
PITCH = {7: (0.05, 0.05), 8: (0.05, 0.05), 9: (0.05, 0.05),
         12: (0.08, 1.2), 13: (0.08, 1.2), 14: (0.08, 1.2),
         16: (0.12, 10.8), 17: (0.12, 10.8), 18: (0.12, 10.8)}
#: Seeding layers: pixel barrel and endcap disks (space points from pixel measurements only).
SEED_LAYERS = [(8, layer) for layer in (2, 4, 6, 8)] + [(v, layer) for v in (7, 9) for layer in range(2, 15, 2)]
BZ_TESLA = 2.0


def _acts():
    import acts
    import acts.examples  # noqa: F401  (registers the example bindings)

    return acts


# -- geometry -------------------------------------------------------------------------------
def geometry_columns(tracking_geometry, gctx) -> dict[str, np.ndarray]:
    """TrackML ``detectors.csv`` columns of every sensitive planar surface (mm).

    Centres and rotations come from the surfaces' local-to-global transforms (the rotation's
    columns are the local x = u, y = v and normal = w axes); half sizes from rectangle or trapezoid
    bounds; ``module_t`` is half the surface thickness; pitches from :data:`PITCH`.
    """
    acts = _acts()
    rows = []
    for gid, surface in tracking_geometry.geoIdSurfaceMap().items():
        if gid.sensitive == 0:
            continue  # layer surfaces, portals, approach surfaces
        vol = int(gid.volume)
        if vol not in PITCH:
            raise GeometryError(f"ACTS generic detector: sensitive surface {gid} in volume {vol}, "
                                f"which has no pitch (known volumes {sorted(PITCH)})")
        bounds = surface.bounds
        values = list(bounds.values())
        kind = type(bounds).__name__
        if kind == "RectangleBounds":  # [minX, minY, maxX, maxY]
            min_hu = max_hu = 0.5 * (values[2] - values[0])
            hv = 0.5 * (values[3] - values[1])
        elif kind == "TrapezoidBounds":  # [halfX at -halfY, halfX at +halfY, halfY, rotation]
            min_hu, max_hu, hv = values[0], values[1], values[2]
        else:
            raise GeometryError(f"ACTS generic detector: sensitive surface {gid} has {kind}, "
                                "only rectangles and trapezoids map onto detectors.csv")
        # The bindings expose no matrix elements: the axes are images of the local unit points.
        centre = np.array(list(surface.center(gctx)), dtype=np.float64)
        axes = [np.array(list(surface.localToGlobal(gctx, acts.Vector2(*d), acts.Vector3(0, 0, 1)))) - centre
                for d in ((1.0, 0.0), (0.0, 1.0))]
        rot = np.column_stack([axes[0], axes[1], np.cross(axes[0], axes[1])])
        rows.append((vol, int(gid.layer), int(gid.sensitive), *centre, *rot.ravel(),
                     0.5 * surface.thickness, min_hu, max_hu, hv, *PITCH[vol]))
    from trackcore.geometry.detector import MODULE_COLUMNS

    table = np.array(rows, dtype=np.float64)
    return {name: (table[:, j].astype(np.int64) if j < 3 else table[:, j]) for j, name in enumerate(MODULE_COLUMNS)}


def write_digi_config(path: Path) -> Path:
    """ACTS digitisation config (JSON hierarchy map): Gaussian smearing, sigma = pitch / sqrt(12)."""
    entries = [{"volume": vol, "value": {"smearing": [
        {"index": i, "mean": 0.0, "stddev": p / np.sqrt(12.0), "type": "Gauss"} for i, p in enumerate(pitch)]}}
        for vol, pitch in PITCH.items()]
    doc = {"acts-geometry-hierarchy-map": {"format-version": 0, "value-identifier": "digitization-configuration"},
           "entries": entries}
    path.write_text(json.dumps(doc, indent=1))
    return path


def write_seed_selection(path: Path) -> Path:
    """ACTS geometry selection of the seeding layers (JSON list of volume/layer)."""
    path.write_text(json.dumps([{"volume": v, "layer": lay} for v, lay in SEED_LAYERS], indent=1))
    return path


# -- the ACTS chain ---------------------------------------------------------------------------
@dataclass
class ActsEvent:
    """One event as ACTS made and reconstructed it, in TrackML columns."""

    hits: dict
    truth: dict
    particles: dict
    track_of_hit: np.ndarray  # per hit row; -1 = in no ACTS track
    stage_seconds: dict = field(default_factory=dict)


def _clock_algorithm(acts, name: str, stamps: dict):
    """A no-op algorithm that records when the (single-threaded) sequencer reaches it."""

    class Clock(acts.examples.IAlgorithm):
        def __init__(self):
            acts.examples.IAlgorithm.__init__(self, name, acts.logging.WARNING)

        def execute(self, context):
            stamps.setdefault(context.eventNumber, {})[name] = time.perf_counter()
            return acts.examples.ProcessCode.SUCCESS

    return Clock()


def _export_algorithm(acts, tracking_geometry, out: dict):
    """Reads the whiteboard after the ACTS chain and keeps the event in TrackML columns."""
    surfaces = tracking_geometry.geoIdSurfaceMap()
    ex = acts.examples

    class Export(ex.IAlgorithm):
        def __init__(self):
            ex.IAlgorithm.__init__(self, "TrackMLExport", acts.logging.WARNING)
            self.handles = {}
            for key, typ, wb in (("meas", ex.MeasurementContainer, "measurements"),
                                 ("mpm", ex.MeasurementParticlesMap, "measurement_particles_map"),
                                 ("msm", ex.MeasurementSimHitsMap, "measurement_simhits_map"),
                                 ("simhits", ex.SimHitContainer, "simhits"),
                                 ("particles", ex.SimParticleContainer, "particles_simulated"),
                                 ("tracks", ex.ConstTrackContainer, "ambi_tracks")):
                self.handles[key] = ex.ReadDataHandle(self, typ, f"Input{key}")
                self.handles[key].initialize(wb)

        def execute(self, context):
            store = context.eventStore
            get = {k: h(store) for k, h in self.handles.items()}
            out[context.eventNumber] = _to_trackml(acts, context.recoGeoContext, surfaces, get)
            return ex.ProcessCode.SUCCESS

    return Export()


def _to_trackml(acts, gctx, surfaces, wb) -> ActsEvent:
    meas = wb["meas"]
    n = len(meas)
    vol, lay, mod = (np.empty(n, np.int64) for _ in range(3))
    xyz = np.empty((n, 3))
    for i in range(n):
        m = meas[i]
        gid = _v(m, "geometryId")
        vol[i], lay[i], mod[i] = gid.volume, gid.layer, gid.sensitive
        p = _v(m, "fullParameters")  # bound 6-vector: loc0, loc1 first
        g = surfaces[gid].localToGlobal(gctx, acts.Vector2(p[0], p[1]), acts.Vector3(0, 0, 1))
        xyz[i] = (g[0], g[1], g[2])
    simhits = list(wb["simhits"])
    simhit_of = np.full(n, -1, np.int64)
    for mi, hi in wb["msm"]:
        if simhit_of[mi] < 0:
            simhit_of[mi] = hi
    if (simhit_of < 0).any():
        raise InputError(f"ACTS event: measurement {int(np.flatnonzero(simhit_of < 0)[0])} has no sim hit")
    ids: dict[tuple, int] = {}

    def pid(barcode) -> int:
        key = (barcode.vertexPrimary, barcode.vertexSecondary, barcode.particle, barcode.generation,
               barcode.subParticle)
        return ids.setdefault(key, len(ids) + 1)

    truth_pid = np.empty(n, np.int64)
    tpos, tmom = np.empty((n, 3)), np.empty((n, 3))
    for i, hi in enumerate(simhit_of.tolist()):
        h = simhits[hi]
        truth_pid[i] = pid(_v(h, "particleId"))
        p4, m4 = _v(h, "fourPosition"), _v(h, "momentum4Before")
        tpos[i] = (p4[0], p4[1], p4[2])
        tmom[i] = (m4[0], m4[1], m4[2])
    prows = []
    for particle in wb["particles"]:
        initial = _v(particle, "initialState")
        pos, mom = _v(initial, "fourPosition"), _v(initial, "fourMomentum")  # (x, y, z, t), (px, py, pz, E)
        prows.append((pid(_v(initial, "particleId")), int(_v(initial, "pdg")), pos[0], pos[1], pos[2],
                      mom[0], mom[1], mom[2], int(round(_v(initial, "charge")))))
    track_of = np.full(n, -1, np.int64)
    for t, track in enumerate(wb["tracks"]):
        for state in _v(track, "trackStatesReversed"):  # tracks are not forward-linked
            if _v(state, "hasUncalibratedSourceLink") and _v(state, "typeFlags").isMeasurement:
                link = acts.examples.IndexSourceLink.fromSourceLink(_v(state, "uncalibratedSourceLink"))
                track_of[_v(link, "index")] = t
    return _assemble(vol, lay, mod, xyz, truth_pid, tpos, tmom, prows, track_of)


def _v(obj, name: str):
    """An attribute of a bound ACTS object: some bindings expose properties, others getters."""
    value = getattr(obj, name)
    return value() if callable(value) else value


def _assemble(vol, lay, mod, xyz, truth_pid, tpos, tmom, prows, track_of) -> ActsEvent:
    n = len(vol)
    hit_id = np.arange(1, n + 1, dtype=np.int64)
    hits = {"hit_id": hit_id, "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], "volume_id": vol.astype(np.int32),
            "layer_id": lay.astype(np.int32), "module_id": mod.astype(np.int32)}
    truth = {"hit_id": hit_id, "particle_id": truth_pid, "tx": tpos[:, 0], "ty": tpos[:, 1], "tz": tpos[:, 2],
             "tpx": tmom[:, 0], "tpy": tmom[:, 1], "tpz": tmom[:, 2]}
    p = np.array([r[2:8] for r in prows], dtype=np.float64).reshape(-1, 6)
    pids = np.array([r[0] for r in prows], dtype=np.int64)
    nhits = np.bincount(np.searchsorted(np.sort(pids), truth_pid[np.isin(truth_pid, pids)]), minlength=len(pids))
    nhits = nhits[np.argsort(np.argsort(pids))]
    particles = {"particle_id": pids, "particle_type": np.array([r[1] for r in prows], np.int32),
                 "vx": p[:, 0], "vy": p[:, 1], "vz": p[:, 2], "px": p[:, 3], "py": p[:, 4], "pz": p[:, 5],
                 "q": np.array([r[8] for r in prows], np.int32), "nhits": nhits.astype(np.int32)}
    return ActsEvent(hits, truth, particles, track_of)


def run_acts(n_events: int, n_particles: int, workdir: Path, seed: int = 42,
             max_seeds_per_spm: int = 3) -> tuple[dict, list[ActsEvent]]:
    """Simulate and reconstruct ``n_events`` events with ACTS on one thread.

    Pions (random charge), pT uniform in 0.5-10 GeV, |eta| < 2.5, all from a Gaussian vertex
    (sigma 0.0125 mm transverse, 55.5 mm along z). ``max_seeds_per_spm`` = 3: with 1 (ACTS's
    generic example) ~6% of the particles get no seed at 5,000 per event (score 0.934 instead of
    0.968 on one event), at the price of ~3x the CKF time. Returns the detectors.csv columns and the events
    with the ACTS track of every hit and the wall seconds of each ACTS reconstruction stage.
    """
    acts = _acts()
    from acts.examples.reconstruction import (AmbiguityResolutionConfig, CkfConfig, SeedFinderConfigArg,
                                              SeedFinderOptionsArg, SeedingAlgorithm, TrackSelectorConfig,
                                              addAmbiguityResolution, addCKFTracks, addSeeding)
    from acts.examples.simulation import (EtaConfig, MomentumConfig, ParticleConfig, ParticleSelectorConfig,
                                          PhiConfig, addDigiParticleSelection, addDigitization, addFatras,
                                          addParticleGun)

    u = acts.UnitConstants
    detector = acts.examples.GenericDetector()
    geometry = detector.trackingGeometry()
    gctx = acts.GeometryContext.dangerouslyDefaultConstruct()
    field_ = acts.ConstantBField(acts.Vector3(0, 0, BZ_TESLA * u.T))
    rnd = acts.examples.RandomNumbers(seed=seed)
    s = acts.examples.Sequencer(events=n_events, numThreads=1, outputDir=str(workdir), trackFpes=False,
                                logLevel=acts.logging.WARNING)
    stamps: dict[int, dict[str, float]] = {}
    exported: dict[int, ActsEvent] = {}
    vertex = acts.examples.GaussianVertexGenerator(mean=acts.Vector4(0, 0, 0, 0),
                                                   stddev=acts.Vector4(0.0125 * u.mm, 0.0125 * u.mm, 55.5 * u.mm, 0))
    addParticleGun(s, MomentumConfig(0.5 * u.GeV, 10.0 * u.GeV, transverse=True), EtaConfig(-2.5, 2.5, uniform=True),
                   PhiConfig(0.0, 360.0 * u.degree), ParticleConfig(n_particles, acts.PdgParticle.ePionPlus,
                                                                    randomizeCharge=True),
                   multiplicity=1, vtxGen=vertex, rnd=rnd)
    addFatras(s, geometry, field_, rnd=rnd)
    addDigitization(s, geometry, field_, digiConfigFile=write_digi_config(workdir / "digi-smearing.json"), rnd=rnd)
    addDigiParticleSelection(s, ParticleSelectorConfig())  # no cuts: truth bookkeeping for ACTS's matchers
    s.addAlgorithm(_clock_algorithm(acts, "start", stamps))
    addSeeding(s, geometry, field_, geoSelectionConfigFile=write_seed_selection(workdir / "seeding-layers.json"),
               seedingAlgorithm=SeedingAlgorithm.GridTriplet,
               seedFinderConfigArg=SeedFinderConfigArg(
                   r=(33 * u.mm, 200 * u.mm), deltaR=(1 * u.mm, 300 * u.mm), collisionRegion=(-250 * u.mm, 250 * u.mm),
                   z=(-2000 * u.mm, 2000 * u.mm), maxSeedsPerSpM=max_seeds_per_spm, sigmaScattering=5, radLengthPerSeed=0.1,
                   minPt=500 * u.MeV, impactMax=3 * u.mm),
               seedFinderOptionsArg=SeedFinderOptionsArg(bFieldInZ=BZ_TESLA * u.T, beamPos=(0.0, 0.0)),
               initialSigmas=[1 * u.mm, 1 * u.mm, 1 * u.degree, 1 * u.degree, 0 * u.e / u.GeV, 1 * u.ns],
               initialSigmaQoverPt=0.1 * u.e / u.GeV, initialSigmaPtRel=0.1,
               initialVarInflation=[1.0] * 6, particleHypothesis=acts.ParticleHypothesis.pion)
    s.addAlgorithm(_clock_algorithm(acts, "seeded", stamps))
    addCKFTracks(s, geometry, field_,
                 TrackSelectorConfig(pt=(0.5 * u.GeV, None), absEta=(None, 3.0), loc0=(-4.0 * u.mm, 4.0 * u.mm),
                                     nMeasurementsMin=7),
                 CkfConfig(chi2CutOffMeasurement=15.0, chi2CutOffOutlier=25.0, numMeasurementsCutOff=10,
                           seedDeduplication=True, stayOnSeed=True),
                 writeTrackSummary=False, writePerformance=False)
    s.addAlgorithm(_clock_algorithm(acts, "tracked", stamps))
    addAmbiguityResolution(s, AmbiguityResolutionConfig(maximumSharedHits=3, maximumIterations=1000000,
                                                        nMeasurementsMin=7),
                           writeTrackSummary=False, writePerformance=False)
    s.addAlgorithm(_clock_algorithm(acts, "resolved", stamps))
    s.addAlgorithm(_export_algorithm(acts, geometry, exported))
    s.run()
    events = []
    for i in sorted(exported):
        t = stamps[i]
        ev = exported[i]
        ev.stage_seconds = {"seeding": t["seeded"] - t["start"], "ckf": t["tracked"] - t["seeded"],
                            "ambiguity": t["resolved"] - t["tracked"], "total": t["resolved"] - t["start"]}
        events.append(ev)
    return geometry_columns(geometry, gctx), events


# -- trackcore on the same events -------------------------------------------------------------
def write_trackml(columns: dict, events: list[ActsEvent], folder: Path) -> Path:
    """Write ``detectors.csv`` and ``event<N>-{hits,truth,particles}.csv`` (truth weights: TrackML rule)."""
    from trackcore.event import Event
    from trackcore.event.io import write_event
    from trackcore.event.table import Table
    from trackcore.geometry.io import write_csv_columns
    from trackcore.metrics.weights import trackml_weights

    folder.mkdir(parents=True, exist_ok=True)
    write_csv_columns(folder / "detectors.csv", columns, int_columns=("volume_id", "layer_id", "module_id"))
    for i, ev in enumerate(events):
        particles = Table(ev.particles, name="particles")
        truth = Table(ev.truth, name="truth")
        truth["weight"] = trackml_weights(truth, particles)
        event = Event(Table(ev.hits, name="hits"), None, particles, truth, event_id=i).validate()
        write_event(event, folder)
    return folder / "detectors.csv"


@dataclass
class Comparison:
    """Per-event figures of both chains on one event."""

    hits: int
    acts_score: float
    acts_seconds: dict
    trackcore_score: float
    trackcore_seconds: float
    trackcore_stages: dict


def compare(n_events: int = 3, n_particles: int = 5000, workdir: Path | None = None,
            backend: str | None = None) -> list[Comparison]:
    """Run ACTS, write its events in TrackML format, reconstruct them with trackcore, score both."""
    from trackcore.event.io import read_event
    from trackcore.geometry.io import read_detector
    from trackcore.metrics import score_event
    from trackcore.reco.pipeline import reconstruct

    with tempfile.TemporaryDirectory(prefix="acts-compare-") as tmp:
        work = Path(workdir) if workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        columns, events = run_acts(n_events, n_particles, work)
        detector = read_detector(write_trackml(columns, events, work / "trackml"))
        out = []
        for i, ev in enumerate(events):
            event = read_event(work / "trackml" / f"event{i:09d}")
            # ACTS hits are written with hit_id = row + 1, so rows line up with the ACTS assignment.
            tid = ev.track_of_hit.copy()
            free = tid < 0
            tid[free] = tid.max() + 1 + np.arange(int(free.sum()))
            acts_score = score_event(event, event.hits["hit_id"], tid)
            # One worker thread, as the ACTS sequencer here: the comparison is per thread.
            reconstruct(event, detector, backend=backend, threads=1)  # warm-up: compiled geometry views are cached
            t0 = time.perf_counter()
            reco = reconstruct(event, detector, backend=backend, threads=1)
            seconds = time.perf_counter() - t0
            hit_id, track_id = reco.submission()
            out.append(Comparison(len(event.hits), acts_score, ev.stage_seconds, score_event(event, hit_id, track_id),
                                  seconds, dict(reco.timings)))
        return out


def table(rows: list[Comparison]) -> str:
    """Markdown table: one line per event and the mean."""
    lines = ["| event | hits | ACTS score | ACTS s/event (seeding / CKF / ambiguity) | trackcore score | "
             "trackcore s/event | score diff | speed-up |", "|---|---|---|---|---|---|---|---|"]

    def line(label, hits, a, at, seed, ckf, amb, t, tt):
        return (f"| {label} | {hits:.0f} | {a:.4f} | {at:.2f} ({seed:.2f} / {ckf:.2f} / {amb:.2f}) | {t:.4f} | "
                f"{tt:.2f} | {t - a:+.4f} | {at / tt:.1f}x |")

    for i, r in enumerate(rows):
        s = r.acts_seconds
        lines.append(line(i, r.hits, r.acts_score, s["total"], s["seeding"], s["ckf"], s["ambiguity"],
                          r.trackcore_score, r.trackcore_seconds))
    mean = {k: float(np.mean([r.acts_seconds[k] for r in rows])) for k in rows[0].acts_seconds}
    lines.append(line("mean", np.mean([r.hits for r in rows]), np.mean([r.acts_score for r in rows]), mean["total"],
                      mean["seeding"], mean["ckf"], mean["ambiguity"], np.mean([r.trackcore_score for r in rows]),
                      np.mean([r.trackcore_seconds for r in rows])))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=3)
    ap.add_argument("--particles", type=int, default=5000)
    ap.add_argument("--workdir", type=Path, default=None, help="keep the ACTS/TrackML files here")
    ap.add_argument("--backend", default=None)
    args = ap.parse_args()
    if os.environ.get("OMP_NUM_THREADS") != "1":
        print("note: OMP_NUM_THREADS is not 1; the comparison is meant for one thread")
    rows = compare(args.events, args.particles, args.workdir, args.backend)
    print(table(rows))
    stages = {k: float(np.mean([r.trackcore_stages.get(k, 0.0) for r in rows])) for k in rows[0].trackcore_stages}
    print("trackcore stages (mean s): " + ", ".join(f"{k} {v:.3f}" for k, v in stages.items()))


if __name__ == "__main__":
    main()
