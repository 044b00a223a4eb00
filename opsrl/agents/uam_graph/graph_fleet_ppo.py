"""GraphFleetPPO: masked PPO with a graph fleet-scheduling policy (sb3-contrib MaskablePPO
subclass)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch as th
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, Schedule

from opsrl.agents.gnn_dispatch.gnn_ppo import GnnPPO
from opsrl.agents.uam_graph.policies import GraphFleetPolicy

__all__ = ["GraphFleetPPO"]


class GraphFleetPPO(GnnPPO):
    """Masked PPO with a graph attention policy for urban air mobility fleet scheduling.

    The policy (:class:`~opsrl.agents.uam_graph.policies.GraphFleetPolicy`) encodes the
    vertiport graph of ``opsrl/UAMFleet-v0`` (routes with their remaining demand series,
    aircraft pooled per vertiport, TransformerConv message passing) and scores every
    destination vertiport of the deciding aircraft with a multi-head attention decoder;
    infeasible destinations are masked (the env's ``action_masks()``). Its weights do not
    depend on the number of vertiports or aircraft: ``predict`` works on other fleet sizes,
    also after ``GraphFleetPPO.load(path)`` without an env.

    Paper: Paul, Witter and Chowdhury, "Graph learning-based fleet scheduling for urban air
    mobility under operational constraints, varying demand & uncertainties" (CapTAIN),
    https://arxiv.org/abs/2401.04851 (graph capsule encoders of the vertiport and aircraft
    graphs, a transformer over demand and fare series, an attention decoder, PPO); its
    precursor iamstevepaul/UAM_fleet_Scheduling. Masking: sb3-contrib's MaskablePPO (Huang and
    Ontañón 2020, https://arxiv.org/abs/2006.14171).

    **Defaults.** The precursor trained with gamma 1, n_steps 15,000, minibatches of 5,000,
    100 epochs, learning rate 1e-6 and entropy coefficient 0.4 for 4M steps: far beyond a
    CPU budget. These defaults are for 100k-200k steps on a CPU with the env's
    ``reward="per_flight"`` (each flight's profit at its decision; it sums to the daily
    reward, so the return is the same): ``n_steps=512`` per env (use 4 envs), 4 epochs of
    minibatches of 256, ``learning_rate=3e-4``, ``ent_coef=0.01``, ``gamma=0.99`` and
    ``gae_lambda=0.95``. A discount below 1 shortens the credit horizon to about a hundred
    decisions (a few hours of the day at 8 vertiports and 40 aircraft), which cuts the
    variance that the other aircraft's decisions add to each one's return; with the sparse
    ``reward="daily"``, use ``gamma=1``. Measured (one CPU core, 4 envs, 8 vertiports and 40
    aircraft with uncertainties): about 250 env steps/s, so 100k steps take about 7 minutes;
    in single-seed runs the deterministic policy's mean normalised profit over 5 held-out
    days rose from the random feasible policy's 0.078 to 0.085-0.089 within 16k-32k steps,
    the level of the greedy immediate-profit rule (0.090), and stayed there up to 65k steps
    (also with ``gamma=0.995``, ``ent_coef=0.003``, ``learning_rate=2e-4``). On 4 vertiports
    and 6 aircraft, 16k steps give 20 % more profit than random feasible.

    **Reward scale.** With the env's default normaliser (the day's potential revenue) a
    flight earns about 1e-4 to 1e-3 and a day 0.05 to 0.1. The rewards used for returns and
    advantages are divided by ``reward_scale`` (default 0.01: values are learned in percent of
    the potential revenue), so that the value targets are of order one; episode statistics
    in the logs and evaluation returns stay in the env's unit.

    :param policy: The policy model to use (``"GraphFleetPolicy"`` or a subclass of
        :class:`~opsrl.agents.uam_graph.policies.GraphFleetPolicy`)
    :param env: The environment to learn from (if registered in Gym, can be str); it must
        produce the graph Dict observation of ``opsrl/UAMFleet-v0`` and offer
        ``action_masks()``
    :param learning_rate: The learning rate, it can be a function of the current progress
        remaining (from 1 to 0)
    :param n_steps: The number of steps to run for each environment per update (the rollout
        holds n_steps * n_envs transitions)
    :param batch_size: Minibatch size (observations per gradient step)
    :param n_epochs: Number of epochs when optimizing the surrogate loss
    :param gamma: Discount factor (per decision)
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
        (``hidden_dim``, ``n_layers``, ``n_heads``, ``series_encoder``, ``value_net_arch``,
        ``logit_clip``, ``activation_fn``, ``share_encoder``, ...)
    :param verbose: Verbosity level: 0 for no output, 1 for info messages (such as device or
        wrappers used), 2 for debug messages
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run. Setting it to auto,
        the code will be run on the GPU if possible.
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "GraphFleetPolicy": GraphFleetPolicy,
    }
    policy: GraphFleetPolicy  # type: ignore[assignment]

    def __init__(
        self,
        policy: str | type[GraphFleetPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        n_steps: int = 512,
        batch_size: int | None = 256,
        n_epochs: int = 4,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_range: float | Schedule = 0.2,
        clip_range_vf: float | Schedule | None = None,
        normalize_advantage: bool = True,
        ent_coef: float = 0.01,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        reward_scale: float = 0.01,
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
        if isinstance(reward_scale, bool):
            raise ValueError(f"reward_scale must be a positive number, got {reward_scale!r}")
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
            reward_scale=reward_scale,
            device=device,
            _init_setup_model=_init_setup_model,
        )
