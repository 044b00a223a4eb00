"""Off-policy Mirror Descent Policy Optimization (MDPO) as an SB3 ``SAC`` subclass."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, PyTorchObs, Schedule
from stable_baselines3.common.utils import polyak_update
from torch.nn import functional as F

from opsrl.agents.mdpo.policies import (
    OffPolicyMDPOCnnPolicy,
    OffPolicyMDPOMultiInputPolicy,
    OffPolicyMDPOPolicy,
)

__all__ = ["OffPolicyMDPO"]

SelfOffPolicyMDPO = TypeVar("SelfOffPolicyMDPO", bound="OffPolicyMDPO")


class OffPolicyMDPO(SAC):
    """Off-policy Mirror Descent Policy Optimization (MDPO), a SAC-like actor-critic.

    The actor minimises, on replay batches, with a reparameterised action a~ ~ pi_theta(.|s),

        L(theta) = mean[(1 / t_k) * (log pi_theta(a~|s) - log pi_old(a~|s))
                        + lambda * log pi_old(a~|s) - Q1(s, a~)]
                   + reg_coef * (mean(mu^2) + mean(log_sigma^2)),

    a mirror-descent step towards the soft-greedy policy that stays close (in KL) to pi_old,
    a frozen copy of the actor refreshed every ``old_policy_interval`` (m) gradient steps:
    the copy is taken before gradient step n whenever n % m == 0 (n counts from 0), so after
    N gradient steps it has been refreshed ceil(N / m) times (``old_policy_syncs``). mu and
    log_sigma are the pre-tanh mean and log standard deviation of the actor's Gaussian.
    1 / t_k = ``kl_coef`` is fixed (the reference code's ``klcoeff``, default 1) and lambda is
    the entropy coefficient ``ent_coef`` (default 0.2). With a uniform pi_old the loss is
    SAC's actor loss with entropy coefficient ``kl_coef``; with m = 1 (pi_old = pi_theta at
    every step) the gradient is SAC's in expectation, with entropy coefficient lambda. In
    both, Q1 stands in for SAC's min(Q1, Q2). (The reference refreshes pi_old every m env
    steps, warm-up included; at one gradient step per env step that is every m gradient
    steps after the warm-up.)

    **Critics: a deviation from the reference.** The reference trains a state-value net V
    (target min(Q1, Q2)(s, a~) - lambda * log pi(a~|s)) with a Polyak-averaged copy V-bar and
    twin Q nets on r + gamma * (1 - d) * V-bar(s'). This implementation keeps SB3 SAC's
    critics instead: twin Q nets with Polyak-averaged targets and the soft target
    r + gamma * (1 - d) * (min(Q1-bar, Q2-bar)(s', a') - lambda * log pi(a'|s')), a' ~ pi(.|s'),
    which estimates the same soft value without the V net (SAC's own later form, as in SB3).
    The actor's loss uses Q1 only, as the reference's does.

    Paper: Tomar, Shani, Efroni, Ghavamzadeh, "Mirror Descent Policy Optimization", ICLR 2022,
    https://arxiv.org/abs/2005.09814. Code: https://github.com/manantomar/Mirror-Descent-Policy-
    Optimization (``mdpo_off``, TensorFlow; this is an independent re-implementation on
    Stable-Baselines3). Defaults are the reference run's (m = 1000, kl_coef 1, lambda 0.2,
    regulariser 1e-3, Adam 3e-4, batch 256, buffer 1e6, tau 0.005, one gradient step per env
    step, 256-256 networks) except ``learning_starts``: SB3 SAC's 100 (the reference's MuJoCo
    runs start learning after 10,000 steps). Not implemented: the reference's Tsallis-entropy
    variant. gSDE is not offered.

    :param policy: The policy model to use (``"MlpPolicy"`` = :class:`OffPolicyMDPOPolicy`,
        ``"CnnPolicy"``, ``"MultiInputPolicy"``, or a subclass of :class:`OffPolicyMDPOPolicy`)
    :param env: The environment to learn from (if registered in Gym, can be str); Box actions
    :param learning_rate: learning rate for Adam, the same for the actor, the critics and the
        entropy coefficient; it can be a function of the current progress remaining (1 to 0)
    :param buffer_size: size of the replay buffer
    :param learning_starts: how many steps of the model to collect transitions for before
        learning starts
    :param batch_size: Minibatch size for each gradient update
    :param tau: the soft update coefficient ("Polyak update", between 0 and 1)
    :param gamma: the discount factor
    :param train_freq: Update the model every ``train_freq`` steps. Alternatively pass a tuple
        of frequency and unit like ``(5, "step")`` or ``(2, "episode")``.
    :param gradient_steps: How many gradient steps to do after each rollout (see
        ``train_freq``); -1 means as many gradient steps as env steps in the rollout
    :param old_policy_interval: m, the number of gradient steps between two refreshes of the
        old policy pi_old
    :param kl_coef: The KL weight 1 / t_k (fixed)
    :param reg_coef: Weight of the regulariser mean(mu^2) + mean(log_sigma^2) of the actor's
        pre-tanh Gaussian
    :param action_noise: the action noise type (None by default)
    :param replay_buffer_class: Replay buffer class to use; None selects it automatically
    :param replay_buffer_kwargs: Keyword arguments to pass to the replay buffer on creation
    :param optimize_memory_usage: Enable a memory efficient variant of the replay buffer
    :param n_steps: n-step returns for the critics' targets when > 1 (SB3's
        ``NStepReplayBuffer``)
    :param ent_coef: lambda, the entropy coefficient: a float, or ``"auto"`` (``"auto_0.1"``:
        initial value 0.1) to learn it as SAC does, towards ``target_entropy``
    :param target_update_interval: update the target networks every
        ``target_update_interval`` gradient steps
    :param target_entropy: target entropy when learning ``ent_coef`` (``ent_coef="auto"``)
    :param stats_window_size: Window size for the rollout logging, specifying the number of
        episodes to average the reported success rate, mean episode length, and mean reward over
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to the policy on creation, e.g.
        ``net_arch``, ``activation_fn``
    :param verbose: Verbosity level: 0 for no output, 1 for info messages (such as device or
        wrappers used), 2 for debug messages
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run. Setting it to auto,
        the code will be run on the GPU if possible.
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": OffPolicyMDPOPolicy,
        "CnnPolicy": OffPolicyMDPOCnnPolicy,
        "MultiInputPolicy": OffPolicyMDPOMultiInputPolicy,
    }
    policy: OffPolicyMDPOPolicy  # type: ignore[assignment]

    def __init__(
        self,
        policy: str | type[OffPolicyMDPOPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        old_policy_interval: int = 1000,
        kl_coef: float = 1.0,
        reg_coef: float = 1e-3,
        action_noise: ActionNoise | None = None,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        n_steps: int = 1,
        ent_coef: str | float = 0.2,
        target_update_interval: int = 1,
        target_entropy: str | float = "auto",
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
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            train_freq=train_freq,
            gradient_steps=gradient_steps,
            action_noise=action_noise,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            optimize_memory_usage=optimize_memory_usage,
            n_steps=n_steps,
            ent_coef=ent_coef,
            target_update_interval=target_update_interval,
            target_entropy=target_entropy,
            use_sde=False,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
        )
        self.old_policy_interval = old_policy_interval
        self.kl_coef = kl_coef
        self.reg_coef = reg_coef
        #: how many times the old policy has been refreshed from the actor
        self.old_policy_syncs = 0
        if _init_setup_model:
            self._check_arguments()
            self._setup_model()

    # ------------------------------------------------------------------------- set-up
    def _check_arguments(self) -> None:
        """Raise a ValueError naming the first bad argument."""
        interval = self.old_policy_interval
        if (
            not isinstance(interval, (int, np.integer))
            or isinstance(interval, bool)
            or interval < 1
        ):
            raise ValueError(f"old_policy_interval must be a positive integer, got {interval!r}")
        if not self.kl_coef > 0:
            raise ValueError(f"kl_coef must be positive, got {self.kl_coef!r}")
        if not self.reg_coef >= 0:
            raise ValueError(f"reg_coef must be non-negative, got {self.reg_coef!r}")
        if isinstance(self.ent_coef, (int, float)) and not self.ent_coef >= 0:
            raise ValueError(f"ent_coef must be non-negative or 'auto', got {self.ent_coef!r}")
        if isinstance(self.ent_coef, str) and not self.ent_coef.startswith("auto"):
            raise ValueError(
                f"ent_coef must be a float or 'auto[_<initial value>]', got {self.ent_coef!r}"
            )

    def _setup_model(self) -> None:
        if not issubclass(self.policy_class, OffPolicyMDPOPolicy):
            raise ValueError(
                "OffPolicyMDPO needs an OffPolicyMDPOPolicy (policy='MlpPolicy', 'CnnPolicy' or "
                f"'MultiInputPolicy'), got {self.policy_class.__name__}"
            )
        super()._setup_model()

    def _create_aliases(self) -> None:
        super()._create_aliases()
        self.actor_old = self.policy.actor_old

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "actor_old"]

    # ------------------------------------------------------------------------- training
    def sync_old_policy(self) -> None:
        """Refresh the old policy pi_old with the actor's current parameters."""
        self.policy.sync_old_actor()
        self.old_policy_syncs += 1

    def actor_loss(
        self, observations: PyTorchObs, ent_coef: th.Tensor
    ) -> tuple[th.Tensor, dict[str, th.Tensor]]:
        """The MDPO actor loss on a batch of observations, and its parts (detached).

        Parts: ``actions`` (the sampled a~), ``log_prob`` (log pi_theta(a~|s)),
        ``old_log_prob`` (log pi_old(a~|s)), ``kl`` (the sample estimate
        mean(log pi_theta(a~|s) - log pi_old(a~|s))), ``q1`` (mean Q1(s, a~)) and
        ``regulariser``.
        """
        mean_actions, log_std, kwargs = self.actor.get_action_dist_params(observations)
        actions_pi, log_prob = self.actor.action_dist.log_prob_from_params(
            mean_actions, log_std, **kwargs
        )
        # The old policy's log-density of the same squashed sample; the pre-tanh sample is
        # passed along so that no atanh is needed. Gradients reach theta through a~ only.
        gaussian_actions = self.actor.action_dist.gaussian_actions
        old_mean, old_log_std, _ = self.actor_old.get_action_dist_params(observations)
        old_log_prob = self.actor_old.action_dist.proba_distribution(
            old_mean, old_log_std
        ).log_prob(actions_pi, gaussian_actions)
        q1_pi = self.critic.q1_forward(observations, actions_pi).flatten()
        log_ratio = log_prob - old_log_prob
        regulariser = mean_actions.pow(2).mean() + log_std.pow(2).mean()
        loss = (
            self.kl_coef * log_ratio + ent_coef * old_log_prob - q1_pi
        ).mean() + self.reg_coef * regulariser
        parts = {
            "actions": actions_pi.detach(),
            "log_prob": log_prob.detach(),
            "old_log_prob": old_log_prob.detach(),
            "kl": log_ratio.detach().mean(),
            "q1": q1_pi.detach().mean(),
            "regulariser": regulariser.detach(),
        }
        return loss, parts

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """``gradient_steps`` updates of the critics and the MDPO actor on replay batches."""
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)

        ent_coef_losses, ent_coefs, kls = [], [], []
        actor_losses, critic_losses = [], []
        for gradient_step in range(gradient_steps):
            if self._n_updates % self.old_policy_interval == 0:
                self.sync_old_policy()
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma

            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                ent_coef = th.exp(self.log_ent_coef.detach())
            else:
                ent_coef = self.ent_coef_tensor
            ent_coefs.append(ent_coef.item())

            # Critics: SB3 SAC's soft double-Q target (see the class docstring).
            with th.no_grad():
                next_actions, next_log_prob = self.actor.action_log_prob(
                    replay_data.next_observations
                )
                next_q_values = th.cat(
                    self.critic_target(replay_data.next_observations, next_actions), dim=1
                )
                next_q_values, _ = th.min(next_q_values, dim=1, keepdim=True)
                next_q_values = next_q_values - ent_coef * next_log_prob.reshape(-1, 1)
                target_q_values = (
                    replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values
                )
            current_q_values = self.critic(replay_data.observations, replay_data.actions)
            critic_loss = 0.5 * sum(
                F.mse_loss(current_q, target_q_values) for current_q in current_q_values
            )
            assert isinstance(critic_loss, th.Tensor)
            critic_losses.append(critic_loss.item())
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()

            # Actor: the mirror-descent loss against the old policy.
            actor_loss, parts = self.actor_loss(replay_data.observations, ent_coef)
            actor_losses.append(actor_loss.item())
            kls.append(parts["kl"].item())
            self.actor.optimizer.zero_grad()
            actor_loss.backward()
            self.actor.optimizer.step()

            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                assert isinstance(self.target_entropy, float)
                log_prob = parts["log_prob"]
                ent_coef_loss = -(self.log_ent_coef * (log_prob + self.target_entropy)).mean()
                ent_coef_losses.append(ent_coef_loss.item())
                self.ent_coef_optimizer.zero_grad()
                ent_coef_loss.backward()
                self.ent_coef_optimizer.step()

            if gradient_step % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)
            self._n_updates += 1

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/old_policy_syncs", self.old_policy_syncs)
        self.logger.record("train/ent_coef", np.mean(ent_coefs))
        self.logger.record("train/kl_coef", self.kl_coef)
        self.logger.record("train/kl_divergence", np.mean(kls))
        self.logger.record("train/actor_loss", np.mean(actor_losses))
        self.logger.record("train/critic_loss", np.mean(critic_losses))
        if ent_coef_losses:
            self.logger.record("train/ent_coef_loss", np.mean(ent_coef_losses))

    def learn(
        self: SelfOffPolicyMDPO,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "MDPO_off",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfOffPolicyMDPO:
        """Train for ``total_timesteps`` env steps (see SB3's ``SAC.learn``)."""
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
