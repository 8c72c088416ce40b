from __future__ import annotations

import pytest

from raygan.core.grid import Grid


def test_1x1_has_only_itself() -> None:
    assert Grid(1, 1).neighbours(0) == [0]


def test_2x2_removes_duplicates() -> None:
    g = Grid(2, 2)
    # N == S and E == W on a 2x2 torus: 3 members
    assert sorted(g.neighbours(0)) == [0, 1, 2]
    assert sorted(g.neighbours(3)) == [1, 2, 3]
    assert all(len(g.neighbours(i)) == 3 for i in range(4))


def test_3x3_von_neumann() -> None:
    g = Grid(3, 3)
    assert sorted(g.neighbours(4)) == [1, 3, 4, 5, 7]
    assert sorted(g.neighbours(0)) == [0, 1, 2, 3, 6]
    assert g.neighbours(0)[0] == 0


def test_3x5_rows_and_columns_not_swapped() -> None:
    g = Grid(3, 5)
    # cell (1, 2) = index 7: N (0,2)=2, S (2,2)=12, W (1,1)=6, E (1,3)=8
    assert sorted(g.neighbours(7)) == [2, 6, 7, 8, 12]
    # cell (0, 0): N wraps to row 2 -> 10, W wraps to column 4 -> 4
    assert sorted(g.neighbours(0)) == [0, 1, 4, 5, 10]
    assert g.position(7) == (1, 2)


def test_moore_and_radius() -> None:
    g = Grid(3, 3, "moore")
    assert sorted(g.neighbours(4)) == list(range(9))
    big = Grid(5, 5, "von_neumann", radius=2)
    assert len(big.neighbours(12)) == 13
    assert len(Grid(5, 5, "moore").neighbours(0)) == 9


def test_symmetric_neighbourhoods() -> None:
    g = Grid(4, 6)
    for i in range(g.size):
        for j in g.neighbours(i):
            assert i in g.neighbours(j)


def test_invalid_grid() -> None:
    with pytest.raises(ValueError):
        Grid(0, 3)
    with pytest.raises(IndexError):
        Grid(2, 2).position(4)
