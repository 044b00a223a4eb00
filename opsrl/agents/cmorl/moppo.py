"""Multi-objective PPO (MOPPO): vector critic, scalarised advantage and the IPO barrier update.

MOPPO is C-MORL's learner (:mod:`opsrl.agents.cmorl.cmorl`): stage 1 trains one MOPPO per
preference vector, stage 2 runs its constrained (interior-point) update on copies of the
Pareto-front policies. It is an SB3 ``PPO`` subclass in the sb3-contrib pattern and runs on
SB3 VecEnvs.

**Vector rewards on SB3 VecEnvs.** MO-Gymnasium envs return a numpy reward *vector*; SB3's
``Monitor`` and ``DummyVecEnv`` hold scalar rewards. :class:`VectorRewardInfo` wraps each env
so that its ``step`` returns a scalar (``w . r``, for logging) and puts the vector in
``info["vector_reward"]``; MOPPO's ``collect_rollouts`` reads the vector from there. Raw MO envs
and env ids given to MOPPO are wrapped automatically (:func:`make_mo_vec_env`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import explained_variance, obs_as_tensor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv
from torch.nn import functional as F

from opsrl.agents.cmorl.buffers import MORolloutBuffer
from opsrl.agents.cmorl.policies import MOActorCriticPolicy, MOMultiInputActorCriticPolicy

__all__ = [
    "MOPPO",
    "VectorRewardInfo",
    "barrier_policy_loss",
    "constraint_thresholds",
    "evaluate_objectives",
    "make_mo_env",
    "make_mo_vec_env",
]

SelfMOPPO = TypeVar("SelfMOPPO", bound="MOPPO")

#: what an env argument may be: a registered id, or a factory returning a Gymnasium env
EnvSource = str | Callable[[], gym.Env]

NO_VECTOR_REWARD = (
    "MOPPO needs the vector reward in info['vector_reward']: wrap each env with "
    "opsrl.agents.cmorl.VectorRewardInfo (make_mo_vec_env does)"
)


# --------------------------------------------------------------------------------------------
# Envs
# --------------------------------------------------------------------------------------------


def _reward_space(env: gym.Env) -> spaces.Box:
    try:
        reward_space = env.get_wrapper_attr("reward_space")
    except AttributeError:
        reward_space = None
    if not isinstance(reward_space, spaces.Box) or len(reward_space.shape) != 1:
        raise ValueError(
            f"env {env} has no 1-D Box reward_space; a multi-objective env follows "
            "MO-Gymnasium (numpy reward vector and reward_space)"
        )
    return reward_space


class VectorRewardInfo(gym.Wrapper):
    """Scalar reward for SB3, the MO reward vector in ``info["vector_reward"]``.

    The scalar is ``weights . r`` (uniform weights until :meth:`set_reward_weights`), so that
    SB3's ``Monitor`` logs the scalarised return of the preference being trained.

    :param env: An MO env (MO-Gymnasium API: ``reward_space`` and a numpy reward vector)
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.reward_space = _reward_space(env)
        self.n_objectives = int(self.reward_space.shape[0])
        self.reward_weights = np.full(self.n_objectives, 1.0 / self.n_objectives)

    def set_reward_weights(self, weights: Sequence[float] | np.ndarray) -> None:
        """Weights of the scalar reward."""
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (self.n_objectives,):
            raise ValueError(f"weights must have shape ({self.n_objectives},), got {weights.shape}")
        self.reward_weights = weights

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        vector = np.asarray(reward, dtype=np.float32).reshape(self.n_objectives)
        info = dict(info)
        info["vector_reward"] = vector
        return obs, float(vector @ self.reward_weights), terminated, truncated, info


def make_mo_env(env: EnvSource, env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """The raw MO env (vector rewards) from an id (``gym.make``; ``"module:id"`` imports the
    module first) or a factory.

    Ids are made without Gymnasium's passive env checker (as ``mo_gymnasium.make`` does): it
    warns on every reward vector.
    """
    if isinstance(env, str):
        from opsrl import registry  # not at import time: the registry imports the agents

        # In a worker process nothing has imported MO-Gymnasium yet, so its ids are unknown
        # until the registry imports their provider.
        registry.ensure_env_registered(env)
        return gym.make(env, **{"disable_env_checker": True, **(env_kwargs or {})})
    if callable(env):
        if env_kwargs:
            return env(**env_kwargs)
        return env()
    raise ValueError(f"env must be an env id or a factory returning a gymnasium.Env, got {env!r}")


def _wrapped_env(env: EnvSource, env_kwargs: dict[str, Any] | None) -> gym.Env:
    return Monitor(VectorRewardInfo(make_mo_env(env, env_kwargs)))


def make_mo_vec_env(
    env: EnvSource,
    n_envs: int = 1,
    seed: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> VecEnv:
    """``n_envs`` copies of an MO env as a ``DummyVecEnv`` MOPPO can learn from.

    Each copy is ``Monitor(VectorRewardInfo(env))``; copy i is seeded with ``seed + i``.
    """
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive integer, got {n_envs!r}")
    venv = DummyVecEnv([lambda: _wrapped_env(env, env_kwargs) for _ in range(n_envs)])
    if seed is not None:
        venv.seed(seed)
    return venv


def _n_objectives_of(env: gym.Env | VecEnv) -> int:
    if isinstance(env, VecEnv):
        try:
            reward_space = env.get_attr("reward_space", indices=[0])[0]
        except AttributeError:
            raise ValueError(NO_VECTOR_REWARD) from None
        return int(reward_space.shape[0])
    return int(_reward_space(env).shape[0])


def evaluate_objectives(
    policy: Any,
    env: gym.Env,
    n_episodes: int,
    gamma: float,
    seed: int | None = None,
    deterministic: bool = True,
) -> np.ndarray:
    """The policy's discounted return of every objective, averaged over ``n_episodes``.

    ``J_j = mean over episodes of sum_t gamma^t r_{t,j}``, episode k reset with ``seed + k``;
    ``policy`` is anything with SB3's ``predict`` (an algorithm or a policy). The env returns
    reward vectors (a :class:`VectorRewardInfo` env works too: its ``info`` holds them).
    """
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, int) or n_episodes < 1:
        raise ValueError(f"n_episodes must be a positive integer, got {n_episodes!r}")
    total = None
    for episode in range(n_episodes):
        obs, _ = env.reset(seed=None if seed is None else seed + episode)
        discount, done = 1.0, False
        while not done:
            action, _ = policy.predict(obs, deterministic=deterministic)
            obs, reward, terminated, truncated, info = env.step(action)
            vector = np.asarray(info.get("vector_reward", reward), dtype=np.float64).reshape(-1)
            total = discount * vector if total is None else total + discount * vector
            discount *= gamma
            done = terminated or truncated
    assert total is not None
    return total / n_episodes


# --------------------------------------------------------------------------------------------
# The constrained (interior-point) update
# --------------------------------------------------------------------------------------------


def constraint_thresholds(values: np.ndarray, beta: float) -> np.ndarray:
    """C-MORL's constraint levels ``G_j >= beta * G_j^{pi_r}``, for returns of either sign.

    For ``G >= 0`` this is ``beta * G``; for ``G < 0``, ``beta * G`` would demand an
    improvement (no extension could start feasible), so the level is ``G - (1 - beta)|G|``:
    in both cases objective j may lose at most a fraction ``1 - beta`` of its magnitude. A
    value of 0 leaves no slack: the barrier's log is undefined there, so the constrained
    update first moves that objective into the interior (IPO's fall-back).
    """
    if not 0.0 < beta < 1.0:
        raise ValueError(f"constraint_beta must be in (0, 1), got {beta}")
    values = np.asarray(values, dtype=np.float64)
    return values - (1.0 - beta) * np.abs(values)


def barrier_policy_loss(
    ratio: th.Tensor,
    advantages: th.Tensor,
    constraint_advantages: th.Tensor,
    margins: th.Tensor,
    horizon: float,
    clip_range: float,
    barrier_t: float,
) -> tuple[th.Tensor, th.Tensor, bool]:
    """IPO's policy loss: clipped surrogate of the objective plus a log barrier per constraint.

    With ``rho = pi_theta(a|s) / pi_old(a|s)`` and ``clip = clip(rho, 1 - eps, 1 + eps)``:

    - ``L^CLIP_l = mean(min(rho A_l, clip A_l))`` on the (standardised) advantage of the
      maximised objective l;
    - ``G_j(theta) - c_j ~ margins_j + horizon * mean(min(rho A_j, clip A_j))``: the current
      margin ``G_j^{pi_old} - c_j`` plus the importance-weighted, clipped first-order estimate
      of objective j's change (``A_j``: centred, raw-scale advantages of objective j; the
      clipped ``min`` keeps the estimate pessimistic);
    - loss ``= -(L^CLIP_l + (1/t) sum_j log(G_j(theta) - c_j))``.

    Where some estimated margin is ``<= 0`` the log is undefined; as IPO, the loss then
    maximises the violated constraints instead: ``-sum_{j violated} mean(min(rho Â_j, clip
    Â_j))`` with ``Â_j`` the standardised ``A_j`` (no objective term).

    :param ratio: rho, shape (B,)
    :param advantages: A_l, shape (B,)
    :param constraint_advantages: A_j of the k constrained objectives, shape (B, k)
    :param margins: ``G_j^{pi_old} - c_j``, shape (k,)
    :param horizon: Factor turning a per-step mean advantage into a change of the return
    :param clip_range: PPO's epsilon
    :param barrier_t: IPO's t (larger: closer to the hard constraint)
    :return: the loss, the estimated margins (k,) and whether it is the recovery loss
    """
    clipped = th.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    objective = th.min(ratio * advantages, clipped * advantages).mean()
    ratio_col, clipped_col = ratio[:, None], clipped[:, None]
    gains = th.min(ratio_col * constraint_advantages, clipped_col * constraint_advantages)
    estimated = margins + horizon * gains.mean(dim=0)
    if bool(th.all(estimated > 0)):
        barrier = th.log(estimated).sum() / barrier_t
        return -(objective + barrier), estimated.detach(), False
    violated = (estimated <= 0).detach()
    scaled = constraint_advantages / (constraint_advantages.std(dim=0) + 1e-8)
    surrogate = th.min(ratio_col * scaled, clipped_col * scaled).mean(dim=0)
    return -surrogate[violated].sum(), estimated.detach(), True


# --------------------------------------------------------------------------------------------
# MOPPO
# --------------------------------------------------------------------------------------------


class MOPPO(PPO):
    """Multi-objective PPO with a vector critic: C-MORL's learner.

    **Stage-1 update (scalarised).** The env's reward is a vector of m objectives; the critic
    has m outputs (:class:`~opsrl.agents.cmorl.policies.MOActorCriticPolicy`). Each rollout
    gives per-objective GAE advantages A_vec (:class:`~opsrl.agents.cmorl.buffers.
    MORolloutBuffer`), brought back to the objectives' raw scale; the actor trains on
    ``A_w = w . A_vec``, standardised over the rollout, with PPO's clipped surrogate; the critic
    regresses all m lambda-returns (mean squared error over objectives).

    **Constrained update (stage 2, IPO).** After :meth:`set_constraints` (objective l,
    levels c_j, current values G_j^{pi}), ``train`` maximises
    ``L^CLIP_l(theta) + (1/t) sum_{j != l} log(G_j(theta) - c_j)`` (see
    :func:`barrier_policy_loss` for G_j(theta) and the fall-back when a constraint is violated).
    The horizon turning a per-step advantage into a return change is
    ``min(1 / (1 - gamma), n_steps * n_envs / episodes ended in the rollout)``: the mean
    episode length, at most the discounted horizon. The current values G_j^{pi} are the
    caller's (C-MORL evaluates the policy after every update); they must be in the same
    (raw, discounted) scale as the levels.

    **Normalisation** (as the reference code, which follows PGMORL): observations are
    normalised by running mean/std and each objective's reward is divided by the running std
    of its discounted return (clipped to +-``clip_reward``). Both statistics live in the policy,
    so copies, ``save``/``load`` and ``predict`` use them; a rollout and the update that uses it
    share the same statistics (they are updated with the rollout's data after the update).

    Paper: Liu, Zhang, Chen et al., "C-MORL: Multi-Objective Reinforcement Learning through
    Efficient Discovery of Pareto Front", ICLR 2025, https://arxiv.org/abs/2410.02236. IPO:
    Liu, Ding, Liu, "IPO: Interior-point Policy Optimization under Constraints", AAAI 2020.
    Code: https://github.com/RuohLiuq/C-MORL (this is an independent re-implementation on
    Stable-Baselines3).

    :param policy: The policy model to use (``"MlpPolicy"`` = :class:`MOActorCriticPolicy`,
        ``"MultiInputPolicy"`` for Dict observations)
    :param env: The environment to learn from: a VecEnv of :class:`VectorRewardInfo` envs, an
        MO env, or an env id (the last two are wrapped)
    :param n_objectives: Number of objectives; None infers it from the env's ``reward_space``
    :param weights: Preference vector w of the scalarised update (default: uniform)
    :param learning_rate: The learning rate, a float or a schedule of the progress remaining
    :param n_steps: Number of steps per env per update
    :param batch_size: Minibatch size
    :param n_epochs: Number of epochs per update
    :param gamma: Discount factor
    :param gae_lambda: Lambda of GAE
    :param clip_range: Clipping parameter of the policy ratio (float or schedule)
    :param clip_range_vf: Clipping parameter of the values (normalised scale); None: none
    :param normalize_advantage: Standardise the actor's advantage over the rollout
    :param ent_coef: Entropy coefficient
    :param vf_coef: Value loss coefficient
    :param max_grad_norm: Maximum gradient norm
    :param normalize_observations: Running observation normalisation; None: for Box spaces
    :param normalize_objectives: Divide each objective's reward by the running std of its
        discounted return
    :param clip_reward: Bound of the normalised rewards
    :param barrier_t: IPO's t of the constrained update (larger: closer to the hard constraint)
    :param use_sde: Whether to use generalized State Dependent Exploration (Box actions)
    :param sde_sample_freq: Sample a new noise matrix every n steps when using gSDE
    :param target_kl: Limit the KL divergence between updates; None: no limit
    :param stats_window_size: Window size for the rollout logging
    :param tensorboard_log: The log location for tensorboard (if None, no logging)
    :param policy_kwargs: Additional arguments for the policy (``net_arch``, ...)
    :param verbose: Verbosity level: 0 none, 1 info, 2 debug
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...); ``auto`` picks the GPU if there is one
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MOActorCriticPolicy,
        "MultiInputPolicy": MOMultiInputActorCriticPolicy,
    }
    policy: MOActorCriticPolicy  # type: ignore[assignment]
    rollout_buffer: MORolloutBuffer  # type: ignore[assignment]

    def __init__(
        self,
        policy: str | type[MOActorCriticPolicy],
        env: GymEnv | str | None,
        n_objectives: int | None = None,
        weights: Sequence[float] | np.ndarray | None = None,
        learning_rate: float | Schedule = 3e-4,
        n_steps: int = 512,
        batch_size: int = 128,
        n_epochs: int = 10,
        gamma: float = 0.995,
        gae_lambda: float = 0.95,
        clip_range: float | Schedule = 0.2,
        clip_range_vf: float | Schedule | None = None,
        normalize_advantage: bool = True,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        normalize_observations: bool | None = None,
        normalize_objectives: bool = True,
        clip_reward: float = 10.0,
        barrier_t: float = 20.0,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        target_kl: float | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        if isinstance(env, str):
            env = make_mo_vec_env(env)
        elif isinstance(env, gym.Env) and not isinstance(env, VecEnv):
            single = env if _is_wrapped(env) else VectorRewardInfo(env)
            env = DummyVecEnv([lambda: Monitor(single)])
        if n_objectives is None and env is not None:
            n_objectives = _n_objectives_of(env)
        if n_objectives is not None and (
            isinstance(n_objectives, bool)
            or not isinstance(n_objectives, int | np.integer)
            or n_objectives < 1
        ):
            raise ValueError(f"n_objectives must be an integer >= 1, got {n_objectives!r}")
        self.n_objectives = None if n_objectives is None else int(n_objectives)
        self.normalize_observations = normalize_observations
        self.normalize_objectives = bool(normalize_objectives)
        self.clip_reward = _finite_positive("clip_reward", clip_reward)
        self.barrier_t = _finite_positive("barrier_t", barrier_t)
        self.weights: np.ndarray | None = None
        self._pending_weights = weights
        self.constraint_objective: int | None = None
        self.constraint_levels: np.ndarray | None = None
        self.constraint_values: np.ndarray | None = None
        super().__init__(
            policy,
            env,  # type: ignore[arg-type]
            learning_rate=learning_rate,
            n_steps=n_steps,
            batch_size=batch_size,
            n_epochs=n_epochs,
            gamma=gamma,
            gae_lambda=gae_lambda,
            clip_range=clip_range,
            clip_range_vf=clip_range_vf,
            normalize_advantage=normalize_advantage,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            rollout_buffer_class=MORolloutBuffer,
            rollout_buffer_kwargs={},
            target_kl=target_kl,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
        )
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        if self.n_objectives is None:
            raise ValueError("MOPPO needs n_objectives (or an env with a reward_space)")
        m = self.n_objectives
        self.rollout_buffer_kwargs = {**self.rollout_buffer_kwargs, "n_objectives": m}
        self.policy_kwargs = {
            **self.policy_kwargs,
            "n_objectives": m,
            "normalize_observations": self.normalize_observations,
            "normalize_objectives": self.normalize_objectives,
        }
        super()._setup_model()
        if self.weights is None:
            pending = getattr(self, "_pending_weights", None)
            self.set_weights(np.full(m, 1.0 / m) if pending is None else pending)
        self._pending_weights = None
        self._reset_objective_accumulators()

    def _excluded_save_params(self) -> list[str]:
        return [
            *super()._excluded_save_params(),
            "_pending_returns",
            "_objective_returns",
            "_episode_objectives",
        ]

    def _reset_objective_accumulators(self) -> None:
        n_envs = self.n_envs if self.n_envs else 1
        assert self.n_objectives is not None
        #: running discounted raw return of each env, for the objective normalisation
        self._objective_returns = np.zeros((n_envs, self.n_objectives))
        #: undiscounted raw return of the running episode of each env, for logging
        self._episode_objectives = np.zeros((n_envs, self.n_objectives))
        self._pending_returns: list[np.ndarray] = []
        self.objective_ep_buffer: deque[np.ndarray] = deque(maxlen=self._stats_window_size)
        self._rollout_episodes = 0

    # ----------------------------------------------------------------------------------------
    # Preferences and constraints
    # ----------------------------------------------------------------------------------------

    def set_weights(self, weights: Sequence[float] | np.ndarray) -> None:
        """Preference vector of the scalarised update (non-negative, not all zero)."""
        assert self.n_objectives is not None
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (self.n_objectives,):
            raise ValueError(f"weights must have shape ({self.n_objectives},), got {weights.shape}")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError(f"weights must be finite, >= 0 and not all 0, got {weights}")
        self.weights = weights
        if self.env is not None:
            try:
                self.env.env_method("set_reward_weights", weights)
            except AttributeError:
                pass  # an env without VectorRewardInfo: only its logged scalar differs

    def set_constraints(
        self,
        objective: int,
        levels: Sequence[float] | np.ndarray,
        current_values: Sequence[float] | np.ndarray,
    ) -> None:
        """Switch to the constrained update: maximise ``objective`` subject to
        ``G_j >= levels[j]`` for every other j with a finite level.

        :param objective: Index l of the maximised objective
        :param levels: Constraint levels c_j (m,); ``-inf`` or NaN: unconstrained
        :param current_values: Current values G_j of the policy (m,), same scale as ``levels``
        """
        assert self.n_objectives is not None
        m = self.n_objectives
        if isinstance(objective, bool) or not isinstance(objective, int | np.integer):
            raise ValueError(f"objective must be an index in [0, {m}), got {objective!r}")
        if not 0 <= objective < m:
            raise ValueError(f"objective must be an index in [0, {m}), got {objective}")
        levels = np.asarray(levels, dtype=np.float64)
        if levels.shape != (m,):
            raise ValueError(f"levels must have shape ({m},), got {levels.shape}")
        self.constraint_objective = int(objective)
        self.constraint_levels = levels
        self.update_constraint_values(current_values)

    def update_constraint_values(self, current_values: Sequence[float] | np.ndarray) -> None:
        """The current policy's values G_j (after an evaluation)."""
        assert self.n_objectives is not None
        values = np.asarray(current_values, dtype=np.float64)
        if values.shape != (self.n_objectives,) or not np.all(np.isfinite(values)):
            raise ValueError(
                f"current_values must be {self.n_objectives} finite numbers, got {values}"
            )
        self.constraint_values = values

    def clear_constraints(self) -> None:
        """Back to the scalarised update."""
        self.constraint_objective = None
        self.constraint_levels = None
        self.constraint_values = None

    def constrained_indices(self) -> np.ndarray:
        """Indices j of the active constraints (not the maximised objective, finite level)."""
        if self.constraint_objective is None or self.constraint_levels is None:
            return np.zeros(0, dtype=int)
        finite = np.isfinite(self.constraint_levels)
        finite[self.constraint_objective] = False
        return np.flatnonzero(finite)

    # ----------------------------------------------------------------------------------------
    # Rollouts
    # ----------------------------------------------------------------------------------------

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, BaseCallback]:
        resets_env = reset_num_timesteps or self._last_obs is None
        result = super()._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        if resets_env:
            self._reset_objective_accumulators()
        return result

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        """SB3's ``collect_rollouts`` storing vector rewards (``info["vector_reward"]``),
        normalised per objective, with vector values and the truncation bootstrap per
        objective."""
        assert self._last_obs is not None, "No previous observation was provided"
        assert isinstance(rollout_buffer, MORolloutBuffer)
        self.policy.set_training_mode(False)
        n_steps = 0
        rollout_buffer.reset()
        self._rollout_episodes = 0
        if self.use_sde:
            self.policy.reset_noise(env.num_envs)
        callback.on_rollout_start()
        scale = self.policy.objective_scale().cpu().numpy().astype(np.float64)
        dones = np.zeros(env.num_envs, dtype=bool)
        new_obs = self._last_obs

        while n_steps < n_rollout_steps:
            if self.use_sde and self.sde_sample_freq > 0 and n_steps % self.sde_sample_freq == 0:
                self.policy.reset_noise(env.num_envs)
            with th.no_grad():
                obs_tensor = obs_as_tensor(self._last_obs, self.device)  # type: ignore[arg-type]
                actions, values, log_probs = self.policy(obs_tensor)
            actions = actions.cpu().numpy()
            clipped_actions = actions
            if isinstance(self.action_space, spaces.Box):
                if self.policy.squash_output:
                    clipped_actions = self.policy.unscale_action(clipped_actions)
                else:
                    clipped_actions = np.clip(
                        actions, self.action_space.low, self.action_space.high
                    )

            new_obs, _, dones, infos = env.step(clipped_actions)
            self.num_timesteps += env.num_envs
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
            n_steps += 1

            try:
                raw = np.stack([np.asarray(info["vector_reward"], np.float64) for info in infos])
            except KeyError:
                raise ValueError(NO_VECTOR_REWARD) from None
            self._track_objectives(raw, dones)
            rewards = raw / scale if self.normalize_objectives else raw.copy()
            if self.normalize_objectives:
                rewards = np.clip(rewards, -self.clip_reward, self.clip_reward)

            if isinstance(self.action_space, spaces.Discrete):
                actions = actions.reshape(-1, 1)
            # bootstrap time-limit truncations with the vector critic (SB3 issue #633)
            for idx, done in enumerate(dones):
                if (
                    done
                    and infos[idx].get("terminal_observation") is not None
                    and infos[idx].get("TimeLimit.truncated", False)
                ):
                    terminal_obs = self.policy.obs_to_tensor(infos[idx]["terminal_observation"])[0]
                    with th.no_grad():
                        terminal_value = self.policy.predict_values(terminal_obs)[0]  # type: ignore[arg-type]
                    rewards[idx] += self.gamma * terminal_value.cpu().numpy()

            rollout_buffer.add(
                self._last_obs,  # type: ignore[arg-type]
                actions,
                rewards,
                self._last_episode_starts,  # type: ignore[arg-type]
                values,
                log_probs,
            )
            self._last_obs = new_obs  # type: ignore[assignment]
            self._last_episode_starts = dones

        with th.no_grad():
            values = self.policy.predict_values(obs_as_tensor(new_obs, self.device))  # type: ignore[arg-type]
        rollout_buffer.compute_returns_and_advantage(last_values=values, dones=dones)
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _track_objectives(self, raw: np.ndarray, dones: np.ndarray) -> None:
        if self._objective_returns.shape != raw.shape:
            self._reset_objective_accumulators()
        self._objective_returns = self._objective_returns * self.gamma + raw
        self._pending_returns.append(self._objective_returns.copy())
        self._episode_objectives += raw
        for idx in np.flatnonzero(dones):
            self.objective_ep_buffer.append(self._episode_objectives[idx].copy())
            self._episode_objectives[idx] = 0.0
            self._objective_returns[idx] = 0.0
            self._rollout_episodes += 1

    def effective_horizon(self) -> float:
        """``min(1 / (1 - gamma), transitions / episodes ended)`` of the last rollout."""
        transitions = self.n_steps * self.n_envs
        mean_length = transitions / max(1, self._rollout_episodes)
        if self.gamma >= 1.0:
            return float(mean_length)
        return float(min(1.0 / (1.0 - self.gamma), mean_length))

    # ----------------------------------------------------------------------------------------
    # Update
    # ----------------------------------------------------------------------------------------

    def train(self) -> None:
        """One PPO update: scalarised (stage 1) or constrained by log barriers (stage 2)."""
        assert self.n_objectives is not None and self.weights is not None
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)  # type: ignore[operator]
        clip_range_vf = None
        if self.clip_range_vf is not None:
            clip_range_vf = self.clip_range_vf(self._current_progress_remaining)  # type: ignore[operator]

        buffer = self.rollout_buffer
        buffer.set_objective_scale(self.policy.objective_scale().cpu().numpy())
        constrained = self.constraint_objective is not None
        indices = self.constrained_indices()
        if constrained:
            assert self.constraint_levels is not None and self.constraint_values is not None
            primary = np.zeros(self.n_objectives)
            primary[self.constraint_objective] = 1.0
        else:
            primary = self.weights
        buffer.scalarise(primary, standardise=self.normalize_advantage)
        use_barrier = constrained and indices.size > 0
        if use_barrier:
            assert self.constraint_levels is not None and self.constraint_values is not None
            # centring: E_pi[A] = 0, so the estimated change is 0 at rho = 1
            advantage_means = th.as_tensor(
                buffer.objective_advantages[..., indices].mean(axis=(0, 1)),
                dtype=th.float32,
                device=self.device,
            )
            margins = th.as_tensor(
                self.constraint_values[indices] - self.constraint_levels[indices],
                dtype=th.float32,
                device=self.device,
            )
            horizon = self.effective_horizon()

        entropy_losses, pg_losses, value_losses, clip_fractions = [], [], [], []
        estimated_margins: list[np.ndarray] = []
        recoveries: list[float] = []
        approx_kl_divs: list[float] = []
        continue_training = True
        loss = th.zeros(())
        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            for rollout_data in buffer.get(self.batch_size):
                actions = rollout_data.actions
                if isinstance(self.action_space, spaces.Discrete):
                    actions = rollout_data.actions.long().flatten()
                values, log_prob, entropy = self.policy.evaluate_actions(
                    rollout_data.observations, actions
                )
                advantages = rollout_data.advantages
                ratio = th.exp(log_prob - rollout_data.old_log_prob)

                if use_barrier:
                    constraint_advantages = (
                        rollout_data.objective_advantages[:, indices] - advantage_means
                    )
                    policy_loss, estimated, recovery = barrier_policy_loss(
                        ratio,
                        advantages,
                        constraint_advantages,
                        margins,
                        horizon,
                        clip_range,
                        self.barrier_t,
                    )
                    estimated_margins.append(estimated.cpu().numpy())
                    recoveries.append(float(recovery))
                else:
                    policy_loss = -th.min(
                        advantages * ratio,
                        advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range),
                    ).mean()
                pg_losses.append(policy_loss.item())
                clip_fractions.append(th.mean((th.abs(ratio - 1) > clip_range).float()).item())

                if clip_range_vf is None:
                    values_pred = values
                else:
                    values_pred = rollout_data.old_values + th.clamp(
                        values - rollout_data.old_values, -clip_range_vf, clip_range_vf
                    )
                value_loss = F.mse_loss(rollout_data.returns, values_pred)
                value_losses.append(value_loss.item())
                entropy_loss = -th.mean(-log_prob) if entropy is None else -th.mean(entropy)
                entropy_losses.append(entropy_loss.item())
                loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss

                with th.no_grad():
                    log_ratio = log_prob - rollout_data.old_log_prob
                    approx_kl_div = th.mean((th.exp(log_ratio) - 1) - log_ratio).cpu().item()
                    approx_kl_divs.append(approx_kl_div)
                if self.target_kl is not None and approx_kl_div > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(f"Early stopping at step {epoch} due to reaching max kl")
                    break

                self.policy.optimizer.zero_grad()
                loss.backward()
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
            self._n_updates += 1
            if not continue_training:
                break

        self._update_normalizers()

        explained_var = explained_variance(buffer.values.flatten(), buffer.returns.flatten())
        self.logger.record("train/entropy_loss", np.mean(entropy_losses))
        self.logger.record("train/policy_gradient_loss", np.mean(pg_losses))
        self.logger.record("train/value_loss", np.mean(value_losses))
        self.logger.record("train/approx_kl", np.mean(approx_kl_divs) if approx_kl_divs else 0.0)
        self.logger.record("train/clip_fraction", np.mean(clip_fractions))
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/explained_variance", explained_var)
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)
        if use_barrier and estimated_margins:
            self.logger.record("train/constraint_margin_min", float(np.min(estimated_margins)))
            self.logger.record("train/recovery_fraction", float(np.mean(recoveries)))
            self.logger.record("train/effective_horizon", horizon)
        if self.objective_ep_buffer:
            means = np.mean(np.stack(self.objective_ep_buffer), axis=0)
            for j, value in enumerate(means):
                self.logger.record(f"rollout/ep_objective_{j}", float(value))

    def _update_normalizers(self) -> None:
        """Merge the last rollout's observations and discounted returns into the statistics."""
        if self.policy.normalize_observations:
            observations = self.rollout_buffer.observations
            self.policy.observation_rms.update(
                observations.reshape(-1, *self.policy.observation_rms.mean.shape)
            )
        if self.normalize_objectives and self._pending_returns:
            self.policy.objective_rms.update(np.concatenate(self._pending_returns, axis=0))
        self._pending_returns = []

    def learn(
        self: SelfMOPPO,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "MOPPO",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfMOPPO:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )


def _is_wrapped(env: gym.Env) -> bool:
    current: gym.Env = env
    while isinstance(current, gym.Wrapper):
        if isinstance(current, VectorRewardInfo):
            return True
        current = current.env
    return False


def _finite_positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(float(value)) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)
