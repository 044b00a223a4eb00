"""The numerical pieces of DR-RPO, in plain numpy: robust expectations through their duals,
the exploration bonus, the regularised value and the KL mirror-descent policy update.

Everything here is our reconstruction (see :mod:`opsrl.agents.drrpo`): the paper's code is
not public; the dual forms follow the group's public code (panxulab/Robust-Regularized-
Pessimistic-Value-Iteration, ``Simulated_Linear_MDP/algorithm.py``), restated on the
ridge-regression estimate of the nominal next-state measures.

A *measure* is a row ``mu_i`` over the n possible next outcomes (the states, plus the end of
the episode where the data have one): in a linear MDP the nominal transition is
``P(. | s, a) = sum_i phi_i(s, a) mu_i``, and ridge regression estimates
``mu_i ~ [Lambda^-1 sum_tau phi_tau e_{s'_tau}^T]_i`` (possibly signed, not normalised, for
non-tabular features). The robust expectation of a value vector V under coordinate i is
``inf { E_mu[V] : D(mu || mu_i) <= rho }``, computed through its dual.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DIVERGENCES",
    "exploration_bonus",
    "kl_robust_expectation",
    "mirror_descent_update",
    "regularized_value",
    "robust_expectation",
    "tv_robust_expectation",
]

#: the uncertainty sets DR-RPO supports: total variation and Kullback-Leibler balls
DIVERGENCES = ("tv", "kl")
_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0
#: upper bound on (rows x grid points x outcomes) evaluated at once in the KL search
_KL_BLOCK_ELEMENTS = 2_000_000


def _as_row_radius(radius: float | np.ndarray, n_rows: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(radius, dtype=np.float64), (n_rows,))


def tv_robust_expectation(
    measures: np.ndarray, values: np.ndarray, radius: float | np.ndarray
) -> np.ndarray:
    """Worst-case expectation of ``values`` over a total-variation ball, per measure (row).

    Dual form (TV = half the L1 distance)::

        inf_{TV(mu, mu_i) <= rho} E_mu[V] = max_{alpha in [min V, max V]}
                                            E_{mu_i}[min(V, alpha)] - rho (alpha - min V)

    The objective is piecewise linear in alpha with kinks at the values V_j, so the maximum
    sits on one of them: every kink is evaluated (sorted values and cumulative sums, O(d n)),
    which makes this exact -- no scalar search needed. ``min V`` is over all outcomes given
    (the adversary may move mass anywhere). The group's code searches alpha in [0, H] with
    Nelder-Mead; for values in [0, H] and a probability measure both give the same maximum.

    Args:
        measures: (d, n) estimated nominal measures mu_i (rows need not be normalised).
        values: (n,) the value of each outcome.
        radius: rho >= 0, a scalar or one per row (d,).

    Returns:
        (d,) the robust expectation of each row.
    """
    measures = np.atleast_2d(np.asarray(measures, dtype=np.float64))
    values = np.asarray(values, dtype=np.float64)
    rho = _as_row_radius(radius, len(measures))
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    sorted_mass = measures[:, order]
    # E_mu[min(V, v_k)] = sum_{j <= k} mu_j v_j + v_k sum_{j > k} mu_j, for every kink v_k
    mass_below = np.cumsum(sorted_mass, axis=1)
    value_below = np.cumsum(sorted_mass * sorted_values, axis=1)
    clipped_mean = value_below + sorted_values * (mass_below[:, -1:] - mass_below)
    objective = clipped_mean - rho[:, None] * (sorted_values - sorted_values[0])[None, :]
    return objective.max(axis=1)


def _kl_dual(
    measures: np.ndarray,
    shifted: np.ndarray,
    support_min: np.ndarray,
    cap: float,
    rho: np.ndarray,
    alpha: np.ndarray,
) -> np.ndarray:
    """KL dual objective -alpha log E_mu[exp(-V / alpha)] - alpha rho, for rows (b, n) and
    alphas (b, g), computed stably in log space; returns (b, g)."""
    # V - m >= 0 on each row's support (m: its smallest value there), so exp() <= 1
    weights = np.exp(-shifted[:, None, :] / alpha[:, :, None])
    inner = np.einsum("bn,bgn->bg", measures, weights)
    with np.errstate(divide="ignore"):
        log_inner = np.where(inner > 0, np.log(np.where(inner > 0, inner, 1.0)), -np.inf)
    log_z = -support_min[:, None] / alpha + log_inner
    # a ridge estimate can be sub-normalised or signed: keep the estimate of E_mu[V] at most
    # max V, as the group's code does with max(z, exp(-H / alpha))
    log_z = np.maximum(log_z, -cap / alpha)
    return -alpha * log_z - alpha * rho[:, None]


def kl_robust_expectation(
    measures: np.ndarray,
    values: np.ndarray,
    radius: float | np.ndarray,
    grid_points: int = 24,
    refine_iterations: int = 24,
) -> np.ndarray:
    """Worst-case expectation of ``values`` over a Kullback-Leibler ball, per measure (row).

    Dual form::

        inf_{KL(mu || mu_i) <= rho} E_mu[V] = sup_{alpha > 0}
                                              -alpha log E_{mu_i}[exp(-V / alpha)] - alpha rho

    For a probability measure the objective is concave in alpha and its maximiser is at most
    (max V - min V) / rho. The search, vectorised over rows, is a log-spaced grid of
    ``grid_points`` alphas over [1e-4 s, s (1 + 4 / rho)] (s = max V - min V) followed by
    ``refine_iterations`` golden-section steps in log(alpha) between the best grid point's
    neighbours. Rows with no mass (coordinates without data) get 0, the ridge estimate of
    the nominal expectation there; the estimate is kept at most max V (see :func:`_kl_dual`).

    Args:
        measures: (d, n) estimated nominal measures mu_i.
        values: (n,) the value of each outcome.
        radius: rho > 0, a scalar or one per row (d,).
        grid_points, refine_iterations: the search's resolution.

    Returns:
        (d,) the robust expectation of each row.
    """
    measures = np.atleast_2d(np.asarray(measures, dtype=np.float64))
    values = np.asarray(values, dtype=np.float64)
    rho = _as_row_radius(radius, len(measures))
    if np.any(rho <= 0):
        raise ValueError("radius must be > 0 for the KL dual (radius 0 is the nominal backup)")
    result = np.zeros(len(measures))
    rows = np.flatnonzero(np.any(measures != 0, axis=1))
    if rows.size == 0:
        return result
    cap = float(values.max())
    scale = max(float(values.max() - values.min()), 1e-6)
    # pack each row's support (next outcomes with mass) into k columns: a tabular row has
    # only a few next states, so this avoids exponentials of the whole outcome space
    support_all = measures[rows] != 0
    width = int(support_all.sum(axis=1).max())
    order = np.argsort(~support_all, axis=1, kind="stable")[:, :width]
    packed_mass = np.take_along_axis(measures[rows], order, axis=1)
    packed_values = values[order]
    block = max(1, _KL_BLOCK_ELEMENTS // (grid_points * width))
    for start in range(0, rows.size, block):
        index = rows[start : start + block]
        mu = packed_mass[start : start + block]
        row_values = packed_values[start : start + block]
        r = rho[index]
        support = mu != 0
        support_min = np.where(support, row_values, np.inf).min(axis=1)
        shifted = np.where(support, row_values - support_min[:, None], 0.0)
        low = np.full(len(index), np.log(1e-4 * scale))
        high = np.log(scale * (1.0 + 4.0 / r))
        fractions = np.linspace(0.0, 1.0, grid_points)
        log_alpha = low[:, None] + (high - low)[:, None] * fractions[None, :]
        objective = _kl_dual(mu, shifted, support_min, cap, r, np.exp(log_alpha))
        best = objective.argmax(axis=1)
        rows_b = np.arange(len(index))
        best_value = objective[rows_b, best]
        left = log_alpha[rows_b, np.maximum(best - 1, 0)]
        right = log_alpha[rows_b, np.minimum(best + 1, grid_points - 1)]
        # golden-section search for the maximum of a unimodal function of log(alpha)
        inner_left = right - _GOLDEN * (right - left)
        inner_right = left + _GOLDEN * (right - left)

        def evaluate(log_a: np.ndarray, mu=mu, shifted=shifted, m=support_min, r=r) -> np.ndarray:
            return _kl_dual(mu, shifted, m, cap, r, np.exp(log_a)[:, None])[:, 0]

        f_left, f_right = evaluate(inner_left), evaluate(inner_right)
        for _ in range(refine_iterations):
            # keep the better inner point; one new probe per row on the side that remains
            move_right = f_left < f_right
            left = np.where(move_right, inner_left, left)
            right = np.where(move_right, right, inner_right)
            probe = np.where(
                move_right, left + _GOLDEN * (right - left), right - _GOLDEN * (right - left)
            )
            f_probe = evaluate(probe)
            inner_left, inner_right, f_left, f_right = (
                np.where(move_right, inner_right, probe),
                np.where(move_right, probe, inner_left),
                np.where(move_right, f_right, f_probe),
                np.where(move_right, f_probe, f_left),
            )
        result[index] = np.maximum(best_value, np.maximum(f_left, f_right))
    return result


def robust_expectation(
    measures: np.ndarray, values: np.ndarray, divergence: str, radius: float | np.ndarray
) -> np.ndarray:
    """Robust expectation of ``values`` under each row of ``measures`` (TV or KL ball).

    Rows with radius 0 get exactly the nominal estimate ``measures @ values`` (the non-robust
    backup), whatever the divergence; the others go through the divergence's dual.
    """
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {DIVERGENCES}, got {divergence!r}")
    measures = np.atleast_2d(np.asarray(measures, dtype=np.float64))
    values = np.asarray(values, dtype=np.float64)
    rho = _as_row_radius(radius, len(measures))
    result = measures @ values
    robust = np.flatnonzero(rho > 0)
    if robust.size:
        dual = tv_robust_expectation if divergence == "tv" else kl_robust_expectation
        result[robust] = dual(measures[robust], values, rho[robust])
    return result


def exploration_bonus(
    features: np.ndarray, gram_inverse: np.ndarray, bonus_scale: float, kind: str
) -> np.ndarray:
    """UCB bonus of each feature row (m, d) under ``gram_inverse`` = Lambda^-1 (d, d), or its
    diagonal (d,) when Lambda is diagonal.

    ``kind="norm"``: beta ||phi||_{Lambda^-1} = beta sqrt(phi^T Lambda^-1 phi) (LSVI-UCB);
    ``kind="coordinate"``: beta sum_i phi_i sqrt([Lambda^-1]_ii) (the d-rectangular form of
    DR-LSVI-UCB). Both coincide for one-hot features.
    """
    diagonal = gram_inverse if gram_inverse.ndim == 1 else np.diagonal(gram_inverse)
    if kind == "coordinate":
        return bonus_scale * features @ np.sqrt(np.maximum(diagonal, 0.0))
    if kind == "norm":
        if gram_inverse.ndim == 1:
            quadratic = (features**2) @ gram_inverse
        else:
            quadratic = np.einsum("md,de,me->m", features, gram_inverse, features)
        return bonus_scale * np.sqrt(np.maximum(quadratic, 0.0))
    raise ValueError(f"bonus must be 'norm' or 'coordinate', got {kind!r}")


def regularized_value(
    log_policy: np.ndarray, log_reference: np.ndarray, q_values: np.ndarray, kl_coef: float
) -> np.ndarray:
    """``V(s) = sum_a pi(a|s) [Q(s, a) - lambda log(pi(a|s) / pi_ref(a|s))]`` over the last
    axis (actions): the expected Q minus lambda times KL(pi || pi_ref)."""
    policy = np.exp(log_policy)
    return np.sum(policy * (q_values - kl_coef * (log_policy - log_reference)), axis=-1)


def mirror_descent_update(
    log_policy: np.ndarray,
    log_reference: np.ndarray,
    q_values: np.ndarray,
    eta: float,
    kl_coef: float,
) -> np.ndarray:
    """One KL mirror-descent step on the regularised objective, in closed form.

    ``pi_new = argmax_pi <pi, Q> - lambda KL(pi || pi_ref) - (1 / eta) KL(pi || pi_old)``
    per state, i.e. ``pi_new ∝ pi_old^{1/(1+eta lambda)} pi_ref^{eta lambda/(1+eta lambda)}
    exp(eta Q / (1 + eta lambda))``. Works on log-probabilities, actions on the last axis;
    returns normalised log-probabilities.
    """
    logits = (log_policy + eta * kl_coef * log_reference + eta * q_values) / (1.0 + eta * kl_coef)
    top = logits.max(axis=-1, keepdims=True)
    return logits - (top + np.log(np.sum(np.exp(logits - top), axis=-1, keepdims=True)))
