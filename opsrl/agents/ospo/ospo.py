"""OSPO: one-step policy optimisation for multi-agent order dispatch (critic-free, shared).

:class:`OSPO` holds everything OSPO and GRPO share (collection of matched decisions with
epsilon-greedy scores, the clipped loss with entropy and a KL to the best policy so far,
periodic greedy evaluation); :class:`~opsrl.agents.ospo.grpo.GRPO` only changes the
advantage.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import obs_as_tensor, update_learning_rate
from stable_baselines3.common.vec_env import VecEnv

from opsrl.agents.ospo.buffers import DispatchRolloutBuffer, group_normalized_rewards
from opsrl.agents.ospo.policies import ScorePolicy, masked_entropy, masked_kl

__all__ = ["OSPO", "clipped_surrogate", "dispatch_loss"]

SelfOSPO = TypeVar("SelfOSPO", bound="OSPO")


def clipped_surrogate(
    ratio: th.Tensor, advantages: th.Tensor, clip_range: float, clip_ceiling_ratio: float
) -> th.Tensor:
    """``min(rho A, clip(rho, 1 - eps, 1 + c eps) A)`` per sample (OSPO's asymmetric clip:
    eps = ``clip_range``, c = ``clip_ceiling_ratio``; c = 1 is PPO's clip)."""
    clipped = th.clamp(ratio, 1.0 - clip_range, 1.0 + clip_ceiling_ratio * clip_range)
    return th.minimum(ratio * advantages, clipped * advantages)


def dispatch_loss(
    log_p: th.Tensor,
    reference_log_p: th.Tensor,
    mask: th.Tensor,
    actions: th.Tensor,
    old_log_prob: th.Tensor,
    advantages: th.Tensor,
    clip_range: float,
    clip_ceiling_ratio: float,
    ent_coef: float,
    kl_coef: float,
) -> tuple[th.Tensor, dict[str, th.Tensor]]:
    """OSPO's and GRPO's loss on a batch of matched decisions.

    ``L = -mean(min(rho A, clip(rho, 1 - eps, 1 + c eps) A)) + beta mean KL(pi || pi_ref)
    - alpha mean H(pi)`` with rho = pi(a) / pi_behaviour(a) = exp(log_p[a] - old_log_prob),
    beta = ``kl_coef``, alpha = ``ent_coef``; KL and entropy per state over the present
    options.

    Args:
        log_p, reference_log_p: (B, K + 1) log-probabilities of the policy (with gradient) and
            of the reference policy.
        mask: (B, K + 1) present options.
        actions: (B,) chosen options; old_log_prob: (B,) their behaviour log-probabilities.
        advantages: (B,).

    Returns:
        The loss and its terms (``surrogate``, ``kl``, ``entropy``, ``clip_fraction``).
    """
    chosen = log_p.gather(1, actions.long().unsqueeze(1)).squeeze(1)
    ratio = th.exp(chosen - old_log_prob)
    surrogate = clipped_surrogate(ratio, advantages, clip_range, clip_ceiling_ratio).mean()
    kl = masked_kl(log_p, reference_log_p, mask).mean()
    entropy = masked_entropy(log_p, mask).mean()
    loss = -surrogate + kl_coef * kl - ent_coef * entropy
    outside = (ratio < 1.0 - clip_range) | (ratio > 1.0 + clip_ceiling_ratio * clip_range)
    return loss, {
        "surrogate": surrogate.detach(),
        "kl": kl.detach(),
        "entropy": entropy.detach(),
        "clip_fraction": outside.float().mean().detach(),
    }


def _info_array(infos: list[dict[str, Any]], key: str, default: Any, dtype: Any) -> np.ndarray:
    return np.fromiter((info.get(key, default) for info in infos), dtype=dtype, count=len(infos))


class OSPO(OnPolicyAlgorithm):
    """One-Step Policy Optimization (OSPO) for ride-sharing order dispatch.

    Homogeneous vehicles share one :class:`~opsrl.agents.ospo.policies.ScorePolicy`; each
    VecEnv slot is one vehicle (:class:`~opsrl.envs.ride_sharing.vec.RideSharingAgentVecEnv`,
    ``n_copies`` cities of M vehicles, slot ``copy * M + vehicle``). Every minute each free
    vehicle scores its options ``[no order, candidate 1..K]`` with its probabilities (``2 p -
    1``) and the platform turns all scores into a one-to-one matching (Hungarian). There is
    no critic and no reward-to-go: under homogeneity one step is enough.

    **Advantage** of vehicle i matched at step t (OSPO's code, ``OSPO/Platform.py``)::

        A_{i,t} = (r_{i,t} - mean_{G_t} r) / (std_{G_t} r + 1e-8) + p_t

    G_t = the vehicles matched at step t in the same city copy (infos ``copy``), std the
    population one, p_t = -(std_j C_{j,t} - std_j C_{j,t-1}) the change of the spread of the
    vehicles' cumulative incomes (infos ``fairness_penalty``), weighted by
    ``fairness_coef`` (1 in the paper). Only matched decisions enter the loss, as in the code,
    which stores a vehicle's experience only when it gets an order; the stored action is the
    option the platform matched (infos ``matched_slot`` + 1), not a sampled one.

    **Loss**, on ``n_gradient_steps`` minibatches of ``batch_size`` matched decisions drawn with
    replacement from the rollout::

        L = -E[min(rho A, clip(rho, 1 - eps, 1 + 1.4 eps) A)] + beta KL(pi || pi_ref) - alpha H(pi)

    rho = pi_theta(a) / pi_b(a). *Behaviour probability*: pi_b(a) is the policy's probability
    of the matched option at collection time, also for vehicles whose scores were random
    (epsilon-greedy), as OSPO's code stores it: the joint matching has no per-vehicle
    behaviour distribution to store instead. KL and entropy run over the present options of
    each sampled state.

    **Reference policy and beta.** pi_ref is the best policy so far by evaluation return; it
    starts as the initial policy. Every ``eval_freq``-th rollout is an *evaluation rollout*:
    collected greedily (no exploration) on the training env's own episodes, its return (the
    rollout's summed rewards per city copy) is the evaluation return. If it beats the best so
    far the current policy becomes pi_ref; the first time it does not, beta = ``kl_coef``
    switches on for the rest of training. While beta is on, a minibatch whose KL exceeds
    ``kl_limit`` is skipped and beta doubled for the rest of that update (beta restarts at
    ``kl_coef`` at the next update, as in the code). Evaluation rollouts are trained on like
    the others. Their episodes differ from one evaluation to the next (the code re-samples
    95% of one hour), so the comparison is noisy; more copies average it out.

    **Schedules.** Per update (one rollout; one episode of every copy when ``n_steps`` equals
    the episode length): the learning rate is ``learning_rate * lr_decay^k`` and the
    exploration rate ``max(exploration_initial_eps * exploration_decay^k,
    exploration_final_eps)``. With probability epsilon a vehicle's scores are uniform in
    [-1, 1] (and -1 for "no order" when the policy does not allow it).

    **Defaults** are the paper's (Adam 1e-5 decaying x0.99, batch 256, 10 steps per update,
    clip 0.2 with ceiling 1.4, alpha 0.05, beta 0.5, KL limit 0.01, gradient clip 1, epsilon
    1 -> 5e-4 at x0.99, evaluation every 10 episodes), set for 1000 vehicles and 1000+
    episodes. At that rate the policy barely moves in a CPU budget of a hundred updates, and
    with a larger rate the KL to pi_ref passes 0.01 within a few updates, after which every
    minibatch is skipped once beta is on (the code's early stop). For 10-20 vehicles per city
    and a few minutes of CPU use ``learning_rate=1e-3, lr_decay=0.995, exploration_decay=0.9,
    kl_limit=0.2`` with 4 copies (``n_envs``) and ``n_steps`` = the episode length: on the
    default synthetic city (20 vehicles, 30 minutes) 100 updates (240k slot steps, 2-5
    minutes on a 2-core CPU) raise the greedy total reward from about 245 (untrained, like
    random scores) to about 300 (seeds 0 and 1: 296, 302), above nearest-first matching
    (277). SB3 PPO on the same per-vehicle VecEnv (Gaussian scores, with a critic) reached
    about 338 there, with shorter pickups: probabilities sum to 1 per vehicle, so they say
    little to the matching about how good a pair is compared with another vehicle's pair.

    Paper: Zhao and Li, "Multi-Agent Reinforcement Learning for Ride-Sharing Order Dispatch"
    (GRPO and OSPO), https://arxiv.org/abs/2507.15351; code: https://github.com/RS2002/OSPO
    (an independent re-implementation on Stable-Baselines3).

    :param policy: ``"ScorePolicy"`` (alias ``"MlpPolicy"``) or a subclass of
        :class:`~opsrl.agents.ospo.policies.ScorePolicy`
    :param env: a VecEnv with one slot per agent whose infos carry ``matched_slot`` (-1 or the
        matched candidate index), and optionally ``copy`` (group id, default 0) and
        ``fairness_penalty`` (default 0)
    :param learning_rate: Adam's learning rate at the first update (a float, or a schedule of
        the progress remaining), multiplied by ``lr_decay`` per update
    :param lr_decay: factor of the learning rate per update
    :param n_steps: steps per slot per rollout (use the episode length)
    :param batch_size: matched decisions per minibatch
    :param n_gradient_steps: minibatches (gradient steps) per update
    :param clip_range: eps of the clipped ratio
    :param clip_ceiling_ratio: the upper clip is ``1 + clip_ceiling_ratio * clip_range``
    :param ent_coef: alpha, weight of the entropy bonus
    :param kl_coef: beta, weight of KL(pi || pi_ref) once switched on
    :param kl_limit: with beta on, minibatches whose KL exceeds it are skipped
    :param eval_freq: every this many rollouts, one greedy evaluation rollout that may renew
        pi_ref; None or 0: no evaluation, pi_ref stays the initial policy and beta stays off
    :param fairness_coef: weight of the fairness term p_t in the advantage
    :param exploration_initial_eps: epsilon of the first rollout
    :param exploration_decay: factor of epsilon per rollout
    :param exploration_final_eps: floor of epsilon
    :param max_grad_norm: gradient norm clip
    :param stats_window_size: window of the episode statistics in the logs
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: keyword arguments of the policy (``net_arch``, ``allow_no_order``,
        ``no_order_logit_init``, ``candidate_features``, ...)
    :param verbose: Verbosity level: 0 no output, 1 info, 2 debug
    :param seed: Seed for the pseudo random generators (exploration included)
    :param device: Device (cpu, cuda, ...); ``auto`` picks the GPU when there is one
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "ScorePolicy": ScorePolicy,
        "MlpPolicy": ScorePolicy,
    }
    policy: ScorePolicy  # type: ignore[assignment]
    rollout_buffer: DispatchRolloutBuffer  # type: ignore[assignment]
    reference_policy: ScorePolicy

    def __init__(
        self,
        policy: str | type[ScorePolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-5,
        lr_decay: float = 0.99,
        n_steps: int = 30,
        batch_size: int = 256,
        n_gradient_steps: int = 10,
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
            gamma=0.99,  # OnPolicyAlgorithm needs one; OSPO's advantage is one-step
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
        )
        if _init_setup_model:
            self._setup_model()

    def _init_algorithm(
        self,
        policy: str | type[ScorePolicy],
        env: GymEnv | str,
        *,
        learning_rate: float | Schedule,
        lr_decay: float,
        n_steps: int,
        batch_size: int,
        n_gradient_steps: int,
        clip_range: float,
        clip_ceiling_ratio: float,
        ent_coef: float,
        kl_coef: float,
        kl_limit: float,
        eval_freq: int | None,
        fairness_coef: float,
        exploration_initial_eps: float,
        exploration_decay: float,
        exploration_final_eps: float,
        max_grad_norm: float,
        gamma: float,
        stats_window_size: int,
        tensorboard_log: str | None,
        policy_kwargs: dict[str, Any] | None,
        verbose: int,
        seed: int | None,
        device: th.device | str,
    ) -> None:
        """The constructor body shared with GRPO (the model is set up by the caller)."""
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=1.0,  # no GAE: no critic
            ent_coef=ent_coef,
            vf_coef=0.0,  # no critic
            max_grad_norm=max_grad_norm,
            use_sde=False,
            sde_sample_freq=-1,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
            supported_action_spaces=(spaces.Box,),
        )
        self.lr_decay = lr_decay
        self.batch_size = batch_size
        self.n_gradient_steps = n_gradient_steps
        self.clip_range = clip_range
        self.clip_ceiling_ratio = clip_ceiling_ratio
        self.kl_coef = kl_coef
        self.kl_limit = kl_limit
        self.eval_freq = eval_freq
        self.fairness_coef = fairness_coef
        self.exploration_initial_eps = exploration_initial_eps
        self.exploration_decay = exploration_decay
        self.exploration_final_eps = exploration_final_eps
        self._check_arguments()
        # Training state, saved with the model.
        self.exploration_rate = float(exploration_initial_eps)
        self.best_eval_return = -np.inf
        self.reference_active = False
        self._n_rollouts = 0
        self._n_iterations = 0
        self._rng = np.random.default_rng(seed)

    # ------------------------------------------------------------------------- set-up
    def _check_arguments(self) -> None:
        """Raise a ValueError naming the first bad argument."""
        for name in ("n_steps", "batch_size", "n_gradient_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.eval_freq is not None and (
            isinstance(self.eval_freq, bool)
            or not isinstance(self.eval_freq, (int, np.integer))
            or self.eval_freq < 0
        ):
            raise ValueError(
                f"eval_freq must be None or a non-negative integer, got {self.eval_freq!r}"
            )
        checks = (
            ("lr_decay", self.lr_decay, 0.0, 1.0, False),
            ("clip_range", self.clip_range, 0.0, 1.0, False),
            ("exploration_decay", self.exploration_decay, 0.0, 1.0, False),
            ("exploration_initial_eps", self.exploration_initial_eps, 0.0, 1.0, True),
            ("exploration_final_eps", self.exploration_final_eps, 0.0, 1.0, True),
        )
        for name, value, low, high, low_ok in checks:
            above = value >= low if low_ok else value > low
            if not (np.isfinite(value) and above and value <= high):
                interval = f"{'[' if low_ok else '('}{low:g}, {high:g}]"
                raise ValueError(f"{name} must lie in {interval}, got {value!r}")
        for name in ("clip_ceiling_ratio", "kl_limit", "max_grad_norm"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        for name in ("ent_coef", "kl_coef", "fairness_coef"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if isinstance(self.learning_rate, (int, float)) and not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}")

    def _setup_model(self) -> None:
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        if not (isinstance(self.policy_class, type) and issubclass(self.policy_class, ScorePolicy)):
            raise ValueError(
                f"{type(self).__name__} needs a ScorePolicy (policy='ScorePolicy'), got "
                f"{getattr(self.policy_class, '__name__', self.policy_class)}"
            )
        self.rollout_buffer = DispatchRolloutBuffer(
            self.n_steps,
            self.observation_space,
            self.action_space,
            device=self.device,
            n_envs=self.n_envs,
        )
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, self.lr_schedule, **self.policy_kwargs
        ).to(self.device)
        self.reference_policy = self.policy_class(
            self.observation_space, self.action_space, self.lr_schedule, **self.policy_kwargs
        ).to(self.device)
        self._copy_to_reference()

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["policy", "policy.optimizer", "reference_policy"], []

    def _copy_to_reference(self) -> None:
        self.reference_policy.load_state_dict(self.policy.state_dict())
        self.reference_policy.set_training_mode(False)
        for parameter in self.reference_policy.parameters():
            parameter.requires_grad_(False)

    # ------------------------------------------------------------------------- rollouts
    def _is_evaluation_rollout(self) -> bool:
        """Whether the next rollout is a greedy evaluation rollout (every eval_freq-th)."""
        return bool(self.eval_freq) and (self._n_rollouts + 1) % int(self.eval_freq) == 0

    def _exploration_scores(self, scores: np.ndarray, epsilon: float) -> np.ndarray:
        """Scores with each vehicle's replaced by uniform ones with probability ``epsilon``."""
        if epsilon <= 0.0:
            return scores
        explore = self._rng.random(scores.shape[0]) < epsilon
        if explore.any():
            random_scores = self._rng.uniform(-1.0, 1.0, size=(int(explore.sum()), scores.shape[1]))
            if not self.policy.allow_no_order:
                random_scores[:, 0] = -1.0
            scores = scores.copy()
            scores[explore] = random_scores
        return scores

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: DispatchRolloutBuffer,  # type: ignore[override]
        n_rollout_steps: int,
    ) -> bool:
        """Collect ``n_rollout_steps`` minutes of every slot: scores from the policy's
        probabilities (epsilon-greedy), and what the platform matched."""
        assert self._last_obs is not None, "No previous observation was provided"
        self.policy.set_training_mode(False)
        rollout_buffer.reset()
        evaluating = self._is_evaluation_rollout()
        epsilon = 0.0 if evaluating else self.exploration_rate
        rollout_return = np.zeros(0)
        group_ids: set[int] = set()
        callback.on_rollout_start()
        n_steps = 0
        while n_steps < n_rollout_steps:
            with th.no_grad():
                obs_tensor = obs_as_tensor(self._last_obs, self.device)  # type: ignore[arg-type]
                log_probs = self.policy.log_probabilities(obs_tensor)[0].cpu().numpy()
            scores = self._exploration_scores(2.0 * np.exp(log_probs) - 1.0, epsilon)
            new_obs, rewards, dones, infos = env.step(scores.astype(np.float32))
            self.num_timesteps += env.num_envs
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
            n_steps += 1

            if "matched_slot" not in infos[0]:
                raise ValueError(
                    f"{type(self).__name__} needs an env whose infos carry 'matched_slot' (the "
                    "candidate the platform matched to each agent, -1 for none), e.g. "
                    "RideSharingAgentVecEnv"
                )
            matched_slot = _info_array(infos, "matched_slot", -1, np.int64)
            groups = _info_array(infos, "copy", 0, np.int64)
            matched = matched_slot >= 0
            actions = np.where(matched, matched_slot + 1, 0)
            rollout_buffer.add(
                self._last_obs,  # type: ignore[arg-type]
                actions=actions,
                log_probs=log_probs[np.arange(actions.size), actions],
                rewards=rewards,
                matched=matched,
                acted=_info_array(infos, "acted", False, bool),
                groups=groups,
                fairness=_info_array(infos, "fairness_penalty", 0.0, np.float64),
                dones=dones,
            )
            if rollout_return.size < groups.max() + 1:
                rollout_return = np.pad(rollout_return, (0, groups.max() + 1 - rollout_return.size))
            np.add.at(rollout_return, groups, rewards)
            group_ids.update(np.unique(groups).tolist())
            if dones.any():
                self._record_episode_kpis(infos, dones, groups)
            self._last_obs = new_obs  # type: ignore[assignment]
            self._last_episode_starts = dones

        callback.update_locals(locals())
        callback.on_rollout_end()
        mean_return = float(rollout_return[sorted(group_ids)].mean())
        self.logger.record("rollout/exploration_rate", epsilon)
        self.logger.record("rollout/return_per_group", mean_return)
        self.logger.record(
            "rollout/matched_per_step", float(rollout_buffer.matched.sum()) / n_rollout_steps
        )
        if evaluating:
            self._evaluated(mean_return)
        self._n_rollouts += 1
        self.exploration_rate = max(
            self.exploration_initial_eps * self.exploration_decay**self._n_rollouts,
            self.exploration_final_eps,
        )
        return True

    def _record_episode_kpis(
        self, infos: list[dict[str, Any]], dones: np.ndarray, groups: np.ndarray
    ) -> None:
        """Log the numeric ``kpi`` of every group whose episode ended (once per group)."""
        seen: set[int] = set()
        for index in np.flatnonzero(dones):
            group = int(groups[index])
            kpi = infos[index].get("kpi")
            if group in seen or not isinstance(kpi, dict):
                continue
            seen.add(group)
            for key, value in kpi.items():
                if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
                    value, bool
                ):
                    self.logger.record_mean(f"rollout/kpi/{key}", float(value))

    def _evaluated(self, eval_return: float) -> None:
        """Renew pi_ref on improvement; switch beta on at the first evaluation without."""
        self.logger.record("eval/return", eval_return)
        if eval_return > self.best_eval_return:
            self.best_eval_return = eval_return
            self._copy_to_reference()
        else:
            self.reference_active = True
        self.logger.record("eval/best_return", self.best_eval_return)

    # ------------------------------------------------------------------------- training
    def compute_advantages(self, buffer: DispatchRolloutBuffer) -> np.ndarray:
        """OSPO's advantage (n_steps, n_envs) of the matched samples (0 elsewhere)."""
        rows = buffer.filled()
        matched = buffer.matched[rows]
        advantages = group_normalized_rewards(buffer.rewards[rows], matched, buffer.groups[rows])
        return advantages + self.fairness_coef * buffer.fairness[rows] * matched

    def current_learning_rate(self) -> float:
        """``learning_rate`` (schedule at the current progress) x ``lr_decay`` per update."""
        return float(
            self.lr_schedule(self._current_progress_remaining) * self.lr_decay**self._n_iterations
        )

    def train(self) -> None:
        """``n_gradient_steps`` minibatch steps of the clipped loss on the matched decisions."""
        buffer = self.rollout_buffer
        self.policy.set_training_mode(True)
        learning_rate = self.current_learning_rate()
        update_learning_rate(self.policy.optimizer, learning_rate)
        rows = buffer.filled()
        buffer.advantages[rows] = self.compute_advantages(buffer)

        beta = self.kl_coef if self.reference_active else 0.0
        terms: dict[str, list[float]] = {}
        skipped, steps = 0, 0
        for samples in buffer.get(self.batch_size, self.n_gradient_steps, self._rng):
            log_p, mask = self.policy.log_probabilities(samples.observations)
            with th.no_grad():
                reference_log_p, _ = self.reference_policy.log_probabilities(samples.observations)
            loss, values = dispatch_loss(
                log_p,
                reference_log_p,
                mask,
                samples.actions,
                samples.old_log_prob,
                samples.advantages,
                self.clip_range,
                self.clip_ceiling_ratio,
                self.ent_coef,
                beta,
            )
            if self.reference_active and values["kl"].item() > self.kl_limit:
                # Too far from the best policy so far: skip, and weigh the KL more.
                beta *= 2.0
                skipped += 1
                continue
            self.policy.optimizer.zero_grad()
            loss.backward()
            th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()
            steps += 1
            terms.setdefault("loss", []).append(loss.item())
            for name, value in values.items():
                terms.setdefault(name, []).append(value.item())

        self._n_iterations += 1
        self._n_updates += steps
        matched = buffer.matched[rows]
        self.logger.record("train/learning_rate", learning_rate)
        self.logger.record("train/kl_coef", beta)
        self.logger.record("train/reference_active", float(self.reference_active))
        self.logger.record("train/skipped_steps", skipped)
        self.logger.record("train/matched_samples", int(matched.sum()))
        if matched.any():
            self.logger.record(
                "train/advantage_mean", float(buffer.advantages[rows][matched].mean())
            )
        for name, values_list in terms.items():
            self.logger.record(f"train/{name}", float(np.mean(values_list)))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")

    def learn(
        self: SelfOSPO,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfOSPO:
        """Train for ``total_timesteps`` slot steps (agents x minutes; see SB3's
        ``OnPolicyAlgorithm.learn``)."""
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name or type(self).__name__,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
