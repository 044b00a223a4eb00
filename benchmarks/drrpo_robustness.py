"""DR-RPO vs its non-robust counterpart (radius 0): return across perturbation levels.

Each variant of :class:`opsrl.agents.drrpo.DRRPO` is trained on the NOMINAL env of a domain,
then its greedy policy is evaluated, unchanged, on perturbed envs (the same episode seeds
for every variant and level):

- simulated linear MDP (``opsrl/SimulatedLinearMDP-v0``, env features, d = 4): perturbation
  ``failure_prob`` q = 0, 0.1, ..., 1 (the share of x1's move to x5 that fails into x4);
- American put option (``opsrl/AmericanPut-v0``, tabular features over 100 price bins x 2
  actions): perturbation ``up_prob`` p = 0.3, ..., 0.9 (nominal 0.5).

Variants: ``nominal`` (radius 0), ``tv`` and ``kl`` (scalar radius on every coordinate
and step), and, on the linear MDP, ``tv_x1`` -- the reference code's DRPVI radius: TV 0.5 on
coordinate 4 (x1's move to x5) at step 0 only. The table gives the mean return (over seeds
and evaluation episodes) per level and variant; the plot adds +- one std over seeds.

Run from the repository root (a few minutes on one core)::

    OMP_NUM_THREADS=1 python benchmarks/drrpo_robustness.py
    OMP_NUM_THREADS=1 python benchmarks/drrpo_robustness.py --seeds 5 --plot robustness.png
    # or evaluate the models of `opsrl run experiments/drrpo.yaml` instead of training:
    OMP_NUM_THREADS=1 python benchmarks/drrpo_robustness.py --runs-dir runs/drrpo
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import yaml
from stable_baselines3.common.env_util import make_vec_env

import opsrl  # noqa: F401 - registers the env ids
from opsrl.agents.drrpo import DRRPO
from opsrl.envs.robust import AmericanPutEnv, SimulatedLinearMDPEnv
from opsrl.machine import machine_note

#: the reference code's DRPVI radius on the linear MDP: coordinate 4 at step 0 only
X1_RADIUS = [[0.0, 0.0, 0.0, 0.5], [0.0] * 4, [0.0] * 4]


@dataclass
class Domain:
    """A test domain: its env, perturbed kwarg and levels, and the variants to train."""

    name: str
    env_id: str
    env_cls: type[gym.Env]
    perturbation: str
    levels: list[float]
    timesteps: int
    common: dict[str, Any]
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)


def domains(radius: float) -> list[Domain]:
    """The two domains with their DR-RPO settings (``radius``: the scalar TV/KL radius)."""
    robust = {"tv": {"divergence": "tv", "radius": radius}}
    robust["kl"] = {"divergence": "kl", "radius": radius}
    return [
        Domain(
            "SimulatedLinearMDP",
            "opsrl/SimulatedLinearMDP-v0",
            SimulatedLinearMDPEnv,
            "failure_prob",
            [round(0.1 * k, 1) for k in range(11)],
            timesteps=3000,
            common={"features": "env", "episodes_per_iteration": 10},
            variants={
                "nominal": {"radius": 0.0},
                **robust,
                "tv_x1": {"divergence": "tv", "radius": X1_RADIUS},
            },
        ),
        Domain(
            "AmericanPut",
            "opsrl/AmericanPut-v0",
            AmericanPutEnv,
            "up_prob",
            [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
            timesteps=15000,
            common={
                "features": "tabular",
                "value_cap": 40.0,
                "bonus_scale": 1.0,
                "episodes_per_iteration": 20,
            },
            variants={"nominal": {"radius": 0.0}, **robust},
        ),
    ]


def greedy_table(model: DRRPO) -> np.ndarray:
    """The greedy action of each (step, state): argmax_a pi_h(a | s), (H, S)."""
    return model.policy.log_policy_array().argmax(axis=-1)


def mean_return(actions: np.ndarray, env: gym.Env, seeds: list[int]) -> float:
    """Mean return of the deterministic policy ``actions[h, s]`` over one episode per seed."""
    total = 0.0
    for seed in seeds:
        state, _ = env.reset(seed=seed)
        step, done = 0, False
        while not done:
            state, reward, terminated, truncated, _ = env.step(int(actions[step, state]))
            total += float(reward)
            step += 1
            done = terminated or truncated
    return total / len(seeds)


def train(domain: Domain, variant: str, seed: int, timesteps: int) -> DRRPO:
    """DR-RPO with the variant's settings, trained on the nominal env."""
    venv = make_vec_env(domain.env_cls, n_envs=4, seed=seed)
    kwargs = {**domain.common, **domain.variants[variant]}
    model = DRRPO("SoftmaxPolicy", venv, seed=seed, device="cpu", **kwargs)
    return model.learn(timesteps)


def load_runs(runs_dir: Path) -> dict[tuple[str, str], list[DRRPO]]:
    """Models of finished ``opsrl run`` runs, keyed by (env id, agent label)."""
    models: dict[tuple[str, str], list[DRRPO]] = defaultdict(list)
    for config_path in sorted(runs_dir.glob("*/config.yaml")):
        identity = yaml.safe_load(config_path.read_text())["run"]
        if identity.get("kind") != "agent" or identity["agent"]["name"] != "drrpo":
            continue
        model_path = config_path.parent / "model.zip"
        if model_path.is_file():
            key = (identity["env"]["id"], identity["agent"]["label"])
            models[key].append(DRRPO.load(model_path, device="cpu"))
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per variant")
    parser.add_argument("--episodes", type=int, default=300, help="evaluation episodes per level")
    parser.add_argument("--radius", type=float, default=0.2, help="scalar TV / KL radius")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the timesteps")
    parser.add_argument("--runs-dir", type=Path, help="evaluate these opsrl runs instead")
    parser.add_argument("--plot", type=Path, default=Path("drrpo_robustness.png"))
    args = parser.parse_args()

    started = time.perf_counter()
    loaded = load_runs(args.runs_dir) if args.runs_dir else None
    episode_seeds = [10_000 + k for k in range(args.episodes)]
    #: domain -> variant -> (seeds, levels) returns
    results: dict[str, dict[str, np.ndarray]] = {}
    print(f"DR-RPO robustness; {machine_note()}\n")
    for domain in domains(args.radius):
        if loaded is not None:
            groups = {
                label: ms for (env_id, label), ms in loaded.items() if env_id == domain.env_id
            }
        else:
            steps = int(domain.timesteps * args.scale)
            groups = {
                variant: [train(domain, variant, seed, steps) for seed in range(args.seeds)]
                for variant in domain.variants
            }
        if not groups:
            continue
        results[domain.name] = {}
        envs = {level: domain.env_cls(**{domain.perturbation: level}) for level in domain.levels}
        for label, models in groups.items():
            table = np.array(
                [
                    [mean_return(greedy_table(m), envs[level], episode_seeds) for level in envs]
                    for m in models
                ]
            )
            results[domain.name][label] = table
        print_table(domain, results[domain.name], len(next(iter(groups.values()))), args)
    if results:
        plot(results, domains(args.radius), args.plot)
        print(f"plot: {args.plot}")
    print(f"wall time: {time.perf_counter() - started:.0f} s")


def print_table(
    domain: Domain, returns: dict[str, np.ndarray], n_seeds: int, args: argparse.Namespace
) -> None:
    """Markdown table: one row per level, one column per variant (mean return)."""
    labels = list(returns)
    source = (
        f"runs in {args.runs_dir}"
        if args.runs_dir
        else (f"{int(domain.timesteps * args.scale)} training steps on the nominal env")
    )
    print(
        f"### {domain.name}: mean return vs {domain.perturbation} "
        f"({n_seeds} seeds x {args.episodes} episodes; {source})\n"
    )
    print(f"| {domain.perturbation} | " + " | ".join(labels) + " |")
    print("|---:|" + "---:|" * len(labels))
    for column, level in enumerate(domain.levels):
        cells = [f"{returns[label][:, column].mean():.3f}" for label in labels]
        print(f"| {level:g} | " + " | ".join(cells) + " |")
    print()


def plot(results: dict[str, dict[str, np.ndarray]], all_domains: list[Domain], path: Path) -> None:
    """Mean return vs perturbation per variant, +- one std over seeds, one panel a domain."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [d for d in all_domains if d.name in results]
    figure, axes = plt.subplots(1, len(shown), figsize=(5.5 * len(shown), 4), squeeze=False)
    for axis, domain in zip(axes[0], shown, strict=True):
        levels = np.array(domain.levels)
        for label, table in results[domain.name].items():
            mean, std = table.mean(axis=0), table.std(axis=0)
            axis.plot(levels, mean, marker="o", label=label)
            axis.fill_between(levels, mean - std, mean + std, alpha=0.15)
        axis.set_xlabel(domain.perturbation)
        axis.set_ylabel("mean return")
        axis.set_title(domain.name)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()
