"""Many events in parallel with Dask: one task per event, results gathered per event.

:func:`run_dataset` reconstructs every event of a folder, a zip or one event path on

- a Dask cluster given as a ``dask.distributed.Client`` (or a scheduler address),
- a ``LocalCluster`` it starts itself (processes, one thread each, ``workers`` of them; the
  default when neither a client nor ``workers=0`` is given),
- or this process (``workers=0``, no Dask), the reference the parallel runs must equal.

Workers read their event from ``source`` and write its outputs to ``output`` themselves, so both
must be paths every worker sees (a shared filesystem on a real cluster). Per event the outputs
(:mod:`trackcore.output`) and ``<event>-result.json`` are written atomically as one group, the
result file last; an event counts as done when its result file names the same configuration
hash and all its output files exist, and a re-run skips it. A failing event is reported with
its name and the error; the other events finish. The configuration is saved as
``output/config.toml``.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import re
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .config import RunConfig, config_hash, load_config, save_config
from .errors import InputError
from .reco.pipeline import ReconstructionConfig

__all__ = ["run_dataset", "DatasetRun", "EventOutcome", "RESULT_SUFFIX", "list_event_sources", "read_results"]

log = logging.getLogger(__name__)

#: Per-event record of a finished event (``<event>-result.json``).
RESULT_SUFFIX = "-result.json"
_EVENT_NAME = re.compile(r"^(event\d+)")


@dataclass
class EventOutcome:
    """What became of one event: ``status`` is "done", "skipped" (outputs already there) or "failed"."""

    event: str
    status: str
    result: Any = None  # trackcore.api.EventResult for done and skipped events
    error: str | None = None  # "<ExceptionType>: message" of a failed event
    seconds: float = 0.0  # wall time of the task: read, reconstruct, write (s)
    worker: str | None = None


@dataclass
class DatasetRun:
    """The per-event outcomes of a :func:`run_dataset` call, in event order."""

    output: Path
    outcomes: list[EventOutcome] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the whole run, cluster start included (s)
    workers: int = 0  # Dask workers used (0: this process)

    def _with(self, status: str) -> list[EventOutcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def done(self) -> list[EventOutcome]:
        return self._with("done")

    @property
    def skipped(self) -> list[EventOutcome]:
        return self._with("skipped")

    @property
    def failed(self) -> list[EventOutcome]:
        return self._with("failed")

    @property
    def results(self):
        """``EventResult`` of every done or skipped event."""
        return [o.result for o in self.outcomes if o.result is not None]

    def summary(self) -> str:
        rate = f", {len(self.done) / self.seconds:.2f} events/s" if self.done and self.seconds > 0 else ""
        return (f"{len(self.outcomes)} events: {len(self.done)} reconstructed, {len(self.skipped)} skipped "
                f"(already done), {len(self.failed)} failed in {self.seconds:.1f} s on "
                f"{self.workers or 'no'} Dask worker(s){rate}")


def list_event_sources(source: str | os.PathLike) -> list[tuple[str, str | None, str]]:
    """(path, event argument for ``read_event`` or None, event name) of every event in ``source``."""
    from .event.io import list_events

    path = Path(source)
    if path.is_dir() or path.suffix.lower() == ".zip":
        return [(str(path), name, name) for name in list_events(path)]
    m = _EVENT_NAME.match(path.name)
    if not m:
        raise InputError(f"{path}: not a dataset folder, a .zip or an event (event000000001[-hits.csv])")
    return [(str(path), None, m.group(1))]


# -- worker side ------------------------------------------------------------------------------
_DETECTORS: dict[str, Any] = {}
_FIELDS: dict[str, Any] = {}
_PLUGIN_MANAGERS: dict[bool, Any] = {}


def _field(spec: str):
    """The run's magnetic field, built once per process (a field map takes a moment)."""
    if spec not in _FIELDS:
        from .geometry.field import field_from_spec

        _FIELDS[spec] = field_from_spec(spec)
    return _FIELDS[spec]


def _detector(spec):
    """A detector per worker process: loaded once per spec, or the (scattered) object itself."""
    if not isinstance(spec, str):
        return spec
    if spec not in _DETECTORS:
        from .geometry.io import load_detector

        _DETECTORS[spec] = load_detector(spec)
    return _DETECTORS[spec]


def _plugin_manager(plugins):
    if not plugins:
        return None
    if plugins is not True:  # a plugin manager given by the caller (runs in this process only)
        return plugins
    if True not in _PLUGIN_MANAGERS:
        from .plugins import get_plugin_manager

        _PLUGIN_MANAGERS[True] = get_plugin_manager()
    return _PLUGIN_MANAGERS[True]


def result_path(output: Path, name: str) -> Path:
    return Path(output) / f"{name}{RESULT_SUFFIX}"


def _process_event(path: str, event: str | None, name: str, detector, run: RunConfig, output: str,
                   chash: str, plugins) -> EventOutcome:
    """Read, reconstruct and write one event; never raises (a failure is an outcome)."""
    from .api import reconstruct_event
    from .event.io import read_event
    from .output import write_outputs

    t0 = time.perf_counter()
    worker = f"pid {os.getpid()}"
    out = Path(output)
    try:
        ev = read_event(path, event=event) if event is not None else read_event(path)
        reco, result = reconstruct_event(ev, _detector(detector), None, backend=run.backend_name,
                                         plugin_manager=_plugin_manager(plugins), config=run.reconstruction,
                                         field=_field(run.field), threads=run.threads)
        hit_id, track_id = reco.submission()
        record = {"event": name, "config_sha256": chash, "formats": list(run.formats), "result": asdict(result)}
        marker = {result_path(out, name): json.dumps(record, indent=1, default=float).encode()}
        write_outputs(out, name, reco.tracks, hit_id, track_id, run.formats, extra=marker)
        return EventOutcome(name, "done", result, seconds=time.perf_counter() - t0, worker=worker)
    except Exception as exc:  # one bad event must not stop the others: report it with its name
        result_path(out, name).unlink(missing_ok=True)  # stale results of an older run are not "done"
        detail = traceback.format_exc(limit=-3)
        log.debug("event %s failed:\n%s", name, detail)
        return EventOutcome(name, "failed", error=f"{type(exc).__name__}: {exc}",
                            seconds=time.perf_counter() - t0, worker=worker)


# -- client side ------------------------------------------------------------------------------
def read_results(output: str | os.PathLike, name: str | None = None) -> list[dict]:
    """The ``<event>-result.json`` records in ``output`` (one event's, or all, by name)."""
    output = Path(output)
    paths = [result_path(output, name)] if name else sorted(output.glob(f"event*{RESULT_SUFFIX}"))
    out = []
    for p in paths:
        try:
            out.append(json.loads(p.read_text()))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            raise InputError(f"{p}: unreadable result record ({exc})") from None
    return out


def _already_done(output: Path, name: str, run: RunConfig, chash: str):
    """The saved EventResult when the event's outputs for this configuration all exist, else None."""
    from .api import EventResult
    from .output import output_paths

    path = result_path(output, name)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        result = EventResult(**record["result"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a damaged record: do the event again
    if record.get("config_sha256") != chash:
        return None
    if not all(p.is_file() for p in output_paths(output, name, run.formats)):
        return None
    return result


def _run_config(config, detector) -> tuple[RunConfig, Any]:
    if config is None:
        run = RunConfig()
    elif isinstance(config, RunConfig):
        run = copy.deepcopy(config)
    elif isinstance(config, ReconstructionConfig):
        run = RunConfig(reconstruction=config)
    elif isinstance(config, (str, os.PathLike)):
        run = load_config(config)
    else:
        raise InputError(f"config must be a RunConfig, a ReconstructionConfig or a TOML path, got {type(config).__name__}")
    if detector is None:
        return run, run.detector
    if isinstance(detector, (str, os.PathLike)):
        run.detector = str(detector)
        return run, str(detector)
    run.detector = getattr(detector, "name", "detector")
    # The compiled geometry cached on a Detector cannot be pickled; workers build their own.
    return run, detector.without_views()


def run_dataset(source: str | os.PathLike, detector=None, output: str | os.PathLike = "reco", client=None,
                config=None, *, workers: int | None = None, scheduler: str | None = None,
                overwrite: bool = False, plugins=True, progress: bool = False) -> DatasetRun:
    """Reconstruct every event of ``source`` into ``output``, in parallel with Dask.

    ``detector`` is a built-in name, a ``detectors.csv`` path or a :class:`Detector` (default: the
    configuration's, ``"trackml"``). ``config`` is a :class:`RunConfig`, a
    :class:`ReconstructionConfig` or a TOML path (:mod:`trackcore.config`). Runs on ``client``,
    else on the scheduler at ``scheduler``, else in this process when ``workers == 0``, else on a
    new ``LocalCluster`` of ``workers`` processes (default: one per CPU) with one thread each.
    Events already done with the same configuration are skipped unless ``overwrite``. ``plugins``
    loads the installed plugins in every worker (a plugin manager object is used as is when running
    in this process); ``progress`` shows a progress bar.
    """
    t_start = time.perf_counter()
    output = Path(output).resolve()
    run, det = _run_config(config, detector)
    from .output import output_paths

    output_paths(output, "check", run.formats)  # an unknown format fails here, before any work
    sources = list_event_sources(source)
    chash = config_hash(run)
    output.mkdir(parents=True, exist_ok=True)
    save_config(run, output)
    outcomes: dict[str, EventOutcome] = {}
    todo = []
    for path, event, name in sources:
        done = None if overwrite else _already_done(output, name, run, chash)
        if done is not None:
            outcomes[name] = EventOutcome(name, "skipped", done)
        else:
            todo.append((path, event, name))
    log.info("%d events in %s: %d to reconstruct, %d already done", len(sources), source, len(todo),
             len(sources) - len(todo))
    own_client = own_cluster = None
    n_workers = 0
    try:
        if todo and (client is not None or scheduler is not None or workers != 0):
            if client is None:
                own_client, own_cluster = _start_client(scheduler, workers)
                client = own_client
            n_workers = len(client.scheduler_info(n_workers=-1)["workers"])
            if isinstance(det, str) is False:
                det = client.scatter(det, broadcast=True, hash=False)
            if run.threads == 0:  # the events share the cores: one worker thread each
                run = copy.deepcopy(run)
                run.threads = 1
            _run_on_dask(client, todo, det, run, output, chash, bool(plugins), progress, outcomes)
        else:
            _run_here(todo, det, run, output, chash, plugins, progress, outcomes)
    finally:  # close only what this call opened
        if own_client is not None:
            own_client.close()
        if own_cluster is not None:
            own_cluster.close()
    for o in outcomes.values():
        if o.status == "failed":
            log.error("event %s failed: %s", o.event, o.error)
    result = DatasetRun(output, [outcomes[name] for _, _, name in sources], time.perf_counter() - t_start, n_workers)
    log.info("%s", result.summary())
    return result


def _start_client(scheduler: str | None, workers: int | None):
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise InputError("parallel runs need Dask: pip install 'trackcore[distributed]' (or pass workers=0)") from exc
    if scheduler is not None:
        try:
            return Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as exc:
            raise InputError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}") from None
    n = workers if workers is not None else (os.cpu_count() or 1)
    if n < 1:
        raise InputError(f"workers must be >= 1 for a Dask run (0: run in this process), got {n}")
    # ":0": any free port for the HTTP endpoints (8787 may be taken by another cluster)
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0")
    return Client(cluster), cluster


def _bar(total: int, progress: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="reconstruct", unit="event", disable=not progress or total == 0)


def _record(outcome: EventOutcome, outcomes: dict[str, EventOutcome], bar) -> None:
    outcomes[outcome.event] = outcome
    if outcome.status == "done":
        log.debug("event %s done in %.2f s on %s", outcome.event, outcome.seconds, outcome.worker)
    bar.update(1)


def _run_here(todo, det, run, output, chash, plugins, progress, outcomes) -> None:
    with _bar(len(todo), progress) as bar:
        for path, event, name in todo:
            _record(_process_event(path, event, name, det, run, str(output), chash, plugins), outcomes, bar)


def _run_on_dask(client, todo, det, run, output, chash, plugins, progress, outcomes) -> None:
    from dask.distributed import as_completed

    # pure=False: a re-run in the same session must run again, not reuse a cached result.
    futures = {client.submit(_process_event, path, event, name, det, run, str(output), chash, plugins,
                             key=f"trackcore-{name}-{time.monotonic_ns()}", pure=False): name
               for path, event, name in todo}
    with _bar(len(todo), progress) as bar:
        for future in as_completed(futures):
            name = futures[future]
            if future.status == "error":  # the worker died (e.g. a crash in compiled code)
                exc = future.exception()
                _record(EventOutcome(name, "failed", error=f"{type(exc).__name__}: {exc}"), outcomes, bar)
            else:
                _record(future.result(), outcomes, bar)
            future.release()
