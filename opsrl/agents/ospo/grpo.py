"""Multi-agent GRPO for order dispatch: OSPO's machinery with a group-baselined reward-to-go."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch as th
from stable_baselines3.common.type_aliases import GymEnv, Schedule

from opsrl.agents.ospo.buffers import (
    DispatchRolloutBuffer,
    group_baseline,
    semi_mdp_returns,
    standardize,
)
from opsrl.agents.ospo.ospo import OSPO
from opsrl.agents.ospo.policies import ScorePolicy

__all__ = ["GRPO"]

REWARD_NORMALIZATIONS = ("buffer", "step")


class GRPO(OSPO):
    """Group Relative Policy Optimization for ride-sharing order dispatch (multi-agent).

    Everything as :class:`~opsrl.agents.ospo.ospo.OSPO` (shared score policy, epsilon-greedy
    scores, Hungarian matching, clipped loss with entropy and KL to the best policy so far, no
    critic) except the advantage, a *group average reward-to-go* baseline instead of a
    critic. For vehicle i matched at step t::

        r~ = standardised rewards of the matched decisions (over the rollout, or per group)
        G_{i,t} = sum_k gamma^(Delta t_k) r~_{i,k}        (semi-MDP reward-to-go)
        A_{i,t} = G_{i,t} - mean_{j in G_t} G_{j,t} + p_t

    k runs over the vehicle's matches from t on within its episode, Delta t_k the minutes
    (steps) from t to match k; G_t the vehicles matched at step t in the same city copy; p_t
    OSPO's fairness term -(std C_t - std C_{t-1}) weighted by ``fairness_coef``, *added* as in
    the paper's formula (GRPO's public code subtracts it, which rewards a growing income
    spread). Rewards are standardised over the whole rollout first, as the code does
    (``reward_normalization="buffer"``), or per step and city (``"step"``). A rollout that
    stops mid-episode truncates the reward-to-go (no critic to bootstrap it): use ``n_steps``
    = the episode length (or a multiple).

    Paper: Zhao and Li, https://arxiv.org/abs/2507.15351; code: https://github.com/RS2002/OSPO
    (``GRPO/``). Other arguments: see :class:`~opsrl.agents.ospo.ospo.OSPO`.

    :param gamma: discount per minute of the reward-to-go
    :param reward_normalization: ``"buffer"`` (standardise the rollout's matched rewards) or
        ``"step"`` (per step and city copy)
    """

    def __init__(
        self,
        policy: str | type[ScorePolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-5,
        lr_decay: float = 0.99,
        n_steps: int = 30,
        batch_size: int = 256,
        n_gradient_steps: int = 10,
        gamma: float = 0.99,
        reward_normalization: Literal["buffer", "step"] = "buffer",
        clip_range: float = 0.2,
        clip_ceiling_ratio: float = 1.4,
        ent_coef: float = 0.05,
        kl_coef: float = 0.5,
        kl_limit: float = 0.01,
        eval_freq: int | None = 10,
        fairness_coef: float = 1.0,
        exploration_initial_eps: float = 1.0,
        exploration_decay: float = 0.99,
        exploration_final_eps: float = 5e-4,
        max_grad_norm: float = 1.0,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        if not (isinstance(gamma, (int, float)) and 0.0 <= gamma <= 1.0):
            raise ValueError(f"gamma must lie in [0, 1], got {gamma!r}")
        if reward_normalization not in REWARD_NORMALIZATIONS:
            raise ValueError(
                f"reward_normalization must be one of {', '.join(REWARD_NORMALIZATIONS)}, got "
                f"{reward_normalization!r}"
            )
        self.reward_normalization = reward_normalization
        self._init_algorithm(
            policy,
            env,
            learning_rate=learning_rate,
            lr_decay=lr_decay,
            n_steps=n_steps,
            batch_size=batch_size,
            n_gradient_steps=n_gradient_steps,
            clip_range=clip_range,
            clip_ceiling_ratio=clip_ceiling_ratio,
            ent_coef=ent_coef,
            kl_coef=kl_coef,
            kl_limit=kl_limit,
            eval_freq=eval_freq,
            fairness_coef=fairness_coef,
            exploration_initial_eps=exploration_initial_eps,
            exploration_decay=exploration_decay,
            exploration_final_eps=exploration_final_eps,
            max_grad_norm=max_grad_norm,
            gamma=float(gamma),
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
        )
        if _init_setup_model:
            self._setup_model()

    def compute_advantages(self, buffer: DispatchRolloutBuffer) -> np.ndarray:
        """GRPO's advantage (n_steps, n_envs) of the matched samples (0 elsewhere)."""
        rows = buffer.filled()
        matched, groups = buffer.matched[rows], buffer.groups[rows]
        normalized = standardize(
            buffer.rewards[rows], matched, groups if self.reward_normalization == "step" else None
        )
        returns = semi_mdp_returns(normalized, matched, buffer.dones[rows], self.gamma)
        advantages = group_baseline(returns, matched, groups)
        return advantages + self.fairness_coef * buffer.fairness[rows] * matched
