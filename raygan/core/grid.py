"""Toroidal grid topology: which cells each cell trains against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Grid:
    """A `rows x cols` torus; cell index `i = r * cols + c`.

    Attributes:
        rows: number of rows.
        cols: number of columns.
        neighbourhood: "von_neumann" (N, S, E, W) or "moore" (also the diagonals).
        radius: how many steps away a neighbour may be.
    """

    rows: int
    cols: int
    neighbourhood: Literal["von_neumann", "moore"] = "von_neumann"
    radius: int = 1

    def __post_init__(self) -> None:
        if self.rows < 1 or self.cols < 1 or self.radius < 1:
            raise ValueError(f"invalid grid {self.rows}x{self.cols} radius {self.radius}")
        if self.neighbourhood not in ("von_neumann", "moore"):
            raise ValueError(f"unknown neighbourhood {self.neighbourhood!r}")

    @property
    def size(self) -> int:
        """Number of cells."""
        return self.rows * self.cols

    def index(self, row: int, col: int) -> int:
        """Cell index of (row, col), wrapping around the torus."""
        return (row % self.rows) * self.cols + (col % self.cols)

    def position(self, index: int) -> tuple[int, int]:
        """(row, col) of a cell index."""
        if not 0 <= index < self.size:
            raise IndexError(f"cell {index} outside a {self.rows}x{self.cols} grid")
        return divmod(index, self.cols)

    def neighbours(self, index: int) -> list[int]:
        """The cell itself first, then its distinct neighbours.

        Offsets are visited in a fixed order (N, W, E, S for radius 1, then further rings), so
        the order is stable; duplicates from small tori (N == S on a 2-row grid) are removed.
        """
        row, col = self.position(index)
        members = [index]
        for dr, dc in self._offsets():
            j = self.index(row + dr, col + dc)
            if j not in members:
                members.append(j)
        return members

    def _offsets(self) -> list[tuple[int, int]]:
        offsets: list[tuple[int, int]] = []
        for dist in range(1, self.radius + 1):
            for dr in range(-dist, dist + 1):
                for dc in range(-dist, dist + 1):
                    if self.neighbourhood == "von_neumann":
                        keep = abs(dr) + abs(dc) == dist
                    else:
                        keep = max(abs(dr), abs(dc)) == dist
                    if keep:
                        offsets.append((dr, dc))
        return offsets

    def all_neighbourhoods(self) -> list[list[int]]:
        """`neighbours(i)` for every cell."""
        return [self.neighbours(i) for i in range(self.size)]
