"""Gymnasium faces of the two robust-RL test domains: the simulated linear MDP and the
American put option (distributionally robust RL under a perturbed transition)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from opsrl.envs.robust.sim import (
    LINEAR_MDP_FAILURE_STATE,
    LINEAR_MDP_GOAL_STATE,
    LINEAR_MDP_HORIZON,
    LINEAR_MDP_STATES,
    hat_features,
    linear_mdp_actions,
    linear_mdp_features,
    linear_mdp_rewards,
    linear_mdp_transitions,
    put_payoff,
    put_price_bins,
    put_price_step,
)

__all__ = ["AmericanPutEnv", "SimulatedLinearMDPEnv"]


def _check_probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _check_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not np.isfinite(float(value)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_action(space: spaces.Discrete, action: Any) -> int:
    if not space.contains(action):
        # integral floats from a policy's argmax are fine; anything else is a caller's bug
        array = np.asarray(action)
        if array.shape == () and array.dtype.kind == "f" and float(array).is_integer():
            if space.contains(int(array)):
                return int(array)
        raise ValueError(f"action must be an integer in 0..{space.n - 1}, got {action!r}")
    return int(action)


def _check_render_mode(render_mode: str | None, modes: list[str]) -> None:
    if render_mode is not None and render_mode not in modes:
        raise ValueError(f"render_mode must be None or one of {modes}, got {render_mode!r}")


class SimulatedLinearMDPEnv(gym.Env[int, int]):
    """The simulated linear MDP of distributionally robust offline/online RL papers.

    ## Description

    Five states x1..x5 and sixteen actions a in {-1, 1}^4, over a horizon of H = 3 steps.
    Every (state, action) pair has a feature vector phi(s, a) on the 4-simplex, and both the
    transition and the reward are linear in it (a d-rectangular linear MDP with d = 4). With
    p(a) = delta + <xi, a> (xi = xi_norm (1, 1, 1, 1) / 4):

    - x1 (the start) moves to x5 with probability p(a) and to x2 otherwise;
    - x2 moves to x5 with probability p(a) and to x3 otherwise, earning p(a);
    - x3 moves to x5 with probability p(a) and to the failure state x4 otherwise, earning p(a);
    - x4 is absorbing with reward 0; x5 is absorbing with reward 1.

    A small share ``leak_prob`` of x1's and x2's moves towards x2/x3 ends in x4 instead. The
    nominal environment (``failure_prob = 0``) rewards pushing p(a) up in x1: x5 is worth 2
    from step 1. The test-time perturbation ``failure_prob = q`` sends a share q of x1's move
    to x5 into x4 instead; for q above about 0.375 the policy that keeps p(a) low in x1 does
    better. A robust agent trained on the nominal env should lose less as q grows.

    This is a reconstruction of ``LinearMDP_train`` / ``LinearMDP_test`` in
    panxulab/Robust-Regularized-Pessimistic-Value-Iteration (``Simulated_Linear_MDP/env.py``):
    same features, rewards and nominal transitions; the perturbed env there also drops the
    0.001 leak at step 0 when q is set, here ``leak_prob`` stays as given (set it to 0 to
    drop it).

    ## Action Space

    ``Discrete(16)``: action k is the vector ``linear_mdp_actions()[k]`` in {-1, 1}^4
    (``itertools.product`` order; :attr:`action_vectors`). Every action is always allowed.

    ## Observation Space

    ``Discrete(5)``: the index of the current state (0 = x1, ..., 4 = x5). The step index h is
    not observed; an agent tracks it from the episode position (the horizon is fixed).

    ## Rewards

    r_h(s, a) = <phi(s, a), theta_h> with theta_0 = 0 and theta_1 = theta_2 = e_4: nothing at
    step 0, p(a) from x2 and x3, 1 from x5, 0 from x4. Episode returns lie in [0, 2].

    ## Starting State

    Always x1.

    ## Episode End

    The episode terminates after H = 3 steps (``terminated=True``); there is no truncation.

    ## Info

    ``info["kpi"]`` (episode to date): ``total_reward``, ``failed`` (1.0 when the current
    state is the failure state x4), ``reached_x5`` (1.0 when it is x5).

    ## Model access

    :meth:`features` gives phi as an array (S, A, d); :meth:`transition_probabilities` the
    exact P(s' | s, a) (S, A, S); :meth:`rewards` the reward table (H, S, A); :attr:`horizon`.

    ## Arguments

    ```python
    gym.make("opsrl/SimulatedLinearMDP-v0", failure_prob=0.0, delta=0.3, xi_norm=0.2,
             leak_prob=0.001, render_mode=None)
    ```

    - ``failure_prob``: q in [0, 1], the perturbation of x1's transition to x5 (0: nominal, the
      reference code's training env).
    - ``delta``, ``xi_norm``: p(a) ranges over [delta - xi_norm, delta + xi_norm], which must
      lie in [0, 1] (reference values 0.3 and 0.2).
    - ``leak_prob``: the share of x1's and x2's other moves that fail into x4 (0.001).
    - ``render_mode``: None or ``"ansi"``.

    Bad arguments raise a ValueError naming the argument.

    ## Version History

    - v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        failure_prob: float = 0.0,
        delta: float = 0.3,
        xi_norm: float = 0.2,
        leak_prob: float = 0.001,
        render_mode: str | None = None,
    ) -> None:
        self.failure_prob = _check_probability("failure_prob", failure_prob)
        self.leak_prob = _check_probability("leak_prob", leak_prob)
        self.delta = _check_number("delta", delta)
        self.xi_norm = _check_number("xi_norm", xi_norm)
        if self.xi_norm < 0:
            raise ValueError(f"xi_norm must be >= 0, got {xi_norm!r}")
        if self.delta - self.xi_norm < 0 or self.delta + self.xi_norm > 1:
            raise ValueError(
                f"delta must keep p(a) = delta +- xi_norm in [0, 1]; got delta={delta!r} with "
                f"xi_norm={xi_norm!r}"
            )
        _check_render_mode(render_mode, self.metadata["render_modes"])
        self.render_mode = render_mode

        self.action_vectors = linear_mdp_actions()
        self._features = linear_mdp_features(self.delta, self.xi_norm)
        self._transitions = linear_mdp_transitions(
            self._features, self.failure_prob, self.leak_prob
        )
        self._rewards = np.stack(
            [linear_mdp_rewards(self._features, h) for h in range(LINEAR_MDP_HORIZON)]
        )
        # cumulative rows for inverse-CDF sampling with one uniform draw per step
        self._transition_cdf = np.cumsum(self._transitions, axis=-1)
        n_states, n_actions, _ = self._features.shape
        self.observation_space = spaces.Discrete(n_states)
        self.action_space = spaces.Discrete(n_actions)
        self._state = 0
        self._step: int | None = None
        self._total_reward = 0.0

    @property
    def horizon(self) -> int:
        """Number of steps of an episode, H = 3."""
        return LINEAR_MDP_HORIZON

    @property
    def state(self) -> int:
        """Index of the current state (0 = x1, ..., 4 = x5)."""
        return self._state

    @property
    def step_index(self) -> int:
        """Steps taken in the current episode, 0..H."""
        return 0 if self._step is None else self._step

    def features(self) -> np.ndarray:
        """phi(s, a) for every state and action, shape (5, 16, 4); rows on the simplex."""
        return self._features.copy()

    def transition_probabilities(self) -> np.ndarray:
        """Exact P(s' | s, a) of this env (nominal or perturbed), shape (5, 16, 5); the same
        at every step."""
        return self._transitions.copy()

    def rewards(self) -> np.ndarray:
        """Reward table r_h(s, a), shape (H, 5, 16)."""
        return self._rewards.copy()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Start in x1."""
        super().reset(seed=seed)
        self._state, self._step, self._total_reward = 0, 0, 0.0
        return self._state, {"kpi": self._kpi()}

    def step(self, action: Any) -> tuple[int, float, bool, bool, dict[str, Any]]:
        """Earn r_h(s, a), then move to a next state drawn from P(. | s, a)."""
        if self._step is None or self._step >= LINEAR_MDP_HORIZON:
            raise RuntimeError("call reset() before step() (the episode is over)")
        index = _check_action(self.action_space, action)
        reward = float(self._rewards[self._step, self._state, index])
        draw = self.np_random.random()
        cdf = self._transition_cdf[self._state, index]
        self._state = int(min(np.searchsorted(cdf, draw, side="right"), len(cdf) - 1))
        self._step += 1
        self._total_reward += reward
        terminated = self._step == LINEAR_MDP_HORIZON
        return self._state, reward, terminated, False, {"kpi": self._kpi()}

    def render(self) -> str | None:
        """With ``render_mode="ansi"``: the step, the state and the reward so far."""
        if self.render_mode is None:
            gym.logger.warn("You are calling render() without a render_mode; use 'ansi'.")
            return None
        return (
            f"step {self.step_index}/{LINEAR_MDP_HORIZON} | state "
            f"{LINEAR_MDP_STATES[self._state]} | total reward {self._total_reward:.3f}"
        )

    def _kpi(self) -> dict[str, float]:
        return {
            "total_reward": self._total_reward,
            "failed": float(self._state == LINEAR_MDP_FAILURE_STATE),
            "reached_x5": float(self._state == LINEAR_MDP_GOAL_STATE),
        }


class AmericanPutEnv(gym.Env[int, int]):
    """When to exercise an American put option on a binomial price, on a price grid.

    ## Description

    The holder of an American put with strike K may exercise it at any step h = 0..H-1 and
    receive ``max(K - price, 0)``; unexercised at maturity (after H steps), it expires
    worthless. Each step the option is held, the price moves up by ``up_factor`` with
    probability ``up_prob`` and down by ``down_factor`` otherwise. The price starts uniform in
    [K - spread, K + spread]. The goal is the largest expected payoff.

    ``up_prob`` is the test-time perturbation: a policy trained at the nominal 0.5 holds for a
    price fall that a larger ``up_prob`` makes less likely; a robust policy exercises earlier
    and loses less.

    Reconstruction of ``American_put_option`` in panxulab/Robust-Regularized-Pessimistic-
    Value-Iteration (``American_put_opt/env.py``): same K = 100, factors 1.02 / 0.98,
    spread 5, H = 20, price range [60, 160] and 30 hat features. Differences: the initial
    price is drawn at every reset (there, once per env instance); the observation is the
    price's bin on a grid (there, the continuous price), so that tabular agents apply.

    ## Action Space

    ``Discrete(2)``: 0 = hold, 1 = exercise. Both are always allowed.

    ## Observation Space

    ``Discrete(n_price_bins)``: the index of the current price on ``n_price_bins`` equal-width
    bins over [price_low, price_high] (prices outside fall in the end bins; with the defaults
    every reachable price lies inside). The simulator keeps the exact price (:attr:`price`),
    which the payoff uses; the bin process is close to, not exactly, Markov. The step index h
    is not observed; an agent tracks it from the episode position.

    ## Rewards

    The payoff ``max(K - price, 0)`` when exercising, 0 when holding.

    ## Starting State

    price ~ Uniform[K - spread, K + spread], drawn from the env's ``np_random``.

    ## Episode End

    Terminates on exercise or at maturity (after H holds); there is no truncation.

    ## Info

    ``info["kpi"]`` (episode to date): ``payoff`` (0 until exercised), ``exercised`` (0/1),
    ``exercise_step`` (the step h of the exercise; H while unexercised), ``price``.

    ## Model access

    :meth:`features` gives the hat-function features (S, 2, 2 * n_anchors): hold's block then
    exercise's, each the hat weights of the bin's centre price on ``n_anchors`` anchors evenly
    spread over [price_low, price_high], the price clamped to that range so that every
    feature vector lies on the simplex (the d-rectangular assumption). :attr:`horizon`,
    :attr:`bin_prices`, :attr:`anchors`.

    ## Arguments

    ```python
    gym.make("opsrl/AmericanPut-v0", up_prob=0.5, strike=100.0, up_factor=1.02,
             down_factor=0.98, initial_price_spread=5.0, horizon=20, price_low=60.0,
             price_high=160.0, n_price_bins=100, n_anchors=30, render_mode=None)
    ```

    - ``up_prob``: probability of an up move, in [0, 1] (nominal 0.5, the reference p0).
    - ``strike``: K > 0. ``up_factor`` > ``down_factor`` > 0: the price multipliers.
    - ``initial_price_spread``: in [0, K): half-width of the initial price interval.
    - ``horizon``: H >= 1, the number of decision steps before maturity.
    - ``price_low`` < ``price_high`` (>= 0): the range of the price grid and of the anchors.
    - ``n_price_bins`` >= 2: observation size. ``n_anchors`` >= 2: features per action.
    - ``render_mode``: None or ``"ansi"``.

    Bad arguments raise a ValueError naming the argument.

    ## Version History

    - v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    HOLD = 0
    EXERCISE = 1

    def __init__(
        self,
        up_prob: float = 0.5,
        strike: float = 100.0,
        up_factor: float = 1.02,
        down_factor: float = 0.98,
        initial_price_spread: float = 5.0,
        horizon: int = 20,
        price_low: float = 60.0,
        price_high: float = 160.0,
        n_price_bins: int = 100,
        n_anchors: int = 30,
        render_mode: str | None = None,
    ) -> None:
        self.up_prob = _check_probability("up_prob", up_prob)
        self.strike = _check_number("strike", strike)
        if self.strike <= 0:
            raise ValueError(f"strike must be > 0, got {strike!r}")
        self.up_factor = _check_number("up_factor", up_factor)
        self.down_factor = _check_number("down_factor", down_factor)
        if self.down_factor <= 0:
            raise ValueError(f"down_factor must be > 0, got {down_factor!r}")
        if self.up_factor <= self.down_factor:
            raise ValueError(
                f"up_factor must exceed down_factor, got {up_factor!r} <= {down_factor!r}"
            )
        self.initial_price_spread = _check_number("initial_price_spread", initial_price_spread)
        if not 0 <= self.initial_price_spread < self.strike:
            raise ValueError(
                f"initial_price_spread must lie in [0, strike), got {initial_price_spread!r}"
            )
        self._horizon = _check_int("horizon", horizon, 1)
        self.price_low = _check_number("price_low", price_low)
        self.price_high = _check_number("price_high", price_high)
        if self.price_low < 0:
            raise ValueError(f"price_low must be >= 0, got {price_low!r}")
        if self.price_high <= self.price_low:
            raise ValueError(f"price_high must exceed price_low, got {price_high!r}")
        self.n_price_bins = _check_int("n_price_bins", n_price_bins, 2)
        self.n_anchors = _check_int("n_anchors", n_anchors, 2)
        _check_render_mode(render_mode, self.metadata["render_modes"])
        self.render_mode = render_mode

        width = (self.price_high - self.price_low) / self.n_price_bins
        self.bin_prices = self.price_low + width * (np.arange(self.n_price_bins) + 0.5)
        self.anchors = np.linspace(self.price_low, self.price_high, self.n_anchors)
        self.observation_space = spaces.Discrete(self.n_price_bins)
        self.action_space = spaces.Discrete(2)

        self._price = self.strike
        self._step: int | None = None
        self._payoff = 0.0
        self._exercise_step: int | None = None

    @property
    def horizon(self) -> int:
        """Number of decision steps before maturity, H."""
        return self._horizon

    @property
    def price(self) -> float:
        """The exact current price."""
        return float(self._price)

    @property
    def step_index(self) -> int:
        """Steps taken in the current episode."""
        return 0 if self._step is None else self._step

    def features(self) -> np.ndarray:
        """Hat-function features of every (price bin, action), shape (S, 2, 2 * n_anchors),
        each row on the simplex (see the class docstring)."""
        hats = hat_features(self.bin_prices, self.anchors)
        phi = np.zeros((self.n_price_bins, 2, 2 * self.n_anchors))
        phi[:, self.HOLD, : self.n_anchors] = hats
        phi[:, self.EXERCISE, self.n_anchors :] = hats
        return phi

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Draw the initial price uniformly around the strike."""
        super().reset(seed=seed)
        self._price = self.np_random.uniform(
            self.strike - self.initial_price_spread, self.strike + self.initial_price_spread
        )
        self._step, self._payoff, self._exercise_step = 0, 0.0, None
        return self._observation(), {"kpi": self._kpi()}

    def step(self, action: Any) -> tuple[int, float, bool, bool, dict[str, Any]]:
        """Exercise (payoff, end) or hold (the price moves)."""
        if self._step is None or self._exercise_step is not None or self._step >= self.horizon:
            raise RuntimeError("call reset() before step() (the episode is over)")
        index = _check_action(self.action_space, action)
        if index == self.EXERCISE:
            reward = float(put_payoff(self._price, self.strike))
            self._payoff, self._exercise_step = reward, self._step
            terminated = True
        else:
            reward = 0.0
            up = self.np_random.random() < self.up_prob
            self._price = float(put_price_step(self._price, up, self.up_factor, self.down_factor))
            terminated = self._step + 1 == self.horizon
        self._step += 1
        return self._observation(), reward, terminated, False, {"kpi": self._kpi()}

    def render(self) -> str | None:
        """With ``render_mode="ansi"``: the step, the price and the payoff."""
        if self.render_mode is None:
            gym.logger.warn("You are calling render() without a render_mode; use 'ansi'.")
            return None
        return (
            f"step {self.step_index}/{self.horizon} | price {self._price:.2f} | payoff "
            f"{self._payoff:.2f}"
        )

    def _observation(self) -> int:
        return int(put_price_bins(self._price, self.price_low, self.price_high, self.n_price_bins))

    def _kpi(self) -> dict[str, float]:
        exercised = self._exercise_step is not None
        return {
            "payoff": self._payoff,
            "exercised": float(exercised),
            "exercise_step": float(self._exercise_step if exercised else self.horizon),
            "price": float(self._price),
        }
