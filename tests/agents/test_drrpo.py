"""DR-RPO: the TV and KL duals against brute-force inner minimisations, radius 0 as the
nominal backup, the mirror-descent step against its definition, the bonus, learning the
optimal (and the robust) policy on the simulated linear MDP, predict's step tracking,
save/load, bad arguments and a run through opsrl's experiment runner."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from scipy.optimize import linprog, minimize
from stable_baselines3.common.env_util import make_vec_env

from opsrl.agents.drrpo import (
    DRRPO,
    exploration_bonus,
    kl_robust_expectation,
    mirror_descent_update,
    regularized_value,
    robust_expectation,
    tv_robust_expectation,
)
from opsrl.envs.robust import AmericanPutEnv, SimulatedLinearMDPEnv

ENV_IDS = {
    "opsrl/SimulatedLinearMDP-v0": ("opsrl.envs.robust.env:SimulatedLinearMDPEnv", 3),
    "opsrl/AmericanPut-v0": ("opsrl.envs.robust.env:AmericanPutEnv", None),
}


@pytest.fixture(scope="module", autouse=True)
def registered_ids():
    """Register the env ids here until the shared ENV_TABLE has them."""
    for env_id, (entry_point, steps) in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=steps)


def _small_cases(seed: int, count: int):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        n = int(rng.integers(3, 5))
        yield rng.dirichlet(np.ones(n)), rng.uniform(0.0, 3.0, n), float(rng.choice([0.05, 0.3]))


# --------------------------------------------------------------------------------------------
# Robust duals vs brute force
# --------------------------------------------------------------------------------------------


def _tv_by_linear_program(mu: np.ndarray, values: np.ndarray, radius: float) -> float:
    """min_P P.V s.t. P in the simplex, (1/2) sum |P - mu| <= radius; variables (P, t)."""
    n = len(mu)
    eye = np.eye(n)
    a_ub = np.vstack(
        [
            np.hstack([eye, -eye]),  # P - mu <= t
            np.hstack([-eye, -eye]),  # mu - P <= t
            np.hstack([np.zeros(n), np.full(n, 0.5)])[None],  # (1/2) sum t <= radius
        ]
    )
    b_ub = np.concatenate([mu, -mu, [radius]])
    result = linprog(
        np.concatenate([values, np.zeros(n)]),
        A_ub=a_ub,
        b_ub=b_ub,
        A_eq=np.concatenate([np.ones(n), np.zeros(n)])[None],
        b_eq=[1.0],
        bounds=[(0, None)] * (2 * n),
    )
    assert result.success
    return float(result.fun)


def _kl_by_constrained_search(mu: np.ndarray, values: np.ndarray, radius: float) -> float:
    """min_P P.V s.t. P in the simplex, KL(P || mu) <= radius, by SLSQP from several starts."""

    def kl(p):
        p = np.maximum(p, 1e-300)
        return float(np.sum(p * np.log(p / mu)))

    rng = np.random.default_rng(0)
    best = np.inf
    for _ in range(8):
        start = 0.5 * mu + 0.5 * rng.dirichlet(np.ones(len(mu)))
        result = minimize(
            lambda p: p @ values,
            start,
            method="SLSQP",
            bounds=[(0.0, 1.0)] * len(mu),
            constraints=[
                {"type": "eq", "fun": lambda p: p.sum() - 1.0},
                {"type": "ineq", "fun": lambda p: radius - kl(p)},
            ],
            options={"ftol": 1e-12, "maxiter": 500},
        )
        if result.success and kl(result.x) <= radius + 1e-8:
            best = min(best, float(result.fun))
    return best


def test_tv_dual_matches_the_linear_program():
    for mu, values, radius in _small_cases(seed=0, count=6):
        dual = tv_robust_expectation(mu[None], values, radius)[0]
        assert dual == pytest.approx(_tv_by_linear_program(mu, values, radius), abs=1e-9)
    # a ball of radius >= 1 holds every distribution: the worst case is min V
    mu, values = np.array([0.2, 0.5, 0.3]), np.array([1.0, 2.0, 0.5])
    assert tv_robust_expectation(mu[None], values, 1.0)[0] == pytest.approx(0.5)


def test_kl_dual_matches_a_constrained_search():
    for mu, values, radius in _small_cases(seed=1, count=4):
        dual = kl_robust_expectation(mu[None], values, radius)[0]
        assert dual == pytest.approx(_kl_by_constrained_search(mu, values, radius), abs=1e-7)


def test_duals_are_vectorised_over_rows_with_their_own_radius():
    cases = list(_small_cases(seed=2, count=3))
    n = max(len(mu) for mu, _, _ in cases)
    values = np.linspace(0.0, 2.0, n)
    measures = np.zeros((len(cases), n))
    for row, (mu, _, _) in enumerate(cases):
        measures[row, : len(mu)] = mu
    radii = np.array([0.05, 0.2, 0.6])
    for dual in (tv_robust_expectation, kl_robust_expectation):
        together = dual(measures, values, radii)
        one_by_one = [dual(measures[i : i + 1], values, radii[i])[0] for i in range(3)]
        np.testing.assert_allclose(together, one_by_one, atol=1e-12)


@pytest.mark.parametrize("divergence", ["tv", "kl"])
def test_robust_expectation_is_pessimistic_and_monotone_in_the_radius(divergence):
    rng = np.random.default_rng(3)
    measures = rng.dirichlet(np.ones(6), size=5)
    values = rng.uniform(0.0, 3.0, 6)
    previous = measures @ values
    for radius in (0.01, 0.1, 0.5):
        robust = robust_expectation(measures, values, divergence, radius)
        assert np.all(robust <= previous + 1e-9)
        assert np.all(robust >= values.min() - 1e-9)
        previous = robust


@pytest.mark.parametrize("divergence", ["tv", "kl"])
def test_radius_zero_is_exactly_the_nominal_backup(divergence):
    rng = np.random.default_rng(4)
    # ridge estimates can be signed and unnormalised: radius 0 must still be mu . V exactly
    measures = rng.normal(size=(7, 5))
    values = rng.uniform(0.0, 3.0, 5)
    np.testing.assert_array_equal(
        robust_expectation(measures, values, divergence, 0.0), measures @ values
    )
    # per-row radii: only the rows with radius > 0 go through the dual
    radii = np.array([0.0, 0.3, 0.0, 0.3, 0.0, 0.0, 0.3])
    mixed = robust_expectation(np.abs(measures), values, divergence, radii)
    np.testing.assert_array_equal(mixed[radii == 0], (np.abs(measures) @ values)[radii == 0])


def test_rows_without_data_get_the_ridge_estimate_zero():
    measures = np.zeros((2, 4))
    measures[1] = [0.0, 0.5, 0.5, 0.0]
    values = np.array([0.0, 1.0, 2.0, 3.0])
    for divergence in ("tv", "kl"):
        robust = robust_expectation(measures, values, divergence, 0.2)
        assert robust[0] == 0.0 and 1.0 <= robust[1] < 1.5


# --------------------------------------------------------------------------------------------
# Policy step, regularised value, bonus
# --------------------------------------------------------------------------------------------


def test_mirror_descent_step_maximises_its_definition():
    rng = np.random.default_rng(5)
    n_actions, eta, kl_coef = 4, 0.7, 0.3
    old = rng.dirichlet(np.ones(n_actions))
    reference = rng.dirichlet(np.ones(n_actions))
    q = rng.uniform(0.0, 2.0, n_actions)
    closed_form = np.exp(mirror_descent_update(np.log(old), np.log(reference), q, eta, kl_coef))

    def negative_objective(logits):
        p = np.exp(logits - logits.max())
        p /= p.sum()
        kl_reference = np.sum(p * np.log(p / reference))
        kl_old = np.sum(p * np.log(p / old))
        return -(p @ q - kl_coef * kl_reference - kl_old / eta)

    result = minimize(negative_objective, np.zeros(n_actions), method="BFGS", tol=1e-12)
    numeric = np.exp(result.x - result.x.max())
    np.testing.assert_allclose(closed_form, numeric / numeric.sum(), atol=1e-6)
    np.testing.assert_allclose(closed_form.sum(), 1.0)


def test_mirror_descent_converges_to_the_regularised_softmax():
    reference = np.log(np.array([0.1, 0.2, 0.3, 0.4]))
    q = np.array([1.0, 0.5, 0.2, 0.9])
    log_policy = reference.copy()
    for _ in range(300):
        log_policy = mirror_descent_update(log_policy, reference, q, eta=1.0, kl_coef=0.5)
    target = np.exp(reference + q / 0.5)
    np.testing.assert_allclose(np.exp(log_policy), target / target.sum(), atol=1e-9)
    # kl_coef 0: plain mirror ascent on Q
    greedy = mirror_descent_update(reference, reference, q, eta=1.0, kl_coef=0.0)
    np.testing.assert_allclose(np.exp(greedy), np.exp(reference + q) / np.exp(reference + q).sum())


def test_regularized_value_is_expected_q_minus_lambda_kl():
    policy = np.array([[0.7, 0.2, 0.1], [1 / 3, 1 / 3, 1 / 3]])
    reference = np.full((2, 3), 1 / 3)
    q = np.array([[1.0, 0.0, 2.0], [0.5, 0.5, 0.5]])
    value = regularized_value(np.log(policy), np.log(reference), q, kl_coef=0.2)
    kl = np.sum(policy * np.log(policy / reference), axis=1)
    np.testing.assert_allclose(value, np.sum(policy * q, axis=1) - 0.2 * kl)


def test_bonus_forms():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(4, 4))
    inverse = np.linalg.inv(a @ a.T + np.eye(4))
    phi = rng.dirichlet(np.ones(4), size=3)
    norm = exploration_bonus(phi, inverse, 2.0, "norm")
    np.testing.assert_allclose(norm, 2.0 * np.sqrt(np.einsum("md,de,me->m", phi, inverse, phi)))
    coordinate = exploration_bonus(phi, inverse, 2.0, "coordinate")
    np.testing.assert_allclose(coordinate, 2.0 * phi @ np.sqrt(np.diag(inverse)))
    one_hot = np.eye(4)[[0, 2]]
    np.testing.assert_allclose(
        exploration_bonus(one_hot, inverse, 1.0, "norm"),
        exploration_bonus(one_hot, inverse, 1.0, "coordinate"),
    )


# --------------------------------------------------------------------------------------------
# The agent
# --------------------------------------------------------------------------------------------


def _linear_mdp_agent(seed: int = 0, **kwargs) -> DRRPO:
    venv = make_vec_env(SimulatedLinearMDPEnv, n_envs=2, seed=seed)
    return DRRPO("SoftmaxPolicy", venv, seed=seed, device="cpu", **kwargs)


def _exact_return(env: SimulatedLinearMDPEnv, actions: np.ndarray) -> float:
    transitions, rewards = env.transition_probabilities(), env.rewards()
    states = np.arange(5)
    value = np.zeros(5)
    for step in reversed(range(env.horizon)):
        chosen = actions[step]
        value = rewards[step, states, chosen] + transitions[states, chosen] @ value
    return float(value[0])


def _greedy_actions(model: DRRPO) -> np.ndarray:
    return model.policy.log_policy_array().argmax(axis=-1)


def test_backward_pass_with_radius_zero_is_the_nominal_ridge_backup():
    model = _linear_mdp_agent(features="env", radius=0.0, bonus="norm", bonus_scale=0.3)
    model.learn(300)
    log_policy = model.policy.log_policy_array()
    q, v = model.backward_pass(log_policy)
    # by hand: Lambda_h, theta_h + mu_h V_{h+1} + beta ||phi||, clipped, then V_h
    phi = SimulatedLinearMDPEnv().features().reshape(-1, 4)
    next_values = np.zeros(6)
    for step in reversed(range(3)):
        gram = model._gram[step] + np.eye(4)
        weights = np.linalg.solve(gram, model._reward_sum[step])
        weights += np.linalg.solve(gram, model._next_state_sum[step]) @ next_values
        bonus = 0.3 * np.sqrt(np.einsum("md,de,me->m", phi, np.linalg.inv(gram), phi))
        expected_q = np.clip(phi @ weights + bonus, 0.0, 3 - step).reshape(5, 16)
        np.testing.assert_allclose(q[step], expected_q, atol=1e-12)
        policy = np.exp(log_policy[step])
        expected_v = np.sum(policy * (expected_q - 0.01 * (log_policy[step] + np.log(16))), axis=1)
        np.testing.assert_allclose(v[step], expected_v, atol=1e-12)
        next_values = np.append(expected_v, 0.0)
    # a robust backup on the same data is never above the nominal one
    q_robust, _ = model.backward_pass(log_policy, radius=0.3)
    assert np.all(q_robust <= q + 1e-12) and np.any(q_robust < q - 1e-6)


def test_radius_zero_agents_are_identical_whatever_the_divergence():
    tv = _linear_mdp_agent(seed=3, divergence="tv", radius=0.0).learn(240)
    kl = _linear_mdp_agent(seed=3, divergence="kl", radius=0.0).learn(240)
    np.testing.assert_array_equal(tv.q_estimates, kl.q_estimates)
    np.testing.assert_array_equal(tv.policy.log_policy_array(), kl.policy.log_policy_array())


@pytest.mark.parametrize(("divergence", "radius"), [("tv", 0.0), ("tv", 0.1), ("kl", 0.1)])
def test_learns_the_optimal_policy_of_the_nominal_linear_mdp(divergence, radius):
    model = _linear_mdp_agent(features="env", divergence=divergence, radius=radius)
    model.learn(1500)
    actions = _greedy_actions(model)
    # p(a) as high as possible in x1, x2, x3 (action 15) is optimal and, at these radii,
    # robust-optimal too
    assert actions[0, 0] == 15 and actions[1, 1] == 15 and actions[2, 2] == 15
    env = SimulatedLinearMDPEnv()
    assert _exact_return(env, actions) == pytest.approx(1.624250125, abs=1e-9)
    uniform = np.mean([_exact_return(env, np.full((3, 5), a)) for a in range(16)])
    assert _exact_return(env, actions) > uniform + 0.2


def test_a_large_tv_radius_on_the_perturbed_coordinate_learns_the_robust_policy():
    # the reference code's DRPVI radius: only coordinate 4 (x1's move to x5) at step 0
    radius = np.zeros((3, 4))
    radius[0, 3] = 0.5
    model = _linear_mdp_agent(features="env", divergence="tv", radius=radius).learn(1500)
    actions = _greedy_actions(model)
    assert actions[0, 0] == 0  # p(a) = 0.1 in x1: worth less nominally, more under q >= 0.4
    nominal = _exact_return(SimulatedLinearMDPEnv(), actions)
    assert nominal == pytest.approx(0.2 + 0.9 * 0.999 * 1.24975, abs=1e-9)
    assert _exact_return(SimulatedLinearMDPEnv(failure_prob=0.8), actions) > 1.15


def test_predict_tracks_the_step_in_its_state():
    model = _linear_mdp_agent(features="env", radius=0.0).learn(300)
    log_policy = model.policy.log_policy_array()
    log_policy[:, 0, :] = -np.inf
    log_policy[0, 0, 3] = log_policy[1, 0, 7] = log_policy[2, 0, 11] = 0.0
    model.policy.set_log_policy(log_policy)
    action, state = model.predict(0, deterministic=True)
    assert action.shape == () and int(action) == 3 and state.tolist() == [1]
    action, state = model.predict(0, state=state, deterministic=True)
    assert int(action) == 7
    actions, state = model.predict(
        np.array([0, 0]), state=np.array([2, 2]), episode_start=np.array([False, True])
    )
    assert actions.tolist() == [11, 3] and state.tolist() == [3, 1]
    with pytest.raises(ValueError, match="horizon"):
        model.predict(0, state=np.array([3]))
    with pytest.raises(ValueError, match="state indices"):
        model.predict(7)


def test_save_load_round_trip_and_continued_learning(tmp_path):
    model = _linear_mdp_agent(divergence="kl", radius=0.2).learn(200)
    model.save(tmp_path / "drrpo.zip")
    loaded = DRRPO.load(tmp_path / "drrpo.zip", device="cpu")
    np.testing.assert_array_equal(loaded.policy.log_policy_array(), model.policy.log_policy_array())
    np.testing.assert_array_equal(loaded._next_state_sum, model._next_state_sum)
    assert loaded.divergence == "kl" and loaded.horizon == 3
    observations = np.arange(5)
    for step in range(3):
        before, _ = model.predict(observations, state=np.full(5, step), deterministic=True)
        after, _ = loaded.predict(observations, state=np.full(5, step), deterministic=True)
        np.testing.assert_array_equal(before, after)
    loaded.set_env(make_vec_env(SimulatedLinearMDPEnv, n_envs=2, seed=1))
    seen = loaded._gram.sum()
    loaded.learn(60)
    assert loaded._gram.sum() == seen + 60


def test_tabular_features_on_the_put_with_early_exercise():
    venv = make_vec_env(AmericanPutEnv, n_envs=2, seed=0, env_kwargs={"horizon": 6})
    model = DRRPO(
        "SoftmaxPolicy", venv, divergence="tv", radius=0.1, value_cap=40.0, seed=0, device="cpu"
    )
    assert model.n_features == 200 and model.horizon == 6
    model.learn(300)
    # exercising ends the episode: its rows lead to the end-of-episode outcome only
    _, measures, _ = model.ridge_estimates(0)
    exercise_rows = measures[1::2]
    assert np.all(exercise_rows[:, :-1] == 0) and np.any(exercise_rows[:, -1] > 0)
    assert np.all((model.q_estimates >= 0) & (model.q_estimates <= 40.0))


def test_callable_features_and_reference_policy():
    phi = SimulatedLinearMDPEnv().features()
    reference = np.full(16, 0.5 / 15)
    reference[15] = 0.5
    model = _linear_mdp_agent(features=lambda s, a: phi[s, a], reference_policy=reference)
    assert model.n_features == 4
    np.testing.assert_allclose(np.exp(model.policy.log_policy_array()[0, 0]), reference)
    np.testing.assert_array_equal(model.feature_matrix(), phi)
    tabular = _linear_mdp_agent()
    assert tabular.n_features == 80
    np.testing.assert_array_equal(tabular.feature_matrix().reshape(80, 80), np.eye(80))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"divergence": "chi2"}, "divergence"),
        ({"radius": -0.1}, "radius"),
        ({"radius": [0.1, 0.2]}, "radius"),
        ({"kl_coef": -1.0}, "kl_coef"),
        ({"eta": 0.0}, "eta"),
        ({"episodes_per_iteration": 0}, "episodes_per_iteration"),
        ({"features": "rbf"}, "features"),
        ({"features": lambda s, a: np.ones((2, 2))}, "features"),
        ({"ridge": 0.0}, "ridge"),
        ({"bonus_scale": -1.0}, "bonus_scale"),
        ({"bonus": "variance"}, "bonus"),
        ({"value_cap": 0.0}, "value_cap"),
        ({"horizon": 0}, "horizon"),
        ({"reference_policy": np.zeros(16)}, "reference_policy"),
        ({"reference_policy": np.ones(3)}, "reference_policy"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        _linear_mdp_agent(**kwargs)


def test_unsuitable_envs_are_refused():
    with pytest.raises(ValueError, match="Discrete observations"):
        DRRPO("SoftmaxPolicy", "CartPole-v1", horizon=5)
    with pytest.raises(ValueError, match="horizon"):
        DRRPO("SoftmaxPolicy", gym.make("FrozenLake-v1"))
    with pytest.raises(ValueError, match="horizon"):
        # FrozenLake episodes outlast 2 steps: the agent says so instead of mis-indexing
        DRRPO("SoftmaxPolicy", gym.make("FrozenLake-v1"), horizon=2, seed=0).learn(200)


def test_runs_through_the_experiment_runner(tmp_path, monkeypatch):
    import opsrl.registry as registry
    from opsrl.experiment import evaluate_run_dir
    from opsrl.spec import expand, spec_from_dict

    if "drrpo" not in registry.agent_names():
        entry = registry.AgentEntry(
            "drrpo", "opsrl.agents.drrpo:DRRPO", "DR-RPO", "opsrl", default_policy="SoftmaxPolicy"
        )
        monkeypatch.setattr(registry, "AGENT_TABLE", (*registry.AGENT_TABLE, entry))
    from opsrl.experiment import execute_run

    spec = spec_from_dict(
        {
            "name": "drrpo_smoke",
            "output_dir": str(tmp_path / "runs"),
            "envs": [{"id": "opsrl/SimulatedLinearMDP-v0"}],
            "agents": [{"name": "drrpo", "hyperparams": {"features": "env", "radius": 0.1}}],
            "seeds": [0],
            "timesteps": 240,
            "n_envs": 2,
            "eval": {"episodes": 5, "freq": 120},
        }
    )
    (run,) = expand(spec)
    outcome = execute_run(run, spec, tmp_path / "runs" / "drrpo_smoke")
    assert outcome.status == "finished", outcome.error
    run_dir = tmp_path / "runs" / "drrpo_smoke" / run.name
    progress = (run_dir / "progress.csv").read_text()
    assert "rollout/ep_rew_mean" in progress and "train/value_initial" in progress
    again = evaluate_run_dir(run_dir)
    assert len(again["episodes"]) == 5
    assert all(e["length"] == 3 for e in again["episodes"])
