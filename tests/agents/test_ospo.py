"""OSPO and GRPO (multi-agent order dispatch): advantages by hand, the asymmetric clip, the KL
to the reference, masking, matched-slot storage, save/load, platform-view prediction, and
learning against random scores on a small city."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnvWrapper

from opsrl.agents.ospo import GRPO, OSPO, ScorePolicy, SharedAgentPolicy
from opsrl.agents.ospo.buffers import (
    DispatchRolloutBuffer,
    group_baseline,
    group_normalized_rewards,
    semi_mdp_returns,
    standardize,
)
from opsrl.agents.ospo.ospo import clipped_surrogate, dispatch_loss
from opsrl.agents.ospo.policies import masked_kl
from opsrl.envs.ride_sharing import RideSharingAgentVecEnv, RideSharingEnv
from opsrl.evaluation import evaluate_policy_on_seeds

#: a small city that steps fast: 4 vehicles, 9 zones, 6-minute episodes
TINY = dict(num_vehicles=4, num_zones=9, demand_rate=3.0, episode_minutes=6)


def tiny_vec(n_copies: int = 2, seed: int = 0) -> RideSharingAgentVecEnv:
    return RideSharingAgentVecEnv(n_copies, seed=seed, **TINY)


class InfoRecorder(VecEnvWrapper):
    """Keeps every step's actions, rewards and infos."""

    def __init__(self, venv):
        super().__init__(venv)
        self.steps: list[tuple[np.ndarray, np.ndarray, list[dict]]] = []
        self._actions = None

    def reset(self):
        return self.venv.reset()

    def step_async(self, actions):
        self._actions = np.array(actions)
        self.venv.step_async(actions)

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        self.steps.append((self._actions, rewards.copy(), infos))
        return obs, rewards, dones, infos


# --------------------------------------------------------------------------------------------
# Advantages against hand computation
# --------------------------------------------------------------------------------------------


def test_ospo_group_normalisation_by_hand():
    # 2 steps x 4 slots: copies 0 (slots 0, 1) and 1 (slots 2, 3).
    rewards = np.array([[1.0, 3.0, 5.0, 0.0], [2.0, 0.0, 4.0, 6.0]])
    matched = np.array([[True, True, True, False], [True, False, True, True]])
    groups = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    got = group_normalized_rewards(rewards, matched, groups)
    # step 0, copy 0: {1, 3}: mean 2, population std 1 -> -1, +1
    # step 0, copy 1: {5}: alone -> 0; step 1, copy 0: {2} -> 0
    # step 1, copy 1: {4, 6}: mean 5, std 1 -> -1, +1
    expected = np.array([[-1.0, 1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 1.0]])
    np.testing.assert_allclose(got, expected, atol=1e-7)


def test_ospo_advantage_adds_the_fairness_term_to_matched_samples_only():
    model = OSPO("ScorePolicy", tiny_vec(), seed=0, device="cpu", fairness_coef=1.0)
    buffer = model.rollout_buffer
    obs = np.zeros((8, *model.observation_space.shape), np.float32)
    rewards = np.array([1.0, 3.0, 0.0, 0.0, 2.0, 2.0, 8.0, 0.0])
    matched = np.array([True, True, False, False, True, True, True, False])
    groups = np.repeat([0, 1], 4)
    fairness = np.repeat([-0.5, 0.25], 4)
    buffer.add(
        obs,
        np.where(matched, 1, 0),
        np.zeros(8),
        rewards,
        matched,
        matched,
        groups,
        fairness,
        np.zeros(8, bool),
    )
    got = model.compute_advantages(buffer)[0]
    # copy 0: {1, 3} -> -1, +1, plus p = -0.5; copy 1: {2, 2, 8}: mean 4, std sqrt(8)
    std = np.sqrt(((2 - 4) ** 2 * 2 + (8 - 4) ** 2) / 3)
    expected = [-1.5, 0.5, 0, 0, -2 / std + 0.25, -2 / std + 0.25, 4 / std + 0.25, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_semi_mdp_reward_to_go_by_hand():
    gamma = 0.9
    rewards = np.zeros((6, 2))
    matched = np.zeros((6, 2), bool)
    dones = np.zeros((6, 2), bool)
    # Slot 0 matched at steps 0, 3 and 4 of one episode.
    for t, r in ((0, 1.0), (3, 2.0), (4, 4.0)):
        rewards[t, 0], matched[t, 0] = r, True
    # Slot 1 matched at step 1 and 4, its episode ending after step 2.
    for t, r in ((1, 1.0), (4, 5.0)):
        rewards[t, 1], matched[t, 1] = r, True
    dones[2, 1] = True
    got = semi_mdp_returns(rewards, matched, dones, gamma)
    g4 = 4.0
    g3 = 2.0 + gamma * g4
    g0 = 1.0 + gamma**3 * g3
    assert got[4, 0] == pytest.approx(g4)
    assert got[3, 0] == pytest.approx(g3)
    assert got[0, 0] == pytest.approx(g0)
    assert got[1, 1] == pytest.approx(1.0)  # the return stops at the episode end
    assert got[4, 1] == pytest.approx(5.0)
    assert got[~matched].sum() == 0.0


def test_grpo_advantage_is_the_group_baselined_return_plus_the_fairness_term():
    model = GRPO("ScorePolicy", tiny_vec(1), seed=0, device="cpu", gamma=0.5)
    assert model.reward_normalization == "buffer"
    buffer = model.rollout_buffer
    obs = np.zeros((4, *model.observation_space.shape), np.float32)
    step_rewards = [
        np.array([1.0, 3.0, 0.0, 0.0]),
        np.array([0.0, 0.0, 0.0, 2.0]),
        np.array([5.0, 0.0, 0.0, 0.0]),
    ]
    step_matched = [
        np.array([True, True, False, False]),
        np.array([False, False, False, True]),
        np.array([True, False, False, False]),
    ]
    fairness = [-0.2, 0.1, 0.3]
    for r, m, p in zip(step_rewards, step_matched, fairness, strict=True):
        buffer.add(
            obs,
            m.astype(int),
            np.zeros(4),
            r,
            m,
            m,
            np.zeros(4, int),
            np.full(4, p),
            np.zeros(4, bool),
        )
    got = model.compute_advantages(buffer)
    # Buffer standardisation of the matched rewards {1, 3, 2, 5}.
    values = np.array([1.0, 3.0, 2.0, 5.0])
    z = (values - values.mean()) / values.std()
    z1, z3, z2, z5 = z
    # Reward-to-go: slot 0 matched at steps 0 and 2 (gamma^2); slots 1 and 3 once.
    g_slot0 = z1 + 0.5**2 * z5
    expected_step0 = np.array([g_slot0 - (g_slot0 + z3) / 2, z3 - (g_slot0 + z3) / 2]) - 0.2
    np.testing.assert_allclose(got[0, :2], expected_step0, rtol=1e-6)
    assert got[1, 3] == pytest.approx(0.0 + 0.1)  # alone in its group: baseline = itself
    assert got[2, 0] == pytest.approx(0.0 + 0.3)
    # The fairness term is added (the paper's sign), not subtracted as in GRPO's code.
    no_fairness = GRPO("ScorePolicy", tiny_vec(1), seed=0, device="cpu", fairness_coef=0.0)
    no_fairness.rollout_buffer = buffer
    assert got[2, 0] - no_fairness.compute_advantages(buffer)[2, 0] == pytest.approx(0.3)


def test_reward_standardisation_over_the_buffer_or_per_step():
    rewards = np.array([[1.0, 3.0], [10.0, 20.0]])
    matched = np.ones((2, 2), bool)
    whole = standardize(rewards, matched)
    np.testing.assert_allclose(whole, (rewards - rewards.mean()) / rewards.std(), rtol=1e-6)
    per_step = standardize(rewards, matched, np.zeros((2, 2), int))
    np.testing.assert_allclose(per_step, [[-1, 1], [-1, 1]], atol=1e-6)
    np.testing.assert_allclose(
        group_baseline(rewards, matched, np.zeros((2, 2), int)), [[-1, 1], [-5, 5]]
    )


# --------------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------------


def test_the_clip_is_asymmetric():
    ratio = th.tensor([1.5, 1.5, 0.5, 0.5, 1.1])
    advantages = th.tensor([1.0, -1.0, 1.0, -1.0, 1.0])
    got = clipped_surrogate(ratio, advantages, clip_range=0.2, clip_ceiling_ratio=1.4)
    # upper clip 1 + 1.4 * 0.2 = 1.28, lower 0.8
    np.testing.assert_allclose(got.numpy(), [1.28, -1.5, 0.5, -0.8, 1.1], rtol=1e-6)
    # ratio 1.25 with A > 0 is inside OSPO's range, outside PPO's symmetric (0.8, 1.2)
    inside = clipped_surrogate(th.tensor([1.25]), th.tensor([1.0]), 0.2, 1.4)
    symmetric = clipped_surrogate(th.tensor([1.25]), th.tensor([1.0]), 0.2, 1.0)
    assert inside.item() == pytest.approx(1.25) and symmetric.item() == pytest.approx(1.2)


def test_kl_term_is_zero_when_the_policy_is_the_reference():
    model = OSPO("ScorePolicy", tiny_vec(), seed=0, device="cpu")
    obs = th.as_tensor(model.env.reset())
    log_p, mask = model.policy.log_probabilities(obs)
    reference, _ = model.reference_policy.log_probabilities(obs)
    actions = th.zeros(len(obs), dtype=th.long)
    _, terms = dispatch_loss(
        log_p,
        reference,
        mask,
        actions,
        log_p[:, 0].detach(),
        th.zeros(len(obs)),
        0.2,
        1.4,
        0.05,
        0.5,
    )
    assert terms["kl"].item() == pytest.approx(0.0, abs=1e-9)
    # Another network: a positive KL, over present options only.
    other = np.log(np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]]) + 1e-30)
    this = np.log(np.array([[0.25, 0.75, 0.0], [0.2, 0.3, 0.5]]) + 1e-30)
    mask = th.tensor([[True, True, False], [True, True, True]])
    kl = masked_kl(th.tensor(this), th.tensor(other), mask).numpy()
    expected = 0.25 * np.log(0.25 / 0.5) + 0.75 * np.log(0.75 / 0.5)
    np.testing.assert_allclose(kl, [expected, 0.0], atol=1e-9)


# --------------------------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------------------------


def score_policy(**kwargs) -> ScorePolicy:
    # vehicle features 3, K = 4 candidates of 2 features, mask 5: D = 3 + 8 + 5
    obs_space = spaces.Box(-10, 10, (16,), np.float32)
    action_space = spaces.Box(-1, 1, (5,), np.float32)
    kwargs.setdefault("candidate_features", 2)
    return ScorePolicy(obs_space, action_space, lambda _: 1e-3, **kwargs)


def observation(mask: list[int], seed: int = 0) -> np.ndarray:
    obs = np.random.default_rng(seed).normal(size=16).astype(np.float32)
    obs[-5:] = mask
    return obs


def test_masked_candidates_get_zero_probability():
    policy = score_policy()
    obs = th.as_tensor(np.stack([observation([1, 1, 0, 1, 0]), observation([1, 0, 0, 0, 0])]))
    p = policy.probabilities(obs).detach().numpy()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    # absent candidates 2 and 4 and, by default, "no order" for a vehicle with candidates
    assert p[0, 0] == 0.0 and p[0, 2] == 0.0 and p[0, 4] == 0.0
    assert p[0, 1] > 0 and p[0, 3] > 0
    # a vehicle without candidates has only "no order"
    np.testing.assert_array_equal(p[1], [1.0, 0, 0, 0, 0])
    # Scores 2p - 1: masked options score -1, the matching never picks them.
    scores, _ = policy.predict(obs.numpy())
    np.testing.assert_allclose(scores, 2 * p - 1, rtol=1e-6)
    # With the decline option, "no order" competes (and starts unlikely).
    declining = score_policy(allow_no_order=True, no_order_logit_init=-2.0)
    q = declining.probabilities(obs).detach().numpy()
    assert 0 < q[0, 0] < q[0, 1] and q[0, 2] == 0.0


def test_policy_predicts_per_vehicle_and_platform_observations(tmp_path):
    policy = score_policy()
    vehicles = np.stack([observation([1, 1, 1, 0, 0], seed=s) for s in range(3)])
    per_vehicle, _ = policy.predict(vehicles)
    assert per_vehicle.shape == (3, 5)
    platform, _ = policy.predict(vehicles.reshape(-1))
    np.testing.assert_allclose(platform, per_vehicle.reshape(-1), rtol=1e-6)
    batch, _ = policy.predict(np.stack([vehicles.reshape(-1)] * 2))
    assert batch.shape == (2, 15)
    with pytest.raises(ValueError, match="multiple"):
        policy.predict(np.zeros(17, np.float32))
    policy.save(tmp_path / "policy.pt")
    loaded = ScorePolicy.load(tmp_path / "policy.pt", device="cpu")
    np.testing.assert_array_equal(loaded.predict(vehicles)[0], per_vehicle)


def test_bad_arguments_raise_value_errors_naming_them():
    vec = tiny_vec(1)
    for kwargs, name in (
        ({"batch_size": 0}, "batch_size"),
        ({"n_gradient_steps": 1.5}, "n_gradient_steps"),
        ({"clip_range": 0.0}, "clip_range"),
        ({"exploration_decay": 1.5}, "exploration_decay"),
        ({"kl_limit": -1.0}, "kl_limit"),
        ({"ent_coef": -0.1}, "ent_coef"),
        ({"eval_freq": -1}, "eval_freq"),
        ({"learning_rate": 0.0}, "learning_rate"),
    ):
        with pytest.raises(ValueError, match=name):
            OSPO("ScorePolicy", vec, device="cpu", **kwargs)
    with pytest.raises(ValueError, match="reward_normalization"):
        GRPO("ScorePolicy", vec, device="cpu", reward_normalization="episode")
    with pytest.raises(ValueError, match="gamma"):
        GRPO("ScorePolicy", vec, device="cpu", gamma=1.5)
    with pytest.raises(ValueError, match="candidate_features"):
        score_policy(candidate_features=0)
    with pytest.raises(ValueError, match="cannot hold"):
        score_policy(candidate_features=4)


# --------------------------------------------------------------------------------------------
# Collection, training, persistence
# --------------------------------------------------------------------------------------------


def test_the_stored_action_is_the_matched_slot_with_its_policy_probability():
    recorder = InfoRecorder(tiny_vec())
    model = OSPO("ScorePolicy", recorder, n_steps=6, seed=0, device="cpu", eval_freq=None)
    model.learn(6 * recorder.num_envs)  # one rollout, then one update
    buffer = model.rollout_buffer
    assert len(recorder.steps) == 6 and model.exploration_rate < 1.0
    for t, (actions, rewards, infos) in enumerate(recorder.steps):
        slot = np.array([info["matched_slot"] for info in infos])
        np.testing.assert_array_equal(buffer.actions[t], np.where(slot >= 0, slot + 1, 0))
        np.testing.assert_array_equal(buffer.matched[t], slot >= 0)
        np.testing.assert_array_equal(buffer.groups[t], [info["copy"] for info in infos])
        np.testing.assert_allclose(buffer.rewards[t], rewards)
        # epsilon = 1 in the first rollout: every vehicle's scores were random, yet the
        # stored option is what the platform matched
        assert not np.allclose(actions, 2 * np.exp(0) - 1)
    assert buffer.matched.any()
    # The behaviour log-probability is the policy's at collection (OSPO's code).
    fresh = OSPO("ScorePolicy", tiny_vec(), n_steps=6, seed=0, device="cpu", eval_freq=None)
    obs = th.as_tensor(buffer.observations[buffer.matched])
    log_p, _ = fresh.policy.log_probabilities(obs)
    chosen = log_p.gather(1, th.as_tensor(buffer.actions[buffer.matched])[:, None]).squeeze(1)
    np.testing.assert_allclose(buffer.log_probs[buffer.matched], chosen.detach(), rtol=1e-5)


def test_evaluation_renews_the_reference_and_then_switches_the_kl_on():
    model = OSPO(
        "ScorePolicy",
        tiny_vec(),
        n_steps=6,
        seed=0,
        device="cpu",
        eval_freq=2,
        learning_rate=1e-2,
        exploration_initial_eps=0.0,
        kl_coef=0.5,
    )
    model.learn(4 * 6 * model.n_envs)  # rollouts 2 and 4 are greedy evaluations
    assert np.isfinite(model.best_eval_return)
    reference = [p.detach().clone() for p in model.reference_policy.parameters()]
    model._evaluated(model.best_eval_return + 1.0)  # an improvement: copy the policy
    for p, q in zip(model.policy.parameters(), model.reference_policy.parameters(), strict=True):
        assert th.equal(p, q)
    assert not all(
        th.equal(p, q) for p, q in zip(reference, model.reference_policy.parameters(), strict=True)
    )
    model._evaluated(model.best_eval_return - 1.0)  # none: beta switches on
    assert model.reference_active
    # A policy far from the reference: every minibatch exceeds kl_limit and is skipped.
    with th.no_grad():
        for p in model.policy.scorer.parameters():
            p.add_(th.randn_like(p))
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.kl_limit = 1e-6
    model.learn(6 * model.n_envs, reset_num_timesteps=False)
    assert all(th.equal(p, q) for p, q in zip(before, model.policy.parameters(), strict=True))


def test_save_load_round_trip(tmp_path):
    for algorithm in (OSPO, GRPO):
        model = algorithm(
            "ScorePolicy",
            tiny_vec(),
            n_steps=6,
            seed=0,
            device="cpu",
            eval_freq=1,
            learning_rate=1e-2,
            exploration_initial_eps=0.5,
        )
        model.learn(2 * 6 * model.n_envs)
        model.reference_active = True
        with th.no_grad():  # make policy and reference differ
            next(model.policy.scorer.parameters()).add_(0.1)
        model.save(tmp_path / "model.zip")
        loaded = algorithm.load(tmp_path / "model.zip", device="cpu")
        obs = tiny_vec(seed=3).reset()
        np.testing.assert_array_equal(model.predict(obs)[0], loaded.predict(obs)[0])
        for p, q in zip(
            model.reference_policy.parameters(), loaded.reference_policy.parameters(), strict=True
        ):
            assert th.equal(p, q)
        assert loaded.exploration_rate == model.exploration_rate < 0.5
        assert loaded.best_eval_return == model.best_eval_return
        assert loaded.reference_active
        # training goes on from the loaded state
        loaded.set_env(tiny_vec())
        loaded.learn(6 * loaded.n_envs, reset_num_timesteps=False)


def test_trained_model_plays_the_platform_env_and_ppo_through_the_adapter():
    from stable_baselines3 import PPO

    model = GRPO("ScorePolicy", tiny_vec(), n_steps=6, seed=0, device="cpu")
    model.learn(6 * model.n_envs)
    env = RideSharingEnv(**TINY)
    episodes = evaluate_policy_on_seeds(model, env, seeds=[0, 1])
    assert [e.length for e in episodes] == [6, 6] and "served_orders" in episodes[0].kpi
    # Plain PPO on the per-vehicle VecEnv (parameter sharing), played on the platform view.
    ppo = PPO("MlpPolicy", tiny_vec(), n_steps=6, batch_size=24, n_epochs=1, seed=0, device="cpu")
    shared = SharedAgentPolicy(ppo)
    obs, _ = env.reset(seed=0)
    action, _ = shared.predict(obs)
    assert action.shape == env.action_space.shape
    per_vehicle, _ = ppo.predict(obs.reshape(TINY["num_vehicles"], -1), deterministic=True)
    np.testing.assert_allclose(action, per_vehicle.reshape(-1))
    assert len(evaluate_policy_on_seeds(shared, env, seeds=[0])) == 1


def test_buffer_yields_matched_samples_only():
    buffer = DispatchRolloutBuffer(
        2, spaces.Box(-1, 1, (3,)), spaces.Box(-1, 1, (2,)), device="cpu", n_envs=2
    )
    obs = np.arange(6, dtype=np.float32).reshape(2, 3)
    buffer.add(
        obs,
        [1, 0],
        [-0.5, -1.0],
        [2.0, 0.0],
        [True, False],
        [True, True],
        [0, 0],
        [0.0, 0.0],
        [False, False],
    )
    buffer.add(
        obs + 10,
        [0, 0],
        [0.0, 0.0],
        [0.0, 0.0],
        [False, False],
        [False, False],
        [0, 0],
        [0.0, 0.0],
        [False, False],
    )
    batches = list(buffer.get(batch_size=5, n_batches=3, rng=np.random.default_rng(0)))
    assert len(batches) == 3
    for batch in batches:
        np.testing.assert_array_equal(batch.observations.numpy(), np.tile(obs[0], (5, 1)))
        assert (batch.actions == 1).all() and np.allclose(batch.old_log_prob, -0.5)


# --------------------------------------------------------------------------------------------
# Learning
# --------------------------------------------------------------------------------------------

SMALL_CITY = dict(num_vehicles=10, episode_minutes=30)
#: the documented small-budget settings (see OSPO's docstring)
SMALL_BUDGET = dict(learning_rate=1e-3, lr_decay=0.995, exploration_decay=0.9, kl_limit=0.2)


def kpis_of(predict, n_copies: int = 8, seed: int = 1000) -> dict[str, float]:
    vec = RideSharingAgentVecEnv(n_copies, seed=seed, **SMALL_CITY)
    obs = vec.reset()
    for _ in range(SMALL_CITY["episode_minutes"]):
        obs, _, _, infos = vec.step(predict(obs))
    kpis = [infos[c * vec.num_agents]["kpi"] for c in range(n_copies)]
    return {key: float(np.mean([k[key] for k in kpis])) for key in kpis[0]}


def test_smoke_learn_logs_and_is_deterministic():
    runs = []
    for _ in range(2):
        model = OSPO(
            "ScorePolicy", tiny_vec(), n_steps=6, seed=1, device="cpu", eval_freq=2, **SMALL_BUDGET
        )
        model.learn(3 * 6 * model.n_envs)
        runs.append(model.predict(tiny_vec(seed=9).reset())[0])
    np.testing.assert_array_equal(runs[0], runs[1])
    assert model._n_iterations == 3 and model.num_timesteps == 3 * 6 * 8


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", [OSPO, GRPO])
def test_learns_to_beat_random_scores(algorithm):
    rng = np.random.default_rng(0)
    random_kpi = kpis_of(lambda o: rng.uniform(-1, 1, (o.shape[0], 5)).astype(np.float32))
    vec = RideSharingAgentVecEnv(4, seed=0, **SMALL_CITY)
    model = algorithm("ScorePolicy", vec, n_steps=30, seed=0, device="cpu", **SMALL_BUDGET)
    model.learn(60 * 30 * vec.num_envs)  # 60 updates of 4 episodes
    learned = kpis_of(lambda o: model.predict(o)[0])
    assert learned["served_orders"] > random_kpi["served_orders"]
    assert learned["total_reward"] > 1.1 * random_kpi["total_reward"]
