"""Post-Decision Proximal Policy Optimization (PDPPO) as an SB3 PPO subclass."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import (
    FloatSchedule,
    explained_variance,
    obs_as_tensor,
    update_learning_rate,
)
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecNormalize
from torch.nn import functional as F

from opsrl.agents.pdppo.buffers import ADVANTAGES, RETURNS, PostDecisionRolloutBuffer
from opsrl.agents.pdppo.policies import DualCriticPolicy

__all__ = ["PDPPO", "post_decision_error"]

SelfPDPPO = TypeVar("SelfPDPPO", bound="PDPPO")

NO_POST_DECISION = (
    "PDPPO needs an env with post_decision(action) -> (post_obs, post_reward); "
    "opsrl/LotSizing-v0 has one"
)


def post_decision_error(env: VecEnv) -> ValueError:
    """The error raised for an env without ``post_decision``."""
    return ValueError(f"{NO_POST_DECISION} ({_env_name(env)} has none)")


def _env_name(env: VecEnv) -> str:
    inner = env
    while isinstance(inner, VecEnvWrapper):
        inner = inner.venv
    try:
        spec = inner.get_attr("spec", indices=[0])[0]
    except (AttributeError, IndexError):
        spec = None
    if spec is not None and getattr(spec, "id", None):
        return f"the env {spec.id}"
    return f"the env {type(inner).__name__}"


class PDPPO(PPO):
    """Post-Decision Proximal Policy Optimization (PDPPO).

    PPO with a second critic for post-decision states. A step of the env splits into a
    deterministic decision -- from state s and action a to the post-decision state
    s^x = f(s, a) with reward r^x (for lot sizing: setups and production, r^x = -setup cost)
    -- and a random transition from s^x to the next state s' (demand). PDPPO learns V(s) on
    the pre-decision rewards r - r^x and V^x(s^x) on the post-decision rewards r^x, each with
    its own critic and optimizer, and trains the actor on the larger of the two advantages.

    Paper: Felizardo, Fadda, Brandimarte, Del-Moral-Hernandez, Nascimento, "Reinforcement
    learning for stochastic lot sizing with post-decision states", IJCNN 2025,
    https://arxiv.org/abs/2504.05150. Code: https://github.com/leokan92/pdppo (this is an
    independent re-implementation on Stable-Baselines3).

    **Env contract.** The env offers ``post_decision(action) -> (post_obs, post_reward)``: the
    observation and reward of the deterministic part of the step, without changing the env
    (``opsrl/LotSizing-v0`` has it). Before each ``env.step``, PDPPO calls the VecEnv's own
    vectorised ``post_decision(actions)`` when it has one (the batched
    :class:`~opsrl.envs.lot_sizing.vec.LotSizingVecEnv`, also through ``VecMonitor``), and
    ``env_method("post_decision", action_i, indices=i)`` per env otherwise (``DummyVecEnv``,
    ``SubprocVecEnv``). Box actions are clipped to the bounds first, as PPO does. Under
    ``VecNormalize``, post-decision observations and rewards are normalised with its current
    statistics; other VecEnv wrappers that change observations are not applied to them.

    **Returns and advantage** (see :class:`~opsrl.agents.pdppo.buffers.
    PostDecisionRolloutBuffer`). ``returns="mc"`` (paper): discounted Monte-Carlo returns of
    each stream, R_t = sum_j gamma^(j-t) (r_j - r^x_j) and R^x_t = sum_j gamma^(j-t) r^x_j.
    The paper updates on whole episodes; here, as in SB3, a rollout of ``n_steps`` may cut an
    episode, and where it does each stream is bootstrapped with its own critic: V(s_T) for
    the pre-decision stream and V^x(f(s_T, a_T)) for the post-decision one, a_T sampled from
    the current policy at s_T. With n_steps a multiple of the horizon on a finite-horizon env
    (the paper's setting: 400 = 4 x 100) no episode is cut and the returns are the paper's.
    ``returns="gae"``: GAE(``gae_lambda``) per stream.

    ``advantage="max"`` (paper, final version): A = max(R - V(s), R^x - V^x(s^x)) with the
    values stored at collection time; the critics minimise MSE(V(s), R) and MSE(V^x(s^x), R^x).
    ``advantage="min"`` (the earlier *min-critic* variant): both critics estimate the total
    return G (of r = (r - r^x) + r^x, bootstrapped with min(V, V^x) where cut), the actor uses
    A = G - min(V(s), V^x(s^x)) and the critics are trained on one loss,
    MSE(min(V(s), V^x(s^x)), G), whose gradient reaches, per sample, the critic that gives
    the minimum; both critic optimizers step on it. (The original code also normalised G and
    used one optimizer; here G is not normalised and Adam runs per network, which is the same
    as one Adam with per-network learning rates.)

    **Truncation.** Where a time limit truncates an episode (``TimeLimit.truncated``), the
    pre-decision stream is bootstrapped with gamma * V(s_T) as in SB3. The env has already
    been reset, so no post-decision state of s_T can be formed; the post-decision critic is
    evaluated at the terminal observation itself (post-decision observations live in the same
    space), an approximation. Finite-horizon envs such as lot sizing terminate and never need
    it.

    **Losses.** Actor: -mean(min(rho A, clip(rho, 1 - eps, 1 + eps) A)) - ent_coef * H, on the
    actor optimizer (``learning_rate``); critics: the losses above on the two critic optimizers
    (``critic_learning_rate``). One backward pass of their sum gives each network exactly the
    gradient of its own loss, since they share no parameters (see
    :class:`~opsrl.agents.pdppo.policies.DualCriticPolicy`).

    Defaults are the paper's: gamma 0.9, 40 full-batch epochs, clip 0.2, entropy 0.001,
    learning rates 5.5e-4 (actor) and 1e-3 (critics), no advantage normalisation, no gradient
    clipping, an update every 400 steps (per env: n_steps x n_envs transitions per update).
    Not reproduced: the paper's code keeps the last five update batches in its buffer and
    reuses them with stale log-probabilities; this implementation is on-policy like PPO.

    :param policy: The policy model to use (``"MlpPolicy"`` = :class:`DualCriticPolicy`, or a
        subclass of it)
    :param env: The environment to learn from (if registered in Gym, can be str); it must
        offer ``post_decision`` (see above)
    :param learning_rate: The actor's learning rate, it can be a function of the current
        progress remaining (from 1 to 0)
    :param critic_learning_rate: Both critics' learning rate, a float or a schedule as well
    :param n_steps: The number of steps to run for each environment per update (the rollout
        holds n_steps * n_envs transitions)
    :param batch_size: Minibatch size; None (default) trains on the whole rollout at once
    :param n_epochs: Number of epochs when optimizing the losses
    :param gamma: Discount factor
    :param gae_lambda: Factor for trade-off of bias vs variance for Generalized Advantage
        Estimator; used with ``returns="gae"`` only (``"mc"`` is lambda = 1)
    :param returns: ``"mc"`` (discounted Monte-Carlo returns per stream, bootstrapped where a
        rollout cuts an episode) or ``"gae"`` (GAE per stream)
    :param advantage: ``"max"`` (A = max of the two streams' advantages) or ``"min"`` (the
        min-critic variant: A = G - min(V, V^x) on the total return G)
    :param clip_range: Clipping parameter of the policy ratio, it can be a function of the
        current progress remaining (from 1 to 0)
    :param clip_range_vf: Clipping parameter for both value functions (around their values at
        collection time), it can be a function of the current progress remaining. None (default)
        means no clipping. IMPORTANT: this clipping depends on the reward scaling.
    :param normalize_advantage: Whether to normalize the advantage per minibatch (paper: no)
    :param ent_coef: Entropy coefficient for the actor's loss
    :param max_grad_norm: The maximum gradient norm of each network (actor, critic, post
        critic, clipped separately); None (default) means no clipping
    :param use_sde: Whether to use generalized State Dependent Exploration (gSDE) instead of
        action noise exploration (Box actions)
    :param sde_sample_freq: Sample a new noise matrix every n steps when using gSDE
        (-1: only at the beginning of the rollout)
    :param rollout_buffer_class: Rollout buffer class to use, a subclass of
        :class:`PostDecisionRolloutBuffer` (default)
    :param rollout_buffer_kwargs: Keyword arguments to pass to the rollout buffer on creation
    :param target_kl: Limit the KL divergence between updates (early stopping at
        1.5 * target_kl); None (default) means no limit
    :param stats_window_size: Window size for the rollout logging, specifying the number of
        episodes to average the reported success rate, mean episode length, and mean reward over
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to the policy on creation, e.g.
        ``net_arch``, ``activation_fn`` (actor), ``critic_activation_fn`` (critics)
    :param verbose: Verbosity level: 0 for no output, 1 for info messages (such as device or
        wrappers used), 2 for debug messages
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run. Setting it to auto,
        the code will be run on the GPU if possible.
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"MlpPolicy": DualCriticPolicy}
    policy: DualCriticPolicy  # type: ignore[assignment]
    rollout_buffer: PostDecisionRolloutBuffer  # type: ignore[assignment]

    def __init__(
        self,
        policy: str | type[DualCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 5.5e-4,
        critic_learning_rate: float | Schedule = 1e-3,
        n_steps: int = 400,
        batch_size: int | None = None,
        n_epochs: int = 40,
        gamma: float = 0.9,
        gae_lambda: float = 0.95,
        returns: str = "mc",
        advantage: str = "max",
        clip_range: float | Schedule = 0.2,
        clip_range_vf: float | Schedule | None = None,
        normalize_advantage: bool = False,
        ent_coef: float = 0.001,
        max_grad_norm: float | None = None,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        rollout_buffer_class: type[RolloutBuffer] | None = None,
        rollout_buffer_kwargs: dict[str, Any] | None = None,
        target_kl: float | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        # PPO.__init__ is skipped: its batch-size checks assume an int, and PDPPO's default
        # batch size is the whole rollout (None). Its attributes are set below.
        OnPolicyAlgorithm.__init__(
            self,
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=gae_lambda,
            ent_coef=ent_coef,
            vf_coef=1.0,  # unused: each critic has its own optimizer and loss
            max_grad_norm=max_grad_norm,  # type: ignore[arg-type]
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            rollout_buffer_class=rollout_buffer_class,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
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
        self.critic_learning_rate = critic_learning_rate
        self.batch_size = batch_size
        self.n_epochs = n_epochs
        self.returns = returns
        self.advantage = advantage
        self.clip_range = clip_range
        self.clip_range_vf = clip_range_vf
        self.normalize_advantage = normalize_advantage
        self.target_kl = target_kl
        if _init_setup_model:
            self._check_arguments()
            self._setup_model()

    # ------------------------------------------------------------------------- set-up
    def _check_arguments(self) -> None:
        """Raise a ValueError naming the first bad argument."""
        if self.returns not in RETURNS:
            raise ValueError(f"returns must be one of {', '.join(RETURNS)}, got {self.returns!r}")
        if self.advantage not in ADVANTAGES:
            raise ValueError(
                f"advantage must be one of {', '.join(ADVANTAGES)}, got {self.advantage!r}"
            )
        if isinstance(self.observation_space, spaces.Dict):
            raise ValueError("PDPPO does not support Dict observation spaces")
        if self.n_steps < 1:
            raise ValueError(f"n_steps must be a positive integer, got {self.n_steps!r}")
        if self.n_epochs < 1:
            raise ValueError(f"n_epochs must be a positive integer, got {self.n_epochs!r}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ValueError(f"max_grad_norm must be None or positive, got {self.max_grad_norm}")
        batch_size = self.batch_size
        if batch_size is not None:
            if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
                raise ValueError(f"batch_size must be None or an integer, got {batch_size!r}")
            if batch_size < 1 or (self.normalize_advantage and batch_size < 2):
                raise ValueError(
                    f"batch_size must be at least {2 if self.normalize_advantage else 1} "
                    f"(normalize_advantage={self.normalize_advantage}), got {batch_size}"
                )
        if self.env is not None:
            buffer_size = self.env.num_envs * self.n_steps
            if self.normalize_advantage and buffer_size < 2:
                raise ValueError(
                    "n_steps * n_envs must be greater than 1 with normalize_advantage=True"
                )
            if batch_size is not None and buffer_size % batch_size > 0:
                warnings.warn(
                    f"batch_size={batch_size} does not divide n_steps * n_envs = {buffer_size}: "
                    f"every epoch ends with a truncated minibatch of {buffer_size % batch_size}",
                    stacklevel=3,
                )

    def _setup_lr_schedule(self) -> None:
        super()._setup_lr_schedule()
        self.critic_lr_schedule = FloatSchedule(self.critic_learning_rate)

    def _setup_model(self) -> None:
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)

        buffer_class = self.rollout_buffer_class or PostDecisionRolloutBuffer
        is_class = isinstance(buffer_class, type)
        if not (is_class and issubclass(buffer_class, PostDecisionRolloutBuffer)):
            raise ValueError(
                "rollout_buffer_class must be a subclass of PostDecisionRolloutBuffer, got "
                f"{buffer_class!r}"
            )
        self.rollout_buffer_class = buffer_class
        self.rollout_buffer = buffer_class(
            self.n_steps,
            self.observation_space,
            self.action_space,
            device=self.device,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            n_envs=self.n_envs,
            returns=self.returns,
            advantage=self.advantage,
            **self.rollout_buffer_kwargs,
        )
        if not issubclass(self.policy_class, DualCriticPolicy):
            raise ValueError(
                "PDPPO needs a DualCriticPolicy (policy='MlpPolicy'), got "
                f"{self.policy_class.__name__}"
            )
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space,
            self.action_space,
            self.lr_schedule,
            use_sde=self.use_sde,
            critic_lr_schedule=self.critic_lr_schedule,
            **self.policy_kwargs,
        )
        self.policy = self.policy.to(self.device)
        self._maybe_recommend_cpu(mlp_class_name=DualCriticPolicy.__name__)

        self.clip_range = FloatSchedule(self.clip_range)
        if self.clip_range_vf is not None:
            if isinstance(self.clip_range_vf, (float, int)) and self.clip_range_vf <= 0:
                raise ValueError("clip_range_vf must be positive, or None for no clipping")
            self.clip_range_vf = FloatSchedule(self.clip_range_vf)
        if self.env is not None:
            self._post_decision_method(self.env)  # fail now, not in the first rollout

    def set_env(self, env: GymEnv, force_reset: bool = True) -> None:
        """Set the env to learn from (it must offer ``post_decision``)."""
        super().set_env(env, force_reset=force_reset)
        assert self.env is not None
        self._post_decision_method(self.env)

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = [
            "policy",
            "policy.optimizer",
            "policy.critic_optimizer",
            "policy.post_critic_optimizer",
        ]
        return state_dicts, []

    # ------------------------------------------------------------------------- post decisions
    @staticmethod
    def _post_decision_method(env: VecEnv) -> Any:
        """The VecEnv's vectorised ``post_decision``, or None to call it per env.

        Raises the PDPPO ValueError when the env has neither.
        """
        batched = getattr(env, "post_decision", None)  # VecEnvWrapper forwards the lookup
        if callable(batched):
            return batched
        if env.has_attr("post_decision"):
            return None
        raise post_decision_error(env)

    def _post_decisions(
        self, env: VecEnv, actions: np.ndarray, batched: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Post-decision observations (n_envs, *obs_shape) and rewards (n_envs,) of ``actions``.

        ``actions`` are what ``env.step`` will receive (clipped Box actions); ``batched`` is
        what :meth:`_post_decision_method` returned for ``env``. Observations and rewards are
        normalised like the env's own where it is wrapped in ``VecNormalize``.
        """
        if batched is not None:
            post_obs, post_rewards = batched(actions)
        else:
            pairs = [
                env.env_method("post_decision", actions[i], indices=i)[0]
                for i in range(env.num_envs)
            ]
            post_obs = np.stack([np.asarray(pair[0]) for pair in pairs])
            post_rewards = np.array([pair[1] for pair in pairs], dtype=np.float32)
        post_obs = np.asarray(post_obs)
        post_rewards = np.asarray(post_rewards, dtype=np.float32).reshape(-1)
        expected = (env.num_envs, *self.observation_space.shape)
        if post_obs.shape != expected or post_rewards.shape != (env.num_envs,):
            raise ValueError(
                f"post_decision returned post_obs of shape {post_obs.shape} and post_reward of "
                f"shape {post_rewards.shape}; expected {expected} and ({env.num_envs},)"
            )
        # Outermost last, as the env's observations went through them.
        for normalizer in reversed(_vec_normalizers(env)):
            post_obs = normalizer.normalize_obs(post_obs)  # type: ignore[assignment]
            post_rewards = normalizer.normalize_reward(post_rewards)
        return post_obs, post_rewards

    def _env_actions(self, actions: np.ndarray) -> np.ndarray:
        """Actions as sent to the env: Box actions unscaled or clipped, as in SB3's PPO."""
        if isinstance(self.action_space, spaces.Box):
            if self.policy.squash_output:
                return self.policy.unscale_action(actions)
            return np.clip(actions, self.action_space.low, self.action_space.high)
        return actions

    # ------------------------------------------------------------------------- rollouts
    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        """Collect ``n_rollout_steps`` steps per env into the buffer, with post decisions.

        As SB3's loop, plus: before each ``env.step``, the post-decision observations and
        rewards of the chosen actions; at the end, the post-decision critic's values of the
        whole rollout (one batched pass) and the bootstrap values of both critics where an
        episode continues past the last step.
        """
        assert self._last_obs is not None, "No previous observation was provided"
        assert isinstance(rollout_buffer, PostDecisionRolloutBuffer)
        batched_post_decision = self._post_decision_method(env)
        self.policy.set_training_mode(False)

        n_steps = 0
        rollout_buffer.reset()
        if self.use_sde:
            self.policy.reset_noise(env.num_envs)

        callback.on_rollout_start()

        while n_steps < n_rollout_steps:
            if self.use_sde and self.sde_sample_freq > 0 and n_steps % self.sde_sample_freq == 0:
                self.policy.reset_noise(env.num_envs)

            with th.no_grad():
                obs_tensor = obs_as_tensor(self._last_obs, self.device)  # type: ignore[arg-type]
                actions, values, log_probs = self.policy(obs_tensor)
            actions = actions.cpu().numpy()
            clipped_actions = self._env_actions(actions)

            post_obs, post_rewards = self._post_decisions(
                env, clipped_actions, batched_post_decision
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

            terminal_values, terminal_post_values = self._truncation_values(dones, infos)
            rollout_buffer.add(
                self._last_obs,  # type: ignore[arg-type]
                actions,
                rewards,
                self._last_episode_starts,  # type: ignore[arg-type]
                values,
                log_probs,
                post_obs=post_obs,
                post_reward=post_rewards,
                post_value=None,  # for the whole rollout at once, below
                terminal_value=terminal_values,
                terminal_post_value=terminal_post_values,
            )
            self._last_obs = new_obs  # type: ignore[assignment]
            self._last_episode_starts = dones

        # V^x of every stored post-decision observation in one pass: the critic does not
        # change during a rollout, and one large batch costs less than n_steps small ones.
        rollout_buffer.post_values[:] = self._post_values_of(rollout_buffer.post_observations)
        with th.no_grad():
            new_obs_tensor = obs_as_tensor(new_obs, self.device)  # type: ignore[arg-type]
            if np.all(dones):
                last_values = self.policy.predict_values(new_obs_tensor)
                last_post_values = th.zeros_like(last_values)
            else:
                # Bootstrap of the post-decision stream: V^x at the post-decision state of an
                # action drawn from the current policy at the observation after the cut.
                next_actions, last_values, _ = self.policy(new_obs_tensor)
                next_post_obs, _ = self._post_decisions(
                    env, self._env_actions(next_actions.cpu().numpy()), batched_post_decision
                )
                last_post_values = self.policy.predict_post_values(
                    obs_as_tensor(next_post_obs, self.device)  # type: ignore[arg-type]
                )

        rollout_buffer.compute_returns_and_advantage(
            last_values=last_values, dones=dones, last_post_values=last_post_values
        )

        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _post_values_of(self, post_observations: np.ndarray, chunk: int = 65_536) -> np.ndarray:
        """V^x of post-decision observations (n_steps, n_envs, ...) -> (n_steps, n_envs)."""
        lead = post_observations.shape[:2]
        flat = post_observations.reshape(-1, *self.observation_space.shape)
        values = np.empty(len(flat), dtype=np.float32)
        with th.no_grad():
            for start in range(0, len(flat), chunk):
                batch = obs_as_tensor(flat[start : start + chunk], self.device)
                values[start : start + chunk] = (
                    self.policy.predict_post_values(batch).cpu().numpy().flatten()  # type: ignore[arg-type]
                )
        return values.reshape(lead)

    def _truncation_values(
        self, dones: np.ndarray, infos: list[dict[str, Any]]
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """V(s_T) and V^x(s_T) of episodes truncated at this step (zeros elsewhere), or Nones.

        The post-decision critic reads the terminal observation as a stand-in for the
        post-decision state that cannot be formed once the env has been reset.
        """
        truncated = [
            idx
            for idx, done in enumerate(dones)
            if done
            and infos[idx].get("terminal_observation") is not None
            and infos[idx].get("TimeLimit.truncated", False)
        ]
        if not truncated:
            return None, None
        terminal_obs = np.stack([np.asarray(infos[i]["terminal_observation"]) for i in truncated])
        with th.no_grad():
            obs_tensor = obs_as_tensor(terminal_obs, self.device)  # type: ignore[arg-type]
            pre = self.policy.predict_values(obs_tensor).cpu().numpy().flatten()
            post = self.policy.predict_post_values(obs_tensor).cpu().numpy().flatten()
        terminal_values = np.zeros(len(dones), dtype=np.float32)
        terminal_post_values = np.zeros(len(dones), dtype=np.float32)
        terminal_values[truncated] = pre
        terminal_post_values[truncated] = post
        return terminal_values, terminal_post_values

    # ------------------------------------------------------------------------- training
    def train(self) -> None:
        """Update the actor and both critics on the collected rollout, each with its optimizer."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        critic_lr = self.critic_lr_schedule(self._current_progress_remaining)
        self.logger.record("train/critic_learning_rate", critic_lr)
        update_learning_rate(self.policy.critic_optimizer, critic_lr)
        update_learning_rate(self.policy.post_critic_optimizer, critic_lr)
        clip_range = self.clip_range(self._current_progress_remaining)  # type: ignore[operator]
        clip_range_vf = (
            None
            if self.clip_range_vf is None
            else self.clip_range_vf(self._current_progress_remaining)  # type: ignore[operator]
        )
        optimizers = self.policy.optimizers

        entropy_losses, pg_losses, clip_fractions = [], [], []
        value_losses, post_value_losses, min_value_losses = [], [], []
        approx_kl_divs: list[float] = []
        continue_training = True
        loss = th.zeros(())
        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            for rollout_data in self.rollout_buffer.get(self.batch_size):
                actions = rollout_data.actions
                if isinstance(self.action_space, spaces.Discrete):
                    actions = rollout_data.actions.long().flatten()

                values, post_values, log_prob, entropy = (
                    self.policy.evaluate_actions_and_post_values(
                        rollout_data.observations, actions, rollout_data.post_observations
                    )
                )
                values, post_values = values.flatten(), post_values.flatten()

                advantages = rollout_data.advantages
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

                ratio = th.exp(log_prob - rollout_data.old_log_prob)
                policy_loss_1 = advantages * ratio
                policy_loss_2 = advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)
                policy_loss = -th.min(policy_loss_1, policy_loss_2).mean()

                if clip_range_vf is not None:
                    values = rollout_data.old_values + th.clamp(
                        values - rollout_data.old_values, -clip_range_vf, clip_range_vf
                    )
                    post_values = rollout_data.old_post_values + th.clamp(
                        post_values - rollout_data.old_post_values, -clip_range_vf, clip_range_vf
                    )
                if self.advantage == "max":
                    value_loss = F.mse_loss(values, rollout_data.returns)
                    post_value_loss = F.mse_loss(post_values, rollout_data.post_returns)
                    critic_loss = value_loss + post_value_loss
                else:
                    critic_loss = F.mse_loss(th.minimum(values, post_values), rollout_data.returns)
                    min_value_losses.append(critic_loss.item())
                    with th.no_grad():  # diagnostics: each critic against the total return
                        value_loss = F.mse_loss(values, rollout_data.returns)
                        post_value_loss = F.mse_loss(post_values, rollout_data.post_returns)

                if entropy is None:  # no analytical form: estimate it from the log-probs
                    entropy_loss = -th.mean(-log_prob)
                else:
                    entropy_loss = -th.mean(entropy)

                loss = policy_loss + self.ent_coef * entropy_loss + critic_loss

                with th.no_grad():
                    log_ratio = log_prob - rollout_data.old_log_prob
                    approx_kl_div = th.mean((th.exp(log_ratio) - 1) - log_ratio).item()
                    clip_fraction = th.mean((th.abs(ratio - 1) > clip_range).float()).item()
                approx_kl_divs.append(approx_kl_div)
                pg_losses.append(policy_loss.item())
                clip_fractions.append(clip_fraction)
                value_losses.append(value_loss.item())
                post_value_losses.append(post_value_loss.item())
                entropy_losses.append(entropy_loss.item())

                if self.target_kl is not None and approx_kl_div > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(
                            f"Early stopping at step {epoch} due to reaching max kl: "
                            f"{approx_kl_div:.2f}"
                        )
                    break

                for optimizer in optimizers:
                    optimizer.zero_grad()
                # The networks share no parameters (a parameterised shared features extractor
                # aside, which belongs to the actor), so one backward pass of the summed losses
                # gives each network the gradient of its own loss.
                loss.backward()
                if self.max_grad_norm is not None:
                    for optimizer in optimizers:
                        th.nn.utils.clip_grad_norm_(
                            [p for group in optimizer.param_groups for p in group["params"]],
                            self.max_grad_norm,
                        )
                for optimizer in optimizers:
                    optimizer.step()

            self._n_updates += 1
            if not continue_training:
                break

        buffer = self.rollout_buffer
        if self.advantage == "max":
            pre_prediction, post_prediction = buffer.values, buffer.post_values
        else:
            pre_prediction = np.minimum(buffer.values, buffer.post_values)
            post_prediction = buffer.post_values
        explained_var = explained_variance(pre_prediction.flatten(), buffer.returns.flatten())
        post_explained_var = explained_variance(
            post_prediction.flatten(), buffer.post_returns.flatten()
        )

        self.logger.record("train/entropy_loss", np.mean(entropy_losses))
        self.logger.record("train/policy_loss", np.mean(pg_losses))
        self.logger.record("train/value_loss", np.mean(value_losses))
        self.logger.record("train/post_value_loss", np.mean(post_value_losses))
        if min_value_losses:
            self.logger.record("train/min_value_loss", np.mean(min_value_losses))
        self.logger.record("train/approx_kl", np.mean(approx_kl_divs))
        self.logger.record("train/clip_fraction", np.mean(clip_fractions))
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/explained_variance", explained_var)
        self.logger.record("train/post_explained_variance", post_explained_var)
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)

    def learn(
        self: SelfPDPPO,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "PDPPO",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfPDPPO:
        """Train for ``total_timesteps`` env steps (see SB3's ``PPO.learn``)."""
        if self.env is None:
            raise ValueError("PDPPO has no env to learn from; pass one or call set_env(env)")
        self._post_decision_method(self.env)
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )


def _vec_normalizers(env: VecEnv) -> list[VecNormalize]:
    """The ``VecNormalize`` wrappers around ``env``, outermost first."""
    found = []
    while isinstance(env, VecEnvWrapper):
        if isinstance(env, VecNormalize):
            found.append(env)
        env = env.venv
    return found
