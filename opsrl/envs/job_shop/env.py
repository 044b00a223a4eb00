"""Gymnasium face of the job shop simulator: dispatching with masked job choices."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces

from opsrl.envs.job_shop.data import JobShopInstance, make_instance
from opsrl.envs.job_shop.sim import (
    BLOCKED,
    DONE,
    PROCESSING,
    WAITING,
    JobShopSim,
    check_sim_kwargs,
)

__all__ = [
    "FLAT_JOB_FEATURES",
    "FLAT_MACHINE_FEATURES",
    "DOWNTIME_FEATURE_CAP",
    "GRAPH_KEYS",
    "INVALID_ACTION_MODES",
    "NODE_FEATURES",
    "OBSERVATIONS",
    "REWARDS",
    "SCHEDULE_COLUMNS",
    "JobShopEnv",
    "unflatten_graph_observation",
]

OBSERVATIONS = ("graph", "flat")
REWARDS = ("time", "lower_bound")
#: what to do with an action that is not a candidate job
INVALID_ACTION_MODES = ("replace", "raise")

#: columns of ``node_features`` (one row per operation node)
NODE_FEATURES = (
    "waiting",
    "ready",
    "processing",
    "blocked",
    "on_down_machine",
    "duration",
    "remaining_processing",
    "remaining_job_work",
    "remaining_job_ops",
    "machine_down",
    "remaining_downtime",
)
#: per-job block of the flat observation
FLAT_JOB_FEATURES = (
    "candidate",
    "waiting",
    "processing",
    "blocked",
    "on_down_machine",
    "done",
    "next_duration",
    "remaining_processing",
    "remaining_job_work",
    "remaining_job_ops",
    "next_machine_down",
)
#: per-machine block of the flat observation
FLAT_MACHINE_FEATURES = (
    "idle",
    "processing",
    "holding_blocked",
    "down",
    "remaining_processing",
    "remaining_downtime",
    "remaining_machine_work",
)
GRAPH_KEYS = (
    "node_features",
    "node_mask",
    "conjunctive_edges",
    "disjunctive_edges",
    "candidate_nodes",
)
#: remaining downtime features are remaining downtime / p_max, capped here (Gymnasium's checker
#: rejects unbounded Box spaces and geometric downtimes are unbounded)
DOWNTIME_FEATURE_CAP = 10.0
SCHEDULE_COLUMNS = ("kind", "job", "op", "machine", "start", "end", "leave", "paused", "swap")

_RANDOM_KEYS = {"jobs", "machines", "method", "duration_range", "machine_seed"}


def unflatten_graph_observation(observation: Mapping[str, Any]) -> dict[str, Any]:
    """Reshape a (batch of) graph observation(s) to matrix form.

    ``node_features`` becomes ``(..., N, F)`` and the edge lists ``(..., 2, E)``; the other
    keys are returned as they are. Works on numpy arrays and torch tensors (anything with
    ``shape`` and ``reshape``), with any leading batch dimensions.
    """
    out = dict(observation)
    mask = observation["node_mask"]
    lead, n_nodes = tuple(mask.shape[:-1]), int(mask.shape[-1])
    out["node_features"] = observation["node_features"].reshape(*lead, n_nodes, -1)
    for key in ("conjunctive_edges", "disjunctive_edges"):
        out[key] = observation[key].reshape(*lead, 2, -1)
    return out


@dataclass
class InstanceSource:
    """One entry of the ``instance`` argument: a fixed instance or a random-instance spec."""

    instance: JobShopInstance | None
    spec: dict[str, Any] | None
    n_jobs: int
    n_ops: int
    n_machines: int

    def draw(self, rng: np.random.Generator) -> JobShopInstance:
        if self.instance is not None:
            return self.instance
        seed = int(rng.integers(2**31 - 1))
        return make_instance({**self.spec, "seed": seed})


def _instance_source(spec: Any) -> InstanceSource:
    if isinstance(spec, Mapping) and "seed" not in spec:
        spec = dict(spec)
        unknown = set(spec) - _RANDOM_KEYS
        if unknown:
            raise ValueError(
                f"instance: random instance spec has unknown keys {sorted(unknown)} "
                f"(known: {sorted(_RANDOM_KEYS | {'seed'})})"
            )
        sample = make_instance({**spec, "seed": 0})  # validates the spec
        return InstanceSource(None, spec, sample.n_jobs, sample.n_ops, sample.n_machines)
    if isinstance(spec, Mapping):
        spec = dict(spec)
    instance = make_instance(spec)
    return InstanceSource(instance, None, instance.n_jobs, instance.n_ops, instance.n_machines)


@dataclass
class StaticGraph:
    """Per-instance arrays of the observations, in padded node ids (j * K + k)."""

    machines: np.ndarray  # (n, n_ops) int
    durations: np.ndarray  # (n, n_ops) float
    job_work: np.ndarray  # (n, 1) total work per job
    machine_load: np.ndarray  # (m,) total work per machine (>= 1)
    p_max: float
    op_index: np.ndarray  # (1, n_ops)
    duration_feature: np.ndarray  # (n, n_ops) p / p_max
    #: (J, K, F) node features with the static columns filled in, copied at every step
    feature_template: np.ndarray
    conjunctive: np.ndarray  # (2, n * (n_ops - 1))
    disjunctive: np.ndarray  # (2, pairs of operations on the same machine)


#: one-hot rows of the node status codes (waiting, ready, processing, blocked, down)
_STATUS_ONE_HOT = np.eye(5, dtype=np.float32)


def static_graph(instance: JobShopInstance, jobs: int, width: int) -> StaticGraph:
    """The per-instance arrays of the observations (features, conjunctive and disjunctive
    edges) of ``instance`` padded to ``jobs`` x ``width`` (shared by the batched env)."""
    n, n_ops = instance.machines.shape
    node_ids = np.arange(n)[:, None] * width + np.arange(n_ops)[None, :]
    conjunctive = np.stack([node_ids[:, :-1].ravel(), node_ids[:, 1:].ravel()])
    flat_machines, flat_nodes = instance.machines.ravel(), node_ids.ravel()
    pairs = []
    for machine in range(instance.n_machines):
        nodes = np.sort(flat_nodes[flat_machines == machine])
        first, second = np.triu_indices(nodes.size, k=1)
        pairs.append(np.stack([nodes[first], nodes[second]]))
    disjunctive = np.concatenate(pairs, axis=1) if pairs else np.zeros((2, 0), dtype=np.int64)
    durations = instance.durations.astype(np.float64)
    p_max = float(durations.max())
    op_index = np.arange(n_ops)[None, :]
    load = np.bincount(flat_machines, weights=durations.ravel(), minlength=instance.n_machines)
    template = np.zeros((jobs, width, len(NODE_FEATURES)), dtype=np.float32)
    template[:n, :n_ops, NODE_FEATURES.index("duration")] = durations / p_max
    template[:n, :n_ops, NODE_FEATURES.index("remaining_job_ops")] = (n_ops - op_index) / width
    return StaticGraph(
        machines=instance.machines,
        durations=durations,
        job_work=durations.sum(axis=1, keepdims=True),
        machine_load=np.maximum(load, 1.0),
        p_max=p_max,
        op_index=op_index,
        duration_feature=durations / p_max,
        feature_template=template,
        conjunctive=conjunctive,
        disjunctive=disjunctive,
    )


class JobShopEnv(gym.Env[dict[str, np.ndarray] | np.ndarray, np.int64]):
    """Job shop dispatching: classic, blocking with or without swaps, with random shutdowns.

    ## Description

    n jobs each visit m machines in their own order; an operation needs its machine for a
    given number of ticks. At every decision the agent picks the job whose next operation
    starts now; the makespan (the time the last job leaves the shop) is to be minimised.
    The default is the interrupting swap-allowed blocking job shop (ISBJSSP) of Wong et al.,
    "Deep reinforcement learning for the interrupting swap-allowed blocking job shop
    problem" (arXiv 2302.02506):

    - **blocking** (``blocking=True``): no buffers. A job that finished an operation holds
      its machine (the machine is blocked) until the job moves to its next machine. A job on
      its last operation leaves the shop when it ends. With ``blocking=False`` this is the
      classic job shop (unlimited buffers; ``swap`` is ignored).
    - **swaps** (``swap=True``): before each round of decisions every cycle of blocked jobs
      in which each job wants the machine held by the next one moves simultaneously (a
      zero-time cyclic transfer; one cycle counts as one swap). Without swaps such a cycle is
      a **deadlock**: the episode ends (see Episode End). A dispatch that would close a
      cycle of machine-holding jobs, each needing the machine of the next (a certain
      deadlock), is masked out while something else can happen; a deadlock then occurs
      only when earlier choices left nothing but such dispatches (random policies still
      deadlock often on benchmark instances).
    - **interruptions** (``shutdown_prob > 0``): at each tick an operational machine shuts
      down with probability ``shutdown_prob`` for a geometric (mean ``downtime``) or fixed
      number of ticks. Processing pauses and resumes; no job enters or leaves a down machine
      (a blocked job on it cannot leave, even by a swap). A job whose processing ends when a
      shutdown starts still leaves if it does not need to wait (classic mode or its last
      operation). The windows are drawn at reset from the episode seed, one stream per
      machine, independently of the schedule: every policy sees the same shutdowns under the
      same seed (``env.unwrapped.sim.downtime_windows``).

    Decisions are event driven: when an idle, operational machine has candidate jobs the
    agent dispatches one of them; decisions repeat at the same instant while candidates
    remain, then time jumps to the next event (an operation end, or the end of a shutdown
    after which a job can move). Dispatching is mandatory (non-delay), except that masked
    deadlocking dispatches may wait for the next event.

    ## Action Space

    ``Discrete(max_jobs)``: the index of the job to dispatch. :meth:`action_masks` (the
    sb3-contrib MaskablePPO contract) marks the candidates (``sim.candidate_mask()``, padded
    jobs always False). An action that is not a candidate is replaced by the candidate with
    the lowest index and flagged in ``info["invalid_action"]`` with
    ``invalid_action="replace"`` (the default, so that unmasked agents and env checkers can
    run), or raises a ValueError with ``"raise"``. Out-of-range actions always raise.

    ## Observation Space

    ``observation="graph"`` (default): a ``Dict`` of float32 ``Box`` es describing the
    disjunctive graph over the unfinished operations (finished operations are deleted). With
    J = ``max_jobs``, K = ``max_machines`` (operations per job), N = J * K nodes, node id
    ``j * K + k`` for operation k of job j:

    - ``node_features`` (N * F,): the row-major (N, F) matrix of the F = 11 node features
      below;
    - ``node_mask`` (N,): 1 for unfinished operations, 0 for finished or padded ones;
    - ``conjunctive_edges`` (2 * J * (K - 1),): the row-major (2, E) list of directed edges
      k -> k + 1 of a job among unfinished operations, then -1 columns;
    - ``disjunctive_edges`` (2 * K * J * (J - 1) / 2,): the row-major (2, E) list of
      undirected pairs (i < j) of unfinished operations on the same machine, then -1 columns;
    - ``candidate_nodes`` (J,): node id of each job's next operation, -1 if none.

    The matrices are flattened because Stable-Baselines3 accepts only 1-D (or image) Box
    observations without warnings; :func:`unflatten_graph_observation` restores ``(N, F)``
    and ``(2, E)`` (numpy or torch, batched or not). Node ids are floats (SB3 stores
    observations as float32); cast them back to integers. Node features (p_max = longest
    operation of the instance; finished and padded operations have all-zero rows):

    0-4. status one-hot: ``waiting`` (not started and not dispatchable now), ``ready`` (next
    operation of a candidate job), ``processing`` (on an operational machine), ``blocked``
    (finished, holding an operational machine), ``on_down_machine`` (processing paused or
    blocked on a down machine);
    5. ``duration``: p / p_max;
    6. ``remaining_processing``: processing ticks left / p_max (p if not started, 0 if done);
    7. ``remaining_job_work``: remaining processing of this and the job's later operations /
       the job's total work;
    8. ``remaining_job_ops``: operations from this one to the job's end / K;
    9. ``machine_down``: the operation's machine is shut down now;
    10. ``remaining_downtime``: ticks until the machine is up again / p_max, capped at
        ``DOWNTIME_FEATURE_CAP`` = 10 (the length of the current shutdown is revealed, as a
        repair estimate would be; future shutdowns are not).

    ``observation="flat"``: one float32 vector for MLP policies: J rows of the 11 job
    features of :data:`FLAT_JOB_FEATURES` (status one-hot {candidate, waiting, processing,
    blocked, on_down_machine, done}, next operation's duration / p_max, remaining processing
    of the current operation / p_max, remaining job work / job work, unstarted operations / K,
    next machine down), then K rows of the 7 machine features of
    :data:`FLAT_MACHINE_FEATURES` (idle, processing, holding a blocked job, down, remaining
    processing / p_max, remaining downtime / p_max (capped at 10), remaining machine work /
    machine load). Padded jobs and machines are zero.

    ## Rewards

    ``reward="time"`` (default): minus the ticks elapsed since the previous decision (the
    first step also pays the ticks before the first decision, when machines were down at
    time 0), so the return of a finished episode is exactly minus the makespan.
    ``reward="lower_bound"``: minus the change of the makespan lower bound of
    :meth:`JobShopSim.lower_bound` (L2D-style dense reward; max over jobs of now + rest of the
    current operation + its unstarted work, and over machines of now + rest of the current
    operation + unstarted work; shutdowns to come ignored), so the return is (bound at the
    first decision - makespan). Rewards are divided by ``reward_scale``. A deadlock (see
    Episode End) is charged as if the clock ran to the safety horizon: the last reward is
    minus (horizon - time already charged), or minus (horizon - previous bound), so a
    deadlocked episode returns minus the horizon (time reward).

    ## Starting State

    Time 0, all jobs waiting before their first operation; the instance (when random) and
    the shutdown windows are drawn from the reset seed.

    ## Episode End

    ``terminated`` when every job has left the shop. ``truncated`` with ``info["deadlock"]``
    True on a deadlock (blocking without swap), or at the safety horizon: when the clock
    passes 3 x the total processing time + the downtime so far (summed over machines).
    Classic and swap-mode episodes never reach it: without deadlock every tick either
    processes some operation or has a machine down.

    ## Info

    ``info["kpi"]`` at every step (episode to date, final at the end): ``makespan`` (the
    clock until done), ``utilisation`` (processing time / (makespan x machines)),
    ``blocked_time`` (machine ticks holding a finished job), ``downtime`` (shutdown ticks
    within the makespan, summed over machines), ``swaps`` (swap cycles), ``deadlock`` (0/1);
    where the instance has a best known makespan for the mode (classic, or blocking with
    swap), ``best_known`` and ``gap_pct`` = 100 (makespan - best_known) / best_known (with
    shutdowns the static best is a reference, not a bound).
    Also ``deadlock``, ``time``, ``invalid_action`` (the action was replaced) and
    ``instance`` (its name). :meth:`schedule` (or :meth:`episode_trace`) returns the
    schedule as a DataFrame.

    ## Arguments

    ```python
    gym.make("opsrl/JobShop-v0", instance="ft06", blocking=True, swap=True,
             shutdown_prob=0.05, downtime=10, downtime_model="geometric",
             observation="graph", reward="time", reward_scale=1.0, max_jobs=None,
             max_machines=None, invalid_action="replace", instance_selection="random",
             render_mode=None)
    ```

    - ``instance``: a packaged name (``"ft06"``, ``"la01"``, ``"ta01"``, ...), a path to an
      OR-Library or Taillard file, a :class:`~opsrl.envs.job_shop.data.JobShopInstance`, or
      a random-instance mapping ``{"jobs": n, "machines": m, "method": "uniform"}``: without
      a ``"seed"`` key a new instance is drawn at every reset from the reset seed; with one
      it is fixed. A list of these draws one entry uniformly at every reset, or, with
      ``instance_selection="seed"``, takes entry ``seed % len(list)`` when reset with a seed
      (the next entry in turn otherwise), so that evaluation seeds 0..k-1 cover every entry.
    - ``blocking``, ``swap``: see Description. Classic JSSP: ``blocking=False``.
    - ``shutdown_prob``: per-tick shutdown probability of an operational machine, in [0, 1).
    - ``downtime``: mean shutdown length in ticks (>= 1; a whole number for ``fixed``).
    - ``downtime_model``: ``"geometric"`` or ``"fixed"`` shutdown lengths.
    - ``observation``: ``"graph"`` or ``"flat"``.
    - ``reward``: ``"time"`` or ``"lower_bound"``; ``reward_scale`` (> 0) divides it.
    - ``max_jobs``, ``max_machines``: pad observations and actions to this size so that
      instances of several sizes share one space (default: the largest given instance).
    - ``invalid_action``: ``"replace"`` or ``"raise"`` (see Action Space).
    - ``render_mode``: ``None`` or ``"ansi"`` (a text Gantt chart).

    ``reset(options={"downtime_windows": [[(start, end), ...] per machine]})`` replays given
    shutdown windows instead of sampling them. Bad arguments raise a ValueError naming the
    argument at construction.

    ## Version History

    - v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        instance: Any = "ft06",
        blocking: bool = True,
        swap: bool = True,
        shutdown_prob: float = 0.05,
        downtime: float = 10.0,
        downtime_model: str = "geometric",
        observation: str = "graph",
        reward: str = "time",
        reward_scale: float = 1.0,
        max_jobs: int | None = None,
        max_machines: int | None = None,
        invalid_action: str = "replace",
        instance_selection: str = "random",
        render_mode: str | None = None,
    ) -> None:
        check_sim_kwargs(blocking, swap, shutdown_prob, downtime, downtime_model)
        if observation not in OBSERVATIONS:
            raise ValueError(
                f"observation must be one of {', '.join(OBSERVATIONS)}, got {observation!r}"
            )
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {reward!r}")
        if (
            isinstance(reward_scale, bool)
            or not isinstance(reward_scale, int | float | np.integer | np.floating)
            or not math.isfinite(float(reward_scale))
            or reward_scale <= 0
        ):
            raise ValueError(f"reward_scale must be a positive number, got {reward_scale!r}")
        if invalid_action not in INVALID_ACTION_MODES:
            raise ValueError(
                f"invalid_action must be one of {', '.join(INVALID_ACTION_MODES)}, "
                f"got {invalid_action!r}"
            )
        if instance_selection not in ("random", "seed"):
            raise ValueError(
                f"instance_selection must be 'random' or 'seed', got {instance_selection!r}"
            )
        self.instance_selection = instance_selection
        self._next_index = 0
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")

        specs = list(instance) if isinstance(instance, list | tuple) else [instance]
        if not specs:
            raise ValueError("instance: the list of instances is empty")
        self._sources = [_instance_source(spec) for spec in specs]
        need_jobs = max(source.n_jobs for source in self._sources)
        need_width = max(max(s.n_ops, s.n_machines) for s in self._sources)
        self.max_jobs = _padded_size("max_jobs", max_jobs, need_jobs)
        self.max_machines = _padded_size("max_machines", max_machines, need_width)

        self.blocking = bool(blocking)
        self.swap = bool(swap)
        self.shutdown_prob = float(shutdown_prob)
        self.downtime = float(downtime)
        self.downtime_model = downtime_model
        self.observation = observation
        self.reward_mode = reward
        self.reward_scale = float(reward_scale)
        self.invalid_action = invalid_action
        self.render_mode = render_mode

        self.action_space = spaces.Discrete(self.max_jobs)
        self.observation_space = self._make_observation_space()
        jobs, width = self.max_jobs, self.max_machines
        self._capacity = (jobs * (width - 1), width * (jobs * (jobs - 1) // 2))

        # one simulator per fixed instance, reused across resets
        self._sims: dict[int, tuple[JobShopSim, StaticGraph]] = {}
        first = self._sources[0]
        self.sim, self._graph = self._simulator(0, first.draw(np.random.default_rng(0)))
        self._started = False
        self._charged_time = 0
        self._lower_bound = 0

    # ----------------------------------------------------------------- properties
    @property
    def instance_sources(self) -> tuple[InstanceSource, ...]:
        """What each episode's instance is drawn from, in the order of ``instance``: fixed
        instances and random-instance specs (shared by the batched env)."""
        return tuple(self._sources)

    @property
    def instance(self) -> JobShopInstance:
        """The instance of the current episode."""
        return self.sim.instance

    # ----------------------------------------------------------------- gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray] | np.ndarray, dict[str, Any]]:
        """Draw the instance (if random) and the shutdown windows, run to the first decision."""
        super().reset(seed=seed)
        options = dict(options or {})
        windows = options.pop("downtime_windows", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; known: downtime_windows")
        rng = self.np_random
        index = int(rng.integers(len(self._sources))) if len(self._sources) > 1 else 0
        if self.instance_selection == "seed":
            index = seed % len(self._sources) if seed is not None else self._next_index
            self._next_index = (index + 1) % len(self._sources)
        self.sim, self._graph = self._simulator(index, self._sources[index].draw(rng))
        window_seed = int(rng.integers(2**63 - 1))
        self.sim.reset(seed=window_seed, windows=windows)
        self._started = True
        # the clock may already have run (machines down at time 0): the first step pays it
        self._charged_time = 0
        self._lower_bound = self.sim.lower_bound()
        return self._observation(), self._info(invalid=False)

    def step(
        self, action: Any
    ) -> tuple[dict[str, np.ndarray] | np.ndarray, float, bool, bool, dict[str, Any]]:
        """Dispatch the chosen job and advance to the next decision."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if self.sim.finished:
            raise RuntimeError("the episode is over; call reset() before step()")
        job = self._action_to_job(action)
        mask = self.sim.candidate_mask()
        invalid = job >= self.sim.n_jobs or not mask[job]
        if invalid:
            if self.invalid_action == "raise":
                raise ValueError(
                    f"job {job} is not a candidate now (candidates: "
                    f"{np.flatnonzero(mask).tolist()}); mask actions with action_masks() or "
                    "use invalid_action='replace'"
                )
            job = int(np.flatnonzero(mask)[0])
        sim = self.sim
        sim.dispatch(job)
        if self.reward_mode == "time":
            cost = (sim.time_limit if sim.deadlock else sim.time) - self._charged_time
            self._charged_time = sim.time
        else:
            bound = sim.time_limit if sim.deadlock else sim.lower_bound()
            cost = bound - self._lower_bound
            self._lower_bound = bound
        reward = -float(cost) / self.reward_scale
        terminated = sim.terminated
        truncated = sim.deadlock or sim.truncated
        return self._observation(), reward, terminated, truncated, self._info(invalid=invalid)

    def action_masks(self) -> np.ndarray:
        """Bool (max_jobs,): the jobs that may be dispatched now."""
        mask = np.zeros(self.max_jobs, dtype=bool)
        mask[: self.sim.n_jobs] = self.sim.candidate_mask()
        return mask

    def schedule(self) -> pd.DataFrame:
        """The (finished or partial) schedule: one row per started operation (``kind="op"``)
        and per shutdown window that started before now (``kind="down"``, job -1).

        Columns: kind, job, op, machine, start, end (processing finished), leave (the job
        left the machine), paused (ticks paused by shutdowns), swap (left by a swap). Times
        not reached yet are -1.
        """
        rows = [("op", *record) for record in self.sim.schedule]
        for machine, windows in enumerate(self.sim.downtime_windows):
            for start, end in windows:
                if start < self.sim.time:
                    rows.append(("down", -1, -1, machine, start, end, end, 0, False))
        frame = pd.DataFrame(rows, columns=list(SCHEDULE_COLUMNS))
        frame = frame.astype(
            {c: "int64" for c in SCHEDULE_COLUMNS if c not in ("kind", "swap")} | {"swap": bool}
        )
        return frame.sort_values(["start", "kind", "machine"], kind="stable").reset_index(drop=True)

    def episode_trace(self) -> pd.DataFrame:
        """The episode's schedule (same as :meth:`schedule`; the generic report hook)."""
        return self.schedule()

    def render(self) -> str | None:
        """With ``render_mode="ansi"``: a text Gantt chart of the schedule so far."""
        if self.render_mode is None:
            gym.logger.warn(
                "You are calling render() without a render_mode; use render_mode='ansi'."
            )
            return None
        return self._gantt()

    # ----------------------------------------------------------------- helpers
    def _simulator(self, index: int, instance: JobShopInstance) -> tuple[JobShopSim, StaticGraph]:
        if self._sources[index].instance is not None and index in self._sims:
            return self._sims[index]
        sim = JobShopSim(
            instance,
            blocking=self.blocking,
            swap=self.swap,
            shutdown_prob=self.shutdown_prob,
            downtime=self.downtime,
            downtime_model=self.downtime_model,
        )
        pair = (sim, static_graph(instance, self.max_jobs, self.max_machines))
        if self._sources[index].instance is not None:
            self._sims[index] = pair
        return pair

    def _action_to_job(self, action: Any) -> int:
        array = np.asarray(action)
        if array.size != 1 or array.dtype.kind not in "iuf":
            raise ValueError(f"action must be one job index, got {action!r}")
        value = array.reshape(()).item()
        if value != int(value) or not 0 <= int(value) < self.max_jobs:
            raise ValueError(
                f"action must be a job index in 0..{self.max_jobs - 1}, got {action!r}"
            )
        return int(value)

    def _info(self, invalid: bool) -> dict[str, Any]:
        kpi = self.sim.kpi()
        # the best known makespan of this mode (classic, or blocking with swap; none is
        # packaged for blocking without swap); with shutdowns it is the static reference
        instance = self.sim.instance
        best = None if self.blocking and not self.swap else instance.best_known(self.blocking)
        if best:
            kpi["best_known"] = float(best)
            kpi["gap_pct"] = 100.0 * (kpi["makespan"] - best) / best
        return {
            "kpi": kpi,
            "deadlock": self.sim.deadlock,
            "time": self.sim.time,
            "invalid_action": invalid,
            "instance": self.sim.instance.name,
        }

    def _make_observation_space(self) -> spaces.Space:
        jobs, width = self.max_jobs, self.max_machines
        if self.observation == "flat":
            job_high = np.ones((jobs, len(FLAT_JOB_FEATURES)), dtype=np.float32)
            machine_high = np.ones((width, len(FLAT_MACHINE_FEATURES)), dtype=np.float32)
            machine_high[:, FLAT_MACHINE_FEATURES.index("remaining_downtime")] = (
                DOWNTIME_FEATURE_CAP
            )
            high = np.concatenate([job_high.ravel(), machine_high.ravel()])
            return spaces.Box(0.0, high, dtype=np.float32)
        n_nodes = jobs * width
        node_high = np.ones((n_nodes, len(NODE_FEATURES)), dtype=np.float32)
        node_high[:, NODE_FEATURES.index("remaining_downtime")] = DOWNTIME_FEATURE_CAP
        last_node = float(n_nodes - 1)

        def node_ids(size: int) -> spaces.Box:
            return spaces.Box(-1.0, last_node, shape=(size,), dtype=np.float32)

        return spaces.Dict(
            {
                "node_features": spaces.Box(0.0, node_high.ravel(), dtype=np.float32),
                "node_mask": spaces.Box(0.0, 1.0, shape=(n_nodes,), dtype=np.float32),
                "conjunctive_edges": node_ids(2 * jobs * (width - 1)),
                "disjunctive_edges": node_ids(2 * width * (jobs * (jobs - 1) // 2)),
                "candidate_nodes": node_ids(jobs),
            }
        )

    def _observation(self) -> dict[str, np.ndarray] | np.ndarray:
        if self.observation == "flat":
            return self._flat_observation()
        return self._graph_observation()

    def _node_state(self) -> tuple[np.ndarray, ...]:
        """Per-operation state shared by both observations.

        Returns ``(held, unstarted, remaining_processing, remaining)``: the operation the job
        holds a machine for, operations not started, processing ticks left per operation
        (n, n_ops), and per job in its current operation (n,).
        """
        sim, graph = self.sim, self._graph
        next_op = sim.next_op[:, None]
        held = (graph.op_index == next_op - 1) & (sim.job_machine >= 0)[:, None]
        unstarted = graph.op_index >= next_op
        remaining = sim.remaining_processing()
        remaining_processing = np.where(unstarted, graph.durations, 0.0)
        remaining_processing += held * remaining[:, None]
        return held, unstarted, remaining_processing, remaining

    def _graph_observation(self) -> dict[str, np.ndarray]:
        sim, graph = self.sim, self._graph
        n_jobs, n_ops = sim.n_jobs, sim.n_ops
        held, unstarted, remaining_processing, _ = self._node_state()
        alive = unstarted | held
        machine_down = sim.machine_down
        any_down = machine_down.any()
        # status code per node: 0 waiting, 1 ready, 2 processing, 3 blocked, 4 on a down machine
        job_code = np.where(sim.job_status == BLOCKED, 3, 2)
        if any_down:
            holding = sim.job_machine
            job_code[machine_down[holding] & (holding >= 0)] = 4
        code = np.where(held, job_code[:, None], 0)
        ready_jobs = np.flatnonzero(sim.candidate_mask())
        code[ready_jobs, sim.next_op[ready_jobs]] = 1
        p_max = graph.p_max

        # the static columns (duration, remaining_job_ops) come filled in
        features = graph.feature_template.copy()
        real = features[:n_jobs, :n_ops]
        real[..., :5] = _STATUS_ONE_HOT[code]
        real[..., 6] = remaining_processing / p_max
        real[..., 7] = np.cumsum(remaining_processing[:, ::-1], axis=1)[:, ::-1] / graph.job_work
        if any_down:
            downtime_left = np.where(machine_down, sim.machine_down_until - sim.time, 0)
            real[..., 9] = machine_down[graph.machines]
            real[..., 10] = np.minimum(downtime_left[graph.machines] / p_max, DOWNTIME_FEATURE_CAP)
        real *= alive[..., None]

        node_mask = np.zeros((self.max_jobs, self.max_machines), dtype=np.float32)
        node_mask[:n_jobs, :n_ops] = alive
        alive_nodes = node_mask.ravel() > 0
        candidate_nodes = np.full(self.max_jobs, -1.0, dtype=np.float32)
        has_next = np.flatnonzero(sim.next_op < n_ops)
        candidate_nodes[has_next] = has_next * self.max_machines + sim.next_op[has_next]
        return {
            "node_features": features.ravel(),
            "node_mask": node_mask.ravel(),
            "conjunctive_edges": _edge_list(graph.conjunctive, alive_nodes, self._capacity[0]),
            "disjunctive_edges": _edge_list(graph.disjunctive, alive_nodes, self._capacity[1]),
            "candidate_nodes": candidate_nodes,
        }

    def _flat_observation(self) -> np.ndarray:
        sim, graph = self.sim, self._graph
        n_jobs, n_ops, n_machines = sim.n_jobs, sim.n_ops, sim.n_machines
        p_max = graph.p_max
        held, _, remaining_processing, remaining = self._node_state()
        status = sim.job_status
        jobs_range = np.arange(n_jobs)
        has_next = sim.next_op < n_ops
        next_index = np.minimum(sim.next_op, n_ops - 1)
        next_machine = graph.machines[jobs_range, next_index]
        machine_down = sim.machine_down
        holding = sim.job_machine
        on_down = (holding >= 0) & machine_down[holding]
        mask = sim.candidate_mask()

        job_rows = np.zeros((self.max_jobs, len(FLAT_JOB_FEATURES)), dtype=np.float32)
        job_rows[:n_jobs] = np.stack(
            [
                mask,
                (status == WAITING) & ~mask,
                (status == PROCESSING) & ~on_down,
                (status == BLOCKED) & ~on_down & ~mask,
                on_down,
                status == DONE,
                np.where(has_next, graph.duration_feature[jobs_range, next_index], 0),
                remaining / p_max,
                remaining_processing.sum(axis=1) / graph.job_work[:, 0],
                (n_ops - sim.next_op) / self.max_machines,
                has_next & machine_down[next_machine],
            ],
            axis=1,
        )
        machine_rows = np.zeros((self.max_machines, len(FLAT_MACHINE_FEATURES)), dtype=np.float32)
        machine_job = sim.machine_job
        occupied = machine_job >= 0
        holder_status = np.where(occupied, status[machine_job], -1)
        downtime_left = np.where(machine_down, sim.machine_down_until - sim.time, 0)
        machine_work = np.bincount(
            graph.machines.ravel(), weights=remaining_processing.ravel(), minlength=n_machines
        )
        machine_rows[:n_machines] = np.stack(
            [
                ~occupied & ~machine_down,
                holder_status == PROCESSING,
                holder_status == BLOCKED,
                machine_down,
                np.where(occupied, remaining[machine_job], 0) / p_max,
                np.minimum(downtime_left / p_max, DOWNTIME_FEATURE_CAP),
                machine_work / graph.machine_load,
            ],
            axis=1,
        )
        return np.concatenate([job_rows.ravel(), machine_rows.ravel()])

    def _gantt(self, width: int = 72) -> str:
        """Machines as rows, time as columns: job symbol while processing, ``~`` while
        holding a finished job, ``#`` while down, ``.`` idle."""
        sim = self.sim
        horizon = max(sim.time, 1)
        scale = max(1, math.ceil(horizon / width))
        columns = math.ceil(horizon / scale)
        symbols = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
        grid = np.full((sim.n_machines, columns), ".", dtype="<U1")
        for record in sim.schedule:
            symbol = symbols[record.job] if record.job < len(symbols) else "*"
            end = sim.time if record.end < 0 else record.end
            leave = sim.time if record.leave < 0 else record.leave
            grid[record.machine, record.start // scale : math.ceil(end / scale)] = symbol
            if leave > end:
                grid[record.machine, math.ceil(end / scale) : math.ceil(leave / scale)] = "~"
        for machine, windows in enumerate(sim.downtime_windows):
            for start, end in windows:
                if start < horizon:
                    grid[machine, start // scale : math.ceil(min(end, horizon) / scale)] = "#"
        mode = "classic" if not sim.blocking else ("swap" if sim.swap else "no swap")
        lines = [
            f"{sim.instance.name} ({mode}) t={sim.time} swaps={sim.swaps}"
            f"{' DEADLOCK' if sim.deadlock else ''} (1 column = {scale} ticks)"
        ]
        lines += [f"M{machine:<3d}|{''.join(row)}|" for machine, row in enumerate(grid)]
        return "\n".join(lines)


def _edge_list(edges: np.ndarray, alive: np.ndarray, capacity: int) -> np.ndarray:
    """Edges with both ends alive, packed to the front of a -1 padded (2 * capacity,) row."""
    out = np.full((2, capacity), -1.0, dtype=np.float32)
    if edges.shape[1]:
        kept = edges[:, alive[edges[0]] & alive[edges[1]]]
        out[:, : kept.shape[1]] = kept
    return out.ravel()


def _padded_size(name: str, value: Any, needed: int) -> int:
    if value is None:
        return needed
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be None or a positive integer, got {value!r}")
    if value < needed:
        raise ValueError(f"{name}={value} is smaller than the largest instance ({needed})")
    return int(value)
