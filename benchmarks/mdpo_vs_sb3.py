"""MDPO vs its SB3 parent: wall time per 100k env steps on Hopper-v5, measured in one run.

- On-policy MDPO vs SB3 PPO. Shared settings: one env, 2048 steps per update, learning rate
  3e-4 (actor and critic), gamma 0.99, GAE 0.95, actor and critic 64-64 tanh, gradient
  clipping 0.5, advantages standardised. Each at its own update: PPO 10 epochs of minibatches
  of 64 (SB3 defaults); MDPO m = 10 full-batch actor steps and 5 critic epochs of minibatches
  of 128 (the reference's), clipped value loss 0.2.
- Off-policy MDPO vs SB3 SAC. Shared settings: one env, 256-256 ReLU networks, batch 256,
  learning rate 3e-4, one gradient step per env step after the first 100 steps, tau 0.005,
  a fixed entropy coefficient 0.2 (so that SAC does not tune it and MDPO's lambda is the
  same), replay buffer as large as the run. MDPO adds the old actor's pass, the KL term and
  the mean/log-std regulariser, and refreshes the old actor every 1000 gradient steps.

Runs are interleaved (the order alternates between repeats), each a fresh model on a fresh
env with the same seed per repeat, ``device="cpu"``; each row is the median over repeats. A
callback splits collection (rollouts) from training. Figures are scaled to 100k env steps.

Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/mdpo_vs_sb3.py      # about 2.5 CPU-minutes
    OMP_NUM_THREADS=1 python benchmarks/mdpo_vs_sb3.py --on-steps 8192 --off-steps 2000
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time

import gymnasium as gym
import stable_baselines3
import torch as th
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env

from opsrl.agents.mdpo import MDPO, OffPolicyMDPO
from opsrl.machine import PhaseTimer, Timing, machine_note

ENV_ID = "Hopper-v5"

ON_POLICY = ("ppo", "mdpo")
OFF_POLICY = ("sac", "mdpo_off")
LABELS = {
    "ppo": "SB3 PPO (reference)",
    "mdpo": "MDPO (on-policy)",
    "sac": "SB3 SAC (reference)",
    "mdpo_off": "MDPO (off-policy)",
}


def make_model(agent: str, steps: int, seed: int) -> BaseAlgorithm:
    """A fresh model of ``agent`` on a fresh Hopper-v5 env."""
    venv = make_vec_env(ENV_ID, n_envs=1, seed=seed)
    common = {"learning_rate": 3e-4, "gamma": 0.99, "seed": seed, "device": "cpu"}
    if agent in ON_POLICY:
        on_policy = {
            **common,
            "n_steps": 2048,
            "gae_lambda": 0.95,
            "max_grad_norm": 0.5,
            "normalize_advantage": True,
            "policy_kwargs": {"net_arch": {"pi": [64, 64], "vf": [64, 64]}},
        }
        if agent == "ppo":
            return PPO("MlpPolicy", venv, n_epochs=10, batch_size=64, **on_policy)
        return MDPO(
            "MlpPolicy", venv, n_policy_steps=10, n_critic_epochs=5, batch_size=128, **on_policy
        )
    off_policy = {
        **common,
        "buffer_size": steps + 1,
        "learning_starts": 100,
        "batch_size": 256,
        "tau": 0.005,
        "train_freq": 1,
        "gradient_steps": 1,
        "ent_coef": 0.2,
        "policy_kwargs": {"net_arch": [256, 256]},
    }
    if agent == "sac":
        return SAC("MlpPolicy", venv, **off_policy)
    return OffPolicyMDPO("MlpPolicy", venv, old_policy_interval=1000, **off_policy)


def time_learn(agent: str, steps: int, seed: int) -> Timing:
    """Wall time of ``learn(steps)``."""
    model = make_model(agent, steps, seed)
    timer = PhaseTimer()
    start = time.perf_counter()
    model.learn(steps, callback=timer)
    total = time.perf_counter() - start
    taken = model.num_timesteps
    model.get_env().close()
    return Timing(steps=taken, total_s=total, collection_s=timer.collection_s)


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Measure, print a markdown table, return the two ratios (MDPO / parent)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--on-steps", type=int, default=6144, help="env steps per on-policy run (2048 a rollout)"
    )
    parser.add_argument("--off-steps", type=int, default=1200, help="env steps per off-policy run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per agent (median)")
    # parse_known_args: `opsrl bench` runs this file with its own command line in sys.argv.
    args, _ = parser.parse_known_args(argv)
    th.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    gym.make(ENV_ID).close()  # MuJoCo loads here, outside the clock

    budgets = {
        **dict.fromkeys(ON_POLICY, args.on_steps),
        **dict.fromkeys(OFF_POLICY, args.off_steps),
    }
    for agent in (*ON_POLICY, *OFF_POLICY):  # warm-up: imports, first allocations
        time_learn(agent, 256 if agent in OFF_POLICY else 64, seed=0)

    timings: dict[str, list[Timing]] = {agent: [] for agent in budgets}
    for repeat in range(args.repeats):
        for pair in (ON_POLICY, OFF_POLICY):
            for agent in pair if repeat % 2 == 0 else pair[::-1]:
                timings[agent].append(time_learn(agent, budgets[agent], seed=repeat))

    def median_per(agent: str, part: str) -> float:
        runs = timings[agent]
        if part == "total":
            return statistics.median(t.per(t.total_s) for t in runs)
        if part == "collection":
            return statistics.median(t.per(t.collection_s) for t in runs)
        return statistics.median(t.per(t.total_s - t.collection_s) for t in runs)

    print(
        f"{ENV_ID}, 1 env, device cpu; on-policy {args.on_steps:,} and off-policy "
        f"{args.off_steps:,} env steps a run, median of {args.repeats} interleaved runs"
    )
    print(
        f"{datetime.date.today().isoformat()}; "
        f"{machine_note(torch=str(th.__version__), sb3=stable_baselines3.__version__)}\n"
    )
    print("| agent | s / 100k steps | collection | training | vs parent |")
    print("|---|---:|---:|---:|---:|")
    ratios = {}
    for reference, agent in ((ON_POLICY[0], ON_POLICY[1]), (OFF_POLICY[0], OFF_POLICY[1])):
        reference_total = median_per(reference, "total")
        for name in (reference, agent):
            total = median_per(name, "total")
            print(
                f"| {LABELS[name]} | {total:.1f} | {median_per(name, 'collection'):.1f} | "
                f"{median_per(name, 'train'):.1f} | {total / reference_total:.2f}x |"
            )
        ratios[agent] = median_per(agent, "total") / reference_total
    print(
        f"\nMDPO / PPO = {ratios['mdpo']:.2f}x, off-policy MDPO / SAC = "
        f"{ratios['mdpo_off']:.2f}x (target <= 1.5x each)"
    )
    return ratios


if __name__ == "__main__":
    main()
