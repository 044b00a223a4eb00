"""Env steps per second of the ride-sharing env and dispatch time of its baselines, by fleet.

For fleets of 20, 100, 500 and 1000 vehicles, on the synthetic city (20 zones) and on the 69
Manhattan taxi zones (``../shared/data/manhattan_taxi_zones.csv`` beside the checkout, or
``--zones``; skipped when absent), both with the synthetic gravity demand scaled with the
fleet (``--orders-per-vehicle`` new orders per vehicle and minute, 0.15 by default: the env's
default 3 per minute for 20 vehicles), 30-minute episodes:

- **platform view**: ``RideSharingEnv`` (``opsrl/RideSharing-v0``) stepped with uniformly
  random scores drawn before the clock starts; env steps (minutes) per second, resets
  included (every measurement runs whole episodes);
- **per-vehicle VecEnv**: ``RideSharingAgentVecEnv`` with one copy (``num_envs`` = fleet), the
  same random scores; VecEnv steps (minutes) per second, and vehicle-steps per second (the
  transitions a parameter-shared learner receives);
- **baselines**: seconds per minute of each baseline's ``predict`` (its decision only; the
  env step that follows is not counted) in episodes it plays itself (seeds 0, 1, ...):
  random scores, greedy nearest vehicle, OR-Tools min-cost flow; with the orders each served
  in the episode of seed 0 (the same episode for all three; random with policy seed 0).

Each measurement runs whole episodes until ``--seconds`` have passed (at least one); the
table gives the median of ``--repeats``. Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/ride_sharing_steps.py   # or: opsrl bench ride_sharing_steps
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from opsrl.baselines.ride_sharing import (
    GreedyNearestPolicy,
    MinCostFlowPolicy,
    RandomDispatchPolicy,
)
from opsrl.envs.ride_sharing.env import RideSharingEnv
from opsrl.envs.ride_sharing.vec import RideSharingAgentVecEnv
from opsrl.machine import machine_note

FLEETS = (20, 100, 500, 1000)
MANHATTAN = Path("..") / "shared" / "data" / "manhattan_taxi_zones.csv"
BASELINES = {
    "random": RandomDispatchPolicy,
    "greedy": GreedyNearestPolicy,
    "min-cost flow": MinCostFlowPolicy,
}


def random_scores(num_vehicles: int, num_candidates: int, count: int, seed: int) -> np.ndarray:
    """(count, M, K + 1) float32 scores uniform in [-1, 1]."""
    rng = np.random.default_rng(seed)
    shape = (count, num_vehicles, num_candidates + 1)
    return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)


def time_platform(env_kwargs: dict[str, Any], seconds: float, scores: np.ndarray) -> float:
    """Minutes per second of RideSharingEnv with the given scores, whole episodes."""
    env = RideSharingEnv(**env_kwargs)
    actions = scores.reshape(scores.shape[0], -1)
    steps, episode = 0, 0
    start = time.perf_counter()
    while steps == 0 or time.perf_counter() - start < seconds:
        env.reset(seed=episode)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(actions[steps % len(actions)])
            steps += 1
            done = terminated or truncated
        episode += 1
    return steps / (time.perf_counter() - start)


def time_agent_vec(env_kwargs: dict[str, Any], seconds: float, scores: np.ndarray) -> float:
    """VecEnv steps (minutes) per second of one-copy RideSharingAgentVecEnv, whole episodes."""
    venv = RideSharingAgentVecEnv(1, seed=0, **env_kwargs)
    minutes = env_kwargs.get("episode_minutes", 30)
    steps = 0
    start = time.perf_counter()
    venv.reset()
    while steps == 0 or time.perf_counter() - start < seconds:
        for _ in range(minutes):  # the VecEnv resets itself after the last minute
            venv.step(scores[steps % len(scores)])
            steps += 1
    venv.close()
    return steps / (time.perf_counter() - start)


def time_baseline(
    policy_cls: type, env_kwargs: dict[str, Any], seconds: float
) -> tuple[float, int]:
    """(seconds of predict per minute, orders served in the first episode), whole episodes
    on seeds 0, 1, ..."""
    env = RideSharingEnv(**env_kwargs)
    policy = policy_cls(env, seed=0)
    decision_s, minutes, served, episode = 0.0, 0, [], 0
    start = time.perf_counter()
    while episode == 0 or time.perf_counter() - start < seconds:
        env.reset(seed=episode)
        policy.reset(env)
        done = False
        while not done:
            tick = time.perf_counter()
            action, _ = policy.predict(None)
            decision_s += time.perf_counter() - tick
            _, _, terminated, truncated, info = env.step(action)
            minutes += 1
            done = terminated or truncated
        served.append(info["kpi"]["served_orders"])
        episode += 1
    return decision_s / minutes, served[0]


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Measure every layout and fleet, print a markdown table, return the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per setting (median)")
    parser.add_argument(
        "--fleets", type=int, nargs="+", default=list(FLEETS), help="fleet sizes to measure"
    )
    parser.add_argument(
        "--orders-per-vehicle",
        type=float,
        default=0.15,
        help="mean new orders per vehicle and minute (demand_rate = this x fleet)",
    )
    parser.add_argument("--zones", type=Path, default=MANHATTAN, help="Manhattan zones CSV")
    # parse_known_args: `opsrl bench` runs this file with its own command line in sys.argv.
    args, _ = parser.parse_known_args(argv)

    layouts: dict[str, dict[str, Any]] = {"synthetic": {}}
    if args.zones.is_file():
        layouts["manhattan"] = {"zones": str(args.zones)}
    else:
        print(f"(Manhattan skipped: {args.zones} not found)")

    figures: dict[str, dict[str, float]] = {}
    for layout, layout_kwargs in layouts.items():
        for fleet in args.fleets:
            env_kwargs = dict(
                layout_kwargs, num_vehicles=fleet, demand_rate=args.orders_per_vehicle * fleet
            )
            template = RideSharingEnv(**env_kwargs)
            scores = random_scores(fleet, template.core.num_candidates, 64, seed=fleet)
            row = {
                "platform_steps_s": statistics.median(
                    time_platform(env_kwargs, args.seconds, scores) for _ in range(args.repeats)
                ),
                "vec_steps_s": statistics.median(
                    time_agent_vec(env_kwargs, args.seconds, scores) for _ in range(args.repeats)
                ),
            }
            for name, policy_cls in BASELINES.items():
                runs = [
                    time_baseline(policy_cls, env_kwargs, args.seconds) for _ in range(args.repeats)
                ]
                row[f"{name}_ms"] = 1000 * statistics.median(run[0] for run in runs)
                row[f"{name}_served"] = runs[0][1]
            figures[f"{layout} {fleet}"] = row
            print(f"measured {layout} fleet {fleet}", flush=True)

    print(
        f"\n# ride_sharing_steps, {datetime.date.today()}; {machine_note()}; "
        f"{args.orders_per_vehicle:g} orders per vehicle-minute, 30-minute episodes"
    )
    print(
        "| layout | fleet | platform env steps/s | VecEnv steps/s | vehicle-steps/s | "
        "random ms/min | greedy ms/min | min-cost flow ms/min | served (seed 0) random / greedy "
        "/ flow |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for key, row in figures.items():
        layout, fleet = key.split()
        print(
            f"| {layout} | {fleet} | {row['platform_steps_s']:,.1f} | {row['vec_steps_s']:,.1f} | "
            f"{row['vec_steps_s'] * int(fleet):,.0f} | {row['random_ms']:.2f} | "
            f"{row['greedy_ms']:.2f} | {row['min-cost flow_ms']:.2f} | "
            f"{row['random_served']:,.0f} / {row['greedy_served']:,.0f} / "
            f"{row['min-cost flow_served']:,.0f} |"
        )
    return figures


if __name__ == "__main__":
    main()
