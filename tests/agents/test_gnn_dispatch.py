"""GnnPPO and its graph dispatching policy: batching of padded graphs, masking, size transfer,
save/load, VecEnvs, and learning on small job shops."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

import opsrl  # noqa: F401  (registers opsrl/JobShop-v0)
from opsrl.agents.gnn_dispatch import GnnPPO, GraphDispatchPolicy
from opsrl.baselines.common import RandomPolicy
from opsrl.envs.job_shop.data import generate_instance
from opsrl.evaluation import evaluate_policy_on_seeds
from opsrl.nn.graph import (
    EDGE_TYPES,
    DisjunctiveGraphEncoder,
    RelationAggregator,
    batch_graph_observations,
)

N_FEATURES = 11


# --------------------------------------------------------------------------------------------
# Hand-made observations of the contract's shapes (independent of the env)
# --------------------------------------------------------------------------------------------


def graph_space(n_jobs: int, n_machines: int, n_features: int = N_FEATURES) -> spaces.Dict:
    n_nodes = n_jobs * n_machines
    return spaces.Dict(
        {
            "node_features": spaces.Box(0.0, 1.0, (n_nodes, n_features), np.float32),
            "node_mask": spaces.Box(0.0, 1.0, (n_nodes,), np.float32),
            "conjunctive_edges": spaces.Box(
                -1.0, n_nodes - 1, (2, n_jobs * (n_machines - 1)), np.float32
            ),
            "disjunctive_edges": spaces.Box(
                -1.0, n_nodes - 1, (2, n_machines * n_jobs * (n_jobs - 1) // 2), np.float32
            ),
            "candidate_nodes": spaces.Box(-1.0, n_nodes - 1, (n_jobs,), np.float32),
        }
    )


def graph_observation(
    instance, next_op, features=None, max_jobs=None, max_machines=None, seed=0
) -> dict[str, np.ndarray]:
    """The graph observation of ``instance`` with jobs' first ``next_op[j]`` ops finished.

    ``features[j, k]`` (default: random) is the feature row of op k of job j; padding to
    ``max_jobs`` x ``max_machines`` adds masked nodes and -1 columns.
    """
    n_jobs, n_ops = instance.machines.shape
    width_jobs, width_ops = max_jobs or n_jobs, max_machines or n_ops
    if features is None:
        features = np.random.default_rng(seed).random((n_jobs, n_ops, N_FEATURES))
    space = graph_space(width_jobs, width_ops, features.shape[-1])
    obs = {key: np.zeros(box.shape, np.float32) for key, box in space.spaces.items()}
    for key in ("conjunctive_edges", "disjunctive_edges", "candidate_nodes"):
        obs[key][...] = -1

    def node(job: int, op: int) -> int:
        return job * width_ops + op

    conjunctive, by_machine = [], {}
    for job in range(n_jobs):
        for op in range(next_op[job], n_ops):
            obs["node_mask"][node(job, op)] = 1
            obs["node_features"][node(job, op)] = features[job, op]
            by_machine.setdefault(instance.machines[job, op], []).append(node(job, op))
            if op + 1 < n_ops:
                conjunctive.append((node(job, op), node(job, op + 1)))
        if next_op[job] < n_ops:
            obs["candidate_nodes"][job] = node(job, next_op[job])
    disjunctive = [
        (a, b) for ops in by_machine.values() for i, a in enumerate(ops) for b in ops[i + 1 :]
    ]
    for key, edges in (("conjunctive_edges", conjunctive), ("disjunctive_edges", disjunctive)):
        if edges:
            obs[key][:, : len(edges)] = np.array(edges, dtype=np.float32).T
    return obs


def stack(observations: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.stack([obs[key] for obs in observations]) for key in observations[0]}


def make_policy(n_jobs: int = 6, n_machines: int = 6, **kwargs) -> GraphDispatchPolicy:
    th.manual_seed(0)
    return GraphDispatchPolicy(
        graph_space(n_jobs, n_machines), spaces.Discrete(n_jobs), lambda _: 3e-4, **kwargs
    )


@pytest.fixture(scope="module")
def instance_6x6():
    return generate_instance(6, 6, seed=0)


# --------------------------------------------------------------------------------------------
# Batching and the encoder
# --------------------------------------------------------------------------------------------


def test_batching_drops_finished_nodes_padding_and_offsets_ids():
    instance = generate_instance(3, 2, seed=0)
    finished = graph_observation(instance, next_op=[1, 0, 2])  # job 2 done, job 0 half done
    fresh = graph_observation(instance, next_op=[0, 0, 0], max_jobs=4, max_machines=3)
    batch = {k: th.as_tensor(v) for k, v in stack([finished, finished]).items()}
    graph = batch_graph_observations(batch)
    # sample 1: 3 unfinished ops (job 0 op 1, job 1 ops 0-1), twice
    assert graph.num_nodes == 6 and graph.num_graphs == 2
    assert graph.batch.tolist() == [0, 0, 0, 1, 1, 1]
    assert graph.edge_index["precedes"].tolist() == [[1, 4], [2, 5]]
    assert graph.edge_index["follows"].tolist() == [[2, 5], [1, 4]]
    machine_pairs = graph.edge_index["shares_machine"]
    # every disjunctive pair stays inside its own sample, in both directions
    assert machine_pairs.shape[1] % 2 == 0
    assert th.equal(graph.batch[machine_pairs[0]], graph.batch[machine_pairs[1]])
    assert graph.candidate_valid.tolist() == [[True, True, False], [True, True, False]]
    assert graph.candidate_rows.tolist() == [[0, 1, 6], [3, 4, 6]]

    padded = batch_graph_observations({k: th.as_tensor(v)[None] for k, v in fresh.items()})
    assert padded.num_nodes == 6  # the 3x2 instance inside a 4x3 padding
    assert padded.edge_index["precedes"].shape[1] == 3
    assert padded.candidate_valid.tolist() == [[True, True, True, False]]


def test_encoder_output_shapes_and_empty_graph():
    instance = generate_instance(4, 3, seed=1)
    done = graph_observation(instance, next_op=[3, 3, 3, 3])  # terminal: nothing left
    live = graph_observation(instance, next_op=[0, 1, 2, 3])
    graph = batch_graph_observations({k: th.as_tensor(v) for k, v in stack([done, live]).items()})
    encoder = DisjunctiveGraphEncoder(N_FEATURES, hidden_dim=16, n_layers=3)
    h = encoder(graph)
    assert h.shape == (graph.num_nodes, 16) == (6, 16)
    pooled = encoder.pool(h, graph)
    assert pooled.shape == (2, 16) and th.all(pooled[0] == 0)
    candidates = encoder.gather_candidates(h, graph)
    assert candidates.shape == (2, 4, 16)
    assert th.all(candidates[0] == 0) and th.all(candidates[1, 3] == 0)


# --------------------------------------------------------------------------------------------
# The policy
# --------------------------------------------------------------------------------------------


def test_forward_shapes(instance_6x6):
    policy = make_policy()
    observations = stack(
        [graph_observation(instance_6x6, next_op=[k, 0, 1, 2, 3, 5], seed=k) for k in range(3)]
    )
    obs, vectorized = policy.obs_to_tensor(observations)
    assert vectorized
    actions, values, log_prob = policy(obs)
    assert actions.shape == (3,) and values.shape == (3, 1) and log_prob.shape == (3,)
    values, log_prob, entropy = policy.evaluate_actions(obs, actions)
    assert values.shape == (3, 1) and log_prob.shape == (3,) and entropy.shape == (3,)
    assert policy.predict_values(obs).shape == (3, 1)


def test_never_selects_a_masked_or_absent_job(instance_6x6):
    policy = make_policy()
    obs = graph_observation(instance_6x6, next_op=[6, 0, 2, 3, 1, 0])  # job 0 is done
    mask = np.array([False, True, False, True, False, False])
    batch = stack([obs] * 2000)
    actions, _ = policy.predict(batch, action_masks=np.tile(mask, (2000, 1)))
    assert set(np.unique(actions)) <= {1, 3}
    assert len(np.unique(actions)) == 2  # both allowed jobs get sampled
    # without the env's mask, only the job without a next op is excluded
    actions, _ = policy.predict(stack([obs] * 500))
    assert 0 not in actions
    tensors, _ = policy.obs_to_tensor(obs)
    with th.no_grad():
        probs = policy.get_distribution(tensors, action_masks=mask).distribution.probs
    assert float(probs[0, ~mask].sum()) == 0.0


def test_padding_and_batch_neighbours_do_not_change_the_output(instance_6x6):
    policy = make_policy(n_jobs=8, n_machines=7)
    next_op = [0, 1, 2, 6, 4, 5]
    features = np.random.default_rng(3).random((6, 6, N_FEATURES))
    plain = graph_observation(instance_6x6, next_op, features)
    padded = graph_observation(instance_6x6, next_op, features, max_jobs=8, max_machines=7)
    other = graph_observation(generate_instance(8, 7, seed=5), [0] * 8)
    with th.no_grad():
        alone = policy.get_distribution(policy.obs_to_tensor(plain)[0]).distribution.logits
        value = policy.predict_values(policy.obs_to_tensor(plain)[0])
        in_padding = policy.obs_to_tensor(stack([other, padded]))[0]
        logits = policy.get_distribution(in_padding).distribution.logits
        values = policy.predict_values(in_padding)
    valid = [0, 1, 2, 4, 5]
    np.testing.assert_allclose(logits[1, valid], alone[0, valid], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(values[1], value[0], rtol=1e-5, atol=1e-5)
    assert th.all(logits[1, [3, 6, 7]] < -1e7)  # done job, padded jobs


@pytest.mark.parametrize("share_encoder", [True, False])
def test_policy_predicts_on_any_size(share_encoder):
    policy = make_policy(share_encoder=share_encoder)
    for n_jobs, n_machines in ((10, 5), (15, 15), (2, 2), (1, 3), (3, 1)):
        instance = generate_instance(n_jobs, n_machines, seed=n_jobs)
        obs = graph_observation(instance, next_op=[0] * n_jobs)
        # the env's layout: matrices flattened row-major
        flat = {key: value.ravel() for key, value in obs.items()}
        mask = np.ones(n_jobs, bool)
        action, _ = policy.predict(obs, action_masks=mask, deterministic=True)
        assert action.shape == () and 0 <= int(action) < n_jobs
        assert policy.predict(flat, action_masks=mask, deterministic=True)[0] == action


def test_policy_rejects_bad_observations():
    with pytest.raises(ValueError, match="graph Dict observation"):
        GraphDispatchPolicy(spaces.Box(0, 1, (10,), np.float32), spaces.Discrete(3), lambda _: 3e-4)
    policy = make_policy()
    obs = graph_observation(generate_instance(6, 6, seed=0), [0] * 6)
    with pytest.raises(ValueError, match="node_features"):
        policy.predict({**obs, "node_features": obs["node_features"][:, :5]})
    with pytest.raises(ValueError, match="lacks key"):
        policy.predict({k: v for k, v in obs.items() if k != "candidate_nodes"})


def test_gnn_ppo_rejects_a_bad_reward_scale():
    with pytest.raises(ValueError, match="reward_scale"):
        GnnPPO("GraphDispatchPolicy", "CartPole-v1", reward_scale=0.0)


def test_relation_aggregator_matches_a_direct_computation():
    instance = generate_instance(4, 3, seed=2)
    obs = graph_observation(instance, next_op=[0, 1, 0, 2])
    graph = batch_graph_observations({k: th.as_tensor(v)[None] for k, v in obs.items()})
    h = th.randn(graph.num_nodes, 5)
    for aggr, reduce in (("sum", th.sum), ("mean", th.mean), ("max", th.amax)):
        out = RelationAggregator(graph, aggr)(h)
        assert out.shape == (graph.num_nodes, 5 * len(EDGE_TYPES))
        for r, edge_type in enumerate(EDGE_TYPES):
            source, target = graph.edge_index[edge_type]
            for node in range(graph.num_nodes):
                neighbours = source[target == node]
                expected = reduce(h[neighbours], 0) if len(neighbours) else th.zeros(5)
                np.testing.assert_allclose(out[node, 5 * r : 5 * (r + 1)], expected, atol=1e-6)


# --------------------------------------------------------------------------------------------
# GnnPPO on opsrl/JobShop-v0
# --------------------------------------------------------------------------------------------

CLASSIC = {"blocking": False, "shutdown_prob": 0.0}
SMALL_PPO = {"n_steps": 32, "batch_size": 32, "n_epochs": 2}


def vec_env(n_envs: int = 2, vec_env_cls=DummyVecEnv, **kwargs):
    # the "opsrl:" prefix makes gym import opsrl (and register the id) in worker processes
    return make_vec_env(
        "opsrl:opsrl/JobShop-v0",
        n_envs=n_envs,
        seed=0,
        env_kwargs={"render_mode": None, **kwargs},
        vec_env_cls=vec_env_cls,
        vec_env_kwargs={"start_method": "fork"} if vec_env_cls is SubprocVecEnv else None,
    )


def run_episode(model, env, seed: int) -> tuple[float, bool]:
    """Makespan of one deterministic masked episode, and whether it terminated."""
    obs, _ = env.reset(seed=seed)
    done = terminated = False
    while not done:
        mask = env.unwrapped.action_masks()
        action, _ = model.predict(obs, action_masks=mask, deterministic=True)
        assert mask[int(action)]
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    return info["kpi"]["makespan"], terminated


def test_trains_on_mixed_sizes_and_transfers_to_other_sizes_after_load(tmp_path):
    # two random sizes sharing one padded space, as for training on a few sizes
    venv = vec_env(
        instance=[{"jobs": 4, "machines": 3}, {"jobs": 6, "machines": 6}],
        max_jobs=6,
        max_machines=6,
        **CLASSIC,
    )
    model = GnnPPO("GraphDispatchPolicy", venv, seed=0, device="auto", **SMALL_PPO)
    assert all(p.device == model.device for p in model.policy.parameters())
    model.learn(64)
    model.save(tmp_path / "gnn.zip")
    loaded = GnnPPO.load(tmp_path / "gnn.zip", device="auto")
    for instance in ("la01", {"jobs": 15, "machines": 15, "seed": 3}, "ft06"):
        env = gym.make("opsrl/JobShop-v0", instance=instance, **CLASSIC)
        obs, _ = env.reset(seed=0)
        masks = env.unwrapped.action_masks()
        # same actions before and after the round trip
        before, _ = model.predict(obs, action_masks=masks, deterministic=True)
        after, _ = loaded.predict(obs, action_masks=masks, deterministic=True)
        assert int(before) == int(after)
        makespan, terminated = run_episode(loaded, env, seed=0)
        sim = env.unwrapped.sim
        assert terminated and makespan >= sim.instance.durations.sum(axis=1).max()
    venv.close()


def test_rewards_are_scaled_for_learning_only():
    venv = vec_env(n_envs=1, instance="ft06", **CLASSIC)  # durations 1..10, 36 decisions
    model = GnnPPO(
        "GraphDispatchPolicy", venv, seed=0, device="cpu", reward_scale=1000.0, **SMALL_PPO
    )
    model.learn(64)  # 2 rollouts of 32 steps: one finished episode
    ticks = model.rollout_buffer.rewards * 1000.0
    assert np.any(ticks < 0) and np.all(ticks <= 0) and np.all(ticks >= -10)
    np.testing.assert_allclose(ticks, np.round(ticks), atol=1e-3)
    # the monitor's episode return stays in the env's unit: minus the makespan
    assert model.ep_info_buffer[0]["r"] <= -55
    venv.close()


def test_learns_in_subprocess_vec_envs_with_blocking_and_shutdowns():
    venv = vec_env(
        vec_env_cls=SubprocVecEnv,
        instance={"jobs": 4, "machines": 3},
        blocking=True,
        swap=True,
        shutdown_prob=0.05,
    )
    model = GnnPPO("GraphDispatchPolicy", venv, seed=0, device="cpu", **SMALL_PPO)
    model.learn(64)
    assert model.num_timesteps == 64
    venv.close()


def mean_makespan(policy, env, seeds, deterministic: bool) -> float:
    episodes = evaluate_policy_on_seeds(policy, env, seeds, deterministic=deterministic)
    return float(np.mean([episode.kpi["makespan"] for episode in episodes]))


@pytest.mark.slow
def test_learning_beats_random_dispatching_on_random_6x6():
    env_kwargs = {"instance": {"jobs": 6, "machines": 6, "method": "uniform"}, **CLASSIC}
    venv = vec_env(n_envs=4, **env_kwargs)
    model = GnnPPO("GraphDispatchPolicy", venv, seed=0, device="cpu")
    env = gym.make("opsrl/JobShop-v0", **env_kwargs)
    held_out = list(range(1000, 1020))  # training episodes use seeds 0..3 and their successors
    untrained = mean_makespan(model, env, held_out, deterministic=False)
    model.learn(8192)
    trained = mean_makespan(model, env, held_out, deterministic=True)
    trained_sampled = mean_makespan(model, env, held_out, deterministic=False)
    random = mean_makespan(RandomPolicy(env, seed=0), env, held_out, deterministic=False)
    assert trained < random
    assert trained_sampled < random
    assert trained_sampled < untrained  # it learned, beyond what its initial weights give
    venv.close()
