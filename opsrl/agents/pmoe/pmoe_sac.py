"""PMOE-SAC: Soft Actor-Critic with a probabilistic mixture-of-experts actor (SB3 SAC subclass)."""

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

from opsrl.agents.pmoe.distributions import routing_loss
from opsrl.agents.pmoe.policies import (
    GMMActor,
    MultiInputPolicy,
    PMOESACPolicy,
    gather_experts,
)

__all__ = ["PMOESAC"]

SelfPMOESAC = TypeVar("SelfPMOESAC", bound="PMOESAC")


class PMOESAC(SAC):
    """Probabilistic Mixture-of-Experts SAC (PMOE-SAC).

    SAC whose actor is a mixture of K tanh-Gaussian experts with mixing weights alpha(s)
    (:class:`~opsrl.agents.pmoe.policies.GMMActor`). Each gradient step, on a replay batch:

    1. **Critic.** For the next states, draw an expert k' ~ Cat(alpha(s')) and an action
       a' ~ pi_k'; the target is y = r + gamma (1 - d) (min_j Qbar_j(s', a') - ent_coef
       log pi_k'(a'|s')), with the **component's** log-density. Each critic minimises
       0.5 MSE(Q_j(s, a), y), as in SAC.
    2. **Actor (Q-best expert).** Draw a reparameterised action a_k from every expert,
       k* = argmax_k min_j Q_j(s, a_k), and minimise
       E[ent_coef log pi_k*(a_k*|s) - min_j Q_j(s, a_k*)]: the gradient flows only through
       the best expert k*.
    3. **Routing ("frequency") loss.** routing_coef * MSE(alpha(s), onehot(k*)), added to the
       actor loss (one optimizer): alpha regresses onto how often each expert is Q-best.
    4. **Temperature.** With ``ent_coef="auto"``, log ent_coef follows SAC's loss on
       log pi_k*(a_k*|s) with target entropy -|A| by default.

    Acting samples k ~ Cat(alpha(s)) then a ~ pi_k; ``deterministic=True`` returns
    tanh(mu_k) of the expert with the largest alpha.

    Paper: Ren, Li, Ding, Pan, Dong, "Probabilistic Mixture-of-Experts for Efficient Deep
    Reinforcement Learning", https://arxiv.org/abs/2104.09122. Reference code (by a co-author):
    https://github.com/quantumiracle/Popular-RL-Algorithms (``pmoe_sac.py``); this is an
    independent re-implementation on Stable-Baselines3. Differences from that code: SAC's
    defaults for everything but K (the code: 4 x 512 actor, 3 x 512 critics, batch 300,
    tau 0.01; set them through ``policy_kwargs``, ``batch_size`` and ``tau``), and no
    per-batch reward normalisation (the code standardises each batch's rewards and multiplies
    them by 10; wrap the env in ``VecNormalize`` for a reward scale instead).

    :param policy: The policy model to use (``"MlpPolicy"`` = :class:`PMOESACPolicy`,
        ``"MultiInputPolicy"``); the number of experts is ``policy_kwargs["n_experts"]``
        (default 2)
    :param env: The environment to learn from (if registered in Gym, can be str); Box actions
    :param learning_rate: learning rate for Adam, the same for the critics, the actor (experts
        and mixing head) and the entropy coefficient; it can be a function of the current
        progress remaining (from 1 to 0)
    :param buffer_size: size of the replay buffer
    :param learning_starts: how many steps of the model to collect transitions for before
        learning starts
    :param batch_size: Minibatch size for each gradient update
    :param tau: the soft update coefficient ("Polyak update", between 0 and 1)
    :param gamma: the discount factor
    :param train_freq: Update the model every ``train_freq`` steps. Alternatively pass a tuple
        of frequency and unit like ``(5, "step")`` or ``(2, "episode")``.
    :param gradient_steps: How many gradient steps to do after each rollout (see
        ``train_freq``); -1 means as many gradient steps as steps done in the environment
        during the rollout
    :param routing_coef: Weight of the routing loss MSE(alpha, onehot(k*)) in the actor's loss
    :param action_noise: the action noise type (None by default)
    :param replay_buffer_class: Replay buffer class to use. If ``None``, it will be
        automatically selected.
    :param replay_buffer_kwargs: Keyword arguments to pass to the replay buffer on creation
    :param optimize_memory_usage: Enable a memory efficient variant of the replay buffer at a
        cost of more complexity
    :param n_steps: n-step returns for the critic (1: one-step TD as in the paper)
    :param ent_coef: Entropy regularization coefficient; ``"auto"`` learns it (``"auto_0.1"``
        starts it at 0.1)
    :param target_update_interval: update the target network every ``target_update_interval``
        gradient steps
    :param target_entropy: target entropy when learning ``ent_coef`` (``"auto"``: -|A|)
    :param stats_window_size: Window size for the rollout logging, specifying the number of
        episodes to average the reported success rate, mean episode length, and mean reward over
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to the policy on creation, e.g.
        ``n_experts``, ``net_arch``
    :param verbose: Verbosity level: 0 for no output, 1 for info messages (such as device or
        wrappers used), 2 for debug messages
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run. Setting it to auto,
        the code will be run on the GPU if possible.
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": PMOESACPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: PMOESACPolicy
    actor: GMMActor

    def __init__(
        self,
        policy: str | type[PMOESACPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        routing_coef: float = 1.0,
        action_noise: ActionNoise | None = None,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        n_steps: int = 1,
        ent_coef: str | float = "auto",
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
        if not np.isfinite(routing_coef) or routing_coef < 0:
            raise ValueError(f"routing_coef must be a finite number >= 0, got {routing_coef!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        try:
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
        except AssertionError as error:  # SB3 asserts the action space; say it as a ValueError
            if "as action spaces" not in str(error):
                raise
            raise ValueError(
                "PMOE-SAC needs a Box action space (its actor is a mixture of squashed "
                f"Gaussians): {error}"
            ) from None
        self.routing_coef = float(routing_coef)
        if _init_setup_model:
            self._setup_model()

    def _min_q(self, obs: PyTorchObs, expert_actions: th.Tensor) -> th.Tensor:
        """min_j Q_j(s, a_k) for every row and expert: (B, K, A) actions -> (B, K)."""
        batch, n_experts, action_dim = expert_actions.shape
        # rows (b, k) in b-major order, as expert_actions.reshape(-1, A)
        if isinstance(obs, dict):
            repeated = {
                key: value.repeat_interleave(n_experts, dim=0) for key, value in obs.items()
            }
        else:
            repeated = obs.repeat_interleave(n_experts, dim=0)
        q_values = th.cat(self.critic(repeated, expert_actions.reshape(-1, action_dim)), dim=1)
        return q_values.min(dim=1).values.reshape(batch, n_experts)

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """``gradient_steps`` PMOE-SAC updates (critic, Q-best-expert actor and routing,
        temperature, target critics) on replay batches of ``batch_size``."""
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers += [self.ent_coef_optimizer]
        self._update_learning_rate(optimizers)

        ent_coef_losses, ent_coefs = [], []
        actor_losses, critic_losses, routing_losses = [], [], []
        best_expert_counts = th.zeros(self.actor.n_experts, device=self.device)
        mixing_max = []

        for gradient_step in range(gradient_steps):
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
            obs = replay_data.observations

            # A reparameterised action from every expert (with gradient), drawn before the
            # critic step as in SAC.
            mixing_logits, expert_actions, expert_log_probs = self.actor.expert_actions_log_prob(
                obs
            )
            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                ent_coef = th.exp(self.log_ent_coef.detach())
            else:
                ent_coef = self.ent_coef_tensor
            ent_coefs.append(ent_coef.detach())

            with th.no_grad():
                # One expert per next state, k' ~ Cat(alpha(s')), and its component density.
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

            current_q_values = self.critic(obs, replay_data.actions)
            critic_loss = 0.5 * sum(
                F.mse_loss(current_q, target_q_values) for current_q in current_q_values
            )
            assert isinstance(critic_loss, th.Tensor)
            critic_losses.append(critic_loss.detach())
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()

            # The Q-best expert by the updated critic (as SAC's actor loss and the reference
            # code); only its action and log-density carry gradient.
            with th.no_grad():
                best_experts = self._min_q(obs, expert_actions).argmax(dim=1)
            log_prob = gather_experts(expert_log_probs, best_experts).reshape(-1, 1)
            best_actions = gather_experts(expert_actions, best_experts)
            q_values_pi = th.cat(self.critic(obs, best_actions), dim=1)
            min_qf_pi, _ = th.min(q_values_pi, dim=1, keepdim=True)
            mixing_probs = th.softmax(mixing_logits, dim=-1)
            route_loss = routing_loss(mixing_probs, best_experts)
            actor_loss = (ent_coef * log_prob - min_qf_pi).mean() + self.routing_coef * route_loss
            actor_losses.append(actor_loss.detach())
            routing_losses.append(route_loss.detach())
            best_expert_counts += th.bincount(best_experts, minlength=self.actor.n_experts)
            mixing_max.append(mixing_probs.detach().max(dim=1).values.mean())

            self.actor.optimizer.zero_grad()
            actor_loss.backward()
            self.actor.optimizer.step()

            # Temperature: SAC's loss on the Q-best expert's log-density. ent_coef above is
            # the value before this step, as in SAC.
            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                assert isinstance(self.target_entropy, float)
                ent_coef_loss = -(
                    self.log_ent_coef * (log_prob.detach() + self.target_entropy)
                ).mean()
                ent_coef_losses.append(ent_coef_loss.detach())
                self.ent_coef_optimizer.zero_grad()
                ent_coef_loss.backward()
                self.ent_coef_optimizer.step()

            if gradient_step % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

        self._n_updates += gradient_steps
        if gradient_steps == 0:
            return

        def mean(values: list[th.Tensor]) -> float:
            return th.stack(values).mean().item()

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", mean(ent_coefs))
        self.logger.record("train/actor_loss", mean(actor_losses))
        self.logger.record("train/critic_loss", mean(critic_losses))
        self.logger.record("train/routing_loss", mean(routing_losses))
        self.logger.record("train/mixing_max", mean(mixing_max))
        # share of the batch rows where each expert was the Q-best
        shares = (best_expert_counts / best_expert_counts.sum()).cpu().numpy()
        for expert, share in enumerate(shares):
            self.logger.record(f"train/best_expert_{expert}", float(share))
        if ent_coef_losses:
            self.logger.record("train/ent_coef_loss", mean(ent_coef_losses))

    def learn(
        self: SelfPMOESAC,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "PMOESAC",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfPMOESAC:
        """Train for ``total_timesteps`` env steps (see SB3's ``SAC.learn``)."""
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
