"""GnnPPO: masked PPO with a graph dispatching policy (sb3-contrib MaskablePPO subclass)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch as th
from sb3_contrib import MaskablePPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from opsrl.agents.gnn_dispatch.policies import GraphDispatchPolicy

__all__ = ["GnnPPO", "ScaledRewardVecEnv"]


class ScaledRewardVecEnv(VecEnvWrapper):
    """Divides the rewards of a VecEnv by a constant; everything else passes through.

    Episode statistics recorded by a ``Monitor``/``VecMonitor`` inside it stay unscaled.
    """

    def __init__(self, venv: VecEnv, scale: float) -> None:
        super().__init__(venv)
        self.scale = float(scale)

    def reset(self) -> VecEnvObs:
        return self.venv.reset()

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        return obs, rewards / self.scale, dones, infos


class GnnPPO(MaskablePPO):
    """Masked PPO with a graph neural network policy for dispatching (learned priority rules).

    The policy (:class:`~opsrl.agents.gnn_dispatch.policies.GraphDispatchPolicy`) encodes the
    dynamic disjunctive graph of a job shop with K = 3 rounds of edge-type-aware message
    passing (64-d), scores each job's next operation, and masks jobs that cannot start now;
    its critic reads the mean-pooled embedding. No weight depends on the instance size: train
    on random instances of a few sizes (``opsrl/JobShop-v0`` with a random ``instance`` spec
    and ``max_jobs``/``max_machines`` padding) and ``predict`` on benchmark instances of any
    size, also after ``GnnPPO.load(path)`` (without an env; loading with an env of another
    size fails SB3's space check, pass none for inference).

    Papers: Wong, Kim, Park, Park and Law on the interrupting swap-allowed blocking job shop
    problem (ISBJSSP), J. Manuf. Sci. Eng. 146(1) 011009 (2024),
    https://arxiv.org/abs/2302.02506 (graph policy + PPO on this problem; its network settings
    are not public, this design follows ``shared/specs/lot_sizing_and_job_shop.md`` s. 5);
    Zhang et al., "Learning to dispatch for job shop scheduling via deep reinforcement
    learning" (L2D), NeurIPS 2020, https://arxiv.org/abs/2010.12367 (GIN with
    K = 2, 64-d, per-candidate scores, gamma = 1). Masking: sb3-contrib's MaskablePPO (Huang
    and Ontañón 2020, https://arxiv.org/abs/2006.14171).

    **Reward scale.** Job shop rewards are elapsed time (return = -makespan, hundreds to
    thousands of time units), which would make the value loss dwarf the policy loss and, with
    one gradient-norm clip over all parameters, freeze the actor. The rewards used for
    returns and advantages are divided by ``reward_scale`` (a VecEnv wrapper during
    collection, like the env's own ``reward_scale``, which applies first if set); values are
    learned in the scaled unit. The default 100 suits durations of 1-99 (Taillard's range);
    episode statistics in the logs and evaluation returns stay in the env's unit.

    **Defaults** for this problem (differences from MaskablePPO): ``gamma=1`` (undiscounted,
    so the return is minus the makespan, as in L2D), ``n_steps=256`` per env with 4 epochs of
    minibatches of 128 graphs, ``learning_rate=1e-3``, ``ent_coef=0.01`` for exploration among
    candidates, ``reward_scale=100``. In short single-seed runs on random 6x6 classic
    instances (4 envs, 16k steps) these reached a lower mean makespan than
    ``learning_rate=3e-4`` with minibatches of 256; the env's ``reward="lower_bound"``
    (L2D-style dense reward) and the default ``reward="time"`` trained about equally well
    there.

    :param policy: The policy model to use (``"GraphDispatchPolicy"`` or a subclass of
        :class:`~opsrl.agents.gnn_dispatch.policies.GraphDispatchPolicy`)
    :param env: The environment to learn from (if registered in Gym, can be str); it must
        produce the graph Dict observation and offer ``action_masks()``
    :param learning_rate: The learning rate, it can be a function of the current progress
        remaining (from 1 to 0)
    :param n_steps: The number of steps to run for each environment per update (the rollout
        holds n_steps * n_envs transitions)
    :param batch_size: Minibatch size (graphs per gradient step)
    :param n_epochs: Number of epochs when optimizing the surrogate loss
    :param gamma: Discount factor (1: the return is minus the makespan)
    :param gae_lambda: Factor for trade-off of bias vs variance for Generalized Advantage
        Estimator
    :param clip_range: Clipping parameter of the policy ratio, it can be a function of the
        current progress remaining (from 1 to 0)
    :param clip_range_vf: Clipping parameter for the value function (in the scaled reward
        unit), it can be a function of the current progress remaining; None means no clipping
    :param normalize_advantage: Whether to normalize the advantage per minibatch
    :param ent_coef: Entropy coefficient for the loss calculation
    :param vf_coef: Value function coefficient for the loss calculation
    :param max_grad_norm: The maximum value for the gradient clipping
    :param reward_scale: The env's rewards are divided by it for learning (see above); must be
        positive
    :param rollout_buffer_class: Rollout buffer class to use (default: sb3-contrib's
        ``MaskableDictRolloutBuffer``)
    :param rollout_buffer_kwargs: Keyword arguments to pass to the rollout buffer on creation
    :param target_kl: Limit the KL divergence between updates (early stopping at
        1.5 * target_kl); None (default) means no limit
    :param stats_window_size: Window size for the rollout logging, specifying the number of
        episodes to average the reported success rate, mean episode length, and mean reward over
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to the policy on creation
        (``hidden_dim``, ``n_layers``, ``aggr``, ``net_arch``, ``activation_fn``,
        ``share_encoder``, ...)
    :param verbose: Verbosity level: 0 for no output, 1 for info messages (such as device or
        wrappers used), 2 for debug messages
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run. Setting it to auto,
        the code will be run on the GPU if possible.
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "GraphDispatchPolicy": GraphDispatchPolicy,
    }
    policy: GraphDispatchPolicy  # type: ignore[assignment]

    def __init__(
        self,
        policy: str | type[GraphDispatchPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-3,
        n_steps: int = 256,
        batch_size: int | None = 128,
        n_epochs: int = 4,
        gamma: float = 1.0,
        gae_lambda: float = 0.95,
        clip_range: float | Schedule = 0.2,
        clip_range_vf: float | Schedule | None = None,
        normalize_advantage: bool = True,
        ent_coef: float = 0.01,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        reward_scale: float = 100.0,
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
        if not (np.isfinite(reward_scale) and reward_scale > 0):
            raise ValueError(f"reward_scale must be a positive number, got {reward_scale}")
        self.reward_scale = float(reward_scale)
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
            rollout_buffer_class=rollout_buffer_class,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
            target_kl=target_kl,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=_init_setup_model,
        )

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
        use_masking: bool = True,
    ) -> bool:
        """MaskablePPO's collection, on rewards divided by ``reward_scale``."""
        if self.reward_scale != 1.0:
            env = ScaledRewardVecEnv(env, self.reward_scale)
        return super().collect_rollouts(
            env, callback, rollout_buffer, n_rollout_steps, use_masking=use_masking
        )
