"""PMOE-PPO: PPO with a probabilistic mixture-of-experts policy (SB3 PPO subclass)."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import explained_variance
from torch.nn import functional as F

from opsrl.agents.pmoe.distributions import routing_loss
from opsrl.agents.pmoe.policies import GMMActorCriticPolicy, MultiInputActorCriticPolicy

__all__ = ["PMOEPPO"]

SelfPMOEPPO = TypeVar("SelfPMOEPPO", bound="PMOEPPO")


class PMOEPPO(PPO):
    """Probabilistic Mixture-of-Experts PPO (PMOE-PPO).

    PPO whose policy is a mixture of K Gaussian experts,
    pi(a|s) = sum_k alpha_k(s) N(a; mu_k(s), diag(sigma_k^2))
    (:class:`~opsrl.agents.pmoe.policies.GMMActorCriticPolicy`). Acting draws an expert
    k ~ Cat(alpha(s)) and then a ~ N_k; ``deterministic=True`` returns the mean of the expert
    with the largest alpha. Per minibatch the loss is

    L = L_clip + ent_coef L_ent + vf_coef L_V + q_coef L_Q + routing_coef L_route

    - L_clip: PPO's clipped surrogate, with the ratio of **mixture** likelihoods,
      log pi(a|s) = logsumexp_k(log alpha_k(s) + log N_k(a)), new over old;
    - L_ent: a mixture has no closed-form entropy, so, as SB3 PPO does for such distributions,
      L_ent = E[log pi(a|s)] (zero weight by default, as PPO);
    - L_V: PPO's value loss (optionally clipped with ``clip_range_vf``);
    - L_Q: an auxiliary Q(s, a) head regressed onto the GAE returns of the taken actions,
      MSE(Q(s, a), R);
    - L_route: one fresh sample a_k from every expert, k* = argmax_k Q(s, a_k), and
      MSE(alpha(s), onehot(k*)), the routing ("frequency") loss.

    Everything is trained by one optimizer on the sum, as PPO.

    Paper: Ren, Li, Ding, Pan, Dong, "Probabilistic Mixture-of-Experts for Efficient Deep
    Reinforcement Learning", https://arxiv.org/abs/2104.09122. Reference code (by a co-author):
    https://github.com/quantumiracle/Popular-RL-Algorithms (``pmoe_ppo.py``); this is an
    independent re-implementation on Stable-Baselines3. Defaults are SB3 PPO's, which are the
    reference code's (64-64 tanh, lr 3e-4, 2048 steps, minibatches of 64, 10 epochs, clip 0.2,
    GAE 0.95, gradient norm 0.5), with K = 5. The reference code also normalises observations
    and rewards (wrap the env in ``VecNormalize`` for that) and clips the value loss (set
    ``clip_range_vf``).

    :param policy: The policy model to use (``"MlpPolicy"`` = :class:`GMMActorCriticPolicy`,
        ``"MultiInputPolicy"``); the number of experts is ``policy_kwargs["n_experts"]``
        (default 5)
    :param env: The environment to learn from (if registered in Gym, can be str); Box actions
    :param learning_rate: The learning rate, it can be a function of the current progress
        remaining (from 1 to 0)
    :param n_steps: The number of steps to run for each environment per update (the rollout
        holds n_steps * n_envs transitions)
    :param batch_size: Minibatch size
    :param n_epochs: Number of epochs when optimizing the surrogate loss
    :param gamma: Discount factor
    :param gae_lambda: Factor for trade-off of bias vs variance for Generalized Advantage
        Estimator
    :param clip_range: Clipping parameter of the policy ratio, it can be a function of the
        current progress remaining (from 1 to 0)
    :param clip_range_vf: Clipping parameter for the value function, it can be a function of
        the current progress remaining (from 1 to 0). None (default) means no clipping.
        IMPORTANT: this clipping depends on the reward scaling.
    :param normalize_advantage: Whether to normalize the advantage per minibatch
    :param ent_coef: Entropy coefficient for the loss calculation (the entropy is estimated by
        -log pi of the taken actions)
    :param vf_coef: Value function coefficient for the loss calculation
    :param q_coef: Weight of the auxiliary Q head's loss MSE(Q(s, a), R)
    :param routing_coef: Weight of the routing loss MSE(alpha(s), onehot(k*))
    :param max_grad_norm: The maximum value for the gradient clipping
    :param rollout_buffer_class: Rollout buffer class to use. If ``None``, it will be
        automatically selected.
    :param rollout_buffer_kwargs: Keyword arguments to pass to the rollout buffer on creation
    :param target_kl: Limit the KL divergence between updates (early stopping at
        1.5 * target_kl); None (default) means no limit
    :param stats_window_size: Window size for the rollout logging, specifying the number of
        episodes to average the reported success rate, mean episode length, and mean reward over
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to the policy on creation, e.g.
        ``n_experts``, ``net_arch``, ``q_net_arch``
    :param verbose: Verbosity level: 0 for no output, 1 for info messages (such as device or
        wrappers used), 2 for debug messages
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run. Setting it to auto,
        the code will be run on the GPU if possible.
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": GMMActorCriticPolicy,
        "MultiInputPolicy": MultiInputActorCriticPolicy,
    }
    policy: GMMActorCriticPolicy

    def __init__(
        self,
        policy: str | type[GMMActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        n_steps: int = 2048,
        batch_size: int = 64,
        n_epochs: int = 10,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_range: float | Schedule = 0.2,
        clip_range_vf: float | Schedule | None = None,
        normalize_advantage: bool = True,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        q_coef: float = 1.0,
        routing_coef: float = 1.0,
        max_grad_norm: float = 0.5,
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
        for name, value in (("q_coef", q_coef), ("routing_coef", routing_coef)):
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if n_epochs < 1:
            raise ValueError(f"n_epochs must be a positive integer, got {n_epochs!r}")
        if batch_size < 1 or (normalize_advantage and batch_size < 2):
            raise ValueError(
                f"batch_size must be at least {2 if normalize_advantage else 1} "
                f"(normalize_advantage={normalize_advantage}), got {batch_size!r}"
            )
        super().__init__(
            policy,
            env,
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
            use_sde=False,
            rollout_buffer_class=rollout_buffer_class,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
            target_kl=target_kl,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
        )
        action_space = getattr(self, "action_space", None)  # unset when loading (env=None)
        if action_space is not None and not isinstance(action_space, spaces.Box):
            raise ValueError(
                "PMOE-PPO needs a Box action space (its policy is a Gaussian mixture), got "
                f"{type(action_space).__name__}"
            )
        self.q_coef = float(q_coef)
        self.routing_coef = float(routing_coef)
        if _init_setup_model:
            self._setup_model()

    def train(self) -> None:
        """Update the policy, value, Q and mixing heads on the collected rollout."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)  # type: ignore[operator]
        clip_range_vf = (
            None
            if self.clip_range_vf is None
            else self.clip_range_vf(self._current_progress_remaining)  # type: ignore[operator]
        )
        n_experts = self.policy.n_experts

        # Diagnostics stay on the device until the end of the update (one transfer).
        entropy_losses, pg_losses, value_losses, clip_fractions = [], [], [], []
        q_losses, routing_losses, mixing_max = [], [], []
        best_expert_counts = th.zeros(n_experts, device=self.device)
        approx_kl_divs: list[th.Tensor] = []
        continue_training = True
        loss = th.zeros((), device=self.device)
        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            for rollout_data in self.rollout_buffer.get(self.batch_size):
                actions = rollout_data.actions
                values, log_prob, mixing_probs, q_taken, q_experts = (
                    self.policy.evaluate_actions_and_experts(rollout_data.observations, actions)
                )
                values = values.flatten()

                advantages = rollout_data.advantages
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

                ratio = th.exp(log_prob - rollout_data.old_log_prob)
                policy_loss_1 = advantages * ratio
                policy_loss_2 = advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)
                policy_loss = -th.min(policy_loss_1, policy_loss_2).mean()

                if clip_range_vf is None:
                    values_pred = values
                else:
                    values_pred = rollout_data.old_values + th.clamp(
                        values - rollout_data.old_values, -clip_range_vf, clip_range_vf
                    )
                value_loss = F.mse_loss(rollout_data.returns, values_pred)
                # no closed-form entropy of a mixture: estimate it from the log-likelihoods
                entropy_loss = -th.mean(-log_prob)

                q_loss = F.mse_loss(q_taken, rollout_data.returns)
                best_experts = q_experts.argmax(dim=1)
                route_loss = routing_loss(mixing_probs, best_experts)

                loss = (
                    policy_loss
                    + self.ent_coef * entropy_loss
                    + self.vf_coef * value_loss
                    + self.q_coef * q_loss
                    + self.routing_coef * route_loss
                )

                with th.no_grad():
                    log_ratio = log_prob - rollout_data.old_log_prob
                    approx_kl_div = th.mean((th.exp(log_ratio) - 1) - log_ratio)
                    approx_kl_divs.append(approx_kl_div)
                    clip_fractions.append(th.mean((th.abs(ratio - 1) > clip_range).float()))
                    pg_losses.append(policy_loss.detach())
                    value_losses.append(value_loss.detach())
                    entropy_losses.append(entropy_loss.detach())
                    q_losses.append(q_loss.detach())
                    routing_losses.append(route_loss.detach())
                    mixing_max.append(mixing_probs.max(dim=1).values.mean())
                    best_expert_counts += th.bincount(best_experts, minlength=n_experts)

                if self.target_kl is not None and approx_kl_div.item() > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(
                            f"Early stopping at step {epoch} due to reaching max kl: "
                            f"{approx_kl_div.item():.2f}"
                        )
                    break

                self.policy.optimizer.zero_grad()
                loss.backward()
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()

            self._n_updates += 1
            if not continue_training:
                break

        def mean(values: list[th.Tensor]) -> float:
            return th.stack(values).mean().item() if values else float("nan")

        explained_var = explained_variance(
            self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten()
        )
        self.logger.record("train/entropy_loss", mean(entropy_losses))
        self.logger.record("train/policy_gradient_loss", mean(pg_losses))
        self.logger.record("train/value_loss", mean(value_losses))
        self.logger.record("train/q_loss", mean(q_losses))
        self.logger.record("train/routing_loss", mean(routing_losses))
        self.logger.record("train/mixing_max", mean(mixing_max))
        total = best_expert_counts.sum()
        if total > 0:
            for expert, share in enumerate((best_expert_counts / total).cpu().numpy()):
                self.logger.record(f"train/best_expert_{expert}", float(share))
        self.logger.record("train/approx_kl", mean(approx_kl_divs))
        self.logger.record("train/clip_fraction", mean(clip_fractions))
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/explained_variance", explained_var)
        self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)

    def learn(
        self: SelfPMOEPPO,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "PMOEPPO",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfPMOEPPO:
        """Train for ``total_timesteps`` env steps (see SB3's ``PPO.learn``)."""
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
