"""Job shop instance data: packaged benchmarks and bounds, Taillard's generator, OR-Library and
Taillard file round trips, and clear errors for bad files, names and specs."""

from __future__ import annotations

import numpy as np
import pytest

from opsrl.envs.job_shop.data import (
    JobShopInstance,
    generate_instance,
    instance_names,
    load_instance,
    make_instance,
    read_instance,
)


def assert_same_jobs(first: JobShopInstance, second: JobShopInstance) -> None:
    np.testing.assert_array_equal(first.machines, second.machines)
    np.testing.assert_array_equal(first.durations, second.durations)


def taillard_text(instance: JobShopInstance, header_extra: str = "") -> str:
    """The instance in Taillard's layout: durations block then 1-based machines block."""
    lines = [f"Nb of jobs, Nb of Machines{header_extra and ', seeds, bounds'}"]
    lines.append(f"{instance.n_jobs} {instance.n_ops}{header_extra}")
    lines.append("Times")
    lines += [" ".join(map(str, row)) for row in instance.durations]
    lines.append("Machines")
    lines += [" ".join(str(m + 1) for m in row) for row in instance.machines]
    return "\n".join(lines) + "\n"


def test_taillard_generator_reproduces_ta01():
    generated = generate_instance(15, 15, seed=840612802, machine_seed=398197754, method="taillard")
    assert_same_jobs(generated, load_instance("ta01"))


def test_packaged_benchmarks_carry_their_bounds():
    names = instance_names()
    assert len(names) == 162
    assert {"ft06", "ft10", "ft20", "la01", "la40", "ta01", "ta80"} <= set(names)
    assert instance_names("la") == [f"la{i:02d}" for i in range(1, 41)]
    ft06, la01 = load_instance("ft06"), load_instance("la01")
    assert (ft06.n_jobs, ft06.n_ops, ft06.n_machines) == (6, 6, 6)
    assert (la01.n_jobs, la01.n_machines) == (10, 5)
    assert ft06.best_known() == 55 and ft06.best_known(blocking=True) == 63
    assert la01.best_known() == 666 and la01.best_known(blocking=True) == 793
    assert "Muth" in ft06.reference
    for name in ("ft06", "la01", "ta01"):
        instance = load_instance(name)
        # every job visits every machine once
        assert (np.sort(instance.machines, axis=1) == np.arange(instance.n_machines)).all()


@pytest.mark.parametrize("name", ["ft06", "la01", "ta01"])
def test_orlib_file_round_trip(name, tmp_path):
    instance = load_instance(name)
    path = tmp_path / f"{name}.txt"
    path.write_text(f" instance {name}\n +++\n A description, 1963.\n +++\n{instance.to_text()}")
    for fmt in ("auto", "orlib"):
        read = read_instance(path, fmt=fmt)
        assert_same_jobs(read, instance)
        assert read.name == name
    assert read_instance(path).to_text() == instance.to_text()


@pytest.mark.parametrize("header_extra", ["", " 840612802 398197754 1231 1231"])
def test_taillard_file_round_trip(header_extra, tmp_path):
    instance = load_instance("ta01")
    path = tmp_path / "tai15_15.txt"
    path.write_text(taillard_text(instance, header_extra))
    for fmt in ("auto", "taillard"):
        assert_same_jobs(read_instance(path, fmt=fmt), instance)
    # and back to OR-Library
    orlib = tmp_path / "ta01.txt"
    orlib.write_text(read_instance(path).to_text())
    assert_same_jobs(read_instance(orlib), instance)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no numbers here\n", "header"),
        ("0 3\n", "both must be positive"),
        ("2 2\n0 1 1 2\n", "match neither"),
        ("2 2\n0 1 1 2\n1 3\n", "match neither"),
        ("2 2\n0 1 1 0\n1 3 0 2\n", "positive integer"),
        ("2 2\n0 1 0 2\n1 3 0 2\n", "visits a machine twice"),
        ("2 2\n0 1 -1 2\n1 3 0 2\n", "machine indices"),
    ],
)
def test_malformed_files_raise_clear_errors(text, message, tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        read_instance(path)
    assert "bad.txt" in str(error.value)


def test_format_mismatch_and_missing_file(tmp_path):
    path = tmp_path / "ft06.txt"
    path.write_text(load_instance("ft06").to_text())
    with pytest.raises(ValueError, match="expected 12 rows"):
        read_instance(path, fmt="taillard")
    with pytest.raises(ValueError, match="fmt must be"):
        read_instance(path, fmt="csv")
    with pytest.raises(ValueError, match="does not exist"):
        read_instance(tmp_path / "missing.txt")


def test_unknown_names_suggest_close_ones():
    with pytest.raises(ValueError, match="did you mean.*ft06"):
        load_instance("ft6")
    with pytest.raises(ValueError, match="unknown job shop instance"):
        make_instance("nothing-like-it")


def test_generators_are_seeded_and_valid():
    first = generate_instance(5, 4, seed=3, duration_range=(2, 7))
    assert_same_jobs(first, generate_instance(5, 4, seed=3, duration_range=(2, 7)))
    assert not np.array_equal(first.durations, generate_instance(5, 4, seed=4).durations)
    assert first.durations.min() >= 2 and first.durations.max() <= 7
    assert (np.sort(first.machines, axis=1) == np.arange(4)).all()
    taillard = generate_instance(6, 3, seed=7, method="taillard")
    assert taillard.durations.min() >= 1 and taillard.durations.max() <= 99
    assert (np.sort(taillard.machines, axis=1) == np.arange(3)).all()
    with pytest.raises(ValueError, match="n_jobs and n_machines"):
        generate_instance(0, 3)
    with pytest.raises(ValueError, match="duration_range"):
        generate_instance(3, 3, duration_range=(0, 5))
    with pytest.raises(ValueError, match="method"):
        generate_instance(3, 3, method="gaussian")


def test_make_instance_accepts_every_spec(tmp_path):
    ft06 = load_instance("ft06")
    assert make_instance(ft06) is ft06
    assert_same_jobs(make_instance("ft06"), ft06)
    path = tmp_path / "mine.txt"
    path.write_text(ft06.to_text())
    assert_same_jobs(make_instance(str(path)), ft06)
    spec = {"jobs": 4, "machines": 3, "method": "uniform"}
    assert_same_jobs(make_instance(spec, seed=9), generate_instance(4, 3, seed=9))
    assert_same_jobs(make_instance({**spec, "seed": 2}, seed=9), generate_instance(4, 3, seed=2))
    with pytest.raises(ValueError, match="unknown keys"):
        make_instance({"jobs": 4, "machines": 3, "size": 1})
    with pytest.raises(ValueError, match="needs 'jobs' and 'machines'"):
        make_instance({"jobs": 4})
    with pytest.raises(ValueError, match="instance must be"):
        make_instance(42)


def test_instance_validation():
    with pytest.raises(ValueError, match="non-empty"):
        JobShopInstance("empty", machines=np.zeros((0, 0)), durations=np.zeros((0, 0)))
    with pytest.raises(ValueError, match="shape"):
        JobShopInstance("x", machines=[[0, 1]], durations=[[1, 2, 3]])
    instance = JobShopInstance("x", machines=[[0, 1]], durations=[[1, 2]])
    with pytest.raises(ValueError):
        instance.durations[0, 0] = 5  # instances are immutable
