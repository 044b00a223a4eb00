"""PMOE vs its SB3 parents: wall time per 100k env steps on Hopper-v5, measured in one run.

- PMOE-SAC vs SB3 SAC. Same settings: one env, 256-256 ReLU actor and critics, batch 256,
  learning rate 3e-4, one gradient step per env step after the first 100 steps, tau 0.005,
  gamma 0.99, entropy coefficient learned (``"auto"``). PMOE-SAC adds K = 2 experts (its
  default): a mixing head, K x |A| mean and log-std outputs, and one no-grad pass of both
  critics over all K experts' actions per gradient step to find the Q-best expert.
- PMOE-PPO vs SB3 PPO. Same settings (SB3's defaults, which are also the reference code's):
  one env, 2048 steps per update, 10 epochs of minibatches of 64, learning rate 3e-4,
  64-64 tanh actor and critic, GAE 0.95, clip 0.2, gradient clipping 0.5. PMOE-PPO adds
  K = 5 experts (its default), the mixing head, the auxiliary Q head (64-64-64 ReLU) trained
  on the returns, and one no-grad Q pass over one sample of every expert per minibatch.

Runs are interleaved (the order alternates between repeats), each a fresh model on a fresh
env with the same seed per repeat, ``device="cpu"``; each row is the median over repeats. A
callback splits collection (env steps and acting) from training. Figures are scaled to 100k
env steps.

Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/pmoe_vs_sb3.py         # default, about 2-3 minutes
    OMP_NUM_THREADS=1 python benchmarks/pmoe_vs_sb3.py --sac-steps 5000 --ppo-steps 20480
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

from opsrl.agents.pmoe import PMOEPPO, PMOESAC
from opsrl.machine import PhaseTimer, Timing, machine_note

ENV_ID = "Hopper-v5"

PAIRS = {"sac": ("sac", "pmoe_sac"), "ppo": ("ppo", "pmoe_ppo")}
LABELS = {
    "sac": "SB3 SAC (reference)",
    "pmoe_sac": "PMOE-SAC, K = 2",
    "ppo": "SB3 PPO (reference)",
    "pmoe_ppo": "PMOE-PPO, K = 5",
}


def make_model(agent: str, steps: int, seed: int) -> BaseAlgorithm:
    """A fresh model of ``agent`` on a fresh Hopper env."""
    env = gym.make(ENV_ID)
    if agent in ("sac", "pmoe_sac"):
        algo = SAC if agent == "sac" else PMOESAC
        return algo(
            "MlpPolicy",
            env,
            learning_rate=3e-4,
            buffer_size=max(steps, 1_000),
            learning_starts=100,
            batch_size=256,
            tau=0.005,
            gamma=0.99,
            policy_kwargs={"net_arch": [256, 256]},
            device="cpu",
            seed=seed,
        )
    algo = PPO if agent == "ppo" else PMOEPPO
    return algo("MlpPolicy", env, n_steps=2048, batch_size=64, n_epochs=10, device="cpu", seed=seed)


def time_learn(agent: str, steps: int, seed: int) -> Timing:
    """Wall time of ``learn(steps)``."""
    model = make_model(agent, steps, seed)
    timer = PhaseTimer()
    start = time.perf_counter()
    model.learn(steps, callback=timer)
    total = time.perf_counter() - start
    model.get_env().close()
    return Timing(steps=model.num_timesteps, total_s=total, collection_s=timer.collection_s)


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Measure, print a markdown table, return each agent's ratio to its SB3 parent."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sac-steps", type=int, default=1_000, help="env steps per SAC run")
    parser.add_argument("--ppo-steps", type=int, default=4_096, help="env steps per PPO run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per agent (median)")
    parser.add_argument("--only", choices=sorted(PAIRS), help="measure one pair only")
    # parse_known_args: `opsrl bench` runs this file with its own command line in sys.argv.
    args, _ = parser.parse_known_args(argv)
    th.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    pairs = {args.only: PAIRS[args.only]} if args.only else PAIRS
    steps_of = {"sac": args.sac_steps, "ppo": args.ppo_steps}
    # Warm-up (imports, MuJoCo, first allocations) outside the clock.
    for family, agents in pairs.items():
        for agent in agents:
            time_learn(agent, 256 if family == "sac" else 64, seed=0)

    timings: dict[str, list[Timing]] = {a: [] for agents in pairs.values() for a in agents}
    for repeat in range(args.repeats):
        for family, agents in pairs.items():
            for agent in agents if repeat % 2 == 0 else agents[::-1]:
                timings[agent].append(time_learn(agent, steps_of[family], seed=repeat))

    def median_per(agent: str, part: str) -> float:
        runs = timings[agent]
        if part == "total":
            return statistics.median(t.per(t.total_s) for t in runs)
        if part == "collection":
            return statistics.median(t.per(t.collection_s) for t in runs)
        return statistics.median(t.per(t.total_s - t.collection_s) for t in runs)

    print(
        f"{ENV_ID}, one env, device cpu, SAC pair {args.sac_steps:,} and PPO pair "
        f"{args.ppo_steps:,} env steps a run, median of {args.repeats} interleaved runs"
    )
    print(
        f"{datetime.date.today().isoformat()}; "
        f"{machine_note(torch=str(th.__version__), sb3=stable_baselines3.__version__)}\n"
    )
    print("| agent | s / 100k steps | collection | training | vs SB3 parent |")
    print("|---|---:|---:|---:|---:|")
    ratios = {}
    for parent, agent in pairs.values():
        reference = median_per(parent, "total")
        for name in (parent, agent):
            total = median_per(name, "total")
            print(
                f"| {LABELS[name]} | {total:.0f} | {median_per(name, 'collection'):.0f} | "
                f"{median_per(name, 'train'):.0f} | {total / reference:.2f}x |"
            )
        ratios[agent] = median_per(agent, "total") / reference
    print()
    for agent, ratio in ratios.items():
        print(f"{LABELS[agent]} / SB3 parent = {ratio:.2f}x (target <= 1.5x)")
    return ratios


if __name__ == "__main__":
    main()
