"""Reptile meta-learning around any Stable-Baselines3 algorithm.

Reptile (Nichol, Achiam and Schulman, "On First-Order Meta-Learning Algorithms",
arXiv 1803.02999; openai/supervised-reptile) learns an initialisation phi that adapts fast to
new tasks: every outer step it trains copies of phi on a batch of sampled tasks and moves phi
towards the adapted weights,

    phi <- phi + eps_t * (1/n) * sum_i (W_i - phi),    eps_t = (1 - t/T) eps_0 + (t/T) eps_T,

with eps annealed linearly (1 -> 0 by default). RAMario (Jain, arXiv 2305.09655) applies it
to Super Mario Bros. stages; its published code does not run, so this follows the paper's
description and the reference implementation.

Here the inner learner is any SB3 ``BaseAlgorithm`` (PPO, A2C, DQN, SAC, sb3-contrib ...),
used through its public ``learn``: a wrapper, not a subclass (sb3-contrib's advice: prefer a
wrapper). Each task adaptation loads phi into the algorithm's policy, clears its optimizer
state and buffers, points it at the task's env and runs ``learn(inner_timesteps,
reset_num_timesteps=False)``, so that ``num_timesteps`` counts every env step of every inner
loop. ``predict`` uses the meta-policy phi; :meth:`Reptile.adapt` returns a copy adapted to a
(held-out) task; ``save``/``load`` delegate to the inner algorithm's zip file with the meta
hyperparameters added.
"""

from __future__ import annotations

import copy
import functools
import importlib
import io
import math
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, Union

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import (
    BaseCallback,
    CallbackList,
    ConvertCallback,
    ProgressBarCallback,
)
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.save_util import load_from_zip_file, recursive_getattr
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback
from stable_baselines3.common.utils import configure_logger
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    SubprocVecEnv,
    VecEnv,
    unwrap_vec_normalize,
)

__all__ = ["Reptile", "TaskEnv", "linear_step_size", "reptile_update"]

#: A task: a registered env id, ``{"id": ..., "kwargs": {...}}``, a mapping of kwargs for the
#: agent's own env id (e.g. ``{"level": 3}`` or ``{"world": 1, "stage": 3}``), a factory
#: returning a ``gymnasium.Env``, or a ready ``VecEnv`` (used as is, never closed by Reptile).
TaskEnv = Union[str, Mapping[str, Any], Callable[[], gym.Env], VecEnv]  # noqa: UP007

SelfReptile = TypeVar("SelfReptile", bound="Reptile")

#: the key under which ``save`` stores the meta hyperparameters in the inner algorithm's data
_SAVE_KEY = "reptile"
#: task i's env copies are seeded from ``seed + _TASK_SEED_STRIDE * (i + 1)``
_TASK_SEED_STRIDE = 10_000


def reptile_update(
    meta_state: Mapping[str, th.Tensor],
    adapted_states: Sequence[Mapping[str, th.Tensor]],
    step_size: float,
) -> dict[str, th.Tensor]:
    """The outer update: ``phi + step_size * (mean_i W_i - phi)`` for every floating-point
    tensor; other tensors (counters such as BatchNorm's ``num_batches_tracked``) keep phi's
    value."""
    if not adapted_states:
        raise ValueError("adapted_states must hold at least one adapted state")
    updated = {}
    for name, phi in meta_state.items():
        if th.is_floating_point(phi):
            mean = th.stack([state[name].to(phi.device, phi.dtype) for state in adapted_states])
            updated[name] = phi + step_size * (mean.mean(dim=0) - phi)
        else:
            updated[name] = phi.clone()
    return updated


def linear_step_size(start: float, end: float, progress: float) -> float:
    """The outer step size after ``progress`` (0 to 1) of the meta-training budget:
    ``(1 - progress) * start + progress * end``."""
    progress = min(max(progress, 0.0), 1.0)
    return (1.0 - progress) * start + progress * end


def _make_registered_env(env_id: str, kwargs: dict[str, Any]) -> gym.Env:
    """``gym.make`` for task envs; a module-level function so that SubprocVecEnv workers,
    unpickling it, import opsrl (which registers the opsrl/ ids)."""
    return gym.make(env_id, **kwargs)


def _load_object(path: str) -> Any:
    module_name, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


def _step_size(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(float(value)) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


class _MetaCallbackBridge(BaseCallback):
    """Passes the inner loops' rollout and step events on to the user's callback, which was
    initialised once with the Reptile object (so ``self.model`` is the meta-learner and
    ``self.num_timesteps`` counts all inner loops). Records a stop request."""

    def __init__(self, callback: BaseCallback) -> None:
        super().__init__()
        self.callback = callback
        self.stopped = False

    def update_child_locals(self, locals_: dict[str, Any]) -> None:
        self.callback.update_locals(locals_)

    def _on_rollout_start(self) -> None:
        self.callback.on_rollout_start()

    def _on_step(self) -> bool:
        if not self.callback.on_step():
            self.stopped = True
            return False
        return True

    def _on_rollout_end(self) -> None:
        self.callback.on_rollout_end()


class Reptile:
    """Reptile meta-learning (Nichol et al. 2018) around a Stable-Baselines3 algorithm.

    Paper: https://arxiv.org/abs/1803.02999 (Mario setting: https://arxiv.org/abs/2305.09655).

    Build it like an SB3 algorithm, ``Reptile("CnnPolicy", env, base_algorithm="ppo",
    base_kwargs={...}, task_envs=[...])`` (the experiment runner's way), or around an
    algorithm you already made, ``Reptile(base_algorithm=PPO("CnnPolicy", env),
    task_envs=[...])``. It offers ``learn``, ``predict``, ``save``/``load``, ``set_env``/
    ``get_env``, ``set_logger``/``logger``, ``num_timesteps``, callbacks and
    ``progress_bar``, plus :meth:`adapt`.

    :param policy: the inner algorithm's policy (alias or class; default ``MlpPolicy``); not
        with a ``base_algorithm`` instance
    :param env: the env whose spaces the policy is built for (a ``VecEnv``, a ``gymnasium.Env``
        or an env id); with ``task_envs=None`` it is the only task. Task envs get its number
        of copies (SB3 buffers are sized by it).
    :param base_algorithm: the inner algorithm: an opsrl registry name (``"ppo"``,
        ``"dqn"``, ...), an SB3 algorithm class, or an instance (then ``policy``,
        ``base_kwargs``, ``verbose``, ``device`` and ``tensorboard_log`` are its own, and
        ``seed`` only seeds the task sampling and task envs)
    :param base_kwargs: constructor arguments of the inner algorithm (``n_steps``,
        ``learning_rate``, ``policy_kwargs``, ...)
    :param task_envs: the meta-training tasks (see :data:`TaskEnv`); ``None``: ``env`` only
    :param inner_timesteps: env steps of each task adaptation (``learn`` budget of the inner
        algorithm; PPO runs ``inner_timesteps / (n_steps * n_envs)`` rollouts and updates, at
        least one)
    :param meta_batch_size: tasks adapted per outer step (sampled without replacement when
        there are enough tasks, else with replacement)
    :param meta_step_size: outer step size eps at the start of ``learn``
    :param meta_step_size_final: outer step size at the end of the ``learn`` budget
        (linear annealing in between, by env steps)
    :param task_vec_env: ``"dummy"`` or ``"subproc"`` VecEnv for task envs built from ids,
        mappings or factories; ``"auto"``: subproc when ``env`` is a SubprocVecEnv
    :param eval_adapt_timesteps: env steps of adaptation to the evaluation env before an
        evaluation (:meth:`policy_for_evaluation`, used by ``opsrl run``); 0 evaluates phi
    :param tensorboard_log: TensorBoard log directory (inner algorithm's argument)
    :param verbose: 0 silent, 1 info (inner algorithm's argument)
    :param seed: seed of the inner algorithm, the task sampling and the task envs
    :param device: torch device of the inner algorithm (``"auto"``, ``"cpu"``, ``"cuda"``)

    Notes. Task envs live for one ``learn`` call (built at its start, closed at its end).
    The inner algorithm's schedules (learning rate, clip range, DQN's exploration) see the
    progress of each inner ``learn``, i.e. restart every adaptation; off-policy
    ``learning_starts`` counts all inner loops' steps. Only the policy's tensors are
    meta-learned (not, e.g., SAC's entropy coefficient).
    """

    def __init__(
        self,
        policy: str | type[BasePolicy] | None = None,
        env: GymEnv | str | None = None,
        base_algorithm: str | type[BaseAlgorithm] | BaseAlgorithm = "ppo",
        base_kwargs: dict[str, Any] | None = None,
        task_envs: Sequence[TaskEnv] | None = None,
        inner_timesteps: int = 2048,
        meta_batch_size: int = 5,
        meta_step_size: float = 1.0,
        meta_step_size_final: float = 0.0,
        task_vec_env: str = "auto",
        eval_adapt_timesteps: int = 0,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
    ) -> None:
        self.inner_timesteps = _positive_int("inner_timesteps", inner_timesteps)
        self.meta_batch_size = _positive_int("meta_batch_size", meta_batch_size)
        self.meta_step_size = _step_size("meta_step_size", meta_step_size)
        self.meta_step_size_final = _step_size("meta_step_size_final", meta_step_size_final)
        self.eval_adapt_timesteps = _non_negative_int("eval_adapt_timesteps", eval_adapt_timesteps)
        if task_vec_env not in ("auto", "dummy", "subproc"):
            raise ValueError(
                f"task_vec_env must be 'auto', 'dummy' or 'subproc', got {task_vec_env!r}"
            )
        if task_envs is not None and (isinstance(task_envs, str | Mapping) or not task_envs):
            raise ValueError("task_envs must be a non-empty list of tasks (or None: env only)")
        self.task_envs = None if task_envs is None else list(task_envs)
        for index, task in enumerate(self.task_envs or []):
            self._check_task(f"task_envs[{index}]", task)
        if isinstance(base_algorithm, BaseAlgorithm):
            own = {
                "policy": policy is not None,
                "base_kwargs": bool(base_kwargs),
                "tensorboard_log": tensorboard_log is not None,
                "verbose": verbose != 0,
                "device": str(device) != "auto",
            }
            if any(own.values()):
                given = ", ".join(name for name, is_given in own.items() if is_given)
                raise ValueError(
                    f"{given}: these belong to the base_algorithm instance you passed; "
                    "leave them out"
                )
            self.base = base_algorithm
            if env is not None:
                self.base.set_env(env)
        else:
            base_cls = self._base_class(base_algorithm)
            if env is None:
                raise ValueError("env is required unless base_algorithm is an instance")
            if policy is None:
                policy = "MlpPolicy"
            self.base = base_cls(
                policy,
                env,
                seed=seed,
                device=device,
                verbose=verbose,
                tensorboard_log=tensorboard_log,
                **(base_kwargs or {}),
            )
        if self.task_envs is not None and unwrap_vec_normalize(self.base.get_env()) is not None:
            raise ValueError(
                "Reptile's task envs are not normalized: train it without VecNormalize "
                "(normalize: false)"
            )
        self.base_kwargs = dict(base_kwargs or {})
        self.task_vec_env = task_vec_env
        self.seed = self.base.seed if seed is None else seed
        #: the meta-parameters phi live in this copy of the inner policy
        self.policy: BasePolicy = copy.deepcopy(self.base.policy)
        self.meta_iterations = 0
        #: the outer step size of the last outer step (None before any)
        self.last_step_size: float | None = None
        self._env: VecEnv | None = self.base.get_env()
        self._rng = np.random.default_rng(self.seed)
        self._tb_log_name = "Reptile"

    # -- construction helpers ------------------------------------------------------------

    @staticmethod
    def _base_class(base_algorithm: str | type[BaseAlgorithm]) -> type[BaseAlgorithm]:
        if isinstance(base_algorithm, type) and issubclass(base_algorithm, BaseAlgorithm):
            return base_algorithm
        if isinstance(base_algorithm, str):
            from opsrl import registry

            if base_algorithm.lower() == "reptile":
                raise ValueError("base_algorithm cannot be reptile itself")
            try:
                base_cls = registry.agent_class(base_algorithm)
            except registry.RegistryError as error:
                raise ValueError(f"base_algorithm: {error}") from None
            if not (isinstance(base_cls, type) and issubclass(base_cls, BaseAlgorithm)):
                raise ValueError(f"base_algorithm {base_algorithm!r} is not an SB3 algorithm")
            return base_cls
        raise ValueError(
            "base_algorithm must be an agent name, an SB3 algorithm class or instance, "
            f"got {base_algorithm!r}"
        )

    @staticmethod
    def _check_task(where: str, task: Any) -> None:
        if isinstance(task, str):
            if task not in gym.registry:
                raise ValueError(f"{where}: unknown env id {task!r}")
        elif isinstance(task, Mapping):
            if "id" in task:
                extra = set(task) - {"id", "kwargs"}
                if extra:
                    raise ValueError(
                        f"{where}: a task with an 'id' takes only 'id' and 'kwargs', "
                        f"got {sorted(extra)}"
                    )
                if task["id"] not in gym.registry:
                    raise ValueError(f"{where}: unknown env id {task['id']!r}")
                if not isinstance(task.get("kwargs", {}), Mapping):
                    raise ValueError(f"{where}: 'kwargs' must be a mapping")
        elif not (isinstance(task, VecEnv) or callable(task)):
            raise ValueError(
                f"{where} must be an env id, a mapping, an env factory or a VecEnv, got {task!r}"
            )

    # -- SB3-like attributes -------------------------------------------------------------

    @property
    def num_timesteps(self) -> int:
        """Env steps taken by all inner loops (and adaptations of this object)."""
        return self.base.num_timesteps

    @property
    def device(self) -> th.device:
        return self.base.device

    @property
    def observation_space(self) -> gym.spaces.Space:
        return self.base.observation_space

    @property
    def action_space(self) -> gym.spaces.Space:
        return self.base.action_space

    @property
    def n_envs(self) -> int:
        return self.base.n_envs

    @property
    def logger(self) -> Logger:
        return self.base.logger

    def set_logger(self, logger: Logger) -> None:
        """Log (inner loops and meta statistics) to ``logger``."""
        self.base.set_logger(logger)

    def get_env(self) -> VecEnv | None:
        """The agent's env (the one given at construction or by :meth:`set_env`)."""
        return self._env

    def set_env(self, env: GymEnv, force_reset: bool = True) -> None:
        """Replace the agent's env (same spaces and number of copies)."""
        self.base.set_env(env, force_reset=force_reset)
        self._env = self.base.get_env()

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Actions of the meta-policy phi (not adapted; see :meth:`adapt`)."""
        return self.policy.predict(observation, state, episode_start, deterministic)

    # -- the meta-parameters -------------------------------------------------------------

    def meta_state(self) -> dict[str, th.Tensor]:
        """A copy of phi (the meta-policy's state dict)."""
        return {name: t.detach().clone() for name, t in self.policy.state_dict().items()}

    def _load_meta_into_base(self) -> None:
        self.base.policy.load_state_dict(self.policy.state_dict())

    def _reset_inner_state(self) -> None:
        """Fresh optimizer state (Adam moments, step counts) and empty buffers."""
        state_dicts, _ = self.base._get_torch_save_params()
        for name in state_dicts:
            optimizer = recursive_getattr(self.base, name)
            if isinstance(optimizer, th.optim.Optimizer):
                optimizer.state.clear()
        if isinstance(self.base, OffPolicyAlgorithm) and self.base.replay_buffer is not None:
            self.base.replay_buffer.reset()

    # -- tasks ---------------------------------------------------------------------------

    def _task_factory(self, where: str, task: TaskEnv) -> Callable[[], gym.Env] | VecEnv:
        if isinstance(task, VecEnv):
            return task
        if isinstance(task, str):
            return functools.partial(_make_registered_env, task, {})
        if isinstance(task, Mapping):
            if "id" in task:
                return functools.partial(
                    _make_registered_env, task["id"], dict(task.get("kwargs", {}))
                )
            spec = self._env_spec()
            if spec is None:
                raise ValueError(
                    f"{where} gives kwargs only, but the agent's env was not made with "
                    "gym.make; give {'id': ..., 'kwargs': ...}"
                )
            return functools.partial(_make_registered_env, spec.id, {**spec.kwargs, **task})
        return task

    def _env_spec(self) -> gym.envs.registration.EnvSpec | None:
        env = self.get_env()
        if env is None:
            return None
        try:
            spec = env.get_attr("spec", indices=[0])[0]
        except (AttributeError, NotImplementedError, TypeError):
            return None
        return spec if isinstance(spec, gym.envs.registration.EnvSpec) else None

    def _vec_env_class(self) -> type[VecEnv]:
        kind = self.task_vec_env
        if kind == "auto":
            env = self.get_env()
            while env is not None and hasattr(env, "venv"):
                env = env.venv
            kind = "subproc" if isinstance(env, SubprocVecEnv) else "dummy"
        return SubprocVecEnv if kind == "subproc" else DummyVecEnv

    def _build_env(
        self, factory: Callable[[], gym.Env] | VecEnv, n_envs: int, seed: int | None
    ) -> tuple[VecEnv, bool]:
        """A VecEnv for ``factory`` and whether Reptile owns (must close) it."""
        if isinstance(factory, VecEnv):
            return factory, False
        venv = make_vec_env(factory, n_envs=n_envs, seed=seed, vec_env_cls=self._vec_env_class())
        return venv, True

    def _build_task_envs(self) -> tuple[list[VecEnv], list[VecEnv]]:
        """The task VecEnvs, and those of them Reptile made (to close after learning)."""
        env = self.get_env()
        if env is None:
            raise ValueError("Reptile has no env; pass one to the constructor or set_env()")
        if self.task_envs is None:
            return [env], []
        envs, owned = [], []
        try:
            for index, task in enumerate(self.task_envs):
                seed = None if self.seed is None else self.seed + _TASK_SEED_STRIDE * (index + 1)
                factory = self._task_factory(f"task_envs[{index}]", task)
                venv, own = self._build_env(factory, self.n_envs, seed)
                envs.append(venv)
                if own:
                    owned.append(venv)
        except Exception:
            for venv in owned:
                venv.close()
            raise
        return envs, owned

    # -- learning ------------------------------------------------------------------------

    def _user_callback(self, callback: MaybeCallback, progress_bar: bool) -> BaseCallback:
        if isinstance(callback, list):
            callback = CallbackList(callback)
        if not isinstance(callback, BaseCallback):
            callback = ConvertCallback(callback)
        if progress_bar:
            callback = CallbackList([callback, ProgressBarCallback()])
        callback.init_callback(self)  # type: ignore[arg-type]
        return callback

    def _adapt_on(
        self, index: int, env: VecEnv, timesteps: int, bridge: _MetaCallbackBridge
    ) -> dict[str, th.Tensor]:
        """Train a copy of phi on task ``index`` (in the inner algorithm); its weights."""
        self._load_meta_into_base()
        self._reset_inner_state()
        try:
            self.base.set_env(env)
        except (AssertionError, ValueError) as error:
            message = str(error).strip().splitlines()[0]
            raise ValueError(f"task_envs[{index}] does not fit the agent: {message}") from None
        self.base.learn(
            total_timesteps=timesteps,
            callback=bridge,
            reset_num_timesteps=False,
            tb_log_name=self._tb_log_name,
        )
        return {name: t.detach().clone() for name, t in self.base.policy.state_dict().items()}

    def _sample_tasks(self, n_tasks: int) -> np.ndarray:
        replace = self.meta_batch_size > n_tasks
        return self._rng.choice(n_tasks, size=self.meta_batch_size, replace=replace)

    def learn(
        self: SelfReptile,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "Reptile",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfReptile:
        """Meta-train for ``total_timesteps`` env steps, counted over all inner loops.

        Each outer step samples ``meta_batch_size`` tasks, adapts phi on each for
        ``inner_timesteps`` (the last adaptation is cut to the remaining budget), then
        applies :func:`reptile_update` with the annealed step size. Logs ``meta/step_size``,
        ``meta/iterations`` and ``meta/tasks_adapted`` every ``log_interval`` outer steps.
        """
        total_timesteps = _positive_int("total_timesteps", total_timesteps)
        self._tb_log_name = tb_log_name
        if reset_num_timesteps:
            self.base.num_timesteps = 0
            self.base._episode_num = 0
            self.base.ep_info_buffer = None  # type: ignore[assignment]
            self.base.ep_success_buffer = None  # type: ignore[assignment]
        if not self.base._custom_logger:
            # One logger for all inner loops (SB3 would make one per learn call).
            self.base.set_logger(
                configure_logger(
                    self.base.verbose,
                    self.base.tensorboard_log,
                    tb_log_name,
                    reset_num_timesteps,
                )
            )
        start = self.num_timesteps
        end = start + total_timesteps
        user_callback = self._user_callback(callback, progress_bar)
        bridge = _MetaCallbackBridge(user_callback)
        user_callback.on_training_start({"total_timesteps": end, "self": self}, globals())
        env = self.get_env()
        task_envs, owned = self._build_task_envs()
        adapted_tasks = 0
        try:
            while self.num_timesteps < end and not bridge.stopped:
                step_size = linear_step_size(
                    self.meta_step_size,
                    self.meta_step_size_final,
                    (self.num_timesteps - start) / total_timesteps,
                )
                adapted = []
                for index in self._sample_tasks(len(task_envs)):
                    budget = min(self.inner_timesteps, end - self.num_timesteps)
                    if budget <= 0 or bridge.stopped:
                        break
                    adapted.append(self._adapt_on(int(index), task_envs[index], budget, bridge))
                if not adapted:
                    break
                new_state = reptile_update(self.policy.state_dict(), adapted, step_size)
                self.policy.load_state_dict(new_state)
                self.last_step_size = step_size
                self.meta_iterations += 1
                adapted_tasks += len(adapted)
                if log_interval > 0 and self.meta_iterations % log_interval == 0:
                    self.logger.record("meta/step_size", step_size)
                    self.logger.record("meta/iterations", self.meta_iterations)
                    self.logger.record("meta/tasks_adapted", adapted_tasks)
        finally:
            for venv in owned:
                venv.close()
            # The inner algorithm ends on phi and on the agent's own env.
            self._load_meta_into_base()
            if env is not None:
                self.base.set_env(env)
        self.logger.dump(self.num_timesteps)
        user_callback.on_training_end()
        return self

    # -- adaptation ----------------------------------------------------------------------

    def adapt(
        self,
        env: TaskEnv | GymEnv,
        timesteps: int,
        callback: MaybeCallback = None,
        n_envs: int | None = None,
        seed: int | None = None,
    ) -> BaseAlgorithm:
        """A copy of the inner algorithm started from phi and trained ``timesteps`` env steps
        on ``env`` (a task as in ``task_envs``, or a ``gymnasium.Env``), with a fresh optimizer
        state: Reptile's evaluation on a held-out task. ``timesteps=0`` gives the unadapted
        copy. The copy keeps its env (close it with ``copy.get_env().close()``)."""
        timesteps = _non_negative_int("timesteps", timesteps)
        if isinstance(env, gym.Env):
            venv: GymEnv = env
        else:
            self._check_task("env", env)
            factory = self._task_factory("env", env)
            copies = self.n_envs if n_envs is None else _positive_int("n_envs", n_envs)
            venv, _ = self._build_env(factory, copies, self.seed if seed is None else seed)
        buffer = io.BytesIO()
        self._load_meta_into_base()
        self.base.save(buffer)
        buffer.seek(0)
        adapted = type(self.base).load(buffer, env=venv, device=self.device)
        if seed is not None:
            adapted.set_random_seed(seed)
        # A fresh optimizer: Adam's moments of meta-training do not belong to this task.
        state_dicts, _ = adapted._get_torch_save_params()
        for name in state_dicts:
            optimizer = recursive_getattr(adapted, name)
            if isinstance(optimizer, th.optim.Optimizer):
                optimizer.state.clear()
        if timesteps > 0:
            adapted.learn(total_timesteps=timesteps, callback=callback, reset_num_timesteps=True)
        return adapted

    def policy_for_evaluation(
        self, env: TaskEnv | GymEnv, seed: int | None = None
    ) -> Reptile | BaseAlgorithm:
        """What to evaluate on ``env``: phi adapted to it for ``eval_adapt_timesteps`` env
        steps (:meth:`adapt`), or this meta-learner itself when that is 0. The experiment
        runner calls it before its final evaluation (a held-out task's evaluation)."""
        if self.eval_adapt_timesteps == 0:
            return self
        return self.adapt(env, self.eval_adapt_timesteps, seed=seed)

    # -- persistence ---------------------------------------------------------------------

    def _meta_data(self) -> dict[str, Any]:
        base_cls = type(self.base)
        return {
            "base_class": f"{base_cls.__module__}:{base_cls.__qualname__}",
            # VecEnv tasks cannot be saved; load() then needs task_envs again.
            "task_envs": None
            if self.task_envs is None
            else [None if isinstance(t, VecEnv) else t for t in self.task_envs],
            "inner_timesteps": self.inner_timesteps,
            "meta_batch_size": self.meta_batch_size,
            "meta_step_size": self.meta_step_size,
            "meta_step_size_final": self.meta_step_size_final,
            "task_vec_env": self.task_vec_env,
            "eval_adapt_timesteps": self.eval_adapt_timesteps,
            "meta_iterations": self.meta_iterations,
            "seed": self.seed,
        }

    def save(
        self,
        path: str | pathlib.Path | io.BufferedIOBase,
        exclude: Sequence[str] | None = None,
        include: Sequence[str] | None = None,
    ) -> None:
        """The inner algorithm's zip file, holding phi as its policy and the meta
        hyperparameters in its data (``load`` with :meth:`Reptile.load`; the inner
        algorithm's own ``load`` gives the meta-policy as a plain SB3 model)."""
        self._load_meta_into_base()
        setattr(self.base, _SAVE_KEY, self._meta_data())
        try:
            self.base.save(path, exclude=exclude, include=include)
        finally:
            delattr(self.base, _SAVE_KEY)

    @classmethod
    def load(
        cls,
        path: str | pathlib.Path | io.BufferedIOBase,
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        task_envs: Sequence[TaskEnv] | None = None,
        **kwargs: Any,
    ) -> Reptile:
        """Load a Reptile model saved by :meth:`save` (``task_envs`` overrides the saved
        tasks; needed when they were VecEnv objects)."""
        if isinstance(path, io.BufferedIOBase | io.BytesIO):
            position = path.tell()
            data, _, _ = load_from_zip_file(path, custom_objects=custom_objects, device="cpu")
            path.seek(position)
        else:
            data, _, _ = load_from_zip_file(path, custom_objects=custom_objects, device="cpu")
        meta = (data or {}).get(_SAVE_KEY)
        if not isinstance(meta, dict):
            raise ValueError(f"{path} was not saved by Reptile (no meta hyperparameters)")
        base_cls = _load_object(meta["base_class"])
        base = base_cls.load(
            path,
            env=env,
            device=device,
            custom_objects=custom_objects,
            print_system_info=print_system_info,
            force_reset=force_reset,
            **kwargs,
        )
        base.__dict__.pop(_SAVE_KEY, None)
        tasks = task_envs if task_envs is not None else meta["task_envs"]
        if tasks is not None and any(task is None for task in tasks):
            raise ValueError(
                f"{path} was trained on VecEnv tasks, which are not saved; pass task_envs"
            )
        model = cls(
            base_algorithm=base,
            task_envs=tasks,
            inner_timesteps=meta["inner_timesteps"],
            meta_batch_size=meta["meta_batch_size"],
            meta_step_size=meta["meta_step_size"],
            meta_step_size_final=meta["meta_step_size_final"],
            task_vec_env=meta["task_vec_env"],
            eval_adapt_timesteps=meta.get("eval_adapt_timesteps", 0),
            seed=meta["seed"],
        )
        model.meta_iterations = int(meta["meta_iterations"])
        return model
