"""The population history as a Parquet table: one row per cell per generation.

Rows are the controller's records (`CellReport.to_dict`). Columns keep their report names
(`generation`, `cell`, `g_lr`, `d_lr`, `g_loss`, `g_fitness`, `d_fitness`, `g_replaced`,
`d_replaced`, `g_parent`, `d_parent`, `mixture_weights`, ..., `broken` and `reseeded`: which
centres went non-finite and what replaced them); the per-cell scores become one column each,
`score/<name>`, null in generations that were not evaluated. Needs pyarrow only, so the table
can be written and read without Ray.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from raygan.atomic import atomic_write
from raygan.core.report import report_fields

if TYPE_CHECKING:
    import pandas as pd

HISTORY_FILE = "history.parquet"
SCORE_PREFIX = "score/"

_ARROW: dict[Any, pa.DataType] = {
    int: pa.int64(), float: pa.float64(), str: pa.string(), bool: pa.bool_(),
}


def _arrow_type(kind: Any) -> pa.DataType:
    """The Arrow type of a `CellReport` field type (scalars, lists and flat dicts)."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) is list:
        return pa.list_(_arrow_type(args[0]))
    if typing.get_origin(kind) is dict:
        return pa.map_(_arrow_type(args[0]), _arrow_type(args[1]))
    return _ARROW[kind]


# explicit types, so a column is typed the same in every file (and when all values are null);
# derived from CellReport, so a new field is a new column
_COLUMNS: dict[str, pa.DataType] = {
    name: _arrow_type(kind) for name, kind in report_fields().items()
}


def _cell(value: Any, kind: pa.DataType) -> Any:
    if isinstance(kind, pa.MapType) and isinstance(value, dict):
        key = str if kind.key_type == pa.string() else int
        return [(key(k), int(v)) for k, v in value.items()]
    return value


def history_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """The records as an Arrow table (columns in `_COLUMNS` order, then the scores, sorted)."""
    score_names = sorted({name for row in rows for name in row.get("scores") or {}})
    columns: dict[str, pa.Array] = {}
    for name, kind in _COLUMNS.items():
        columns[name] = pa.array([_cell(row.get(name), kind) for row in rows], type=kind)
    for name in score_names:
        values = []
        for row in rows:
            value = (row.get("scores") or {}).get(name)
            values.append(None if value is None else float(value))
        columns[SCORE_PREFIX + name] = pa.array(values, type=pa.float64())
    return pa.table(columns)


def write_history(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write the table atomically (a temp file beside `path`, then rename)."""
    table = history_table(rows)
    atomic_write(path, lambda handle: pq.write_table(table, handle))


def read_history(path: str | Path) -> pd.DataFrame:
    """The table as a pandas DataFrame (NaN scores stand for 'not evaluated')."""
    return pq.read_table(path).to_pandas()
