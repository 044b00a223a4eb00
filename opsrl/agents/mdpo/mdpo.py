"""On-policy Mirror Descent Policy Optimization (MDPO) on SB3's ``OnPolicyAlgorithm``."""

from __future__ import annotations

import copy
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.distributions import Distribution, kl_divergence
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import FloatSchedule, explained_variance, update_learning_rate

from opsrl.agents.mdpo.policies import CnnPolicy, MDPOPolicy, MlpPolicy, MultiInputPolicy

__all__ = ["MDPO", "clipped_value_loss", "mirror_descent_terms", "per_state_kl"]

SelfMDPO = TypeVar("SelfMDPO", bound="MDPO")


def per_state_kl(distribution: Distribution, reference: Distribution) -> th.Tensor:
    """KL(distribution || reference) per state, shape (batch,), in closed form.

    SB3's ``kl_divergence`` returns one value per action dimension for diagonal Gaussian and
    Bernoulli distributions; the KL of the joint (independent) distribution is their sum.
    """
    kl = kl_divergence(distribution, reference)
    return kl.sum(dim=1) if kl.dim() > 1 else kl


def mirror_descent_terms(
    distribution: Distribution,
    old_distribution: Distribution,
    actions: th.Tensor,
    old_log_prob: th.Tensor,
    advantages: th.Tensor,
) -> tuple[th.Tensor, th.Tensor]:
    """``(surrogate, kl)`` of the on-policy MDPO loss on a batch.

    surrogate = mean(r * A) with r = pi(a|s) / pi_old(a|s) = exp(log pi(a|s) - old_log_prob);
    kl = mean over states of KL(pi(.|s) || pi_old(.|s)), closed form, new || old direction.
    The loss is ``-surrogate + kl / t_k``.
    """
    ratio = th.exp(distribution.log_prob(actions) - old_log_prob)
    surrogate = (ratio * advantages).mean()
    kl = per_state_kl(distribution, old_distribution).mean()
    return surrogate, kl


def clipped_value_loss(
    values: th.Tensor, old_values: th.Tensor, returns: th.Tensor, clip_range: float | None
) -> th.Tensor:
    """mean(max((V - R)^2, (V_clip - R)^2)), V_clip = V_old + clip(V - V_old, -c, c).

    The pessimistic clipped loss of the reference (OpenAI baselines' PPO2 form); with
    ``clip_range=None``, the plain mean squared error.
    """
    loss = (values - returns).pow(2)
    if clip_range is not None:
        clipped = old_values + th.clamp(values - old_values, -clip_range, clip_range)
        loss = th.maximum(loss, (clipped - returns).pow(2))
    return loss.mean()


class MDPO(OnPolicyAlgorithm):
    """On-policy Mirror Descent Policy Optimization (MDPO).

    Each iteration k rolls out ``n_steps * n_envs`` transitions with pi_k, computes GAE and
    standardises the advantages, then takes ``n_policy_steps`` (m) Adam steps on the whole
    batch (no minibatches) of

        L(theta) = -mean(r_theta * A) + (1 / t_k) * mean_s KL(pi_theta(.|s) || pi_k(.|s)),

    r_theta = pi_theta(a|s) / pi_k(a|s), the KL in closed form in the (new || old) direction
    (for diagonal Gaussians, summed over action dimensions). Then the critic, a separate
    network with its own optimizer, is fitted to the TD(lambda) returns for
    ``n_critic_epochs`` epochs of minibatches of ``batch_size``, with the clipped value loss
    max((V - R)^2, (V_clip - R)^2), V_clip = V_old + clip(V - V_old, -c, c). m = 1 is a vanilla
    policy gradient step; the paper found m = 10 best.

    **Step size.** With ``kl_coef=None`` (default) the mirror-descent step size is annealed
    as in the reference code, t_k = 1 - (k - 1) / K, K = total_timesteps / (n_steps * n_envs):
    t_1 = 1 and the KL weight 1 / t_k grows over training (to K at the last iteration). It is
    computed from the env steps taken before the iteration's rollout,
    t_k = 1 - steps_before / total_timesteps, and floored at ``min_step_size`` (default 1e-3,
    so the KL weight never exceeds 1000): without the floor, a budget that is not a multiple
    of the rollout size would give the last iteration a step size near 0. (The reference code
    starts its count at 0, so its first step size is 1 + 1 / K; this follows the paper's
    t_k = 1 - (k - 1) / K.) A float ``kl_coef`` fixes the KL weight 1 / t_k instead.

    Paper: Tomar, Shani, Efroni, Ghavamzadeh, "Mirror Descent Policy Optimization", ICLR 2022,
    https://arxiv.org/abs/2005.09814. Code: https://github.com/manantomar/Mirror-Descent-Policy-
    Optimization (``mdpo_on``, TensorFlow; this is an independent re-implementation on
    Stable-Baselines3). Defaults are the reference run's: 2048 steps per iteration, m = 10,
    Adam 3e-4 (eps 1e-5) for the actor and the critic, gradient clipping 0.5 (actor), gamma
    0.99, GAE 0.95, critic 5 epochs of minibatches of 128 with value clipping 0.2, actor and
    critic 64-64 tanh. The reference trains on ``VecNormalize`` (observations and rewards):
    the value clipping range is in reward units, so without reward normalisation set
    ``clip_range_vf=None`` (or scale it), or the critic moves by at most c per iteration.

    :param policy: The policy model to use (``"MlpPolicy"`` = :class:`MDPOPolicy`,
        ``"CnnPolicy"``, ``"MultiInputPolicy"``, or a subclass of :class:`MDPOPolicy`)
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param learning_rate: The actor's learning rate, it can be a function of the current
        progress remaining (from 1 to 0)
    :param critic_learning_rate: The critic's learning rate, a float or a schedule as well
    :param n_steps: The number of steps to run for each environment per iteration (the batch
        holds n_steps * n_envs transitions)
    :param n_policy_steps: m, the number of full-batch Adam steps on the actor loss per
        iteration
    :param n_critic_epochs: Number of epochs over the batch for the critic per iteration
    :param batch_size: Minibatch size of the critic's updates
    :param gamma: Discount factor
    :param gae_lambda: Factor for trade-off of bias vs variance for Generalized Advantage
        Estimator (also the lambda of the critic's TD(lambda) targets)
    :param kl_coef: The KL weight 1 / t_k; None (default) anneals t_k = 1 - (k - 1) / K
        (see above), a positive float keeps the weight fixed
    :param min_step_size: Floor of the annealed step size t_k (ceiling 1 / min_step_size of
        the KL weight); unused with a fixed ``kl_coef``
    :param clip_range_vf: Clipping parameter of the value function around its values at
        collection time, it can be a function of the current progress remaining; None means
        no clipping. IMPORTANT: this clipping depends on the reward scaling.
    :param normalize_advantage: Whether to standardise the advantages over the batch
    :param max_grad_norm: The maximum gradient norm of the actor's steps; None means no
        clipping (the critic is not clipped, as in the reference)
    :param use_sde: Whether to use generalized State Dependent Exploration (gSDE) instead of
        action noise exploration (Box actions)
    :param sde_sample_freq: Sample a new noise matrix every n steps when using gSDE
        (-1: only at the beginning of the rollout)
    :param rollout_buffer_class: Rollout buffer class to use; None selects SB3's
        ``RolloutBuffer`` (``DictRolloutBuffer`` for Dict observations)
    :param rollout_buffer_kwargs: Keyword arguments to pass to the rollout buffer on creation
    :param stats_window_size: Window size for the rollout logging, specifying the number of
        episodes to average the reported success rate, mean episode length, and mean reward over
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to the policy on creation, e.g.
        ``net_arch``, ``activation_fn``, ``share_features_extractor``
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
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: MDPOPolicy  # type: ignore[assignment]

    def __init__(
        self,
        policy: str | type[MDPOPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        critic_learning_rate: float | Schedule = 3e-4,
        n_steps: int = 2048,
        n_policy_steps: int = 10,
        n_critic_epochs: int = 5,
        batch_size: int = 128,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        kl_coef: float | None = None,
        min_step_size: float = 1e-3,
        clip_range_vf: float | Schedule | None = 0.2,
        normalize_advantage: bool = True,
        max_grad_norm: float | None = 0.5,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        rollout_buffer_class: type[RolloutBuffer] | None = None,
        rollout_buffer_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=gae_lambda,
            ent_coef=0.0,  # no entropy bonus in MDPO's loss
            vf_coef=0.0,  # the critic has its own loss and optimizer
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
        self.n_policy_steps = n_policy_steps
        self.n_critic_epochs = n_critic_epochs
        self.batch_size = batch_size
        self.kl_coef = kl_coef
        self.min_step_size = min_step_size
        self.clip_range_vf = clip_range_vf
        self.normalize_advantage = normalize_advantage
        if _init_setup_model:
            self._check_arguments()
            self._setup_model()

    # ------------------------------------------------------------------------- set-up
    def _check_arguments(self) -> None:
        """Raise a ValueError naming the first bad argument."""
        for name in ("n_steps", "n_policy_steps", "n_critic_epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.kl_coef is not None and not self.kl_coef > 0:
            raise ValueError(f"kl_coef must be None (annealed) or positive, got {self.kl_coef!r}")
        if not 0 < self.min_step_size <= 1:
            raise ValueError(f"min_step_size must be in (0, 1], got {self.min_step_size!r}")
        if isinstance(self.clip_range_vf, (float, int)) and self.clip_range_vf <= 0:
            raise ValueError(
                f"clip_range_vf must be positive, or None for no clipping, got {self.clip_range_vf}"
            )
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ValueError(f"max_grad_norm must be None or positive, got {self.max_grad_norm}")
        if self.env is not None and self.normalize_advantage and self.n_steps * self.n_envs < 2:
            raise ValueError(
                "n_steps * n_envs must be at least 2 to standardise the advantages, got "
                f"n_steps={self.n_steps} with n_envs={self.n_envs}"
            )

    def _setup_lr_schedule(self) -> None:
        super()._setup_lr_schedule()
        self.critic_lr_schedule = FloatSchedule(self.critic_learning_rate)

    def _setup_model(self) -> None:
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        if self.rollout_buffer_class is None:
            is_dict = isinstance(self.observation_space, spaces.Dict)
            self.rollout_buffer_class = DictRolloutBuffer if is_dict else RolloutBuffer
        self.rollout_buffer = self.rollout_buffer_class(
            self.n_steps,
            self.observation_space,  # type: ignore[arg-type]
            self.action_space,
            device=self.device,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            n_envs=self.n_envs,
            **self.rollout_buffer_kwargs,
        )
        if not issubclass(self.policy_class, MDPOPolicy):
            raise ValueError(
                "MDPO needs an MDPOPolicy (policy='MlpPolicy', 'CnnPolicy' or "
                f"'MultiInputPolicy'), got {self.policy_class.__name__}"
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
        self._maybe_recommend_cpu(mlp_class_name=MDPOPolicy.__name__)
        if self.clip_range_vf is not None:
            self.clip_range_vf = FloatSchedule(self.clip_range_vf)

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["policy", "policy.optimizer", "policy.critic_optimizer"], []

    # ------------------------------------------------------------------------- training
    def step_size(self) -> float:
        """The mirror-descent step size t_k of the iteration whose rollout was just collected.

        ``1 / kl_coef`` when the KL weight is fixed; otherwise 1 - steps_before / total, with
        steps_before the env steps taken before this iteration's rollout, floored at
        ``min_step_size``.
        """
        if self.kl_coef is not None:
            return 1.0 / self.kl_coef
        steps_before = self.num_timesteps - self.n_steps * self.n_envs
        return max(1.0 - steps_before / max(self._total_timesteps, 1), self.min_step_size)

    def train(self) -> None:
        """m full-batch actor steps on the mirror-descent loss, then the critic's epochs."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        critic_lr = self.critic_lr_schedule(self._current_progress_remaining)
        self.logger.record("train/critic_learning_rate", critic_lr)
        update_learning_rate(self.policy.critic_optimizer, critic_lr)
        clip_range_vf = (
            None
            if self.clip_range_vf is None
            else self.clip_range_vf(self._current_progress_remaining)  # type: ignore[operator]
        )
        step_size = self.step_size()
        kl_weight = 1.0 / step_size

        # The whole rollout moves to the device once; minibatches are index views of it.
        batch = next(self.rollout_buffer.get(batch_size=None))
        observations = batch.observations
        actions = batch.actions
        if isinstance(self.action_space, spaces.Discrete):
            actions = actions.long().flatten()
        advantages = batch.advantages
        if self.normalize_advantage:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

        # ---- actor: m Adam steps on the whole batch
        actor_params = [p for group in self.policy.optimizer.param_groups for p in group["params"]]
        with th.no_grad():
            # copy: get_distribution() refills the same distribution object on every call
            old_distribution = copy.copy(self.policy.get_distribution(observations))
        for _ in range(self.n_policy_steps):
            distribution = self.policy.get_distribution(observations)
            surrogate, kl = mirror_descent_terms(
                distribution, old_distribution, actions, batch.old_log_prob, advantages
            )
            policy_loss = -surrogate + kl_weight * kl
            self.policy.optimizer.zero_grad()
            policy_loss.backward()
            if self.max_grad_norm is not None:
                th.nn.utils.clip_grad_norm_(actor_params, self.max_grad_norm)
            self.policy.optimizer.step()

        with th.no_grad():
            distribution = self.policy.get_distribution(observations)
            final_surrogate, final_kl = mirror_descent_terms(
                distribution, old_distribution, actions, batch.old_log_prob, advantages
            )
            entropy = distribution.entropy()
            mean_entropy = (
                -distribution.log_prob(actions).mean() if entropy is None else entropy.mean()
            )

        # ---- critic: epochs of minibatches, clipped value loss
        value_losses: list[th.Tensor] = []  # read once at the end: no device sync per step
        n_samples = len(batch.returns)
        for _ in range(self.n_critic_epochs):
            order = th.randperm(n_samples, device=self.device)
            for start in range(0, n_samples, self.batch_size):
                index = order[start : start + self.batch_size]
                values = self.policy.predict_values(_take(observations, index)).flatten()
                value_loss = clipped_value_loss(
                    values, batch.old_values[index], batch.returns[index], clip_range_vf
                )
                self.policy.critic_optimizer.zero_grad()
                value_loss.backward()
                self.policy.critic_optimizer.step()
                value_losses.append(value_loss.detach())

        self._n_updates += 1
        explained_var = explained_variance(
            self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten()
        )
        self.logger.record("train/step_size", step_size)
        self.logger.record("train/kl_coef", kl_weight)
        self.logger.record("train/policy_objective", final_surrogate.item())
        self.logger.record("train/kl_divergence", final_kl.item())
        self.logger.record("train/policy_loss", (-final_surrogate + kl_weight * final_kl).item())
        self.logger.record("train/entropy", mean_entropy.item())
        self.logger.record("train/value_loss", th.stack(value_losses).mean().item())
        self.logger.record("train/explained_variance", explained_var)
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())
        if clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")

    def learn(
        self: SelfMDPO,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "MDPO",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfMDPO:
        """Train for ``total_timesteps`` env steps (see SB3's ``OnPolicyAlgorithm.learn``)."""
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )


def _take(observations: th.Tensor | dict[str, th.Tensor], index: th.Tensor) -> Any:
    """Rows ``index`` of a batch of observations (a tensor or a dict of tensors)."""
    if isinstance(observations, dict):
        return {key: value[index] for key, value in observations.items()}
    return observations[index]
