"""Submodular-reward envs (SubPO): set functions, the grid env, the marginal-gain wrapper."""

import itertools
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from opsrl.envs.submodular import (
    DEFAULT_GROUP_SIZES,
    DEFAULT_QUOTAS,
    DOptimalDesign,
    ExperimentDesignEnv,
    InformativePathEnv,
    ItemCollection,
    ItemCollectionEnv,
    MarginalGainReward,
    SubmodularGridEnv,
    WeightedCoverage,
    bimodal_weights,
    gp_weights,
    grid_points,
    make_set_function,
    matern52,
    random_item_types,
    sample_gp_grid,
)
from opsrl.envs.submodular.sim import move_table

ENV_IDS = {
    "opsrl/Coverage-v0": "opsrl.envs.submodular.env:SubmodularGridEnv",
    "opsrl/ItemCollection-v0": "opsrl.envs.submodular.env:ItemCollectionEnv",
    "opsrl/ExperimentDesign-v0": "opsrl.envs.submodular.env:ExperimentDesignEnv",
    "opsrl/InformativePath-v0": "opsrl.envs.submodular.env:InformativePathEnv",
}
OBJECTIVES = ("coverage", "items", "d_optimal")


@pytest.fixture(scope="module", autouse=True)
def registered_ids():
    for env_id, entry_point in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point)


# ----------------------------------------------------------------------------- set functions
SMALL = (7, 8)


def small_functions():
    """Each set function on a small grid, with its non-default features switched on."""
    rng = np.random.default_rng(3)
    n = SMALL[0] * SMALL[1]
    return {
        "coverage_gp_r1": WeightedCoverage(gp_weights(rng, SMALL, 2.0), radius=1),
        "coverage_bimodal_r2": WeightedCoverage(bimodal_weights(SMALL), radius=2),
        "items": ItemCollection(random_item_types(rng, n, (6, 5, 9, 3)), quotas=(2, 0, 4, 3)),
        "d_optimal": DOptimalDesign(grid_points(SMALL), lengthscale=2.0, noise=0.05),
        "d_optimal_observed_amplitude": DOptimalDesign(
            grid_points(SMALL),
            lengthscale=3.0,
            noise=0.01,
            amplitude=np.sqrt(gp_weights(rng, SMALL, 3.0)).ravel(),
            observed=[0, 17, 40],
        ),
    }


FUNCTION_NAMES = list(small_functions())


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_monotone_and_submodular_on_random_sets(name):
    function = small_functions()[name]
    rng = np.random.default_rng(11)
    n = function.n_elements
    for _ in range(40):
        big = rng.choice(n, size=rng.integers(1, 20), replace=False)
        small = big[rng.random(big.size) < 0.5]
        outside = np.setdiff1d(np.arange(n), big)
        x = int(rng.choice(outside))
        f_small, f_big = function.value(small), function.value(big)
        assert f_small <= f_big + 1e-9
        gain_small = function.value([*small, x]) - f_small
        gain_big = function.value([*big, x]) - f_big
        assert gain_small >= gain_big - 1e-9
        assert gain_big >= -1e-9
    assert function.value([]) == 0.0


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_incremental_gains_equal_value_differences(name):
    function = small_functions()[name]
    rng = np.random.default_rng(5)
    for _ in range(3):
        # a walk-like sequence with repeats, longer than the design state's initial capacity
        sequence = rng.integers(function.n_elements, size=80).tolist()
        sequence += sequence[:10]
        acc = function.state(capacity=4) if name.startswith("d_optimal") else function.state()
        for i, element in enumerate(sequence):
            expected = function.value(sequence[: i + 1]) - function.value(sequence[:i])
            assert function.gain(acc, element) == pytest.approx(expected, abs=1e-9)
            before = acc.value
            assert function.add(acc, element) == pytest.approx(expected, abs=1e-9)
            assert acc.value == pytest.approx(before + expected, abs=1e-12)
        assert acc.value == pytest.approx(function.value(sequence), abs=1e-8)
    singles = np.array([function.value([e]) for e in range(function.n_elements)])
    np.testing.assert_allclose(function.singleton_values(), singles, atol=1e-12)


def test_gain_leaves_the_accumulator_unchanged():
    for function in small_functions().values():
        acc = function.state()
        function.add(acc, 3)
        copy = function.copy_state(acc)
        function.gain(acc, 4)
        function.gain(acc, 3)
        assert acc.value == copy.value
        assert function.add(acc, 4) == function.add(copy, 4)


def test_coverage_by_hand():
    weights = np.arange(12, dtype=float).reshape(3, 4)  # cell c has weight c
    coverage = WeightedCoverage(weights, radius=1)
    # the corner (0, 0) covers cells 0, 1, 4, 5; (2, 3) covers 6, 7, 10, 11
    assert coverage.value([0]) == 0 + 1 + 4 + 5
    assert coverage.value([0, 11]) == 10 + 6 + 7 + 10 + 11
    assert coverage.value([5]) == sum([0, 1, 2, 4, 5, 6, 8, 9, 10])
    assert coverage.value([5, 5, 0]) == coverage.value([5])  # repeats and covered cells
    assert WeightedCoverage(weights, radius=0).value([3, 7, 3]) == 10


def test_items_by_hand():
    item_types = np.array([0, 0, 0, 1, -1, 1, 2])
    items = ItemCollection(item_types, quotas=[2, 5, 0])
    assert items.value([0, 1, 2]) == 2  # quota of type 0
    assert items.value([3, 5, 4]) == 2
    assert items.value([6]) == 0  # quota 0
    assert items.value(range(7)) == 4
    np.testing.assert_array_equal(items.group_sizes, [3, 2, 1])


def test_d_optimal_is_the_information_gain():
    points = grid_points((4, 5))
    design = DOptimalDesign(points, lengthscale=1.5, noise=0.1)
    cells = [0, 3, 7, 19]
    diff = points[cells][:, None, :] - points[cells][None, :, :]
    kernel = matern52(np.linalg.norm(diff, axis=-1), 1.5)
    expected = 0.5 * np.linalg.slogdet(np.eye(4) + kernel / 0.1)[1]
    assert design.value(cells) == pytest.approx(expected, rel=1e-12)
    # earlier measurements: I(f; y_V | y_O) = I(f; y_{V+O}) - I(f; y_O) (chain rule)
    conditioned = DOptimalDesign(points, lengthscale=1.5, noise=0.1, observed=[2, 12])
    chain = design.value(cells + [2, 12]) - design.value([2, 12])
    assert conditioned.value(cells) == pytest.approx(chain, rel=1e-9)
    assert 0 < conditioned.value(cells) < design.value(cells)


def test_gp_sample_has_the_matern_covariance():
    rng = np.random.default_rng(0)
    shape, lengthscale = (3, 4), 2.0
    samples = sample_gp_grid(rng, shape, lengthscale, n_samples=2000).reshape(2000, -1)
    points = grid_points(shape)
    distance = np.linalg.norm(points[:, None] - points[None], axis=-1)
    empirical = samples.T @ samples / samples.shape[0]
    kernel = matern52(distance, lengthscale)
    np.testing.assert_allclose(empirical, kernel, atol=0.15)
    # averaged over the pairs at each distance the estimate is sharp enough to pin the
    # lengthscale (k(1) = 0.83 here, 0.95 for lengthscale 4)
    for value in np.unique(distance):
        pairs = distance == value
        assert empirical[pairs].mean() == pytest.approx(kernel[pairs][0], abs=0.05)


def test_weight_makers():
    weights = gp_weights(np.random.default_rng(1), (30, 30), 5.0)
    assert weights.shape == (30, 30) and weights.min() == 0.0 and weights.max() == 1.0
    np.testing.assert_array_equal(weights, gp_weights(np.random.default_rng(1), (30, 30), 5.0))
    assert not np.array_equal(weights, gp_weights(np.random.default_rng(2), (30, 30), 5.0))
    bimodal = bimodal_weights((30, 30))
    # high at the top-left and bottom-right corners, low at the other two
    assert bimodal[0, 0] == bimodal[-1, -1] == pytest.approx(1 / (1 + np.exp(-1)))
    assert bimodal[0, -1] == bimodal[-1, 0] == pytest.approx(1 / (1 + np.exp(1)))
    item_types = random_item_types(np.random.default_rng(0), 900, DEFAULT_GROUP_SIZES)
    np.testing.assert_array_equal(
        np.bincount(item_types[item_types >= 0]), np.array(DEFAULT_GROUP_SIZES)
    )


def test_move_table_keeps_the_walker_on_the_grid():
    table = move_table(3, 4)
    assert table[0].tolist() == [0, 0, 4, 0, 1]  # stay, up (blocked), down, left (blocked)
    assert table[11].tolist() == [11, 7, 11, 10, 11]


# ----------------------------------------------------------------------------- the env
def random_episode(env, seed):
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    start_value = info["kpi"]["F"]
    rewards, done = [], False
    while not done:
        obs, reward, done, truncated, info = env.step(int(rng.integers(5)))
        assert not truncated
        rewards.append(reward)
    return start_value, rewards, info


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_marginal_rewards_sum_to_F_of_the_trajectory(objective):
    env = SubmodularGridEnv(objective=objective)
    function = env.set_function
    for seed in range(4):
        start_value, rewards, info = random_episode(env, seed)
        trajectory = env.trajectory
        assert len(rewards) == env.horizon == len(trajectory) - 1
        assert start_value == pytest.approx(function.value([env.start_cell]))
        assert info["kpi"]["F"] == pytest.approx(function.value(trajectory), abs=1e-9)
        assert sum(rewards) + start_value == pytest.approx(function.value(trajectory), abs=1e-9)
        assert info["kpi"]["cells_visited"] == len(set(trajectory))
        assert info["kpi"]["steps"] == env.horizon


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_modular_reward_counts_repeats(objective):
    env = SubmodularGridEnv(objective=objective, reward="modular", horizon=12)
    env.reset(seed=0)
    single = env.singleton_values[env.start_cell]
    rewards = [env.step(0)[1] for _ in range(12)]
    assert rewards == [pytest.approx(single)] * 12
    assert sum(rewards) == pytest.approx(12 * env.set_function.value([env.start_cell]))
    # the marginal reward of the same episode is 0 after the start
    marginal = SubmodularGridEnv(objective=objective, horizon=12)
    marginal.reset(seed=0)
    assert [marginal.step(0)[1] for _ in range(12)] == [0.0] * 12
    # moving: the reward is F({s}) of the cell entered, whatever was visited before
    env.reset()
    for action in (4, 3, 4, 2, 1):
        _, reward, _, _, info = env.step(action)
        assert reward == pytest.approx(env.set_function.value([info["cell"]]))


def covering_path(rows, cols, start, horizon):
    """Boustrophedon sweep from the start: rows of 3 apart, so coverage footprints tile."""
    actions, row = [], start // cols
    col, direction = start % cols, 4
    while len(actions) < horizon:
        end = cols - 1 if direction == 4 else 0
        actions += [direction] * abs(end - col)
        col = end
        actions += [2] * min(3, rows - 1 - row)
        row = min(row + 3, rows - 1)
        direction = 3 if direction == 4 else 4
    return actions[:horizon]


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_covering_path_beats_staying_put(objective):
    env = SubmodularGridEnv(objective=objective)
    returns = {}
    for name, actions in (
        ("stay", [0] * env.horizon),
        ("sweep", covering_path(env.rows, env.cols, env.start_cell, env.horizon)),
    ):
        env.reset(seed=0)
        returns[name] = sum(env.step(a)[1] for a in actions)
    assert returns["stay"] == 0.0
    assert returns["sweep"] > 0.0
    if objective == "coverage":
        # every sweep step covers 3 new cells of weight >= 0: more than a random walk gets
        _, random_rewards, _ = random_episode(env, 0)
        assert returns["sweep"] > sum(random_rewards)


def test_observations():
    env = SubmodularGridEnv(size=(5, 6), horizon=7, start_cell=0, observation="visited")
    obs, info = env.reset(seed=0)
    assert obs.shape == (3 + 30,) and obs.dtype == np.float32
    np.testing.assert_allclose(obs[:3], [0.0, 0.0, 0.0])
    assert obs[3:].sum() == 1 and obs[3 + 0] == 1 and info["cell"] == 0
    for action in (1, 3, 4, 4, 2):  # two blocked moves, then (0, 2) and (1, 2)
        obs, *_ = env.step(action)
    assert env.trajectory == [0, 0, 0, 1, 2, 8]
    np.testing.assert_allclose(obs[:3], [1 / 4, 2 / 5, 5 / 7], rtol=1e-6)
    assert set(np.flatnonzero(obs[3:])) == {0, 1, 2, 8}
    previous = obs.copy()
    env.step(0)
    np.testing.assert_array_equal(previous[3:], obs[3:])  # returned arrays are not reused
    plain = SubmodularGridEnv(size=(5, 6), horizon=7, start_cell=0)
    assert plain.observation_space.shape == (3,)


def test_episode_end_and_misuse():
    env = SubmodularGridEnv(horizon=3)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset()
    assert [env.step(4)[2] for _ in range(3)] == [False, False, True]
    with pytest.raises(RuntimeError, match="ended"):
        env.step(0)
    env.reset()
    for bad in (5, -1, 1.5, "up", None):
        with pytest.raises(ValueError, match="action"):
            env.step(bad)


CHECKED = [
    (cls, observation)
    for cls, observation in itertools.product(
        (SubmodularGridEnv, ItemCollectionEnv, ExperimentDesignEnv), ("state_time", "visited")
    )
]


@pytest.mark.parametrize(("cls", "observation"), CHECKED)
def test_env_checkers_pass_without_warnings(cls, observation):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = cls(observation=observation, horizon=10)
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True)


@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_registered_ids_check_and_are_deterministic(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make(env_id)
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped, warn=True)

    def rollout(seed):
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        trace = [obs]
        for _ in range(30):
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            trace += [obs, np.array(reward)]
        return trace

    first, second, other = rollout(7), rollout(7), rollout(8)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_instance_seed_fixes_the_instance():
    first, again = SubmodularGridEnv(instance_seed=3), SubmodularGridEnv(instance_seed=3)
    np.testing.assert_array_equal(first.set_function.weights, again.set_function.weights)
    other = SubmodularGridEnv(instance_seed=4)
    assert not np.array_equal(first.set_function.weights, other.set_function.weights)
    items = ItemCollectionEnv(instance_seed=3).set_function
    np.testing.assert_array_equal(items.group_sizes, DEFAULT_GROUP_SIZES)
    np.testing.assert_array_equal(items.quotas, DEFAULT_QUOTAS)
    design = ExperimentDesignEnv(instance_seed=3).set_function
    assert design.observed.size == 5
    assert not np.array_equal(
        design.observed, ExperimentDesignEnv(instance_seed=4).set_function.observed
    )


def test_defaults_follow_the_spec():
    env = SubmodularGridEnv()
    assert (env.rows, env.cols, env.horizon, env.start_cell) == (30, 30, 40, 34)
    assert env.action_space.n == 5
    path = InformativePathEnv()
    assert (path.rows, path.cols, path.horizon) == (60, 60, 100)
    assert path.set_function.observed.size == 0
    assert path.set_function.amplitude.min() < 0.5 < path.set_function.amplitude.max()


def test_objective_options_and_custom_set_function():
    env = SubmodularGridEnv(objective_options={"weights": "constant", "radius": 0}, horizon=5)
    env.reset()
    assert sum(env.step(4)[1] for _ in range(5)) == 5.0  # one new cell of weight 1 per step
    custom = WeightedCoverage(np.ones((4, 4)), radius=1)
    env = SubmodularGridEnv(objective=custom, size=(4, 4), horizon=3, start_cell=0)
    env.reset()
    assert env.step(2)[1] == 2.0  # from (0, 0) to (1, 0): row 2, cols 0-1 are new
    assert env.objective == "WeightedCoverage"


def test_render_ansi():
    env = SubmodularGridEnv(size=(3, 4), horizon=2, start_cell=0, render_mode="ansi")
    env.reset()
    env.step(4)
    assert env.render().splitlines()[1:] == ["#@..", "....", "...."]


BAD_ARGUMENTS = [
    ({"objective": "entropy"}, "objective"),
    ({"size": (0, 5)}, "size"),
    ({"size": 30}, "size"),
    ({"horizon": 0}, "horizon"),
    ({"horizon": 2.5}, "horizon"),
    ({"start_cell": 900}, "start_cell"),
    ({"reward": "sum"}, "reward"),
    ({"observation": "pixels"}, "observation"),
    ({"instance_seed": -1}, "instance_seed"),
    ({"render_mode": "human"}, "render_mode"),
    ({"objective_options": {"radius": -1}}, "radius"),
    ({"objective_options": {"weights": "linear"}}, "weights"),
    ({"objective_options": {"weights": np.ones((3, 3))}}, "weights"),
    ({"objective_options": {"quotas": (1, 2)}}, "objective_options"),
    (
        {"objective": "items", "objective_options": {"group_sizes": (1000,), "quotas": (1,)}},
        "group_sizes",
    ),
    ({"objective": "d_optimal", "objective_options": {"noise": 0.0}}, "noise"),
    ({"objective": "d_optimal", "objective_options": {"n_observed": 2000}}, "n_observed"),
    ({"objective": WeightedCoverage(np.ones((2, 2)))}, "objective"),
    (
        {"objective": WeightedCoverage(np.ones((30, 30))), "objective_options": {}},
        "objective_options",
    ),
]


@pytest.mark.parametrize(("kwargs", "name"), BAD_ARGUMENTS)
def test_bad_arguments_raise_naming_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SubmodularGridEnv(**kwargs)


def test_bad_set_function_arguments():
    with pytest.raises(ValueError, match="non-negative"):
        WeightedCoverage(-np.ones((2, 2)))
    with pytest.raises(ValueError, match="item_types"):
        ItemCollection(np.array([0, 3]), quotas=[1, 1])
    with pytest.raises(ValueError, match="lengthscale"):
        DOptimalDesign(grid_points((2, 2)), lengthscale=0.0)
    with pytest.raises(ValueError, match="elements"):
        WeightedCoverage(np.ones((2, 2))).value([4])
    with pytest.raises(ValueError, match="objective_options"):
        make_set_function("coverage", (3, 3), options={"noise": 1.0})


# ----------------------------------------------------------------------------- the wrapper
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_wrapper_turns_modular_back_into_marginal_rewards(objective):
    marginal = SubmodularGridEnv(objective=objective)
    wrapped = MarginalGainReward(
        SubmodularGridEnv(objective=objective, reward="modular"), marginal.set_function
    )
    rng = np.random.default_rng(2)
    for _ in range(2):
        marginal.reset(seed=0)
        _, info = wrapped.reset(seed=0)
        assert info["set_value"] == marginal.value
        for action in rng.integers(5, size=marginal.horizon).tolist():
            obs_m, reward_m, term_m, _, _ = marginal.step(action)
            obs_w, reward_w, term_w, _, info = wrapped.step(action)
            assert reward_w == reward_m  # exactly: same function, same order of additions
            assert info["original_reward"] == marginal.singleton_values[marginal.cell]
            np.testing.assert_array_equal(obs_w, obs_m)
            assert term_w == term_m
        assert wrapped.set_value == marginal.value


def test_wrapper_history_visited_on_the_grid():
    env = SubmodularGridEnv(size=(4, 5), horizon=6, start_cell=0, reward="modular")
    # the env has no spec (no max_episode_steps): the horizon is passed
    wrapped = MarginalGainReward(env, env.set_function, history="visited", horizon=6)
    obs, _ = wrapped.reset(seed=0)
    assert obs.shape == (3 + 1 + 20,)
    obs, *_ = wrapped.step(4)
    assert obs[3] == pytest.approx(1 / 6)
    assert set(np.flatnonzero(obs[4:])) == {0, 1}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(wrapped.unwrapped, skip_render_check=True)
        warnings.filterwarnings("ignore", message=".*different from the unwrapped")
        gym_check_env(wrapped, skip_render_check=True)
        sb3_check_env(wrapped, warn=True)


def frozen_lake_distinct_rows(elements):
    """A set function of FrozenLake states: the number of distinct rows visited."""
    return float(len({state // 4 for state in elements}))


def test_wrapper_on_frozen_lake():
    # a SetFunction over the 16 states: coverage with radius 0 (one weight per state)
    weights = np.arange(16, dtype=float).reshape(4, 4) / 15
    wrapped = MarginalGainReward(
        gym.make("FrozenLake-v1", is_slippery=True),
        WeightedCoverage(weights, radius=0),
        history="time",
    )
    assert wrapped.horizon == 100  # FrozenLake-v1's max_episode_steps
    assert wrapped.observation_space.shape == (17,)
    rng = np.random.default_rng(0)
    for seed in range(5):
        obs, _ = wrapped.reset(seed=seed)
        visited, total, done = {0}, 0.0, False
        assert obs[:16].tolist() == [1.0] + [0.0] * 15
        while not done:
            obs, reward, terminated, truncated, info = wrapped.step(int(rng.integers(4)))
            state = int(np.argmax(obs[:16]))
            gain = weights.ravel()[state] if state not in visited else 0.0
            assert reward == pytest.approx(gain)
            visited.add(state)
            total += reward
            done = terminated or truncated
        assert total == pytest.approx(weights.ravel()[sorted(visited)].sum())
        assert info["set_value"] == pytest.approx(total)
    # a plain callable on sets, observations left as they are
    plain = MarginalGainReward(gym.make("FrozenLake-v1"), frozen_lake_distinct_rows)
    obs, info = plain.reset(seed=0)
    assert obs == 0 and info["set_value"] == 1.0
    _, reward, *_ = plain.step(1)  # down, unless it slips
    assert reward in (0.0, 1.0)


def test_wrapper_bad_arguments():
    env = SubmodularGridEnv(horizon=4)
    with pytest.raises(ValueError, match="history"):
        MarginalGainReward(env, env.set_function, history="all")
    with pytest.raises(ValueError, match="horizon"):
        MarginalGainReward(env, env.set_function, history="time")  # no spec, no horizon
    with pytest.raises(ValueError, match="set_function"):
        MarginalGainReward(env, 3.0)
    with pytest.raises(ValueError, match="SetFunction"):
        MarginalGainReward(env, frozen_lake_distinct_rows, history="visited", horizon=4)
    keyed = MarginalGainReward(env, env.set_function, key=lambda obs, info: tuple(obs))
    with pytest.raises(ValueError, match="integer"):
        keyed.reset()
