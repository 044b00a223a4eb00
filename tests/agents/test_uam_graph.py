"""GraphFleetPPO and its graph fleet-scheduling policy: observation indexing, masked logits,
permutation equivariance, size transfer, reward scaling, save/load, and learning on a small
UAM fleet."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env

import opsrl  # noqa: F401  (registers opsrl/UAMFleet-v0)
from opsrl.agents.uam_graph import GraphFleetPolicy, GraphFleetPPO, fleet_graph_batch
from opsrl.baselines.common import RandomPolicy
from opsrl.envs.uam import UAMFleetEnv, unflatten_graph_observation
from opsrl.evaluation import evaluate_policy_on_seeds
from opsrl.nn.attention import PointerAttentionDecoder, TimeSeriesEncoder
from opsrl.nn.edge_graph import EdgeTransformerEncoder, merge_edge_lists

SMALL = {"n_vertiports": 4, "n_aircraft": 6}
SMALL_PPO = {"n_steps": 64, "batch_size": 64, "n_epochs": 2}


def make_policy(env: UAMFleetEnv, **kwargs) -> GraphFleetPolicy:
    th.manual_seed(0)
    return GraphFleetPolicy(env.observation_space, env.action_space, lambda _: 3e-4, **kwargs)


def stack(observations: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.stack([obs[key] for obs in observations]) for key in observations[0]}


def day_states(env: UAMFleetEnv, seed: int, every: int = 7, policy_seed: int = 0):
    """(observation, action mask, demand bin) at every ``every``-th decision of a random
    feasible day."""
    rng = np.random.default_rng(policy_seed)
    obs, _ = env.reset(seed=seed)
    states, step, terminated = [], 0, False
    while not terminated:
        mask = env.action_masks()
        if step % every == 0:
            states.append((obs, mask, env.sim.demand_bin))
        obs, _, terminated, _, _ = env.step(rng.choice(np.flatnonzero(mask)))
        step += 1
    return states


def to_tensors(observations: dict[str, np.ndarray]) -> dict[str, th.Tensor]:
    return {key: th.as_tensor(value) for key, value in observations.items()}


@pytest.fixture(scope="module")
def small_env() -> UAMFleetEnv:
    return UAMFleetEnv(config=SMALL, reward="per_flight")


# --------------------------------------------------------------------------------------------
# Building blocks (opsrl.nn)
# --------------------------------------------------------------------------------------------


def test_merge_edge_lists_offsets_samples_and_drops_out_of_range_ends():
    edges = th.tensor([[[0, 1, 2], [1, 2, 0]], [[2, -1, 0], [0, 1, 3]]], dtype=th.float32)
    edge_index, keep = merge_edge_lists(edges.reshape(2, -1), n_nodes=3)
    assert keep.tolist() == [[True, True, True], [True, False, False]]
    assert edge_index.tolist() == [[0, 1, 2, 5], [1, 2, 0, 3]]


def test_edge_transformer_encoder_keeps_samples_apart():
    th.manual_seed(0)
    encoder = EdgeTransformerEncoder(hidden_dim=8, edge_dim=4, n_layers=2, n_heads=2)
    edges = th.tensor([[0, 1, 1, 2], [1, 0, 2, 1]], dtype=th.float32)
    h = th.randn(2, 3, 8)
    attr = th.randn(2, 4, 4)
    edge_index, keep = merge_edge_lists(th.stack([edges, edges]), 3)
    both = encoder(h.reshape(6, 8), edge_index, attr[keep]).view(2, 3, 8)
    alone_index, alone_keep = merge_edge_lists(edges[None], 3)
    alone = encoder(h[1], alone_index, attr[1][alone_keep[0]])
    np.testing.assert_allclose(both[1].detach(), alone.detach(), atol=1e-5)
    with pytest.raises(ValueError, match="n_heads"):
        EdgeTransformerEncoder(hidden_dim=8, edge_dim=4, n_heads=3)


def test_pointer_decoder_bounds_logits_and_survives_an_empty_mask():
    th.manual_seed(0)
    decoder = PointerAttentionDecoder(8, n_heads=2, clip=5.0, logit_init_gain=10.0)
    query, candidates = th.randn(3, 8), th.randn(3, 4, 8) * 10
    mask = th.tensor([[True, False, True, False], [False] * 4, [True] * 4])
    logits = decoder(query, candidates, mask)
    assert logits.shape == (3, 4) and th.isfinite(logits).all()
    assert logits.abs().max() <= 5.0
    # the glimpse only reads feasible candidates: changing an infeasible one moves nothing
    # but its own logit
    moved = candidates.clone()
    moved[0, 1] += 3.0
    again = decoder(query, moved, mask)
    np.testing.assert_allclose(again[0, [0, 2, 3]].detach(), logits[0, [0, 2, 3]].detach())
    with pytest.raises(ValueError, match="n_heads"):
        PointerAttentionDecoder(8, n_heads=3)


@pytest.mark.parametrize("kind", ["mlp", "transformer"])
def test_time_series_encoder_shapes(kind):
    encoder = TimeSeriesEncoder(13, 16, kind, n_heads=4)
    assert encoder(th.rand(2, 5, 13)).shape == (2, 5, 16)
    with pytest.raises(ValueError, match="series must end"):
        encoder(th.rand(2, 12))
    with pytest.raises(ValueError, match="kind"):
        TimeSeriesEncoder(13, 16, "lstm")


# --------------------------------------------------------------------------------------------
# The policy
# --------------------------------------------------------------------------------------------


def test_batch_aligns_demand_on_the_current_bin(small_env):
    states = day_states(small_env, seed=3, every=9)
    observations = stack([obs for obs, _, _ in states])
    graph = fleet_graph_batch(to_tensors(observations))
    demand = unflatten_graph_observation(observations)["demand"]  # (B, P, N, N)
    n_points, n = demand.shape[1], demand.shape[2]
    bins = [demand_bin for _, _, demand_bin in states]
    assert len(set(bins)) > 5  # the day's states cover many demand bins
    for b, now in enumerate(bins):
        ahead = np.zeros((n_points, n, n), np.float32)
        ahead[: n_points - now] = demand[b, now:]
        np.testing.assert_allclose(graph.outflow[b].numpy(), ahead.sum(2).T / (n - 1), atol=1e-6)
        np.testing.assert_allclose(graph.inflow[b].numpy(), ahead.sum(1).T / (n - 1), atol=1e-6)
        source, target = graph.edge_source[b].numpy(), graph.edge_target[b].numpy()
        np.testing.assert_allclose(graph.edge_series[b].numpy(), ahead[:, source, target].T)
        deciding = observations["deciding"][b]
        assert graph.origin[b] == deciding[1] and graph.deciding_aircraft[b] == deciding[0]
    assert graph.edge_index.shape == (2, len(states) * n * (n - 1))


def test_forward_gives_masked_logits_on_a_batch(small_env):
    policy = make_policy(small_env)
    states = day_states(small_env, seed=0, every=5)
    observations = stack([obs for obs, _, _ in states])
    masks = np.stack([mask for _, mask, _ in states])
    assert (~masks).any()  # some destinations are infeasible
    obs, vectorized = policy.obs_to_tensor(observations)
    assert vectorized
    actions, values, log_prob = policy(obs, action_masks=masks)
    batch = len(states)
    assert actions.shape == (batch,) and values.shape == (batch, 1)
    assert log_prob.shape == (batch,) and masks[np.arange(batch), actions.numpy()].all()
    values, log_prob, entropy = policy.evaluate_actions(obs, actions, action_masks=masks)
    assert values.shape == (batch, 1) and th.isfinite(log_prob).all()
    assert entropy.shape == (batch,)
    with th.no_grad():
        probs = policy.get_distribution(obs, action_masks=masks).distribution.probs.numpy()
    assert np.all(probs[~masks] == 0.0)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert np.all(probs[masks] > 0.0)
    # sampling never picks an infeasible destination
    repeated = stack([states[0][0]] * 500)
    picked, _ = policy.predict(repeated, action_masks=np.tile(states[0][1], (500, 1)))
    assert set(np.unique(picked)) <= set(np.flatnonzero(states[0][1]))


def permute_vertiports(obs: dict[str, np.ndarray], order: np.ndarray) -> dict[str, np.ndarray]:
    """The same state with the vertiports relabelled: new vertiport k is old ``order[k]``;
    the edge list stays in the env's order (by source, then target)."""
    n = len(order)
    new_id = np.argsort(order)  # old id -> new id
    graph = unflatten_graph_observation(obs)
    vertiports = graph["vertiport_features"][order].copy()
    vertiports[:, -n:] = vertiports[:, -n:][:, order]  # the fare_to_j columns
    source, target = new_id[graph["vertiport_edges"].astype(int)]
    edge_order = np.lexsort((target, source))
    deciding = obs["deciding"].copy()
    deciding[1] = new_id[int(deciding[1])]
    return {
        "vertiport_features": vertiports.ravel(),
        "vertiport_edges": np.concatenate([source[edge_order], target[edge_order]]).astype(
            np.float32
        ),
        "vertiport_edge_features": graph["vertiport_edge_features"][edge_order].ravel(),
        "aircraft_features": obs["aircraft_features"].copy(),
        "aircraft_vertiport": new_id[obs["aircraft_vertiport"].astype(int)].astype(np.float32),
        "deciding": deciding,
        "action_mask": obs["action_mask"][order],
        "demand": graph["demand"][:, order][:, :, order].ravel(),
        "fares": graph["fares"][order][:, order].ravel(),
        "time": obs["time"].copy(),
    }


def permute_aircraft(obs: dict[str, np.ndarray], order: np.ndarray) -> dict[str, np.ndarray]:
    """The same state with the aircraft relabelled: new aircraft k is old ``order[k]``."""
    features = unflatten_graph_observation(obs)["aircraft_features"]
    deciding = obs["deciding"].copy()
    deciding[0] = np.argsort(order)[int(deciding[0])]
    return {
        **obs,
        "aircraft_features": features[order].ravel(),
        "aircraft_vertiport": obs["aircraft_vertiport"][order],
        "deciding": deciding,
    }


def logits_and_value(policy: GraphFleetPolicy, obs: dict[str, np.ndarray]):
    tensors, _ = policy.obs_to_tensor(obs)
    with th.no_grad():
        logits = policy.get_distribution(tensors).distribution.logits[0].numpy()
        value = float(policy.predict_values(tensors)[0, 0])
    return logits, value


@pytest.mark.parametrize("series_encoder", ["mlp", "transformer"])
def test_relabelling_vertiports_permutes_the_logits(series_encoder):
    env = UAMFleetEnv(config={"n_vertiports": 6, "n_aircraft": 10})
    policy = make_policy(env, series_encoder=series_encoder)
    rng = np.random.default_rng(0)
    for obs, _, _ in day_states(env, seed=1, every=40)[:4]:
        logits, value = logits_and_value(policy, obs)
        assert np.ptp(logits) > 1e-4  # the test must not pass on constant logits
        order = rng.permutation(6)
        permuted, permuted_value = logits_and_value(policy, permute_vertiports(obs, order))
        np.testing.assert_allclose(permuted, logits[order], rtol=1e-4, atol=1e-6)
        assert permuted_value == pytest.approx(value, rel=1e-4, abs=1e-6)
        # and relabelling the aircraft changes nothing
        same, same_value = logits_and_value(policy, permute_aircraft(obs, rng.permutation(10)))
        np.testing.assert_allclose(same, logits, rtol=1e-4, atol=1e-6)
        assert same_value == pytest.approx(value, rel=1e-4, abs=1e-6)


def test_batch_neighbours_and_terminal_observations_do_not_change_the_output(small_env):
    policy = make_policy(small_env)
    (first, _, _), (second, _, _) = day_states(small_env, seed=2, every=30)[:2]
    terminal = {**first, "deciding": np.array([-1, -1], np.float32)}
    terminal["action_mask"] = np.zeros_like(first["action_mask"])
    alone, value = logits_and_value(policy, second)
    tensors, _ = policy.obs_to_tensor(stack([terminal, second, first]))
    with th.no_grad():
        logits = policy.get_distribution(tensors).distribution.logits.numpy()
        values = policy.predict_values(tensors).numpy()
    np.testing.assert_allclose(logits[1], alone, rtol=1e-5, atol=1e-6)
    assert values[1, 0] == pytest.approx(value, rel=1e-5, abs=1e-6)
    assert np.isfinite(logits).all() and np.isfinite(values).all()


def test_policy_predicts_on_other_fleet_sizes(small_env):
    policy = make_policy(small_env)
    for config in ({"n_vertiports": 8, "n_aircraft": 40}, {"n_vertiports": 3, "n_aircraft": 2}):
        env = UAMFleetEnv(config=config)
        obs, _ = env.reset(seed=0)
        mask = env.action_masks()
        action, _ = policy.predict(obs, action_masks=mask, deterministic=True)
        assert action.shape == () and mask[int(action)]
        # matrices given unflattened are accepted too
        matrices = unflatten_graph_observation(obs)
        assert policy.predict(matrices, action_masks=mask, deterministic=True)[0] == action


def test_policy_rejects_bad_observations(small_env):
    with pytest.raises(ValueError, match="graph Dict observation"):
        GraphFleetPolicy(
            UAMFleetEnv(config=SMALL, observation="flat").observation_space,
            spaces.Discrete(4),
            lambda _: 3e-4,
        )
    with pytest.raises(ValueError, match="n_heads"):
        make_policy(small_env, hidden_dim=30, n_heads=4)
    with pytest.raises(ValueError, match="series_encoder"):
        make_policy(small_env, series_encoder="lstm")
    policy = make_policy(small_env)
    obs, _ = small_env.reset(seed=0)
    with pytest.raises(ValueError, match="demand"):
        policy.predict({**obs, "demand": obs["demand"][:-16]})
    with pytest.raises(ValueError, match="lacks key"):
        policy.predict({k: v for k, v in obs.items() if k != "deciding"})
    with pytest.raises(ValueError, match="aircraft_features"):
        policy.predict({**obs, "aircraft_features": obs["aircraft_features"][:-1]})


# --------------------------------------------------------------------------------------------
# GraphFleetPPO on opsrl/UAMFleet-v0
# --------------------------------------------------------------------------------------------


def vec_env(n_envs: int = 2, **kwargs):
    return make_vec_env(
        "opsrl:opsrl/UAMFleet-v0",
        n_envs=n_envs,
        seed=0,
        env_kwargs={"render_mode": None, "config": SMALL, "reward": "per_flight", **kwargs},
    )


def test_learns_a_few_hundred_steps_and_survives_save_load(tmp_path, small_env):
    venv = vec_env()
    model = GraphFleetPPO("GraphFleetPolicy", venv, seed=0, device="auto", **SMALL_PPO)
    assert all(p.device == model.device for p in model.policy.parameters())
    before = {name: p.detach().clone() for name, p in model.policy.named_parameters()}
    model.learn(256)
    assert model.num_timesteps == 256
    unchanged = {name for name, p in model.policy.named_parameters() if th.equal(before[name], p)}
    # every weight (actor and critic) is trained, except the attention key biases, which the
    # softmax over a node's neighbours cancels
    assert all(name.endswith("lin_key.bias") for name in unchanged)
    model.save(tmp_path / "fleet.zip")
    loaded = GraphFleetPPO.load(tmp_path / "fleet.zip", device="auto")
    assert loaded.reward_scale == model.reward_scale
    assert loaded.policy.series_encoder == "mlp" and loaded.policy.edge_dim == 32
    states = day_states(small_env, seed=5, every=11)
    observations = stack([obs for obs, _, _ in states])
    masks = np.stack([mask for _, mask, _ in states])
    before, _ = model.predict(observations, action_masks=masks, deterministic=True)
    after, _ = loaded.predict(observations, action_masks=masks, deterministic=True)
    np.testing.assert_array_equal(before, after)
    with th.no_grad():
        tensors = model.policy.obs_to_tensor(observations)[0]
        np.testing.assert_allclose(
            loaded.policy.predict_values(tensors).cpu(), model.policy.predict_values(tensors).cpu()
        )
    venv.close()


def test_rewards_are_scaled_for_learning_only():
    venv = vec_env(n_envs=1)
    model = GraphFleetPPO("GraphFleetPolicy", venv, seed=0, device="cpu", **SMALL_PPO)
    model.learn(128)  # 128 decisions: at least one whole day of about 100
    percent = model.rollout_buffer.rewards  # per-flight profit / potential revenue / 0.01
    assert np.all(percent >= -1.0) and percent.max() > 0.01
    # the monitor's episode return stays in the env's unit: the normalised daily profit
    assert 0.0 < model.ep_info_buffer[0]["r"] < 1.0
    with pytest.raises(ValueError, match="reward_scale"):
        GraphFleetPPO("GraphFleetPolicy", venv, reward_scale=0.0)
    venv.close()


def test_shared_and_separate_encoders_train():
    venv = vec_env()
    model = GraphFleetPPO(
        "GraphFleetPolicy",
        venv,
        seed=0,
        device="cpu",
        policy_kwargs={"share_encoder": False, "series_encoder": "transformer", "n_layers": 1},
        **SMALL_PPO,
    )
    assert model.policy.critic_encoder is not model.policy.actor_encoder
    model.learn(128)
    assert model.num_timesteps == 128
    venv.close()


@pytest.mark.skipif(not th.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda(small_env):
    venv = vec_env()
    model = GraphFleetPPO("GraphFleetPolicy", venv, seed=0, device="cuda", **SMALL_PPO)
    model.learn(128)
    obs, _ = small_env.reset(seed=0)
    action, _ = model.predict(obs, action_masks=small_env.action_masks())
    assert small_env.action_masks()[int(action)]
    venv.close()


def mean_profit(policy, env, seeds, deterministic: bool) -> float:
    episodes = evaluate_policy_on_seeds(policy, env, seeds, deterministic=deterministic)
    return float(np.mean([episode.kpi["profit"] for episode in episodes]))


@pytest.mark.slow
def test_learning_beats_random_feasible_on_a_small_fleet():
    venv = vec_env(n_envs=4)
    model = GraphFleetPPO("GraphFleetPolicy", venv, seed=0, device="cpu")
    env = gym.make("opsrl/UAMFleet-v0", config=SMALL, reward="per_flight")
    held_out = list(range(1000, 1020))  # training days use seeds 0..3 and their successors
    random = mean_profit(RandomPolicy(env, seed=0), env, held_out, deterministic=False)
    model.learn(16384)
    trained = mean_profit(model, env, held_out, deterministic=True)
    sampled = mean_profit(model, env, held_out, deterministic=False)
    # measured: random 9,152, trained 10,955 (greedy, deterministic) and 10,681 (sampled)
    assert trained > 1.05 * random and sampled > random
    venv.close()
