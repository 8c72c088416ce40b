"""`data.name: hf`: a Hugging Face `datasets` data set (the optional extra `raygan[hf]`).

`data.path` is a directory written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`
(read with `datasets.load_from_disk`, no network; a `DatasetDict` picks `data.split`), or, when
no such directory exists, a hub name read with `datasets.load_dataset(path, split=split)`, which
needs internet the first time. `data.column` is the samples (default: the first `Image`
column): an image column is decoded like `data.name: folder` (`decode.py`: resize, centre
crop, channels) and cached under `data.cache_dir`, keyed by the data set's fingerprint, its
Arrow files and the settings; any other column is an array, checked like `data.name: array`.
`data.label_column` (a `ClassLabel` or integer column) gives the labels.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from raygan.config.catalog import DataKind
from raygan.data.dataset import Dataset
from raygan.data.sources import Source, register_source
from raygan.data.sources.decode import cached, decode_images
from raygan.errors import DataError

if TYPE_CHECKING:
    from PIL import Image

    from raygan.config.model import DataConfig


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise DataError("data.name hf needs the datasets package: pip install raygan[hf]"
                        ) from None
    return datasets


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def open_hf(cfg: DataConfig) -> Any:
    """The `datasets.Dataset` that `data.path` and `data.split` name.

    Raises:
        DataError: the package is missing, the directory is no saved data set, the split does
            not exist, or the hub cannot be reached or has no such data set.
    """
    datasets = _datasets()
    if not cfg.path:
        raise DataError("data.path: set it to a directory written by datasets' save_to_disk "
                        "or to a Hugging Face hub name")
    path = Path(cfg.path).expanduser()
    if path.is_dir():
        try:
            loaded = datasets.load_from_disk(str(path))
        except FileNotFoundError as exc:
            raise DataError(f"data.path: {path} is no data set saved with save_to_disk "
                            f"({_first_line(exc)})") from None
        if isinstance(loaded, datasets.DatasetDict):
            if cfg.split not in loaded:
                raise DataError(f"data.split: {cfg.split!r} is not a split of {path}; "
                                f"allowed: {', '.join(loaded)}")
            loaded = loaded[cfg.split]
        return loaded
    if path.exists() or cfg.path.startswith(("/", ".", "~")):
        what = "is not a directory" if path.exists() else "does not exist"
        raise DataError(f"data.path: {path} {what}; set it to a directory written by "
                        "datasets' save_to_disk or to a Hugging Face hub name")
    try:
        return datasets.load_dataset(cfg.path, split=cfg.split)
    except ConnectionError as exc:
        raise DataError(f"data.path: cannot reach {cfg.path!r} on the Hugging Face hub "
                        f"({_first_line(exc)}); the hub needs internet: save the data set "
                        "with save_to_disk where there is, and set data.path to that "
                        "directory") from None
    except Exception as exc:  # noqa: BLE001  (the hub and its builders raise anything)
        raise DataError(f"data.path: cannot load {cfg.path!r} (split {cfg.split!r}) from the "
                        f"Hugging Face hub: {_first_line(exc)}") from None


def _column(ds: Any, cfg: DataConfig, image_type: type) -> str:
    names = list(ds.column_names)
    if cfg.column:
        if cfg.column not in names:
            raise DataError(f"data.column: {cfg.column!r} is not a column of {cfg.path}; "
                            f"allowed: {', '.join(names)}")
        return cfg.column
    images = [n for n in names if isinstance(ds.features[n], image_type)]
    if not images:
        raise DataError(f"data.column: {cfg.path} has no image column; set data.column to "
                        f"one of: {', '.join(names)}")
    return images[0]


def _labels(ds: Any, cfg: DataConfig, datasets: Any) -> np.ndarray | None:
    if not cfg.label_column:
        return None
    if cfg.label_column not in ds.column_names:
        raise DataError(f"data.label_column: {cfg.label_column!r} is not a column of "
                        f"{cfg.path}; allowed: {', '.join(ds.column_names)}")
    feature = ds.features[cfg.label_column]
    integer = isinstance(feature, datasets.Value) and feature.dtype.startswith(("int", "uint"))
    if not (isinstance(feature, datasets.ClassLabel) or integer):
        raise DataError(f"data.label_column: {cfg.label_column!r} of {cfg.path} is {feature}; "
                        "labels must be a ClassLabel or an integer column")
    labels = np.asarray(ds.data.column(cfg.label_column).to_numpy(), dtype=np.int64)
    if len(labels) and labels.min() < 0:
        raise DataError(f"data.label_column: {cfg.label_column!r} of {cfg.path} has "
                        f"{int((labels < 0).sum())} rows without a label (< 0); every sample "
                        "needs a class in 0..K-1")
    return labels


def _arrow_files(ds: Any) -> list[list[Any]]:
    files = []
    for entry in ds.cache_files:
        stat = Path(entry["filename"]).stat()
        files.append([entry["filename"], stat.st_size, stat.st_mtime_ns])
    return files


def _decode_column(ds: Any, cfg: DataConfig, column: str, labels: np.ndarray | None
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    from PIL import Image

    key = {"source": "hf", "path": cfg.path, "split": cfg.split, "column": column,
           "label_column": cfg.label_column, "fingerprint": ds._fingerprint,
           "files": _arrow_files(ds), "image_size": cfg.image_size, "channels": cfg.channels}
    where = f"column {column!r} of {cfg.path}"

    def build() -> tuple[np.ndarray, dict[str, np.ndarray]]:
        # the Arrow column itself: a struct of encoded bytes and/or a file path per row, read
        # (memory-mapped) row by row; `ds[i]` would decode through datasets' formatting
        table = ds.flatten_indices() if ds._indices is not None else ds
        cells = table.data.column(column)

        def open_image(i: int) -> Image.Image:
            cell = cells[i].as_py() or {}
            if cell.get("bytes"):
                return Image.open(io.BytesIO(cell["bytes"]))
            if cell.get("path"):
                return Image.open(cell["path"])
            raise ValueError("no image in this row")

        decoded = decode_images(len(ds), open_image, lambda i: f"row {i}", cfg.image_size,
                                cfg.channels, "data.column", where)
        extras = {} if labels is None else {"labels": labels[decoded.kept]}
        return decoded.pixels, extras

    pixels, extras = cached(cfg.cache_dir, "hf", key, build, where)
    return pixels, extras.get("labels")


def load_hf(cfg: DataConfig, seed: int) -> Dataset:
    """The Hugging Face data set `data.path` names (see the module docstring).

    Raises:
        DataError: the package is missing, the data set cannot be read, a column is missing or
            of the wrong type, or no image decodes.
    """
    datasets = _datasets()
    ds = open_hf(cfg)
    column = _column(ds, cfg, datasets.Image)
    labels = _labels(ds, cfg, datasets)
    if isinstance(ds.features[column], datasets.Image):
        pixels, kept_labels = _decode_column(ds, cfg, column, labels)
        return Dataset.from_pixels(cfg.name, pixels, kept_labels, 255.0)
    for key in ("image_size", "channels"):
        if getattr(cfg, key) is not None:
            raise DataError(f"data.{key}: applies to an image column only; {column!r} of "
                            f"{cfg.path} is {ds.features[column]}")
    from raygan.data.sources.array import dataset_from_arrays

    x = np.asarray(ds.with_format("numpy")[column])
    return dataset_from_arrays(cfg.name, x, labels, f"data.column {column!r} of {cfg.path}")


def _kind(cfg: DataConfig) -> DataKind:
    return DataKind(cfg.name, None, bool(cfg.label_column))


register_source(Source(
    "hf", ("path", "split", "column", "label_column", "image_size", "channels", "cache_dir"),
    load_hf, _kind, "a Hugging Face `datasets` data set (saved directory or hub name)"))
