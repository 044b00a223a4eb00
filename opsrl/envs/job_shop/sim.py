"""Event-driven job shop simulator: classic, blocking (with or without swaps) and interrupted.

Plain numpy, no Gymnasium: :class:`JobShopSim` holds the shop state on an integer clock and
advances it from one dispatching decision to the next. :mod:`opsrl.envs.job_shop.env` wraps it.

The model (``shared/specs/lot_sizing_and_job_shop.md`` section 5, after Mascis & Pacciarelli
2002 and Pranzo & Pacciarelli 2016):

- **Jobs** visit machines in their instance order; an operation occupies its machine from its
  start until the job *leaves* the machine. Classic mode (``blocking=False``): a job leaves when
  its processing ends and waits in an unlimited buffer. Blocking mode: a job that finished an
  operation keeps the machine (BLOCKED) until it moves to its next machine; a job on its last
  operation leaves the shop when that operation ends.
- **Decisions**: when an idle, operational machine has candidates (jobs whose next operation is
  on it and that may move now) the policy dispatches one candidate job; decisions repeat at the
  same instant while candidates remain, then the clock jumps to the next event (an operation
  end, or the end of a shutdown that frees a move).
- **Swaps** (``blocking`` and ``swap``): at every event time, before decisions, every directed
  cycle of the "wants" graph among blocked jobs (a job blocked on machine a wants machine b,
  held by another blocked job) moves simultaneously; all machines of the cycle must be
  operational. One cycle counts as one swap.
- **Shutdowns**: each machine has exogenous downtime windows ``[start, end)`` drawn at reset from
  its own random stream (common random numbers: they do not depend on the schedule). During a
  window processing pauses and resumes afterwards, and no job enters or leaves the machine. A
  job whose processing ends exactly when a window starts still leaves when it has nowhere to
  wait (classic mode or last operation); a blocked job stays until the window ends.
- **Deadlock** (blocking without swap only): a cycle of blocked jobs each waiting for the
  machine of the next can never move; the simulator flags it and stops. Dispatches that would
  close a cycle of machine-holding jobs (a certain deadlock) are removed from
  :meth:`JobShopSim.candidate_mask` while something else can happen (see there).
  Classic and swap modes cannot deadlock: every wait chain ends in a processing job, an idle
  machine (whose candidates must be dispatched), a down machine, or a cycle (which is swapped).

Times are integers; an operation of duration p occupies p operational ticks of its machine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from opsrl.envs.job_shop.data import JobShopInstance

__all__ = [
    "BLOCKED",
    "DONE",
    "DOWNTIME_MODELS",
    "HORIZON_FACTOR",
    "PROCESSING",
    "WAITING",
    "JobShopSim",
    "ScheduledOperation",
]

#: job status codes (``JobShopSim.job_status``)
WAITING, PROCESSING, BLOCKED, DONE = 0, 1, 2, 3
DOWNTIME_MODELS = ("geometric", "fixed")
#: the safety horizon is HORIZON_FACTOR x total processing time plus the downtime so far
HORIZON_FACTOR = 3

_NEVER = np.iinfo(np.int64).max // 4


class ScheduledOperation(NamedTuple):
    """One started operation. Times not reached yet are -1."""

    job: int
    op: int
    machine: int
    start: int
    #: when processing finished (start + duration + paused)
    end: int
    #: when the job left the machine (== end in classic mode and for last operations)
    leave: int
    #: ticks the operation was paused by shutdowns of its machine
    paused: int
    #: the job left this machine through a swap cycle
    swap: bool


class _DowntimeSampler:
    """Shutdown windows per machine, each from its own stream, extendable to any horizon.

    A machine that is operational at tick t shuts down at t with probability ``prob``: the gap
    before a window is geometric (counting from 0 at the start and from the end of the previous
    window). The length is geometric with mean ``mean`` (support >= 1) or exactly ``mean``
    (``fixed``). A window starting when the previous one ends is merged into it, so a sampled
    window is final. Each machine draws (gap, length) pairs from its own stream in fixed-size
    batches, so the windows do not depend on when or how far they are extended.
    """

    _BATCH = 64

    def __init__(
        self, n_machines: int, prob: float, mean: float, model: str, seed: int | None
    ) -> None:
        streams = np.random.SeedSequence(seed).spawn(n_machines)
        self._rngs = [np.random.default_rng(stream) for stream in streams]
        self._prob = prob
        self._mean = mean
        self._fixed = model == "fixed"
        empty = np.zeros(0, dtype=np.int64)
        # raw (unmerged) windows and the gap before each
        self._gaps = [empty] * n_machines
        self._starts = [empty] * n_machines
        self._ends = [empty] * n_machines
        self.windows: list[list[tuple[int, int]]] = [[] for _ in range(n_machines)]
        self.horizon = 0

    def _grow(self, machine: int) -> None:
        rng = self._rngs[machine]
        gaps = rng.geometric(self._prob, self._BATCH).astype(np.int64) - 1
        if self._fixed:
            lengths = np.full(self._BATCH, int(self._mean), dtype=np.int64)
        else:
            lengths = rng.geometric(1.0 / self._mean, self._BATCH).astype(np.int64)
        ends = self._ends[machine]
        base = int(ends[-1]) if ends.size else 0
        new_ends = base + np.cumsum(gaps + lengths)
        self._gaps[machine] = np.concatenate([self._gaps[machine], gaps])
        self._starts[machine] = np.concatenate([self._starts[machine], new_ends - lengths])
        self._ends[machine] = np.concatenate([ends, new_ends])

    def extend(self, horizon: int) -> None:
        """Sample every window that starts before ``horizon``."""
        if horizon <= self.horizon or self._prob <= 0:
            self.horizon = max(self.horizon, horizon)
            return
        for machine in range(len(self.windows)):
            # grow until a window that does not continue its predecessor starts at or after
            # the horizon: every merged window starting before it is then complete
            while not ((self._starts[machine] >= horizon) & (self._gaps[machine] > 0)).any():
                self._grow(machine)
            starts, ends, gaps = self._starts[machine], self._ends[machine], self._gaps[machine]
            first = gaps > 0
            first[0] = True
            heads = np.flatnonzero(first)
            tails = np.append(heads[1:] - 1, starts.size - 1)
            keep = starts[heads] < horizon
            self.windows[machine] = list(
                zip(starts[heads[keep]].tolist(), ends[tails[keep]].tolist(), strict=True)
            )
        self.horizon = horizon


class _FixedWindows:
    """Given shutdown windows (tests, replays); none after the last one."""

    def __init__(self, windows: list[list[tuple[int, int]]]) -> None:
        self.windows = windows
        self.horizon = 0

    def extend(self, horizon: int) -> None:
        self.horizon = max(self.horizon, horizon)


def _check_windows(windows: Any, n_machines: int) -> list[list[tuple[int, int]]]:
    """Validate explicit windows: one sorted list of disjoint (start, end) pairs per machine."""
    if not isinstance(windows, Sequence) or len(windows) != n_machines:
        raise ValueError(f"windows must be a list of {n_machines} lists of (start, end) pairs")
    checked = []
    for machine, pairs in enumerate(windows):
        merged: list[tuple[int, int]] = []
        for pair in pairs:
            start, end = (int(v) for v in pair)
            if not 0 <= start < end:
                raise ValueError(f"windows[{machine}]: need 0 <= start < end, got {pair}")
            if merged and start < merged[-1][1]:
                raise ValueError(f"windows[{machine}] must be sorted and disjoint, got {pairs}")
            if merged and start == merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        checked.append(merged)
    return checked


class JobShopSim:
    """Job shop state and dispatching dynamics (see the module docstring for the model).

    Use: ``sim.reset(seed)``, then while not ``sim.finished``: pick ``job`` with
    ``sim.candidate_mask()[job]`` True and call ``sim.dispatch(job)``; it starts the job's next
    operation now and advances the clock to the next decision.

    Public read-only state (numpy arrays are read-only views updated in place):

    - ``instance``, ``time`` (int), ``blocking``, ``swap``, ``shutdown_prob``, ``downtime``,
      ``downtime_model``;
    - ``next_op`` (n_jobs,): index of each job's next operation not yet started (n_ops once all
      have started);
    - ``job_status`` (n_jobs,): ``WAITING`` (not started, or between machines in classic mode),
      ``PROCESSING`` (on a machine, maybe paused by a shutdown), ``BLOCKED`` (finished its
      operation and still holds the machine; blocking mode) or ``DONE``;
    - ``job_ready_time`` (n_jobs,): since when the job is available for its next operation (0,
      then the end of its previous operation);
    - ``job_machine`` (n_jobs,): machine the job holds, -1 if none;
    - ``machine_job`` (n_machines,): job on each machine, -1 if none;
    - ``machine_down`` (n_machines,) bool and ``machine_down_until`` (n_machines,): whether the
      machine is shut down now and until when (<= time when operational);
    - ``downtime_windows``: per machine, the ``(start, end)`` windows sampled so far;
    - ``schedule``: one :class:`ScheduledOperation` per started operation;
    - ``terminated`` (all jobs done), ``deadlock``, ``truncated`` (safety horizon) and
      ``finished`` (any of them); ``swaps`` (cycles moved), ``n_decisions``;
    - static: ``n_jobs``, ``n_ops``, ``n_machines``, ``total_processing_time``,
      ``max_duration``, ``work_from`` (n_jobs, n_ops + 1): work of operations k.. of each job
      (0 in the last column), ``machine_load`` (n_machines,): total work per machine.

    Args:
        instance: the job shop instance.
        blocking: jobs hold their machine until they move on (else classic buffers).
        swap: in blocking mode, cycles of blocked jobs move simultaneously.
        shutdown_prob: probability that an operational machine shuts down at a tick, in [0, 1).
        downtime: mean shutdown length in ticks (>= 1; an integer for ``fixed``).
        downtime_model: ``"geometric"`` or ``"fixed"`` shutdown lengths.
    """

    def __init__(
        self,
        instance: JobShopInstance,
        blocking: bool = True,
        swap: bool = True,
        shutdown_prob: float = 0.0,
        downtime: float = 10.0,
        downtime_model: str = "geometric",
    ) -> None:
        check_sim_kwargs(blocking, swap, shutdown_prob, downtime, downtime_model)
        if not isinstance(instance, JobShopInstance):
            raise ValueError(f"instance must be a JobShopInstance, got {type(instance).__name__}")
        self.instance = instance
        self.blocking = bool(blocking)
        self.swap = bool(swap)
        self.shutdown_prob = float(shutdown_prob)
        self.downtime = float(downtime)
        self.downtime_model = downtime_model

        n_jobs, n_ops = instance.machines.shape
        self.n_jobs, self.n_ops, self.n_machines = n_jobs, n_ops, instance.n_machines
        self.total_processing_time = instance.total_processing_time
        self.max_duration = int(instance.durations.max())
        # Tables indexed by (job, next_op) with one sentinel column for "no next operation":
        # machine n_machines (never idle), duration 0, remaining work 0.
        self._next_machine = np.concatenate(
            [instance.machines, np.full((n_jobs, 1), self.n_machines, dtype=np.int64)], axis=1
        )
        self._duration = np.concatenate(
            [instance.durations, np.zeros((n_jobs, 1), dtype=np.int64)], axis=1
        )
        #: work of operations k.. of each job
        self.work_from = np.concatenate(
            [np.cumsum(instance.durations[:, ::-1], axis=1)[:, ::-1], np.zeros((n_jobs, 1))],
            axis=1,
        ).astype(np.int64)
        self.machine_load = np.bincount(
            instance.machines.ravel(), weights=instance.durations.ravel(), minlength=self.n_machines
        ).astype(np.int64)
        self._jobs = np.arange(n_jobs)
        self._doublings = max(1, math.ceil(math.log2(n_jobs + 1)))
        self._reset_state()
        self._windows: _DowntimeSampler | _FixedWindows | None = None
        self._has_windows = False

    # ------------------------------------------------------------------ episode control
    def reset(self, seed: int | None = None, windows: Any = None) -> None:
        """Start a new episode at time 0 and advance to the first decision.

        ``seed`` seeds the shutdown windows (one independent stream per machine).
        ``windows`` replaces them by the given ones: one list of ``(start, end)`` per machine
        (none after the last one).
        """
        self._reset_state()
        if windows is not None:
            self._windows = _FixedWindows(_check_windows(windows, self.n_machines))
            self._has_windows = any(self._windows.windows)
        elif self.shutdown_prob > 0:
            self._windows = _DowntimeSampler(
                self.n_machines, self.shutdown_prob, self.downtime, self.downtime_model, seed
            )
            self._has_windows = True
        else:
            self._windows = _FixedWindows([[] for _ in range(self.n_machines)])
            self._has_windows = False
        self._horizon = 0
        if self._has_windows:
            # room for a blocking schedule slowed by the expected share of shutdown ticks,
            # so that most episodes never extend the tables
            loads = max(int(self.machine_load.max()), int(self.work_from[:, 0].max()))
            busy = self.shutdown_prob * self.downtime
            self._extend_horizon(int(3 * loads * (1 + busy)) + 8 * int(math.ceil(self.downtime)))
        self._settle(new_time=True)

    def dispatch(self, job: int) -> None:
        """Start ``job``'s next operation now, then advance to the next decision.

        Raises a ValueError if ``job`` is not in :meth:`candidate_mask`.
        """
        if self.finished:
            raise RuntimeError("the episode is over; call reset()")
        job = int(job)
        if not 0 <= job < self.n_jobs or not self._mask[job]:
            allowed = np.flatnonzero(self._mask).tolist()
            raise ValueError(f"job {job} cannot be dispatched now; candidates are {allowed}")
        if self._status[job] == BLOCKED:
            self._leave(np.array([job]), swap=False)
        self._start(np.array([job]))
        self.n_decisions += 1
        self._settle(new_time=False)

    @property
    def finished(self) -> bool:
        """The episode is over: all jobs done, deadlock, or safety horizon passed."""
        return self.terminated or self.deadlock or self.truncated

    # ------------------------------------------------------------------ public state
    def candidate_mask(self) -> np.ndarray:
        """Bool (n_jobs,): jobs that may be dispatched now (the action mask; a copy).

        A candidate's next operation ``next_op[j]`` is on an idle, operational machine, and the
        job is waiting or blocked on an operational machine.

        In blocking mode without swap, a dispatch that would close a cycle of jobs that each
        hold a machine and need the machine of the next is removed: without swaps such a
        cycle can never move, so it is a certain deadlock. Only a dispatch can close such a
        cycle, so this check is exact; but while only such dispatches are left the clock
        advances without them when an event is pending, and when none is, they are offered
        (the shop is stuck and every choice deadlocks).
        """
        return self._mask.copy()

    @property
    def time_limit(self) -> int:
        """Safety horizon now: HORIZON_FACTOR x total processing time + downtime so far.

        The downtime is summed over machines within [0, time). Without deadlock the makespan
        is at most the total processing time plus the ticks on which some machine is down, so
        classic and swap episodes never reach it.
        """
        return HORIZON_FACTOR * self.total_processing_time + self.downtime_until(self.time)

    @property
    def downtime_windows(self) -> list[list[tuple[int, int]]]:
        """Per machine, the shutdown windows ``(start, end)`` sampled so far (copies)."""
        if self._windows is None:
            return [[] for _ in range(self.n_machines)]
        return [list(windows) for windows in self._windows.windows]

    def ensure_windows(self, horizon: int) -> list[list[tuple[int, int]]]:
        """Sample the windows starting before ``horizon`` (if not yet) and return them all."""
        if self._windows is None:
            raise RuntimeError("call reset() first")
        if self._has_windows:
            self._extend_horizon(int(horizon))
        else:
            self._windows.extend(int(horizon))
        return self.downtime_windows

    @property
    def schedule(self) -> list[ScheduledOperation]:
        """The operations started so far, ordered by start time then job."""
        jobs, ops = np.nonzero(self._op_start >= 0)
        order = np.lexsort((jobs, self._op_start[jobs, ops]))
        records = []
        for job, op in zip(jobs[order].tolist(), ops[order].tolist(), strict=True):
            start, end = int(self._op_start[job, op]), int(self._op_end[job, op])
            paused = end - start - int(self._duration[job, op]) if end >= 0 else -1
            records.append(
                ScheduledOperation(
                    job=job,
                    op=op,
                    machine=int(self._next_machine[job, op]),
                    start=start,
                    end=end,
                    leave=int(self._op_leave[job, op]),
                    paused=paused,
                    swap=bool(self._op_swap[job, op]),
                )
            )
        return records

    def remaining_processing(self) -> np.ndarray:
        """(n_jobs,) operational ticks left in each job's current operation (0 if none)."""
        # the state changes only by a dispatch or a time step: cache per (time, decisions)
        stamp = (self.time, self.n_decisions)
        if self._remaining_stamp == stamp:
            return self._remaining.copy()
        remaining = np.zeros(self.n_jobs, dtype=np.int64)
        jobs = np.flatnonzero(self._job_end < _NEVER)
        if jobs.size:
            ends = self._job_end[jobs]
            if self._has_windows:
                machines = self._job_machine[jobs]
                remaining[jobs] = self._up[machines, ends] - self._up[machines, self.time]
            else:
                remaining[jobs] = ends - self.time
        self._remaining_stamp, self._remaining = stamp, remaining
        return remaining.copy()

    def downtime_until(self, time: int) -> int:
        """Shutdown ticks in [0, time), summed over machines."""
        if not self._has_windows or time <= 0:
            return 0
        if time > self._horizon:
            self._extend_horizon(time)
        return int(time * self.n_machines - self._up[:, time].sum())

    def processed_time(self) -> int:
        """Processing ticks done so far, over all operations."""
        running = np.flatnonzero(self._job_end < _NEVER)
        started_work = self._duration[running, self._next_op[running] - 1].sum()
        return int(self._processed + started_work - self.remaining_processing().sum())

    def blocked_time(self) -> int:
        """Ticks machines spent holding a job that had finished its operation, so far."""
        blocked = self._status_n == BLOCKED
        return int(self._blocked_total + (self.time - self._job_ready_time[blocked]).sum())

    def lower_bound(self) -> int:
        """A lower bound on the makespan given the state (shutdowns to come ignored).

        The larger of: for each unfinished job, now + the rest of its current operation + the
        durations of its operations not yet started; for each machine, now + the rest of the
        operation on it + the durations of its operations not yet started. Equals the makespan
        once all jobs are done.
        """
        if self.terminated:
            return self.time
        status = self._status_n
        remaining = self.remaining_processing()
        unstarted_work = self.work_from[self._jobs, self._next_op]
        job_bound = int((remaining + unstarted_work)[status != DONE].max())
        unstarted = self._unstarted_mask()
        machine_work = np.bincount(
            self.instance.machines[unstarted],
            weights=self.instance.durations[unstarted],
            minlength=self.n_machines,
        )
        running = status == PROCESSING
        machine_work[self._job_machine[running]] += remaining[running]
        return self.time + max(job_bound, int(machine_work.max()))

    def kpi(self) -> dict[str, float]:
        """Episode-to-date KPIs: makespan (the clock until done), utilisation, blocked_time,
        downtime (within the makespan, summed over machines), swaps, deadlock (0/1)."""
        makespan = self.time
        capacity = makespan * self.n_machines
        return {
            "makespan": float(makespan),
            "utilisation": self.processed_time() / capacity if capacity > 0 else 0.0,
            "blocked_time": float(self.blocked_time()),
            "downtime": float(self.downtime_until(makespan)),
            "swaps": float(self.swaps),
            "deadlock": float(self.deadlock),
        }

    # ------------------------------------------------------------------ state
    def _reset_state(self) -> None:
        n_jobs, n_ops, n_machines = self.n_jobs, self.n_ops, self.n_machines
        self.time = 0
        self._next_op = np.zeros(n_jobs, dtype=np.int64)
        # Sentinel slots keep the hot paths free of bounds checks: job index n_jobs (also
        # reached as -1) is DONE; machine index n_machines (the "no next operation" machine,
        # also reached as -1 for the down flags) is never idle and never down.
        self._status = np.full(n_jobs + 1, WAITING, dtype=np.int64)
        self._status[n_jobs] = DONE
        self._status_n = self._status[:n_jobs]
        self._job_ready_time = np.zeros(n_jobs, dtype=np.int64)
        self._job_machine = np.full(n_jobs, -1, dtype=np.int64)
        self._job_end = np.full(n_jobs, _NEVER, dtype=np.int64)
        self._machine_job = np.full(n_machines + 1, -1, dtype=np.int64)
        self._machine_job[n_machines] = n_jobs
        self._down = np.zeros(n_machines + 1, dtype=bool)
        self._down_until = np.zeros(n_machines + 1, dtype=np.int64)
        self._op_start = np.full((n_jobs, n_ops), -1, dtype=np.int64)
        self._op_end = np.full((n_jobs, n_ops), -1, dtype=np.int64)
        self._op_leave = np.full((n_jobs, n_ops), -1, dtype=np.int64)
        self._op_swap = np.zeros((n_jobs, n_ops), dtype=bool)
        self._mask = np.zeros(n_jobs, dtype=bool)
        self._remaining_stamp: tuple[int, int] | None = None
        self._remaining = np.zeros(n_jobs, dtype=np.int64)
        self._next_end = _NEVER
        self._processed = 0
        self._blocked_total = 0
        self._n_done = 0
        self.swaps = 0
        self.n_decisions = 0
        self.terminated = self.deadlock = self.truncated = False
        self.next_op = _read_only(self._next_op)
        self.job_status = _read_only(self._status_n)
        self.job_ready_time = _read_only(self._job_ready_time)
        self.job_machine = _read_only(self._job_machine)
        self.machine_job = _read_only(self._machine_job[:n_machines])
        self.machine_down = _read_only(self._down[:n_machines])
        self.machine_down_until = _read_only(self._down_until[:n_machines])

    def _unstarted_mask(self) -> np.ndarray:
        return np.arange(self.n_ops)[None, :] >= self._next_op[:, None]

    # ------------------------------------------------------------------ shutdown windows
    def _extend_horizon(self, needed: int) -> None:
        """Make the operational-tick table cover times 0..needed (and windows before it)."""
        if needed <= self._horizon:
            return
        horizon = max(needed, 2 * self._horizon)
        self._windows.extend(horizon)
        change = np.zeros((self.n_machines, horizon + 1), dtype=np.int64)
        for machine, windows in enumerate(self._windows.windows):
            if windows:
                bounds = np.asarray(windows, dtype=np.int64)
                bounds = bounds[bounds[:, 0] < horizon]
                np.add.at(change[machine], bounds[:, 0], 1)
                np.add.at(change[machine], np.minimum(bounds[:, 1], horizon), -1)
        down = np.cumsum(change[:, :horizon], axis=1) > 0
        # _up[m, x] = operational ticks of machine m in [0, x), non-decreasing in x
        self._up = np.zeros((self.n_machines, horizon + 1), dtype=np.int64)
        np.cumsum(~down, axis=1, out=self._up[:, 1:])
        # rows offset so that one searchsorted call serves every machine
        self._row_offset = np.arange(self.n_machines, dtype=np.int64) * (horizon + 2)
        self._up_flat = (self._up + self._row_offset[:, None]).ravel()
        self._horizon = horizon

    def _first_time_with_up(self, machines: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Smallest x with ``_up[m, x] >= target`` for each (machine, target) pair."""
        while not (self._up[machines, self._horizon] >= targets).all():
            self._extend_horizon(2 * self._horizon)
        index = np.searchsorted(self._up_flat, self._row_offset[machines] + targets, side="left")
        return index - machines * (self._horizon + 1)

    def _refresh_machines(self) -> bool:
        """Shutdown flags and ends at the current time; returns whether a machine holding a
        blocked job came up."""
        if not self._has_windows:
            return False
        t = self.time
        if t + 1 > self._horizon:
            self._extend_horizon(t + 1)
        up = self._up
        down = up[:, t + 1] == up[:, t]
        came_up = self._down[: self.n_machines] & ~down
        self._down[: self.n_machines] = down
        # a shutdown's end is computed once, when it is first seen
        stale = down & (self._down_until[: self.n_machines] <= t)
        if stale.any():
            machines = np.flatnonzero(stale)
            # the first operational tick x >= t is where _up first reaches _up[m, t] + 1, minus 1
            self._down_until[machines] = self._first_time_with_up(machines, up[machines, t] + 1) - 1
        # only a machine holding a blocked job can complete a swap cycle by coming up
        return bool(
            (came_up & (self._status[self._machine_job[: self.n_machines]] == BLOCKED)).any()
        )

    # ------------------------------------------------------------------ transitions
    def _start(self, jobs: np.ndarray) -> None:
        """Start the next operation of ``jobs`` (not holding any machine) now."""
        t = self.time
        ops = self._next_op[jobs]
        machines = self._next_machine[jobs, ops]
        durations = self._duration[jobs, ops]
        if self._has_windows:
            ends = self._first_time_with_up(machines, self._up[machines, t] + durations)
        else:
            ends = t + durations
        self._machine_job[machines] = jobs
        self._job_machine[jobs] = machines
        self._job_end[jobs] = ends
        self._status[jobs] = PROCESSING
        self._op_start[jobs, ops] = t
        self._next_op[jobs] = ops + 1

    def _leave(self, jobs: np.ndarray, swap: bool) -> None:
        """Blocked ``jobs`` leave their machines now (their machines become idle)."""
        t = self.time
        ops = self._next_op[jobs] - 1
        self._op_leave[jobs, ops] = t
        self._op_swap[jobs, ops] = swap
        self._blocked_total += int((t - self._job_ready_time[jobs]).sum())
        self._machine_job[self._job_machine[jobs]] = -1
        self._job_machine[jobs] = -1

    def _finish_operations(self) -> bool:
        """Operations whose processing ends now; returns whether any did."""
        t = self.time
        if t != self._next_end:
            return False
        jobs = np.flatnonzero(self._job_end == t)
        ops = self._next_op[jobs] - 1
        self._job_end[jobs] = _NEVER
        self._job_ready_time[jobs] = t
        self._op_end[jobs, ops] = t
        self._processed += int(self._duration[jobs, ops].sum())
        last = ops == self.n_ops - 1
        leaving = last if self.blocking else np.ones_like(last)
        if leaving.any():
            gone, gone_ops = jobs[leaving], ops[leaving]
            self._op_leave[gone, gone_ops] = t
            self._machine_job[self._job_machine[gone]] = -1
            self._job_machine[gone] = -1
        status = BLOCKED if self.blocking else WAITING
        self._status[jobs] = np.where(last, DONE, status)
        self._n_done += int(last.sum())
        return True

    def _cycle_nodes(self, successor: np.ndarray) -> np.ndarray:
        """Bool (n_jobs,): jobs on a cycle of ``successor`` (length n_jobs + 1, where the
        sink n_jobs points to itself)."""
        reach = successor
        for _ in range(self._doublings):
            reach = reach[reach]
        # reach = successor^(2^k) with 2^k > n_jobs: every node lands on a cycle (or the sink)
        # and maps each cycle onto itself, so its image is exactly the cycle nodes
        on_cycle = np.zeros(self.n_jobs + 1, dtype=bool)
        on_cycle[reach] = True
        return on_cycle[: self.n_jobs]

    def _blocked_successor(self, blocked: np.ndarray, require_up: bool) -> np.ndarray:
        """Wants graph among blocked jobs: successor = blocked holder of the wanted machine."""
        n = self.n_jobs
        successor = np.full(n + 1, n, dtype=np.int64)
        wanted = self._next_machine[blocked, self._next_op[blocked]]
        holder = self._machine_job[wanted]
        link = self._status[holder] == BLOCKED
        if require_up:
            link &= ~self._down[wanted] & ~self._down[self._job_machine[blocked]]
        successor[blocked[link]] = holder[link]
        return successor

    def _swap_cycles(self) -> None:
        """Move every cycle of blocked jobs on operational machines simultaneously."""
        blocked = np.flatnonzero(self._status_n == BLOCKED)
        if blocked.size < 2:
            return
        successor = self._blocked_successor(blocked, require_up=True)
        on_cycle = self._cycle_nodes(successor)
        if not on_cycle.any():
            return
        jobs = np.flatnonzero(on_cycle)
        seen: set[int] = set()
        for job in jobs.tolist():
            if job not in seen:
                self.swaps += 1
                while job not in seen:
                    seen.add(job)
                    job = int(successor[job])
        self._leave(jobs, swap=True)
        self._start(jobs)

    def _blocked_cycle(self) -> bool:
        """A cycle of blocked jobs each waiting for the next one's machine (shutdowns aside)."""
        blocked = np.flatnonzero(self._status_n == BLOCKED)
        if blocked.size < 2:
            return False
        return bool(self._cycle_nodes(self._blocked_successor(blocked, False)).any())

    def _candidates(self) -> np.ndarray:
        wanted = self._next_machine[self._jobs, self._next_op]
        idle_up = (self._machine_job < 0) & ~self._down
        status = self._status_n
        # job_machine is -1 for waiting jobs: _down[-1] is the sentinel slot, never down
        movable = (status == WAITING) | ((status == BLOCKED) & ~self._down[self._job_machine])
        return idle_up[wanted] & movable

    def _closes_hold_cycle(self, candidates: np.ndarray) -> np.ndarray:
        """For each candidate job: would dispatching it close a cycle of jobs that each hold a
        machine and need the machine of the next (blocking without swap)?"""
        n = self.n_jobs
        wanted = self._next_machine[self._jobs, self._next_op]
        holder = self._machine_job[wanted]
        # Follow holder links from job to job; a job that holds nothing, or whose wanted
        # machine is idle (or that has none), is a terminal and points to itself.
        linked = (self._job_machine >= 0) & (holder >= 0) & (holder < n)
        successor = np.empty(n + 1, dtype=np.int64)
        successor[:n] = np.where(linked, holder, self._jobs)
        successor[n] = n
        terminal = successor
        for _ in range(self._doublings):
            terminal = terminal[terminal]
        target = wanted[candidates]
        # after the dispatch the candidate holds `target` and next needs `after`
        after = self._next_machine[candidates, self._next_op[candidates] + 1]
        first = self._machine_job[after]
        chain = (first >= 0) & (first < n)
        end = terminal[np.where(chain, first, n)]
        wanted_ext = np.append(wanted, self.n_machines)
        # the chain comes back to `target` unless it ran through the candidate's old machine
        return chain & (end != candidates) & (wanted_ext[end] == target)

    def _next_event(self) -> int | None:
        """The next time something can change: an operation end, or the end of a shutdown
        after which a job could move (also caches the next operation end).

        A waiting or blocked job whose next machine is idle can move once both its machines
        are up; a blocked job on a cycle of blocked jobs can swap once every machine of the
        cycle is up. Any other change needs an operation end or a decision first.
        """
        self._next_end = t_next = int(self._job_end.min())
        if not (self._has_windows and self._down.any()):
            return None if t_next >= _NEVER else t_next
        t = self.time
        up_at = self._down_until  # sentinel slot: 0, for "no machine"
        status = self._status_n
        held = self._job_machine
        wanted = self._next_machine[self._jobs, self._next_op]
        free = (status == WAITING) | (status == BLOCKED)
        to_idle = free & (self._machine_job[wanted] < 0)
        times = np.maximum(up_at[held], up_at[wanted])[to_idle]
        if self.swap:
            blocked = np.flatnonzero(status == BLOCKED)
            if blocked.size >= 2:
                successor = self._blocked_successor(blocked, require_up=False)
                on_cycle = self._cycle_nodes(successor)
                if on_cycle.any():
                    # latest up time along each cycle, by pointer doubling
                    latest = np.append(up_at[held], 0)
                    for _ in range(self._doublings):
                        latest = np.maximum(latest, latest[successor])
                        successor = successor[successor]
                    times = np.concatenate([times, latest[: self.n_jobs][on_cycle]])
        times = times[times > t]
        if times.size:
            t_next = min(t_next, int(times.min()))
        return None if t_next >= _NEVER else t_next

    def _settle(self, new_time: bool) -> None:
        """Advance until a decision is needed or the episode is over."""
        no_swap_blocking = self.blocking and not self.swap
        while True:
            if new_time:
                blocked_up = self._refresh_machines()
                finished_any = self._finish_operations()
                if self.blocking and self.swap:
                    if finished_any or blocked_up:
                        self._swap_cycles()
                elif no_swap_blocking and finished_any and self._blocked_cycle():
                    self.deadlock = True
            if self._n_done == self.n_jobs:
                self.terminated = True
            if self.terminated or self.deadlock:
                self._mask[:] = False
                return
            candidates = self._candidates()
            if no_swap_blocking and candidates.any():
                jobs = np.flatnonzero(candidates)
                closing = self._closes_hold_cycle(jobs)
                if closing.all() and self._next_event() is None:
                    closing[:] = False
                candidates[jobs[closing]] = False
            self._mask[:] = candidates
            if candidates.any():
                return
            t_next = self._next_event()
            if t_next is None:
                if no_swap_blocking:
                    self.deadlock = True
                    return
                raise RuntimeError(  # pragma: no cover - the model rules this out
                    f"job shop simulator stuck at time {self.time} without candidates or events"
                )
            self.time = t_next
            new_time = True
            if self.time > self.time_limit:
                self.truncated = True
                self._refresh_machines()
                self._mask[:] = False
                return


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def check_sim_kwargs(
    blocking: Any, swap: Any, shutdown_prob: Any, downtime: Any, downtime_model: Any
) -> None:
    """Raise a ValueError naming the first bad simulator argument."""
    for key, value in (("blocking", blocking), ("swap", swap)):
        if not isinstance(value, bool | np.bool_):
            raise ValueError(f"{key} must be True or False, got {value!r}")
    if (
        isinstance(shutdown_prob, bool)
        or not isinstance(shutdown_prob, int | float | np.integer | np.floating)
        or not 0.0 <= float(shutdown_prob) < 1.0
    ):
        raise ValueError(f"shutdown_prob must be a probability in [0, 1), got {shutdown_prob!r}")
    if downtime_model not in DOWNTIME_MODELS:
        raise ValueError(
            f"downtime_model must be one of {', '.join(DOWNTIME_MODELS)}, got {downtime_model!r}"
        )
    if (
        isinstance(downtime, bool)
        or not isinstance(downtime, int | float | np.integer | np.floating)
        or not math.isfinite(float(downtime))
        or float(downtime) < 1.0
    ):
        raise ValueError(f"downtime must be a mean shutdown length >= 1 tick, got {downtime!r}")
    if downtime_model == "fixed" and float(downtime) != int(downtime):
        raise ValueError(f"downtime must be a whole number of ticks with 'fixed', got {downtime!r}")
