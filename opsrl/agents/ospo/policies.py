"""Shared score policy of OSPO and GRPO: a categorical choice among a vehicle's K + 1 options."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

__all__ = ["ScorePolicy", "masked_entropy", "masked_kl"]

#: logit of an absent option: finite, so that softmax, entropy and KL stay free of NaN, yet
#: exp() underflows to an exact 0 probability
ABSENT_LOGIT = -1e9


def masked_kl(log_p: th.Tensor, log_q: th.Tensor, mask: th.Tensor) -> th.Tensor:
    """KL(p || q) per row over the options where ``mask`` is True (absent options have p = 0
    and add nothing)."""
    terms = log_p.exp() * (log_p - log_q)
    return th.where(mask, terms, th.zeros_like(terms)).sum(dim=-1)


def masked_entropy(log_p: th.Tensor, mask: th.Tensor) -> th.Tensor:
    """Entropy per row over the options where ``mask`` is True."""
    terms = -log_p.exp() * log_p
    return th.where(mask, terms, th.zeros_like(terms)).sum(dim=-1)


class ScorePolicy(BasePolicy):
    """One network shared by all vehicles that scores each vehicle's options.

    **Observation layout** (the per-vehicle observation of
    :class:`~opsrl.envs.ride_sharing.vec.RideSharingAgentVecEnv` and of the PettingZoo env):
    ``[vehicle features (V), K candidate blocks of candidate_features (F) each, option mask
    (K + 1)]``. K comes from the action space ``Box(-1, 1, (K + 1,))`` and V = D - K F - (K + 1)
    from the observation size D. The mask is 1 for "no order" (slot 0) and for every present
    candidate (slots 1..K).

    **Network** (OSPO's scorer, Zhao & Li 2025): an MLP (default 128-128, LeakyReLU) scores every
    (vehicle, option) pair from ``[vehicle features, candidate features, is_no_order]``. A
    softmax over the vehicle's present options gives its categorical distribution; absent
    candidates get probability 0.

    **"No order".** By default (``allow_no_order=False``) slot 0 is masked whenever the vehicle
    has a candidate, as in OSPO's code, whose softmax runs over orders only: a vehicle takes an
    order whenever the matching gives it one (slot 0 stays the choice of vehicles without any
    candidate). ``allow_no_order=True`` makes declining a learned option: the pair with zero
    candidate features and the indicator set, plus a learned offset ``no_order_logit``
    (initialised at ``no_order_logit_init``). OSPO's and GRPO's advantages never score a
    decline (only matched decisions are trained on, and the fairness term is negative on
    average while incomes spread), so with them the decline option drifts up: on the
    10-vehicle synthetic city it cut the served orders from about 37 to 14 in 40 updates.
    Keep it for algorithms that score declines.

    **Action** sent to the platform: the probabilities mapped to scores ``2 p - 1`` in
    [-1, 1]. The platform maximises the summed scores of the chosen options; every vehicle
    contributes exactly one option, so the affine map keeps OSPO's "maximise the summed
    probabilities" matching. The policy is deterministic given the observation
    (``deterministic`` is ignored): the algorithms explore with epsilon-greedy scores.

    ``predict`` also takes the platform view of ``opsrl/RideSharing-v0`` (all vehicles'
    observations concatenated, length M D) and returns the concatenated scores (M (K + 1)),
    so a trained model is evaluated on the platform env unchanged.

    :param observation_space: ``Box`` of shape (D,)
    :param action_space: ``Box(-1, 1, (K + 1,))``
    :param lr_schedule: learning rate schedule (the algorithms set the rate themselves)
    :param candidate_features: F, features per candidate block
    :param net_arch: hidden layer sizes of the pair scorer
    :param activation_fn: activation of the hidden layers
    :param allow_no_order: whether "no order" is an option a vehicle with candidates can pick
    :param no_order_logit_init: initial offset of the "no order" logit (with
        ``allow_no_order``); negative values start from a policy that takes an order rather
        than none
    :param optimizer_class: the optimizer
    :param optimizer_kwargs: keyword arguments of the optimizer (Adam: ``eps=1e-5`` by default)
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        candidate_features: int = 8,
        net_arch: list[int] | tuple[int, ...] = (128, 128),
        activation_fn: type[nn.Module] = nn.LeakyReLU,
        allow_no_order: bool = False,
        no_order_logit_init: float = -2.0,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if optimizer_kwargs is None:
            optimizer_kwargs = {"eps": 1e-5} if optimizer_class is th.optim.Adam else {}
        super().__init__(
            observation_space,
            action_space,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
        )
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise ValueError(
                f"ScorePolicy needs a flat Box observation space, got {observation_space}"
            )
        if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
            raise ValueError(
                f"ScorePolicy needs a Box action space of K + 1 scores, got {action_space}"
            )
        num_options = int(action_space.shape[0])
        if num_options < 2:
            raise ValueError(
                f"the action space must score 'no order' and at least one candidate, got "
                f"{num_options} slot(s)"
            )
        if isinstance(candidate_features, bool) or int(candidate_features) < 1:
            raise ValueError(
                f"candidate_features must be a positive integer, got {candidate_features!r}"
            )
        self.num_candidates = num_options - 1
        self.candidate_features = int(candidate_features)
        self.observation_dim = int(observation_space.shape[0])
        self.vehicle_features = (
            self.observation_dim - self.num_candidates * self.candidate_features - num_options
        )
        if self.vehicle_features < 1:
            raise ValueError(
                f"an observation of {self.observation_dim} values cannot hold {self.num_candidates}"
                f" candidate blocks of candidate_features={self.candidate_features} plus a mask "
                f"of {num_options}"
            )
        self.net_arch = [int(size) for size in net_arch]
        if any(size < 1 for size in self.net_arch):
            raise ValueError(f"net_arch must hold positive layer sizes, got {list(net_arch)}")
        self.activation_fn = activation_fn
        self.allow_no_order = bool(allow_no_order)
        self.no_order_logit_init = float(no_order_logit_init)

        layers: list[nn.Module] = []
        width = self.vehicle_features + self.candidate_features + 1
        for size in self.net_arch:
            layers += [nn.Linear(width, size), activation_fn()]
            width = size
        layers.append(nn.Linear(width, 1))
        self.scorer = nn.Sequential(*layers)
        self.no_order_logit = nn.Parameter(th.tensor(self.no_order_logit_init))
        self.optimizer = self.optimizer_class(
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.pop("normalize_images")  # vector observations only
        data.update(
            candidate_features=self.candidate_features,
            net_arch=self.net_arch,
            activation_fn=self.activation_fn,
            allow_no_order=self.allow_no_order,
            no_order_logit_init=self.no_order_logit_init,
            optimizer_class=self.optimizer_class,
            optimizer_kwargs=self.optimizer_kwargs,
            lr_schedule=self._dummy_schedule,
        )
        return data

    # ------------------------------------------------------------------------ distribution
    def option_mask(self, obs: th.Tensor) -> th.Tensor:
        """(B, K + 1) bool: the options a vehicle may pick (present candidates, and "no order"
        when allowed or when it has no candidate)."""
        mask = obs[:, -(self.num_candidates + 1) :] > 0.5
        if not self.allow_no_order:
            has_candidate = mask[:, 1:].any(dim=1)
            mask = mask.clone()
            mask[:, 0] = ~has_candidate
        return mask

    def logits(self, obs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Masked logits (B, K + 1) and the option mask of a batch of vehicle observations."""
        obs = obs.float()
        batch, k, f = obs.shape[0], self.num_candidates, self.candidate_features
        vehicle = obs[:, : self.vehicle_features]
        candidates = obs[:, self.vehicle_features : self.vehicle_features + k * f].reshape(
            batch, k, f
        )
        # Option 0 ("no order") is the pair with empty candidate features and the indicator.
        options = th.cat([th.zeros_like(candidates[:, :1]), candidates], dim=1)
        indicator = th.zeros(batch, k + 1, 1, device=obs.device, dtype=obs.dtype)
        indicator[:, 0] = 1.0
        pairs = th.cat([vehicle.unsqueeze(1).expand(batch, k + 1, -1), options, indicator], dim=2)
        logits = self.scorer(pairs).squeeze(-1)
        offset = th.zeros(k + 1, device=obs.device, dtype=logits.dtype)
        offset[0] = 1.0
        logits = logits + offset * self.no_order_logit
        mask = self.option_mask(obs)
        return logits.masked_fill(~mask, ABSENT_LOGIT), mask

    def log_probabilities(self, obs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Log-probabilities (B, K + 1) of the options (about -1e9 for absent ones) and the
        option mask."""
        logits, mask = self.logits(obs)
        return th.log_softmax(logits, dim=-1), mask

    def probabilities(self, obs: th.Tensor) -> th.Tensor:
        """Probabilities (B, K + 1) of the options; exactly 0 for absent ones."""
        return self.log_probabilities(obs)[0].exp()

    def forward(self, obs: th.Tensor, deterministic: bool = True) -> th.Tensor:
        """Scores ``2 p - 1`` (B, K + 1) for the platform."""
        return self._predict(obs, deterministic)

    def _predict(self, observation: PyTorchObs, deterministic: bool = True) -> th.Tensor:
        assert isinstance(observation, th.Tensor)
        return 2.0 * self.probabilities(observation) - 1.0

    # ------------------------------------------------------------------------ acting
    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Scores for per-vehicle observations (..., D) -> (..., K + 1), or for platform
        observations (..., M D) -> (..., M (K + 1))."""
        if isinstance(observation, dict):
            raise ValueError("ScorePolicy takes flat (Box) observations, not a dict")
        array = np.asarray(observation, dtype=np.float32)
        width, d = array.shape[-1] if array.ndim else 0, self.observation_dim
        if array.ndim == 0 or width % d != 0:
            raise ValueError(
                f"observations must end with a vehicle's {d} values or a multiple of them "
                f"(platform view), got shape {array.shape}"
            )
        lead = array.shape[:-1]
        vehicles = array.reshape(-1, d)
        self.set_training_mode(False)
        with th.no_grad():
            scores = self._predict(th.as_tensor(vehicles, device=self.device), deterministic)
        scores_np = scores.cpu().numpy().astype(np.float32)
        return scores_np.reshape(*lead, (width // d) * (self.num_candidates + 1)), state
