"""``trackcore backends``: each compute backend and whether it can run here."""
from __future__ import annotations

import argparse

from ..backends import ENV_VAR, available_backends, default_backend_name
from ._common import format_table, to_json

NAME = "backends"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME, help="list compute backends and whether each is usable",
        description=f"List the backends (numpy, cpu, cupy), whether each can run on this machine and "
                    f"which one is the default (chosen by {ENV_VAR}, else cpu when the compiled core is built).")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..threads import ENV_VAR as THREADS_VAR, default_threads

    status = available_backends()
    default = default_backend_name()
    cpus = default_threads()
    from ..backends._kernels import CPU_KERNELS
    from ..backends.cupy_backend import kernel_functions

    gpu = sorted(kernel_functions())
    missing = sorted(k for k in CPU_KERNELS.entries if k not in gpu and not k.startswith("fastsim_"))
    if args.json:
        print(to_json({"default": default, "worker_threads": cpus, "gpu_kernels": gpu, "no_gpu_version": missing,
                       "backends": {name: {"usable": s == "ok", "status": s} for name, s in status.items()}}))
        return 0
    rows = [[name + (" (default)" if name == default else ""), "yes" if s == "ok" else "no",
             "" if s == "ok" else s] for name, s in status.items()]
    print(format_table(["backend", "usable", "why not"], rows, align="<<<"))
    print(f"\nThe cpu backend's seeding, CKF and transport run on {cpus} worker thread(s) by default "
          f"({THREADS_VAR} if set, else the CPUs this process may use; --threads or [run] threads to change).")
    print(f"The cupy backend's GPU kernels: {', '.join(gpu)}; without a GPU version: {', '.join(missing)} "
          "(the hashing seeding strategy) and the fast-simulation plugin's kernels (numpy there).")
    return 0
