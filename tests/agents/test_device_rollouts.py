"""Rollouts moved to the device once per update give the same training as SB3's per-minibatch
copies (checked on the CPU, where both paths run; CI has no GPU)."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.vec_env import VecMonitor

from opsrl.agents.cmorl import MOPPO, make_mo_vec_env
from opsrl.agents.device_rollouts import (
    DeviceRolloutMixin,
    device_rollout_buffer_class,
    rollouts_on_device,
)
from opsrl.agents.pdppo import PDPPO
from opsrl.agents.props import PROPS
from opsrl.envs.lot_sizing.vec import LotSizingVecEnv


class _DictObservation(gym.ObservationWrapper):
    def __init__(self, env):
        super().__init__(env)
        self.observation_space = gym.spaces.Dict({"state": env.observation_space})

    def observation(self, observation):
        return {"state": observation}


def _lot_sizing():
    return VecMonitor(LotSizingVecEnv(2, seed=0, instance="3x2"))


CASES = {
    "ppo": lambda: PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, seed=3),
    "ppo_dict": lambda: PPO(
        "MultiInputPolicy",
        _DictObservation(gym.make("CartPole-v1")),
        n_steps=64,
        batch_size=32,
        seed=3,
    ),
    "maskable_ppo": lambda: MaskablePPO(
        "MlpPolicy", _lot_sizing(), n_steps=32, batch_size=16, seed=3
    ),
    "pdppo": lambda: PDPPO("MlpPolicy", _lot_sizing(), n_steps=32, batch_size=16, seed=3),
    "props": lambda: PROPS(
        "MlpPolicy", "CartPole-v1", n_steps=64, n_batches=4, props_n_steps=64, seed=3
    ),
    "a2c": lambda: A2C("MlpPolicy", "CartPole-v1", n_steps=8, seed=3),
    "moppo": lambda: MOPPO(
        "MlpPolicy",
        make_mo_vec_env("opsrl/mo-lot-sizing-v0", 2, seed=0, env_kwargs={"instance": "3x2"}),
        weights=[0.5, 0.5],
        n_steps=32,
        batch_size=16,
        seed=3,
    ),
}


def _parameters(model) -> list[np.ndarray]:
    return [p.detach().cpu().numpy().copy() for p in model.policy.parameters()]


@pytest.mark.parametrize("name", list(CASES))
def test_same_training_with_rollouts_moved_once(name):
    reference = CASES[name]()
    reference.learn(128)
    model = CASES[name]()
    assert rollouts_on_device(model, force=True)
    assert isinstance(model.rollout_buffer, DeviceRolloutMixin)
    model.learn(128)
    for before, after in zip(_parameters(reference), _parameters(model), strict=True):
        np.testing.assert_array_equal(before, after)


def test_minibatches_are_the_buffers_own_rows():
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=32, batch_size=8, seed=0)
    model.learn(32)  # fills the buffer
    plain = model.rollout_buffer
    rollouts_on_device(model, force=True)
    np.random.seed(5)
    moved = list(model.rollout_buffer.get(8))
    plain.__dict__.update(model.rollout_buffer.__dict__)  # flattened by the first get()
    np.random.seed(5)
    copied = list(plain.get(8))
    assert len(moved) == len(copied) == 4
    for a, b in zip(moved, copied, strict=True):
        for x, y in zip(a, b, strict=True):
            assert th.equal(x, y)


def test_applies_only_off_the_cpu_and_to_on_policy_models():
    from stable_baselines3 import SAC

    model = PPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=16, device="cpu")
    assert not rollouts_on_device(model)
    assert not isinstance(model.rollout_buffer, DeviceRolloutMixin)
    sac = SAC("MlpPolicy", "Pendulum-v1", buffer_size=100, device="cpu")
    assert not rollouts_on_device(sac, force=True)
    cls = device_rollout_buffer_class(type(model.rollout_buffer))
    assert device_rollout_buffer_class(cls) is cls
    assert device_rollout_buffer_class(type(model.rollout_buffer)) is cls
