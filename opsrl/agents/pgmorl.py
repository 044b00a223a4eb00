"""PGMORL from morl-baselines as an opsrl multi-policy agent (the ``morl`` extra).

PGMORL (Xu et al., ICML 2020, https://proceedings.mlr.press/v119/xu20h.html) evolves a
population of multi-objective PPO policies: a warm-up on a weight grid, then generations in
which a prediction model of each (policy, weight) pair's improvement picks the next tasks by
hypervolume and sparsity. This module runs morl-baselines' implementation
(``morl_baselines.multi_policy.pgmorl.PGMORL``) unchanged and adds what the experiment
runner needs (the :class:`~opsrl.agents.cmorl.CMORL` interface): a budget in env steps, env
ids with keyword arguments, a Pareto set of policies that act on raw observations, and
``save``/``load``.

What this wrapper fixes around the library, and why:

- PGMORL trains on observations normalised by running statistics (its env factory wraps
  ``NormalizeObservation``) but evaluates on the ``eval_env`` it is given, raw. The eval env
  passed here normalises with the training env's live statistics, and each archived policy
  keeps the statistics of the moment it was archived, so its ``predict`` takes raw
  observations.
- Its warm-up and generation lengths are iteration counts independent of
  ``total_timesteps`` (the defaults alone are 4M env steps); here they are derived from the
  budget (half warm-up, then four generations) unless given, and the total is rounded down
  to whole generations so the budget is never exceeded.
- Its evaluation samples actions; :meth:`pareto_set` policies act with the Gaussian mean
  when ``deterministic=True`` (as SB3 does).

PGMORL handles Box action spaces only (morl-baselines' MOPPO is Gaussian); other envs get a
one-line error.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import gymnasium as gym
import numpy as np
import torch as th

from opsrl.agents.cmorl.cmorl import ParetoSolution
from opsrl.agents.cmorl.moppo import make_mo_env

__all__ = ["PGMORLAgent", "NormalizedGaussianPolicy"]

SelfPGMORL = TypeVar("SelfPGMORL", bound="PGMORLAgent")

MANIFEST_FILE = "manifest.json"
FORMAT = "opsrl.pgmorl/1"
#: PGMORL's own clip after normalisation (morl_baselines.single_policy.ser.mo_ppo.make_env)
_OBS_CLIP = 10.0
#: PGMORL arguments the wrapper sets itself
_RESERVED = (
    "env_id",
    "origin",
    "env",
    "seed",
    "device",
    "log",
    "net_arch",
    "num_envs",
    "pop_size",
    "warmup_iterations",
    "steps_per_iteration",
    "evolutionary_iterations",
    "delta_weight",
)


def _require_morl_baselines() -> Any:
    try:
        from morl_baselines.multi_policy.pgmorl import pgmorl
    except ImportError as error:
        raise ImportError(
            "pgmorl needs morl-baselines: pip install -c constraints.txt -e '.[morl]'"
        ) from error
    return pgmorl


def _normalized(
    observation: np.ndarray, mean: np.ndarray, var: np.ndarray, epsilon: float
) -> np.ndarray:
    """PGMORL's observation transform: ``NormalizeObservation`` then a clip to +-10."""
    normalized = (np.asarray(observation) - mean) / np.sqrt(var + epsilon)
    return np.clip(normalized, -_OBS_CLIP, _OBS_CLIP).astype(np.float32)


class NormalizedGaussianPolicy:
    """A PGMORL policy that acts on raw observations: normalise with the running statistics
    it was trained with (mean, variance, epsilon; clipped to +-10 as in training), then the
    Gaussian actor (its mean when deterministic), clipped to the action space.

    :param network: morl-baselines ``MOPPONet``
    :param obs_mean, obs_var, epsilon: the ``NormalizeObservation`` statistics
    :param action_low, action_high: the action space's bounds
    """

    def __init__(
        self,
        network: th.nn.Module,
        obs_mean: np.ndarray,
        obs_var: np.ndarray,
        epsilon: float,
        action_low: np.ndarray,
        action_high: np.ndarray,
    ) -> None:
        self.network = network
        self.obs_mean = np.asarray(obs_mean, dtype=np.float64)
        self.obs_var = np.asarray(obs_var, dtype=np.float64)
        self.epsilon = float(epsilon)
        self.action_low = np.asarray(action_low, dtype=np.float32)
        self.action_high = np.asarray(action_high, dtype=np.float32)

    def normalize(self, observation: np.ndarray) -> np.ndarray:
        return _normalized(observation, self.obs_mean, self.obs_var, self.epsilon)

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """SB3's ``predict``: the action for one observation (or a batch)."""
        obs = self.normalize(observation)
        single = obs.ndim == self.obs_mean.ndim
        batch = th.as_tensor(obs[None] if single else obs, dtype=th.float32)
        device = next(self.network.parameters()).device
        with th.no_grad():
            mean = self.network.actor_mean(batch.reshape(len(batch), -1).to(device))
            if deterministic:
                action = mean
            else:
                std = th.exp(self.network.actor_logstd.expand_as(mean))
                action = th.normal(mean, std)
        action_np = action.cpu().numpy().reshape((len(batch), *self.action_low.shape))
        action_np = np.clip(action_np, self.action_low, self.action_high)
        return (action_np[0] if single else action_np), None


def _normalizer(env: gym.Env) -> gym.wrappers.NormalizeObservation:
    """The ``NormalizeObservation`` layer of one of PGMORL's training envs."""
    layer: Any = env
    while not isinstance(layer, gym.wrappers.NormalizeObservation):
        if not hasattr(layer, "env"):
            raise RuntimeError("PGMORL's training env has no NormalizeObservation wrapper")
        layer = layer.env
    return layer


class _LiveNormalizedObservation(gym.ObservationWrapper):
    """Evaluation env of PGMORL: raw env, observations normalised with the training env's
    current statistics (read, never updated)."""

    def __init__(self, env: gym.Env, source: gym.wrappers.NormalizeObservation) -> None:
        super().__init__(env)
        self._source = source

    def observation(self, observation: np.ndarray) -> np.ndarray:
        rms = self._source.obs_rms
        return _normalized(observation, rms.mean, rms.var, self._source.epsilon)


def _stats_recording_archive(base: type, source: gym.wrappers.NormalizeObservation) -> Any:
    """A morl-baselines ``ParetoArchive`` that remembers, for each archived policy copy, the
    observation statistics at the moment it was archived."""

    class _Archive(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.stats: dict[int, tuple[np.ndarray, np.ndarray]] = {}

        def add(self, candidate: Any, evaluation: np.ndarray) -> None:
            stats = (source.obs_rms.mean.copy(), source.obs_rms.var.copy())
            super().add(candidate, evaluation)
            # the copy just stored is the last individual if it survived the filtering
            for individual, value in zip(self.individuals, self.evaluations, strict=True):
                if value is evaluation:
                    self.stats[id(individual)] = stats
            alive = {id(individual) for individual in self.individuals}
            self.stats = {key: val for key, val in self.stats.items() if key in alive}

    return _Archive()


def _make_for_pgmorl(base_id: str, base_kwargs: dict[str, Any], render_mode: Any = None) -> gym.Env:
    """The env of ``base_id`` with ``base_kwargs``; PGMORL's request for an ``rgb_array``
    render mode (for videos it never records) is dropped, since not every env renders."""
    return make_mo_env(base_id, base_kwargs)


_make_for_pgmorl.metadata = {"render_modes": ["rgb_array"]}  # type: ignore[attr-defined]


def _alias_env_id(env_id: str, env_kwargs: dict[str, Any]) -> str:
    """An env id that makes ``env_id`` with ``env_kwargs`` (PGMORL makes its envs from a bare
    id with ``mo_gymnasium.make``, asking for ``render_mode="rgb_array"``)."""
    from opsrl import registry

    registry.ensure_env_registered(env_id)
    key = json.dumps([env_id, env_kwargs], sort_keys=True, default=str)
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    alias = f"opsrl-pgmorl/{gym.spec(env_id).name}-{digest}-v0"
    if alias not in gym.registry:
        gym.register(
            alias,
            entry_point=functools.partial(_make_for_pgmorl, env_id, dict(env_kwargs)),
            disable_env_checker=True,
        )
    return alias


class PGMORLAgent:
    """morl-baselines' PGMORL with the opsrl multi-policy interface.

    :param env: Env id of a multi-objective env (vector reward, ``reward_space``, Box actions)
    :param env_kwargs: Its keyword arguments
    :param total_timesteps: Env steps of all policies together (a ceiling: rounded down to
        whole generations)
    :param pop_size: Policies trained in parallel (PGMORL's ``pop_size``, at least the warm-up
        grid's size, ``1/delta_weight + 1`` for 2 objectives)
    :param num_envs: Envs per policy rollout
    :param steps_per_iteration: Steps per env per PPO update
    :param warmup_iterations: PPO updates per policy in the warm-up (default: half the budget)
    :param evolutionary_iterations: PPO updates per policy per generation (default: a quarter
        of the rest)
    :param delta_weight: Spacing of the warm-up weight grid (candidates use half of it)
    :param net_arch: Hidden layers of the actor and of the vector critic
    :param ref_point: Reference point of the hypervolume the task selection maximises, and
        PGMORL's ``origin`` (default: the env's documented reference point,
        :func:`opsrl.mo.reference_point`)
    :param seed: Seed of PGMORL, its envs and torch
    :param device: Torch device
    :param ppo_kwargs: Further PGMORL arguments, those of its PPO (``gamma``,
        ``learning_rate``, ``num_minibatches`` (default 16 here), ``update_epochs``,
        ``clip_coef``, ``ent_coef``, ...) and ``sparsity_coef``, ``num_weight_candidates``,
        ``num_performance_buffer``, ``performance_buffer_size``
    """

    def __init__(
        self,
        env: str,
        env_kwargs: dict[str, Any] | None = None,
        total_timesteps: int = 100_000,
        pop_size: int = 6,
        num_envs: int = 4,
        steps_per_iteration: int = 256,
        warmup_iterations: int | None = None,
        evolutionary_iterations: int | None = None,
        delta_weight: float = 0.2,
        net_arch: Sequence[int] = (64, 64),
        ref_point: Sequence[float] | None = None,
        seed: int | None = 0,
        ppo_kwargs: dict[str, Any] | None = None,
        device: str = "auto",
        verbose: int = 0,
    ) -> None:
        if not isinstance(env, str):
            raise ValueError(f"pgmorl needs an env id (it makes its own envs), got {env!r}")
        ppo_kwargs = dict(ppo_kwargs or {})
        for name in _RESERVED:
            if name in ppo_kwargs:
                raise ValueError(f"pgmorl sets '{name}' itself; remove it from ppo_kwargs")
        self.env = env
        self.env_kwargs = dict(env_kwargs or {})
        self.total_timesteps = int(total_timesteps)
        self.pop_size = int(pop_size)
        self.num_envs = int(num_envs)
        self.steps_per_iteration = int(steps_per_iteration)
        self.delta_weight = float(delta_weight)
        self.net_arch = [int(units) for units in net_arch]
        self.seed = seed
        self.device = device
        self.verbose = int(verbose)
        self.ppo_kwargs = ppo_kwargs
        self.num_timesteps = 0
        self._solutions: list[ParetoSolution] = []

        probe = make_mo_env(env, self.env_kwargs)
        try:
            if not isinstance(probe.action_space, gym.spaces.Box):
                raise ValueError(
                    f"pgmorl needs Box actions (morl-baselines' MOPPO is Gaussian); {env} has "
                    f"{type(probe.action_space).__name__}"
                )
            reward_space = getattr(probe.unwrapped, "reward_space", None)
            if reward_space is None:
                raise ValueError(f"{env} is not a multi-objective env (no reward_space)")
            self.n_objectives = int(np.prod(reward_space.shape))
            if self.n_objectives not in (2, 3):
                raise ValueError(f"pgmorl handles 2 or 3 objectives; {env} has {self.n_objectives}")
            if ref_point is None:
                from opsrl.mo import reference_point

                ref_point = reference_point(probe)
            self.ref_point = np.asarray(ref_point, dtype=np.float64).reshape(-1)
            if self.ref_point.shape != (self.n_objectives,):
                raise ValueError(f"ref_point must have {self.n_objectives} entries")
            self._obs_shape = tuple(probe.observation_space.shape)
            self._action_low = probe.action_space.low
            self._action_high = probe.action_space.high
        finally:
            probe.close()

        grid = len(_require_morl_baselines().generate_weights(self.delta_weight, self.n_objectives))
        # the warm-up trains the grid's first pop_size weights, and the prediction model
        # fits on at least 4 (before, after) evaluations, one per policy
        if not 4 <= self.pop_size <= grid:
            raise ValueError(
                f"pop_size must be between 4 and the warm-up grid's {grid} weights "
                f"(delta_weight {self.delta_weight}), got {self.pop_size}"
            )
        iterations = self.total_timesteps // self.steps_per_iteration_total
        if warmup_iterations is None:
            warmup_iterations = max(1, iterations // 2)
        if evolutionary_iterations is None:
            evolutionary_iterations = max(1, (iterations - warmup_iterations) // 4)
        self.warmup_iterations = int(warmup_iterations)
        self.evolutionary_iterations = int(evolutionary_iterations)
        generations = (iterations - self.warmup_iterations) // self.evolutionary_iterations
        if self.warmup_iterations < 1 or generations < 1:
            needed = (self.warmup_iterations + self.evolutionary_iterations) * (
                self.steps_per_iteration_total
            )
            raise ValueError(
                f"total_timesteps {self.total_timesteps} is below one warm-up and one "
                f"generation ({needed} env steps at pop_size {self.pop_size}, num_envs "
                f"{self.num_envs}, steps_per_iteration {self.steps_per_iteration})"
            )
        self.generations = generations

    @property
    def steps_per_iteration_total(self) -> int:
        """Env steps of one PGMORL iteration (one PPO update of every policy)."""
        return self.pop_size * self.num_envs * self.steps_per_iteration

    @property
    def planned_timesteps(self) -> int:
        """Env steps ``learn`` takes: whole generations within ``total_timesteps``."""
        iterations = self.warmup_iterations + self.generations * self.evolutionary_iterations
        return iterations * self.steps_per_iteration_total

    def learn(self, total_timesteps: int | None = None) -> PGMORLAgent:
        """Run PGMORL for :attr:`planned_timesteps` env steps and keep its Pareto archive."""
        if total_timesteps is not None and int(total_timesteps) != self.total_timesteps:
            raise ValueError(
                "pgmorl sizes its warm-up and generations from the constructor's "
                "total_timesteps; build a new agent for another budget"
            )
        pgmorl = _require_morl_baselines()
        if self.seed is not None:
            th.manual_seed(int(self.seed))
        env_id = _alias_env_id(self.env, self.env_kwargs)
        kwargs = {"num_minibatches": 16, **self.ppo_kwargs}
        # PGMORL prints every iteration and task choice; keep them only when verbose
        quiet = contextlib.nullcontext() if self.verbose else contextlib.redirect_stdout(None)
        with quiet:
            algorithm = pgmorl.PGMORL(
                env_id=env_id,
                origin=self.ref_point.copy(),
                num_envs=self.num_envs,
                pop_size=self.pop_size,
                warmup_iterations=self.warmup_iterations,
                steps_per_iteration=self.steps_per_iteration,
                evolutionary_iterations=self.evolutionary_iterations,
                delta_weight=self.delta_weight,
                seed=self.seed,
                log=False,
                net_arch=list(self.net_arch),
                device=self.device,
                **kwargs,
            )
        source = _normalizer(algorithm.env.envs[0])
        algorithm.archive = _stats_recording_archive(type(algorithm.archive), source)
        eval_env = _LiveNormalizedObservation(make_mo_env(env_id), source)
        try:
            with quiet:
                algorithm.train(
                    total_timesteps=self.planned_timesteps,
                    eval_env=eval_env,
                    ref_point=self.ref_point.copy(),
                )
        finally:
            eval_env.close()
        self.num_timesteps = int(algorithm.global_step)
        solutions = []
        for index, (agent, value) in enumerate(
            zip(algorithm.archive.individuals, algorithm.archive.evaluations, strict=True)
        ):
            mean, var = algorithm.archive.stats[id(agent)]
            network = copy.deepcopy(agent.networks).to("cpu").eval()
            policy = NormalizedGaussianPolicy(
                network, mean, var, source.epsilon, self._action_low, self._action_high
            )
            weights = agent.weights.detach().cpu().numpy().astype(np.float64)
            origin = {"id": index, "algorithm": "PGMORL (morl-baselines)"}
            solutions.append(
                ParetoSolution(weights, np.asarray(value, dtype=np.float64), policy, origin)
            )
        self._solutions = solutions
        return self

    def pareto_set(self) -> list[ParetoSolution]:
        """The archive's policies, with the weights they last trained for and the discounted
        vector returns PGMORL measured for them."""
        return list(self._solutions)

    def pareto_front(self) -> np.ndarray:
        return np.array([solution.values for solution in self._solutions])

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
        weights: Sequence[float] | np.ndarray | None = None,
    ) -> tuple[np.ndarray, None]:
        """The action of the archived policy maximising ``weights . J`` (default uniform)."""
        if not self._solutions:
            raise RuntimeError("pgmorl has no policies yet: call learn() or load()")
        w = np.full(self.n_objectives, 1.0 / self.n_objectives) if weights is None else weights
        scores = [float(np.dot(w, solution.values)) for solution in self._solutions]
        policy = self._solutions[int(np.argmax(scores))].policy
        return policy.predict(observation, state, episode_start, deterministic)

    # ----------------------------------------------------------------------------------------
    # Save / load
    # ----------------------------------------------------------------------------------------

    def _constructor_arguments(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "env_kwargs": self.env_kwargs,
            "total_timesteps": self.total_timesteps,
            "pop_size": self.pop_size,
            "num_envs": self.num_envs,
            "steps_per_iteration": self.steps_per_iteration,
            "warmup_iterations": self.warmup_iterations,
            "evolutionary_iterations": self.evolutionary_iterations,
            "delta_weight": self.delta_weight,
            "net_arch": self.net_arch,
            "ref_point": self.ref_point.tolist(),
            "seed": self.seed,
            "device": self.device,
            "ppo_kwargs": self.ppo_kwargs,
            "verbose": self.verbose,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the Pareto set to directory ``path``: ``policy_<k>.pt`` per policy (network
        weights and observation statistics) and ``manifest.json``."""
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        entries = []
        for index, solution in enumerate(self._solutions):
            policy = solution.policy
            name = f"policy_{index:03d}.pt"
            th.save(
                {
                    "state_dict": policy.network.state_dict(),
                    "obs_mean": policy.obs_mean,
                    "obs_var": policy.obs_var,
                    "epsilon": policy.epsilon,
                },
                directory / name,
            )
            entries.append(
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
            "solutions": entries,
            "arguments": json.loads(json.dumps(self._constructor_arguments(), default=str)),
        }
        (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
        return directory

    @classmethod
    def load(
        cls: type[SelfPGMORL], path: str | os.PathLike[str], device: str = "cpu"
    ) -> SelfPGMORL:
        """The agent saved in directory ``path``, with its Pareto set."""
        directory = Path(path)
        manifest_path = directory / MANIFEST_FILE
        if not manifest_path.is_file():
            raise ValueError(f"path {directory} holds no pgmorl manifest ({MANIFEST_FILE})")
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{manifest_path}: unknown format {manifest.get('format')!r}")
        arguments = dict(manifest["arguments"])
        arguments["device"] = device
        model = cls(**arguments)
        model.num_timesteps = int(manifest["num_timesteps"])
        pgmorl = _require_morl_baselines()
        for entry in manifest["solutions"]:
            saved = th.load(directory / entry["file"], map_location=device, weights_only=False)
            network = pgmorl.MOPPONet(
                model._obs_shape, model._action_low.shape, model.n_objectives, model.net_arch
            )
            network.load_state_dict(saved["state_dict"])
            network.eval()
            policy = NormalizedGaussianPolicy(
                network,
                saved["obs_mean"],
                saved["obs_var"],
                saved["epsilon"],
                model._action_low,
                model._action_high,
            )
            model._solutions.append(
                ParetoSolution(
                    np.asarray(entry["weights"], dtype=np.float64),
                    np.asarray(entry["values"], dtype=np.float64),
                    policy,
                    dict(entry["origin"]),
                )
            )
        return model
