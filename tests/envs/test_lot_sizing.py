"""Lot-sizing env family: simulator invariants, env contracts, batched env, instances."""

import json
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from opsrl.envs.lot_sizing.data import (
    SIZES,
    DemandModel,
    LotSizingInstance,
    generate_instance,
    load_instance,
    make_instance,
)
from opsrl.envs.lot_sizing.env import LotSizingEnv
from opsrl.envs.lot_sizing.sim import (
    demand_cdf,
    exogenous_step,
    plant_arrays,
    sample_demand_path,
)
from opsrl.envs.lot_sizing.vec import LotSizingVecEnv

ENV_ID = "opsrl/LotSizing-v0"


def tiny_instance(**overrides):
    """Two machines, three items; machine 1 cannot make item 1, machine 0 cannot make item 3."""
    data = dict(
        machine_production=[[5, 4, 0], [0, 3, 6]],
        setup_costs=[[2.0, 3.0, 0.0], [0.0, 1.5, 2.5]],
        setup_loss=[[1, 5, 0], [0, 1, 2]],
        holding_costs=[0.1, 0.2, 0.3],
        lost_sales_costs=[1.0, 2.0, 3.0],
        max_inventory_level=[10, 8, 12],
        initial_inventory=[3, 0, 12],
        initial_setup=[1, 0],
        horizon=6,
        demand=DemandModel.poisson(3.0),
        name="tiny",
    )
    data.update(overrides)
    return LotSizingInstance(**data)


def reference_period(instance, inventory, setup, action, demand):
    """The SimplePlant rules written plainly, one machine and one item at a time."""
    inventory, setup = list(inventory), list(setup)
    produced = [0] * instance.n_items
    setup_cost = 0.0
    for m, a in enumerate(action):
        a = int(a)
        if a != 0 and instance.machine_production[m][a - 1] == 0:
            a = 0  # infeasible_action="idle"
        if a == 0:
            setup[m] = 0
            continue
        loss = 0
        if setup[m] != a:
            setup_cost += instance.setup_costs[m][a - 1]
            loss = instance.setup_loss[m][a - 1]
        setup[m] = a
        produced[a - 1] += max(instance.machine_production[m][a - 1] - loss, 0)
    holding = lost_cost = 0.0
    lost_units = []
    for i in range(instance.n_items):
        available = inventory[i] + produced[i]
        lost_units.append(max(demand[i] - available, 0))
        inventory[i] = min(max(available - demand[i], 0), instance.max_inventory_level[i])
        lost_cost += lost_units[i] * instance.lost_sales_costs[i]
        holding += inventory[i] * instance.holding_costs[i]
    return inventory, setup, produced, setup_cost, holding, lost_cost, lost_units


def masked_random_action(rng, env):
    mask = env.action_masks().reshape(env.instance.n_machines, -1)
    return np.array([rng.choice(np.flatnonzero(row)) for row in mask])


# ----------------------------------------------------------------------------- simulator


@pytest.mark.parametrize("instance", [tiny_instance(), "5x3"])
def test_inventory_balance_and_costs_match_reference_rules(instance):
    env = LotSizingEnv(instance)
    inst = env.instance
    rng = np.random.default_rng(0)
    for episode in range(3):
        env.reset(seed=episode)
        totals = dict(setup=0.0, holding=0.0, lost_sales=0.0, lost_units=0, demanded=0)
        terminated = False
        while not terminated:
            inventory, setup = env.inventory, env.setup
            action = rng.integers(0, inst.n_items + 1, size=inst.n_machines)  # some infeasible
            demand = env.demand_path[env.t]
            expected = reference_period(inst, inventory, setup, action, demand)
            inv_next, setup_next, produced, setup_cost, holding, lost_cost, lost_units = expected
            _, reward, terminated, truncated, info = env.step(action)

            assert min(produced) >= 0
            np.testing.assert_array_equal(
                env.inventory,
                np.minimum(np.maximum(inventory + produced - demand, 0), inst.max_inventory_level),
            )
            np.testing.assert_array_equal(env.inventory, inv_next)
            np.testing.assert_array_equal(lost_units, np.maximum(demand - inventory - produced, 0))
            np.testing.assert_array_equal(env.setup, setup_next)
            np.testing.assert_array_equal(info["demand"], demand)
            cost = info["cost"]
            assert cost["setup"] == pytest.approx(setup_cost)
            assert cost["holding"] == pytest.approx(holding)
            assert cost["lost_sales"] == pytest.approx(lost_cost)
            assert reward == -(cost["setup"] + cost["holding"] + cost["lost_sales"])
            assert not truncated

            totals["setup"] += cost["setup"]
            totals["holding"] += cost["holding"]
            totals["lost_sales"] += cost["lost_sales"]
            totals["lost_units"] += sum(lost_units)
            totals["demanded"] += int(demand.sum())
            kpi = info["kpi"]
            assert kpi["setup_cost"] == pytest.approx(totals["setup"])
            assert kpi["holding_cost"] == pytest.approx(totals["holding"])
            assert kpi["lost_sales_cost"] == pytest.approx(totals["lost_sales"])
            assert kpi["total_cost"] == pytest.approx(
                totals["setup"] + totals["holding"] + totals["lost_sales"]
            )
            assert kpi["lost_units"] == totals["lost_units"]
            assert kpi["fill_rate"] == pytest.approx(
                1 - totals["lost_units"] / totals["demanded"] if totals["demanded"] else 1.0
            )
        assert env.t == inst.horizon


def test_exogenous_step_discards_excess_without_cost():
    plant = plant_arrays(tiny_instance())
    post = np.array([[25, 2, 0]])
    inventory, holding, lost_cost, lost_units, discarded = exogenous_step(
        plant, post, np.array([[5, 4, 1]])
    )
    np.testing.assert_array_equal(inventory, [[10, 0, 0]])
    np.testing.assert_array_equal(discarded, [[10, 0, 0]])
    np.testing.assert_array_equal(lost_units, [[0, 2, 1]])
    assert holding[0] == pytest.approx(1.0)
    assert lost_cost[0] == pytest.approx(2 * 2.0 + 1 * 3.0)


def test_setup_loss_larger_than_production_yields_nothing_not_negative():
    env = LotSizingEnv(tiny_instance(), random_initial_state=False)
    env.reset(seed=0)
    before = env.inventory
    post_obs, post_reward = env.post_decision(np.array([2, 0]))  # loss 5 > production 4
    post_inventory = np.rint(post_obs[:3] * env.instance.max_inventory_level)
    np.testing.assert_array_equal(post_inventory, before)
    assert post_reward == -3.0


def test_reset_info_and_reset_reward_free():
    env = LotSizingEnv("3x2")
    obs, info = env.reset(seed=3)
    assert info["kpi"] == {
        "setup_cost": 0.0,
        "holding_cost": 0.0,
        "lost_sales_cost": 0.0,
        "total_cost": 0.0,
        "lost_units": 0,
        "fill_rate": 1.0,
    }
    assert env.observation_space.contains(obs)
    assert env.demand_path.shape == (env.instance.horizon, 3)
    with pytest.raises(ValueError):
        env.demand_path[0, 0] = 1  # read-only


@pytest.mark.parametrize(
    "model",
    [DemandModel(), DemandModel.poisson([0.5, 8.0]), DemandModel.uniform(2, [4, 9])],
    ids=["binomial", "poisson", "uniform"],
)
def test_demand_sampler_matches_distribution_moments(model):
    path = sample_demand_path(np.random.default_rng(0), model, 20000, 2)
    mean = model.mean(2)
    if model.distribution == "binomial":
        var = np.full(2, 20 * 0.4 * 0.6)
    elif model.distribution == "poisson":
        var = mean
    else:
        var = ((np.array([4, 9]) - 2 + 1) ** 2 - 1) / 12
    np.testing.assert_allclose(path.mean(axis=0), mean, rtol=0.03)
    np.testing.assert_allclose(path.var(axis=0), var, rtol=0.06)
    if model.distribution == "uniform":
        assert path.min() == 2 and path[:, 0].max() == 4 and path[:, 1].max() == 9
    table = demand_cdf(model, 2)
    assert np.all(np.diff(table, axis=1) >= 0) and np.all(table[:, -1] == 1.0)


# ----------------------------------------------------------------------------- post-decision


def test_post_decision_is_deterministic_part_and_leaves_env_untouched():
    probed, plain = LotSizingEnv("5x3"), LotSizingEnv("5x3")
    probed.reset(seed=11)
    plain.reset(seed=11)
    rng = np.random.default_rng(1)
    plant = probed.plant
    terminated = False
    while not terminated:
        action = masked_random_action(rng, probed)
        post_obs, post_reward = probed.post_decision(action)
        # Calling it twice, with another action in between, changes nothing.
        probed.post_decision(np.zeros(3, dtype=int))
        assert probed.observation_space.contains(post_obs)
        post_inventory = np.rint(post_obs[:5] * plant.max_inventory_level).astype(int)
        demand = probed.demand_path[probed.t]

        obs, reward, terminated, _, info = probed.step(action)
        obs2, reward2, _, _, _ = plain.step(action)
        np.testing.assert_array_equal(obs, obs2)
        assert reward == reward2
        assert post_reward == -info["cost"]["setup"]
        assert reward == pytest.approx(
            post_reward - info["cost"]["holding"] - info["cost"]["lost_sales"]
        )
        inventory, *_ = exogenous_step(plant, post_inventory[None], demand[None])
        np.testing.assert_array_equal(inventory[0], probed.inventory)
        # The setup one-hot and the time fraction of the post-decision state.
        np.testing.assert_array_equal(post_obs[5:-1], obs[5:-1])
        assert post_obs[-1] == pytest.approx((probed.t - 1) / probed.instance.horizon)
    # Same RNG afterwards: the next episodes agree too.
    np.testing.assert_array_equal(probed.reset()[0], plain.reset()[0])
    np.testing.assert_array_equal(probed.demand_path, plain.demand_path)


def test_post_decision_high_bound_covers_all_machines_on_one_item():
    env = LotSizingEnv(tiny_instance(), random_initial_state=False)
    env.reset(seed=0)
    obs, _ = env.post_decision([1, 3])
    assert env.observation_space.contains(obs)
    assert obs[2] > 1.0  # item 3: 12 in stock + 6 - 2 loss, above the storage limit of 12


# ----------------------------------------------------------------------------- masks


def test_action_masks_layout_and_masked_policy_is_always_feasible():
    env = LotSizingEnv(tiny_instance(), infeasible_action="raise")
    mask = env.action_masks()
    assert mask.dtype == bool and mask.shape == (2 * 4,)
    np.testing.assert_array_equal(mask, [True, True, True, False, True, False, True, True])
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(env.instance.horizon):
        _, _, _, _, info = env.step(masked_random_action(rng, env))
        assert info["infeasible_actions"] == 0


def test_infeasible_action_raises_or_idles():
    strict = LotSizingEnv(tiny_instance(), infeasible_action="raise")
    strict.reset(seed=0)
    with pytest.raises(ValueError, match=r"machine 1 cannot make item 1"):
        strict.step([0, 1])
    with pytest.raises(ValueError, match=r"action values must lie in 0..3"):
        strict.step([4, 0])

    lenient = LotSizingEnv(tiny_instance(), random_initial_state=False)
    lenient.reset(seed=0)
    inventory = lenient.inventory
    _, _, _, _, info = lenient.step([3, 1])  # both infeasible
    assert info["infeasible_actions"] == 2
    assert info["cost"]["setup"] == 0.0
    np.testing.assert_array_equal(lenient.setup, [0, 0])
    expected = np.minimum(
        np.maximum(inventory - info["demand"], 0), lenient.instance.max_inventory_level
    )
    np.testing.assert_array_equal(lenient.inventory, expected)


def test_step_before_reset_and_after_the_end_raise():
    env = LotSizingEnv("3x2", horizon=2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step([0, 0])
    env.reset(seed=0)
    env.step([0, 0])
    assert env.step([0, 0])[2] is True
    with pytest.raises(RuntimeError, match="reset"):
        env.step([0, 0])


# ----------------------------------------------------------------------------- instances


@pytest.mark.parametrize("size", list(SIZES))
def test_generator_is_reproducible_and_quirk_free(size):
    n_items, n_machines = SIZES[size]
    for seed in range(5):
        instance = generate_instance(n_items, n_machines, seed=seed)
        assert instance == generate_instance(n_items, n_machines, seed=seed)
        production = instance.machine_production
        assert production.shape == (n_machines, n_items)
        assert np.all(production.sum(axis=0) > 0), "an item no machine can make"
        assert np.all(production.sum(axis=1) > 0), "a machine that makes nothing"
        assert production.min() >= 0 and production.max() <= 40
        cannot = production == 0
        assert np.all(instance.setup_costs[cannot] == 0)
        assert np.all(instance.setup_loss[cannot] == 0)
        assert set(instance.setup_costs[~cannot].tolist()) <= set(range(15, 31))
        assert set(instance.setup_loss[~cannot].tolist()) <= {1, 2, 3}
        assert set(np.round(instance.lost_sales_costs, 10).tolist()) <= {0.1, 0.2, 0.3}
        assert np.all(instance.holding_costs == 0.01)
        assert np.all(instance.max_inventory_level == 100)
        assert instance.initial_inventory.max() <= 50
        for m, item in enumerate(instance.initial_setup):
            assert item == 0 or production[m, item - 1] > 0
        assert np.all(plant_arrays(instance).yield_after_setup >= 0)
    assert generate_instance(n_items, n_machines, seed=0) != generate_instance(
        n_items, n_machines, seed=1
    )


def test_instance_round_trips_through_dict_and_json(tmp_path):
    instance = make_instance("5x3", seed=4)
    assert LotSizingInstance.from_dict(json.loads(json.dumps(instance.to_dict()))) == instance
    path = tmp_path / "plant.json"
    path.write_text(json.dumps(instance.to_dict()))
    assert load_instance(path) == instance
    assert make_instance(str(path)) == instance
    assert make_instance(instance.to_dict()) == instance and make_instance(instance) is instance
    custom = tiny_instance(demand=DemandModel.binomial([4, 5, 6], 0.5))
    assert LotSizingInstance.from_dict(custom.to_dict()) == custom
    # A SimplePlant settings file without a name loads under its file stem.
    data = custom.to_dict()
    del data["name"]
    path = tmp_path / "setting_3items_2machines.json"
    path.write_text(json.dumps(data))
    assert load_instance(path).name == "setting_3items_2machines"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(holding_costs=[0.1, -0.2, 0.3]), "holding_costs must be non-negative"),
        (dict(machine_production=[[5, -4, 0], [0, 3, 6]]), "machine_production must be non-neg"),
        (dict(machine_production=[[5, 0, 0], [0, 3, 0]]), "no machine can make item 3"),
        (dict(machine_production=[[5, 4, 6], [0, 0, 0]]), "machine 1 can make no item"),
        (dict(machine_production=[]), "machine_production is empty"),
        (dict(machine_production=[[], []]), "machine_production is empty"),
        (dict(setup_costs=[[1.0, 2.0], [3.0, 4.0]]), r"setup_costs must have shape \(2, 3\)"),
        (dict(lost_sales_costs=[1.0, 2.0]), r"lost_sales_costs must have shape \(3,\)"),
        (dict(initial_setup=[3, 0]), "initial_setup of machine 0 is item 3"),
        (dict(initial_setup=[0, 7]), "outside 0..3"),
        (dict(horizon=0), "horizon must be at least 1"),
        (dict(initial_inventory=[3, 0, 13]), "exceeds max_inventory_level"),
        (dict(max_inventory_level=[10, 0, 12]), "max_inventory_level must be at least 1"),
        (dict(setup_loss=[[1, 0.5, 0], [0, 1, 2]]), "setup_loss must hold integers"),
        (dict(demand={"name": "binomial", "n": 20, "p": 1.5}), "'p' must lie in"),
        (dict(demand={"name": "gamma", "k": 2}), "'gamma' is not supported"),
        (dict(demand={"name": "poisson", "lam": [1, 2]}), "'lam' has 2 entries"),
        (dict(demand={"name": "uniform", "low": 5, "high": 2}), "'low' must not exceed"),
    ],
)
def test_bad_instance_parameters_raise_value_error_naming_them(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_instance(**overrides)


def test_bad_files_and_names_raise_clear_value_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown lot-sizing instance 'foo'; known: 15x5, 20x10"):
        make_instance("foo")
    with pytest.raises(ValueError, match="does not exist"):
        load_instance(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"machine_production": [[1, 2]],')
    with pytest.raises(ValueError, match=r"broken.json' is not valid JSON"):
        LotSizingEnv(str(broken))
    data = tiny_instance().to_dict()
    del data["setup_loss"]
    incomplete = tmp_path / "incomplete.json"
    incomplete.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"incomplete.json'.*missing key 'setup_loss'"):
        load_instance(incomplete)
    data = tiny_instance().to_dict() | {"holding_cost": 1}
    with pytest.raises(ValueError, match="unknown key 'holding_cost'"):
        LotSizingInstance.from_dict(data)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(instance="nope"), "unknown lot-sizing instance"),
        (dict(instance_seed=-1), "instance_seed"),
        (dict(horizon=0), "horizon"),
        (dict(infeasible_action="clip"), "infeasible_action"),
        (dict(observe_time="yes"), "observe_time"),
        (dict(render_mode="human"), "render_mode"),
        (dict(demand=3), "demand must be"),
        (dict(demand={"name": "poisson", "lam": -1}), "'lam' must be non-negative"),
    ],
)
def test_bad_env_arguments_raise_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LotSizingEnv(**kwargs)
    with pytest.raises(ValueError, match=message):
        LotSizingVecEnv(2, **kwargs)


def test_overrides_and_observation_layout():
    env = LotSizingEnv(
        "3x2",
        horizon=7,
        demand={"name": "uniform", "low": 0, "high": 2},
        observe_setup=False,
        observe_time=False,
    )
    assert env.instance.horizon == 7 and env.instance.demand == DemandModel.uniform(0, 2)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3,)
    full = LotSizingEnv("3x2")
    obs, _ = full.reset(seed=0)
    assert obs.shape == (3 + 2 * 4 + 1,)
    one_hot = obs[3:-1].reshape(2, 4)
    np.testing.assert_array_equal(one_hot.argmax(axis=1), full.setup)
    assert one_hot.sum() == 2 and obs[-1] == 0.0
    fixed = LotSizingEnv(tiny_instance(), random_initial_state=False)
    fixed.reset(seed=5)
    np.testing.assert_array_equal(fixed.inventory, [3, 0, 12])
    np.testing.assert_array_equal(fixed.setup, [1, 0])


def test_render_ansi():
    env = LotSizingEnv("3x2", render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert text.startswith("period 0/100") and "inventory" in text and "setups" in text


# ----------------------------------------------------------------------------- checkers, seeds


def _make_checked(**kwargs):
    if ENV_ID not in gym.registry:  # registered by opsrl.envs; stay usable without it
        gym.register(id=ENV_ID, entry_point="opsrl.envs.lot_sizing.env:LotSizingEnv")
    # Through gym.make so that check_env can also re-make the env for the render check.
    return gym.make(ENV_ID, **kwargs).unwrapped


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(instance="3x2"),
        dict(instance="15x5", render_mode="ansi"),
        dict(instance="5x3", observe_setup=False, observe_time=False),
    ],
)
def test_checkers_pass_without_warnings(kwargs):
    try:
        import opsrl.envs  # noqa: F401  (registers the ids when the registry exists)
    except ImportError:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Both checkers sample unmasked actions: the default infeasible_action="idle" takes them.
        gym_check_env(_make_checked(**kwargs))
        sb3_check_env(LotSizingEnv(**kwargs), warn=True)


def _trace(env, seed, steps):
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    trace = [obs, env.demand_path.copy()]
    for _ in range(steps):
        action = rng.integers(0, env.instance.n_items + 1, size=env.instance.n_machines)
        obs, reward, terminated, _, info = env.step(action)
        trace += [obs, np.float64(reward), info["demand"]]
        if terminated:
            trace.append(env.reset()[0])
    return trace


def test_same_seed_same_episodes():
    first = _trace(LotSizingEnv("5x3", horizon=10), 3, 25)
    second = _trace(LotSizingEnv("5x3", horizon=10), 3, 25)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    other = _trace(LotSizingEnv("5x3", horizon=10), 4, 25)
    assert not np.array_equal(first[1], other[1])


# ----------------------------------------------------------------------------- batched env


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(instance="5x3", horizon=6),
        dict(
            instance=tiny_instance(),
            random_initial_state=False,
            observe_setup=False,
            demand={"name": "binomial", "n": [3, 6, 9], "p": 0.5},
        ),
    ],
)
def test_batched_env_equals_single_envs_across_episodes(kwargs):
    n_envs, seed = 3, 100
    venv = LotSizingVecEnv(n_envs, seed=seed, **kwargs)
    envs = [LotSizingEnv(**kwargs) for _ in range(n_envs)]
    obs = venv.reset()
    np.testing.assert_array_equal(obs, [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
    assert [info["kpi"]["fill_rate"] for info in venv.reset_infos] == [1.0] * n_envs
    for i, env in enumerate(envs):
        np.testing.assert_array_equal(venv.get_attr("demand_path", i)[0], env.demand_path)
    rng = np.random.default_rng(0)
    inst = envs[0].instance
    n_done = 0
    for _ in range(3 * inst.horizon + 2):
        actions = rng.integers(0, inst.n_items + 1, size=(n_envs, inst.n_machines))
        obs, rewards, dones, infos = venv.step(actions)
        assert obs.dtype == np.float32 and rewards.dtype == np.float32
        for i, env in enumerate(envs):
            single_obs, reward, terminated, _, info = env.step(actions[i])
            assert rewards[i] == np.float32(reward)
            assert dones[i] == terminated
            assert infos[i]["infeasible_actions"] == info["infeasible_actions"]
            if terminated:
                np.testing.assert_array_equal(infos[i]["terminal_observation"], single_obs)
                assert infos[i]["kpi"] == info["kpi"]
                single_obs, _ = env.reset()
                n_done += 1
            else:
                assert "terminal_observation" not in infos[i]
            np.testing.assert_array_equal(obs[i], single_obs)
        np.testing.assert_array_equal(venv.get_attr("inventory"), [e.inventory for e in envs])
    assert n_done == 3 * n_envs


def test_batched_env_masks_post_decision_and_attributes():
    venv = LotSizingVecEnv(4, seed=0, instance=tiny_instance())
    obs = venv.reset()
    masks = venv.env_method("action_masks")
    assert len(masks) == 4
    np.testing.assert_array_equal(np.stack(masks), venv.action_masks())
    np.testing.assert_array_equal(masks[0], LotSizingEnv(tiny_instance()).action_masks())
    assert venv.has_attr("action_masks") and venv.get_attr("action_masks", 1)[0]().shape == (8,)

    actions = np.array([[1, 2], [2, 3], [0, 0], [1, 3]])
    post_obs, post_reward = venv.post_decision(actions)
    assert post_obs.shape == obs.shape and post_reward.shape == (4,)
    listed = venv.env_method("post_decision", actions)
    for i, (single_obs, single_reward) in enumerate(listed):
        np.testing.assert_array_equal(single_obs, post_obs[i])
        assert np.float32(single_reward) == post_reward[i]
    subset = venv.env_method("post_decision", actions[[2]], indices=[2])
    np.testing.assert_array_equal(subset[0][0], post_obs[2])
    same = venv.env_method("post_decision", [1, 2])  # one action for every copy
    assert len(same) == 4
    assert venv.env_is_wrapped(gym.Wrapper) == [False] * 4
    assert venv.get_attr("t") == [0] * 4
    assert venv.get_attr("instance", [0, 1]) == [venv.instance] * 2
    with pytest.raises(AttributeError):
        venv.get_attr("no_such_attribute")
    with pytest.raises(AttributeError, match="supported: action_masks, post_decision"):
        venv.env_method("teleport")
    assert not np.array_equal(venv.reset(), obs)  # seeds apply once; the generators go on
    assert venv.seed(0) == [0, 1, 2, 3]
    np.testing.assert_array_equal(venv.reset(), obs)

    strict = LotSizingVecEnv(2, seed=0, instance=tiny_instance(), infeasible_action="raise")
    strict.reset()
    with pytest.raises(ValueError, match="copy 1: machine 1 cannot make item 1"):
        strict.step(np.array([[0, 0], [0, 1]]))


def test_post_decision_leaves_batched_env_untouched():
    probed, plain = (LotSizingVecEnv(3, seed=5, instance="3x2", horizon=4) for _ in range(2))
    probed.reset()
    plain.reset()
    rng = np.random.default_rng(0)
    for _ in range(9):
        actions = rng.integers(0, 4, size=(3, 2))
        probed.post_decision(actions)
        probed.env_method("post_decision", actions)
        for a, b in zip(probed.step(actions), plain.step(actions), strict=True):
            if isinstance(a, list):
                assert [sorted(x) for x in a] == [sorted(x) for x in b]
            else:
                np.testing.assert_array_equal(a, b)


def test_batched_env_trains_with_maskable_ppo_and_ppo_under_vec_monitor():
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    venv = VecMonitor(LotSizingVecEnv(8, seed=0, instance="3x2", horizon=10))
    model = MaskablePPO(
        "MlpPolicy", venv, n_steps=20, batch_size=80, n_epochs=1, seed=0, device="cpu"
    )
    model.learn(320)
    assert len(model.ep_info_buffer) > 0
    PPO("MlpPolicy", venv, n_steps=20, batch_size=80, n_epochs=1, seed=0, device="cpu").learn(160)
