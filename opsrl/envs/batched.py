"""The VecEnv plumbing shared by the batched envs (N copies of one env stepped in numpy).

A batched env holds its copies in arrays, not as gymnasium envs, so SB3's per-env calls
(``get_attr``, ``set_attr``, ``env_method``, ``env_is_wrapped``) have to be answered from
those arrays. :class:`BatchedVecEnv` answers them the same way for every env; a subclass
says which attributes are per copy, which methods it offers per copy and which attributes
may not be set, and implements ``reset`` and ``step_wait``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import gymnasium as gym
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices

__all__ = ["BatchedVecEnv"]


class BatchedVecEnv(VecEnv):
    """Base of the batched VecEnvs.

    Subclasses set :attr:`supported_methods` and :attr:`read_only_attributes`, implement
    :meth:`_per_copy_attributes` and, for their methods, :meth:`_bound_method` (or
    :meth:`_call_method` to answer several copies at once). Copies share their parameters:
    ``set_attr`` sets a shared attribute and must target every copy.
    """

    #: the single env's methods offered per copy by ``env_method`` (and ``get_attr``)
    supported_methods: ClassVar[tuple[str, ...]] = ()
    #: attributes ``set_attr`` refuses: per-copy state and what the construction rests on
    read_only_attributes: ClassVar[tuple[str, ...]] = ()
    #: what one env of ``num_envs`` is called in messages
    copy_noun: ClassVar[str] = "copies"

    #: the copies do not render (VecEnv reads it per copy when it is built)
    render_mode: str | None = None
    _started: bool = False
    _actions: Any = None

    # ------------------------------------------------------------------ hooks
    def _per_copy_attributes(self) -> Mapping[str, Callable[[int], Any]]:
        """Name -> function of the copy index, for the attributes that differ by copy."""
        return {}

    def _bound_method(self, name: str, index: int) -> Callable[..., Any]:
        """Copy ``index``'s version of the single env's method ``name``."""
        raise NotImplementedError(f"{type(self).__name__} has no per-copy '{name}'")

    def _call_method(
        self, name: str, indices: list[int], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> list[Any]:
        """``env_method`` for a supported ``name``: by default each copy's bound method."""
        return [self._bound_method(name, i)(*args, **kwargs) for i in indices]

    def _check_attribute(self, name: str, value: Any) -> None:
        """Raise ``ValueError`` for a bad value of a shared attribute before it is set."""

    # ------------------------------------------------------------------ VecEnv API
    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seeds ``seed + i`` for copy i, applied at the next :meth:`reset` (VecEnv API)."""
        return super().seed(seed)

    def step_async(self, actions: Any) -> None:
        """Store the actions of the next :meth:`step_wait`."""
        self._actions = actions

    def close(self) -> None:
        """Nothing to release: the copies live in this process's arrays."""

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """Per-copy values of ``attr_name`` (state, and the supported methods as callables),
        else the shared attribute."""
        idx = list(self._get_indices(indices))
        per_copy = self._per_copy_attributes()
        if attr_name in per_copy:
            return [per_copy[attr_name](i) for i in idx]
        if attr_name in self.supported_methods:
            return [self._bound_method(attr_name, i) for i in idx]
        if attr_name.startswith("__"):
            raise AttributeError(attr_name)
        value = getattr(self, attr_name)  # AttributeError for unknown names, as VecEnv expects
        return [value for _ in idx]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set a shared attribute; the copies share their parameters, so all must be
        targeted."""
        idx = sorted(self._get_indices(indices))
        name = type(self).__name__
        if attr_name in self.read_only_attributes:
            raise AttributeError(f"'{attr_name}' of {name} is read-only")
        if idx != list(range(self.num_envs)):
            raise ValueError(
                f"{name} {self.copy_noun} share their parameters; set_attr must target all "
                f"{self.copy_noun}"
            )
        self._check_attribute(attr_name, value)
        setattr(self, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """Call one of the single env's methods per copy (:attr:`supported_methods`)."""
        if method_name not in self.supported_methods:
            raise AttributeError(
                f"{type(self).__name__}.env_method does not support '{method_name}'; "
                f"supported: {', '.join(self.supported_methods)}"
            )
        idx = list(self._get_indices(indices))
        return self._call_method(method_name, idx, method_args, method_kwargs)

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        """The copies are not gymnasium envs, so none is wrapped."""
        return [False for _ in self._get_indices(indices)]

    # ------------------------------------------------------------------ helpers
    def _check_started(self) -> None:
        if not self._started:
            raise RuntimeError("call reset() first")


def no_arguments(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Raise the TypeError of a method that takes no arguments called with some."""
    if args or kwargs:
        raise TypeError(f"{name} takes no arguments")
