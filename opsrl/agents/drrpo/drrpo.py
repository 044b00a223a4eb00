"""DR-RPO: distributionally robust regularised policy optimisation on a d-rectangular linear
MDP (finite horizon, Discrete states and actions)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback
from stable_baselines3.common.utils import safe_mean

from opsrl.agents.drrpo.backup import (
    DIVERGENCES,
    exploration_bonus,
    mirror_descent_update,
    regularized_value,
    robust_expectation,
)
from opsrl.agents.drrpo.policies import SoftmaxPolicy, state_indices

__all__ = ["BONUS_KINDS", "DRRPO", "FEATURE_KINDS"]

SelfDRRPO = TypeVar("SelfDRRPO", bound="DRRPO")

#: named feature maps (or pass a callable ``phi(state, action) -> (d,)``)
FEATURE_KINDS = ("tabular", "env")
BONUS_KINDS = ("coordinate", "norm")


def _positive(name: str, value: Any, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a number, got {value!r}")
    ok = value >= 0 if allow_zero else value > 0
    if not ok or not np.isfinite(value):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return float(value)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class DRRPO(BaseAlgorithm):
    """Distributionally Robust Regularised Policy Optimisation (DR-RPO).

    Gu, He, Liu, Xu, "Distributionally robust regularized policy optimization" (arXiv
    2510.14246): model-free online policy optimisation in a d-rectangular linear MDP, with a
    softmax policy regularised towards a reference policy, a robust backup over a TV or KL
    ball of next-state measures, and an optimism bonus.

    **Reconstruction.** The paper's code and full text are not public. This implementation
    follows the abstract and our reconstruction (opsrl spec ``agents_cmorl_subpo_drrpo_ospo``,
    section 3), with the dual forms of the same group's public code
    (panxulab/Robust-Regularized-Pessimistic-Value-Iteration). Each iteration k:

    1. roll out ``episodes_per_iteration`` episodes of pi_k in the (nominal) training env;
    2. for h = H-1..0, with the ridge statistics of step h over all data so far
       (Lambda_h = sum phi phi^T + ``ridge`` I): reward weights theta_h = Lambda_h^-1 sum phi r
       and next-state measures mu_h = Lambda_h^-1 sum phi e_{s'}^T; the robust next value
       nu_{h,i} = inf over the ``divergence`` ball of radius rho around mu_{h,i} of
       E[V_{h+1}] (TV: exact maximum of its piecewise-linear dual over the kinks; KL: a
       log-spaced grid plus golden-section search on its dual, see
       :mod:`opsrl.agents.drrpo.backup`); Q_h = clip(<phi, theta_h + nu_h> + Gamma_h, 0, cap),
       Gamma_h the UCB bonus (``bonus``: ``"coordinate"`` beta sum_i phi_i sqrt([Lambda^-1]_ii),
       or ``"norm"`` beta ||phi||_{Lambda^-1}); V_h(s) = E_{a~pi_k}[Q_h - lambda
       log(pi_k / pi_ref)];
    3. pi_{k+1,h} ∝ pi_{k,h}^{1/(1+eta lambda)} pi_ref^{eta lambda/(1+eta lambda)}
       exp(eta Q_h / (1 + eta lambda)) (closed-form KL mirror descent).

    ``radius=0`` gives exactly the non-robust (nominal) backup. Observations must be
    ``Discrete`` state indices and actions ``Discrete``; the step h is the position in the
    episode (:class:`SoftmaxPolicy` carries it in ``predict``'s ``state``). The next outcome
    space is the states plus, where the data of a step hold episodes that ended there, the
    end of the episode (value 0).

    Args:
        policy: ``"SoftmaxPolicy"`` (or the class).
        env: the training env (a VecEnv of ``n_envs`` copies, or one env); its ``horizon``
            attribute gives H unless ``horizon`` is set.
        divergence: ``"tv"`` or ``"kl"``: the uncertainty set's divergence.
        radius: rho >= 0: a scalar, or an array broadcastable to (H, d) (per step and
            coordinate, as the group's ``Rho``). 0 is the non-robust counterpart.
        kl_coef: lambda >= 0, the weight of the KL regulariser towards ``reference_policy``.
        eta: the mirror-descent step size (> 0).
        episodes_per_iteration: episodes collected between two policy updates (>= 1).
        features: ``"tabular"`` (one-hot phi over (s, a), d = S A), ``"env"`` (the env's
            ``features()`` array (S, A, d), on the simplex for the d-rectangular model), or a
            callable ``phi(state, action) -> (d,)``.
        ridge: lambda_r > 0, the ridge regularisation of Lambda_h.
        bonus_scale: beta >= 0, the scale of the optimism bonus.
        bonus: ``"coordinate"`` or ``"norm"`` (identical for one-hot features).
        value_cap: Q_h is clipped to [0, value_cap]; None: [0, H - h] (0-based h), the bound
            for rewards in [0, 1]. Set it to the largest return for other reward scales.
        horizon: H; None reads the env's ``horizon`` attribute.
        reference_policy: pi_ref: None (uniform) or strictly positive probabilities of shape
            (A,), (S, A) or (H, S, A); the initial policy too.
        stats_window_size: episodes averaged in the ``rollout/`` logs.
        tensorboard_log: TensorBoard log directory (None: none).
        policy_kwargs: extra keyword arguments of the policy (none are needed).
        verbose: 0 silent, 1 training logs.
        seed: the random seed (action sampling, env reset).
        device: where the policy table lives (``"auto"``); the backups run in numpy.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"SoftmaxPolicy": SoftmaxPolicy}
    policy: SoftmaxPolicy

    def __init__(
        self,
        policy: str | type[SoftmaxPolicy],
        env: GymEnv | str | None,
        divergence: str = "tv",
        radius: float | Sequence[float] | np.ndarray = 0.1,
        kl_coef: float = 0.01,
        eta: float = 1.0,
        episodes_per_iteration: int = 10,
        features: str | Callable[[int, int], np.ndarray] = "tabular",
        ridge: float = 1.0,
        bonus_scale: float = 0.1,
        bonus: str = "coordinate",
        value_cap: float | None = None,
        horizon: int | None = None,
        reference_policy: np.ndarray | Sequence[float] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        super().__init__(
            policy,
            env,
            learning_rate=eta,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            support_multi_env=True,
            seed=seed,
            supported_action_spaces=(spaces.Discrete,),
        )
        if divergence not in DIVERGENCES:
            raise ValueError(f"divergence must be one of {DIVERGENCES}, got {divergence!r}")
        self.divergence = divergence
        try:
            radius_array = np.asarray(radius, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"radius must be a number or an (H, d) array, got {radius!r}"
            ) from None
        if radius_array.ndim > 2 or not np.all(np.isfinite(radius_array)):
            raise ValueError(f"radius must be a finite scalar or (H, d) array, got {radius!r}")
        if np.any(radius_array < 0):
            raise ValueError(f"radius must be >= 0, got {radius!r}")
        self.radius = radius
        self.kl_coef = _positive("kl_coef", kl_coef, allow_zero=True)
        self.eta = _positive("eta", eta)
        self.episodes_per_iteration = _positive_int(
            "episodes_per_iteration", episodes_per_iteration
        )
        if not callable(features) and features not in FEATURE_KINDS:
            raise ValueError(
                f"features must be one of {FEATURE_KINDS} or a callable phi(state, action), "
                f"got {features!r}"
            )
        self.features = features
        self.ridge = _positive("ridge", ridge)
        self.bonus_scale = _positive("bonus_scale", bonus_scale, allow_zero=True)
        if bonus not in BONUS_KINDS:
            raise ValueError(f"bonus must be one of {BONUS_KINDS}, got {bonus!r}")
        self.bonus = bonus
        self.value_cap = None if value_cap is None else _positive("value_cap", value_cap)
        self.horizon = None if horizon is None else _positive_int("horizon", horizon)
        self.reference_policy = reference_policy
        #: set once the feature map, statistics and reference are built (saved with the model)
        self._problem_ready = False
        self._episode_steps: np.ndarray | None = None
        self._iterations = 0
        if _init_setup_model:
            if self.env is None:
                raise ValueError("env: DRRPO needs an env to build its feature map and horizon")
            self._setup_model()

    # ------------------------------------------------------------------ set-up
    def _setup_model(self) -> None:
        self.set_random_seed(self.seed)
        fresh = not self._problem_ready
        if fresh:
            self._setup_problem()
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, horizon=self.horizon, **self.policy_kwargs
        )
        self.policy = self.policy.to(self.device)
        self.policy.set_log_policy(self._log_reference)
        if fresh or not hasattr(self, "_rng"):
            self._rng = np.random.default_rng(self.seed)

    def _setup_problem(self) -> None:
        assert self.env is not None
        if not isinstance(self.observation_space, spaces.Discrete):
            raise ValueError(
                f"DRRPO needs Discrete observations (state indices), got {self.observation_space}"
            )
        n_states, n_actions = int(self.observation_space.n), int(self.action_space.n)
        if self.horizon is None:
            try:
                self.horizon = _positive_int("horizon", self.env.get_attr("horizon", [0])[0])
            except AttributeError:
                raise ValueError(
                    "horizon: the env has no `horizon` attribute; pass horizon=H"
                ) from None
        horizon = self.horizon
        self._feature_table, self._feature_index, self.n_features = self._build_features(
            n_states, n_actions
        )
        d = self.n_features
        try:
            self._radius_table = np.broadcast_to(
                np.asarray(self.radius, dtype=np.float64), (horizon, d)
            ).copy()
        except ValueError:
            raise ValueError(
                f"radius must broadcast to (H, d) = ({horizon}, {d}), got shape "
                f"{np.shape(self.radius)}"
            ) from None
        self._log_reference = self._build_reference(horizon, n_states, n_actions)
        n_outcomes = n_states + 1  # the states, then the end of the episode
        if self._feature_index is not None:
            self._gram = np.zeros((horizon, d))  # Lambda_h is diagonal for one-hot features
        else:
            self._gram = np.zeros((horizon, d, d))
        self._reward_sum = np.zeros((horizon, d))
        self._next_state_sum = np.zeros((horizon, d, n_outcomes))
        #: Q_h(s, a) and V_h(s) of the last backward pass (optimistic, robust, regularised)
        self.q_estimates = np.zeros((horizon, n_states, n_actions))
        self.value_estimates = np.zeros((horizon, n_states))
        self._problem_ready = True

    def _build_features(
        self, n_states: int, n_actions: int
    ) -> tuple[np.ndarray | None, np.ndarray | None, int]:
        """(dense table (S, A, d) or None, one-hot column index (S, A) or None, d)."""
        if self.features == "tabular":
            return (
                None,
                np.arange(n_states * n_actions).reshape(n_states, n_actions),
                (n_states * n_actions),
            )
        assert self.env is not None
        if self.features == "env":
            try:
                table = self.env.env_method("features", indices=[0])[0]
            except AttributeError:
                raise ValueError("features='env': the env has no features() method") from None
        else:
            table = [[self.features(s, a) for a in range(n_actions)] for s in range(n_states)]
        table = np.asarray(table, dtype=np.float64)
        if table.ndim != 3 or table.shape[:2] != (n_states, n_actions) or table.shape[2] < 1:
            raise ValueError(
                f"features must give an array (S, A, d) = ({n_states}, {n_actions}, d), got "
                f"shape {table.shape}"
            )
        if not np.all(np.isfinite(table)):
            raise ValueError("features must be finite")
        d = table.shape[2]
        flat = table.reshape(-1, d)
        # unit-vector features make Lambda_h diagonal: keep only the column index
        if np.all((flat == 0) | (flat == 1)) and np.all(flat.sum(axis=1) == 1):
            return None, flat.argmax(axis=1).reshape(n_states, n_actions), d
        return table, None, d

    def _build_reference(self, horizon: int, n_states: int, n_actions: int) -> np.ndarray:
        if self.reference_policy is None:
            return np.full((horizon, n_states, n_actions), -np.log(n_actions))
        reference = np.asarray(self.reference_policy, dtype=np.float64)
        try:
            reference = np.broadcast_to(reference, (horizon, n_states, n_actions)).copy()
        except ValueError:
            raise ValueError(
                f"reference_policy must have shape (A,), (S, A) or (H, S, A) = ({horizon}, "
                f"{n_states}, {n_actions}), got {np.shape(self.reference_policy)}"
            ) from None
        if not np.all(np.isfinite(reference)) or np.any(reference <= 0):
            raise ValueError("reference_policy must hold strictly positive probabilities")
        reference /= reference.sum(axis=-1, keepdims=True)
        return np.log(reference)

    # ------------------------------------------------------------------ model access
    def feature_matrix(self) -> np.ndarray:
        """phi(s, a) as a dense array (S, A, d)."""
        if self._feature_table is not None:
            return self._feature_table.copy()
        n_states, n_actions = self._feature_index.shape
        table = np.zeros((n_states, n_actions, self.n_features))
        s, a = np.indices((n_states, n_actions))
        table[s, a, self._feature_index] = 1.0
        return table

    def ridge_estimates(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Step ``step``'s ridge estimates from the data so far: reward weights theta (d,),
        next-outcome measures mu (d, S + 1; last column: the episode ends) and the inverse
        Gram matrix Lambda^-1 ((d,) diagonal for one-hot features, else (d, d))."""
        if self._feature_index is not None:
            inverse = 1.0 / (self._gram[step] + self.ridge)
            return (
                self._reward_sum[step] * inverse,
                self._next_state_sum[step] * inverse[:, None],
                inverse,
            )
        gram = self._gram[step] + self.ridge * np.eye(self.n_features)
        inverse = np.linalg.inv(gram)
        return inverse @ self._reward_sum[step], inverse @ self._next_state_sum[step], inverse

    # ------------------------------------------------------------------ learning
    def _add_transitions(
        self,
        steps: np.ndarray,
        states: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        outcomes: np.ndarray,
    ) -> None:
        """Add (h, s, a, r, s') tuples to the per-step ridge statistics."""
        if self._feature_index is not None:
            columns = self._feature_index[states, actions]
            np.add.at(self._gram, (steps, columns), 1.0)
            np.add.at(self._reward_sum, (steps, columns), rewards)
            np.add.at(self._next_state_sum, (steps, columns, outcomes), 1.0)
            return
        phi = self._feature_table[states, actions]
        for step in np.unique(steps):
            rows = steps == step
            phi_h = phi[rows]
            self._gram[step] += phi_h.T @ phi_h
            self._reward_sum[step] += phi_h.T @ rewards[rows]
            np.add.at(self._next_state_sum[step].T, outcomes[rows], phi_h)

    def backward_pass(
        self, log_policy: np.ndarray, radius: float | np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Robust regularised evaluation of ``log_policy`` (H, S, A) from the data so far,
        at the model's radius or at ``radius`` (broadcast to (H, d)) when given.

        Returns Q (H, S, A) (clipped, with the bonus) and V (H, S).
        """
        horizon, n_states, _ = log_policy.shape
        radius_table = (
            self._radius_table
            if radius is None
            else np.broadcast_to(np.asarray(radius, dtype=np.float64), self._radius_table.shape)
        )
        q_values = np.zeros_like(log_policy)
        values = np.zeros((horizon, n_states))
        next_values = np.zeros(n_states + 1)  # V_H = 0, and 0 once the episode has ended
        for step in reversed(range(horizon)):
            theta, measures, inverse = self.ridge_estimates(step)
            # the episode's end is a possible outcome only where the data have seen one
            if not np.any(self._next_state_sum[step][:, n_states]):
                measures, outcome_values = measures[:, :n_states], next_values[:n_states]
            else:
                outcome_values = next_values
            robust_next = robust_expectation(
                measures, outcome_values, self.divergence, radius_table[step]
            )
            weights = theta + robust_next
            if self._feature_index is not None:
                bonus = self.bonus_scale * np.sqrt(inverse)[self._feature_index]
                q_step = weights[self._feature_index] + bonus
            else:
                flat = self._feature_table.reshape(-1, self.n_features)
                bonus = exploration_bonus(flat, inverse, self.bonus_scale, self.bonus)
                q_step = (flat @ weights + bonus).reshape(log_policy.shape[1:])
            cap = self.value_cap if self.value_cap is not None else float(horizon - step)
            q_values[step] = np.clip(q_step, 0.0, cap)
            values[step] = regularized_value(
                log_policy[step], self._log_reference[step], q_values[step], self.kl_coef
            )
            next_values = np.append(values[step], 0.0)
        return q_values, values

    def _policy_update(self, log_policy: np.ndarray) -> np.ndarray:
        self.q_estimates, self.value_estimates = self.backward_pass(log_policy)
        new_log_policy = mirror_descent_update(
            log_policy, self._log_reference, self.q_estimates, self.eta, self.kl_coef
        )
        self.policy.set_log_policy(new_log_policy)
        return new_log_policy

    def _sample_actions(
        self, log_policy: np.ndarray, steps: np.ndarray, states: np.ndarray
    ) -> np.ndarray:
        probabilities = np.exp(log_policy[steps, states])
        cumulative = np.cumsum(probabilities, axis=1)
        draws = self._rng.random(len(states)) * cumulative[:, -1]
        actions = (cumulative <= draws[:, None]).sum(axis=1)
        return np.minimum(actions, probabilities.shape[1] - 1)

    def _collect_episodes(
        self, callback: Any, log_policy: np.ndarray, total_timesteps: int
    ) -> tuple[bool, list[int]]:
        """Roll out pi_k until ``episodes_per_iteration`` episodes end (or the budget is
        spent), adding every transition to the statistics. Returns (continue, start states)."""
        assert self.env is not None and self._episode_steps is not None
        n_states = int(self.observation_space.n)
        finished, start_states = 0, []
        while finished < self.episodes_per_iteration and self.num_timesteps < total_timesteps:
            states = state_indices(self._last_obs, n_states)
            steps = self._episode_steps
            if np.any(steps >= self.horizon):
                raise ValueError(
                    f"an episode ran longer than the horizon H={self.horizon}: set horizon to "
                    "the episode length or end the episodes (TimeLimit)"
                )
            start_states += states[steps == 0].tolist()
            actions = self._sample_actions(log_policy, steps, states)
            new_obs, rewards, dones, infos = self.env.step(actions)
            self.num_timesteps += self.env.num_envs
            callback.update_locals(locals())
            if not callback.on_step():
                return False, start_states
            self._update_info_buffer(infos, dones)
            outcomes = state_indices(new_obs, n_states).copy()
            for env_index in np.flatnonzero(dones):
                info = infos[env_index]
                if info.get("TimeLimit.truncated", False) and "terminal_observation" in info:
                    # cut short by a time limit: the episode goes on from the true next state
                    terminal = state_indices(info["terminal_observation"], n_states)
                    outcomes[env_index] = terminal[0]
                else:
                    outcomes[env_index] = n_states
            self._add_transitions(
                steps, states, actions, np.asarray(rewards, dtype=np.float64), outcomes
            )
            self._episode_steps = np.where(dones, 0, steps + 1)
            finished += int(np.sum(dones))
            self._last_obs = new_obs  # type: ignore[assignment]
        return True, start_states

    def learn(
        self: SelfDRRPO,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "DRRPO",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfDRRPO:
        """Alternate rollouts of pi_k and robust policy updates until ``total_timesteps``
        env steps (logs every ``log_interval`` iterations)."""
        env_was_reset = reset_num_timesteps or self._last_obs is None
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        assert self.env is not None
        if env_was_reset or self._episode_steps is None:
            self._episode_steps = np.zeros(self.env.num_envs, dtype=np.int64)
        callback.on_training_start(locals(), globals())
        log_policy = self.policy.log_policy_array()
        while self.num_timesteps < total_timesteps:
            callback.on_rollout_start()
            keep_going, start_states = self._collect_episodes(callback, log_policy, total_timesteps)
            callback.on_rollout_end()
            if not keep_going:
                break
            log_policy = self._policy_update(log_policy)
            self._iterations += 1
            if log_interval and self._iterations % log_interval == 0:
                self._log_iteration(log_policy, start_states)
        callback.on_training_end()
        return self

    def _log_iteration(self, log_policy: np.ndarray, start_states: list[int]) -> None:
        elapsed = max((time.time_ns() - self.start_time) / 1e9, sys.float_info.epsilon)
        fps = int((self.num_timesteps - self._num_timesteps_at_start) / elapsed)
        self.logger.record("time/iterations", self._iterations, exclude="tensorboard")
        if self.ep_info_buffer:
            self.logger.record(
                "rollout/ep_rew_mean", safe_mean([e["r"] for e in self.ep_info_buffer])
            )
            self.logger.record(
                "rollout/ep_len_mean", safe_mean([e["l"] for e in self.ep_info_buffer])
            )
        self.logger.record("time/fps", fps)
        self.logger.record("time/time_elapsed", int(elapsed), exclude="tensorboard")
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        if start_states:
            self.logger.record(
                "train/value_initial", float(np.mean(self.value_estimates[0, start_states]))
            )
        policy = np.exp(log_policy)
        kl = np.sum(policy * (log_policy - self._log_reference), axis=-1)
        self.logger.record("train/kl_to_reference", float(kl.mean()))
        self.logger.dump(step=self.num_timesteps)
