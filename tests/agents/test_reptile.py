"""Reptile around SB3 algorithms: the outer update formula, step-size annealing, step counting
and callbacks, fresh inner state per task, save/load, and meta-training on side-scroller
levels with adaptation to a held-out level."""

import io

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

import opsrl  # noqa: F401 - registers the opsrl ids
from opsrl.agents.reptile import Reptile, linear_step_size, reptile_update
from opsrl.agents.reptile import reptile as reptile_module
from opsrl.evaluation import evaluate_policy_on_seeds
from opsrl.experiment import constructor_defaults

SIDE_SCROLLER = "opsrl/SideScroller-v0"
#: a small, fast side-scroller (NatureCNN's smallest input) for the PPO tests
TINY = dict(length=32, screen_size=36)
SMALL_PPO = dict(n_steps=32, batch_size=32, n_epochs=2)


def cartpole_ppo(n_envs=2, **kwargs):
    venv = make_vec_env("CartPole-v1", n_envs=n_envs, seed=0)
    return Reptile("MlpPolicy", venv, "ppo", dict(SMALL_PPO), seed=0, device="cpu", **kwargs)


def test_update_is_the_reptile_formula_on_float_tensors():
    phi = {"w": th.tensor([1.0, 2.0]), "steps": th.tensor(7)}
    adapted = [
        {"w": th.tensor([3.0, 2.0]), "steps": th.tensor(9)},
        {"w": th.tensor([1.0, 6.0]), "steps": th.tensor(11)},
    ]
    updated = reptile_update(phi, adapted, step_size=0.5)
    # phi + 0.5 * (mean(W) - phi) = [1, 2] + 0.5 * ([2, 4] - [1, 2])
    th.testing.assert_close(updated["w"], th.tensor([1.5, 3.0]))
    assert updated["steps"].item() == 7  # counters are not interpolated
    th.testing.assert_close(reptile_update(phi, adapted, 1.0)["w"], th.tensor([2.0, 4.0]))
    th.testing.assert_close(reptile_update(phi, adapted, 0.0)["w"], phi["w"])


def test_step_size_is_annealed_linearly():
    assert linear_step_size(1.0, 0.0, 0.0) == 1.0
    assert linear_step_size(1.0, 0.0, 0.25) == 0.75
    assert linear_step_size(1.0, 0.1, 1.0) == pytest.approx(0.1)
    assert linear_step_size(1.0, 0.0, 2.0) == 0.0  # clipped to the budget


class FakeInnerLearn:
    """Stands in for the inner ``learn``: sets the policy to known weights per task (phi + the
    task's shift) and counts the env steps, so the outer update can be checked exactly."""

    def __init__(self, model, shifts):
        self.model, self.shifts, self.phis, self.optimizer_states = model, shifts, [], []

    def __call__(self, total_timesteps, callback=None, reset_num_timesteps=True, tb_log_name=""):
        base = self.model.base
        task = next(i for i, env in enumerate(self.envs) if base.get_env() is env)
        self.optimizer_states.append(len(base.policy.optimizer.state))
        phi = {k: v.clone() for k, v in base.policy.state_dict().items()}
        self.phis.append(phi)
        base.policy.load_state_dict(
            {k: v + self.shifts[task] if v.is_floating_point() else v for k, v in phi.items()}
        )
        base.num_timesteps += total_timesteps
        return base


def test_outer_steps_follow_the_formula_with_annealed_step_sizes(monkeypatch):
    model = cartpole_ppo(
        task_envs=["CartPole-v1", "CartPole-v1"],
        inner_timesteps=100,
        meta_batch_size=2,
        meta_step_size=1.0,
        meta_step_size_final=0.0,
    )
    fake = FakeInnerLearn(model, shifts=[1.0, 3.0])
    built = model._build_task_envs

    def build():
        envs, owned = built()
        fake.envs = envs
        return envs, owned

    monkeypatch.setattr(model, "_build_task_envs", build)
    monkeypatch.setattr(model.base, "learn", fake)
    step_sizes = []
    update = reptile_module.reptile_update

    def recording_update(meta, adapted, step_size):
        step_sizes.append(step_size)
        return update(meta, adapted, step_size)

    monkeypatch.setattr(reptile_module, "reptile_update", recording_update)
    phi0 = model.meta_state()
    model.learn(800)  # 4 outer steps of 2 tasks x 100 steps
    assert step_sizes == [1.0, 0.75, 0.5, 0.25]
    assert model.num_timesteps == 800 and model.meta_iterations == 4
    # Both tasks each step (2 tasks, batch 2: without replacement): mean shift 2.
    # phi_k = phi_{k-1} + eps_k * 2, so the total shift is 2 * (1 + 0.75 + 0.5 + 0.25) = 5.
    for name, value in model.meta_state().items():
        if value.is_floating_point():
            th.testing.assert_close(value, phi0[name] + 5.0)
    # every adaptation started from the current phi with a fresh optimizer
    th.testing.assert_close(
        fake.phis[2]["mlp_extractor.policy_net.0.bias"],
        phi0["mlp_extractor.policy_net.0.bias"] + 2.0,
    )
    assert fake.optimizer_states[1:] == [0] * 7
    # the inner algorithm ends on phi
    for name, value in model.base.policy.state_dict().items():
        th.testing.assert_close(value, model.policy.state_dict()[name])


class StepCounter(BaseCallback):
    def __init__(self):
        super().__init__()
        self.starts = self.ends = self.rollouts = 0
        self.models = set()

    def _on_training_start(self):
        self.starts += 1

    def _on_rollout_start(self):
        self.rollouts += 1

    def _on_step(self):
        self.models.add(id(self.model))
        return True

    def _on_training_end(self):
        self.ends += 1


def test_learn_counts_env_steps_over_inner_loops_and_drives_callbacks():
    model = cartpole_ppo(task_envs=["CartPole-v1", {"id": "CartPole-v1"}], inner_timesteps=64)
    counter = StepCounter()
    model.learn(320, callback=[counter])
    # inner PPO loops collect whole rollouts of n_steps x n_envs = 64 steps
    assert model.num_timesteps == 320
    assert counter.n_calls * model.n_envs == model.num_timesteps
    assert counter.num_timesteps == model.num_timesteps
    assert counter.starts == counter.ends == 1 and counter.rollouts == 5
    assert counter.models == {id(model)}  # callbacks see the meta-learner
    assert model.meta_iterations == 1  # one batch of 5 adaptations
    assert model.get_env() is model.base.get_env()


def test_a_callback_can_stop_meta_training():
    class StopAt(BaseCallback):
        def _on_step(self):
            return self.num_timesteps < 100

    model = cartpole_ppo(task_envs=["CartPole-v1"], inner_timesteps=64, meta_batch_size=1)
    model.learn(10_000, callback=StopAt())
    assert 100 <= model.num_timesteps < 200


def test_off_policy_base_gets_an_empty_replay_buffer_per_task(monkeypatch):
    venv = make_vec_env("CartPole-v1", n_envs=1, seed=0)
    model = Reptile(
        "MlpPolicy",
        venv,
        base_algorithm=DQN,
        base_kwargs=dict(learning_starts=16, buffer_size=1000, train_freq=4),
        task_envs=["CartPole-v1", "CartPole-v1"],
        inner_timesteps=48,
        meta_batch_size=2,
        seed=0,
        device="cpu",
    )
    sizes = []
    learn = model.base.learn

    def checked_learn(*args, **kwargs):
        buffer = model.base.replay_buffer
        sizes.append(buffer.size())
        return learn(*args, **kwargs)

    monkeypatch.setattr(model.base, "learn", checked_learn)
    model.learn(192)
    assert sizes == [0, 0, 0, 0]
    assert model.num_timesteps == 192


def test_save_load_round_trip(tmp_path):
    model = cartpole_ppo(task_envs=["CartPole-v1"], inner_timesteps=64, meta_batch_size=1)
    model.learn(128)
    model.save(tmp_path / "reptile.zip")
    loaded = Reptile.load(tmp_path / "reptile.zip", device="cpu")
    assert loaded.task_envs == ["CartPole-v1"]
    assert (loaded.inner_timesteps, loaded.meta_batch_size) == (64, 1)
    assert loaded.meta_iterations == model.meta_iterations == 2
    assert loaded.num_timesteps == 128
    for name, value in model.meta_state().items():
        th.testing.assert_close(loaded.meta_state()[name], value)
    observations = np.stack([model.observation_space.sample() for _ in range(8)])
    np.testing.assert_array_equal(
        model.predict(observations, deterministic=True)[0],
        loaded.predict(observations, deterministic=True)[0],
    )
    # the file is the inner algorithm's: PPO.load gives the meta-policy as a plain model
    plain = PPO.load(tmp_path / "reptile.zip", device="cpu")
    np.testing.assert_array_equal(
        plain.predict(observations, deterministic=True)[0],
        model.predict(observations, deterministic=True)[0],
    )
    # loaded with an env, it trains on
    loaded.set_env(make_vec_env("CartPole-v1", n_envs=2, seed=1))
    loaded.learn(64, reset_num_timesteps=False)
    assert loaded.num_timesteps == 192
    buffer = io.BytesIO()
    PPO("MlpPolicy", "CartPole-v1", device="cpu").save(buffer)
    buffer.seek(0)
    with pytest.raises(ValueError, match="not saved by Reptile"):
        Reptile.load(buffer)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(inner_timesteps=0), "inner_timesteps"),
        (dict(meta_batch_size=0), "meta_batch_size"),
        (dict(meta_step_size=-0.1), "meta_step_size"),
        (dict(meta_step_size_final=float("nan")), "meta_step_size_final"),
        (dict(task_envs=[]), "task_envs"),
        (dict(task_envs="CartPole-v1"), "task_envs"),
        (dict(task_envs=["NoSuchEnv-v0"]), "unknown env id"),
        (dict(task_envs=[{"id": "CartPole-v1", "seed": 3}]), "only 'id' and 'kwargs'"),
        (dict(task_envs=[3]), "task_envs\\[0\\]"),
        (dict(task_vec_env="ray"), "task_vec_env"),
        (dict(base_algorithm="reptile"), "reptile itself"),
        (dict(base_algorithm="no_such_agent"), "unknown agent"),
    ],
)
def test_bad_arguments_are_value_errors(kwargs, message):
    venv = make_vec_env("CartPole-v1", n_envs=1, seed=0)
    with pytest.raises(ValueError, match=message):
        Reptile("MlpPolicy", venv, **kwargs)


def test_a_task_that_does_not_fit_the_policy_is_a_clear_error():
    model = cartpole_ppo(task_envs=["Acrobot-v1"], inner_timesteps=64, meta_batch_size=1)
    with pytest.raises(ValueError, match=r"task_envs\[0\] does not fit the agent"):
        model.learn(64)


def test_an_instance_base_keeps_its_own_settings():
    base = PPO("MlpPolicy", "CartPole-v1", n_steps=32, batch_size=32, device="cpu")
    model = Reptile(base_algorithm=base, task_envs=["CartPole-v1"], inner_timesteps=32)
    assert model.base is base
    with pytest.raises(ValueError, match="policy, base_kwargs"):
        Reptile("MlpPolicy", base_algorithm=base, base_kwargs={"n_steps": 8})


def test_runner_can_build_it_like_an_sb3_algorithm():
    """The experiment runner calls ``cls(policy, venv, seed=, device=, verbose=0, **hp)``
    and reads the hyperparameters from the constructor's signature."""
    defaults = constructor_defaults(Reptile)
    for name in ("base_algorithm", "base_kwargs", "task_envs", "inner_timesteps"):
        assert name in defaults
    assert not {"seed", "device", "verbose", "policy", "env"} & set(defaults)
    venv = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = Reptile("MlpPolicy", venv, seed=0, device="cpu", verbose=0, base_kwargs=dict(SMALL_PPO))
    model.learn(64)  # no task_envs: the env is the only task
    assert model.num_timesteps == 64


def test_reptile_ppo_on_side_scroller_levels_adapts_to_a_held_out_level():
    venv = make_vec_env(SIDE_SCROLLER, n_envs=2, seed=0, env_kwargs=dict(TINY, level=0))
    model = Reptile(
        "CnnPolicy",
        venv,
        base_algorithm="ppo",
        base_kwargs=dict(SMALL_PPO),
        task_envs=[{"level": 1}, {"level": 2}],  # kwargs over the env's own id and kwargs
        inner_timesteps=64,
        meta_batch_size=2,
        seed=0,
        device="cpu",
    )
    phi0 = model.meta_state()
    model.learn(256)
    assert model.num_timesteps == 256 and model.meta_iterations == 2
    phi = model.meta_state()
    assert any(not th.equal(phi[k], phi0[k]) for k in phi if phi[k].is_floating_point())
    held_out = dict(TINY, level=7)
    adapted = model.adapt(held_out, timesteps=64, seed=3)
    assert isinstance(adapted, PPO) and adapted.num_timesteps == 64
    adapted_state = adapted.policy.state_dict()
    assert any(not th.equal(adapted_state[k].cpu(), phi[k]) for k in phi)
    assert all(th.equal(v, model.meta_state()[k]) for k, v in phi.items())  # phi unchanged
    env = gym.make(SIDE_SCROLLER, **held_out)
    episodes = evaluate_policy_on_seeds(adapted, env, [0, 1])
    assert all("distance" in e.kpi for e in episodes)
    adapted.get_env().close()
    # what the experiment runner evaluates: phi itself, or phi adapted to the eval env
    assert model.policy_for_evaluation(held_out) is model
    model.eval_adapt_timesteps = 32
    adapted = model.policy_for_evaluation(held_out, seed=1)
    assert isinstance(adapted, PPO) and adapted.num_timesteps == 64  # one whole rollout
    adapted.get_env().close()
    venv.close()
