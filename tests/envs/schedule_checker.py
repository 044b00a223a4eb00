"""An independent job shop schedule checker, written from the problem definition.

It shares no code with the simulator: it reads a schedule table (the columns of
``JobShopEnv.schedule()``: kind, job, op, machine, start, end, leave, paused, swap; times not
reached yet are -1) and the instance, and asserts the rules of the classic, blocking and
blocking-with-swap job shop with machine shutdowns:

- every operation appears once, on its machine, and each job's operations start in order;
- precedence: an operation starts after the previous one of its job ended (classic) or exactly
  when the job left the previous machine (blocking: a job is never between machines);
- a machine holds at most one job at a time, counting the time a finished job blocks it:
  occupancy intervals [start, leave) do not overlap;
- classic mode and last operations: the job leaves when processing ends (leave == end);
- shutdowns: no job enters a down machine, a blocked job does not leave a down machine, and
  processing pauses during a shutdown -- the processed ticks outside shutdown windows equal the
  duration, the last processed tick is operational, and ``paused`` is the difference;
- transfers at one instant: moves flagged ``swap`` form cycles (every machine left by a swap is
  entered by a swap at the same instant), only in swap mode; unflagged moves never form a
  cycle (a job enters a machine only after its previous holder really left);
- the makespan is the last leave time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


class ScheduleError(AssertionError):
    """The schedule breaks a job shop rule."""


def _fail(message: str) -> None:
    raise ScheduleError(message)


def _windows_from_rows(rows: list[dict[str, Any]], n_machines: int) -> list[list[tuple]]:
    windows: list[list[tuple]] = [[] for _ in range(n_machines)]
    for row in rows:
        windows[int(row["machine"])].append((int(row["start"]), int(row["end"])))
    return windows


def _down_ticks(windows: Sequence[tuple[int, int]], begin: int, finish: int) -> int:
    """Ticks of [begin, finish) covered by the windows (assumed disjoint)."""
    return sum(max(0, min(finish, end) - max(begin, start)) for start, end in windows)


def _is_down(windows: Sequence[tuple[int, int]], tick: int) -> bool:
    return any(start <= tick < end for start, end in windows)


def _records(schedule: Any) -> list[dict[str, Any]]:
    if hasattr(schedule, "to_dict"):
        return schedule.to_dict("records")
    return [dict(record) if isinstance(record, dict) else record._asdict() for record in schedule]


def _has_cycle(edges: Iterable[tuple[int, int]]) -> bool:
    successor: dict[int, list[int]] = defaultdict(list)
    for source, target in edges:
        successor[source].append(target)
    state: dict[int, int] = {}

    def visit(node: int) -> bool:
        state[node] = 1
        for nxt in successor.get(node, []):
            if state.get(nxt) == 1 or (nxt not in state and visit(nxt)):
                return True
        state[node] = 2
        return False

    return any(node not in state and visit(node) for node in list(successor))


def check_schedule(
    machines: Any,
    durations: Any,
    schedule: Any,
    *,
    blocking: bool,
    swap: bool,
    windows: Sequence[Sequence[tuple[int, int]]] | None = None,
    complete: bool = True,
) -> int:
    """Assert that ``schedule`` is feasible; return its makespan (max leave time so far).

    Args:
        machines, durations: the instance, (n_jobs, n_ops) arrays.
        schedule: a DataFrame or an iterable of records with the schedule columns.
        blocking, swap: the shop's mode (``swap`` is ignored when not blocking).
        windows: shutdown windows per machine; default: the ``kind == "down"`` rows.
        complete: every operation must be finished (False for a deadlocked episode).
    """
    machines = np.asarray(machines)
    durations = np.asarray(durations)
    n_jobs, n_ops = machines.shape
    n_machines = int(machines.max()) + 1
    rows = _records(schedule)
    op_rows = [row for row in rows if row.get("kind", "op") == "op"]
    if windows is None:
        windows = _windows_from_rows([r for r in rows if r.get("kind") == "down"], n_machines)
    windows = [sorted((int(s), int(e)) for s, e in machine) for machine in windows]
    for machine, machine_windows in enumerate(windows):
        for (_, end), (start, _) in zip(machine_windows, machine_windows[1:], strict=False):
            if start < end:
                _fail(f"machine {machine}: overlapping shutdown windows {machine_windows}")

    ops: dict[tuple[int, int], dict[str, int]] = {}
    for row in op_rows:
        job, op = int(row["job"]), int(row["op"])
        if not (0 <= job < n_jobs and 0 <= op < n_ops):
            _fail(f"unknown operation ({job}, {op})")
        if (job, op) in ops:
            _fail(f"operation ({job}, {op}) appears twice")
        record = {key: int(row[key]) for key in ("machine", "start", "end", "leave", "paused")}
        record["swap"] = bool(row["swap"])
        if record["machine"] != machines[job, op]:
            _fail(
                f"operation ({job}, {op}) on machine {record['machine']}, not {machines[job, op]}"
            )
        ops[job, op] = record
    if complete and len(ops) != n_jobs * n_ops:
        _fail(f"{n_jobs * n_ops - len(ops)} operations never started")

    moves: list[tuple[int, int, int, int, bool]] = []  # (time, job, from, to, swap)
    for job in range(n_jobs):
        started = sorted(op for (j, op) in ops if j == job)
        if started != list(range(len(started))):
            _fail(f"job {job}: operations started out of order: {started}")
        for op in started:
            rec = ops[job, op]
            machine, start, end, leave = rec["machine"], rec["start"], rec["end"], rec["leave"]
            last_started = op == started[-1]
            last_op = op == n_ops - 1
            p = int(durations[job, op])
            if start < 0:
                _fail(f"({job}, {op}) starts at {start}")
            if _is_down(windows[machine], start):
                _fail(f"({job}, {op}) enters machine {machine} while it is down at {start}")
            if end < 0:
                if complete or not last_started or leave >= 0:
                    _fail(f"({job}, {op}) never finished processing")
            else:
                processed = (end - start) - _down_ticks(windows[machine], start, end)
                if processed != p:
                    _fail(f"({job}, {op}) processed {processed} ticks in [{start}, {end}), not {p}")
                if _is_down(windows[machine], end - 1):
                    _fail(f"({job}, {op}) finished on a down tick {end - 1} of machine {machine}")
                if rec["paused"] != end - start - p:
                    _fail(f"({job}, {op}) paused {rec['paused']}, not {end - start - p}")
            if leave < 0:
                if complete or not last_started:
                    _fail(f"({job}, {op}) never left machine {machine}")
                if rec["swap"]:
                    _fail(f"({job}, {op}) flagged as swapped but never left")
                continue
            if leave < end:
                _fail(f"({job}, {op}) left at {leave} before its end {end}")
            exits = last_op or not blocking
            if exits and leave != end:
                _fail(f"({job}, {op}) should leave when it ends ({end}), left at {leave}")
            if rec["swap"] and (exits or not swap):
                _fail(f"({job}, {op}) flagged as swapped, impossible in this mode")
            if not last_op:
                if (job, op + 1) not in ops:
                    if blocking:
                        _fail(f"({job}, {op}) left machine {machine} at {leave} to nowhere")
                    continue
                nxt = ops[job, op + 1]
                if blocking:
                    if nxt["start"] != leave:
                        _fail(
                            f"job {job} left machine {machine} at {leave} but entered its next "
                            f"machine at {nxt['start']}"
                        )
                    if _is_down(windows[machine], leave):
                        _fail(f"job {job} left machine {machine} while it was down at {leave}")
                    moves.append((leave, job, machine, nxt["machine"], rec["swap"]))
                elif nxt["start"] < end:
                    _fail(f"job {job}: operation {op + 1} starts before operation {op} ends")

    # one job per machine at a time, counting blocked time: [start, leave) never overlap
    occupancy: dict[int, list[tuple[int, float, int, int]]] = defaultdict(list)
    for (job, op), rec in ops.items():
        leave = rec["leave"] if rec["leave"] >= 0 else float("inf")
        occupancy[rec["machine"]].append((rec["start"], leave, job, op))
    for machine, intervals in occupancy.items():
        intervals.sort()
        for first, second in zip(intervals, intervals[1:], strict=False):
            if second[0] < first[1]:
                _fail(
                    f"machine {machine}: ({first[2]}, {first[3]}) holds it until {first[1]} "
                    f"but ({second[2]}, {second[3]}) enters at {second[0]}"
                )

    # transfers at the same instant
    by_time: dict[int, list[tuple[int, int, int, bool]]] = defaultdict(list)
    for time, job, source, target, swapped in moves:
        by_time[time].append((job, source, target, swapped))
    for time, group in by_time.items():
        swapped = [(s, t) for _, s, t, flag in group if flag]
        if sorted(s for s, _ in swapped) != sorted(t for _, t in swapped):
            _fail(f"time {time}: swap moves {swapped} do not form cycles")
        plain = [(s, t) for _, s, t, flag in group if not flag]
        if _has_cycle(plain):
            _fail(f"time {time}: unflagged moves {plain} form a cycle (a hidden swap)")

    leaves = [rec["leave"] for rec in ops.values() if rec["leave"] >= 0]
    return max(leaves, default=0)
