"""Execute experiments: build envs and agents, train, evaluate, and write results atomically.

Each run works in a hidden ``.<run>.partial`` directory and is renamed to
``<output_dir>/<experiment>/<env>__<agent>__<seed>/`` only once its model, logs and evaluation
are all written (with ``trace.csv``, the env's episode trace of the first evaluation
episode, where the env has one), so a run that dies leaves no half result; ``resume`` skips
every finished run and never touches it. At the end the experiment writes its long table,
summary, ``failures.json`` (the runs that failed and why) and, unless told not to, its report
(:mod:`opsrl.report`).
"""

from __future__ import annotations

import functools
import inspect
import json
import multiprocessing
import os
import platform
import shutil
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing.managers import SyncManager
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
from stable_baselines3.common.logger import configure as configure_logger
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    SubprocVecEnv,
    VecEnv,
    VecMonitor,
    VecNormalize,
)

import opsrl
from opsrl import registry, results
from opsrl.agents.device_rollouts import rollouts_on_device
from opsrl.evaluation import (
    EpisodeResult,
    ObservationNormalizedPolicy,
    PerAgentPolicy,
    evaluate_policy_on_seeds,
    summarize_episodes,
)
from opsrl.spec import (
    AgentSpec,
    BaselineSpec,
    EnvSpec,
    ExperimentSpec,
    Run,
    SpecError,
    agent_timesteps,
    expand,
    load_spec,
    spec_from_dict,
    spec_to_dict,
)

__all__ = [
    "ExperimentSpec",
    "RunError",
    "RunOutcome",
    "build_agent",
    "evaluate_run_dir",
    "expand",
    "load_spec",
    "make_env",
    "make_vec_env",
    "run_experiment",
    "spec_from_dict",
]

CONFIG_FILE = "config.yaml"
EVAL_FILE = "eval.json"
MODEL_FILE = "model.zip"
#: ``VecNormalize`` statistics of an agent trained with ``normalize`` (SB3's pickle format)
VECNORMALIZE_FILE = "vecnormalize.pkl"
RUN_RESULTS_FILE = "results.csv"
#: the env's ``episode_trace()`` of the first final-evaluation episode (when the env has one)
TRACE_FILE = "trace.csv"
#: per experiment: the runs that failed in the last ``run_experiment`` and why
FAILURES_FILE = "failures.json"
PARTIAL_SUFFIX = ".partial"


class RunError(RuntimeError):
    """A run cannot start or finish for a reason the user can fix (one line)."""


ProgressSink = Callable[[tuple[str, str, int, int]], None]


# --------------------------------------------------------------------------------------------
# Building envs and agents
# --------------------------------------------------------------------------------------------


def make_env(env_spec: EnvSpec) -> gym.Env:
    """``gym.make`` with the spec's kwargs; bad kwargs become a one-line ``RunError``."""
    registry.check_env_id(env_spec.id)
    try:
        return gym.make(env_spec.id, **env_spec.kwargs)
    except (TypeError, ValueError) as error:
        raise RunError(f"env {env_spec.id} {env_spec.kwargs}: {error}") from None


def resolve_vec_env(env_spec: EnvSpec, vec_env: str, n_envs: int) -> str:
    """The VecEnv kind actually used: ``auto`` picks the env's batched version if it has one
    and there are at least 2 copies (one copy gains nothing from the arrays and can be
    slower: the UAM batched env steps one copy at 0.6x the single env)."""
    entry = registry.env_entry(env_spec.id)
    has_batched = entry is not None and entry.batched_entry_point is not None
    if vec_env == "auto":
        return "batched" if has_batched and n_envs >= 2 else "dummy"
    if vec_env == "batched" and not has_batched:
        raise RunError(f"env {env_spec.id} has no batched version; use vec_env dummy or subproc")
    return vec_env


def _make_registered_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make`` for SubprocVecEnv workers: unpickling this function imports this module,
    hence opsrl, which registers the opsrl/ ids in the worker (and other providers' ids on
    demand)."""
    registry.ensure_env_registered(env_id)
    return gym.make(env_id, **kwargs)


def make_agents_vec_env(env_spec: EnvSpec, n_copies: int, seed: int) -> VecEnv:
    """``n_copies`` copies of a multi-agent env as one VecEnv with a slot per agent."""
    entry = registry.env_entry(env_spec.id)
    if entry is None or entry.agents_entry_point is None:
        raise RunError(
            f"env {env_spec.id} is not a multi-agent env (no per-agent VecEnv); per-agent "
            "agents (shared_ppo, ospo, grpo) need one"
        )
    agents_cls = registry.load_object(entry.agents_entry_point)
    try:
        venv = agents_cls(n_copies, seed=seed, **env_spec.kwargs)
    except (TypeError, ValueError) as error:
        raise RunError(f"env {env_spec.id} {env_spec.kwargs}: {error}") from None
    return VecMonitor(venv)


def make_vec_env(env_spec: EnvSpec, n_envs: int, seed: int, vec_env: str = "auto") -> VecEnv:
    """``n_envs`` copies of the env as an SB3 VecEnv with episode statistics (Monitor).

    Copy i is seeded with ``seed + i`` whatever the kind, so the batched env and
    ``DummyVecEnv`` see the same episodes.
    """
    kind = resolve_vec_env(env_spec, vec_env, n_envs)
    if kind == "batched":
        entry = registry.env_entry(env_spec.id)
        assert entry is not None and entry.batched_entry_point is not None
        batched_cls = registry.load_object(entry.batched_entry_point)
        try:
            venv = batched_cls(n_envs, seed=seed, **env_spec.kwargs)
        except (TypeError, ValueError) as error:
            raise RunError(f"env {env_spec.id} {env_spec.kwargs}: {error}") from None
        return VecMonitor(venv)
    make_env(env_spec).close()  # fail here, with a clear message, not inside a subprocess
    vec_env_cls = SubprocVecEnv if kind == "subproc" else DummyVecEnv
    return sb3_make_vec_env(
        # a picklable factory: SubprocVecEnv workers import opsrl (and register its ids)
        # when they unpickle it, which a bare id would not make them do
        functools.partial(_make_registered_env, env_spec.id),
        n_envs=n_envs,
        seed=seed,
        # SB3 asks for render_mode="rgb_array" unless told otherwise; not every env renders.
        env_kwargs={"render_mode": None, **env_spec.kwargs},
        vec_env_cls=vec_env_cls,
    )


_ACTIVATIONS = {
    "tanh": "Tanh",
    "relu": "ReLU",
    "elu": "ELU",
    "leaky_relu": "LeakyReLU",
    "gelu": "GELU",
}


def _resolve_hyperparams(hyperparams: dict[str, Any]) -> dict[str, Any]:
    """Turn YAML-friendly values into what SB3 expects (activation names into classes)."""
    resolved = dict(hyperparams)
    policy_kwargs = dict(resolved.get("policy_kwargs") or {})
    for key, activation in policy_kwargs.items():
        if key.endswith("activation_fn") and isinstance(activation, str):
            import torch.nn as nn

            name = _ACTIVATIONS.get(activation.lower(), activation)
            if not hasattr(nn, name):
                raise RunError(f"policy_kwargs.{key}: unknown activation {activation!r}")
            policy_kwargs[key] = getattr(nn, name)
    if policy_kwargs:
        resolved["policy_kwargs"] = policy_kwargs
    return resolved


#: constructor arguments the runner sets itself from the experiment spec
_EXPERIMENT_LEVEL = ("seed", "device", "verbose", "tensorboard_log")


def constructor_defaults(agent_cls: type) -> dict[str, Any]:
    """Hyperparameters an algorithm's constructor takes, with their defaults (a constructor
    that passes ``**kwargs`` on also takes its parent's)."""
    defaults: dict[str, Any] = {}
    for cls in agent_cls.__mro__:
        if "__init__" not in vars(cls):
            continue
        parameters = inspect.signature(cls.__init__).parameters
        for name, p in parameters.items():
            if (
                name not in ("self", "policy", "env", *_EXPERIMENT_LEVEL)
                and not name.startswith("_")
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            ):
                defaults.setdefault(name, p.default)
        if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            break
    return defaults


def check_hyperparams(agent: AgentSpec) -> None:
    """One-line error for a hyperparameter the algorithm does not take."""
    agent_cls = registry.agent_class(agent.name)
    known = constructor_defaults(agent_cls)
    for key in agent.hyperparams:
        if key in _EXPERIMENT_LEVEL:
            raise SpecError(
                f"agent '{agent.label}': set '{key}' at the experiment level, not in hyperparams"
            )
        if key not in known:
            raise SpecError(
                f"agent '{agent.label}': {agent_cls.__name__} has no hyperparameter '{key}'"
            )


def build_agent(agent: AgentSpec, venv: VecEnv, seed: int, device: str) -> BaseAlgorithm:
    """Construct the registered algorithm on ``venv``; mismatches become a ``RunError``."""
    entry = registry.agent_entry(agent.name)
    agent_cls = registry.load_object(entry.class_path)
    policy = agent.policy or entry.default_policy
    if agent.policy is None and isinstance(venv.observation_space, gym.spaces.Dict):
        policy = policy.replace("Mlp", "MultiInput")
    try:
        model = agent_cls(
            policy,
            venv,
            seed=seed,
            device=device,
            verbose=0,
            **_resolve_hyperparams(agent.hyperparams),
        )
    except (AssertionError, TypeError, ValueError, KeyError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise RunError(
            f"agent '{agent.label}' cannot run on {venv.observation_space} / "
            f"{venv.action_space}: {message}"
        ) from None
    # a GPU learner gets each rollout once per update, not once per minibatch
    rollouts_on_device(model)
    return model


def wrap_normalize(agent: AgentSpec, venv: VecEnv) -> VecEnv:
    """``VecNormalize`` around the training envs when the agent asks for it.

    The discount of the reward normalization defaults to the agent's ``gamma`` (as in
    rl-baselines3-zoo), so that the normalized return matches the one the agent optimizes.
    """
    kwargs = agent.normalize_kwargs()
    if kwargs is None:
        return venv
    if "gamma" not in kwargs:
        agent_cls = registry.agent_class(agent.name)
        gamma = agent.hyperparams.get("gamma", constructor_defaults(agent_cls).get("gamma"))
        if isinstance(gamma, int | float):
            kwargs["gamma"] = float(gamma)
    try:
        return VecNormalize(venv, **kwargs)
    except (TypeError, ValueError) as error:
        raise RunError(f"agent '{agent.label}': normalize {agent.normalize}: {error}") from None


def load_normalization(run_dir: Path, env_spec: EnvSpec) -> VecNormalize | None:
    """The saved ``VecNormalize`` statistics of a run (frozen), or None when it has none."""
    path = run_dir / VECNORMALIZE_FILE
    if not path.is_file():
        return None
    holder = DummyVecEnv([functools.partial(make_env, env_spec)])
    stats = VecNormalize.load(str(path), holder)
    stats.training = False
    return stats


def build_baseline(run: Run, env: gym.Env) -> Any:
    """Construct the registered baseline policy for ``env`` with the run's seed."""
    assert run.baseline is not None
    entry = registry.baseline_entry(run.baseline.name)
    baseline_cls = registry.load_object(entry.class_path)
    try:
        return baseline_cls(env, seed=run.seed, **run.baseline.kwargs)
    except TypeError as error:
        raise RunError(f"baseline '{run.baseline.label}': {error}") from None


# --------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------


def run_identity(run: Run, spec: ExperimentSpec) -> dict[str, Any]:
    """What defines a run's result; a finished run with another identity is not reused."""
    identity: dict[str, Any] = {
        "experiment": run.experiment,
        "name": run.name,
        "kind": run.kind,
        "env": spec_to_dict(run.env),
        "seed": run.seed,
        "eval": spec_to_dict(spec.eval),
    }
    if run.agent is not None:
        agent = spec_to_dict(run.agent)
        # runs written before these agent fields existed keep their identity
        for key, unset in (("normalize", False), ("timesteps", None), ("env_kwargs", {})):
            if key in agent and agent[key] == unset and type(agent[key]) is type(unset):
                del agent[key]
        identity.update(
            agent=agent,
            timesteps=agent_timesteps(run.agent, spec),
            n_envs=spec.n_envs,
            vec_env=spec.vec_env,
            device=spec.device,
        )
    else:
        identity["baseline"] = spec_to_dict(run.baseline)
    return identity


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    return repr(value)


def _versions() -> dict[str, str]:
    import sb3_contrib
    import stable_baselines3
    import torch

    return {
        "opsrl": opsrl.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "gymnasium": gym.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "sb3_contrib": sb3_contrib.__version__,
        "torch": str(torch.__version__),
    }


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class _ProgressCallback(BaseCallback):
    """Reports training progress to the experiment's progress display."""

    def __init__(self, run_name: str, total: int, sink: ProgressSink | None) -> None:
        super().__init__()
        self.run_name, self.total, self.sink = run_name, total, sink
        self._last_report = 0.0

    def _on_step(self) -> bool:
        now = time.monotonic()
        if self.sink is not None and now - self._last_report > 0.25:
            self._last_report = now
            self.sink(("progress", self.run_name, self.num_timesteps, self.total))
        return True


class _PeriodicEvalCallback(BaseCallback):
    """Evaluates on the experiment's fixed seeds every ``freq`` env steps."""

    def __init__(
        self, env: gym.Env, seeds: list[int], freq: int, deterministic: bool, acting: Any = None
    ) -> None:
        super().__init__()
        self.env, self.seeds, self.freq, self.deterministic = env, seeds, freq, deterministic
        #: what acts in the evaluation (the model, or the model behind its normalization)
        self.acting = acting
        self.curve: list[tuple[int, float]] = []
        self._next = freq

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.freq
            episodes = evaluate_policy_on_seeds(
                self.acting if self.acting is not None else self.model,
                self.env,
                self.seeds,
                self.deterministic,
            )
            mean_return = float(np.mean([e.episode_return for e in episodes]))
            self.curve.append((self.num_timesteps, mean_return))
            self.logger.record("eval/mean_return", mean_return)
        return True


def _training_curve(progress_csv: Path) -> list[tuple[int, float]]:
    if not progress_csv.is_file() or progress_csv.stat().st_size == 0:
        return []
    frame = pd.read_csv(progress_csv)
    if "rollout/ep_rew_mean" not in frame or "time/total_timesteps" not in frame:
        return []
    frame = frame.dropna(subset=["rollout/ep_rew_mean", "time/total_timesteps"])
    steps = frame["time/total_timesteps"].astype(int)
    return list(zip(steps, frame["rollout/ep_rew_mean"], strict=True))


def _eval_seeds(spec: ExperimentSpec) -> list[int]:
    return [spec.eval.seed + k for k in range(spec.eval.episodes)]


#: a multi-policy run's Pareto set (its ``save()`` directory) and its evaluated front
PARETO_DIR = "pareto"
PARETO_FILE = "pareto.csv"
PARETO_PLOT = "pareto.png"


def evaluate_vector_returns(policy: Any, env: gym.Env, seeds: list[int]) -> np.ndarray:
    """Mean undiscounted vector return of ``policy`` on a multi-objective env over ``seeds``."""
    totals = []
    for seed in seeds:
        obs, _ = env.reset(seed=int(seed))
        total, done = None, False
        while not done:
            action, _ = policy.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            vector = np.asarray(reward, dtype=np.float64).reshape(-1)
            total = vector if total is None else total + vector
            done = terminated or truncated
        totals.append(total)
    return np.mean(totals, axis=0)


def _train_multi_policy(
    run: Run, spec: ExperimentSpec, workdir: Path, config: dict[str, Any]
) -> tuple[list[EpisodeResult], list[dict[str, Any]], dict[str, Any]]:
    """Train an agent whose result is a Pareto set of policies (C-MORL, a PPO grid), evaluate
    every policy of the set on the experiment's seeds, and score the front: hypervolume
    (against the env's documented reference point), expected utility and sparsity."""
    from opsrl.mo import (
        equally_spaced_weights,
        expected_utility,
        hypervolume,
        plot_pareto_front,
        reference_point,
        sparsity,
    )

    assert run.agent is not None
    agent_cls = registry.agent_class(run.agent.name)
    timesteps = agent_timesteps(run.agent, spec)
    hyperparams = _resolve_hyperparams(run.agent.hyperparams)
    try:
        model = agent_cls(
            run.env.id,
            env_kwargs=run.env.kwargs,
            total_timesteps=timesteps,
            seed=run.seed,
            device=spec.device,
            **hyperparams,
        )
    except (TypeError, ValueError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise RunError(f"agent '{run.agent.label}' on {run.env.id}: {message}") from None
    config["resolved"] = {
        "algorithm": f"{agent_cls.__module__}.{agent_cls.__name__}",
        "hyperparams": {k: _plain(v) for k, v in run.agent.hyperparams.items()},
        "device": spec.device,
    }
    _write_atomic(workdir / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))
    model.learn(total_timesteps=timesteps)
    model.save(workdir / PARETO_DIR)
    env = make_env(run.env.for_evaluation())
    seeds = _eval_seeds(spec)
    try:
        solutions = model.pareto_set()
        values = np.array([evaluate_vector_returns(s.policy, env, seeds) for s in solutions])
        reference = reference_point(env)
    finally:
        env.close()
    m = values.shape[1]
    front = pd.DataFrame(values, columns=[f"objective_{j}" for j in range(m)])
    for j in range(m):
        front.insert(j, f"weight_{j}", [float(s.weights[j]) for s in solutions])
    front.insert(0, "policy", [s.origin.get("id", i) for i, s in enumerate(solutions)])
    front.to_csv(workdir / PARETO_FILE, index=False)
    try:
        plot_pareto_front(
            values, path=workdir / PARETO_PLOT, reference_point=reference, title=run.name
        )
    except Exception:  # noqa: BLE001, S110 - a missing figure must not cost the results
        pass
    # C-MORL's EU grid: step 0.01 for 2 objectives, 0.1 for 3, 0.5 beyond (spec table)
    step = 0.01 if m == 2 else 0.1 if m == 3 else 0.5
    scores = {
        "mo/hypervolume": hypervolume(values, reference),
        "mo/expected_utility": expected_utility(values, equally_spaced_weights(m, step)),
        "mo/sparsity": sparsity(values),
        "mo/pareto_size": float(len(values)),
    }
    final_step = int(model.num_timesteps)
    # the summary ranks runs by "return": for a Pareto set that is its hypervolume
    rows = [{"step": final_step, "metric": "return", "value": scores["mo/hypervolume"]}]
    rows += [{"step": final_step, "metric": k, "value": v} for k, v in scores.items()]
    extra = {
        "reference_point": reference.tolist(),
        "front": front.to_dict(orient="records"),
        "scores": scores,
    }
    return [], rows, extra


def _train(
    run: Run, spec: ExperimentSpec, workdir: Path, sink: ProgressSink | None, config: dict[str, Any]
) -> tuple[list[EpisodeResult], list[dict[str, Any]]]:
    assert run.agent is not None
    per_agent = registry.agent_entry(run.agent.name).per_agent
    if per_agent:
        vec_kind = "agents"
        venv = make_agents_vec_env(run.env, spec.n_envs, run.seed)
    else:
        vec_kind = resolve_vec_env(run.env, spec.vec_env, spec.n_envs)
        venv = make_vec_env(run.env, spec.n_envs, run.seed, vec_kind)
    eval_env = make_env(run.env.for_evaluation())
    try:
        venv = wrap_normalize(run.agent, venv)
        model = build_agent(run.agent, venv, run.seed, spec.device)
        # evaluation acts on the plain env, with the training normalization applied to the
        # observations only (returns are the env's own), agent by agent for per-agent models
        acting: Any = (
            ObservationNormalizedPolicy(model, venv) if isinstance(venv, VecNormalize) else model
        )
        if per_agent:
            acting = PerAgentPolicy(acting, model.observation_space, model.action_space)
        agent_cls = type(model)
        resolved = {k: _plain(v) for k, v in constructor_defaults(agent_cls).items()}
        resolved.update(_plain(run.agent.hyperparams))
        config["resolved"] = {
            "algorithm": f"{agent_cls.__module__}.{agent_cls.__name__}",
            "hyperparams": resolved,
            "vec_env": vec_kind,
            "device": str(model.device),
        }
        _write_atomic(workdir / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))
        model.set_logger(configure_logger(str(workdir), ["csv", "tensorboard"]))
        seeds = _eval_seeds(spec)
        timesteps = agent_timesteps(run.agent, spec)
        callbacks: list[BaseCallback] = [_ProgressCallback(run.name, timesteps, sink)]
        periodic = None
        if spec.eval.freq > 0:
            periodic = _PeriodicEvalCallback(
                eval_env, seeds, spec.eval.freq, spec.eval.deterministic, acting
            )
            callbacks.append(periodic)
        model.learn(total_timesteps=timesteps, callback=callbacks)
        model.save(workdir / MODEL_FILE)
        if isinstance(venv, VecNormalize):
            venv.save(str(workdir / VECNORMALIZE_FILE))
        adapt_env = None
        if getattr(model, "eval_adapt_timesteps", 0) > 0:
            # a meta-learner (Reptile) is evaluated after adapting to the evaluation env
            adapt_env = make_vec_env(run.env.for_evaluation(), spec.n_envs, run.seed + 1, vec_kind)
            acting = model.policy_for_evaluation(adapt_env, seed=run.seed)
        try:
            episodes = evaluate_policy_on_seeds(
                acting, eval_env, seeds, spec.eval.deterministic, capture_trace=True
            )
        finally:
            if adapt_env is not None:
                adapt_env.close()
        rows = [
            {"step": step, "metric": "train/ep_rew_mean", "value": float(value)}
            for step, value in _training_curve(workdir / "progress.csv")
        ]
        if periodic is not None:
            rows += [{"step": s, "metric": "eval/return", "value": v} for s, v in periodic.curve]
        final_step = int(model.num_timesteps)
        model.logger.close()
    finally:
        venv.close()
        eval_env.close()
    rows += [
        {"step": final_step, "metric": k, "value": v}
        for k, v in summarize_episodes(episodes).items()
    ]
    return episodes, rows


def _evaluate_baseline(
    run: Run, spec: ExperimentSpec, workdir: Path, config: dict[str, Any]
) -> tuple[list[EpisodeResult], list[dict[str, Any]]]:
    env = make_env(run.env.for_evaluation())
    try:
        policy = build_baseline(run, env)
        _write_atomic(workdir / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))
        episodes = evaluate_policy_on_seeds(
            policy, env, _eval_seeds(spec), deterministic=True, capture_trace=True
        )
    finally:
        env.close()
    rows = [{"step": 0, "metric": k, "value": v} for k, v in summarize_episodes(episodes).items()]
    return episodes, rows


@dataclass
class RunOutcome:
    """How one run ended."""

    name: str
    status: str  # "finished", "skipped" (already finished) or "failed"
    error: str | None = None
    wall_time: float = 0.0


def execute_run(
    run: Run,
    spec: ExperimentSpec,
    exp_dir: Path,
    sink: ProgressSink | None = None,
    torch_threads: int | None = None,
) -> RunOutcome:
    """Train or evaluate one run into ``exp_dir/<run.name>/``, atomically."""
    if torch_threads is not None:
        import torch

        torch.set_num_threads(torch_threads)
    final_dir = exp_dir / run.name
    workdir = exp_dir / f".{run.name}{PARTIAL_SUFFIX}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    started = time.perf_counter()
    config = {
        "run": _plain(run_identity(run, spec)),
        "versions": _versions(),
        "host": {"platform": platform.platform(), "cpus": os.cpu_count()},
    }
    try:
        extra: dict[str, Any] = {}
        if run.agent is not None and registry.agent_entry(run.agent.name).multi_policy:
            episodes, rows, extra = _train_multi_policy(run, spec, workdir, config)
        elif run.agent is not None:
            episodes, rows = _train(run, spec, workdir, sink, config)
        else:
            episodes, rows = _evaluate_baseline(run, spec, workdir, config)
        wall_time = time.perf_counter() - started
        rows.append({"step": rows[-1]["step"], "metric": "wall_time_s", "value": wall_time})
        table = pd.DataFrame(rows)
        table.insert(0, "kind", run.kind)
        table.insert(0, "seed", run.seed)
        table.insert(0, "agent", run.policy_label)
        table.insert(0, "env", run.env.label)
        table.insert(0, "run", run.name)
        table.to_csv(workdir / RUN_RESULTS_FILE, index=False)
        evaluation = {
            "seeds": _eval_seeds(spec),
            "deterministic": spec.eval.deterministic,
            "summary": summarize_episodes(episodes) if episodes else extra.get("scores", {}),
            "episodes": [e.to_dict() for e in episodes],
            **{k: v for k, v in extra.items() if k != "scores"},
        }
        (workdir / EVAL_FILE).write_text(json.dumps(evaluation, indent=2))
        if episodes and episodes[0].trace is not None:
            episodes[0].trace.to_csv(workdir / TRACE_FILE, index=False)
        os.replace(workdir, final_dir)
        if sink is not None:
            sink(("done", run.name, 1, 1))
        return RunOutcome(run.name, "finished", wall_time=wall_time)
    except (RunError, SpecError) as error:
        shutil.rmtree(workdir, ignore_errors=True)
        return RunOutcome(run.name, "failed", error=str(error))
    except Exception as error:  # noqa: BLE001 - report any crash as this run's failure
        shutil.rmtree(workdir, ignore_errors=True)
        where = traceback.extract_tb(error.__traceback__)[-1]
        return RunOutcome(
            run.name,
            "failed",
            error=f"{type(error).__name__}: {error} ({Path(where.filename).name}:{where.lineno})",
        )


def is_finished(run_dir: Path) -> bool:
    """A run directory exists only once complete; check its files all the same."""
    return all((run_dir / name).is_file() for name in (CONFIG_FILE, EVAL_FILE, RUN_RESULTS_FILE))


# --------------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------------


@dataclass
class ExperimentResult:
    """What ``run_experiment`` returns."""

    exp_dir: Path
    outcomes: list[RunOutcome]
    table: pd.DataFrame
    summary: pd.DataFrame
    table_path: Path | None = None
    failures: list[RunOutcome] = field(default_factory=list)
    #: the experiment's ``report.md`` (None when not asked for or when it could not be made)
    report_path: Path | None = None


def validate(spec: ExperimentSpec) -> None:
    """Everything that can be checked before any run starts: env kwargs and hyperparameters."""
    for env_spec in spec.envs:
        make_env(env_spec).close()
        if env_spec.eval_kwargs:
            make_env(env_spec.for_evaluation()).close()
        resolve_vec_env(env_spec, spec.vec_env, spec.n_envs)
    for agent in spec.agents:
        check_hyperparams(agent)
        if agent.env_kwargs:
            for env_spec in spec.envs:
                make_env(env_spec.with_kwargs(agent.env_kwargs)).close()


def _pending_runs(spec: ExperimentSpec, exp_dir: Path, resume: bool) -> tuple[list[Run], list[Run]]:
    runs = expand(spec)
    finished = [run for run in runs if is_finished(exp_dir / run.name)]
    if finished and not resume:
        raise RunError(
            f"{exp_dir} already holds {len(finished)} finished run(s); pass --resume to finish "
            "the rest, or choose another --name"
        )
    for run in finished:
        saved = yaml.safe_load((exp_dir / run.name / CONFIG_FILE).read_text()).get("run")
        if saved != _plain(run_identity(run, spec)):
            raise RunError(
                f"finished run {exp_dir / run.name} was made with other settings than this spec; "
                "use another --name (finished runs are never overwritten)"
            )
    todo = [run for run in runs if run not in finished]
    return todo, finished


def run_experiment(
    spec: ExperimentSpec,
    resume: bool = False,
    workers: int | None = None,
    console: Any = None,
    progress: bool = True,
    report: bool = True,
) -> ExperimentResult:
    """Run every unfinished run of ``spec`` and build the experiment's results table.

    With ``report`` it then writes ``report.md`` and ``report.html`` (see
    :func:`opsrl.report.build_report`); a report that cannot be made costs a one-line warning,
    never the results.
    """
    from rich.console import Console

    console = console or Console()
    workers = workers or spec.workers
    validate(spec)
    exp_dir = Path(spec.output_dir) / spec.name
    exp_dir.mkdir(parents=True, exist_ok=True)
    todo, finished = _pending_runs(spec, exp_dir, resume)
    for stale in exp_dir.glob(f".*{PARTIAL_SUFFIX}"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a run that was killed
    _write_atomic(
        exp_dir / "spec.yaml", yaml.safe_dump(_plain(spec_to_dict(spec)), sort_keys=False)
    )
    if finished:
        console.print(f"[dim]{len(finished)} finished run(s) kept, {len(todo)} to run[/dim]")
    outcomes = [RunOutcome(run.name, "skipped") for run in finished]
    if spec.backend == "ray":
        from opsrl.ray_backend import run_ray

        outcomes += run_ray(todo, spec, exp_dir, workers, console)
    else:
        outcomes += _run_local(todo, spec, exp_dir, workers, console, progress)
    failures = [o for o in outcomes if o.status == "failed"]
    _write_atomic(
        exp_dir / FAILURES_FILE,
        json.dumps({o.name: o.error for o in failures}, indent=2),
    )
    table = results.collect(exp_dir, [run.name for run in expand(spec)])
    table_path = results.write_table(table, exp_dir / "results") if len(table) else None
    summary = results.summarize(table, spec.thresholds) if len(table) else pd.DataFrame()
    if len(summary):
        results.write_summary(summary, exp_dir / "summary.csv")
        results.plot_curves(table, exp_dir / "curves.png")
    report_path = _make_report(exp_dir, console) if report else None
    return ExperimentResult(exp_dir, outcomes, table, summary, table_path, failures, report_path)


def _make_report(exp_dir: Path, console: Any) -> Path | None:
    """The experiment's report, or None with a one-line warning: the results are already
    on disk and must survive whatever goes wrong here."""
    try:
        from opsrl.report import build_report

        return build_report(exp_dir).markdown
    except Exception as error:  # noqa: BLE001 - see the docstring
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        console.print(
            f"[yellow]warning: no report ({type(error).__name__}: {message}); "
            f"make it later with `opsrl report {exp_dir}`[/yellow]"
        )
        return None


def _run_local(
    runs: list[Run],
    spec: ExperimentSpec,
    exp_dir: Path,
    workers: int,
    console: Any,
    show_progress: bool,
) -> list[RunOutcome]:
    """The ``local`` backend: runs in this process (1 worker) or a spawn process pool."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not runs:
        return []
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not show_progress,
        transient=False,
    )
    overall = progress.add_task(f"experiment {spec.name}", total=len(runs))
    run_tasks: dict[str, Any] = {}

    def handle(message: tuple[str, str, int, int]) -> None:
        kind, name, done, total = message
        if name not in run_tasks:
            run_tasks[name] = progress.add_task(f"  {name}", total=total)
        if kind == "done":
            progress.update(run_tasks[name], completed=progress.tasks[run_tasks[name]].total)
        else:
            progress.update(run_tasks[name], completed=done)

    outcomes: list[RunOutcome] = []
    with progress:
        if workers == 1 or len(runs) == 1:
            for run in runs:
                outcome = execute_run(run, spec, exp_dir, sink=handle)
                outcomes.append(_report(outcome, console))
                progress.advance(overall)
            return outcomes
        threads = max(1, (os.cpu_count() or 1) // workers)
        context = multiprocessing.get_context("spawn")
        # the Manager's server process, like the pool's workers, ends with this process
        manager = SyncManager(ctx=context)
        manager.start(_exit_with_parent, (os.getpid(),))
        with manager:
            queue = manager.Queue()
            with ProcessPoolExecutor(
                max_workers=min(workers, len(runs)),
                mp_context=context,
                initializer=_exit_with_parent,
                initargs=(os.getpid(),),
            ) as pool:
                pending: set[Future] = {
                    pool.submit(execute_run, run, spec, exp_dir, queue.put, threads) for run in runs
                }
                while pending:
                    done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    while not queue.empty():
                        handle(queue.get())
                    for future in done:
                        outcomes.append(_report(future.result(), console))
                        progress.advance(overall)
    return outcomes


def _exit_with_parent(parent_pid: int, interval: float = 1.0) -> None:
    """Pool-worker initializer: end this worker when the ``opsrl run`` process is gone.

    A killed parent (SIGTERM, SIGKILL) cannot shut its pool down, and an orphaned worker would
    go on training its run and writing into the experiment directory -- possibly one a new
    ``opsrl run`` now owns. A daemon thread checks the parent every ``interval`` seconds.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="opsrl-parent-watch", daemon=True).start()


def _report(outcome: RunOutcome, console: Any) -> RunOutcome:
    if outcome.status == "failed":
        console.print(f"[red]run {outcome.name} failed:[/red] {outcome.error}")
    return outcome


# --------------------------------------------------------------------------------------------
# Re-evaluation of a saved model
# --------------------------------------------------------------------------------------------


def evaluate_run_dir(
    run_dir: str | Path,
    episodes: int | None = None,
    seed: int | None = None,
    capture_trace: bool = False,
    perturbation: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Load a finished run's model (or baseline) and evaluate it again on fixed seeds.

    With ``capture_trace`` the result also holds ``"trace"``: the env's episode trace of the
    first episode (a DataFrame, or None when the env has none). ``perturbation``
    (``{name: level}``, see :mod:`opsrl.perturb`) evaluates on the perturbed env instead; a
    meta-learner then adapts to the perturbed env.
    """
    from opsrl.perturb import PerturbedSpec

    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise RunError(f"{run_dir} is not a run directory (no {CONFIG_FILE})")
    identity = yaml.safe_load(config_path.read_text())["run"]
    env_spec = EnvSpec(**identity["env"])
    eval_cfg = identity["eval"]
    n = episodes if episodes is not None else eval_cfg["episodes"]
    first = seed if seed is not None else eval_cfg["seed"]
    seeds = [first + k for k in range(n)]
    target = PerturbedSpec(env_spec.for_evaluation(), perturbation)
    env = target.make()
    try:
        if identity["kind"] == "agent":
            model_path = run_dir / MODEL_FILE
            if not model_path.is_file():
                raise RunError(f"{run_dir} has no {MODEL_FILE}")
            agent_cls = registry.agent_class(identity["agent"]["name"])
            policy = agent_cls.load(model_path, device="auto")
            if getattr(policy, "eval_adapt_timesteps", 0) > 0:
                # a meta-learner (Reptile) is evaluated after adapting to the evaluation env
                adapt_env = target.make_vec(identity["n_envs"], identity["seed"] + 1)
                try:
                    policy = policy.policy_for_evaluation(adapt_env, seed=identity["seed"])
                finally:
                    adapt_env.close()
            stats = load_normalization(run_dir, env_spec)
            if stats is not None:
                policy = ObservationNormalizedPolicy(policy, stats)
            if registry.agent_entry(identity["agent"]["name"]).per_agent:
                policy = PerAgentPolicy(policy, policy.observation_space, policy.action_space)
        else:
            run = Run(
                identity["experiment"],
                env_spec,
                identity["seed"],
                baseline=BaselineSpec(**identity["baseline"]),
            )
            policy = build_baseline(run, env)
        results_list = evaluate_policy_on_seeds(
            policy, env, seeds, eval_cfg["deterministic"], capture_trace=capture_trace
        )
    finally:
        env.close()
    evaluation = {
        "run": str(run_dir),
        "seeds": seeds,
        "summary": summarize_episodes(results_list),
        "episodes": [e.to_dict() for e in results_list],
    }
    if perturbation:
        evaluation["perturbation"] = dict(perturbation)
    if capture_trace:
        evaluation["trace"] = results_list[0].trace if results_list else None
    return evaluation


def default_spec_path() -> Path:
    """The built-in quickstart experiment."""
    return Path(__file__).parent / "configs" / "quickstart.yaml"
