"""Pareto tools, front indicators (HV, EU, SP), weight grids, reference points and front plots,
checked against fronts computed by hand."""

from __future__ import annotations

import itertools
from math import comb

import numpy as np
import pytest

from opsrl.mo import (
    REFERENCE_POINTS,
    ParetoArchive,
    crowding_distance,
    dominates,
    equally_spaced_weights,
    expected_utility,
    non_dominated,
    pareto_front,
    plot_pareto_front,
    reference_point,
    select_by_crowding,
    sparsity,
)

pytest.importorskip("pymoo", reason="hypervolume needs pymoo (the `mo` extra)")
from opsrl.mo import hypervolume  # noqa: E402

STAIRS = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])


# ------------------------------------------------------------------------------- dominance
def test_non_dominated_marks_the_front_and_keeps_one_of_equal_points():
    points = np.array([[1, 3], [2, 2], [1, 1], [3, 1], [2, 2], [0, 3], [3, 0.5]])
    mask = non_dominated(points)
    # (1,1), (0,3), (3,0.5) are dominated; the second (2,2) repeats the first
    np.testing.assert_array_equal(mask, [True, True, False, True, False, False, False])
    np.testing.assert_array_equal(pareto_front(points), STAIRS)
    assert dominates([2, 2], [2, 1]) and not dominates([2, 2], [2, 2])
    assert not dominates([3, 0], [0, 3])


def test_non_dominated_matches_pairwise_definition_on_random_points():
    rng = np.random.default_rng(0)
    points = rng.integers(0, 6, size=(600, 3)).astype(float)  # many ties and duplicates
    mask = non_dominated(points)
    for i in rng.choice(len(points), 60, replace=False):
        dominated = any(dominates(points[j], points[i]) for j in range(len(points)))
        repeated = any(np.array_equal(points[j], points[i]) for j in range(i))
        assert mask[i] == (not dominated and not repeated)


def test_bad_points_raise_value_errors():
    with pytest.raises(ValueError, match="finite"):
        non_dominated([[1.0, np.nan]])
    with pytest.raises(ValueError, match=r"\(n, m\)"):
        non_dominated(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="3 objectives"):
        hypervolume(STAIRS, [0.0, 0.0, 0.0])


# ------------------------------------------------------------------------------- crowding
def test_crowding_distance_by_hand_with_infinite_extremes():
    points = np.array([[0.0, 4.0], [1.0, 3.0], [3.0, 1.0], [4.0, 0.0]])
    distance = crowding_distance(points)
    assert np.isinf(distance[0]) and np.isinf(distance[3])
    # (1,3): obj0 neighbours 0 and 3 over range 4, obj1 neighbours 4 and 1 over range 4
    assert distance[1] == pytest.approx(3 / 4 + 3 / 4)
    assert distance[2] == pytest.approx(3 / 4 + 3 / 4)
    assert np.all(np.isinf(crowding_distance([[0.0, 1.0], [1.0, 0.0]])))


def test_select_by_crowding_takes_extremes_first_and_skips_excluded():
    points = np.array([[0.0, 10.0], [1.0, 9.5], [5.0, 5.0], [9.5, 1.0], [10.0, 0.0]])
    chosen = select_by_crowding(points, 3)
    assert set(chosen[:2]) == {0, 4}
    assert chosen[2] == 2  # the middle point is the least crowded interior one
    again = select_by_crowding(points, 3, exclude=[points[0], points[2]])
    assert 0 not in again and 2 not in again and len(again) == 3


def test_pareto_archive_keeps_only_non_dominated_vectors_with_their_items():
    archive = ParetoArchive(n_objectives=2)
    assert archive.add([1.0, 1.0], "a")
    assert not archive.add([0.5, 0.5], "dominated")
    assert not archive.add([1.0, 1.0], "equal")
    assert archive.add([2.0, 0.0], "b")
    assert archive.add([2.0, 2.0], "c")  # dominates both
    np.testing.assert_array_equal(archive.points, [[2.0, 2.0]])
    assert archive.items == ["c"]
    added = archive.update([[3.0, 0.0], [0.0, 3.0], [1.0, 1.0]], items=["d", "e", "f"])
    np.testing.assert_array_equal(added, [True, True, False])
    assert len(archive) == 3 and sorted(archive.items) == ["c", "d", "e"]


def test_pareto_archive_prunes_most_crowded_and_respects_reference_point():
    archive = ParetoArchive(max_size=3, ref_point=[0.0, 0.0])
    assert not archive.add([-1.0, 5.0])  # below the reference in objective 0
    for x in [0.0, 1.0, 1.2, 5.0, 10.0]:
        archive.add([x, 10.0 - x], item=x)
    assert len(archive) == 3
    # the extremes survive; of the crowded interior points only the best spread one stays
    assert {0.0, 10.0} <= set(archive.items)
    assert archive.items[-1] == 10.0


# ------------------------------------------------------------------------------- HV
def test_two_dimensional_hypervolume_of_rectangles_by_hand():
    # union of [0,1]x[0,3], [0,2]x[0,2], [0,3]x[0,1]: 3 + 2 + 1
    assert hypervolume(STAIRS, [0.0, 0.0]) == pytest.approx(6.0)
    assert hypervolume([[2.0, 1.0]], [-1.0, -1.0]) == pytest.approx(6.0)
    assert hypervolume(np.zeros((0, 2)), [0.0, 0.0]) == 0.0


def test_dominated_and_non_improving_points_do_not_change_hypervolume():
    extra = np.vstack([STAIRS, [[1.0, 1.0], [2.0, 0.5], [-1.0, 10.0], [4.0, 0.0]]])
    # (1,1) and (2,0.5) are dominated, (-1,10) and (4,0) do not beat the reference
    assert hypervolume(extra, [0.0, 0.0]) == pytest.approx(6.0)
    assert hypervolume([[5.0, -1.0]], [0.0, 0.0]) == 0.0


def test_three_dimensional_hypervolume_by_inclusion_exclusion():
    points = np.array([[3.0, 1.0, 1.0], [1.0, 3.0, 1.0], [1.0, 1.0, 3.0]])
    # each box 3, each pairwise and the triple intersection the unit cube: 9 - 3 + 1
    assert hypervolume(points, [0.0, 0.0, 0.0]) == pytest.approx(7.0)


def test_three_dimensional_hypervolume_matches_exact_cell_count():
    rng = np.random.default_rng(1)
    points = rng.integers(1, 7, size=(12, 3)).astype(float)
    # the unit cells of [0, 6]^3 whose upper corner some point dominates (weakly)
    corners = np.array(list(itertools.product(range(1, 7), repeat=3)), dtype=float)
    covered = (points[None, :, :] >= corners[:, None, :]).all(axis=2).any(axis=1)
    assert hypervolume(points, [0.0, 0.0, 0.0]) == pytest.approx(covered.sum())


# ------------------------------------------------------------------------------- EU, SP
def test_expected_utility_on_two_points_with_three_weights_by_hand():
    front = np.array([[1.0, 0.0], [0.0, 1.0]])
    weights = equally_spaced_weights(2, 0.5)  # (0, 1), (0.5, 0.5), (1, 0)
    # best utilities 1, 0.5 and 1
    assert expected_utility(front, weights) == pytest.approx(2.5 / 3)
    with_dominated = np.vstack([front, [[0.4, 0.0], [0.2, 0.2]]])
    assert expected_utility(with_dominated, weights) == pytest.approx(2.5 / 3)
    assert expected_utility(front, [0.25, 0.75]) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="empty"):
        expected_utility(np.zeros((0, 2)), weights)


def test_sparsity_by_hand_on_the_non_dominated_set():
    front = np.array([[0.0, 3.0], [1.0, 1.0], [3.0, 0.0]])
    # per objective the sorted values 0, 1, 3 leave gaps 1 and 2: (1 + 4) * 2 / (3 - 1)
    assert sparsity(front) == pytest.approx(5.0)
    noisy = np.vstack([front, [[0.0, 0.0], [1.0, 1.0], [0.5, 0.5]]])
    assert sparsity(noisy) == pytest.approx(5.0)
    assert sparsity([[1.0, 2.0]]) == 0.0
    assert sparsity(np.zeros((0, 2))) == 0.0


def test_equally_spaced_weights_is_the_simplex_grid():
    for m, step in [(2, 0.01), (3, 0.1), (9, 0.5), (1, 0.25)]:
        weights = equally_spaced_weights(m, step)
        divisions = round(1 / step)
        assert weights.shape == (comb(divisions + m - 1, m - 1), m)
        np.testing.assert_allclose(weights.sum(axis=1), 1.0)
        np.testing.assert_allclose(weights * divisions, np.round(weights * divisions))
        assert len(np.unique(weights, axis=0)) == len(weights)
        assert weights.min() >= 0.0
    np.testing.assert_allclose(equally_spaced_weights(2, 0.5), [[0, 1], [0.5, 0.5], [1, 0]])
    with pytest.raises(ValueError, match="step must divide 1"):
        equally_spaced_weights(2, 0.3)
    with pytest.raises(ValueError, match="n_objectives"):
        equally_spaced_weights(0, 0.5)
    with pytest.raises(ValueError, match="step"):
        equally_spaced_weights(2, 0.0)


# ------------------------------------------------------------------------------- reference
def test_reference_points_lookup():
    np.testing.assert_array_equal(reference_point("minecart-v0"), [-1.0, -1.0, -200.0])
    assert set(REFERENCE_POINTS) >= {
        "mo-hopper-2obj-v5",
        "mo-halfcheetah-v5",
        "deep-sea-treasure-v0",
        "opsrl/mo-lot-sizing-v0",
    }
    with pytest.raises(ValueError, match="no reference point"):
        reference_point("CartPole-v1")


@pytest.mark.filterwarnings("ignore:.*precision lowered")  # MO-Gymnasium's float64 bounds
def test_deep_sea_treasure_front_beats_its_reference_point():
    mo_gym = pytest.importorskip("mo_gymnasium")
    env = mo_gym.make("deep-sea-treasure-v0")
    front = np.array(env.unwrapped.pareto_front(gamma=1.0))
    reference = reference_point(env)  # no method on the env: its id's entry
    assert np.all(front > reference)
    assert hypervolume(front, reference) > 0


# ------------------------------------------------------------------------------- plots
@pytest.mark.parametrize("m", [2, 3, 4])
def test_plot_pareto_front_writes_a_file(tmp_path, m):
    rng = np.random.default_rng(m)
    points = rng.normal(size=(30, m))
    labels = ["run a"] * 15 + ["run b"] * 15
    path = plot_pareto_front(
        points,
        path=tmp_path / "figures" / f"front_{m}.png",
        labels=labels,
        objective_names=[f"f{j}" for j in range(m)],
        reference_point=points.min(axis=0) - 1,
        title=f"{m} objectives",
    )
    assert path.exists() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_pareto_front_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="labels has 1 entries"):
        plot_pareto_front(STAIRS, path=tmp_path / "a.png", labels=["x"])
    with pytest.raises(ValueError, match="objective_names"):
        plot_pareto_front(STAIRS, path=tmp_path / "a.png", objective_names=["x"])
    with pytest.raises(ValueError, match="at least 2 objectives"):
        plot_pareto_front([[1.0], [2.0]], path=tmp_path / "a.png")
    svg = plot_pareto_front(STAIRS, path=tmp_path / "a.svg")
    assert svg.read_text().lstrip().startswith("<?xml")
