"""SubPO: the signals on a hand-made batch (reward-to-go, one-step, per-step baseline), the
rollout bookkeeping (step indices, whole episodes, episodes cut by the rollout), the natural
gradient against an explicit Fisher matrix, learning to cover a corridor where the modular
reward does not, save/load, bad arguments, and a run through ``opsrl.experiment``.

The tests use a tiny coverage walk defined here (the submodular grid envs live elsewhere):
a corridor of 7 cells, start at the left end, H = 6 moves left / stay / right, F(V) = the
summed weights of the visited cells with weight 3 on cell 1 and 1 elsewhere. The most F
reachable is 9 (walk right: cells 0..6); the modular reward w(s_{t+1}) is largest by moving to
cell 1 and staying there (F = 4).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from gymnasium.envs.classic_control import CartPoleEnv
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

from opsrl.agents.subpo import (
    SubPO,
    SubPOPolicy,
    complete_episodes,
    natural_gradient_direction,
    policy_gradient_loss,
    reward_to_go,
    submodular_signal,
    time_step_baseline,
)

WEIGHTS = (1.0, 3.0, 1.0, 1.0, 1.0, 1.0, 1.0)
BEST_F = 9.0  # walk right: every cell
MODULAR_F = 4.0  # step onto the heavy cell and stay
TEST_ENV_ID = "subpo_test/Corridor-v0"


class CorridorCoverageEnv(gym.Env):
    """A coverage walk on a corridor, with the submodular grid envs' interface.

    Actions 0 / 1 / 2 move left / stay / right (walls clamp). ``reward="marginal"``:
    F(tau_{0:t+1}) - F(tau_{0:t}); ``"modular"``: the weight of the cell entered (repeats
    counted). ``observation="state_time"``: (position / (L - 1), t / H); ``"visited"``: that plus
    the 0/1 visited cells. ``info["kpi"]["F"]`` is F of the cells visited so far, the start cell
    included.
    """

    def __init__(
        self,
        weights: tuple[float, ...] = WEIGHTS,
        horizon: int = 6,
        reward: str = "marginal",
        observation: str = "state_time",
        render_mode: str | None = None,
    ) -> None:
        self.render_mode = render_mode
        self.weights = np.asarray(weights, dtype=np.float64)
        self.length = len(self.weights)
        self.horizon = horizon
        self.reward = reward
        self.observation = observation
        self.action_space = spaces.Discrete(3)
        size = 2 + (self.length if observation == "visited" else 0)
        self.observation_space = spaces.Box(0.0, 1.0, (size,), np.float32)

    def _obs(self) -> np.ndarray:
        features = [self.position / (self.length - 1), self.t / self.horizon]
        if self.observation == "visited":
            features += self.visited.astype(float).tolist()
        return np.asarray(features, dtype=np.float32)

    def coverage(self) -> float:
        return float(self.weights[self.visited].sum())

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.position, self.t = 0, 0
        self.visited = np.zeros(self.length, dtype=bool)
        self.visited[0] = True
        return self._obs(), {}

    def step(self, action):
        before = self.coverage()
        self.position = int(np.clip(self.position + int(action) - 1, 0, self.length - 1))
        self.visited[self.position] = True
        self.t += 1
        if self.reward == "marginal":
            reward = self.coverage() - before
        else:
            reward = float(self.weights[self.position])
        return self._obs(), reward, self.t >= self.horizon, False, {"kpi": {"F": self.coverage()}}


def corridor_venv(n_envs: int = 8, seed: int = 0, **env_kwargs) -> DummyVecEnv:
    return make_vec_env(CorridorCoverageEnv, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs)


def greedy_coverage(model: SubPO, **env_kwargs) -> float:
    """F of the greedy policy's trajectory (the corridor is deterministic)."""
    env = CorridorCoverageEnv(**env_kwargs)
    obs, _ = env.reset(seed=0)
    done = False
    while not done:
        action, _ = model.predict(obs, deterministic=True)
        obs, _, done, _, info = env.step(action)
    return info["kpi"]["F"]


# --------------------------------------------------------------------------------------------
# Signals on a hand-made batch
# --------------------------------------------------------------------------------------------

# Two slots, six rows. Slot 0: two whole episodes (rows 0-2, 3-5). Slot 1: the end of an
# episode begun in the previous rollout (row 0, step index 2), a whole episode (rows 1-3), and
# one still running at the end (rows 4-5).
REWARDS = np.array([[1, 5], [0, 1], [2, 1], [3, 1], [1, 2], [0, 4]], dtype=float)
ENDS = np.array([[0, 1], [0, 0], [1, 0], [0, 1], [0, 0], [1, 0]], dtype=bool)
STEPS = np.array([[0, 2], [1, 0], [2, 1], [0, 2], [1, 0], [2, 1]])


def test_reward_to_go_sums_the_gains_to_the_end_of_each_episode():
    expected = np.array([[3, 5], [2, 3], [2, 2], [4, 1], [1, 6], [0, 4]], dtype=float)
    np.testing.assert_allclose(reward_to_go(REWARDS, ENDS), expected)
    complete = np.array([[1, 1], [1, 1], [1, 1], [1, 1], [1, 0], [1, 0]], dtype=bool)
    np.testing.assert_array_equal(complete_episodes(ENDS), complete)


def test_reward_to_go_minus_time_step_baseline_by_hand():
    weights, valid = submodular_signal(REWARDS, ENDS, STEPS)
    # valid reward-to-go by step index: t=0 {3, 4, 3}, t=1 {2, 1, 2}, t=2 {2, 0, 5, 1}
    b0, b1, b2 = 10 / 3, 5 / 3, 2.0
    expected = np.array(
        [
            [3 - b0, 5 - b2],
            [2 - b1, 3 - b0],
            [2 - b2, 2 - b1],
            [4 - b0, 1 - b2],
            [1 - b1, 0],
            [-b2, 0],
        ]
    )
    np.testing.assert_allclose(weights, expected)
    assert valid.sum() == 10 and not valid[4:, 1].any()


def test_one_step_signal_is_the_immediate_gain_minus_its_step_mean():
    weights, valid = submodular_signal(REWARDS, ENDS, STEPS, signal="one_step")
    assert valid.all()  # the immediate gain is known even where the episode goes on
    baseline = {0: 7 / 4, 1: 6 / 4, 2: 8 / 4}
    expected = REWARDS - np.vectorize(baseline.get)(STEPS)
    np.testing.assert_allclose(weights, expected)
    np.testing.assert_allclose(
        time_step_baseline(REWARDS, STEPS, valid), np.vectorize(baseline.get)(STEPS)
    )


def test_no_baseline_and_normalisation_scale_only():
    raw, valid = submodular_signal(REWARDS, ENDS, STEPS, baseline="none")
    np.testing.assert_allclose(raw[valid], reward_to_go(REWARDS, ENDS)[valid])
    scaled, _ = submodular_signal(REWARDS, ENDS, STEPS, baseline="none", normalize=True)
    np.testing.assert_allclose(scaled[valid], raw[valid] / raw[valid].std(), rtol=1e-6)
    assert (scaled[valid] > 0).sum() == (raw[valid] > 0).sum()  # not centred


def test_reward_to_go_on_marginal_gains_is_f_of_the_trajectory_minus_f_so_far():
    env = CorridorCoverageEnv()
    env.reset(seed=0)
    coverage, gains = [env.coverage()], []
    for action in (2, 2, 1, 0, 2, 2):
        _, reward, _, _, info = env.step(action)
        gains.append(reward)
        coverage.append(info["kpi"]["F"])
    ends = np.zeros((6, 1), dtype=bool)
    ends[-1] = True
    to_go = reward_to_go(np.array(gains)[:, None], ends)[:, 0]
    np.testing.assert_allclose(to_go, coverage[-1] - np.array(coverage[:-1]))


def test_policy_gradient_loss_by_hand():
    log_prob = th.tensor([-0.5, -1.0, -2.0])
    entropy = th.tensor([1.0, 0.5, 0.0])
    weights = th.tensor([2.0, -1.0, 0.5])
    loss, terms = policy_gradient_loss(log_prob, entropy, weights, ent_coef=0.1)
    surrogate = (-1.0 + 1.0 - 1.0) / 3
    assert terms["surrogate"].item() == pytest.approx(surrogate)
    assert loss.item() == pytest.approx(-surrogate - 0.1 * 0.5)


# --------------------------------------------------------------------------------------------
# Rollouts of whole episodes
# --------------------------------------------------------------------------------------------


def test_rollout_holds_whole_episodes_with_their_step_indices():
    model = SubPO("MlpPolicy", corridor_venv(n_envs=4), episodes_per_update=10, seed=0)
    assert model.horizon == 6  # read from the env
    assert model.n_steps == 3 * 6  # ceil(10 / 4) episodes per slot
    model.learn(model.n_steps * 4)
    buffer = model.rollout_buffer
    np.testing.assert_array_equal(buffer.time_steps[:, 0], np.tile(np.arange(6), 3))
    assert (buffer.episode_ends == (buffer.time_steps == 5)).all()
    weights, valid = model.signal_weights()
    assert valid.all()
    # one baseline per step index: the weights of each step index average to zero
    for step in range(6):
        assert weights[buffer.time_steps == step].mean() == pytest.approx(0.0, abs=1e-9)


def test_horizon_from_max_episode_steps_or_given_or_missing():
    assert SubPO("MlpPolicy", "CartPole-v1", episodes_per_update=1).horizon == 500
    assert SubPO("MlpPolicy", "CartPole-v1", episodes_per_update=2, horizon=10).n_steps == 20
    with pytest.raises(ValueError, match="horizon"):
        SubPO("MlpPolicy", DummyVecEnv([CartPoleEnv]), episodes_per_update=1)


def test_episodes_cut_by_the_rollout_are_finished_in_the_next_one():
    # horizon 4 against episodes of 6 steps: every rollout ends inside an episode
    model = SubPO("MlpPolicy", corridor_venv(n_envs=2), episodes_per_update=2, horizon=4, seed=0)
    model.learn(8)
    np.testing.assert_array_equal(model.rollout_buffer.time_steps[:, 0], [0, 1, 2, 3])
    assert not model.signal_weights()[1].any()  # no episode has ended: no reward-to-go yet
    model.learn(8, reset_num_timesteps=False)
    np.testing.assert_array_equal(model.rollout_buffer.time_steps[:, 0], [4, 5, 0, 1])
    _, valid = model.signal_weights()
    np.testing.assert_array_equal(valid[:, 0], [True, True, False, False])
    _, one_step_valid = submodular_signal(
        model.rollout_buffer.rewards,
        model.rollout_buffer.episode_ends,
        model.rollout_buffer.time_steps,
        signal="one_step",
    )
    assert one_step_valid.all()


# --------------------------------------------------------------------------------------------
# Natural gradient
# --------------------------------------------------------------------------------------------


def test_natural_direction_solves_the_damped_fisher_system():
    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    policy = SubPOPolicy(observation_space, spaces.Discrete(3), lambda _: 0.0, net_arch=[])
    rng = np.random.default_rng(0)
    with th.no_grad():
        for param in policy.parameters():
            param.copy_(th.as_tensor(rng.normal(size=param.shape), dtype=th.float32))
    observations = th.as_tensor(rng.uniform(-1, 1, (5, 2)), dtype=th.float32)
    actions = th.tensor([0, 2, 1, 1, 0])
    weights = th.tensor([1.0, -0.5, 2.0, 0.3, -1.0])
    damping = 0.1
    step = natural_gradient_direction(
        policy, observations, actions, weights, 0.0, cg_damping=damping, cg_max_steps=40
    )
    # explicit Fisher: mean over states of sum_a pi(a|s) grad log pi(a|s) grad log pi(a|s)^T
    params = list(policy.parameters())
    fisher = th.zeros(9, 9)
    for state in observations:
        log_p = th.log_softmax(policy.action_net(state[None]), dim=-1)[0]
        for action in range(3):
            score = th.cat(
                [g.reshape(-1) for g in th.autograd.grad(log_p[action], params, retain_graph=True)]
            )
            fisher += log_p[action].exp().detach() * th.outer(score, score) / len(observations)
    expected = th.linalg.solve(fisher + damping * th.eye(9), step.gradient)
    np.testing.assert_allclose(step.direction.numpy(), expected.numpy(), rtol=1e-3, atol=1e-4)
    quadratic = step.direction @ (fisher + damping * th.eye(9)) @ step.direction
    assert step.curvature == pytest.approx(quadratic.item(), rel=1e-3)


def test_kl_normalised_natural_step_improves_the_batch_objective_by_about_target_kl():
    model = SubPO(
        "MlpPolicy", corridor_venv(), episodes_per_update=32, natural_gradient=True, seed=0
    )
    model.learn(1)  # a rollout of 32 episodes (and a first step)
    model.train()  # a natural step on that batch from the current parameters
    logged = dict(model.logger.name_to_value)
    weights, valid = model.signal_weights()
    samples = model.rollout_buffer.samples(valid)
    with th.no_grad():
        log_prob, _ = model.policy.evaluate_actions(samples.observations, samples.actions)
    surrogate_after = (log_prob * th.as_tensor(weights[valid], dtype=th.float32)).mean()
    assert surrogate_after.item() > logged["train/surrogate"]
    # the step is sized so that the quadratic model of the KL is target_kl (0.01)
    assert 0.25 * 0.01 < logged["train/kl"] < 4 * 0.01
    assert logged["train/natural_step_size"] > 0


# --------------------------------------------------------------------------------------------
# Learning: marginal gains cover the corridor, the modular reward does not
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("natural_gradient", [False, True], ids=["adam", "natural"])
def test_subpo_covers_the_corridor(natural_gradient):
    model = SubPO(
        "MlpPolicy",
        corridor_venv(seed=1),
        learning_rate=0.1,
        episodes_per_update=32,
        natural_gradient=natural_gradient,
        seed=1,
    )
    untrained = np.mean(
        [
            info["kpi"]["F"]
            for info in _sampled_episode_infos(model, n_episodes=16)  # stochastic start policy
        ]
    )
    model.learn(15 * model.n_steps * model.n_envs)
    assert untrained < BEST_F - 2
    assert greedy_coverage(model) == BEST_F


def test_modular_reward_pg_stays_on_the_heavy_cell():
    model = SubPO(
        "MlpPolicy",
        corridor_venv(seed=1, reward="modular"),
        learning_rate=0.1,
        episodes_per_update=32,
        seed=1,
    )
    model.learn(15 * model.n_steps * model.n_envs)
    assert greedy_coverage(model, reward="modular") <= MODULAR_F + 1 < BEST_F


def _sampled_episode_infos(model: SubPO, n_episodes: int) -> list[dict]:
    env = CorridorCoverageEnv()
    infos = []
    for seed in range(n_episodes):
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            action, _ = model.predict(obs, deterministic=False)
            obs, _, done, _, info = env.step(action)
        infos.append(info)
    return infos


# --------------------------------------------------------------------------------------------
# API: save/load, Dict observations, bad arguments, the experiment runner
# --------------------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    model = SubPO(
        "MlpPolicy",
        corridor_venv(n_envs=2, observation="visited"),
        episodes_per_update=4,
        signal="one_step",
        seed=0,
    )
    model.learn(2 * model.n_steps * model.n_envs)
    model.save(tmp_path / "subpo")
    loaded = SubPO.load(tmp_path / "subpo", device="cpu")
    assert (loaded.horizon, loaded.n_steps, loaded.signal) == (6, 12, "one_step")
    observations = np.random.default_rng(0).uniform(0, 1, (32, 9)).astype(np.float32)
    np.testing.assert_array_equal(
        model.predict(observations, deterministic=True)[0],
        loaded.predict(observations, deterministic=True)[0],
    )
    # and it trains on from where it stopped
    loaded.set_env(corridor_venv(n_envs=2, observation="visited"))
    loaded.learn(loaded.n_steps * 2, reset_num_timesteps=False)
    assert loaded.num_timesteps == model.num_timesteps + 24


class _DictObservation(gym.ObservationWrapper):
    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = spaces.Dict(
            {"position": spaces.Box(0, 1, (1,), np.float32), "time": spaces.Box(0, 1, (1,))}
        )

    def observation(self, observation):
        return {"position": observation[:1], "time": observation[1:].astype(np.float32)}


def test_dict_observations_with_the_multi_input_policy():
    venv = DummyVecEnv([lambda: _DictObservation(CorridorCoverageEnv()) for _ in range(2)])
    model = SubPO("MultiInputPolicy", venv, episodes_per_update=2, seed=0)
    model.learn(model.n_steps * 2)
    action, _ = model.predict({"position": np.array([0.0]), "time": np.array([0.5])})
    assert action in (0, 1, 2)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"episodes_per_update": 0}, "episodes_per_update"),
        ({"episodes_per_update": 2.5}, "episodes_per_update"),
        ({"horizon": 0}, "horizon"),
        ({"signal": "cumulative"}, "signal"),
        ({"baseline": "mean"}, "baseline"),
        ({"ent_coef": -0.1}, "ent_coef"),
        ({"ent_coef_schedule": "linear"}, "ent_coef_schedule"),
        ({"max_grad_norm": 0.0}, "max_grad_norm"),
        ({"target_kl": -0.01}, "target_kl"),
        ({"cg_max_steps": 0}, "cg_max_steps"),
        ({"cg_damping": -1.0}, "cg_damping"),
        ({"learning_rate": 0.0}, "learning_rate"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SubPO("MlpPolicy", corridor_venv(n_envs=1), **kwargs)


def test_harmonic_entropy_schedule():
    model = SubPO(
        "MlpPolicy",
        corridor_venv(n_envs=2),
        episodes_per_update=2,
        ent_coef=0.3,
        ent_coef_schedule="harmonic",
    )
    assert model.current_ent_coef() == pytest.approx(0.3)
    model.learn(3 * model.n_steps * 2)
    assert model.current_ent_coef() == pytest.approx(0.3 / 4)


@pytest.fixture
def subpo_registered(monkeypatch):
    """The corridor as a registered env id, and ``subpo`` in the agent table if missing."""
    from opsrl import registry

    if TEST_ENV_ID not in gym.registry:
        gym.register(TEST_ENV_ID, entry_point=CorridorCoverageEnv)
    if "subpo" not in registry.agent_names():
        entry = registry.AgentEntry(
            "subpo", "opsrl.agents.subpo:SubPO", "SubPO: policy gradient on marginal gains", "opsrl"
        )
        monkeypatch.setattr(registry, "AGENT_TABLE", (*registry.AGENT_TABLE, entry))
    yield
    gym.registry.pop(TEST_ENV_ID, None)


def test_subpo_and_its_modular_baseline_run_through_the_experiment_runner(
    tmp_path, subpo_registered
):
    from opsrl.experiment import run_experiment
    from opsrl.spec import spec_from_dict

    hyperparams = {"episodes_per_update": 8, "learning_rate": 0.1}
    spec = spec_from_dict(
        {
            "name": "subpo_corridor",
            "envs": [{"id": TEST_ENV_ID, "label": "Corridor"}],
            "agents": [
                {"name": "subpo", "hyperparams": hyperparams},
                {
                    "name": "subpo",
                    "label": "modpo",
                    "env_kwargs": {"reward": "modular"},
                    "hyperparams": hyperparams,
                },
            ],
            "seeds": [0],
            "timesteps": 96,
            "n_envs": 2,
            "eval": {"episodes": 2},
            "output_dir": str(tmp_path),
        }
    )
    result = run_experiment(spec, progress=False, report=False)
    assert not result.failures, result.failures
    final = result.table[result.table["metric"] == "kpi/F"].set_index("agent")["value"]
    assert set(final.index) == {"subpo", "modpo"}
    assert ((final >= 1.0) & (final <= BEST_F)).all()


@pytest.mark.slow
def test_subpo_beats_the_modular_reward_on_the_coverage_grid():
    submodular = pytest.importorskip("opsrl.envs.submodular")
    kwargs = {"size": (10, 10), "horizon": 20, "objective": "coverage"}

    def sampled_coverage(model: SubPO) -> float:
        env = submodular.SubmodularGridEnv(**kwargs)
        values = []
        for seed in range(10):
            obs, _ = env.reset(seed=seed)
            done = False
            while not done:
                action, _ = model.predict(obs, deterministic=False)
                obs, _, done, _, info = env.step(action)
            values.append(info["kpi"]["F"])
        return float(np.mean(values))

    coverage = {}
    for reward in ("marginal", "modular"):
        venv = make_vec_env(
            submodular.SubmodularGridEnv, n_envs=10, seed=0, env_kwargs={**kwargs, "reward": reward}
        )
        model = SubPO("MlpPolicy", venv, episodes_per_update=50, seed=0)
        model.learn(40 * model.n_steps * model.n_envs)
        coverage[reward] = sampled_coverage(model)
    assert coverage["marginal"] > 1.2 * coverage["modular"], coverage
