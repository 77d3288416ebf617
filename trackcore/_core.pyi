# Type stub of the private compiled module. Generated from the built module with pybind11-stubgen 3.0.0
# (`pybind11-stubgen trackcore._core -o .` from the repository root, then this header);
# tests/test_core_stub.py checks that it names the module's functions and their parameters.
"""
trackcore compiled core (private; use the trackcore Python API)
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['ABI_VERSION', 'Geometry', 'HitArrays', 'ckf', 'cluster_cells', 'digitize_segments', 'fastsim_conditions', 'fastsim_dense', 'fastsim_dense_isa', 'fastsim_generate', 'fastsim_render', 'find_seeds', 'fit_tracks', 'float_repr', 'format_csv_rows', 'global_to_local', 'local_to_global', 'lsh_keys', 'lsh_knn', 'seed_buckets', 'seeding_grid', 'transport', 'transport_jacobian']
class Geometry:
    """
    Modules and per-layer lookup grids (private).
    """
    def __init__(self, centres: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], rotations: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], half_thickness: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], min_hu: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], max_hu: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], hv: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], module_layer: typing.Annotated[numpy.typing.ArrayLike, numpy.int32], layer_kind: typing.Annotated[numpy.typing.ArrayLike, numpy.int32]) -> None:
        ...
    def candidates(self, arg0: typing.SupportsInt | typing.SupportsIndex, arg1: typing.SupportsFloat | typing.SupportsIndex, arg2: typing.SupportsFloat | typing.SupportsIndex, arg3: typing.SupportsFloat | typing.SupportsIndex, arg4: typing.SupportsFloat | typing.SupportsIndex) -> list[int]:
        ...
    @property
    def n_modules(self) -> int:
        ...
    @property
    def world_r(self) -> float:
        ...
    @property
    def world_z(self) -> float:
        ...
class HitArrays:
    """
    Hits for the tracking kernels (private).
    """
    def __init__(self, module: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], u: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], v: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], var_u: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], var_v: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], xyz: typing.Annotated[numpy.typing.ArrayLike, numpy.float64]) -> None:
        ...
def ckf(geometry: Geometry, hits: HitArrays, seeds: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], layer_x0: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], bz: typing.SupportsFloat | typing.SupportsIndex, field_map: typing.Any, settings: dict) -> dict:
    """
    Combinatorial Kalman filter from seeds + ambiguity resolution + backward filter to the perigee.
    """
def cluster_cells(module: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], ch0: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], ch1: typing.Annotated[numpy.typing.ArrayLike, numpy.int64]) -> numpy.typing.NDArray[numpy.int64]:
    """
    Cluster label (8-connectivity within a module) of cells sorted by (module, ch0, ch1); clusters are
    numbered 0..K-1 in the order of their first cell.
    """
def digitize_segments(module_index: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], segments: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], charge: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], shapes: typing.Annotated[numpy.typing.ArrayLike, numpy.float64]) -> tuple:
    """
    Share each crossing's charge over the cells its projected segment (u0, v0, u1, v1; mm) crosses.
    shapes: (n_modules, 5) min_hu, max_hu, hv, pitch_u, pitch_v. Returns (crossing, ch0, ch1, charge),
    one row per (crossing, cell) piece in the order of traversal.
    """
def fastsim_conditions(module_index: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], segments: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], edep: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], momentum: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], modules: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], electrons_per_gev: typing.SupportsFloat | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
    """
    (N, 14) float32 generator conditions of N crossings (plugins/fastsim_gan). segments: (N, 4) local
    u0, v0, u1, v1 (mm); edep (GeV); momentum (N, 3) GeV; modules: (n_modules, 9) max_hu, hv, pitch_u,
    pitch_v (mm), n_u, n_v, binary, class, threshold (electrons).
    """
def fastsim_dense(x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], w: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], b: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], row_bias: typing.Annotated[numpy.typing.ArrayLike, numpy.float32] | None = None, act: bool = False, leak: typing.SupportsFloat | typing.SupportsIndex = 0.20000000298023224, isa: typing.SupportsInt | typing.SupportsIndex = -1) -> numpy.typing.NDArray[numpy.float32]:
    """
    One layer of the fastsim networks, x (R, I) @ w (I, O) + b (+ row_bias (R, O)), LeakyReLU(leak) when
    act, with the products of instruction set isa (0 portable, 1 AVX2/FMA, 2 AVX-512; -1 the best this
    CPU has; more than it has is a ValueError). For tests of every code path.
    """
def fastsim_dense_isa() -> int:
    """
    The best instruction set of fastsim_dense on this CPU (0, 1, 2).
    """
def fastsim_generate(module_index: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], segments: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], edep: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], momentum: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], modules: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], electrons_per_gev: typing.SupportsFloat | typing.SupportsIndex, value_per_electron: typing.SupportsFloat | typing.SupportsIndex, class_w: list, class_b: list, embed: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], gen_w: list, gen_b: list, classes: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], seed: typing.SupportsInt | typing.SupportsIndex, leak: typing.SupportsFloat | typing.SupportsIndex, *, centres: typing.Annotated[numpy.typing.ArrayLike, numpy.float64] | None = None, rotations: typing.Annotated[numpy.typing.ArrayLike, numpy.float64] | None = None, first_hit_id: typing.SupportsInt | typing.SupportsIndex = 1, observables: bool = True) -> tuple:
    """
    fastsim_conditions -> generator (classifier of the integer observables, then the GAN generator;
    plugins/fastsim_gan/model.py, normalisation folded into the float32 weights) -> fastsim_render in
    one call. Noise: counter based from seed (model.hash_uniforms). Returns fastsim_render's tuple,
    the (N, 6) float32 observables (None with observables=False), and with the module frames centres (M, 3) and rotations (M, 3, 3)
    given, each cluster's global position (K, 3) and each cell's hit id (first_hit_id + cluster rank),
    else None twice.
    """
def fastsim_render(module_index: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], segments: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], electrons: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], obs: numpy.ndarray, modules: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], value_per_electron: typing.SupportsFloat | typing.SupportsIndex) -> tuple:
    """
    One staircase cluster per crossing from generated observables obs (N, 6; float32 or float64; integer
    ones rounded; column 3 unused: the caller folds it into electrons, the charge per cluster).
    Returns (cluster, size, ch0, ch1, value, charge, local): crossing row and cell count of
    each cluster (crossing order; clusters without cells omitted), its cells (int32 channels, value in
    MIP-equivalent mm, 1 for binary), charge (electrons) and (K, 2) value-weighted centroid (mm).
    """
def find_seeds(x: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], y: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], z: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], r: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], phi: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], layer: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], params: dict, bz: typing.SupportsFloat | typing.SupportsIndex | None = None, middle: typing.Annotated[numpy.typing.ArrayLike, numpy.bool] | None = None) -> tuple:
    """
    Triplet seeds: (hits (N, 3) int64 bottom/middle/top input indices, weight), best first; given bz (T) also (N, 7) float64 pt, charge, phi, theta, z0, d0, cot theta. middle: N bools, the points that may be a seed's middle (None: all).
    """
def fit_tracks(geometry: Geometry, hits: HitArrays, offsets: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], hit_index: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], layer_x0: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], bz: typing.SupportsFloat | typing.SupportsIndex, field_map: typing.Any, settings: dict) -> dict:
    """
    Kalman fit (forward + backward filter) of given hit sequences, perigee parameters and covariance.
    """
def float_repr(x: typing.SupportsFloat | typing.SupportsIndex) -> str:
    """
    Python's repr of a float, as the compiled CSV writer makes it (for tests).
    """
def format_csv_rows(columns: list) -> bytes:
    """
    CSV rows (bytes, one line per row, no header) of float64 columns (as Python's repr) and int64 columns.
    """
def global_to_local(centres: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], rotations: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], module_index: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], points: typing.Annotated[numpy.typing.ArrayLike, numpy.float64]) -> numpy.typing.NDArray[numpy.float64]:
    """
    Global (N,3) points to each module's local (u, v, w) frame.
    """
def local_to_global(centres: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], rotations: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], module_index: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], points: typing.Annotated[numpy.typing.ArrayLike, numpy.float64]) -> numpy.typing.NDArray[numpy.float64]:
    """
    Local (u, v, w) points of each module to global (x, y, z).
    """
def lsh_keys(features: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], projections: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], offsets: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], width: typing.SupportsFloat | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.uint64]:
    """
    LSH keys (n_tables, n) uint64 of each point.
    """
def lsh_knn(features: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], query: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], projections: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], offsets: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], width: typing.SupportsFloat | typing.SupportsIndex, k: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.int64]:
    """
    k nearest points of each query among those sharing an LSH key in any table: (n_query, k) int64, -1 pads.
    """
def seed_buckets(x: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], y: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], z: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], r: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], phi: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], layer: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], members: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], params: dict) -> tuple:
    """
    Triplet seeds inside each bucket (rows of members, -1 pads), deduplicated: (hits (N, 3), weight).
    """
def seeding_grid(phi: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], z: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], r: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], params: dict) -> tuple:
    """
    Counting sort of space points into (phi, z) cells, each cell by r: (order, cell offsets).
    """
def transport(geometry: Geometry, vertex: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], momentum: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], charge: typing.Annotated[numpy.typing.ArrayLike, numpy.int32], mass: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], layer_x0: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], bz: typing.SupportsFloat | typing.SupportsIndex = 2.0, field_map: typing.Any = None, seed: typing.SupportsInt | typing.SupportsIndex = 0, max_step: typing.SupportsFloat | typing.SupportsIndex = 50.0, max_path: typing.SupportsFloat | typing.SupportsIndex = 10000.0, max_crossings: typing.SupportsInt | typing.SupportsIndex = 60, min_p: typing.SupportsFloat | typing.SupportsIndex = 0.05, multiple_scattering: bool = True, energy_loss: bool = True, use_rk: bool = False, loop_fraction: typing.SupportsFloat | typing.SupportsIndex = 0.5, threads: typing.SupportsInt | typing.SupportsIndex = 1) -> dict:
    """
    Transport particles through the geometry; returns their sensitive-module crossings in path order. threads: worker threads (0: one per hardware thread); the crossings do not depend on it.
    """
def transport_jacobian(geometry: Geometry, from_module: typing.SupportsInt | typing.SupportsIndex, params: typing.Annotated[collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], "FixedSize(5)"], to_module: typing.SupportsInt | typing.SupportsIndex, direction: typing.SupportsInt | typing.SupportsIndex, bz: typing.SupportsFloat | typing.SupportsIndex, numeric: bool) -> tuple[typing.Annotated[list[float], "FixedSize(5)"], float, numpy.typing.NDArray[numpy.float64]]:
    """
    Bound parameters on to_module, signed path and the 5x5 transport Jacobian (for tests).
    """
ABI_VERSION: int = 1
