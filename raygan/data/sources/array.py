"""`data.name: array`: a training set from an `.npy` or `.npz` file, and the checks every
array source shares (`dataset_from_arrays`).

`data.path` is an `.npy` file (the samples; read as a memory map, so a large file is never
copied into memory) or an `.npz` file with the samples under `x` and optional integer class
labels under `y` (read into memory: a zip member cannot be mapped, so save a large set as
`.npy`). Nothing is unpickled. What the samples may be:

- vectors, (N, D) with D >= 1, of any real integer or float dtype: tabular or point data for
  the MLP networks, stored as float32 as they are (no scaling);
- images, stored as (N, C, H, W) float32 or uint8 pixels:

  - (N, H, W): one channel;
  - (N, C, H, W) when dimension 1 is 1 or 3, else (N, H, W, C) when dimension 3 is 1 or 3
    (channels-last is transposed, which copies it); dimension 1 is looked at first, so a
    (N, 3, 3, 3) array is channels-first;
  - H must equal W: the DCGAN networks build square images;
  - uint8 pixels in [0, 255] (kept as they are: a memory map stays one), or float16/32/64
    values in [-1, 1], the generators' output range (stored as float32).

`y` is (N,) of an integer dtype with values >= 0; there are `max(y) + 1` classes. Anything else
(1-D or 5-D arrays, bool, complex, object or string dtypes, 2 or 4 channels, fewer than 2
samples) is a one-line `DataError` naming what was found and what is allowed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from raygan.config.catalog import DataKind
from raygan.data.dataset import Dataset
from raygan.data.sources import Source, register_source
from raygan.errors import DataError

if TYPE_CHECKING:
    from raygan.config.model import DataConfig

ALLOWED = ("vectors (N, D) of a real dtype, or images (N, H, W), (N, C, H, W) or (N, H, W, C) "
           "with C 1 or 3 and H == W, as uint8 in [0, 255] or float in [-1, 1]")
"""What `x` may be, for error messages."""

_CHUNK_BYTES = 64 << 20
"""Rows read at a time when an array is scanned or converted: bounds the extra memory."""


def _rows(x: np.ndarray, dtype: type[np.generic],
          value_range: bool) -> tuple[np.ndarray, float, float]:
    """`x` as a C-ordered array of `dtype`, with the min and max of its values.

    `x` itself is returned when it already is one (a memory map stays one); else it is
    converted into a new array. Either way it is read once, in chunks of rows, and the range
    is taken from the converted values (a float64 beyond float32 becomes inf there). Without
    `value_range` the range is (nan, nan) and an array kept as it is is not read at all.
    """
    keep = x.dtype == dtype and x.flags.c_contiguous
    if keep and not value_range:
        return x, math.nan, math.nan
    out = x if keep else np.empty(x.shape, dtype)
    row_bytes = max(1, int(np.prod(x.shape[1:])) * max(x.itemsize, out.itemsize))
    step = max(1, _CHUNK_BYTES // row_bytes)
    lo, hi = math.inf, -math.inf
    for start in range(0, len(x), step):
        block = out[start:start + step]
        if not keep:
            with np.errstate(over="ignore", invalid="ignore"):  # overflow: inf, refused below
                block[...] = x[start:start + step]
        if value_range and block.size:
            # np.minimum, not min(): a NaN must survive into the range, where checks see it
            lo = float(np.minimum(lo, block.min()))
            hi = float(np.maximum(hi, block.max()))
    return out, (lo if value_range else math.nan), (hi if value_range else math.nan)


def _check_finite(lo: float, hi: float, what: str) -> None:
    if not (math.isfinite(lo) and math.isfinite(hi)):  # a NaN anywhere makes the range NaN
        raise DataError(f"{what}: x has NaN or infinite values (or values beyond float32)")


def _describe(a: np.ndarray) -> str:
    return f"shape {tuple(int(d) for d in a.shape)} {a.dtype}"


def _image_layout(x: np.ndarray, what: str) -> np.ndarray:
    """(N, C, H, W) view (NCHW, NHW) or copy-free transposed view (NHWC) of an image array."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.shape[1] not in (1, 3):
        if x.shape[3] not in (1, 3):
            raise DataError(f"{what}: x has {_describe(x)}: neither dimension 1 nor 3 is 1 or 3 "
                            f"channels; allowed: {ALLOWED}")
        x = x.transpose(0, 3, 1, 2)
    height, width = int(x.shape[2]), int(x.shape[3])
    if height != width or height < 1:
        raise DataError(f"{what}: images are {height}x{width} (as (N, C, H, W): "
                        f"{_describe(x)}); they must be square (H == W: DCGAN builds square "
                        "images); crop or resize them")
    return x


def _labels(y: np.ndarray | None, n: int, what: str) -> tuple[np.ndarray | None, int]:
    """Labels as int64 and the class count (0 without labels), for `n` >= 1 samples."""
    if y is None:
        return None, 0
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{what}: y has shape {tuple(y.shape)}; it must be ({n},), one class "
                        "label per sample of x")
    if y.dtype.kind not in "ui":
        raise DataError(f"{what}: y has dtype {y.dtype}; class labels must be integers >= 0")
    labels = y.astype(np.int64)
    if int(labels.min()) < 0:
        raise DataError(f"{what}: y has a negative label ({int(labels.min())}); class labels "
                        "must be integers >= 0")
    return labels, int(labels.max()) + 1


def dataset_from_arrays(name: str, x: np.ndarray, y: np.ndarray | None, what: str) -> Dataset:
    """Check arrays of samples `x` and labels `y` and hold them as a `Dataset` (the rules are
    in this module's docstring).

    Args:
        name: `data.name` of the source.
        x: the samples: (N, D) vectors or images (N, H, W), (N, C, H, W), (N, H, W, C).
        y: (N,) integer class labels >= 0, or None.
        what: where the arrays came from, for messages (e.g. "data.path /x/y.npz").

    Raises:
        DataError: one line naming the shape, dtype or values found and what is allowed.
    """
    kind = x.dtype.kind
    if x.ndim not in (2, 3, 4) or kind not in "uif":
        raise DataError(f"{what}: x has {_describe(x)}; allowed: {ALLOWED}")
    n = int(x.shape[0])
    if n < 2:
        raise DataError(f"{what}: x has {n} sample(s) ({_describe(x)}); at least 2 are needed")
    labels, classes = _labels(y, n, what)
    if x.ndim == 2:
        if x.shape[1] < 1:
            raise DataError(f"{what}: x has {_describe(x)}: vectors need D >= 1")
        store, lo, hi = _rows(x, np.float32, value_range=kind == "f")
        if kind == "f":
            _check_finite(lo, hi, what)
        return Dataset(name, store, labels, num_classes=classes)
    images = _image_layout(x, what)
    if x.dtype == np.uint8:
        pixels, _, _ = _rows(images, np.uint8, value_range=False)
        return Dataset.from_pixels(name, pixels, labels, 255.0)
    if kind != "f":
        raise DataError(f"{what}: images have dtype {x.dtype}; allowed: uint8 in [0, 255] or "
                        "float in [-1, 1] (e.g. x.astype(np.uint8) for 0-255 integers)")
    store, lo, hi = _rows(images, np.float32, value_range=True)
    _check_finite(lo, hi, what)
    if not (-1.0 <= lo and hi <= 1.0):
        raise DataError(f"{what}: float images lie in [{lo:.4g}, {hi:.4g}]; they must lie in "
                        "[-1, 1]: scale them (e.g. x / 127.5 - 1 for 0-255 values) or pass uint8 "
                        "pixels")
    return Dataset(name, store, labels, 1.0, 0.0, classes)


_MAGIC = {".npy": b"\x93NUMPY", ".npz": b"PK"}
"""How each file starts: the .npy format's magic string, and a zip archive's."""


def _read_error(what: str, exc: Exception) -> DataError:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if "pickle" in message or "Python objects" in message:
        return DataError(f"{what}: holds an object array, which would need pickle (not read: "
                         "loading a pickle can run code); save a numeric array")
    return DataError(f"{what}: cannot be read as a NumPy file ({type(exc).__name__}: {message})")


def read_array_file(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """`x` (a memory map for `.npy`) and `y` (or None) from an `.npy` or `.npz` file.

    Raises:
        DataError: one line for a missing, unreadable or corrupt file, another suffix, an
            object array (never unpickled) or an `.npz` without `x`.
    """
    file = Path(path).expanduser()
    what = f"data.path {file}"
    suffix = file.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise DataError(f"{what}: not an .npy or .npz file (got suffix {file.suffix!r})")
    if not file.is_file():
        raise DataError(f"{what}: " + ("is a directory, not a file" if file.is_dir()
                                       else "no such file"))
    try:
        with file.open("rb") as handle:
            magic = handle.read(6)
        # np.load takes any other file for a pickle: say what it is instead
        if magic[:6 if suffix == ".npy" else 2] != _MAGIC[suffix]:
            raise DataError(f"{what}: is not a NumPy {suffix} file (damaged, or another "
                            "format under that name)")
        if suffix == ".npy":
            return np.load(file, mmap_mode="r", allow_pickle=False), None
        with np.load(file, allow_pickle=False) as archive:
            if "x" not in archive.files:
                keys = ", ".join(archive.files) or "none"
                raise DataError(f"{what}: has no array 'x' (the samples; 'y' the optional "
                                f"labels); its keys: {keys}")
            return archive["x"], archive["y"] if "y" in archive.files else None
    except DataError:
        raise
    except Exception as exc:  # np.load raises many types for a damaged file
        raise _read_error(what, exc) from exc


def load_array(cfg: DataConfig, seed: int) -> Dataset:
    """The samples (and labels) of `data.path`; `seed` is unused (the file is the set)."""
    del seed
    if not cfg.path:
        raise DataError("data.path: data.name 'array' needs the .npy or .npz file to train on")
    x, y = read_array_file(cfg.path)
    return dataset_from_arrays(cfg.name, x, y, f"data.path {Path(cfg.path).expanduser()}")


def unknown_kind(cfg: DataConfig) -> DataKind:
    """A user's data: its form and labels are known once it is loaded."""
    return DataKind(cfg.name, None, None)


register_source(Source("array", ("path",), load_array, unknown_kind,
                       "an .npy or .npz file of images or vectors (x, optional labels y)"))
