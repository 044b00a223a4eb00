"""Plain-numpy simulators of the two robust-RL test domains (no Gymnasium here).

Both are reconstructions from the public code of Pan Xu's group (panxulab/Robust-Regularized-
Pessimistic-Value-Iteration: ``Simulated_Linear_MDP/env.py`` and ``American_put_opt/env.py``),
rewritten as transition tables and vectorised functions:

- the simulated linear MDP: five states x1..x5, 16 actions in {-1, 1}^4, d = 4 features on
  the simplex, horizon 3, x4 an absorbing failure state and x5 an absorbing rewarding state;
- the American put option: a price that moves up or down by a fixed factor each step, hold
  or exercise, payoff ``max(strike - price, 0)`` at exercise, a hat-function (linear
  interpolation) feature map over price.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = [
    "LINEAR_MDP_FAILURE_STATE",
    "LINEAR_MDP_GOAL_STATE",
    "LINEAR_MDP_HORIZON",
    "LINEAR_MDP_N_FEATURES",
    "LINEAR_MDP_STATES",
    "hat_features",
    "linear_mdp_actions",
    "linear_mdp_features",
    "linear_mdp_rewards",
    "linear_mdp_transitions",
    "put_payoff",
    "put_price_bins",
    "put_price_step",
]

# --------------------------------------------------------------------------------------------
# Simulated linear MDP
# --------------------------------------------------------------------------------------------

#: state names, observation index i is ``LINEAR_MDP_STATES[i]``
LINEAR_MDP_STATES = ("x1", "x2", "x3", "x4", "x5")
#: absorbing state with reward 0 (the "fail state" of the reference code)
LINEAR_MDP_FAILURE_STATE = 3
#: absorbing state with reward 1 per step
LINEAR_MDP_GOAL_STATE = 4
LINEAR_MDP_HORIZON = 3
LINEAR_MDP_N_FEATURES = 4
#: reward parameters theta_h per step h = 0, 1, 2: r_h(s, a) = <phi(s, a), theta_h>
_LINEAR_MDP_THETA = np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0]])


def linear_mdp_actions(n_action_dims: int = 4) -> np.ndarray:
    """The actions as vectors in {-1, 1}^n, shape (2^n, n), in ``itertools.product`` order
    (action index k is row k, as in the reference code's action list)."""
    return np.array(list(itertools.product((-1.0, 1.0), repeat=n_action_dims)))


def linear_mdp_features(delta: float, xi_norm: float) -> np.ndarray:
    """phi(s, a) for every state and action, shape (5, 16, 4), each row on the simplex.

    With xi = xi_norm * (1, 1, 1, 1) / 4 and p(a) = delta + <xi, a> in [delta - xi_norm,
    delta + xi_norm]: phi(x_i, a) = (1 - p(a)) e_i + p(a) e_4 for x1, x2, x3; phi(x4, .) = e_3;
    phi(x5, .) = e_4 (coordinates numbered from 1).
    """
    actions = linear_mdp_actions(LINEAR_MDP_N_FEATURES)
    xi = xi_norm * np.ones(LINEAR_MDP_N_FEATURES) / LINEAR_MDP_N_FEATURES
    p = delta + actions @ xi
    n_actions = len(actions)
    phi = np.zeros((len(LINEAR_MDP_STATES), n_actions, LINEAR_MDP_N_FEATURES))
    for state in range(3):
        phi[state, :, state] = 1.0 - p
        phi[state, :, 3] = p
    phi[LINEAR_MDP_FAILURE_STATE, :, 2] = 1.0
    phi[LINEAR_MDP_GOAL_STATE, :, 3] = 1.0
    return phi


def linear_mdp_transitions(
    features: np.ndarray, failure_prob: float, leak_prob: float
) -> np.ndarray:
    """Next-state probabilities P(s' | s, a), shape (5, 16, 5), from the features.

    - x1: to x2 with phi_1 (1 - leak), to x4 with phi_1 leak + q phi_4, to x5 with (1 - q) phi_4;
    - x2: to x3 with phi_2 (1 - leak), to x4 with phi_2 leak, to x5 with phi_4;
    - x3: to x4 with phi_3, to x5 with phi_4; x4 and x5 are absorbing.

    q = ``failure_prob`` is the test-time perturbation: the share of x1's transition to x5 that
    fails into x4. The reference code's time-indexed rules give the same probabilities on
    every reachable (step, state) pair (x1 only at step 0, x2 at step 1, x3 at step 2).
    """
    phi = features
    n_states, n_actions, _ = phi.shape
    p = np.zeros((n_states, n_actions, n_states))
    x1, x2, x3, x4, x5 = range(5)
    p[x1, :, x2] = phi[x1, :, 0] * (1.0 - leak_prob)
    p[x1, :, x4] = phi[x1, :, 0] * leak_prob + failure_prob * phi[x1, :, 3]
    p[x1, :, x5] = (1.0 - failure_prob) * phi[x1, :, 3]
    p[x2, :, x3] = phi[x2, :, 1] * (1.0 - leak_prob)
    p[x2, :, x4] = phi[x2, :, 1] * leak_prob
    p[x2, :, x5] = phi[x2, :, 3]
    p[x3, :, x4] = phi[x3, :, 2]
    p[x3, :, x5] = phi[x3, :, 3]
    p[x4, :, x4] = 1.0
    p[x5, :, x5] = 1.0
    return p


def linear_mdp_rewards(features: np.ndarray, step: int) -> np.ndarray:
    """r_h(s, a) = <phi(s, a), theta_h>, shape (5, 16): 0 at step 0, phi_4 at steps 1 and 2."""
    return features @ _LINEAR_MDP_THETA[step]


# --------------------------------------------------------------------------------------------
# American put option
# --------------------------------------------------------------------------------------------


def put_price_step(
    price: np.ndarray | float, up: np.ndarray | bool, up_factor: float, down_factor: float
) -> np.ndarray:
    """Next price: ``price * up_factor`` where ``up`` else ``price * down_factor``."""
    return np.asarray(price, dtype=np.float64) * np.where(up, up_factor, down_factor)


def put_payoff(price: np.ndarray | float, strike: float) -> np.ndarray:
    """Payoff of exercising the put at ``price``: ``max(strike - price, 0)``."""
    return np.maximum(strike - np.asarray(price, dtype=np.float64), 0.0)


def put_price_bins(
    price: np.ndarray | float, price_low: float, price_high: float, n_bins: int
) -> np.ndarray:
    """Index of ``price`` on ``n_bins`` equal-width bins over [price_low, price_high]; prices
    outside the range fall in the end bins."""
    width = (price_high - price_low) / n_bins
    index = np.floor((np.asarray(price, dtype=np.float64) - price_low) / width)
    return np.clip(index, 0, n_bins - 1).astype(np.int64)


def hat_features(price: np.ndarray | float, anchors: np.ndarray) -> np.ndarray:
    """Hat-function (linear interpolation) weights of ``price`` on equally spaced ``anchors``,
    shape ``price.shape + (len(anchors),)``.

    ``max(0, 1 - |price - anchor_i| / spacing)``, the reference code's features, with the price
    clamped into [anchors[0], anchors[-1]] first so that the weights always sum to 1 (a point
    of the simplex, as the d-rectangular model needs).
    """
    anchors = np.asarray(anchors, dtype=np.float64)
    spacing = anchors[1] - anchors[0]
    clamped = np.clip(np.asarray(price, dtype=np.float64), anchors[0], anchors[-1])
    return np.maximum(0.0, 1.0 - np.abs(clamped[..., None] - anchors) / spacing)
