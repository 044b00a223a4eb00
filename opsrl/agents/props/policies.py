"""Policies of PROPS: SB3's actor-critic policies, used for the target and the behaviour policy.

The behaviour policy is a second instance of the same class, with its own optimizer; only its
actor is trained (its critic is never used).
"""

from stable_baselines3.common.policies import ActorCriticCnnPolicy, ActorCriticPolicy

__all__ = ["CnnPolicy", "MlpPolicy"]

MlpPolicy = ActorCriticPolicy
CnnPolicy = ActorCriticCnnPolicy
