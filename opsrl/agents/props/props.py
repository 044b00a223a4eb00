"""Proximal Robust On-Policy Sampling (PROPS) as an SB3 PPO subclass."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import kl_divergence
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import (
    FloatSchedule,
    explained_variance,
    obs_as_tensor,
    update_learning_rate,
)
from stable_baselines3.common.vec_env import VecEnv

from opsrl.agents.props.buffers import PROPSRolloutBuffer
from opsrl.agents.props.policies import CnnPolicy, MlpPolicy
from opsrl.agents.props.sampling import (
    CHUNK,
    distribution_rows,
    policy_actions,
    policy_distribution,
    sampling_error,
)

__all__ = ["BEHAVIORS", "PROPS"]

SelfPROPS = TypeVar("SelfPROPS", bound="PROPS")

#: how the data are collected: by the PROPS behaviour policy, or by the target policy itself
#: (on-policy sampling into the same buffer: the paper's "PPO-Buffer" baseline)
BEHAVIORS = ("props", "on_policy")


class PROPS(PPO):
    """Proximal Robust On-Policy Sampling (PROPS).

    PPO that learns from the last ``n_batches`` batches of data instead of the last one, and
    collects them with a *behaviour* policy pi_phi chosen so that the buffer as a whole looks
    more like on-policy data of the target policy pi_theta: after each stretch of collection,
    pi_phi lowers the probability of the actions already over-sampled in the buffer, so that
    the next actions fill in the under-sampled ones. Less sampling error lets PPO reuse older
    data.

    Paper: Corrado & Hanna, "On-Policy Policy Gradient Reinforcement Learning Without
    On-Policy Sampling", https://arxiv.org/abs/2311.08290. Code:
    https://github.com/NicholasCorrado/PPOROS (``PROPS/ppo_props_continuous.py``); this is an
    independent re-implementation on Stable-Baselines3.

    **Loop.** A ring buffer D (:class:`~opsrl.agents.props.buffers.PROPSRolloutBuffer`) holds
    the last ``n_batches * n_steps`` steps per env. Every action is drawn from pi_phi. Every
    ``props_n_steps`` steps (m), pi_phi is reset to pi_theta (phi <- theta, its Adam state
    kept) and updated on D minus the oldest m steps when D is full (those leave D before the
    next update). Every ``n_steps`` steps (n), log pi_theta(a|s), V(s) and GAE are recomputed
    over the whole of D in time order for the current policy, PPO updates theta on D (its
    "old" log-probabilities being these, so every ratio starts at 1), then the behaviour
    update runs as above with the new theta.

    **Behaviour update** (minimised over phi, on minibatches of ``props_batch_size``):

        L(phi) = mean_D[max(rho, clip(rho, 1 - eps, 1 + eps))]
                 + lambda * mean_D[KL(pi_phi || pi_theta)]

    with rho = pi_phi(a|s) / pi_theta(a|s), eps = ``props_clip_range`` and lambda =
    ``props_kl_coef``; the KL is the closed form of the action distributions (for Gaussian
    actions averaged over batch and action dimensions, as the reference code does). Lowering
    rho lowers the probability of actions already in D; the gradient vanishes once
    rho < 1 - eps. The update stops, before the step, at the first minibatch where
    mean((rho - 1) - log rho) > ``props_target_kl`` (delta), and clips the gradient norm at
    ``props_max_grad_norm``. With ``behavior="on_policy"`` the target policy acts and there
    is no behaviour update (the paper's "PPO-Buffer" baseline).

    **Normalisation.** Under ``VecNormalize``, D stores raw observations and rewards
    (``get_original_obs``/``get_original_reward``) and normalises them with the current
    statistics at each recomputation, as the reference does. Terminal observations of
    time-limit truncations (bootstrapped with gamma * V as in SB3, and recomputed with the
    current critic) arrive normalised from ``VecNormalize``; they are stored un-normalised,
    which is exact unless an observation was clipped. VecEnv wrappers outside
    ``VecNormalize`` that change observations are not supported.

    **Sampling error** (:func:`~opsrl.agents.props.sampling.sampling_error`): every
    ``sampling_error_freq`` PPO updates, before the update, the sampling error of D with
    respect to pi_theta is logged as ``props/sampling_error`` (pi_D fitted to convergence by
    L-BFGS unless ``sampling_error_epochs`` asks for the paper's Adam epochs).
    :func:`~opsrl.agents.props.sampling.fixed_target_sampling_error` runs the paper's
    experiment with a fixed target policy.

    Defaults are the reference code's (spec section 2): n = 2048, b = 2, m = 1024, learning
    rates 1e-4 (PPO and PROPS), 10 PPO epochs of 32 minibatches over the full D
    (``batch_size`` 128), entropy 0.01, gradient norm 0.5, 16 PROPS epochs of 16 minibatches
    over D minus m (``props_batch_size`` 192), eps 0.3, lambda 0.3, delta 0.05. Per-task values
    from the paper's sweep (b = 2): Hopper n/m/lr/PROPS-lr/delta/lambda = 2048/256/1e-3/1e-3/
    0.05/0.3, HalfCheetah 1024/512/1e-4/1e-3/0.05/0.3, Walker2d 2048/256/1e-3/1e-3/0.1/0.3.

    Differences from the reference code: PPO's KL stop is SB3's (stop when the approximate
    KL exceeds 1.5 * ``target_kl``; the default 0.02 is the reference's cut-off at 0.03);
    value clipping is SB3's ``clip_range_vf`` (off by default; the reference clips at 0.2 in
    the max form); the reference anneals the PPO learning rate (pass a schedule); after a
    PPO update the behaviour update compares pi_phi with the *updated* pi_theta (the
    reference reuses the log-probabilities of the pre-update policy there).

    :param policy: The policy model to use (MlpPolicy, CnnPolicy, ...); the behaviour policy
        is a second instance of it
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param learning_rate: The PPO learning rate, it can be a function of the current
        progress remaining (from 1 to 0)
    :param n_steps: The number of steps to run for each environment between PPO updates (n);
        the buffer holds ``n_batches`` such batches
    :param n_batches: Batches kept in the buffer and trained on (b)
    :param batch_size: PPO minibatch size (the whole buffer holds up to
        n_batches * n_steps * n_envs transitions)
    :param n_epochs: Number of epochs of each PPO update
    :param gamma: Discount factor
    :param gae_lambda: Factor for trade-off of bias vs variance for Generalized Advantage
        Estimator
    :param clip_range: PPO clipping parameter, it can be a function of the current progress
        remaining (from 1 to 0)
    :param clip_range_vf: Clipping parameter for the value function (SB3's), it can be a
        function of the current progress remaining. None (default) means no clipping.
        IMPORTANT: this clipping depends on the reward scaling.
    :param normalize_advantage: Whether to normalize the advantage per minibatch
    :param ent_coef: Entropy coefficient for the PPO loss
    :param vf_coef: Value function coefficient for the PPO loss
    :param max_grad_norm: The maximum value for the gradient clipping of the PPO update
    :param target_kl: Stop the PPO update at the first minibatch whose approximate KL from
        the policy before the update exceeds 1.5 * target_kl; None means no limit
    :param behavior: Who collects the data: ``"props"`` (the behaviour policy) or
        ``"on_policy"`` (the target policy; no behaviour update)
    :param props_n_steps: Steps per env between behaviour updates (m); must divide n_steps
    :param props_learning_rate: The behaviour policy's learning rate (Adam), a float or a
        function of the current progress remaining
    :param props_batch_size: Minibatch size of the behaviour update
    :param props_n_epochs: Epochs of each behaviour update
    :param props_clip_range: Clipping parameter eps of the PROPS objective
    :param props_kl_coef: Weight lambda of KL(pi_phi || pi_theta) in the PROPS objective
    :param props_target_kl: Stop the behaviour update at the first minibatch where
        mean((rho - 1) - log rho) exceeds it (delta); None means no limit
    :param props_max_grad_norm: The maximum value for the gradient clipping of the behaviour
        update; None means no clipping
    :param sampling_error_freq: Log the sampling error of the buffer every this many PPO
        updates (before the update); 0 never
    :param sampling_error_epochs: How the sampling-error measure fits pi_D: None (default)
        to convergence by L-BFGS, an integer for that many epochs of Adam (the paper: 250)
    :param use_sde: Whether to use generalized State Dependent Exploration (gSDE) instead of
        action noise exploration (Box actions)
    :param sde_sample_freq: Sample a new noise matrix every n steps when using gSDE
        (-1: only at the beginning of the rollout)
    :param stats_window_size: Window size for the rollout logging, specifying the number of
        episodes to average the reported success rate, mean episode length, and mean reward over
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to both policies on creation
    :param verbose: Verbosity level: 0 for no output, 1 for info messages (such as device or
        wrappers used), 2 for debug messages
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run. Setting it to auto,
        the code will be run on the GPU if possible.
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
    }
    policy: ActorCriticPolicy
    behavior_policy: ActorCriticPolicy
    rollout_buffer: PROPSRolloutBuffer  # type: ignore[assignment]

    def __init__(
        self,
        policy: str | type[ActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-4,
        n_steps: int = 2048,
        n_batches: int = 2,
        batch_size: int = 128,
        n_epochs: int = 10,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_range: float | Schedule = 0.2,
        clip_range_vf: float | Schedule | None = None,
        normalize_advantage: bool = True,
        ent_coef: float = 0.01,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        target_kl: float | None = 0.02,
        behavior: str = "props",
        props_n_steps: int = 1024,
        props_learning_rate: float | Schedule = 1e-4,
        props_batch_size: int = 192,
        props_n_epochs: int = 16,
        props_clip_range: float = 0.3,
        props_kl_coef: float = 0.3,
        props_target_kl: float | None = 0.05,
        props_max_grad_norm: float | None = 0.5,
        sampling_error_freq: int = 10,
        sampling_error_epochs: int | None = None,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        # PPO.__init__ is skipped: it checks its arguments with asserts and sizes them against
        # one rollout, not the buffer. Its attributes are set below.
        OnPolicyAlgorithm.__init__(
            self,
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=gae_lambda,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            device=device,
            seed=seed,
            _init_setup_model=False,
            supported_action_spaces=(
                spaces.Box,
                spaces.Discrete,
                spaces.MultiDiscrete,
                spaces.MultiBinary,
            ),
        )
        self.n_batches = n_batches
        self.batch_size = batch_size
        self.n_epochs = n_epochs
        self.clip_range = clip_range
        self.clip_range_vf = clip_range_vf
        self.normalize_advantage = normalize_advantage
        self.target_kl = target_kl
        self.behavior = behavior
        self.props_n_steps = props_n_steps
        self.props_learning_rate = props_learning_rate
        self.props_batch_size = props_batch_size
        self.props_n_epochs = props_n_epochs
        self.props_clip_range = props_clip_range
        self.props_kl_coef = props_kl_coef
        self.props_target_kl = props_target_kl
        self.props_max_grad_norm = props_max_grad_norm
        self.sampling_error_freq = sampling_error_freq
        self.sampling_error_epochs = sampling_error_epochs
        self._n_target_updates = 0
        if _init_setup_model:
            self._check_arguments()
            self._setup_model()

    # ------------------------------------------------------------------------- set-up
    def _check_arguments(self) -> None:
        """Raise a ValueError naming the first bad argument."""

        def positive_int(name: str) -> None:
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

        def positive_or_none(name: str) -> None:
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be None or positive, got {value!r}")

        if isinstance(self.observation_space, spaces.Dict):
            raise ValueError("PROPS does not support Dict observation spaces")
        if self.behavior not in BEHAVIORS:
            raise ValueError(
                f"behavior must be one of {', '.join(BEHAVIORS)}, got {self.behavior!r}"
            )
        for name in (
            "n_steps",
            "n_batches",
            "batch_size",
            "n_epochs",
            "props_n_steps",
            "props_batch_size",
            "props_n_epochs",
        ):
            positive_int(name)
        if self.normalize_advantage and self.batch_size < 2:
            raise ValueError(
                f"batch_size must be at least 2 with normalize_advantage, got {self.batch_size}"
            )
        if self.n_steps % self.props_n_steps != 0:
            raise ValueError(
                f"props_n_steps ({self.props_n_steps}) must divide n_steps ({self.n_steps})"
            )
        if self.behavior == "props" and self.n_batches * self.n_steps <= self.props_n_steps:
            raise ValueError(
                f"with n_batches={self.n_batches}, props_n_steps ({self.props_n_steps}) must be "
                f"smaller than n_steps ({self.n_steps}): the behaviour update trains on the "
                "data that stay in the buffer for the next props_n_steps steps"
            )
        if not 0 < self.props_clip_range < 1:
            raise ValueError(
                f"props_clip_range must be between 0 and 1, got {self.props_clip_range!r}"
            )
        if not self.props_kl_coef >= 0:
            raise ValueError(f"props_kl_coef must be non-negative, got {self.props_kl_coef!r}")
        if not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be positive, got {self.max_grad_norm!r}")
        for name in ("target_kl", "props_target_kl", "props_max_grad_norm"):
            positive_or_none(name)
        if isinstance(self.props_learning_rate, int | float) and not self.props_learning_rate > 0:
            raise ValueError(
                f"props_learning_rate must be positive, got {self.props_learning_rate!r}"
            )
        if self.sampling_error_epochs is not None:
            positive_int("sampling_error_epochs")
        if (
            not isinstance(self.sampling_error_freq, int | np.integer)
            or isinstance(self.sampling_error_freq, bool)
            or self.sampling_error_freq < 0
        ):
            raise ValueError(
                "sampling_error_freq must be a non-negative integer (0: never), "
                f"got {self.sampling_error_freq!r}"
            )

    def _setup_model(self) -> None:
        self.rollout_buffer_class = PROPSRolloutBuffer
        self.rollout_buffer_kwargs = {"n_batches": self.n_batches}
        super()._setup_model()
        self.props_lr_schedule = FloatSchedule(self.props_learning_rate)
        # The behaviour policy: the same network, its own Adam (built on the PROPS rate).
        self.behavior_policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space,
            self.action_space,
            self.props_lr_schedule,
            use_sde=self.use_sde,
            **self.policy_kwargs,
        )
        self.behavior_policy = self.behavior_policy.to(self.device)
        self.behavior_policy.load_state_dict(self.policy.state_dict())
        self.behavior_policy.set_training_mode(False)

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, BaseCallback]:
        env_is_reset = reset_num_timesteps or self._last_obs is None
        result = super()._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        if env_is_reset:
            # Data from before the reset would run into the new episodes' first steps.
            self.rollout_buffer.reset()
        if self._vec_normalize_env is None:
            self._last_original_obs = self._last_obs
        elif self._last_original_obs is None:
            self._last_original_obs = self._vec_normalize_env.get_original_obs()
        return result

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = [
            "policy",
            "policy.optimizer",
            "behavior_policy",
            "behavior_policy.optimizer",
        ]
        return state_dicts, []

    # ------------------------------------------------------------------------- buffer views
    def _normalize_obs(self, observations: np.ndarray) -> np.ndarray:
        """Raw observations as the policy sees them now (current ``VecNormalize`` stats)."""
        if self._vec_normalize_env is None:
            # float64 (MuJoCo) would double the transfer; the policy computes in float32
            return (
                observations.astype(np.float32)
                if observations.dtype == np.float64
                else observations
            )
        normalized = self._vec_normalize_env.normalize_obs(observations)
        return np.asarray(normalized, dtype=np.float32)

    def _normalize_reward(self, rewards: np.ndarray) -> np.ndarray:
        """Raw rewards scaled with the current ``VecNormalize`` statistics."""
        if self._vec_normalize_env is None:
            return rewards.astype(np.float32)
        return np.asarray(self._vec_normalize_env.normalize_reward(rewards), dtype=np.float32)

    def _ordered_tensors(self, order: np.ndarray) -> tuple[th.Tensor, th.Tensor]:
        """Normalised observations and actions of ring rows ``order``, flat, on the device.

        The one transfer of the buffer's data to the device per recomputation.
        """
        buffer = self.rollout_buffer
        observations = buffer.observations[order].reshape(-1, *buffer.obs_shape)
        actions = buffer.actions[order].reshape(-1, buffer.action_dim).astype(np.float32)
        return (
            obs_as_tensor(self._normalize_obs(observations), self.device),  # type: ignore[return-value]
            th.as_tensor(actions, device=self.device),
        )

    def refresh_buffer(self) -> None:
        """Recompute log pi_theta, V and GAE over the whole buffer for the current policy.

        Observations and rewards are normalised with the current statistics; time-limit
        truncations are bootstrapped with the current critic; the result is held on the
        device for the PPO update (``rollout_buffer.get``).
        """
        buffer = self.rollout_buffer
        order = buffer.time_order()
        observations, actions = self._ordered_tensors(order)
        policy_acts = policy_actions(self.policy.action_dist, actions)
        values, log_probs = [], []
        with th.no_grad():
            for start in range(0, len(observations), CHUNK):
                chunk_values, chunk_log_prob, _ = self.policy.evaluate_actions(
                    observations[start : start + CHUNK], policy_acts[start : start + CHUNK]
                )
                values.append(chunk_values.flatten())
                log_probs.append(chunk_log_prob)
        shape = (len(order), buffer.n_envs)
        buffer.values[order] = th.cat(values).cpu().numpy().reshape(shape)
        buffer.log_probs[order] = th.cat(log_probs).cpu().numpy().reshape(shape)

        rewards = self._normalize_reward(buffer.rewards[order])
        truncated = buffer.truncated[order]
        if np.any(truncated):
            terminal = self._normalize_obs(buffer.terminal_observations[order][truncated])
            with th.no_grad():
                terminal_values = self.policy.predict_values(
                    obs_as_tensor(terminal, self.device)  # type: ignore[arg-type]
                )
            rewards[truncated] += self.gamma * terminal_values.cpu().numpy().flatten()
        with th.no_grad():
            last_values = self.policy.predict_values(
                obs_as_tensor(self._normalize_obs(self._last_original_obs), self.device)  # type: ignore[arg-type]
            )
        buffer.compute_returns_and_advantage(
            last_values,
            dones=np.asarray(self._last_episode_starts),
            rewards=rewards,
        )
        buffer.set_training_data(observations, actions, order)

    # ------------------------------------------------------------------------- rollouts
    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: PROPSRolloutBuffer,  # type: ignore[override]
        n_rollout_steps: int,
    ) -> bool:
        """Collect ``n_rollout_steps`` steps per env into the ring with the behaviour policy.

        As SB3's loop, except that the behaviour policy acts (the target policy with
        ``behavior="on_policy"``), raw observations and rewards are stored, the behaviour
        update runs every ``props_n_steps`` steps (the one at the end of the batch runs after
        the PPO update, in :meth:`train`), and at the end log pi_theta, V and GAE are
        recomputed over the whole buffer.
        """
        assert self._last_obs is not None, "No previous observation was provided"
        assert isinstance(rollout_buffer, PROPSRolloutBuffer)
        acting = self.behavior_policy if self.behavior == "props" else self.policy
        self.policy.set_training_mode(False)
        self.behavior_policy.set_training_mode(False)
        normalizer = self._vec_normalize_env

        n_steps = 0
        if self.use_sde:
            acting.reset_noise(env.num_envs)

        callback.on_rollout_start()

        while n_steps < n_rollout_steps:
            if self.use_sde and self.sde_sample_freq > 0 and n_steps % self.sde_sample_freq == 0:
                acting.reset_noise(env.num_envs)

            with th.no_grad():
                obs_tensor = obs_as_tensor(self._last_obs, self.device)  # type: ignore[arg-type]
                actions = acting.get_distribution(obs_tensor).get_actions()
            actions = actions.cpu().numpy()

            clipped_actions = actions
            if isinstance(self.action_space, spaces.Box):
                if acting.squash_output:
                    clipped_actions = acting.unscale_action(clipped_actions)
                else:
                    clipped_actions = np.clip(
                        actions, self.action_space.low, self.action_space.high
                    )

            new_obs, rewards, dones, infos = env.step(clipped_actions)

            self.num_timesteps += env.num_envs

            callback.update_locals(locals())
            if not callback.on_step():
                return False

            self._update_info_buffer(infos, dones)
            n_steps += 1

            if isinstance(self.action_space, spaces.Discrete):
                actions = actions.reshape(-1, 1)

            truncated = np.array(
                [
                    bool(done)
                    and info.get("terminal_observation") is not None
                    and bool(info.get("TimeLimit.truncated", False))
                    for done, info in zip(dones, infos, strict=True)
                ]
            )
            terminal_observation = None
            if np.any(truncated):
                terminal_observation = np.zeros(
                    (env.num_envs, *rollout_buffer.obs_shape),
                    dtype=rollout_buffer.observations.dtype,
                )
                for idx in np.flatnonzero(truncated):
                    terminal = np.asarray(infos[idx]["terminal_observation"])
                    if normalizer is not None:  # VecNormalize has normalised it
                        terminal = normalizer.unnormalize_obs(terminal)
                    terminal_observation[idx] = terminal.reshape(rollout_buffer.obs_shape)

            if normalizer is None:
                new_original_obs, original_rewards = new_obs, rewards
            else:
                new_original_obs = normalizer.get_original_obs()
                original_rewards = normalizer.get_original_reward()

            rollout_buffer.add(
                self._last_original_obs,  # type: ignore[arg-type]
                actions,
                original_rewards,
                self._last_episode_starts,  # type: ignore[arg-type]
                truncated=truncated,
                terminal_observation=terminal_observation,
            )
            self._last_obs = new_obs  # type: ignore[assignment]
            self._last_original_obs = new_original_obs  # type: ignore[assignment]
            self._last_episode_starts = dones

            if (
                self.behavior == "props"
                and n_steps % self.props_n_steps == 0
                and n_steps < n_rollout_steps
            ):
                self.update_behavior()

        self.refresh_buffer()

        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    # ------------------------------------------------------------------------- updates
    def update_behavior(self) -> None:
        """phi <- theta, then the PROPS update of phi on the buffer.

        When the buffer is full its oldest ``props_n_steps`` steps are left out: they leave
        it before the next update.
        """
        buffer = self.rollout_buffer
        self.behavior_policy.load_state_dict(self.policy.state_dict())
        keep = min(buffer.n_stored, buffer.buffer_size - self.props_n_steps)
        if keep <= 0:
            return
        self.policy.set_training_mode(False)
        observations, actions = self._ordered_tensors(buffer.time_order(newest=keep))
        actions = policy_actions(self.policy.action_dist, actions)
        # pi_theta does not change during the update: its distribution over the whole window,
        # once, then minibatches are rows of it.
        target_dist = policy_distribution(self.policy, observations)
        target_log_prob = target_dist.log_prob(actions)

        optimizer = self.behavior_policy.optimizer
        props_lr = self.props_lr_schedule(self._current_progress_remaining)
        update_learning_rate(optimizer, props_lr)
        self.behavior_policy.set_training_mode(True)
        clip = self.props_clip_range

        clip_losses, kl_losses, clip_fractions = [], [], []
        approx_kl = 0.0
        stop = False
        total = len(target_log_prob)
        for _ in range(self.props_n_epochs):
            indices = th.randperm(total, device=target_log_prob.device)
            for start in range(0, total, self.props_batch_size):
                rows = indices[start : start + self.props_batch_size]
                behavior_dist = self.behavior_policy.get_distribution(observations[rows])
                log_ratio = behavior_dist.log_prob(actions[rows]) - target_log_prob[rows]
                ratio = th.exp(log_ratio)
                with th.no_grad():
                    batch_kl = th.mean((ratio - 1) - log_ratio).item()
                if self.props_target_kl is not None and batch_kl > self.props_target_kl:
                    stop = True
                    break
                approx_kl = batch_kl
                kl_loss = kl_divergence(behavior_dist, distribution_rows(target_dist, rows)).mean()
                # Minimising max(rho, clip(rho)) lowers the probability of the sampled
                # actions until rho < 1 - eps, where the clipped branch stops the gradient.
                clip_loss = th.max(ratio, th.clamp(ratio, 1 - clip, 1 + clip)).mean()
                loss = clip_loss + self.props_kl_coef * kl_loss

                optimizer.zero_grad()
                loss.backward()
                if self.props_max_grad_norm is not None:
                    th.nn.utils.clip_grad_norm_(
                        self.behavior_policy.parameters(), self.props_max_grad_norm
                    )
                optimizer.step()
                # kept on the device: read once at the end, not once per minibatch
                clip_losses.append(clip_loss.detach())
                kl_losses.append(kl_loss.detach())
                clip_fractions.append(th.mean((th.abs(ratio.detach() - 1) > clip).float()))
            if stop:
                break
        self.behavior_policy.set_training_mode(False)

        self.logger.record("props/learning_rate", props_lr)
        self.logger.record("props/n_minibatches", len(clip_losses))
        self.logger.record("props/approx_kl", approx_kl)
        if clip_losses:
            self.logger.record("props/clip_loss", th.stack(clip_losses).mean().item())
            self.logger.record("props/kl_loss", th.stack(kl_losses).mean().item())
            self.logger.record("props/clip_fraction", th.stack(clip_fractions).mean().item())

    def sampling_error(self, epochs: int | None = None, learning_rate: float = 1e-3) -> float:
        """The sampling error of the whole buffer with respect to the current policy.

        See :func:`~opsrl.agents.props.sampling.sampling_error`.

        :param epochs: None: fit pi_D to convergence (L-BFGS); else epochs of Adam
        :param learning_rate: Fitting learning rate
        """
        if self.rollout_buffer.n_stored == 0:
            raise ValueError("the buffer is empty: collect data before measuring sampling error")
        observations, actions = self._ordered_tensors(self.rollout_buffer.time_order())
        return sampling_error(
            self.policy,
            observations,
            actions,
            epochs=epochs,
            learning_rate=learning_rate,
        )

    def train(self) -> None:
        """PPO on the whole buffer, then the behaviour update with the new target policy."""
        self._n_target_updates += 1
        if (
            self.sampling_error_freq
            and (self._n_target_updates - 1) % self.sampling_error_freq == 0
        ):
            data = self.rollout_buffer.training_data  # as refreshed for this update
            self.logger.record(
                "props/sampling_error",
                sampling_error(
                    self.policy,
                    data.observations,
                    data.actions,
                    epochs=self.sampling_error_epochs,
                ),
            )
        super().train()
        # PPO's figure reads the whole ring, including rows not yet filled.
        order = self.rollout_buffer.time_order()
        self.logger.record(
            "train/explained_variance",
            explained_variance(
                self.rollout_buffer.values[order].flatten(),
                self.rollout_buffer.returns[order].flatten(),
            ),
        )
        self.logger.record("props/buffer_transitions", len(order) * self.rollout_buffer.n_envs)
        if self.behavior == "props":
            self.update_behavior()

    def learn(
        self: SelfPROPS,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "PROPS",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfPROPS:
        """Train for ``total_timesteps`` env steps (see SB3's ``PPO.learn``)."""
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
