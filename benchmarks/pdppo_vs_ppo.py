"""PDPPO vs SB3 PPO: wall time per 100k env steps on batched lot sizing, measured in one run.

Instance 25x15 (25 items, 15 machines, T = 100), ``VecMonitor(LotSizingVecEnv(n_envs))``,
``device="cpu"``. Both algorithms get the same settings: n_steps, n_epochs and batch size (by
default PDPPO's paper defaults: n_steps 400 per env, 40 epochs, the whole rollout as one
batch), gamma 0.9, entropy 0.001, learning rate 5.5e-4, no advantage normalisation.

- SB3 PPO: actor and critic 128-128 tanh (SB3's activation), gradient clipping at 0.5 (PPO
  always clips);
- PDPPO like for like: the same actor and critic, gradient clipping at 0.5, plus its
  post-decision critic (128-128 tanh), so the ratio is the cost of PDPPO itself;
- PDPPO at its paper defaults: actor 128-128 ReLU, critics tanh, no gradient clipping.

Runs are interleaved (the order alternates between repeats), each a fresh model on a fresh env
with the same seed per repeat; each row is the median over repeats. A callback splits the time
into collection (rollouts, including PDPPO's post-decision calls and post-critic passes) and
training (the update epochs).

Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/pdppo_vs_ppo.py                 # 102,400 steps a run
    OMP_NUM_THREADS=1 python benchmarks/pdppo_vs_ppo.py --steps 19200   # quick: 3 updates a run
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time
from typing import Any

import stable_baselines3
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecMonitor
from torch import nn

from opsrl.agents.pdppo import PDPPO
from opsrl.envs.lot_sizing.vec import LotSizingVecEnv
from opsrl.machine import PhaseTimer, Timing, machine_note

INSTANCE = "25x15"


def make_model(agent: str, args: argparse.Namespace, seed: int) -> BaseAlgorithm:
    """A fresh model of ``agent`` ("ppo", "pdppo", "pdppo-paper") on a fresh batched env."""
    venv = VecMonitor(LotSizingVecEnv(args.n_envs, seed=seed, instance=INSTANCE))
    batch_size = args.batch_size or args.n_steps * args.n_envs
    common: dict[str, Any] = {
        "n_steps": args.n_steps,
        "n_epochs": args.n_epochs,
        "batch_size": batch_size,
        "gamma": 0.9,
        "ent_coef": 0.001,
        "learning_rate": 5.5e-4,
        "normalize_advantage": False,
        "device": "cpu",
        "seed": seed,
    }
    net_arch = {"pi": [128, 128], "vf": [128, 128]}
    if agent == "ppo":
        policy_kwargs = {"net_arch": net_arch, "activation_fn": nn.Tanh}
        return PPO(
            "MlpPolicy",
            venv,
            gae_lambda=1.0,
            max_grad_norm=0.5,
            policy_kwargs=policy_kwargs,
            **common,
        )
    if agent == "pdppo":
        policy_kwargs = {"net_arch": net_arch, "activation_fn": nn.Tanh}
        return PDPPO("MlpPolicy", venv, max_grad_norm=0.5, policy_kwargs=policy_kwargs, **common)
    return PDPPO("MlpPolicy", venv, **common)  # paper defaults: ReLU actor, no clipping


def time_learn(agent: str, args: argparse.Namespace, seed: int) -> Timing:
    """Wall time of ``learn(args.steps)`` (whole rollouts, each followed by its update)."""
    model = make_model(agent, args, seed)
    timer = PhaseTimer()
    start = time.perf_counter()
    model.learn(args.steps, callback=timer)
    total = time.perf_counter() - start
    steps = model.num_timesteps
    model.get_env().close()
    return Timing(steps=steps, total_s=total, collection_s=timer.collection_s)


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Measure, print a markdown table, return seconds per 100k steps of each agent."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=102_400, help="env steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per agent (median)")
    parser.add_argument("--n-envs", type=int, default=16)
    parser.add_argument("--n-steps", type=int, default=400, help="steps per env per update")
    parser.add_argument("--n-epochs", type=int, default=40)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="minibatch size (default: whole rollout)"
    )
    # parse_known_args: `opsrl bench` runs this file with its own command line in sys.argv.
    args, _ = parser.parse_known_args(argv)
    th.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    agents = ["ppo", "pdppo", "pdppo-paper"]
    labels = {
        "ppo": "SB3 PPO (reference)",
        "pdppo": "PDPPO, same networks and clipping as PPO",
        "pdppo-paper": "PDPPO, paper defaults (ReLU actor, no clipping)",
    }
    # Warm-up (imports, first allocations) outside the clock.
    warm = argparse.Namespace(**{**vars(args), "steps": 1, "n_steps": 8, "n_epochs": 1})
    for agent in agents:
        time_learn(agent, warm, seed=0)

    timings: dict[str, list[Timing]] = {agent: [] for agent in agents}
    for repeat in range(args.repeats):
        order = agents if repeat % 2 == 0 else agents[::-1]
        for agent in order:
            timings[agent].append(time_learn(agent, args, seed=repeat))

    def median_per(agent: str, part: str) -> float:
        runs = timings[agent]
        if part == "total":
            return statistics.median(t.per(t.total_s) for t in runs)
        if part == "collection":
            return statistics.median(t.per(t.collection_s) for t in runs)
        return statistics.median(t.per(t.total_s - t.collection_s) for t in runs)

    batch = args.batch_size or args.n_steps * args.n_envs
    steps = timings["ppo"][0].steps
    print(
        f"lot-sizing {INSTANCE}, LotSizingVecEnv({args.n_envs}), n_steps {args.n_steps}, "
        f"n_epochs {args.n_epochs}, batch {batch}, {steps:,} env steps a run, "
        f"median of {args.repeats} interleaved runs"
    )
    print(
        f"{datetime.date.today().isoformat()}; "
        f"{machine_note(torch=str(th.__version__), sb3=stable_baselines3.__version__)}\n"
    )
    print("| agent | s / 100k steps | collection | training | vs PPO |")
    print("|---|---:|---:|---:|---:|")
    reference = median_per("ppo", "total")
    result = {}
    for agent in agents:
        total = median_per(agent, "total")
        result[agent] = total
        print(
            f"| {labels[agent]} | {total:.1f} | {median_per(agent, 'collection'):.1f} | "
            f"{median_per(agent, 'train'):.1f} | {total / reference:.2f}x |"
        )
    print(
        f"\nPDPPO / PPO = {result['pdppo'] / reference:.2f}x like for like (target <= 1.3x), "
        f"{result['pdppo-paper'] / reference:.2f}x at PDPPO's paper defaults"
    )
    return result


if __name__ == "__main__":
    main()
