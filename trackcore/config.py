"""Run configuration as one TOML file: every pipeline parameter with its unit and default.

The file has a ``[run]`` table (detector, backend, output formats) and a ``[reconstruction]``
table with ``[reconstruction.seeding]``, ``[reconstruction.ckf]``, ``[reconstruction.collision_region]``,
``[reconstruction.hashing]``
and ``[[reconstruction.extra_passes]]``. Every key is optional; a missing key keeps the
pipeline's default (for seeding that is :func:`trackcore.reco.pipeline.default_seeding`, not the
bare ``SeedingConfig()``). TOML has no null: write ``"none"`` where a parameter may be None.

Parameters, their defaults and their documentation come from the dataclass fields and the
comments beside them, so :func:`dump_config` never drifts from the code. Units: mm, GeV, T, rad.

This module also sets up the library's ``logging`` for the command line (:func:`configure_logging`).
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import inspect
import io
import json
import logging
import math
import os
import re
import textwrap
import tokenize
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as a package
    import tomli as tomllib

from .errors import InputError
from .reco.ckf import CkfConfig
from .reco.collision_region import CollisionRegionConfig
from .reco.pipeline import ReconstructionConfig, default_ckf, default_seeding

__all__ = ["RunConfig", "Parameter", "parameters", "load_config", "config_from_dict", "config_to_dict",
           "dump_config", "save_config", "config_hash", "CONFIG_FILE", "OUTPUT_FORMATS", "configure_logging"]

#: Name of the configuration saved beside every output.
CONFIG_FILE = "config.toml"
OUTPUT_FORMATS = ("csv", "parquet", "root")
_UNITS = ("mm", "GeV", "T", "rad", "1/mm", "e/GeV", "s")
_UNIT_RE = re.compile(r"^(%s)(?:,\s*|\s+|$)" % "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True)))


@dataclass
class RunConfig:
    """Everything that decides a run's outputs."""

    reconstruction: ReconstructionConfig = field(default_factory=ReconstructionConfig)
    detector: str = "trackml"  # built-in detector name (trackml, generic) or a detectors.csv path
    backend: str = "auto"  # numpy, cpu, cupy, or auto (cpu when the compiled core is built)
    formats: tuple[str, ...] = ("csv",)  # output formats of tracks and submissions: csv, parquet, root
    #: magnetic field: constant (uniform 2 T, as simulated), trackml (the solenoid map of the TrackML
    #: challenge data, weaker in the endcaps) or a field-map file
    field: str = "constant"
    #: worker threads of the compiled seeding, CKF and transport per event (0: TRACKCORE_THREADS if set,
    #: else one per CPU; a Dask run gives each event one); the tracks do not depend on it
    threads: int = 0

    def __post_init__(self) -> None:
        from .threads import resolve_threads

        resolve_threads(self.threads)  # an InputError naming a bad value
        self.formats = tuple(self.formats)
        bad = [f for f in self.formats if f not in OUTPUT_FORMATS]
        if bad or not self.formats:
            raise InputError(f"run.formats must be a non-empty list of {', '.join(OUTPUT_FORMATS)}; got {list(self.formats)}")
        from .geometry.field import FIELD_NAMES

        if self.field not in FIELD_NAMES and not Path(self.field).is_file():
            raise InputError(f"run.field must be one of {', '.join(FIELD_NAMES)} or a field-map file; got {self.field!r}")

    @property
    def backend_name(self) -> str | None:
        """The backend for :func:`trackcore.get_backend` (None: the default)."""
        return None if self.backend == "auto" else self.backend


# Units and descriptions where the source comments give none or only make sense beside the code.
_EXTRA_DOC = {
    ("ckf", "mass"): ("GeV", "mass hypothesis for material effects (pion)"),
    ("ckf", "max_step"): ("mm", "longest propagation step"),
    ("ckf", "max_turn"): ("rad", "largest helix turning angle per step"),
    ("ckf", "max_path"): ("mm", "path length after which a trajectory stops"),
    ("ckf", "sigma_phi"): ("rad", "seed covariance: phi error"),
    ("ckf", "sigma_theta"): ("rad", "seed covariance: theta error"),
    ("ckf", "sigma_qop_rel"): ("", "seed covariance: relative q/p error"),
    ("seeding", "r_max"): ("mm", "space points at larger radius are ignored"),
    ("seeding", "min_pt"): ("GeV", "lowest seed pT (lower: softer particles seeded, more time)"),
    ("seeding", "delta_r_max"): ("mm", "largest radial distance middle - bottom and top - middle"),
    ("seeding", "z0_max"): ("mm", "collision region upper end: doublet line at r = 0"),
    ("hashing", "method"): ("", "faiss_exact, faiss_ivf, faiss_hnsw or lsh"),
    ("seeding", "max_seeds_per_middle"): ("", "best seeds kept per middle space point"),
}


@dataclass(frozen=True)
class Parameter:
    """One configurable value: where it lives, its type, unit, default and meaning."""

    section: str  # "run", "reconstruction", "reconstruction.seeding", ...
    name: str
    type: str
    unit: str
    default: Any
    doc: str


def _field_comments(cls: type) -> dict[str, str]:
    """Comment of each field of ``cls``: the one on its line, else the comment lines just above it."""
    src = textwrap.dedent(inspect.getsource(cls))
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = re.sub(r"^#:?\s*", "", tok.string).strip()
    lines = src.splitlines()
    out = {}
    for node in ast.parse(src).body[0].body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            continue
        text = comments.get(node.end_lineno) or comments.get(node.lineno)
        if text is None:
            above, ln = [], node.lineno - 1
            while ln in comments and lines[ln - 1].lstrip().startswith("#"):
                above.insert(0, comments[ln])
                ln -= 1
            text = " ".join(above)
        out[node.target.id] = text
    return out


def _sections() -> list[tuple[str, str, type, Any]]:
    """(section, short name, dataclass, default instance) of every table of the file."""
    from .reco.hashing import HashingConfig

    return [("run", "run", RunConfig, RunConfig()),
            ("reconstruction", "reconstruction", ReconstructionConfig, ReconstructionConfig()),
            ("reconstruction.seeding", "seeding", type(default_seeding()), default_seeding()),
            ("reconstruction.ckf", "ckf", CkfConfig, default_ckf()),
            ("reconstruction.collision_region", "collision_region", CollisionRegionConfig, CollisionRegionConfig()),
            ("reconstruction.hashing", "hashing", HashingConfig, HashingConfig())]


_NESTED = {"reconstruction", "seeding", "ckf", "collision_region", "hashing"}  # fields that are tables, not values


@functools.lru_cache(maxsize=1)
def parameters() -> tuple[Parameter, ...]:
    """Every parameter of the file, in file order, with the pipeline's default value."""
    out = []
    for section, short, cls, default in _sections():
        docs = _field_comments(cls)
        for f in fields(cls):
            if f.name in _NESTED:  # sub-tables, and HashingConfig.seeding (the pipeline passes its own)
                continue
            text = docs.get(f.name, "")
            m = _UNIT_RE.match(text)
            unit, text = (m.group(1), text[m.end():]) if m else ("", text)
            if (short, f.name) in _EXTRA_DOC:
                unit, text = _EXTRA_DOC[(short, f.name)]
            out.append(Parameter(section, f.name, str(f.type), unit, getattr(default, f.name), text.strip()))
    return tuple(out)


# -- TOML writing ------------------------------------------------------------------------------
def _toml_value(value: Any) -> str:
    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise InputError(f"cannot write {type(value).__name__} value {value!r} to TOML")


def config_to_dict(config: RunConfig | ReconstructionConfig | None = None) -> dict:
    """The configuration as nested plain data (the TOML file's content), defaults filled in."""
    from .reco.hashing import HashingConfig

    run = config if isinstance(config, RunConfig) else RunConfig(reconstruction=config or ReconstructionConfig())
    reco = run.reconstruction
    objs = {"run": run, "reconstruction": reco, "reconstruction.seeding": reco.seeding or default_seeding(),
            "reconstruction.ckf": reco.ckf, "reconstruction.hashing": reco.hashing or HashingConfig(),
            "reconstruction.collision_region": reco.collision_region or CollisionRegionConfig(enabled=False)}
    out: dict[str, dict] = {}
    for p in parameters():
        value = getattr(objs[p.section], p.name)
        if p.name == "extra_passes":
            value = [dict(v) for v in value]
        elif isinstance(value, tuple):
            value = list(value)
        out.setdefault(p.section, {})[p.name] = value
    return {"run": out["run"], "reconstruction": {**out["reconstruction"], "seeding": out["reconstruction.seeding"],
                                                  "ckf": out["reconstruction.ckf"],
                                                  "collision_region": out["reconstruction.collision_region"],
                                                  "hashing": out["reconstruction.hashing"]}}


def dump_config(config: RunConfig | ReconstructionConfig | None = None, *, comments: bool = True) -> str:
    """The configuration as TOML; with ``comments``, each key is preceded by its unit, meaning and default."""
    data = config_to_dict(config)
    lines = ["# trackcore run configuration. Units: mm, GeV, T (field), rad. Keys left out keep their defaults;",
             '# write "none" where a parameter may be None.']
    current = None
    for p in parameters():
        if p.section != current:
            current = p.section
            lines += ["", f"[{p.section}]"]
        table = data
        for part in p.section.split("."):
            table = table[part]
        if p.name == "extra_passes":  # an array of tables, written after everything else
            continue
        if comments:
            unit = f"[{p.unit}] " if p.unit else ""
            default = _toml_value(list(p.default) if isinstance(p.default, tuple) else p.default)
            lines.append(f"# {unit}{p.doc} (default {default})".replace("  ", " "))
        lines.append(f"{p.name} = {_toml_value(table[p.name])}")
    passes = data["reconstruction"]["extra_passes"]
    if comments:
        doc = next(p.doc for p in parameters() if p.name == "extra_passes")
        lines += ["", f"# {doc}", "# (default: the passes below, low-pT, displaced and strip-only; extra_passes = [] "
                  "turns them off)"]
    if passes:
        for entry in passes:
            lines += ["[[reconstruction.extra_passes]]"] + [f"{k} = {_toml_value(v)}" for k, v in entry.items()]
    else:
        lines.insert(lines.index("[reconstruction]") + 1, "extra_passes = []")
    return "\n".join(lines) + "\n"


def save_config(config: RunConfig | ReconstructionConfig | None, folder: str | os.PathLike) -> Path:
    """Write ``folder/config.toml`` atomically (the record of how the outputs there were made)."""
    from .event.io.atomic import write_bytes

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_bytes(folder / CONFIG_FILE, dump_config(config).encode())
    return folder / CONFIG_FILE


def config_hash(config: RunConfig | ReconstructionConfig | None) -> str:
    """SHA-256 of what decides the outputs' content (reconstruction and detector; not backend or formats)."""
    data = config_to_dict(config)
    key = {"detector": data["run"]["detector"], "reconstruction": data["reconstruction"]}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=repr).encode()).hexdigest()


# -- TOML reading ------------------------------------------------------------------------------
def load_config(path: str | os.PathLike) -> RunConfig:
    """Read a TOML run configuration; any unknown key or wrong type raises :class:`InputError`."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read configuration {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    return config_from_dict(data, source=str(path))


def _split_top_level(types: str) -> list[str]:
    """"int, tuple[int, int]" -> ["int", "tuple[int, int]"]: the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(types):
        depth += (c == "[") - (c == "]")
        if c == "," and depth == 0:
            parts.append(types[start:i].strip())
            start = i + 1
    parts.append(types[start:].strip())
    return parts


def _coerce(value: Any, ptype: str, where: str) -> Any:
    """``value`` checked against the annotation ``ptype`` (floats accept integers; lists become tuples)."""
    optional = "None" in ptype
    base = ptype.replace("| None", "").strip()
    if optional and isinstance(value, str) and value.lower() == "none":
        return None
    if base.startswith("tuple["):
        if not isinstance(value, list):
            raise InputError(f"{where}: expected a list, got {value!r}")
        inner = _split_top_level(base[6:-1])
        if inner[-1] == "...":
            return tuple(_coerce(v, inner[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(inner):
            raise InputError(f"{where}: expected {len(inner)} values, got {len(value)}")
        return tuple(_coerce(v, t, f"{where}[{i}]") for i, (v, t) in enumerate(zip(value, inner)))
    ok = {"float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
          "bool": lambda v: isinstance(v, bool), "str": lambda v: isinstance(v, str),
          "dict": lambda v: isinstance(v, dict)}.get(base)
    if ok is None:
        return value
    if not ok(value):
        extra = ' or "none"' if optional else ""
        raise InputError(f"{where}: expected {base}{extra}, got {type(value).__name__} {value!r}")
    return float(value) if base == "float" else value


def _table(data: Any, section: str, source: str, allowed: dict[str, Parameter], nested: tuple[str, ...] = ()) -> dict:
    if not isinstance(data, dict):
        raise InputError(f"{source}: [{section}] must be a table, got {data!r}")
    unknown = sorted(set(data) - set(allowed) - set(nested))
    if unknown:
        raise InputError(f"{source}: unknown key(s) {unknown} in [{section}] (known: {', '.join(allowed)})")
    return {k: _coerce(v, allowed[k].type, f"{source}: {section}.{k}") for k, v in data.items() if k in allowed}


def _params(section: str) -> dict[str, Parameter]:
    return {p.name: p for p in parameters() if p.section == section}


def _extra_pass(entry: Any, i: int, source: str) -> dict:
    where = f"reconstruction.extra_passes[{i}]"
    values = _table(entry, where, source, _params("reconstruction.seeding"), nested=("ckf",))
    if "ckf" in entry:
        values["ckf"] = _table(entry["ckf"], f"{where}.ckf", source, _params("reconstruction.ckf"))
    return values


def config_from_dict(data: dict, source: str = "configuration") -> RunConfig:
    """A :class:`RunConfig` from the TOML file's content; errors name ``source`` and the key."""
    from .reco.hashing import HashingConfig

    unknown = sorted(set(data) - {"run", "reconstruction"})
    if unknown:
        raise InputError(f"{source}: unknown table(s) {unknown} (known: run, reconstruction)")
    run = _table(data.get("run", {}), "run", source, _params("run"))
    reco_data = data.get("reconstruction", {})
    reco = _table(reco_data, "reconstruction", source, _params("reconstruction"),
                  nested=("seeding", "ckf", "collision_region", "hashing"))
    if "extra_passes" in reco_data:
        if not isinstance(reco_data["extra_passes"], list):
            raise InputError(f"{source}: reconstruction.extra_passes must be an array of tables")
        reco["extra_passes"] = tuple(_extra_pass(e, i, source) for i, e in enumerate(reco_data["extra_passes"]))
    try:
        seeding = dataclasses.replace(default_seeding(), **_table(reco_data.get("seeding", {}),
                                                                  "reconstruction.seeding", source,
                                                                  _params("reconstruction.seeding")))
        ckf = dataclasses.replace(default_ckf(), **_table(reco_data.get("ckf", {}), "reconstruction.ckf", source,
                                                          _params("reconstruction.ckf")))
        hashing = None
        if "hashing" in reco_data:
            hashing = HashingConfig(**_table(reco_data["hashing"], "reconstruction.hashing", source,
                                             _params("reconstruction.hashing")))
        region = CollisionRegionConfig(**_table(reco_data.get("collision_region", {}),
                                                "reconstruction.collision_region", source,
                                                _params("reconstruction.collision_region")))
        config = ReconstructionConfig(seeding=seeding, ckf=ckf, collision_region=region, hashing=hashing, **reco)
        if config.seeding_strategy not in ("grid", "hashing"):
            raise InputError(f"reconstruction.seeding_strategy must be 'grid' or 'hashing', got {config.seeding_strategy!r}")
        return RunConfig(reconstruction=config, **run)
    except InputError as exc:
        msg = str(exc)
        raise InputError(msg if msg.startswith(source) else f"{source}: {msg}") from None


# -- logging -----------------------------------------------------------------------------------
class _TqdmHandler(logging.Handler):
    """Writes log lines to the current ``sys.stderr`` through ``tqdm.write`` (progress bars stay intact)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            import sys

            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never raise into the caller
            self.handleError(record)


def configure_logging(verbosity: int = 0) -> int:
    """Set up the ``trackcore`` logger for the command line: -1 quiet (warnings), 0 info, 1 debug.

    Returns the level set. Library code only logs; it never configures handlers itself.
    """
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    logger = logging.getLogger("trackcore")
    for h in [h for h in logger.handlers if isinstance(h, _TqdmHandler)]:
        logger.removeHandler(h)
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbosity > 0
                                           else "%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return level
