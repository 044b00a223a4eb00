"""On-policy rollouts moved to the learner's device once per update.

SB3's rollout buffers keep numpy arrays and build every minibatch on the host, then copy it
to the device (``RolloutBuffer._get_samples`` -> ``to_torch``): with a GPU learner that is
``n_epochs x n_minibatches`` host-to-device copies per update. :func:`rollouts_on_device`
makes a model's buffer copy the whole flattened rollout once, at the first minibatch of an
update, and cut the minibatches from it on the device. It works for any subclass of SB3's
``RolloutBuffer`` whose samples are per-row (SB3's, sb3-contrib's maskable ones, PDPPO's
post-decision, C-MORL's vector-reward and PROPS' buffers): it reuses the buffer's own
``_get_samples`` for all rows at once, so the minibatches are the same tensors as before.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.buffers import RolloutBuffer

__all__ = ["DeviceRolloutMixin", "device_rollout_buffer_class", "rollouts_on_device"]


def _rows(field: Any, index: th.Tensor) -> Any:
    if isinstance(field, th.Tensor):
        return field.index_select(0, index)
    if isinstance(field, dict):
        return {key: _rows(value, index) for key, value in field.items()}
    return field  # None and other non-row fields stay as they are


class DeviceRolloutMixin:
    """Mixin for a ``RolloutBuffer`` subclass: all rows to the device once per ``get()``."""

    _all_samples: Any = None

    def get(self, batch_size: int | None = None) -> Any:
        self._all_samples = None
        try:
            yield from super().get(batch_size)  # type: ignore[misc]
        finally:
            self._all_samples = None  # the arrays get overwritten

    def _get_samples(self, batch_inds: np.ndarray, env: Any = None) -> Any:
        if self._all_samples is None:
            rows = np.arange(self.buffer_size * self.n_envs)  # type: ignore[attr-defined]
            self._all_samples = super()._get_samples(rows, env)  # type: ignore[misc]
        index = th.as_tensor(np.asarray(batch_inds), device=self.device)  # type: ignore[attr-defined]
        samples = self._all_samples
        return type(samples)(*(_rows(field, index) for field in samples))


@cache
def device_rollout_buffer_class(buffer_class: type[RolloutBuffer]) -> type[RolloutBuffer]:
    """``buffer_class`` with :class:`DeviceRolloutMixin` (one class per buffer class)."""
    if issubclass(buffer_class, DeviceRolloutMixin):
        return buffer_class
    return type(f"Device{buffer_class.__name__}", (DeviceRolloutMixin, buffer_class), {})


def rollouts_on_device(model: Any, force: bool = False) -> bool:
    """Make ``model``'s rollout buffer move each rollout to the device once per update.

    Applies to on-policy models (an SB3 ``RolloutBuffer`` subclass in ``model.rollout_buffer``)
    whose device is not the CPU (``force=True``: also on the CPU, where it changes nothing but
    the copies). Returns whether it applied. Training gives the same minibatches either way.
    """
    buffer = getattr(model, "rollout_buffer", None)
    if not isinstance(buffer, RolloutBuffer):
        return False
    if th.device(model.device).type == "cpu" and not force:
        return False
    moved = object.__new__(device_rollout_buffer_class(type(buffer)))
    moved.__dict__.update(buffer.__dict__)  # the same arrays and settings, the mixed class
    model.rollout_buffer = moved
    return True
