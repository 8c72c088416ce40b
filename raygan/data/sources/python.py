"""`data.name: python`: a training set returned by a function of the user's.

`data.source` is `"package.module:function"` (imported as Python imports it, so the package
must be on `sys.path` / `PYTHONPATH`) or `"path/to/file.py:function"` (a file, loaded by its
path; a relative path is taken from the working directory). The part after the colon may be a
dotted attribute path (`module:Class.factory`). The function is called with no arguments and
may return:

- a numpy array or a torch tensor of samples;
- a `raygan.data.Dataset`, used as it is (already checked and held as raygan holds data);
- a tuple or list `(x, y)` of samples and integer class labels (arrays, tensors or lists;
  `y` None for no labels);
- a `torch.utils.data.Dataset`: map-style (`len` and `ds[i]`) or an `IterableDataset`, whose
  items are samples (tensors, arrays or anything `np.asarray` reads, such as a PIL image) or
  `(sample, label)` pairs; the items are stacked into one array (a progress bar shows when
  this takes more than two seconds).

The arrays are then checked and held as `raygan.data.sources.array.dataset_from_arrays` says
(vectors, or images as uint8 or float in [-1, 1]). Every failure (a malformed string, an import
that fails, a missing or non-callable attribute, an exception in the function, a wrong return
type) is a one-line `DataError`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from raygan.data.dataset import Dataset
from raygan.data.sources import Source, register_source
from raygan.data.sources.array import dataset_from_arrays, unknown_kind
from raygan.errors import DataError
from raygan.imports import one_line as _one_line
from raygan.imports import resolve_callable

if TYPE_CHECKING:
    from raygan.config.model import DataConfig

RETURNS = ("a numpy array, a torch tensor, a tuple (x, y) of those, or a "
           "torch.utils.data.Dataset")
"""What the function may return, for error messages."""


def resolve(source: str) -> Callable[[], Any]:
    """The function `data.source` names (`raygan.imports.resolve_callable`).

    Raises:
        DataError: one line for a malformed string, a module that does not import, a missing
            attribute or one that is not callable.
    """
    return resolve_callable(source, f"data.source {source!r}", "function", DataError)


def _as_array(value: Any) -> np.ndarray:
    """A tensor (on any device, with or without grad) or array-like as a numpy array."""
    import torch

    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:  # numpy has no bfloat16
            value = value.float()
        return value.numpy()
    return np.asarray(value)


def _is_pair(item: Any) -> bool:
    """An (x, y) item, not a sample that happens to be a list of two numbers."""
    return (isinstance(item, (tuple, list)) and len(item) == 2
            and not isinstance(item[0], (int, float, np.number)))


def _stack(items: Iterable[Any], total: int | None,
           what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Samples (and labels, when the items are pairs) of a torch Dataset as arrays."""
    from tqdm import tqdm

    out: np.ndarray | None = None
    rows: list[np.ndarray] = []  # an IterableDataset's samples: its length is not known
    labels: list[Any] = []
    pairs = False
    bar = tqdm(items, total=total, desc="data.source: stacking samples", unit="sample",
               delay=2.0, file=sys.stderr)
    for i, item in enumerate(bar):
        if i == 0:
            pairs = _is_pair(item)
        elif _is_pair(item) != pairs:
            raise DataError(f"{what}: items 0 and {i} differ: one is an (x, y) pair, the other "
                            "a sample")
        raw = item[0] if pairs else item
        sample = _as_array(raw)
        if sample.dtype.kind not in "uif":
            raise DataError(f"{what}: item {i} is a {type(raw).__name__} (as an array: "
                            f"{sample.dtype}); items must be samples (tensors or arrays) or "
                            "(sample, label) pairs")
        if pairs:
            label = _as_array(item[1])
            if label.ndim != 0:
                raise DataError(f"{what}: item {i}'s label has shape {label.shape}; a label is "
                                "one integer")
            labels.append(label)
        if total is None:
            rows.append(sample)
            continue
        if out is None:
            out = np.empty((total, *sample.shape), sample.dtype)
        if sample.shape != out.shape[1:]:
            raise DataError(f"{what}: item {i} has shape {sample.shape}, item 0 "
                            f"{out.shape[1:]}; every sample must have one shape")
        out[i] = sample
    bar.close()
    if rows:
        shapes = {r.shape for r in rows}
        if len(shapes) > 1:
            raise DataError(f"{what}: the items have shapes {sorted(shapes)[:3]}; every sample "
                            "must have one shape")
        out = np.stack(rows)
    if out is None:
        raise DataError(f"{what}: returned a Dataset with no items")
    return out, np.stack(labels) if pairs else None


def arrays_from(value: Any, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Samples and labels from what the function returned.

    Raises:
        DataError: one line naming a type it cannot use and what is allowed.
    """
    import torch
    from torch.utils.data import Dataset as TorchDataset
    from torch.utils.data import IterableDataset

    if isinstance(value, (np.ndarray, torch.Tensor)):
        return _as_array(value), None
    if isinstance(value, (tuple, list)) and len(value) == 2:
        x, y = value
        if not isinstance(x, (np.ndarray, torch.Tensor)):
            raise DataError(f"{what}: returned a pair whose x is a {type(x).__name__}; x must "
                            "be a numpy array or a torch tensor")
        return _as_array(x), None if y is None else _as_array(y)
    if isinstance(value, IterableDataset):
        return _stack(value, None, what)
    if isinstance(value, TorchDataset):
        try:
            total = len(value)  # type: ignore[arg-type]
        except TypeError as exc:
            raise DataError(f"{what}: returned a {type(value).__name__} without len(); a "
                            "map-style Dataset needs __len__ (or use an IterableDataset)") from exc
        return _stack((value[i] for i in range(total)), total, what)
    raise DataError(f"{what}: returned a {type(value).__name__}; allowed: {RETURNS}")


def load_python(cfg: DataConfig, seed: int) -> Dataset:
    """The data set `data.source`'s function returns; `seed` is not passed to it."""
    del seed
    if not cfg.source:
        raise DataError("data.source: data.name 'python' needs 'package.module:function', a "
                        "function that returns the training set")
    what = f"data.source {cfg.source!r}"
    function = resolve(cfg.source)
    try:
        value = function()
    except Exception as exc:  # the user's code failed
        raise DataError(f"{what}: calling it raised {_one_line(exc)}") from exc
    if isinstance(value, Dataset):  # held as raygan holds data (e.g. `raygan.train(data=...)`)
        return value
    try:
        x, y = arrays_from(value, what)
    except DataError:
        raise
    except Exception as exc:  # a returned Dataset's own code failed while its items were read
        raise DataError(f"{what}: reading what it returned raised {_one_line(exc)}") from exc
    return dataset_from_arrays(cfg.name, x, y, what)


register_source(Source("python", ("source",), load_python, unknown_kind,
                       "a function 'package.module:function' returning arrays or a Dataset"))
