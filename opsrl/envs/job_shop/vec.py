"""Batched job shop env: N shops stepped together in numpy, behind the SB3 VecEnv API.

:class:`JobShopVecEnv` keeps the state of N copies of :class:`~opsrl.envs.job_shop.env.JobShopEnv`
in ``(N, ...)`` arrays and runs the event-driven dynamics of
:class:`~opsrl.envs.job_shop.sim.JobShopSim` for all of them at once: a dispatch is one
vectorised call, and the advance to the next decision loops over "rounds" in which every copy
still settling takes its next event together (copies leave the loop when they reach a
decision). Only what cannot be vectorised stays per copy: drawing each copy's instance (when
random) and its shutdown windows from its own generators, exactly as the single env does, so
that copy i reproduces ``JobShopEnv`` reset with ``seed + i`` step for step.

Shutdown windows are kept as sorted arrays per (copy, machine) instead of the simulator's table
of operational ticks: with ``U_k`` the operational ticks before window k starts and ``D_k``
the downtime before it, the first time at which a machine has worked ``target`` ticks is
``target + D_c`` with ``c = #{k: U_k < target}`` -- one ``np.searchsorted`` for all copies.
Windows are drawn a batch at a time as episodes advance, and ended ones are dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium.utils.seeding import np_random
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from opsrl.envs.batched import BatchedVecEnv, no_arguments
from opsrl.envs.job_shop.data import JobShopInstance
from opsrl.envs.job_shop.env import (
    DOWNTIME_FEATURE_CAP,
    FLAT_JOB_FEATURES,
    FLAT_MACHINE_FEATURES,
    NODE_FEATURES,
    JobShopEnv,
    static_graph,
)
from opsrl.envs.job_shop.sim import BLOCKED, DONE, HORIZON_FACTOR, PROCESSING, WAITING

__all__ = ["JobShopVecEnv"]

#: env_method names the batched env answers, like JobShopEnv's methods
SUPPORTED_METHODS = ("action_masks", "lower_bound")

_NEVER = np.iinfo(np.int64).max // 4  # as in the simulator: "no operation end"
#: window slots not sampled yet start after any time an episode can reach
_FAR = 1 << 36
#: each (copy, machine) row of the window arrays owns one band of this width in the keys that
#: one searchsorted call searches for all rows at once
_ROW_STRIDE = 1 << 37
_EDGE_CHUNK = 1 << 18  # edge entries per block of copies when packing edge lists
_WINDOWS_AHEAD = 32  # rows with fewer windows left than this are extended at each step
_BATCH = 64  # windows drawn per generator call, as in the simulator (it fixes the draw order)


@dataclass
class _InstanceTables:
    """One instance's static arrays, padded to (max_jobs, max_machines), for both the dynamics
    and the observations."""

    instance: JobShopInstance
    n_jobs: int
    n_ops: int
    n_machines: int
    total_processing_time: int
    best_known: float  # 0.0 when none for this mode
    machine_of: np.ndarray  # (J, K + 1) machine of operation k of job j; K = none
    duration_of: np.ndarray  # (J, K + 1) int, 0 where none
    work_from: np.ndarray  # (J, K + 1) work of operations k.. of job j
    durations: np.ndarray  # (J, K) float64
    p_max: float
    job_work: np.ndarray  # (J,) float64, 1 for padded jobs
    machine_load: np.ndarray  # (K,) float64, max(load, 1); 1 for padded machines
    duration_feature: np.ndarray  # (J, K) float64 duration / p_max
    template: np.ndarray  # (J, K, F) float32: static node feature columns
    real_op: np.ndarray  # (J, K) bool
    conjunctive: np.ndarray  # (2, J * (K - 1)) node ids, padded with -1
    disjunctive: np.ndarray  # (2, K * J * (J - 1) / 2) node ids, padded with -1


def _instance_tables(
    instance: JobShopInstance, jobs: int, width: int, blocking: bool, swap: bool
) -> _InstanceTables:
    """The padded static arrays of ``instance`` (the observation's from ``static_graph``,
    so that both envs compute from the same numbers)."""
    n, n_ops = instance.machines.shape
    machine_of = np.full((jobs, width + 1), width, dtype=np.int64)
    machine_of[:n, :n_ops] = instance.machines
    duration_of = np.zeros((jobs, width + 1), dtype=np.int64)
    duration_of[:n, :n_ops] = instance.durations
    work_from = np.zeros((jobs, width + 1), dtype=np.int64)
    work_from[:n, :n_ops] = np.cumsum(instance.durations[:, ::-1], axis=1)[:, ::-1]
    graph = static_graph(instance, jobs, width)
    durations = np.zeros((jobs, width))
    durations[:n, :n_ops] = graph.durations
    job_work = np.ones(jobs)
    job_work[:n] = graph.job_work[:, 0]
    machine_load = np.ones(width)
    machine_load[: instance.n_machines] = graph.machine_load
    duration_feature = np.zeros((jobs, width))
    duration_feature[:n, :n_ops] = graph.duration_feature
    real_op = np.zeros((jobs, width), dtype=bool)
    real_op[:n, :n_ops] = True
    capacity = (jobs * (width - 1), width * (jobs * (jobs - 1) // 2))
    edges = []
    for static, size in zip((graph.conjunctive, graph.disjunctive), capacity, strict=True):
        padded = np.full((2, size), -1, dtype=np.int64)
        padded[:, : static.shape[1]] = static
        edges.append(padded)
    best = None if blocking and not swap else instance.best_known(blocking)
    return _InstanceTables(
        instance=instance,
        n_jobs=n,
        n_ops=n_ops,
        n_machines=instance.n_machines,
        total_processing_time=instance.total_processing_time,
        best_known=float(best) if best else 0.0,
        machine_of=machine_of,
        duration_of=duration_of,
        work_from=work_from,
        durations=durations,
        p_max=graph.p_max,
        job_work=job_work,
        machine_load=machine_load,
        duration_feature=duration_feature,
        template=graph.feature_template,
        real_op=real_op,
        conjunctive=edges[0],
        disjunctive=edges[1],
    )


def _take(array: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Row-wise gather ``array[a, index[a, ...]]`` (index -1 is the last column: a sentinel)."""
    rows = np.arange(array.shape[0]).reshape((-1,) + (1,) * (index.ndim - 1))
    return array[rows, index]


# ---------------------------------------------------------------------- window streams
# The simulator draws each machine's windows from ``default_rng(SeedSequence(seed).spawn(m)[i])``.
# Building N x m SeedSequence and Generator objects at every reset costs more than the batched
# steps of a whole episode, so the streams' PCG64 states are computed here for all machines at
# once -- SeedSequence's entropy mixing (O'Neill's seed_seq design, uint32 arithmetic) and
# PCG64's seeding, both fixed by NumPy's stream-compatibility policy -- and one Generator is
# pointed at each state in turn. A self-check against NumPy's own objects guards the shortcut.
_PCG_MULTIPLIER = 0x2360ED051FC65DA44385DF649FCCF645
_MASK128 = (1 << 128) - 1


def _hashmix(value: np.ndarray, hash_const: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    value = value ^ hash_const
    hash_const = hash_const * np.uint32(0x931E8875)
    value = value * hash_const
    return value ^ (value >> np.uint32(16)), hash_const


def _mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    result = np.uint32(0xCA01F9DD) * x - np.uint32(0x4973F715) * y
    return result ^ (result >> np.uint32(16))


def _spawned_seed_words(seeds: np.ndarray, children: np.ndarray) -> np.ndarray:
    """(P, 4) uint64: ``SeedSequence(seeds[p]).spawn(...)[children[p]].generate_state(4,
    uint64)`` for seeds in [0, 2**63)."""
    seeds = seeds.astype(np.uint64)
    children = children.astype(np.uint32)
    zeros = np.zeros_like(children)
    # run entropy (one or two words, zero-padded to the pool size 4), then the spawn key
    entropy = [
        (seeds & np.uint64(0xFFFFFFFF)).astype(np.uint32),
        (seeds >> np.uint64(32)).astype(np.uint32),
        zeros,
        zeros,
        children,
    ]
    with np.errstate(over="ignore"):
        hash_const = np.full(children.shape, 0x43B0D7E5, dtype=np.uint32)
        pool = []
        for word in entropy[:4]:
            value, hash_const = _hashmix(word, hash_const)
            pool.append(value)
        for source in range(4):
            for target in range(4):
                if source != target:
                    value, hash_const = _hashmix(pool[source], hash_const)
                    pool[target] = _mix(pool[target], value)
        for target in range(4):
            value, hash_const = _hashmix(entropy[4], hash_const)
            pool[target] = _mix(pool[target], value)
        state_const = np.full(children.shape, 0x8B51F9DD, dtype=np.uint32)
        words = []
        for index in range(8):
            value = pool[index % 4] ^ state_const
            state_const = state_const * np.uint32(0x58F38DED)
            value = value * state_const
            words.append((value ^ (value >> np.uint32(16))).astype(np.uint64))
    return np.stack([words[2 * k] | (words[2 * k + 1] << np.uint64(32)) for k in range(4)], axis=-1)


def _pcg64_state(words: Sequence[int]) -> tuple[int, int]:
    """PCG64's (state, inc) seeded with four uint64 words, as ``PCG64(seed_sequence)``."""
    high, low, seq_high, seq_low = (int(word) for word in words)
    increment = ((((seq_high << 64) | seq_low) << 1) | 1) & _MASK128
    state = (increment + ((high << 64) | low)) & _MASK128  # step from 0, add the seed
    return (state * _PCG_MULTIPLIER + increment) & _MASK128, increment


def _numpy_stream_states(seed: int, n_machines: int) -> list[tuple[int, int]]:
    states = []
    for stream in np.random.SeedSequence(seed).spawn(n_machines):
        state = np.random.PCG64(stream).state["state"]
        states.append((int(state["state"]), int(state["inc"])))
    return states


def _fast_stream_states(seeds: np.ndarray, children: np.ndarray) -> list[tuple[int, int]]:
    return [_pcg64_state(words) for words in _spawned_seed_words(seeds, children).tolist()]


_FAST_STREAMS: bool | None = None


def _stream_states(seeds: np.ndarray, children: np.ndarray) -> list[tuple[int, int]]:
    """PCG64 (state, inc) of stream ``children[p]`` of window seed ``seeds[p]``."""
    global _FAST_STREAMS
    if _FAST_STREAMS is None:
        probe_seeds = np.array([0, 7, 2**32 - 1, 2**32 + 5, 2**63 - 2] * 3, dtype=np.uint64)
        probe_children = np.repeat(np.arange(3), 5)
        expected = [
            _numpy_stream_states(int(seed), int(child) + 1)[int(child)]
            for seed, child in zip(probe_seeds.tolist(), probe_children.tolist(), strict=True)
        ]
        _FAST_STREAMS = _fast_stream_states(probe_seeds, probe_children) == expected
    if _FAST_STREAMS:
        return _fast_stream_states(seeds, children)
    states: dict[int, list[tuple[int, int]]] = {}
    out = []
    for seed, child in zip(seeds.tolist(), children.tolist(), strict=True):
        if seed not in states:
            states[seed] = _numpy_stream_states(seed, int(children.max()) + 1)
        out.append(states[seed][child])
    return out


class _View:
    """The state of some copies (``rows``) read once per event round: gathered rows, and flat
    indices of each job's wanted and held machines (a job holding none points at the sentinel
    machine K) for cheap row-wise lookups."""

    def __init__(self, shop: _ShopBatch, rows: np.ndarray) -> None:
        self.rows = rows
        self.size = rows.size
        self.status = shop.status.take(rows, axis=0)
        self.machine_job = shop.machine_job.take(rows, axis=0)
        self.down = shop.down.take(rows, axis=0)
        self.job_machine = shop.job_machine.take(rows, axis=0)
        self.wanted = shop.wanted.take(rows, axis=0)
        self._set_offsets(shop.J + 1, shop.K + 1)

    def _set_offsets(self, job_width: int, machine_width: int) -> None:
        self._job_width, self._machine_width = job_width, machine_width
        index = np.arange(self.size)[:, None]
        self.job_offset = index * job_width
        self.machine_offset = index * machine_width
        self._wanted_index = self.wanted + self.machine_offset
        held = self.job_machine
        self._held_index = held + self.machine_offset + (held < 0) * machine_width

    def subset(self, keep: np.ndarray) -> _View:
        """The view of the copies selected by the boolean ``keep``."""
        view = object.__new__(_View)
        view.rows = self.rows[keep]
        view.size = view.rows.size
        for name in ("status", "machine_job", "down", "job_machine", "wanted"):
            setattr(view, name, getattr(self, name)[keep])
        view._set_offsets(self._job_width, self._machine_width)
        return view

    def at_wanted(self, per_machine: np.ndarray) -> np.ndarray:
        """(A, J) value of ``per_machine`` (A, K + 1) at each job's next machine."""
        return per_machine.take(self._wanted_index)

    def at_held(self, per_machine: np.ndarray) -> np.ndarray:
        """(A, J) value of ``per_machine`` (A, K + 1) at each job's machine (K if none)."""
        return per_machine.take(self._held_index)

    def of_job(self, per_job: np.ndarray, jobs: np.ndarray) -> np.ndarray:
        """Row-wise ``per_job`` (A, J + 1) at ``jobs`` (-1 is the sentinel job J)."""
        width = self._job_width
        return per_job.take(jobs + self.job_offset + (jobs < 0) * width)


class _ShopBatch:
    """The job shop dynamics of :class:`~opsrl.envs.job_shop.sim.JobShopSim` for N copies.

    Plain numpy. Arrays have the copies first; jobs are padded to J, machines to K, with the
    simulator's sentinels one past the end: job J is DONE (it also answers index -1), machine K
    is "no machine" (never idle, never down; it also answers -1). Methods take ``rows``, the
    copies to act on.
    """

    def __init__(
        self,
        n_copies: int,
        max_jobs: int,
        width: int,
        blocking: bool,
        swap: bool,
        shutdown_prob: float,
        downtime: float,
        downtime_model: str,
    ) -> None:
        n, jobs, k = n_copies, max_jobs, width
        self.n, self.J, self.K = n, jobs, k
        self.blocking, self.swap = blocking, swap
        self.no_swap_blocking = blocking and not swap
        self.shutdown_prob, self.downtime = shutdown_prob, downtime
        self.fixed_downtime = downtime_model == "fixed"
        self.has_windows = shutdown_prob > 0
        self._job_ids = np.arange(jobs)
        self._machine_ids = np.arange(k)
        self._doublings = max(1, math.ceil(math.log2(jobs + 1)))
        # static, per copy
        self.machine_of = np.full((n, jobs, k + 1), k, dtype=np.int64)
        self.duration_of = np.zeros((n, jobs, k + 1), dtype=np.int64)
        self.work_from = np.zeros((n, jobs, k + 1), dtype=np.int64)
        self.n_jobs = np.zeros(n, dtype=np.int64)
        self.n_ops = np.zeros(n, dtype=np.int64)
        self.n_machines = np.zeros(n, dtype=np.int64)
        self.total_processing_time = np.zeros(n, dtype=np.int64)
        # dynamic
        self.time = np.zeros(n, dtype=np.int64)
        self.next_op = np.zeros((n, jobs), dtype=np.int64)
        #: machine of each job's next operation (K when none), kept with next_op
        self.wanted = np.full((n, jobs), k, dtype=np.int64)
        self.status = np.full((n, jobs + 1), DONE, dtype=np.int64)
        self.ready_time = np.zeros((n, jobs), dtype=np.int64)
        self.job_machine = np.full((n, jobs), -1, dtype=np.int64)
        self.job_end = np.full((n, jobs), _NEVER, dtype=np.int64)
        #: with shutdowns: operational ticks of its machine at which the job's operation ends
        self.job_end_up = np.zeros((n, jobs), dtype=np.int64)
        self.machine_job = np.full((n, k + 1), -1, dtype=np.int64)
        self.machine_job[:, k] = jobs
        self.down = np.zeros((n, k + 1), dtype=bool)
        self.down_until = np.zeros((n, k + 1), dtype=np.int64)
        self.mask = np.zeros((n, jobs), dtype=bool)
        self.blocked_total = np.zeros(n, dtype=np.int64)
        self.swaps = np.zeros(n, dtype=np.int64)
        self.terminated = np.zeros(n, dtype=bool)
        self.deadlock = np.zeros(n, dtype=bool)
        self.truncated = np.zeros(n, dtype=bool)
        # shutdown windows: raw (unmerged) windows per (copy, machine) row, W slots each
        #: PCG64 (state, inc) of each (copy, machine) window stream after that many batches
        self._window_states: list[dict[int, tuple[int, int, int]]] = [{} for _ in range(n)]
        self._bit_generator = np.random.PCG64(0)
        self._generator = np.random.Generator(self._bit_generator)
        self._row_key = (np.arange(n * k, dtype=np.int64) * _ROW_STRIDE).reshape(n, k)
        self._w_count = np.zeros((n, k), dtype=np.int64)  # windows in the row's slots
        self._w_drawn = np.zeros((n, k), dtype=np.int64)  # batches drawn from the stream
        # raw end of, and downtime before, the windows dropped from the row (_compact)
        self._w_base_end = np.zeros((n, k), dtype=np.int64)
        self._w_base_before = np.zeros((n, k), dtype=np.int64)
        self._w_last_head = np.zeros((n, k), dtype=np.int64)
        self._w_pointer = np.zeros((n, k), dtype=np.int64)  # first window ending after now
        # the pointed window's fields, cached: most time steps do not move the pointers
        self._cur_end = np.zeros((n, k), dtype=np.int64)
        self._cur_start = np.zeros((n, k), dtype=np.int64)
        self._cur_before = np.zeros((n, k), dtype=np.int64)
        self._cur_group_end = np.zeros((n, k), dtype=np.int64)
        self._w_complete = np.ones((n, k), dtype=bool)  # no windows to draw (padding)
        self._grow_windows(_BATCH if self.has_windows else 1)
        # flat views for gathers and scatters by flat index (the arrays are never replaced)
        self._all_rows = np.arange(n)
        self._machine_of_flat = self.machine_of.reshape(-1)
        self._duration_of_flat = self.duration_of.reshape(-1)
        self._next_op_flat = self.next_op.reshape(-1)
        self._wanted_flat = self.wanted.reshape(-1)
        self._status_flat = self.status.reshape(-1)
        self._ready_time_flat = self.ready_time.reshape(-1)
        self._job_machine_flat = self.job_machine.reshape(-1)
        self._job_end_flat = self.job_end.reshape(-1)
        self._job_end_up_flat = self.job_end_up.reshape(-1)
        self._machine_job_flat = self.machine_job.reshape(-1)

    # ------------------------------------------------------------------ episodes
    def load(
        self, rows: np.ndarray, tables: Sequence[_InstanceTables], window_seeds: Sequence[int]
    ) -> None:
        """Start new episodes for ``rows`` on the given instances, up to the first decision."""
        groups: dict[int, tuple[_InstanceTables, list[int]]] = {}
        for row, table in zip(rows.tolist(), tables, strict=True):
            groups.setdefault(id(table), (table, []))[1].append(row)
        for table, members in groups.values():
            self.machine_of[members] = table.machine_of
            self.duration_of[members] = table.duration_of
            self.work_from[members] = table.work_from
            self.n_jobs[members] = table.n_jobs
            self.n_ops[members] = table.n_ops
            self.n_machines[members] = table.n_machines
            self.total_processing_time[members] = table.total_processing_time
        self.time[rows] = 0
        self.next_op[rows] = 0
        self.wanted[rows] = self.machine_of[rows, :, 0]
        self.status[rows] = DONE
        self.status[rows, : self.J] = np.where(
            self._job_ids < self.n_jobs[rows, None], WAITING, DONE
        )
        self.ready_time[rows] = 0
        self.job_machine[rows] = -1
        self.job_end[rows] = _NEVER
        self.job_end_up[rows] = 0
        self.machine_job[rows, : self.K] = -1
        self.down[rows] = False
        self.down_until[rows] = 0
        self.mask[rows] = False
        for counter in (self.blocked_total, self.swaps):
            counter[rows] = 0
        for flag in (self.terminated, self.deadlock, self.truncated):
            flag[rows] = False
        if self.has_windows:
            self._sample_windows(rows, tables, window_seeds)
            self._set_pointer(rows, np.zeros((rows.size, self.K), dtype=np.int64))
            self._advance(rows)
        self.settle(rows, new_time=True)

    def dispatch(self, jobs: np.ndarray) -> None:
        """Every copy starts its chosen candidate job now, then advances to its next decision."""
        rows = self._all_rows
        if self.has_windows:
            # draw ahead, once a step and for all rows at once, where few windows are left:
            # extending rows one by one when an event needs them costs a pass each
            low = self._w_pointer >= self._w_last_head - _WINDOWS_AHEAD
            if low.any():
                self._extend(*np.nonzero(low))
        blocked = self._status_flat.take(rows * (self.J + 1) + jobs) == BLOCKED
        if blocked.any():
            self._leave(rows[blocked], jobs[blocked])
        self._start(rows, jobs)
        self.settle(rows, new_time=False)

    @property
    def finished(self) -> np.ndarray:
        """(N,) the episode is over (all done, deadlock or safety horizon)."""
        return self.terminated | self.deadlock | self.truncated

    # ------------------------------------------------------------------ the event loop
    def settle(self, rows: np.ndarray, new_time: bool) -> None:
        """``JobShopSim._settle`` for ``rows``: every round advances each copy still settling
        by one event; a copy leaves when it has candidates or its episode is over."""
        active = rows
        while active.size:
            if new_time:
                self._process_new_time(active)
            view = _View(self, active)
            # every job has left the shop (padded jobs count as done)
            done = (view.status[:, : self.J] == DONE).all(axis=1)
            if done.any():
                self.terminated[active[done]] = True
            over = done | self.deadlock.take(active)
            if over.any():
                self.mask[active[over]] = False
                view = view.subset(~over)
                active = view.rows
                if not active.size:
                    return
            candidates = self._candidates(view)
            if self.no_swap_blocking:
                self._unmask_deadlocking(view, candidates)
            self.mask[active] = candidates
            waiting = ~candidates.any(axis=1)
            if not waiting.any():
                return
            view = view.subset(waiting)
            active = view.rows
            t_next = self._next_event(view)
            stuck = t_next >= _NEVER
            if stuck.any():
                if not self.no_swap_blocking:  # pragma: no cover - the model rules this out
                    copy = int(active[stuck][0])
                    raise RuntimeError(
                        f"job shop copy {copy} stuck at time {self.time[copy]} without "
                        "candidates or events"
                    )
                self.deadlock[active[stuck]] = True
                active, t_next = active[~stuck], t_next[~stuck]
            self.time[active] = t_next
            if self.has_windows:
                self._advance(active)
            # the downtime part of the horizon is >= 0: test the cheap bound first
            beyond = t_next > HORIZON_FACTOR * self.total_processing_time.take(active)
            if beyond.any():
                beyond[beyond] = t_next[beyond] > self.time_limit(active[beyond])
                if beyond.any():
                    late = active[beyond]
                    self.truncated[late] = True
                    if self.has_windows:
                        self._refresh(late)
                    self.mask[late] = False
                    active = active[~beyond]
            new_time = True

    def _process_new_time(self, rows: np.ndarray) -> None:
        """Shutdown flags, operation ends, then swaps or the deadlock check, at a new time."""
        if self.has_windows:
            blocked_up = self._refresh(rows)
        else:
            blocked_up = None
        finished_any = self._finish_operations(rows)
        if self.blocking and self.swap:
            movers = finished_any if blocked_up is None else finished_any | blocked_up
            if movers.any():
                self._swap_cycles(rows[movers])
        elif self.no_swap_blocking and finished_any.any():
            checked = rows[finished_any]
            self.deadlock[checked[self._blocked_cycle(checked)]] = True

    def _unmask_deadlocking(self, view: _View, candidates: np.ndarray) -> None:
        """Remove dispatches that close a cycle of machine-holding jobs (in place), unless
        only such dispatches are left and no event is pending."""
        has = candidates.any(axis=1)
        if not has.any():
            return
        sub, offered = view.subset(has), candidates[has]
        closing = self._closes_hold_cycle(sub, offered)
        all_closing = (closing == offered).all(axis=1)
        if all_closing.any():
            forced = np.flatnonzero(all_closing)
            no_event = self._next_event(sub.subset(all_closing)) >= _NEVER
            closing[forced[no_event]] = False
        candidates[has] = offered & ~closing

    # ------------------------------------------------------------------ transitions
    def _start(self, rows: np.ndarray, jobs: np.ndarray) -> None:
        """Pairs (rows[i], jobs[i]) of jobs holding no machine start their next operation."""
        job_index = rows * self.J + jobs
        ops = self._next_op_flat.take(job_index)
        op_index = job_index * (self.K + 1) + ops
        machines = self._machine_of_flat.take(op_index)
        durations = self._duration_of_flat.take(op_index)
        if self.has_windows:
            target = self._up_now_at(rows, machines) + durations
            ends = self._first_time_with_up(rows, machines, target)
            self._job_end_up_flat[job_index] = target
        else:
            ends = self.time.take(rows) + durations
        self._machine_job_flat[rows * (self.K + 1) + machines] = jobs
        self._job_machine_flat[job_index] = machines
        self._job_end_flat[job_index] = ends
        self._status_flat[rows * (self.J + 1) + jobs] = PROCESSING
        self._next_op_flat[job_index] = ops + 1
        self._wanted_flat[job_index] = self._machine_of_flat.take(op_index + 1)

    def _leave(self, rows: np.ndarray, jobs: np.ndarray) -> None:
        """Blocked pairs (rows[i], jobs[i]) leave their machines now."""
        job_index = rows * self.J + jobs
        waited = self.time.take(rows) - self._ready_time_flat.take(job_index)
        self.blocked_total += np.bincount(rows, weights=waited, minlength=self.n).astype(np.int64)
        machines = self._job_machine_flat.take(job_index)
        self._machine_job_flat[rows * (self.K + 1) + machines] = -1
        self._job_machine_flat[job_index] = -1

    def _finish_operations(self, rows: np.ndarray) -> np.ndarray:
        """Operations whose processing ends now; returns (len(rows),) whether any did."""
        now = self.time.take(rows)
        ending = self.job_end.take(rows, axis=0) == now[:, None]
        finished_any = ending.any(axis=1)
        if not finished_any.any():
            return finished_any
        index, jobs = np.nonzero(ending)
        copies = rows[index]
        job_index = copies * self.J + jobs
        ops = self._next_op_flat.take(job_index) - 1
        self._job_end_flat[job_index] = _NEVER
        self._ready_time_flat[job_index] = now[index]
        last = ops == self.n_ops.take(copies) - 1
        leaving = last if self.blocking else np.ones_like(last)
        if leaving.any():
            gone, gone_index = copies[leaving], job_index[leaving]
            machines = self._job_machine_flat.take(gone_index)
            self._machine_job_flat[gone * (self.K + 1) + machines] = -1
            self._job_machine_flat[gone_index] = -1
        self._status_flat[copies * (self.J + 1) + jobs] = np.where(
            last, DONE, BLOCKED if self.blocking else WAITING
        )
        return finished_any

    def _blocked_successor(self, view: _View, require_up: bool) -> tuple[np.ndarray, np.ndarray]:
        """(A, J + 1) wants graph among blocked jobs (job J is the sink), and (A,) whether
        each copy has two links or more (a cycle needs two)."""
        holder = view.at_wanted(view.machine_job)
        link = (view.status[:, : self.J] == BLOCKED) & (view.of_job(view.status, holder) == BLOCKED)
        if require_up:
            link &= ~view.at_wanted(view.down) & ~view.at_held(view.down)
        successor = np.full((view.size, self.J + 1), self.J, dtype=np.int64)
        successor[:, : self.J] = np.where(link, holder, self.J)
        return successor, link.sum(axis=1) >= 2

    def _cycle_nodes(self, successor: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """(A, J) jobs on a cycle of ``successor`` (pointer doubling, as the simulator);
        ``offset`` (A, 1) turns row-local job ids into flat ones."""
        reach = (successor + offset).reshape(-1)
        for _ in range(self._doublings):
            reach = reach[reach]
        on_cycle = np.zeros(reach.size, dtype=bool)
        on_cycle[reach] = True
        return on_cycle.reshape(successor.shape)[:, : self.J]

    def _swap_cycles(self, rows: np.ndarray) -> None:
        """Move every cycle of blocked jobs on operational machines simultaneously."""
        status = self.status.take(rows, axis=0)
        several = (status[:, : self.J] == BLOCKED).sum(axis=1) >= 2
        if not several.any():
            return
        view = _View(self, rows[several])
        successor, linked = self._blocked_successor(view, require_up=True)
        if not linked.any():
            return
        view, successor = view.subset(linked), successor[linked]
        on_cycle = self._cycle_nodes(successor, view.job_offset)
        moving = on_cycle.any(axis=1)
        if not moving.any():
            return
        rows, successor, on_cycle = view.rows[moving], successor[moving], on_cycle[moving]
        # one swap per cycle: count the cycle nodes that are the smallest job of their cycle
        follow = (successor + view.job_offset[: rows.size]).reshape(-1)
        smallest = np.tile(np.arange(self.J + 1), rows.size)
        for _ in range(self._doublings):
            smallest = np.minimum(smallest, smallest[follow])
            follow = follow[follow]
        smallest = smallest.reshape(rows.size, self.J + 1)[:, : self.J]
        self.swaps[rows] += (on_cycle & (smallest == self._job_ids)).sum(axis=1)
        index, jobs = np.nonzero(on_cycle)
        self._leave(rows[index], jobs)
        self._start(rows[index], jobs)

    def _blocked_cycle(self, rows: np.ndarray) -> np.ndarray:
        """(A,) a cycle of blocked jobs each waiting for the next one's machine."""
        result = np.zeros(rows.size, dtype=bool)
        status = self.status.take(rows, axis=0)
        several = (status[:, : self.J] == BLOCKED).sum(axis=1) >= 2
        if several.any():
            view = _View(self, rows[several])
            successor, linked = self._blocked_successor(view, require_up=False)
            if linked.any():
                cycles = self._cycle_nodes(successor[linked], view.job_offset[: linked.sum()])
                found = np.zeros(view.size, dtype=bool)
                found[linked] = cycles.any(axis=1)
                result[several] = found
        return result

    def _candidates(self, view: _View) -> np.ndarray:
        """(A, J) jobs that may be dispatched now (before the deadlock filter)."""
        idle_up = (view.machine_job < 0) & ~view.down
        status = view.status[:, : self.J]
        movable = (status == WAITING) | ((status == BLOCKED) & ~view.at_held(view.down))
        return view.at_wanted(idle_up) & movable

    def _closes_hold_cycle(self, view: _View, candidates: np.ndarray) -> np.ndarray:
        """(A, J) candidates whose dispatch closes a cycle of machine-holding jobs."""
        jobs, width = self.J, self.K
        holder = view.at_wanted(view.machine_job)
        linked = (view.job_machine >= 0) & (holder >= 0) & (holder < jobs)
        successor = np.empty((view.size, jobs + 1), dtype=np.int64)
        successor[:, :jobs] = np.where(linked, holder, self._job_ids)
        successor[:, jobs] = jobs
        terminal = (successor + view.job_offset).reshape(-1)
        for _ in range(self._doublings):
            terminal = terminal[terminal]
        next_op = self.next_op.take(view.rows, axis=0)
        after_op = np.minimum(next_op + 1, width)
        job_index = (view.rows * jobs)[:, None] + self._job_ids
        after = self._machine_of_flat.take(job_index * (width + 1) + after_op)
        first = view.machine_job.take(after + view.machine_offset)
        chain = (first >= 0) & (first < jobs)
        end = terminal.take(np.where(chain, first, jobs) + view.job_offset)  # flat ids
        wanted_ext = np.concatenate([view.wanted, np.full((view.size, 1), width)], axis=1)
        closes = wanted_ext.take(end) == view.wanted
        return candidates & chain & (end - view.job_offset != self._job_ids) & closes

    def _next_event(self, view: _View) -> np.ndarray:
        """(A,) next time something can change (``_NEVER``: none), as the simulator's.

        The simulator looks at shutdown ends only while some machine is down; here every row
        is looked at, which gives the same times: an operational machine's ``down_until`` is
        never after now, so the ``> now`` filter drops what it would add.
        """
        t_next = self.job_end.take(view.rows, axis=0).min(axis=1)
        if not self.has_windows:
            return t_next
        now = self.time.take(view.rows)[:, None]
        up_at = self.down_until.take(view.rows, axis=0)
        status = view.status[:, : self.J]
        free = (status == WAITING) | (status == BLOCKED)
        to_idle = free & (view.at_wanted(view.machine_job) < 0)
        held_up_at = view.at_held(up_at)
        times = np.maximum(held_up_at, view.at_wanted(up_at))
        later = np.where(to_idle & (times > now), times, _NEVER).min(axis=1)
        if self.swap:
            several = ((status == BLOCKED).sum(axis=1) >= 2) & view.down.any(axis=1)
            if several.any():
                successor, linked = self._blocked_successor(view.subset(several), False)
                several[several] = linked
            if several.any():
                cyc = view.subset(several)
                successor = successor[linked]
                on_cycle = self._cycle_nodes(successor, cyc.job_offset)
                # latest up time along each cycle, by pointer doubling
                latest = np.zeros((cyc.size, self.J + 1), dtype=np.int64)
                latest[:, : self.J] = held_up_at[several]
                latest = latest.reshape(-1)
                follow = (successor + cyc.job_offset).reshape(-1)
                for _ in range(self._doublings):
                    latest = np.maximum(latest, latest[follow])
                    follow = follow[follow]
                latest = latest.reshape(cyc.size, self.J + 1)[:, : self.J]
                cycle_time = np.where(on_cycle & (latest > now[several]), latest, _NEVER)
                later[several] = np.minimum(later[several], cycle_time.min(axis=1))
        return np.minimum(t_next, later)

    # ------------------------------------------------------------------ state read-outs
    def time_limit(self, rows: np.ndarray) -> np.ndarray:
        """(A,) safety horizon: HORIZON_FACTOR x total processing time + downtime so far."""
        return HORIZON_FACTOR * self.total_processing_time[rows] + self.downtime_until_now(rows)

    def downtime_until_now(self, rows: np.ndarray) -> np.ndarray:
        """(A,) shutdown ticks in [0, now), summed over machines."""
        if not self.has_windows:
            return np.zeros(rows.size, dtype=np.int64)
        # downtime so far: downtime before the current window plus the part of it elapsed;
        # machines without windows (padding) add nothing
        now = self.time.take(rows)[:, None]
        before = self._cur_before.take(rows, axis=0)
        start = self._cur_start.take(rows, axis=0)
        return (before + np.maximum(now - start, 0)).sum(axis=1)

    def remaining_processing(self, rows: np.ndarray) -> np.ndarray:
        """(A, J) operational ticks left in each job's current operation (0 if none)."""
        job_end = self.job_end.take(rows, axis=0)
        running = job_end < _NEVER
        if self.has_windows:
            held = np.maximum(self.job_machine.take(rows, axis=0), 0)  # masked below
            copies = np.broadcast_to(rows[:, None], held.shape)
            left = self.job_end_up.take(rows, axis=0) - self._up_now_at(copies, held)
        else:
            left = job_end - self.time.take(rows)[:, None]
        return np.where(running, left, 0)

    def lower_bound(self, rows: np.ndarray) -> np.ndarray:
        """(A,) ``JobShopSim.lower_bound`` of each copy."""
        jobs, width = self.J, self.K
        remaining = self.remaining_processing(rows)
        next_op = self.next_op.take(rows, axis=0)
        status = self.status.take(rows, axis=0)[:, :jobs]
        job_index = (rows * jobs)[:, None] + self._job_ids
        unstarted_work = self.work_from.take(job_index * (width + 1) + next_op)
        job_bound = np.where(status != DONE, remaining + unstarted_work, 0).max(axis=1)
        # unstarted work per machine (padded operations: machine K, duration 0), plus the
        # rest of the running operations
        unstarted = self._machine_ids >= next_op[..., None]
        offset = (np.arange(rows.size) * (width + 1))[:, None]
        running = status == PROCESSING
        machines = self.machine_of.take(rows, axis=0)[:, :, :width]
        index = np.concatenate(
            [
                (machines + offset[..., None]).ravel(),
                (self.job_machine.take(rows, axis=0) + offset)[running],
            ]
        )
        durations = self.duration_of.take(rows, axis=0)[:, :, :width]
        weights = np.concatenate([(durations * unstarted).ravel(), remaining[running]])
        machine_work = np.bincount(index, weights=weights, minlength=rows.size * (width + 1))
        machine_bound = machine_work.reshape(rows.size, width + 1).max(axis=1).astype(np.int64)
        now = self.time.take(rows)
        return np.where(self.terminated.take(rows), now, now + np.maximum(job_bound, machine_bound))

    def kpi(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Episode-to-date ``JobShopSim.kpi`` of ``rows``, a dict of (A,) arrays."""
        makespan = self.time[rows]
        capacity = makespan * self.n_machines[rows]
        # work of the operations started so far (finished or running), minus what remains
        started = (
            self.work_from[rows, :, 0]
            - self.work_from[rows[:, None], self._job_ids, self.next_op[rows]]
        )
        processed = started.sum(axis=1) - self.remaining_processing(rows).sum(axis=1)
        utilisation = np.divide(
            processed, capacity, out=np.zeros(rows.size), where=capacity > 0, dtype=np.float64
        )
        blocked = self.status[rows, : self.J] == BLOCKED
        waiting = ((makespan[:, None] - self.ready_time[rows]) * blocked).sum(axis=1)
        return {
            "makespan": makespan.astype(np.float64),
            "utilisation": utilisation,
            "blocked_time": (self.blocked_total[rows] + waiting).astype(np.float64),
            "downtime": self.downtime_until_now(rows).astype(np.float64),
            "swaps": self.swaps[rows].astype(np.float64),
            "deadlock": self.deadlock[rows].astype(np.float64),
        }

    # ------------------------------------------------------------------ shutdown windows
    def _grow_windows(self, slots: int) -> None:
        """(Re)allocate the window arrays with ``slots`` slots per row, keeping what is drawn."""
        n, k = self.n, self.K
        gaps = np.ones((n, k, slots), dtype=np.int64)
        lengths = np.ones((n, k, slots), dtype=np.int64)
        if hasattr(self, "_w_gap"):
            kept = self._w_gap.shape[2]
            gaps[..., :kept] = self._w_gap
            lengths[..., :kept] = self._w_length
        self._w_slots = slots
        self._w_gap, self._w_length = gaps, lengths
        self._w_start = np.zeros((n, k, slots), dtype=np.int64)
        self._w_before = np.zeros((n, k, slots), dtype=np.int64)  # downtime before window
        self._w_group_end = np.zeros((n, k, slots), dtype=np.int64)
        self._w_end_key = np.zeros((n, k, slots), dtype=np.int64)
        self._w_up_key = np.zeros((n, k, slots), dtype=np.int64)
        self._fill_rows(np.arange(n).repeat(k), np.tile(np.arange(k), n))

    def _fill_rows(self, copies: np.ndarray, machines: np.ndarray) -> None:
        """Derived window arrays of the given rows from their raw gaps and lengths (slot 0
        follows the windows already dropped, see :meth:`_compact`)."""
        slots = self._w_slots
        slot = np.arange(slots)
        count = self._w_count[copies, machines][:, None]
        sampled = slot < count
        gaps = np.where(sampled, self._w_gap[copies, machines], 1)
        lengths = np.where(sampled, self._w_length[copies, machines], 1)
        ends = self._w_base_end[copies, machines][:, None] + np.cumsum(gaps + lengths, axis=1)
        starts = ends - lengths
        before = self._w_base_before[copies, machines][:, None] + (
            np.cumsum(lengths, axis=1) - lengths
        )
        # slot 0 counts as a group head: at worst a pointer there asks for more windows
        heads = sampled & ((gaps > 0) | (slot == 0))
        # a group (merged window) ends where its last raw window ends
        head_index = np.where(heads, slot, slots)
        next_head = np.minimum.accumulate(head_index[:, ::-1], axis=1)[:, ::-1]
        next_head = np.concatenate([next_head[:, 1:], np.full((count.size, 1), slots)], axis=1)
        last_of_group = np.maximum(np.minimum(next_head, count) - 1, 0)
        group_end = np.take_along_axis(ends, last_of_group, axis=1)
        # slots not drawn yet: far-away windows after any reachable time
        pad = _FAR + 2 * slot
        starts = np.where(sampled, starts, pad)
        ends = np.where(sampled, ends, pad + 1)
        key = self._row_key[copies, machines][:, None]
        self._w_start[copies, machines] = starts
        self._w_before[copies, machines] = np.where(sampled, before, 0)
        self._w_group_end[copies, machines] = np.where(sampled, group_end, ends)
        self._w_end_key[copies, machines] = ends + key
        self._w_up_key[copies, machines] = np.where(sampled, starts - before, _FAR) + key
        # the last group may continue in the next batch: a pointer into it asks for more;
        # rows without windows (padded machines) are complete and never ask
        last_head = np.where(heads, slot, -1).max(axis=1)
        complete = self._w_complete[copies, machines]
        self._w_last_head[copies, machines] = np.where(complete, slots + 1, last_head)

    def _sample_windows(
        self, rows: np.ndarray, tables: Sequence[_InstanceTables], window_seeds: Sequence[int]
    ) -> None:
        """The first batch of each copy's window streams, as ``_DowntimeSampler`` draws them;
        later batches are drawn when an episode gets that far (the windows do not depend on
        how far the simulator samples at reset, only its number of draws does)."""
        machine_counts = np.array([table.n_machines for table in tables], dtype=np.int64)
        pair_copy = np.repeat(rows, machine_counts)
        pair_machine = np.arange(pair_copy.size) - np.repeat(
            np.cumsum(machine_counts) - machine_counts, machine_counts
        )
        seeds = np.repeat(np.array(window_seeds, dtype=np.uint64), machine_counts)
        states = _stream_states(seeds, pair_machine)
        for copy, machine, state in zip(
            pair_copy.tolist(), pair_machine.tolist(), states, strict=True
        ):
            self._window_states[copy][machine] = (*state, 0)
        # a tight loop: this runs for every machine of every copy at every reset. The
        # simulator's two calls, 64 gaps then 64 lengths, with scalar probabilities (3x
        # faster than one call with an array of them, and the same draws)
        n_streams = len(states)
        bit_generator, geometric = self._bit_generator, self._generator.geometric
        gap_prob, length_prob = self.shutdown_prob, 1.0 / self.downtime
        fixed = self.fixed_downtime
        if fixed:
            lengths = np.full((n_streams, _BATCH), int(self.downtime), dtype=np.int64)
        draws = np.empty((n_streams, _BATCH if fixed else 2 * _BATCH), dtype=np.int64)
        for pair, (state, increment) in enumerate(states):
            bit_generator.state = {
                "bit_generator": "PCG64",
                "state": {"state": state, "inc": increment},
                "has_uint32": 0,
                "uinteger": 0,
            }
            draws[pair, :_BATCH] = geometric(gap_prob, _BATCH)
            if not fixed:
                draws[pair, _BATCH:] = geometric(length_prob, _BATCH)
        self._w_count[rows] = 0
        self._w_complete[rows] = True
        for counter in (self._w_drawn, self._w_base_end, self._w_base_before):
            counter[rows] = 0
        self._w_gap[pair_copy, pair_machine, :_BATCH] = draws[:, :_BATCH] - 1
        self._w_length[pair_copy, pair_machine, :_BATCH] = (
            lengths if self.fixed_downtime else draws[:, _BATCH:]
        )
        self._w_count[pair_copy, pair_machine] = _BATCH
        self._w_drawn[pair_copy, pair_machine] = 1
        self._w_complete[pair_copy, pair_machine] = False
        self._fill_rows(rows.repeat(self.K), np.tile(self._machine_ids, rows.size))

    def _draw(
        self, stream: tuple[int, int, int], first: int, batches: int, row: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Batches ``first .. first + batches - 1`` (0-based) of a window stream's (gap,
        length) pairs, in the simulator's order: per batch, all gaps then all lengths.

        ``stream`` is (state, inc, batches already drawn from that state); the stream's
        position after the draw is saved for the (copy, machine) ``row``, so that later
        batches continue from it instead of drawing the stream again.
        """
        state, increment, position = stream
        self._bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": state, "inc": increment},
            "has_uint32": 0,
            "uinteger": 0,
        }
        generator, fixed = self._generator, self.fixed_downtime
        all_gaps, all_lengths = [], []
        for batch in range(position, first + batches):
            gaps = generator.geometric(self.shutdown_prob, _BATCH)
            if fixed:
                lengths = np.full(_BATCH, int(self.downtime), dtype=np.int64)
            else:
                lengths = generator.geometric(1.0 / self.downtime, _BATCH)
            if batch >= first:
                all_gaps.append(gaps - 1)
                all_lengths.append(lengths)
        after = self._bit_generator.state["state"]
        self._window_states[row[0]][row[1]] = (
            int(after["state"]),
            int(after["inc"]),
            first + batches,
        )
        return np.concatenate(all_gaps), np.concatenate(all_lengths)

    def _compact(self, copies: np.ndarray, machines: np.ndarray) -> None:
        """Drop the windows that ended before each row's pointer (time only grows, so no
        query reaches them again); the cumulative values of the rest are kept as they are."""
        pointer = self._w_pointer[copies, machines]
        moving = pointer > 0
        if not moving.any():
            return
        copies, machines, pointer = copies[moving], machines[moving], pointer[moving]
        last = pointer - 1
        self._w_base_end[copies, machines] = (
            self._w_end_key[copies, machines, last] - self._row_key[copies, machines]
        )
        self._w_base_before[copies, machines] = self._w_before[copies, machines, pointer]
        shifted = np.minimum(np.arange(self._w_slots) + pointer[:, None], self._w_slots - 1)
        for raw in (self._w_gap, self._w_length):
            raw[copies, machines] = np.take_along_axis(raw[copies, machines], shifted, axis=1)
        self._w_count[copies, machines] -= pointer
        self._w_pointer[copies, machines] = 0

    def _extend(self, copies: np.ndarray, machines: np.ndarray) -> None:
        """Draw more windows for each given (copy, machine) row, after dropping its ended
        ones; rows that needed many already get more at once."""
        pairs = np.unique(np.stack([copies, machines], axis=1), axis=0)
        copies, machines = pairs[:, 0], pairs[:, 1]
        self._compact(copies, machines)
        drawn = self._w_drawn[copies, machines]
        more = np.maximum(1, drawn // 4)
        need = int((self._w_count[copies, machines] + more * _BATCH).max())
        if need > self._w_slots:
            self._grow_windows(max(need, 2 * self._w_slots))
        for row, machine, first, batches in zip(
            copies.tolist(), machines.tolist(), drawn.tolist(), more.tolist(), strict=True
        ):
            stream = self._window_states[row][machine]
            gaps, lengths = self._draw(stream, first, batches, row=(row, machine))
            count = int(self._w_count[row, machine])
            self._w_gap[row, machine, count : count + gaps.size] = gaps
            self._w_length[row, machine, count : count + gaps.size] = lengths
            self._w_count[row, machine] = count + gaps.size
            self._w_drawn[row, machine] = first + batches
        self._fill_rows(copies, machines)

    def _advance(self, rows: np.ndarray) -> None:
        """Move the window pointers of ``rows`` to their (new) time."""
        now = self.time.take(rows)[:, None]
        passed = self._cur_end.take(rows, axis=0) <= now
        if passed.any():
            now_key = self._row_key.take(rows, axis=0) + now
            # time only grows: walk the pointers past the windows that ended; after a few
            # steps (a long jump) one searchsorted over all rows finishes the job
            slots = self._w_slots
            row_base = ((rows * self.K)[:, None] + self._machine_ids) * slots
            pointer = self._w_pointer.take(rows, axis=0) + passed
            end_keys = self._w_end_key.reshape(-1)
            for _ in range(3):
                ends = end_keys.take(row_base + np.minimum(pointer, slots - 1))
                passed = (ends <= now_key) & (pointer < slots)
                if not passed.any():
                    break
                pointer = pointer + passed
            else:
                pointer = np.searchsorted(end_keys, now_key, side="right") - row_base
            # a window group is final only if a later group has been drawn
            if (pointer >= self._w_last_head.take(rows, axis=0)).any():
                self._advance_slowly(rows, pointer)
            else:
                self._set_pointer(rows, pointer)

    def _up_now_at(self, rows: np.ndarray, machines: np.ndarray) -> np.ndarray:
        """Operational ticks of machine ``machines[i]`` of copy ``rows[i]`` in [0, now)."""
        index = rows * self.K + machines
        now = self.time.take(rows)
        start = self._cur_start.take(index)
        return now - self._cur_before.take(index) - np.maximum(now - start, 0)

    def _advance_slowly(self, rows: np.ndarray, pointer: np.ndarray) -> None:
        """Extend rows until every pointer lies in a final group."""
        now_key = self._row_key[rows] + self.time[rows, None]
        while True:
            short = pointer >= self._w_last_head[rows]
            if not short.any():
                break
            index, machines = np.nonzero(short)
            self._extend(rows[index], machines)
            row_base = ((rows * self.K)[:, None] + self._machine_ids) * self._w_slots
            pointer = np.searchsorted(self._w_end_key.ravel(), now_key, side="right") - row_base
        self._set_pointer(rows, pointer)

    def _set_pointer(self, rows: np.ndarray, pointer: np.ndarray) -> None:
        """Point ``rows`` at the given windows and cache their fields."""
        self._w_pointer[rows] = pointer
        index = ((rows * self.K)[:, None] + self._machine_ids) * self._w_slots + pointer
        self._cur_end[rows] = self._w_end_key.take(index) - self._row_key.take(rows, axis=0)
        self._cur_start[rows] = self._w_start.take(index)
        self._cur_before[rows] = self._w_before.take(index)
        self._cur_group_end[rows] = self._w_group_end.take(index)

    def _refresh(self, rows: np.ndarray) -> np.ndarray:
        """Shutdown flags and ends now; returns (A,) whether a machine holding a blocked job
        came up."""
        width = self.K
        down = self._cur_start.take(rows, axis=0) <= self.time.take(rows)[:, None]
        came_up = self.down.take(rows, axis=0)[:, :width] & ~down
        self.down[rows, :width] = down
        down_until = self.down_until.take(rows, axis=0)[:, :width]
        group_end = self._cur_group_end.take(rows, axis=0)
        self.down_until[rows, :width] = np.where(down, group_end, down_until)
        if not came_up.any():
            return np.zeros(rows.size, dtype=bool)
        holder = self.machine_job.take(rows, axis=0)[:, :width]
        holder_index = holder + (rows * (self.J + 1))[:, None] + (holder < 0) * (self.J + 1)
        holder_status = self._status_flat.take(holder_index)
        return (came_up & (holder_status == BLOCKED)).any(axis=1)

    def _first_time_with_up(
        self, rows: np.ndarray, machines: np.ndarray, target: np.ndarray
    ) -> np.ndarray:
        """Smallest time at which each (copy, machine) has worked ``target`` ticks."""
        row_ids = rows * self.K + machines
        while True:
            keys = self._row_key.take(row_ids) + target
            windows_before = (
                np.searchsorted(self._w_up_key.reshape(-1), keys, side="left")
                - row_ids * self._w_slots
            )
            short = windows_before >= self._w_count.take(row_ids)
            short &= ~self._w_complete.take(row_ids)
            if not short.any():
                break
            self._extend(rows[short], machines[short])
        index = row_ids * self._w_slots + np.minimum(windows_before, self._w_slots - 1)
        return target + self._w_before.take(index)


class JobShopVecEnv(BatchedVecEnv):
    """N copies of :class:`~opsrl.envs.job_shop.env.JobShopEnv` stepped together.

    ``JobShopVecEnv(num_envs, seed=None, **env_kwargs)`` takes the keyword arguments of
    ``JobShopEnv`` (``render_mode`` excepted): every mode (classic, blocking with or without
    swaps, shutdowns with geometric or fixed lengths), both observations (``"graph"``: a dict of
    (N, ...) float32 arrays, as SB3 batches a ``Dict`` space; ``"flat"``: (N, D)), both rewards,
    padding, and lists of fixed or random instances (``instance_selection`` included). Copy i
    reproduces exactly ``JobShopEnv(**env_kwargs)`` reset with ``seed=seed + i`` -- the
    convention of SB3's ``make_vec_env`` and ``DummyVecEnv`` -- including across automatic
    resets: each copy keeps its own generator, built like Gymnasium's ``np_random(seed + i)``,
    and draws its instance choice, random instance and shutdown windows from it at every reset
    in the single env's order.

    Every step dispatches one job in every copy; a copy whose episode ends (all jobs done,
    deadlock or safety horizon) is reset at once, with ``infos[i]["terminal_observation"]``
    holding its last observation and ``infos[i]["TimeLimit.truncated"]`` set as
    ``DummyVecEnv`` sets it. Episodes have different lengths, so copies reset at different
    steps.

    Infos are kept cheap, building N dicts being the main Python cost of a step: each step
    ``infos[i]`` is ``{"invalid_action": bool}``; at an episode's end it also holds the single
    env's last info: ``kpi`` (the final KPIs, with ``best_known`` and ``gap_pct`` where the
    instance has a best known makespan for the mode), ``deadlock``, ``time`` and ``instance``.
    ``reset_infos[i]`` is the single env's reset info of copy i's current episode.
    Episode-to-date KPIs of all copies are one call away: :meth:`kpi` (a dict of (N,) arrays).

    Masks: :meth:`action_masks` returns (N, max_jobs); through the generic VecEnv API,
    ``env_method("action_masks")`` returns the per-copy masks (what sb3-contrib's
    ``get_action_masks`` stacks) and ``env_method("lower_bound")`` the makespan lower bounds.
    ``get_attr`` gives per-copy ``instance``, ``time``, ``action_masks`` and ``lower_bound``
    (callables), and the shared attributes otherwise; ``env_is_wrapped`` is always False.
    Reset options (the single env's replayed ``downtime_windows``) are not supported.

    Cost: the per-copy Python work left is at resets (the instance draw, and two generator
    calls per machine for its shutdown windows); a step is a few dozen vectorised rounds, most
    of them over the few copies that need many events before their next decision.
    ``benchmarks/job_shop_vec.py`` measures it. Memory: shutdown windows take about
    7 x N x max_machines x S int64, with S the most windows any (copy, machine) has held at
    once (ended windows are dropped; 64 to 128 for usual settings).
    """

    supported_methods = SUPPORTED_METHODS
    read_only_attributes = ("instance", "time", "max_jobs", "max_machines", "observation")

    def __init__(self, num_envs: int, seed: int | None = None, **env_kwargs: Any) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if env_kwargs.get("render_mode") is not None:
            raise ValueError("render_mode is not supported by JobShopVecEnv; leave it None")
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0
        ):
            raise ValueError(f"seed must be None or a non-negative integer, got {seed!r}")
        # the template validates the kwargs exactly like the single env and owns the spaces
        template = JobShopEnv(**env_kwargs)
        self.env_kwargs = dict(env_kwargs)
        self.max_jobs, self.max_machines = template.max_jobs, template.max_machines
        self.blocking, self.swap = template.blocking, template.swap
        self.shutdown_prob, self.downtime = template.shutdown_prob, template.downtime
        self.downtime_model = template.downtime_model
        self.observation = template.observation
        self.reward_mode, self.reward_scale = template.reward_mode, template.reward_scale
        self.invalid_action = template.invalid_action
        self.instance_selection = template.instance_selection
        self.render_mode = None
        self._sources = list(template.instance_sources)
        self._fixed_tables: dict[int, _InstanceTables] = {}
        num_envs = int(num_envs)
        super().__init__(num_envs, template.observation_space, template.action_space)

        n, jobs, width = num_envs, self.max_jobs, self.max_machines
        self._shop = _ShopBatch(
            n,
            jobs,
            width,
            self.blocking,
            self.swap,
            self.shutdown_prob,
            self.downtime,
            self.downtime_model,
        )
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._next_index = [0] * n
        self._tables: list[_InstanceTables | None] = [None] * n
        self._actions: np.ndarray | None = None
        self._started = False
        self._charged = np.zeros(n, dtype=np.int64)  # time already paid (time reward)
        self._bound = np.zeros(n, dtype=np.int64)  # last lower bound (lower_bound reward)
        # per-copy static observation arrays (copied from the instance tables at reset)
        # static node feature planes: duration / p_max and operations left / K (float32)
        self._duration_plane = np.zeros((n, jobs, width), dtype=np.float32)
        self._ops_left_plane = np.zeros((n, jobs, width), dtype=np.float32)
        self._op_machine = np.full((n, jobs, width), width, dtype=np.int64)
        self._durations = np.zeros((n, jobs, width))
        self._duration_feature = np.zeros((n, jobs, width))
        self._p_max = np.ones(n)
        self._job_work = np.ones((n, jobs))
        self._machine_load = np.ones((n, width))
        self._real_op = np.zeros((n, jobs, width), dtype=bool)
        self._real_job = np.zeros((n, jobs), dtype=bool)
        self._real_machine = np.zeros((n, width), dtype=bool)
        self._best_known = np.zeros(n)
        self._capacity = (jobs * (width - 1), width * (jobs * (jobs - 1) // 2))
        # edge lists per copy: node ids as floats (what the observation shows) and as flat ids
        # into all copies' node masks (-1: padding, which reads an always-dead slot)
        id_dtype = np.int32 if n * jobs * width < 2**31 - 1 else np.int64
        self._edges = {
            key: (
                np.zeros((n, 2, size), dtype=np.float32),
                np.full((n, 2, size), -1, dtype=id_dtype),
            )
            for key, size in zip(("conjunctive", "disjunctive"), self._capacity, strict=True)
        }
        self._op_index = np.arange(width)
        self._node_base = np.arange(jobs) * width
        if seed is not None:
            self.seed(int(seed))

    # ----------------------------------------------------------------- VecEnv API
    def reset(self) -> dict[str, np.ndarray] | np.ndarray:
        """Reset every copy (re-seeding those given a seed) and return the observations."""
        if any(self._options):
            raise ValueError("JobShopVecEnv does not support reset options")
        seeds = list(self._seeds)
        for i in range(self.num_envs):
            if seeds[i] is not None or self._rngs[i] is None:
                self._rngs[i] = np_random(seeds[i])[0]
        self._reset_seeds()
        self._reset_options()
        rows = np.arange(self.num_envs)
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._start_episodes(rows, seeds)
        self._started = True
        return self._observations(rows)

    def step_wait(self) -> VecEnvStepReturn:
        """One dispatch in every copy; copies whose episode ends are reset."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if self._actions is None:
            raise RuntimeError("call step_async() before step_wait()")
        jobs = self._validate_actions(self._actions)
        self._actions = None
        shop = self._shop
        rows = np.arange(self.num_envs)
        mask = shop.mask
        invalid = ~mask[rows, jobs]
        if invalid.any():
            if self.invalid_action == "raise":
                copy = int(np.flatnonzero(invalid)[0])
                raise ValueError(
                    f"copy {copy}: job {int(jobs[copy])} is not a candidate now (candidates: "
                    f"{np.flatnonzero(mask[copy]).tolist()}); mask actions with action_masks() "
                    "or use invalid_action='replace'"
                )
            jobs = np.where(invalid, mask.argmax(axis=1), jobs)
        shop.dispatch(jobs)

        deadlock = shop.deadlock
        if self.reward_mode == "time":
            limit = shop.time_limit(rows) if deadlock.any() else shop.time
            charged_to = np.where(deadlock, limit, shop.time)
            cost = charged_to - self._charged
            self._charged = shop.time.copy()
        else:
            bound = shop.lower_bound(rows)
            if deadlock.any():
                bound = np.where(deadlock, shop.time_limit(rows), bound)
            cost = bound - self._bound
            self._bound = bound
        rewards = (-cost.astype(np.float64) / self.reward_scale).astype(np.float32)
        terminated = shop.terminated.copy()
        truncated = shop.deadlock | shop.truncated
        dones = terminated | truncated
        obs = self._observations(rows)
        infos: list[dict[str, Any]] = [{"invalid_action": flag} for flag in invalid.tolist()]
        if not dones.any():
            return obs, rewards, dones, infos

        ended = np.flatnonzero(dones)
        for copy, info in zip(ended.tolist(), self._end_infos(ended), strict=True):
            info["invalid_action"] = bool(invalid[copy])
            info["TimeLimit.truncated"] = bool(truncated[copy] and not terminated[copy])
            info["terminal_observation"] = self._copy_observation(obs, copy)
            infos[copy] = info
        self._start_episodes(ended, [None] * self.num_envs)
        fresh = self._observations(ended)
        if isinstance(obs, dict):
            for key, value in fresh.items():
                obs[key][ended] = value
        else:
            obs[ended] = fresh
        return obs, rewards, dones, infos

    # ----------------------------------------------------------------- per-copy access
    def _per_copy_attributes(self) -> dict[str, Callable[[int], Any]]:
        return {
            "instance": lambda i: self._table(i).instance,
            "time": lambda i: int(self._shop.time[i]),
        }

    def _bound_method(self, name: str, index: int) -> Callable[..., Any]:
        if name == "action_masks":
            return lambda: self._mask_row(index)
        return lambda: int(self._shop.lower_bound(np.array([index]))[0])

    def _call_method(
        self, name: str, indices: list[int], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> list[Any]:
        no_arguments(name, args, kwargs)
        if name == "action_masks":
            return [self._mask_row(i) for i in indices]
        return [int(v) for v in self._shop.lower_bound(np.array(indices, dtype=np.int64))]

    # ----------------------------------------------------------------- vectorised extras
    def action_masks(self) -> np.ndarray:
        """Bool (N, max_jobs): the jobs each copy may dispatch now."""
        return self._shop.mask.copy()

    def kpi(self) -> dict[str, np.ndarray]:
        """Episode-to-date KPIs of every copy (``JobShopSim.kpi``), a dict of (N,) arrays."""
        self._check_started()
        return self._shop.kpi(np.arange(self.num_envs))

    # ----------------------------------------------------------------- helpers
    def _table(self, copy: int) -> _InstanceTables:
        self._check_started()
        table = self._tables[copy]
        assert table is not None
        return table

    def _mask_row(self, copy: int) -> np.ndarray:
        return self._shop.mask[copy].copy()

    def _validate_actions(self, actions: Any) -> np.ndarray:
        array = np.asarray(actions)
        if array.size != self.num_envs or array.dtype.kind not in "iuf":
            raise ValueError(
                f"actions must be {self.num_envs} job indices (one per copy), got "
                f"{array.dtype} array of shape {array.shape}"
            )
        array = array.reshape(self.num_envs)
        jobs = array.astype(np.int64)
        if (jobs != array).any() or (jobs < 0).any() or (jobs >= self.max_jobs).any():
            raise ValueError(
                f"actions must be job indices in 0..{self.max_jobs - 1}, got {array.tolist()}"
            )
        return jobs

    def _instance_tables(self, index: int, rng: np.random.Generator) -> _InstanceTables:
        source = self._sources[index]
        if source.instance is None:
            return _instance_tables(
                source.draw(rng), self.max_jobs, self.max_machines, self.blocking, self.swap
            )
        if index not in self._fixed_tables:
            self._fixed_tables[index] = _instance_tables(
                source.instance, self.max_jobs, self.max_machines, self.blocking, self.swap
            )
        return self._fixed_tables[index]

    def _start_episodes(self, rows: np.ndarray, seeds: Sequence[int | None]) -> None:
        """New episodes for ``rows``, each drawing from its own generator like
        ``JobShopEnv.reset``: instance index, random instance, window seed."""
        n_sources = len(self._sources)
        tables, window_seeds = [], []
        for copy in rows.tolist():
            rng = self._rngs[copy]
            assert rng is not None
            index = int(rng.integers(n_sources)) if n_sources > 1 else 0
            if self.instance_selection == "seed":
                seed = seeds[copy]
                index = seed % n_sources if seed is not None else self._next_index[copy]
                self._next_index[copy] = (index + 1) % n_sources
            table = self._instance_tables(index, rng)
            tables.append(table)
            self._tables[copy] = table
            window_seeds.append(int(rng.integers(2**63 - 1)))
        self._load_observation_tables(rows, tables)
        shop = self._shop
        shop.load(rows, tables, window_seeds)
        self._charged[rows] = 0
        if self.reward_mode == "lower_bound":
            self._bound[rows] = shop.lower_bound(rows)
        kpis = self._kpi_dicts(rows)
        for copy, kpi in zip(rows.tolist(), kpis, strict=True):
            self.reset_infos[copy] = {
                "kpi": kpi,
                "deadlock": bool(shop.deadlock[copy]),
                "time": int(shop.time[copy]),
                "invalid_action": False,
                "instance": self._tables[copy].instance.name,
            }

    def _load_observation_tables(self, rows: np.ndarray, tables: list[_InstanceTables]) -> None:
        groups: dict[int, tuple[_InstanceTables, list[int]]] = {}
        for copy, table in zip(rows.tolist(), tables, strict=True):
            groups.setdefault(id(table), (table, []))[1].append(copy)
        for table, members in groups.values():
            self._duration_plane[members] = table.template[..., NODE_FEATURES.index("duration")]
            ops_left = table.template[..., NODE_FEATURES.index("remaining_job_ops")]
            self._ops_left_plane[members] = ops_left
            self._op_machine[members] = table.machine_of[:, : self.max_machines]
            self._durations[members] = table.durations
            self._duration_feature[members] = table.duration_feature
            self._p_max[members] = table.p_max
            self._job_work[members] = table.job_work
            self._machine_load[members] = table.machine_load
            self._real_op[members] = table.real_op
            self._real_job[members] = np.arange(self.max_jobs) < table.n_jobs
            self._real_machine[members] = np.arange(self.max_machines) < table.n_machines
            self._best_known[members] = table.best_known
            node_base = np.array(members)[:, None, None] * (self.max_jobs * self.max_machines)
            for key, static in (
                ("conjunctive", table.conjunctive),
                ("disjunctive", table.disjunctive),
            ):
                as_float, flat_ids = self._edges[key]
                as_float[members] = static
                flat_ids[members] = np.where(static >= 0, static + node_base, -1)

    def _kpi_dicts(self, rows: np.ndarray) -> list[dict[str, float]]:
        kpi = self._shop.kpi(rows)
        best = self._best_known[rows]
        columns = {key: value.tolist() for key, value in kpi.items()}
        makespan = kpi["makespan"]
        safe_best = np.where(best > 0, best, 1.0)
        columns["best_known"] = best.tolist()
        columns["gap_pct"] = (100.0 * (makespan - best) / safe_best).tolist()
        out = []
        for k in range(rows.size):
            record = {key: columns[key][k] for key in kpi}
            if columns["best_known"][k] > 0:
                record["best_known"] = columns["best_known"][k]
                record["gap_pct"] = columns["gap_pct"][k]
            out.append(record)
        return out

    def _end_infos(self, rows: np.ndarray) -> list[dict[str, Any]]:
        shop = self._shop
        return [
            {
                "kpi": kpi,
                "deadlock": bool(shop.deadlock[copy]),
                "time": int(shop.time[copy]),
                "instance": self._table(copy).instance.name,
            }
            for copy, kpi in zip(rows.tolist(), self._kpi_dicts(rows), strict=True)
        ]

    @staticmethod
    def _copy_observation(
        obs: dict[str, np.ndarray] | np.ndarray, copy: int
    ) -> dict[str, np.ndarray] | np.ndarray:
        if isinstance(obs, dict):
            return {key: value[copy].copy() for key, value in obs.items()}
        return obs[copy].copy()

    # ----------------------------------------------------------------- observations
    def _observations(self, rows: np.ndarray) -> dict[str, np.ndarray] | np.ndarray:
        if self.observation == "flat":
            return self._flat_observations(rows)
        return self._graph_observations(rows)

    def _node_state(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """``JobShopEnv._node_state`` for ``rows``: (held, unstarted, remaining_processing,
        remaining), with padded operations neither held nor unstarted."""
        shop = self._shop
        next_op = shop.next_op.take(rows, axis=0)[..., None]
        holding = shop.job_machine.take(rows, axis=0) >= 0
        held = (self._op_index == next_op - 1) & holding[..., None]
        unstarted = (self._op_index >= next_op) & self._real_op.take(rows, axis=0)
        remaining = shop.remaining_processing(rows)
        remaining_processing = np.where(unstarted, self._durations.take(rows, axis=0), 0.0)
        remaining_processing += held * remaining[..., None]
        return held, unstarted, remaining_processing, remaining

    def _graph_observations(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        shop = self._shop
        size, jobs, width = rows.size, self.max_jobs, self.max_machines
        held, unstarted, remaining_processing, _ = self._node_state(rows)
        alive = unstarted | held
        status = shop.status.take(rows, axis=0)[:, :jobs]
        down = shop.down.take(rows, axis=0)
        holding = shop.job_machine.take(rows, axis=0)
        machine_offset = (np.arange(size) * (width + 1))[:, None]
        holding_index = holding + machine_offset + (holding < 0) * (width + 1)
        # status code per node: 0 waiting, 1 ready, 2 processing, 3 blocked, 4 on a down
        # machine; 5 marks finished and padded nodes (an all-zero row)
        job_code = np.where(status == BLOCKED, 3, 2)
        job_code[down.take(holding_index)] = 4
        code = np.where(held, job_code[..., None], 0)
        next_op = shop.next_op.take(rows, axis=0)
        ready = (self._op_index == next_op[..., None]) & shop.mask.take(rows, axis=0)[..., None]
        code[ready] = 1
        code[~alive] = 5
        p_max = self._p_max.take(rows)[:, None, None]

        # feature planes, each contiguous, then one transpose to (A, N * F); the values are
        # those of JobShopEnv (float64 arithmetic cast to float32, dead nodes zeroed)
        planes = np.empty((len(NODE_FEATURES), size, jobs, width), dtype=np.float32)
        for value in range(5):
            np.equal(code, value, out=planes[value])
        np.multiply(self._duration_plane.take(rows, axis=0), alive, out=planes[5])
        np.divide(remaining_processing, p_max, out=planes[6], casting="same_kind")
        reverse_sum = np.cumsum(remaining_processing[..., ::-1], axis=2)[..., ::-1]
        job_work = self._job_work.take(rows, axis=0)[..., None]
        planes[7] = reverse_sum / job_work
        planes[7] *= alive
        np.multiply(self._ops_left_plane.take(rows, axis=0), alive, out=planes[8])
        if down.any():
            op_index = self._op_machine.take(rows, axis=0) + machine_offset[..., None]
            np.logical_and(down.take(op_index), alive, out=planes[9], casting="unsafe")
            time = shop.time.take(rows)[:, None]
            downtime_left = np.where(down, shop.down_until.take(rows, axis=0) - time, 0)
            planes[10] = np.minimum(downtime_left.take(op_index) / p_max, DOWNTIME_FEATURE_CAP)
            planes[10] *= alive
        else:
            planes[9:] = 0.0
        features = planes.transpose(1, 2, 3, 0).reshape(size, -1)

        alive_nodes = alive.reshape(size, -1)
        # node masks of all copies, flat, plus one always-dead slot that padded edges read
        if size == self.num_envs:
            alive_all = np.append(alive_nodes.reshape(-1), False)
        else:
            alive_all = np.zeros(self.num_envs * jobs * width + 1, dtype=bool)
            alive_all[:-1].reshape(self.num_envs, -1)[rows] = alive_nodes
        has_next = (next_op < shop.n_ops.take(rows)[:, None]) & self._real_job.take(rows, axis=0)
        candidate_nodes = np.where(has_next, self._node_base + next_op, -1).astype(np.float32)
        return {
            "node_features": features,
            "node_mask": alive_nodes.astype(np.float32),
            "conjunctive_edges": self._edge_lists("conjunctive", rows, alive_all),
            "disjunctive_edges": self._edge_lists("disjunctive", rows, alive_all),
            "candidate_nodes": candidate_nodes,
        }

    def _edge_lists(self, key: str, rows: np.ndarray, alive_all: np.ndarray) -> np.ndarray:
        """(A, 2 * E) float32: per copy, its edges with both ends alive packed to the front of
        a -1 padded (2, E) row, flattened (``JobShopEnv``'s layout)."""
        as_float, flat_ids = self._edges[key]
        if rows.size != self.num_envs:  # else all copies, in order: no gather
            as_float = as_float.take(rows, axis=0)
            flat_ids = flat_ids.take(rows, axis=0)
        size, _, capacity = flat_ids.shape
        out = np.empty((size, 2 * capacity), dtype=np.float32)
        # blocks of copies whose temporaries stay in cache (large instances have thousands of
        # disjunctive pairs per copy)
        chunk = max(16, _EDGE_CHUNK // max(capacity, 1))
        for first in range(0, size, chunk):
            ids, floats = flat_ids[first : first + chunk], as_float[first : first + chunk]
            block = out[first : first + chunk]
            keep = alive_all.take(ids[:, 0]) & alive_all.take(ids[:, 1])
            # destination of each kept edge: its rank among the kept ones of its copy
            slot = np.cumsum(keep, axis=1, dtype=np.int32)
            slot += (np.arange(len(ids), dtype=np.int32) * (2 * capacity) - 1)[:, None]
            slot = slot[keep]
            block.fill(-1.0)
            flat = block.reshape(-1)
            flat[slot] = floats[:, 0][keep]
            flat[slot + capacity] = floats[:, 1][keep]
        return out

    def _flat_observations(self, rows: np.ndarray) -> np.ndarray:
        shop = self._shop
        size, jobs, width = rows.size, self.max_jobs, self.max_machines
        p_max = self._p_max.take(rows)[:, None]
        _, _, remaining_processing, remaining = self._node_state(rows)
        status = shop.status.take(rows, axis=0)[:, :jobs]
        next_op = shop.next_op.take(rows, axis=0)
        n_ops = shop.n_ops.take(rows)[:, None]
        has_next = next_op < n_ops
        next_machine = shop.wanted.take(rows, axis=0)
        down = shop.down.take(rows, axis=0)
        holding = shop.job_machine.take(rows, axis=0)
        on_down = (holding >= 0) & _take(down, holding)
        mask = shop.mask.take(rows, axis=0)
        next_index = np.minimum(next_op, n_ops - 1)
        next_duration = np.take_along_axis(
            self._duration_feature.take(rows, axis=0), next_index[..., None], axis=2
        )[..., 0]
        job_rows = np.stack(
            [
                mask,
                (status == WAITING) & ~mask,
                (status == PROCESSING) & ~on_down,
                (status == BLOCKED) & ~on_down & ~mask,
                on_down,
                status == DONE,
                np.where(has_next, next_duration, 0),
                remaining / p_max,
                remaining_processing.sum(axis=2) / self._job_work.take(rows, axis=0),
                (n_ops - next_op) / width,
                has_next & _take(down, next_machine),
            ],
            axis=2,
        )
        job_rows *= self._real_job.take(rows, axis=0)[..., None]

        machine_job = shop.machine_job.take(rows, axis=0)[:, :width]
        occupied = machine_job >= 0
        holder_status = np.where(occupied, _take(status, machine_job), -1)
        machine_down = down[:, :width]
        downtime_left = np.where(
            machine_down,
            shop.down_until.take(rows, axis=0)[:, :width] - shop.time.take(rows)[:, None],
            0,
        )
        offset = (np.arange(size) * (width + 1))[:, None, None]
        machine_work = np.bincount(
            (self._op_machine.take(rows, axis=0) + offset).ravel(),
            weights=remaining_processing.ravel(),
            minlength=size * (width + 1),
        ).reshape(size, width + 1)[:, :width]
        machine_rows = np.stack(
            [
                ~occupied & ~machine_down,
                holder_status == PROCESSING,
                holder_status == BLOCKED,
                machine_down,
                np.where(occupied, _take(remaining, machine_job), 0) / p_max,
                np.minimum(downtime_left / p_max, DOWNTIME_FEATURE_CAP),
                machine_work / self._machine_load.take(rows, axis=0),
            ],
            axis=2,
        )
        machine_rows *= self._real_machine.take(rows, axis=0)[..., None]
        out = np.empty(
            (size, jobs * len(FLAT_JOB_FEATURES) + width * len(FLAT_MACHINE_FEATURES)),
            dtype=np.float32,
        )
        split = jobs * len(FLAT_JOB_FEATURES)
        out[:, :split] = job_rows.reshape(size, -1)
        out[:, split:] = machine_rows.reshape(size, -1)
        return out
