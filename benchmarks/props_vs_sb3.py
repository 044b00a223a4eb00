"""PROPS vs SB3 PPO: wall time per 100k env steps on Hopper-v5, measured in one run.

Both learn on ``VecNormalize(DummyVecEnv([Hopper-v5]))`` (observation and reward
normalisation, as the PROPS reference code and rl-zoo's PPO use), ``device="cpu"``, 64-64 tanh
networks, with the same values where their hyperparameters overlap: n_steps 2048, minibatch
128, 10 epochs, learning rate 1e-4, clip 0.2, entropy 0.01, gamma 0.99, GAE 0.95, gradient
norm 0.5, and no PPO KL stop (``target_kl=None`` for both, so that the timing does not
depend on when a KL threshold happens to be crossed).

- SB3 PPO trains on each batch of n = 2048 steps (16 minibatches per epoch);
- PROPS at its defaults trains PPO on the buffer of b = 2 batches (4,096 steps, 32
  minibatches per epoch), and runs its behaviour update every m = 1024 steps (16 epochs of
  minibatches of 192 over the buffer minus m, stopped early at delta = 0.05);
- PROPS with the paper's Hopper settings (m = 256, learning rates 1e-3, lambda 0.3): eight
  behaviour updates per batch instead of two (``--hopper-tuned``; not run by default).

Runs are interleaved (the order alternates between repeats), each a fresh model on a fresh env
with the same seed per repeat; each row is the median over repeats. A callback splits the time
into collection (env steps, acting, and the behaviour updates made during collection) and
training (the PPO update, and for PROPS the behaviour update after it); the behaviour updates
are also timed on their own.

Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/props_vs_sb3.py                 # 8,192 steps a run
    OMP_NUM_THREADS=1 python benchmarks/props_vs_sb3.py --steps 20480   # 10 updates a run
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import stable_baselines3
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from opsrl.agents.props import PROPS
from opsrl.machine import PhaseTimer, machine_note
from opsrl.machine import Timing as BaseTiming

ENV_ID = "Hopper-v5"


@dataclass
class Timing(BaseTiming):
    """One measured ``learn``, with the time PROPS spends in behaviour updates."""

    behavior_s: float
    behavior_minibatches: float


def common_hyperparams(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    return {
        "n_steps": args.n_steps,
        "batch_size": 128,
        "n_epochs": 10,
        "learning_rate": 1e-4,
        "clip_range": 0.2,
        "ent_coef": 0.01,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "max_grad_norm": 0.5,
        "target_kl": None,
        "device": "cpu",
        "seed": seed,
    }


def make_model(agent: str, args: argparse.Namespace, seed: int) -> BaseAlgorithm:
    """A fresh model on a fresh, seeded, normalised Hopper."""
    venv = VecNormalize(make_vec_env(ENV_ID, n_envs=1, seed=seed), gamma=0.99)
    common = common_hyperparams(args, seed)
    if agent == "ppo":
        return PPO("MlpPolicy", venv, **common)
    if agent == "props":
        return PROPS("MlpPolicy", venv, props_n_steps=args.n_steps // 2, **common)
    tuned = {**common, "learning_rate": 1e-3}
    return PROPS(
        "MlpPolicy",
        venv,
        props_n_steps=256,
        props_learning_rate=1e-3,
        props_kl_coef=0.3,
        props_target_kl=0.05,
        **tuned,
    )


def time_learn(agent: str, args: argparse.Namespace, seed: int) -> Timing:
    """Wall time of ``learn(args.steps)`` (whole rollouts, each followed by its update)."""
    model = make_model(agent, args, seed)
    behavior = {"seconds": 0.0, "calls": 0, "minibatches": 0}
    if isinstance(model, PROPS):
        update = model.update_behavior

        @functools.wraps(update)
        def timed_update() -> None:
            start = time.perf_counter()
            update()
            behavior["seconds"] += time.perf_counter() - start
            behavior["calls"] += 1
            behavior["minibatches"] += model.logger.name_to_value.get("props/n_minibatches", 0)

        model.update_behavior = timed_update  # type: ignore[method-assign]
    timer = PhaseTimer()
    start = time.perf_counter()
    model.learn(args.steps, callback=timer)
    total = time.perf_counter() - start
    steps = model.num_timesteps
    model.get_env().close()
    return Timing(
        steps=steps,
        total_s=total,
        collection_s=timer.collection_s,
        behavior_s=behavior["seconds"],
        behavior_minibatches=behavior["minibatches"] / max(behavior["calls"], 1),
    )


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Measure, print a markdown table, return seconds per 100k steps of each agent."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8192, help="env steps per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per agent (median)")
    parser.add_argument("--n-steps", type=int, default=2048, help="steps per update (n)")
    parser.add_argument(
        "--hopper-tuned", action="store_true", help="also time PROPS at the paper's Hopper setting"
    )
    # parse_known_args: `opsrl bench` runs this file with its own command line in sys.argv.
    args, _ = parser.parse_known_args(argv)
    th.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    gym.make(ENV_ID).close()  # MuJoCo missing: fail here, with its own message

    agents = ["ppo", "props"] + (["props-hopper"] if args.hopper_tuned else [])
    labels = {
        "ppo": "SB3 PPO (reference)",
        "props": "PROPS, defaults (b = 2, m = n/2)",
        "props-hopper": "PROPS, paper's Hopper setting (m = 256, lr 1e-3)",
    }
    # Warm-up (imports, first allocations) outside the clock.
    warm = argparse.Namespace(**{**vars(args), "steps": 1, "n_steps": 128})
    for agent in agents:
        if agent != "props-hopper":
            time_learn(agent, warm, seed=0)

    timings: dict[str, list[Timing]] = {agent: [] for agent in agents}
    for repeat in range(args.repeats):
        order = agents if repeat % 2 == 0 else agents[::-1]
        for agent in order:
            timings[agent].append(time_learn(agent, args, seed=repeat))

    def median_of(agent: str, part: Callable[[Timing], float]) -> float:
        return statistics.median(part(t) for t in timings[agent])

    steps = timings["ppo"][0].steps
    print(
        f"{ENV_ID}, VecNormalize(DummyVecEnv(1)), n_steps {args.n_steps}, minibatch 128, "
        f"10 epochs, {steps:,} env steps a run, median of {args.repeats} interleaved runs"
    )
    print(
        f"{datetime.date.today().isoformat()}; "
        f"{machine_note(torch=str(th.__version__), sb3=stable_baselines3.__version__)}\n"
    )
    print(
        "| agent | s / 100k steps | collection | training | behaviour updates (in both) "
        "| behaviour minibatches per update | vs PPO |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    reference = median_of("ppo", lambda t: t.per(t.total_s))
    result = {}
    for agent in agents:
        total = median_of(agent, lambda t: t.per(t.total_s))
        result[agent] = total
        behavior = median_of(agent, lambda t: t.per(t.behavior_s))
        minibatches = median_of(agent, lambda t: t.behavior_minibatches)
        print(
            f"| {labels[agent]} | {total:.1f} | "
            f"{median_of(agent, lambda t: t.per(t.collection_s)):.1f} | "
            f"{median_of(agent, lambda t: t.per(t.total_s - t.collection_s)):.1f} | "
            f"{behavior:.1f} | {minibatches:.0f} | {total / reference:.2f}x |"
        )
    print(f"\nPROPS / PPO = {result['props'] / reference:.2f}x at PROPS's defaults (target <= 2x)")
    return result


if __name__ == "__main__":
    main()
