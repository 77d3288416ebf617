"""Long fuzz run of every trackcore reader (atheris/libFuzzer when installed, else random mutation).

Usage:
    .venv/bin/python tests/reliability/scripts/fuzz_readers.py --seconds 300 [--engine atheris|random]
        [--out /tmp/trackcore-fuzz] [--targets hits.csv,detectors.csv]

An input is one selector byte (which target) followed by the file bytes; the seed corpus is the
valid files of every target. Any exception other than a TrackcoreError is a finding: its input is
saved under ``<out>/findings/<target>-<exception>-<line>.bin`` (first per signature) and fuzzing
goes on. Exceptions listed in ``reliability_fuzzlib.KNOWN_BUGS`` are counted as known. A JSON
summary (inputs, seconds, per-target counts, findings) is printed and written to ``<out>/summary.json``.
Reproduce a finding: ``--replay <file>``.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # reliability_fuzzlib


class Campaign:
    """Runs inputs against the targets and books the outcomes."""

    def __init__(self, fuzzlib, out: Path, names: list[str]):
        self.F, self.out, self.names = fuzzlib, out, names
        self.work = Path(tempfile.mkdtemp(prefix="fuzz-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
        self.seeds = fuzzlib.seed_files(out / "seeds")
        self.count: Counter = Counter()
        self.outcomes: Counter = Counter()
        self.findings: dict[str, dict] = {}
        (out / "findings").mkdir(parents=True, exist_ok=True)
        self.engine = "?"
        self.t0 = self.last_dump = time.monotonic()

    def summary(self) -> dict:
        """Counts so far; also written to <out>/summary.json (libFuzzer may end the process abruptly)."""
        s = {"engine": self.engine, "seconds": round(time.monotonic() - self.t0, 1),
             "inputs": sum(self.count.values()), "per_target": dict(sorted(self.count.items())),
             "outcomes": {f"{n}:{o}": k for (n, o), k in sorted(self.outcomes.items())}, "findings": self.findings}
        (self.out / "summary.json").write_text(json.dumps(s, indent=1))
        self.last_dump = time.monotonic()
        return s

    def run(self, data: bytes) -> None:
        if not data:
            return
        name = self.names[data[0] % len(self.names)]
        body = data[1:]
        self.count[name] += 1
        if time.monotonic() - self.last_dump > 2.0:
            self.summary()
        try:
            self.outcomes[(name, self.F.run_target(name, body, self.work, self.seeds))] += 1
        except Exception as exc:  # noqa: BLE001 - every non-TrackcoreError is a finding
            tb = traceback.extract_tb(exc.__traceback__)[-1]
            sig = f"{name}-{type(exc).__name__}-{Path(tb.filename).name}:{tb.lineno}"
            known = isinstance(exc, self.F.KNOWN_BUGS.get(name, ()))
            entry = self.findings.setdefault(sig, {"count": 0, "known": known, "message": str(exc)[:300],
                                                   "where": f"{tb.filename}:{tb.lineno}"})
            entry["count"] += 1
            if entry["count"] == 1:
                safe = "".join(c if c.isalnum() or c in "-_.:" else "_" for c in sig)
                (self.out / "findings" / f"{safe}.bin").write_bytes(data)
                print(f"finding: {sig} ({'known' if known else 'NEW'}): {str(exc)[:200]}", flush=True)

    def corpus(self) -> list[bytes]:
        return [bytes([i]) + self.seeds[self.F.TARGETS[n][1]] for i, n in enumerate(self.names)]


def _random_engine(c: Campaign, seconds: float, seed: int) -> None:
    rnd = random.Random(seed)
    corpus = c.corpus()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        base = rnd.choice(corpus)
        c.run(base[:1] + c.F.mutate(base[1:], rnd, rnd.randint(1, 8)))


def _atheris_engine(c: Campaign, seconds: float, seed: int) -> None:
    import atheris

    corpus_dir = c.out / "corpus"
    corpus_dir.mkdir(exist_ok=True)
    for i, data in enumerate(c.corpus()):
        (corpus_dir / f"seed{i}").write_bytes(data)
    atheris.Setup([sys.argv[0], f"-max_total_time={int(seconds)}", f"-seed={seed}", "-max_len=8192",
                   "-rss_limit_mb=4096", "-print_final_stats=1", str(corpus_dir)], c.run)
    atheris.Fuzz()  # libFuzzer exits the process at max_total_time; summary.json is kept current


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--engine", choices=["auto", "atheris", "random"], default="auto")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "trackcore-fuzz")
    ap.add_argument("--targets", help="comma-separated target names (default: all)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--replay", type=Path, help="run one saved input and show its traceback")
    args = ap.parse_args(argv)

    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401
            engine = "atheris"
        except ImportError:
            engine = "random"
    if engine == "atheris":
        import atheris

        with atheris.instrument_imports(include=["trackcore"]):
            import reliability_fuzzlib as F
    else:
        import reliability_fuzzlib as F

    names = args.targets.split(",") if args.targets else sorted(F.TARGETS)
    args.out.mkdir(parents=True, exist_ok=True)
    c = Campaign(F, args.out, names)
    if args.replay:
        data = args.replay.read_bytes()
        name = names[data[0] % len(names)]
        print(name, F.run_target(name, data[1:], c.work, c.seeds))
        return {}

    c.engine = engine
    c.t0 = time.monotonic()
    if engine == "atheris":
        _atheris_engine(c, args.seconds, args.seed)
    else:
        _random_engine(c, args.seconds, args.seed)
    summary = c.summary()
    print(json.dumps({k: summary[k] for k in ("engine", "seconds", "inputs", "findings")}, indent=1))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
