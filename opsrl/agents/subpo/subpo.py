"""SubPO: policy gradient on marginal gains for submodular RL, on SB3's ``OnPolicyAlgorithm``."""

from __future__ import annotations

import copy
import math
from typing import Any, ClassVar, Literal, NamedTuple, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.utils import conjugate_gradient_solver
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import Distribution, kl_divergence
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, PyTorchObs, Schedule
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from opsrl.agents.subpo.buffers import EpisodeRolloutBuffer
from opsrl.agents.subpo.policies import MultiInputPolicy, SubPOPolicy
from opsrl.agents.subpo.signals import BASELINES, SIGNALS, submodular_signal

__all__ = [
    "ENT_COEF_SCHEDULES",
    "NaturalGradientStep",
    "SubPO",
    "mean_kl",
    "natural_gradient_direction",
    "policy_gradient_loss",
]

SelfSubPO = TypeVar("SelfSubPO", bound="SubPO")

#: how the entropy weight changes over updates
ENT_COEF_SCHEDULES = ("constant", "harmonic")


def policy_gradient_loss(
    log_prob: th.Tensor, entropy: th.Tensor, weights: th.Tensor, ent_coef: float
) -> tuple[th.Tensor, dict[str, th.Tensor]]:
    """``-mean(log pi(a|obs) * weight) - ent_coef * mean(entropy)`` and its two terms.

    Args:
        log_prob, entropy, weights: (B,) per sample (the weights are SubPO's signals, without
            gradient).
        ent_coef: the entropy weight.
    """
    surrogate = (log_prob * weights).mean()
    mean_entropy = entropy.mean()
    loss = -surrogate - ent_coef * mean_entropy
    return loss, {"surrogate": surrogate.detach(), "entropy": mean_entropy.detach()}


def mean_kl(reference: Distribution, distribution: Distribution) -> th.Tensor:
    """Mean over states of KL(reference || distribution), summed over action dimensions."""
    kl = kl_divergence(reference, distribution)
    return (kl.sum(dim=1) if kl.dim() > 1 else kl).mean()


def _flat_grad(
    output: th.Tensor, params: list[nn.Parameter], create_graph: bool = False
) -> th.Tensor:
    grads = th.autograd.grad(
        output, params, create_graph=create_graph, retain_graph=True, allow_unused=True
    )
    return th.cat(
        [
            (th.zeros_like(p) if g is None else g).reshape(-1)
            for g, p in zip(grads, params, strict=True)
        ]
    )


class NaturalGradientStep(NamedTuple):
    """What :func:`natural_gradient_direction` computes on a batch."""

    #: x = (F + damping I)^-1 g, flat over the policy's trainable parameters
    direction: th.Tensor
    #: g, the gradient of the objective -L (flat)
    gradient: th.Tensor
    #: x^T (F + damping I) x, the quadratic model of 2 KL along x
    curvature: float
    #: loss, surrogate and entropy before the step
    terms: dict[str, float]


def natural_gradient_direction(
    policy: SubPOPolicy,
    observations: PyTorchObs,
    actions: th.Tensor,
    weights: th.Tensor,
    ent_coef: float,
    cg_damping: float = 0.1,
    cg_max_steps: int = 10,
) -> NaturalGradientStep:
    """The natural-gradient direction of SubPO's objective on a batch.

    g is the gradient of -L (:func:`policy_gradient_loss`) in the policy's trainable
    parameters; F is the Fisher information of the policy on the batch's states, the Hessian
    of mean_s KL(pi_old(.|s) || pi_theta(.|s)) at theta = theta_old, applied to vectors by
    double backpropagation; (F + ``cg_damping`` I) x = g is solved by ``cg_max_steps``
    conjugate-gradient iterations.
    """
    params = [p for p in policy.parameters() if p.requires_grad]
    with th.no_grad():
        old_distribution = copy.copy(policy.get_distribution(observations))
    distribution = policy.get_distribution(observations)
    log_prob = distribution.log_prob(actions)
    entropy = distribution.entropy()
    if entropy is None:  # pragma: no cover - none of SubPO's distributions lacks it
        raise ValueError("the action distribution has no closed-form entropy")
    loss, terms = policy_gradient_loss(log_prob, entropy, weights, ent_coef)
    gradient = -_flat_grad(loss, params)
    kl_gradient = _flat_grad(mean_kl(old_distribution, distribution), params, create_graph=True)

    def fisher_vector_product(vector: th.Tensor) -> th.Tensor:
        return _flat_grad(kl_gradient @ vector, params) + cg_damping * vector

    direction = conjugate_gradient_solver(fisher_vector_product, gradient, max_iter=cg_max_steps)
    curvature = float((direction @ fisher_vector_product(direction)).item())
    return NaturalGradientStep(
        direction.detach(),
        gradient.detach(),
        curvature,
        {"loss": loss.item(), **{name: value.item() for name, value in terms.items()}},
    )


class SubPO(OnPolicyAlgorithm):
    """Submodular Policy Optimization (SubPO): policy gradient on marginal gains.

    The objective is J(pi) = E[F(tau)] with F a monotone submodular function of the set of
    states a trajectory visits (coverage, item collection, experimental design). Its
    gradient (Prajapat et al. 2024) weighs the log-probability of the action at step i by the
    gains still to come::

        grad J = E[ sum_i grad log pi(a_i | .) (sum_{j >= i} Delta(s_{j+1} | tau_{0:j}) - b_i) ]

    Delta(s | A) = F(A + {s}) - F(A). SubPO takes the gains as the env's per-step rewards
    (the marginal reward of :class:`~opsrl.envs.submodular.SubmodularGridEnv`, whose rewards
    sum to F(tau)), so the inner sum is the undiscounted reward-to-go F(tau) - F(tau_{0:i}).
    Nothing here knows F: on the same env with ``reward="modular"`` (F({s}) per step, repeats
    counted) the same agent is the paper's ModPO / SRL baseline.

    **Signal** (``signal``): ``"reward_to_go"`` (default, the gradient above) or ``"one_step"``,
    the immediate gain r_i. The released code weighs step i by the cumulative
    F(tau_{0:i+1}) / (2 (H + 1)); F(tau_{0:i}) does not depend on the action at step i, so in
    expectation that is the one-step gain (up to the scale), which ignores what an action
    does to later gains. **Baseline** (``baseline``): ``"time_step"`` (default) subtracts the
    batch mean of the signal at the same step index of the episode (every grid episode has H
    steps); ``"none"`` subtracts nothing. ``normalize_signal`` divides by the batch standard
    deviation. An episode ends where the env says so, terminated or truncated: F is the
    value of the trajectory so far and nothing is bootstrapped (there is no critic).

    **Update**: one step per rollout of ``episodes_per_update`` (B) whole episodes of the
    ``horizon`` H (read from the env: its ``horizon`` attribute, or the registered
    ``max_episode_steps``): each of the ``n_envs`` slots runs ceil(B / n_envs) episodes, SB3's
    ``n_steps`` = ceil(B / n_envs) H. The loss is::

        L = -mean(log pi(a_i | obs_i) * signal_i) - ent_coef * mean(entropy)

    over all samples; with ``ent_coef_schedule="harmonic"`` the entropy weight at update k is
    ``ent_coef / k`` (the released code's). By default Adam takes one step on L (the code's
    optimiser, lr 0.01). With episodes of other lengths, the reward-to-go of an episode still
    running at the rollout's end is unknown and those samples are left out of the update;
    the rest of that episode is trained on in the next rollout, where its future is known.

    **Natural gradient** (``natural_gradient=True``): theta <- theta + eta F^-1 g, with g the
    gradient of -L and F the Fisher information of the policy estimated on the batch: the
    Hessian of mean_s KL(pi_old(.|s) || pi_theta(.|s)) at theta = theta_old, applied to
    vectors by double backpropagation (as in TRPO) plus ``cg_damping`` times the identity.
    x = F^-1 g is solved by ``cg_max_steps`` conjugate-gradient iterations (sb3-contrib's
    solver). The paper names this variant without its step-size rule, so two are offered:
    with ``target_kl`` (default 0.01) the step is KL-normalised, eta = sqrt(2 target_kl /
    x^T F x), so that the quadratic model of the KL between the old and the new policy
    equals ``target_kl`` (natural policy gradient with a trust-region-sized step, no line
    search); with ``target_kl=None`` eta is the ``learning_rate`` (a fixed natural step).
    Adam is not used in this mode.

    **Policies** (:class:`~opsrl.agents.subpo.policies.SubPOPolicy`, ``"MlpPolicy"``): an MLP
    (64-32 tanh, the paper's) to a softmax over the actions. The paper's SubPO-M is this
    policy on the env's ``observation="state_time"``; SubPO-NM on ``observation="visited"``
    (the state, the time and the visited map: the history summary the gains depend on).

    Defaults follow the released grid code (B = 500 episodes, Adam 0.01, no entropy bonus);
    the paper's figures run 140 updates (H = 40: 2.8M steps).

    Paper: Prajapat, Mutny, Zeilinger, Krause, "Submodular Reinforcement Learning", ICLR 2024,
    https://arxiv.org/abs/2307.13372. Code: https://github.com/manish-pra/non-additive-RL
    (this is an independent re-implementation on Stable-Baselines3).

    :param policy: ``"MlpPolicy"``, ``"MultiInputPolicy"`` (Dict observations) or a subclass of
        :class:`~opsrl.agents.subpo.policies.SubPOPolicy`
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param learning_rate: Adam's learning rate, or the fixed natural step eta with
        ``natural_gradient=True, target_kl=None``; a float or a schedule of the progress
        remaining (from 1 to 0)
    :param episodes_per_update: B, whole episodes per update (rounded up to a multiple of
        ``n_envs``)
    :param horizon: H, the episode length; None reads it from the env
    :param signal: ``"reward_to_go"`` or ``"one_step"`` (see above)
    :param baseline: ``"time_step"`` or ``"none"``
    :param normalize_signal: divide the signal by its batch standard deviation
    :param ent_coef: weight of the entropy bonus
    :param ent_coef_schedule: ``"constant"`` or ``"harmonic"`` (``ent_coef / k`` at update k)
    :param max_grad_norm: clip of the gradient norm of the Adam steps; None: no clipping
    :param natural_gradient: take natural policy-gradient steps instead of Adam steps
    :param target_kl: KL-normalised natural step size (None: the fixed step ``learning_rate``)
    :param cg_max_steps: conjugate-gradient iterations of the natural step
    :param cg_damping: damping added to the Fisher matrix (times the identity)
    :param stats_window_size: Window size for the rollout logging, specifying the number of
        episodes to average the reported success rate, mean episode length, and mean reward over
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to the policy on creation
        (``net_arch``, ``activation_fn``, ``ortho_init``, ...)
    :param verbose: Verbosity level: 0 for no output, 1 for info messages (such as device or
        wrappers used), 2 for debug messages
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run. Setting it to auto,
        the code will be run on the GPU if possible.
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": SubPOPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: SubPOPolicy  # type: ignore[assignment]
    rollout_buffer: EpisodeRolloutBuffer  # type: ignore[assignment]

    def __init__(
        self,
        policy: str | type[SubPOPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-2,
        episodes_per_update: int = 500,
        horizon: int | None = None,
        signal: Literal["reward_to_go", "one_step"] = "reward_to_go",
        baseline: Literal["time_step", "none"] = "time_step",
        normalize_signal: bool = False,
        ent_coef: float = 0.0,
        ent_coef_schedule: Literal["constant", "harmonic"] = "constant",
        max_grad_norm: float | None = None,
        natural_gradient: bool = False,
        target_kl: float | None = 0.01,
        cg_max_steps: int = 10,
        cg_damping: float = 0.1,
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
            n_steps=1,  # set from episodes_per_update and the horizon below
            gamma=1.0,  # F(tau) is an undiscounted sum of gains
            gae_lambda=1.0,
            ent_coef=ent_coef,
            vf_coef=0.0,  # no critic
            max_grad_norm=max_grad_norm,  # type: ignore[arg-type]
            use_sde=False,
            sde_sample_freq=-1,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
            supported_action_spaces=(
                spaces.Discrete,
                spaces.MultiDiscrete,
                spaces.MultiBinary,
                spaces.Box,
            ),
        )
        self.episodes_per_update = episodes_per_update
        self.horizon = horizon
        self.signal = signal
        self.baseline = baseline
        self.normalize_signal = normalize_signal
        self.ent_coef_schedule = ent_coef_schedule
        self.natural_gradient = natural_gradient
        self.target_kl = target_kl
        self.cg_max_steps = cg_max_steps
        self.cg_damping = cg_damping
        self._check_arguments()
        if _init_setup_model:
            self._setup_model()

    # ------------------------------------------------------------------------- set-up
    def _check_arguments(self) -> None:
        """Raise a ValueError naming the first bad argument."""

        def is_positive_int(value: Any) -> bool:
            return isinstance(value, int | np.integer) and not isinstance(value, bool) and value > 0

        if not is_positive_int(self.episodes_per_update):
            raise ValueError(
                f"episodes_per_update must be a positive integer, got {self.episodes_per_update!r}"
            )
        if self.horizon is not None and not is_positive_int(self.horizon):
            raise ValueError(f"horizon must be None or a positive integer, got {self.horizon!r}")
        if not is_positive_int(self.cg_max_steps):
            raise ValueError(f"cg_max_steps must be a positive integer, got {self.cg_max_steps!r}")
        if self.signal not in SIGNALS:
            raise ValueError(f"signal must be one of {SIGNALS}, got {self.signal!r}")
        if self.baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {BASELINES}, got {self.baseline!r}")
        if self.ent_coef_schedule not in ENT_COEF_SCHEDULES:
            raise ValueError(
                f"ent_coef_schedule must be one of {ENT_COEF_SCHEDULES}, got "
                f"{self.ent_coef_schedule!r}"
            )
        if not (isinstance(self.ent_coef, int | float) and math.isfinite(self.ent_coef)) or (
            self.ent_coef < 0
        ):
            raise ValueError(f"ent_coef must be a non-negative number, got {self.ent_coef!r}")
        if not (isinstance(self.cg_damping, int | float) and self.cg_damping >= 0):
            raise ValueError(f"cg_damping must be a non-negative number, got {self.cg_damping!r}")
        for name in ("max_grad_norm", "target_kl"):
            value = getattr(self, name)
            if value is not None and not (
                isinstance(value, int | float) and math.isfinite(value) and value > 0
            ):
                raise ValueError(f"{name} must be None or a positive number, got {value!r}")
        if isinstance(self.learning_rate, int | float) and not (
            math.isfinite(self.learning_rate) and self.learning_rate > 0
        ):
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}")

    def _resolve_horizon(self) -> int:
        """H: the ``horizon`` argument, else the env's ``horizon`` attribute, else the
        registered ``max_episode_steps``."""
        if self.horizon is not None:
            return int(self.horizon)
        assert self.env is not None
        for read in (
            lambda env: env.get_attr("horizon", [0])[0],
            lambda env: env.get_attr("spec", [0])[0].max_episode_steps,
        ):
            try:
                value = read(self.env)
            except (AttributeError, IndexError, TypeError):
                continue
            if isinstance(value, int | np.integer) and not isinstance(value, bool) and value > 0:
                return int(value)
        raise ValueError(
            "horizon: cannot read the episode length from the env (no 'horizon' attribute, no "
            "max_episode_steps); pass horizon=H"
        )

    def _setup_model(self) -> None:
        if self.env is not None:
            # read here, not in __init__: load() restores the saved horizon before this runs
            self.horizon = self._resolve_horizon()
        if self.horizon is not None:
            self.n_steps = math.ceil(self.episodes_per_update / self.n_envs) * self.horizon
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        if not (isinstance(self.policy_class, type) and issubclass(self.policy_class, SubPOPolicy)):
            raise ValueError(
                f"SubPO needs a SubPOPolicy (policy='MlpPolicy' or 'MultiInputPolicy'), got "
                f"{getattr(self.policy_class, '__name__', self.policy_class)}"
            )
        self.rollout_buffer = EpisodeRolloutBuffer(
            self.n_steps,
            self.observation_space,
            self.action_space,
            device=self.device,
            n_envs=self.n_envs,
        )
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, self.lr_schedule, **self.policy_kwargs
        ).to(self.device)
        # step index within the running episode of every slot (carried across rollouts)
        self._episode_time = np.zeros(self.n_envs, dtype=np.int64)

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["policy", "policy.optimizer"], []

    # ------------------------------------------------------------------------- rollouts
    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: EpisodeRolloutBuffer,  # type: ignore[override]
        n_rollout_steps: int,
    ) -> bool:
        """Collect ``n_rollout_steps`` steps of every slot with the current policy (sampled
        actions), with each sample's step index in its episode."""
        assert self._last_obs is not None, "No previous observation was provided"
        self.policy.set_training_mode(False)
        rollout_buffer.reset()
        if self._episode_time.shape != (env.num_envs,):
            self._episode_time = np.zeros(env.num_envs, dtype=np.int64)
        # a slot whose last step ended an episode (or that was just reset) starts at step 0
        starts = np.asarray(self._last_episode_starts, dtype=bool)
        self._episode_time[starts] = 0
        callback.on_rollout_start()
        n_steps = 0
        while n_steps < n_rollout_steps:
            with th.no_grad():
                obs_tensor = obs_as_tensor(self._last_obs, self.device)  # type: ignore[arg-type]
                # sampled actions only: the update recomputes log-probabilities with gradient
                distribution = self.policy.get_distribution(obs_tensor)
                actions = distribution.get_actions(deterministic=False).cpu().numpy()
            actions = actions.reshape((-1, *self.action_space.shape))  # type: ignore[misc]
            env_actions = actions
            if isinstance(self.action_space, spaces.Box):
                # the Gaussian is unbounded; the env gets the action clipped to its bounds
                env_actions = np.clip(actions, self.action_space.low, self.action_space.high)
            new_obs, rewards, dones, infos = env.step(env_actions)
            self.num_timesteps += env.num_envs
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
            self._record_episode_kpis(infos, dones)
            n_steps += 1
            rollout_buffer.add(
                self._last_obs,  # type: ignore[arg-type]
                actions,
                rewards,
                self._episode_time,
                dones,
            )
            self._episode_time = np.where(dones, 0, self._episode_time + 1)
            self._last_obs = new_obs  # type: ignore[assignment]
            self._last_episode_starts = dones
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _record_episode_kpis(self, infos: list[dict[str, Any]], dones: np.ndarray) -> None:
        """Log the mean of every numeric ``info["kpi"]`` entry over the episodes that ended."""
        for index in np.flatnonzero(dones):
            kpi = infos[index].get("kpi")
            if not isinstance(kpi, dict):
                continue
            for key, value in kpi.items():
                if isinstance(value, int | float | np.integer | np.floating) and not isinstance(
                    value, bool
                ):
                    self.logger.record_mean(f"rollout/kpi/{key}", float(value))

    # ------------------------------------------------------------------------- training
    def current_ent_coef(self) -> float:
        """The entropy weight of the coming update (``ent_coef / k`` at update k when
        harmonic)."""
        if self.ent_coef_schedule == "harmonic":
            return float(self.ent_coef) / (self._n_updates + 1)
        return float(self.ent_coef)

    def signal_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """The rollout's per-sample signals and which samples enter the update, (n_steps,
        n_envs) each (see :func:`~opsrl.agents.subpo.signals.submodular_signal`)."""
        buffer = self.rollout_buffer
        rows = buffer.filled()
        return submodular_signal(
            buffer.rewards[rows],
            buffer.episode_ends[rows],
            buffer.time_steps[rows],
            signal=self.signal,
            baseline=self.baseline,
            normalize=self.normalize_signal,
        )

    def train(self) -> None:
        """One policy-gradient step (Adam, or a natural-gradient step) on the rollout."""
        self.policy.set_training_mode(True)
        weights, valid = self.signal_weights()
        self.logger.record("train/samples", int(valid.sum()))
        if not valid.any():
            # no episode ended in this rollout (episodes longer than it): nothing to weigh yet
            return
        samples = self.rollout_buffer.samples(valid)
        weights_t = th.as_tensor(weights[valid], dtype=th.float32, device=self.device)
        ent_coef = self.current_ent_coef()
        if self.natural_gradient:
            terms = self._natural_gradient_step(
                samples.observations, samples.actions, weights_t, ent_coef
            )
        else:
            terms = self._adam_step(samples.observations, samples.actions, weights_t, ent_coef)
        self._n_updates += 1
        self.logger.record("train/ent_coef", ent_coef)
        self.logger.record("train/signal_mean", float(weights[valid].mean()))
        self.logger.record("train/signal_std", float(weights[valid].std()))
        for name, value in terms.items():
            self.logger.record(f"train/{name}", value)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")

    def _adam_step(
        self, observations: PyTorchObs, actions: th.Tensor, weights: th.Tensor, ent_coef: float
    ) -> dict[str, float]:
        self._update_learning_rate(self.policy.optimizer)
        log_prob, entropy = self.policy.evaluate_actions(observations, actions)
        loss, terms = policy_gradient_loss(log_prob, entropy, weights, ent_coef)
        self.policy.optimizer.zero_grad()
        loss.backward()
        if self.max_grad_norm is not None:
            th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
        self.policy.optimizer.step()
        return {"loss": loss.item(), **{name: value.item() for name, value in terms.items()}}

    def _natural_gradient_step(
        self, observations: PyTorchObs, actions: th.Tensor, weights: th.Tensor, ent_coef: float
    ) -> dict[str, float]:
        """theta <- theta + eta F^-1 g (see the class docstring); returns the logged terms."""
        with th.no_grad():
            # copy: get_distribution() refills the same distribution object on every call
            old_distribution = copy.copy(self.policy.get_distribution(observations))
        step = natural_gradient_direction(
            self.policy,
            observations,
            actions,
            weights,
            ent_coef,
            cg_damping=self.cg_damping,
            cg_max_steps=self.cg_max_steps,
        )
        if self.target_kl is not None:
            step_size = math.sqrt(2.0 * self.target_kl / max(step.curvature, 1e-12))
        else:
            step_size = float(self.lr_schedule(self._current_progress_remaining))
        params = [p for p in self.policy.parameters() if p.requires_grad]
        with th.no_grad():
            offset = 0
            for param in params:
                size = param.numel()
                param.add_(step_size * step.direction[offset : offset + size].view_as(param))
                offset += size
            step_kl = mean_kl(old_distribution, self.policy.get_distribution(observations))
        return {
            **step.terms,
            "natural_step_size": step_size,
            "kl": step_kl.item(),
            "gradient_norm": float(step.gradient.norm().item()),
        }

    def learn(
        self: SelfSubPO,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "SubPO",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfSubPO:
        """Train for ``total_timesteps`` env steps, rounded up to whole updates of
        ``episodes_per_update`` episodes (see SB3's ``OnPolicyAlgorithm.learn``)."""
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
