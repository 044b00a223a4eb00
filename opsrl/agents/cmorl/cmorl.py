"""C-MORL: constrained multi-objective RL that grows a Pareto set of policies.

C-MORL (Liu et al., ICLR 2025, https://arxiv.org/abs/2410.02236; code RuohLiuq/C-MORL, built
on PGMORL) finds a set of policies whose return vectors approximate the Pareto front:

1. **Pareto initialisation.** One :class:`~opsrl.agents.cmorl.moppo.MOPPO` per preference
   vector w of a simplex grid trains on the scalarised advantage ``w . A_vec`` for
   ``init_timesteps / M`` env steps each; every ``eval_interval`` updates the policy is
   evaluated (deterministic, ``eval_episodes`` episodes, discount ``eval_gamma``) and becomes
   a candidate.
2. **Pareto extension.** Repeatedly select up to ``num_select`` policies of the current
   Pareto archive by crowding distance (extremes first, skipping ones selected before) and,
   for each selected policy pi_r and each objective l, run ``update_iters`` constrained
   updates on a copy: maximise G_l subject to ``G_j >= beta * G_j^{pi_r}`` for j != l, by
   IPO's log barrier (:func:`~opsrl.agents.cmorl.moppo.barrier_policy_loss`), evaluating after
   every update (each evaluation is a candidate and gives the barrier the current G_j).

The archive keeps the non-dominated candidates (at least ``ref_point`` when given, at most
``archive_size`` by crowding distance). Differences from the reference code, all following
the paper's formulas (see the spec's code caveats): the barrier uses the per-objective
importance-weighted return estimate on the objective axis, not the minibatch return on the
batch axis; the budget counts real env steps (``n_steps * n_envs`` per update, every
process counted); the constraint level of a negative return is ``G - (1 - beta)|G|``
(:func:`~opsrl.agents.cmorl.moppo.constraint_thresholds`). Evaluation episodes are not
counted in the budget (as in the reference).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import pickle
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, TypeVar

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.save_util import data_to_json, json_to_data

from opsrl.agents.cmorl.moppo import (
    MOPPO,
    EnvSource,
    constraint_thresholds,
    evaluate_objectives,
    make_mo_env,
    make_mo_vec_env,
)
from opsrl.agents.cmorl.policies import MOActorCriticPolicy
from opsrl.agents.device_rollouts import rollouts_on_device
from opsrl.mo.metrics import equally_spaced_weights, hypervolume
from opsrl.mo.pareto import ParetoArchive, select_by_crowding

__all__ = ["CMORL", "ParetoSolution", "default_weight_step", "select_parents"]

SelfCMORL = TypeVar("SelfCMORL", bound="CMORL")

MANIFEST_FILE = "manifest.json"
FORMAT = "opsrl.cmorl/1"
#: MOPPO arguments that CMORL sets itself
_RESERVED_PPO_KWARGS = ("policy", "env", "n_objectives", "weights", "barrier_t", "seed", "device")
#: seeds of stage-2 extensions start here (stage-1 policy i uses seed + i)
_EXTENSION_SEED_OFFSET = 100_000


def default_weight_step(n_objectives: int) -> float:
    """Simplex grid spacing of the stage-1 preferences when none is given: 0.2 for two
    objectives (6 policies), 0.5 for three (6), 1 (the m one-hot vectors) beyond."""
    if n_objectives <= 2:
        return 0.2
    if n_objectives == 3:
        return 0.5
    return 1.0


class ParetoSolution(NamedTuple):
    """One policy of the Pareto set.

    ``weights``: the preference vector it was trained for (stage 1) or descends from (stage
    2); ``values``: its evaluated return vector; ``policy``: an
    :class:`~opsrl.agents.cmorl.policies.MOActorCriticPolicy` (``policy.predict(obs)``);
    ``origin``: how it was made (``stage``, ``update``; for stage 2 also ``parent``,
    ``objective`` and ``round``) and its ``id``.
    """

    weights: np.ndarray
    values: np.ndarray
    policy: MOActorCriticPolicy
    origin: dict[str, Any]


@dataclass
class _Candidate:
    """An evaluated policy snapshot: the archive's item."""

    key: int
    values: np.ndarray
    state: dict[str, th.Tensor]
    weights: np.ndarray
    origin: dict[str, Any]


@dataclass(frozen=True)
class _TaskConfig:
    """What every training task needs (sent to worker processes: all picklable)."""

    env: EnvSource
    env_kwargs: dict[str, Any]
    n_envs: int
    ppo_kwargs: dict[str, Any]
    barrier_t: float
    eval_episodes: int
    eval_gamma: float
    eval_seed: int
    eval_deterministic: bool
    device: str


@dataclass
class _TaskResult:
    candidates: list[tuple[np.ndarray, dict[str, th.Tensor], dict[str, Any]]] = field(
        default_factory=list
    )
    timesteps: int = 0


def select_parents(
    points: np.ndarray, num_select: int, selected_before: Sequence[np.ndarray] = ()
) -> np.ndarray:
    """Indices of the archive points a stage-2 round extends.

    The ``num_select`` points of largest crowding distance (extremes first, then the least
    crowded; ties by index), skipping points selected in earlier rounds, as C-MORL's
    ``morl/ep.py``. Once every point was selected before, the least crowded are extended
    again rather than leaving the rest of the budget unused.
    """
    chosen = select_by_crowding(points, num_select, exclude=list(selected_before) or None)
    if chosen.size == 0:
        chosen = select_by_crowding(points, num_select)
    return chosen


def _cpu_state(policy: MOActorCriticPolicy) -> dict[str, th.Tensor]:
    return {name: tensor.detach().cpu().clone() for name, tensor in policy.state_dict().items()}


class _EvaluateAfterUpdates(BaseCallback):
    """Evaluates the policy every ``interval`` updates, when the next rollout starts (the
    previous update is then done); with ``track_constraints`` the values also become the
    barrier's current values."""

    def __init__(
        self,
        evaluate: Callable[[], np.ndarray],
        interval: int,
        origin: dict[str, Any],
        result: _TaskResult,
        track_constraints: bool = False,
    ) -> None:
        super().__init__()
        self.evaluate = evaluate
        self.interval = interval
        self.origin = origin
        self.result = result
        self.track_constraints = track_constraints
        self.updates = -1
        self.last_evaluated = 0

    def _on_rollout_start(self) -> None:
        self.updates += 1
        if self.updates > 0 and self.updates % self.interval == 0:
            self.record()

    def record(self) -> None:
        """Evaluate now and store the candidate."""
        values = self.evaluate()
        model = self.model
        assert isinstance(model, MOPPO)
        self.result.candidates.append(
            (values, _cpu_state(model.policy), {**self.origin, "update": self.updates})
        )
        self.last_evaluated = self.updates
        if self.track_constraints:
            model.update_constraint_values(values)

    def _on_step(self) -> bool:
        return True


def _policy_name(observation_space: gym.Space) -> str:
    return "MultiInputPolicy" if isinstance(observation_space, gym.spaces.Dict) else "MlpPolicy"


def _build_moppo(config: _TaskConfig, weights: np.ndarray, seed: int) -> MOPPO:
    venv = make_mo_vec_env(config.env, config.n_envs, seed=seed, env_kwargs=config.env_kwargs)
    model = MOPPO(
        _policy_name(venv.observation_space),
        venv,
        weights=weights,
        barrier_t=config.barrier_t,
        seed=seed,
        device=config.device,
        **config.ppo_kwargs,
    )
    rollouts_on_device(model)  # on a GPU: each rollout copied once per update
    return model


def _train_task(
    config: _TaskConfig,
    weights: np.ndarray,
    updates: int,
    eval_interval: int,
    seed: int,
    origin: dict[str, Any],
    parent_state: dict[str, th.Tensor] | None = None,
    objective: int | None = None,
    levels: np.ndarray | None = None,
    parent_values: np.ndarray | None = None,
) -> _TaskResult:
    """Train one MOPPO for ``updates`` updates and return its evaluated snapshots.

    Stage 1: a fresh policy on the scalarised update. Stage 2 (``parent_state`` given): a
    copy of the parent maximising ``objective`` under the barrier with ``levels``.
    """
    model = _build_moppo(config, weights, seed)
    eval_env = make_mo_env(config.env, config.env_kwargs)
    result = _TaskResult()
    try:
        constrained = parent_state is not None
        if constrained:
            assert objective is not None and levels is not None and parent_values is not None
            model.policy.load_state_dict(parent_state)
            model.set_constraints(objective, levels, parent_values)

        def evaluate() -> np.ndarray:
            return evaluate_objectives(
                model.policy,
                eval_env,
                config.eval_episodes,
                config.eval_gamma,
                seed=config.eval_seed,
                deterministic=config.eval_deterministic,
            )

        callback = _EvaluateAfterUpdates(
            evaluate, eval_interval, origin, result, track_constraints=constrained
        )
        per_update = model.n_steps * model.n_envs
        model.learn(updates * per_update, callback=callback)
        callback.updates += 1  # the last update, after which no rollout starts
        if callback.last_evaluated != callback.updates:
            callback.record()
        result.timesteps = int(model.num_timesteps)
    finally:
        model.env.close()  # type: ignore[union-attr]
        eval_env.close()
    return result


def _init_worker(threads: int) -> None:
    th.set_num_threads(threads)
    import opsrl  # noqa: F401  (registers the opsrl env ids in the worker)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _number_in(name: str, value: Any, low: float, high: float, open_low: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    above = value > low if open_low else value >= low
    if not (math.isfinite(value) and above and value <= high):
        bracket = "(" if open_low else "["
        raise ValueError(f"{name} must be in {bracket}{low}, {high}], got {value}")
    return value


class CMORL:
    """C-MORL: a Pareto set of MOPPO policies from Pareto initialisation and constrained
    extension (see the module docstring).

    Not an SB3 algorithm but with the same face: ``learn()``, ``predict()``, ``save()`` /
    ``load()``. ``learn`` always starts from scratch; its result is :meth:`pareto_set`.

    **Budget.** ``init_timesteps`` real env steps go to stage 1 (``init_timesteps // M`` per
    policy, in whole updates of ``n_steps * n_envs`` steps); the rest of ``total_timesteps``
    to stage 2, in rounds of ``num_select * n_objectives`` extensions of ``update_iters``
    updates each; the last round runs only the extensions that still fit. ``num_timesteps``
    counts every env step of every policy.

    **Extensions.** Each (policy, objective) extension copies the parent's policy, with its
    observation and objective statistics, into a fresh MOPPO (new Adam state; a
    ``learning_rate`` schedule runs over the extension's ``update_iters`` updates).

    **Parallel policies.** With ``n_workers > 1`` the stage-1 policies and the extensions of a
    round train in a spawn process pool (each worker builds its env from ``env`` and
    ``env_kwargs``: an id, or a picklable factory such as a module-level function); results
    do not depend on ``n_workers``. With ``n_workers=1`` everything runs in this process.

    :param env: Env id (``gym.make``; ``"module:id"`` imports the module, e.g.
        ``"mo_gymnasium:deep-sea-treasure-v0"``) or a factory returning an MO env (numpy
        reward vector, ``reward_space``)
    :param env_kwargs: Keyword arguments of ``gym.make`` or of the factory
    :param weight_step: Spacing of the simplex grid of stage-1 preferences; None: see
        :func:`default_weight_step`
    :param init_weights: Stage-1 preferences (M, m) instead of the grid
    :param init_timesteps: Env steps of stage 1 (all its policies together); None: two
        thirds of ``total_timesteps`` (the reference's 1.0M of 1.5M on MuJoCo)
    :param total_timesteps: Env steps of both stages (``learn`` may override it)
    :param num_select: N, policies selected per stage-2 round
    :param constraint_beta: beta in (0, 1): each other objective keeps at least beta of its
        value (for negative values, loses at most 1 - beta of its magnitude)
    :param barrier_t: IPO's t: the barrier is ``(1/t) log(G_j - c_j)``
    :param update_iters: Constrained updates per extension (one per objective per selected
        policy)
    :param eval_episodes: Episodes per evaluation
    :param eval_gamma: Discount of the evaluated returns; None: MOPPO's ``gamma`` (the barrier
        compares evaluated values with training advantages, so they had best agree)
    :param eval_interval: Stage 1 evaluates every this many updates (and after the last)
    :param eval_deterministic: Evaluate with deterministic actions (C-MORL does)
    :param ppo_kwargs: MOPPO hyperparameters (``n_steps``, ``batch_size``, ``gamma``,
        ``learning_rate``, ``policy_kwargs``, ...); CMORL sets the env, weights, barrier,
        seed and device itself
    :param n_envs: Training env copies per policy (``DummyVecEnv``)
    :param ref_point: Candidates below it in any objective are not archived; with it
        ``history`` records the hypervolume
    :param archive_size: Most policies kept in the archive (by crowding distance)
    :param n_workers: Processes that train policies in parallel (1: in this process)
    :param seed: Seed: stage-1 policy i uses ``seed + i``, evaluations ``seed + episode``
    :param device: Torch device of the learners (``auto``: GPU if any)
    :param verbose: 1 prints a line per stage and round
    """

    #: tells a runner that ``learn`` yields a set of policies (``pareto_set``), not one
    multi_policy: ClassVar[bool] = True

    def __init__(
        self,
        env: EnvSource,
        env_kwargs: dict[str, Any] | None = None,
        weight_step: float | None = None,
        init_weights: Sequence[Sequence[float]] | np.ndarray | None = None,
        init_timesteps: int | None = None,
        total_timesteps: int = 500_000,
        num_select: int = 5,
        constraint_beta: float = 0.9,
        barrier_t: float = 20.0,
        update_iters: int = 20,
        eval_episodes: int = 5,
        eval_gamma: float | None = None,
        eval_interval: int = 10,
        eval_deterministic: bool = True,
        ppo_kwargs: dict[str, Any] | None = None,
        n_envs: int = 1,
        ref_point: Sequence[float] | np.ndarray | None = None,
        archive_size: int = 200,
        n_workers: int = 1,
        seed: int = 0,
        device: str = "auto",
        verbose: int = 0,
    ) -> None:
        if not (isinstance(env, str) or callable(env)):
            raise ValueError(f"env must be an env id or an env factory, got {env!r}")
        self.env = env
        self.env_kwargs = dict(env_kwargs or {})
        self.total_timesteps = _positive_int("total_timesteps", total_timesteps)
        if init_timesteps is None:
            # the reference's MuJoCo ratio: 1.0M of 1.5M steps in stage 1
            init_timesteps = (2 * self.total_timesteps) // 3
        self.init_timesteps = _positive_int("init_timesteps", init_timesteps)
        self.num_select = _positive_int("num_select", num_select)
        self.constraint_beta = _number_in("constraint_beta", constraint_beta, 0.0, 1.0)
        if self.constraint_beta == 1.0:
            raise ValueError("constraint_beta must be in (0, 1), got 1.0")
        self.barrier_t = _number_in("barrier_t", barrier_t, 0.0, math.inf)
        self.update_iters = _positive_int("update_iters", update_iters)
        self.eval_episodes = _positive_int("eval_episodes", eval_episodes)
        self.eval_interval = _positive_int("eval_interval", eval_interval)
        self.eval_deterministic = bool(eval_deterministic)
        self.n_envs = _positive_int("n_envs", n_envs)
        self.archive_size = _positive_int("archive_size", archive_size)
        self.n_workers = _positive_int("n_workers", n_workers)
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.seed = int(seed)
        self.device = str(device)
        self.verbose = int(verbose)
        self.ppo_kwargs = dict(ppo_kwargs or {})
        reserved = sorted(set(self.ppo_kwargs) & set(_RESERVED_PPO_KWARGS))
        if reserved:
            raise ValueError(
                f"ppo_kwargs must not set {', '.join(reserved)}: CMORL sets them "
                "(barrier_t, seed and device are CMORL arguments)"
            )
        if self.n_workers > 1 and not isinstance(env, str):
            try:
                pickle.dumps(env)
            except Exception as error:  # noqa: BLE001 - any pickling failure means the same
                raise ValueError(
                    "env must be an env id or a picklable factory (a module-level function or "
                    f"functools.partial) when n_workers > 1: {error}"
                ) from None

        # a template learner: checks env and ppo_kwargs here, gives the policy's layout
        probe = make_mo_env(self.env, self.env_kwargs)
        try:
            template = MOPPO(
                _policy_name(probe.observation_space),
                probe,
                barrier_t=self.barrier_t,
                device="cpu",
                **self.ppo_kwargs,
            )
        finally:
            probe.close()
        assert template.n_objectives is not None
        self.n_objectives = template.n_objectives
        self.n_steps = int(template.n_steps)
        self.gamma = float(template.gamma)
        self._policy_class = type(template.policy)
        self._policy_constructor = template.policy._get_constructor_parameters()
        template.env.close()  # type: ignore[union-attr]
        del template

        m = self.n_objectives
        self.eval_gamma = (
            self.gamma if eval_gamma is None else _number_in("eval_gamma", eval_gamma, 0.0, 1.0)
        )
        if init_weights is not None:
            weights = np.asarray(init_weights, dtype=np.float64)
            if weights.ndim != 2 or weights.shape[1] != m or weights.shape[0] < 1:
                raise ValueError(f"init_weights must have shape (M, {m}), got {weights.shape}")
            if not np.all(np.isfinite(weights)) or np.any(weights < 0):
                raise ValueError("init_weights must be finite and >= 0")
            if np.any(weights.sum(axis=1) <= 0):
                raise ValueError("every row of init_weights needs a positive entry")
            self.weight_step = None if weight_step is None else float(weight_step)
        else:
            step = default_weight_step(m) if weight_step is None else weight_step
            weights = equally_spaced_weights(m, step)
            self.weight_step = float(step)
        self.init_weights = weights
        self.ref_point = None
        if ref_point is not None:
            self.ref_point = np.asarray(ref_point, dtype=np.float64).reshape(-1)
            if self.ref_point.shape != (m,):
                raise ValueError(f"ref_point must have {m} entries, got {self.ref_point.size}")
        self._check_budget(self.total_timesteps)

        self.num_timesteps = 0
        self.history: list[dict[str, Any]] = []
        self._archive = self._new_archive()
        self._policies: dict[int, MOActorCriticPolicy] = {}
        self._next_key = 0

    # ----------------------------------------------------------------------------------------
    # Budget and archive
    # ----------------------------------------------------------------------------------------

    @property
    def steps_per_update(self) -> int:
        """Real env steps of one MOPPO update: ``n_steps * n_envs``."""
        return self.n_steps * self.n_envs

    def stage1_updates(self) -> int:
        """Updates of each stage-1 policy: ``(init_timesteps // M) // steps_per_update``."""
        return (self.init_timesteps // len(self.init_weights)) // self.steps_per_update

    def _check_budget(self, total_timesteps: int) -> None:
        if self.init_timesteps > total_timesteps:
            raise ValueError(
                f"init_timesteps ({self.init_timesteps}) must not exceed total_timesteps "
                f"({total_timesteps})"
            )
        if self.stage1_updates() < 1:
            need = len(self.init_weights) * self.steps_per_update
            raise ValueError(
                f"init_timesteps ({self.init_timesteps}) is too small: the "
                f"{len(self.init_weights)} stage-1 policies need at least n_steps * n_envs = "
                f"{self.steps_per_update} steps each ({need} in all)"
            )

    def _new_archive(self) -> ParetoArchive:
        return ParetoArchive(
            self.n_objectives, max_size=self.archive_size, ref_point=self.ref_point
        )

    def _add_candidates(self, results: list[_TaskResult], weights: list[np.ndarray]) -> None:
        for result, task_weights in zip(results, weights, strict=True):
            self.num_timesteps += result.timesteps
            for values, state, origin in result.candidates:
                key = self._next_key
                self._next_key += 1
                candidate = _Candidate(
                    key, np.asarray(values, dtype=np.float64), state, task_weights, origin
                )
                candidate.origin = {**origin, "id": key}
                self._archive.add(candidate.values, candidate)
        kept = {item.key for item in self._archive.items}
        self._policies = {k: p for k, p in self._policies.items() if k in kept}

    def _record(self, stage: int, round_index: int) -> None:
        entry: dict[str, Any] = {
            "stage": stage,
            "round": round_index,
            "num_timesteps": self.num_timesteps,
            "archive_size": len(self._archive),
        }
        if self.ref_point is not None and len(self._archive):
            entry["hypervolume"] = float(hypervolume(self._archive.points, self.ref_point))
        self.history.append(entry)
        if self.verbose >= 1:
            print(
                f"C-MORL stage {stage} round {round_index}: {self.num_timesteps} steps, "
                f"{len(self._archive)} Pareto policies"
                + (f", HV {entry['hypervolume']:.4g}" if "hypervolume" in entry else "")
            )

    # ----------------------------------------------------------------------------------------
    # Learning
    # ----------------------------------------------------------------------------------------

    def _config(self) -> _TaskConfig:
        return _TaskConfig(
            env=self.env,
            env_kwargs=self.env_kwargs,
            n_envs=self.n_envs,
            ppo_kwargs=self.ppo_kwargs,
            barrier_t=self.barrier_t,
            eval_episodes=self.eval_episodes,
            eval_gamma=self.eval_gamma,
            eval_seed=self.seed,
            eval_deterministic=self.eval_deterministic,
            device=self.device,
        )

    def _run(self, pool: Executor | None, tasks: list[dict[str, Any]]) -> list[_TaskResult]:
        config = self._config()
        if pool is None:
            return [_train_task(config, **task) for task in tasks]
        futures = [pool.submit(_train_task, config, **task) for task in tasks]
        return [future.result() for future in futures]

    def learn(
        self: SelfCMORL, total_timesteps: int | None = None, executor: Executor | None = None
    ) -> SelfCMORL:
        """Run stage 1 and stage 2 from scratch within ``total_timesteps`` env steps (default:
        the constructor's) and fill the Pareto archive.

        :param total_timesteps: Env steps of both stages (overrides the constructor's)
        :param executor: Where the independent trainings run: a ``concurrent.futures``
            executor of the caller's (an experiment backend's worker pool), left open
            afterwards; None (default) uses ``n_workers`` (a spawn process pool, or this
            process for 1)
        """
        if total_timesteps is not None:
            total_timesteps = _positive_int("total_timesteps", total_timesteps)
            self._check_budget(total_timesteps)
            self.total_timesteps = total_timesteps
        self.num_timesteps = 0
        self.history = []
        self._archive = self._new_archive()
        self._policies = {}
        self._next_key = 0
        own_pool: ProcessPoolExecutor | None = None
        if executor is None and self.n_workers > 1:
            threads = max(1, (os.cpu_count() or 1) // self.n_workers)
            own_pool = ProcessPoolExecutor(
                max_workers=self.n_workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(threads,),
            )
        pool = executor if executor is not None else own_pool
        try:
            self._stage1(pool)
            self._stage2(pool)
        finally:
            if own_pool is not None:
                own_pool.shutdown()
        return self

    def _stage1(self, pool: Executor | None) -> None:
        updates = self.stage1_updates()
        tasks = [
            {
                "weights": weights,
                "updates": updates,
                "eval_interval": self.eval_interval,
                "seed": self.seed + index,
                "origin": {"stage": 1, "weights": weights.tolist()},
            }
            for index, weights in enumerate(self.init_weights)
        ]
        results = self._run(pool, tasks)
        self._add_candidates(results, [task["weights"] for task in tasks])
        self._record(stage=1, round_index=0)

    def _stage2(self, pool: Executor | None) -> None:
        per_extension = self.update_iters * self.steps_per_update
        selected_before: list[np.ndarray] = []
        round_index, extension_seed = 0, self.seed + _EXTENSION_SEED_OFFSET
        while self.total_timesteps - self.num_timesteps >= per_extension:
            if not len(self._archive):
                warnings.warn(
                    "C-MORL stage 2 stopped: the Pareto archive is empty (no candidate reached "
                    "ref_point)",
                    stacklevel=3,
                )
                return
            points, items = self._archive.points, self._archive.items
            chosen = select_parents(points, self.num_select, selected_before)
            selected_before += [points[i] for i in chosen]
            affordable = (self.total_timesteps - self.num_timesteps) // per_extension
            round_index += 1
            tasks, weights = [], []
            for i in chosen:
                parent: _Candidate = items[i]
                for objective in range(self.n_objectives):
                    levels = constraint_thresholds(parent.values, self.constraint_beta)
                    levels[objective] = -np.inf
                    tasks.append(
                        {
                            "weights": parent.weights,
                            "updates": self.update_iters,
                            "eval_interval": 1,
                            "seed": extension_seed,
                            "origin": {
                                "stage": 2,
                                "round": round_index,
                                "parent": parent.key,
                                "objective": objective,
                            },
                            "parent_state": parent.state,
                            "objective": objective,
                            "levels": levels,
                            "parent_values": parent.values,
                        }
                    )
                    weights.append(parent.weights)
                    extension_seed += 1
            tasks, weights = tasks[:affordable], weights[:affordable]
            results = self._run(pool, tasks)
            self._add_candidates(results, weights)
            self._record(stage=2, round_index=round_index)

    # ----------------------------------------------------------------------------------------
    # The Pareto set
    # ----------------------------------------------------------------------------------------

    def _policy(self, candidate: _Candidate) -> MOActorCriticPolicy:
        policy = self._policies.get(candidate.key)
        if policy is None:
            policy = self._policy_class(**self._policy_constructor)
            policy.load_state_dict(candidate.state)
            policy.set_training_mode(False)
            self._policies[candidate.key] = policy
        return policy

    def _sorted_candidates(self) -> list[_Candidate]:
        items: list[_Candidate] = self._archive.items
        if not items:
            return []
        order = np.lexsort(np.stack([c.values for c in items]).T[::-1])
        return [items[i] for i in order]

    def pareto_set(self) -> list[ParetoSolution]:
        """The non-dominated policies found, sorted by their values (first objective
        ascending, then the next ones)."""
        return [
            ParetoSolution(c.weights.copy(), c.values.copy(), self._policy(c), dict(c.origin))
            for c in self._sorted_candidates()
        ]

    def pareto_front(self) -> np.ndarray:
        """The values of :meth:`pareto_set`, (k, n_objectives)."""
        candidates = self._sorted_candidates()
        if not candidates:
            return np.zeros((0, self.n_objectives))
        return np.stack([c.values for c in candidates])

    def policy_for(self, weights: Sequence[float] | np.ndarray) -> ParetoSolution:
        """The solution maximising ``weights . J`` (the first of equals)."""
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (self.n_objectives,):
            raise ValueError(f"weights must have shape ({self.n_objectives},), got {weights.shape}")
        solutions = self.pareto_set()
        if not solutions:
            raise ValueError("the Pareto set is empty: call learn() (or load()) first")
        best = int(np.argmax([weights @ s.values for s in solutions]))
        return solutions[best]

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        weights: Sequence[float] | np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """SB3's ``predict`` with the archived policy maximising ``weights . J`` (default
        weights: uniform)."""
        if weights is None:
            weights = np.full(self.n_objectives, 1.0 / self.n_objectives)
        policy = self.policy_for(weights).policy
        return policy.predict(observation, state, episode_start, deterministic)

    # ----------------------------------------------------------------------------------------
    # Save / load
    # ----------------------------------------------------------------------------------------

    def _constructor_arguments(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "env_kwargs": self.env_kwargs,
            "weight_step": self.weight_step,
            "init_weights": self.init_weights.tolist(),
            "init_timesteps": self.init_timesteps,
            "total_timesteps": self.total_timesteps,
            "num_select": self.num_select,
            "constraint_beta": self.constraint_beta,
            "barrier_t": self.barrier_t,
            "update_iters": self.update_iters,
            "eval_episodes": self.eval_episodes,
            "eval_gamma": self.eval_gamma,
            "eval_interval": self.eval_interval,
            "eval_deterministic": self.eval_deterministic,
            "ppo_kwargs": self.ppo_kwargs,
            "n_envs": self.n_envs,
            "ref_point": None if self.ref_point is None else self.ref_point.tolist(),
            "archive_size": self.archive_size,
            "n_workers": self.n_workers,
            "seed": self.seed,
            "device": self.device,
            "verbose": self.verbose,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the Pareto set to directory ``path``: ``policy_<k>.pt`` per policy (SB3's
        ``BasePolicy.save``) and ``manifest.json`` (values, weights, origins, history and the
        constructor arguments, SB3-style JSON)."""
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        solutions = []
        for index, solution in enumerate(self.pareto_set()):
            name = f"policy_{index:03d}.pt"
            solution.policy.save(str(directory / name))
            solutions.append(
                {
                    "file": name,
                    "values": solution.values.tolist(),
                    "weights": solution.weights.tolist(),
                    "origin": solution.origin,
                }
            )
        manifest = {
            "format": FORMAT,
            "n_objectives": self.n_objectives,
            "num_timesteps": self.num_timesteps,
            "solutions": solutions,
            "history": self.history,
            "arguments": json.loads(data_to_json(self._constructor_arguments())),
        }
        (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
        return directory

    @classmethod
    def load(
        cls: type[SelfCMORL],
        path: str | os.PathLike[str],
        env: EnvSource | None = None,
        device: str = "auto",
    ) -> SelfCMORL:
        """The C-MORL object saved in directory ``path``, with its Pareto set.

        :param path: A directory written by :meth:`save`
        :param env: The env (id or factory) to use instead of the saved one (needed when the
            saved env was a factory that cannot be restored)
        :param device: Device of the loaded policies
        """
        directory = Path(path)
        manifest_path = directory / MANIFEST_FILE
        if not manifest_path.is_file():
            raise ValueError(f"path {directory} holds no C-MORL manifest ({MANIFEST_FILE})")
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{manifest_path}: unknown format {manifest.get('format')!r}")
        arguments = json_to_data(json.dumps(manifest["arguments"]))
        if env is not None:
            arguments["env"] = env
        if not (isinstance(arguments.get("env"), str) or callable(arguments.get("env"))):
            raise ValueError("the saved env cannot be restored here: pass env=... to load()")
        arguments["device"] = device
        model = cls(**arguments)
        model.num_timesteps = int(manifest["num_timesteps"])
        model.history = list(manifest["history"])
        for entry in manifest["solutions"]:
            policy = model._policy_class.load(str(directory / entry["file"]), device=device)
            policy.set_training_mode(False)
            key = int(entry["origin"].get("id", model._next_key))
            model._next_key = max(model._next_key, key + 1)
            candidate = _Candidate(
                key,
                np.asarray(entry["values"], dtype=np.float64),
                _cpu_state(policy),
                np.asarray(entry["weights"], dtype=np.float64),
                dict(entry["origin"]),
            )
            model._archive.add(candidate.values, candidate)
            model._policies[key] = policy
        return model


class LinearScalarizationGrid(CMORL):
    """The linear-scalarisation baseline of C-MORL's comparison: one multi-objective PPO per
    preference on the simplex grid, trained on ``w . r`` with the whole budget split among
    them, and no constrained extension (C-MORL's stage 1 alone, ``init_timesteps =
    total_timesteps``). Its Pareto set is the non-dominated part of the grid's policies.
    Arguments as :class:`CMORL` (``init_timesteps`` and the stage-2 ones are not used).
    """

    def __init__(self, env: EnvSource, total_timesteps: int = 500_000, **kwargs: Any) -> None:
        kwargs.pop("init_timesteps", None)
        super().__init__(
            env, total_timesteps=total_timesteps, init_timesteps=total_timesteps, **kwargs
        )

    def learn(
        self: SelfCMORL, total_timesteps: int | None = None, executor: Executor | None = None
    ) -> SelfCMORL:
        """Train the grid's policies with all of ``total_timesteps`` (stage 1 only)."""
        if total_timesteps is not None:
            self.init_timesteps = _positive_int("total_timesteps", total_timesteps)
        return super().learn(total_timesteps=total_timesteps, executor=executor)
