"""TrackML column names and dtypes (units: mm, GeV, elementary charge)."""
import numpy as np

HITS = {"hit_id": np.int64, "x": np.float64, "y": np.float64, "z": np.float64,
        "volume_id": np.int32, "layer_id": np.int32, "module_id": np.int32}
CELLS = {"hit_id": np.int64, "ch0": np.int32, "ch1": np.int32, "value": np.float64}
PARTICLES = {"particle_id": np.int64, "particle_type": np.int32, "vx": np.float64, "vy": np.float64,
             "vz": np.float64, "px": np.float64, "py": np.float64, "pz": np.float64, "q": np.int32,
             "nhits": np.int32}
#: ``particle_type`` is absent from the Kaggle accuracy-phase files.
PARTICLES_OPTIONAL = ("particle_type",)
TRUTH = {"hit_id": np.int64, "particle_id": np.int64, "tx": np.float64, "ty": np.float64, "tz": np.float64,
         "tpx": np.float64, "tpy": np.float64, "tpz": np.float64, "weight": np.float64}
#: A reconstruction output: every hit at most once.
SUBMISSION = {"hit_id": np.int64, "track_id": np.int64}

SCHEMAS = {"hits": HITS, "cells": CELLS, "particles": PARTICLES, "truth": TRUTH}
