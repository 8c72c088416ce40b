"""The `array` (.npy/.npz) and `python` (a user's function) data sources."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import tiny_toy_config

from raygan.config.model import DataConfig
from raygan.data import Dataset, load_dataset
from raygan.errors import ConfigError, DataError

RNG = np.random.default_rng(0)


def load(path: Path | str) -> Dataset:
    return load_dataset(DataConfig(name="array", path=str(path)), 0)


def one_line_error(name: str, **keys: Any) -> str:
    """The DataError message `name`'s load raises, checked to be one line."""
    with pytest.raises(DataError) as info:
        load_dataset(DataConfig(name=name, **keys), 0)
    message = str(info.value)
    assert "\n" not in message and message
    return message


def save(tmp_path: Path, x: Any, name: str = "x.npy", **arrays: Any) -> Path:
    path = tmp_path / name
    if name.endswith(".npz"):
        np.savez(path, **arrays) if x is None else np.savez(path, x=x, **arrays)
    else:
        np.save(path, x)
    return path


# ---------------------------------------------------------------- array: images and vectors


def test_uint8_channels_first_npy_stays_a_memory_map(tmp_path: Path) -> None:
    x = RNG.integers(0, 256, (6, 3, 8, 8), dtype=np.uint8)
    data = load(save(tmp_path, x))
    assert isinstance(data.store, np.memmap)  # not a copy in memory
    assert data.store.shape == (6, 3, 8, 8) and data.labels is None
    assert data.kind.form == "images" and data.kind.labelled is False
    batch = data.take([0, 5])
    assert batch.dtype == torch.float32
    assert torch.allclose(batch, torch.from_numpy(x[[0, 5]]).float() / 127.5 - 1,
                          atol=1e-6)


def test_channels_last_and_grey_images(tmp_path: Path) -> None:
    nhwc = RNG.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    data = load(save(tmp_path, nhwc, "c.npy"))
    assert data.store.dtype == np.uint8
    np.testing.assert_array_equal(data.store, nhwc.transpose(0, 3, 1, 2))
    grey = RNG.integers(0, 256, (5, 8, 8), dtype=np.uint8)
    data = load(save(tmp_path, grey, "g.npy"))
    assert isinstance(data.store, np.memmap) and data.store.shape == (5, 1, 8, 8)
    np.testing.assert_array_equal(data.store[:, 0], grey)
    # dimension 1 is looked at first: (N, 3, 3, 3) is channels-first
    cube = RNG.integers(0, 256, (4, 3, 3, 3), dtype=np.uint8)
    np.testing.assert_array_equal(load(save(tmp_path, cube, "k.npy")).store, cube)


def test_float_images_in_range_are_float32_out_of_range_one_line(tmp_path: Path) -> None:
    x = RNG.uniform(-1, 1, (4, 8, 8, 1))
    data = load(save(tmp_path, x))
    assert data.store.dtype == np.float32 and data.store.shape == (4, 1, 8, 8)
    assert (data.scale, data.shift) == (1.0, 0.0)
    assert torch.allclose(data.take([2]), torch.from_numpy(x[[2]].transpose(0, 3, 1, 2)).float())
    kept = load(save(tmp_path, x.astype(np.float32).transpose(0, 3, 1, 2).copy(), "k.npy"))
    assert isinstance(kept.store, np.memmap)  # float32 channels-first: no copy either
    message = one_line_error("array", path=str(save(tmp_path, x * 127.5 + 127.5, "o.npy")))
    assert "[-1, 1]" in message and "uint8" in message and "255" in message
    bad = x.copy()
    bad[1, 2, 3, 0] = np.nan
    assert "NaN" in one_line_error("array", path=str(save(tmp_path, bad, "n.npy")))


def test_npz_vectors_with_labels(tmp_path: Path) -> None:
    x = RNG.normal(size=(40, 8))
    y = np.arange(40) % 4
    data = load(save(tmp_path, x, "v.npz", y=y.astype(np.int16)))
    assert data.store.dtype == np.float32 and data.store.shape == (40, 8)
    assert data.labels is not None and data.labels.dtype == np.int64
    np.testing.assert_array_equal(data.labels, y)
    assert data.num_classes == 4 and data.kind.form == "vectors" and data.kind.labelled
    assert torch.allclose(data.take([3]), torch.from_numpy(x[[3]]).float())


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.int64, np.float16, np.float64])
def test_vectors_of_any_real_dtype_become_float32(tmp_path: Path, dtype: type) -> None:
    x = (RNG.normal(size=(10, 3)) * 50).astype(dtype)
    data = load(save(tmp_path, x))
    assert data.store.dtype == np.float32 and data.kind.form == "vectors"
    np.testing.assert_array_equal(data.store, x.astype(np.float32))


BAD_X: dict[str, tuple[Any, str]] = {
    "1-D": (np.zeros(10), "shape (10,)"),
    "5-D": (np.zeros((2, 1, 4, 4, 1)), "shape (2, 1, 4, 4, 1)"),
    "bool": (np.zeros((4, 3), bool), "bool"),
    "complex": (np.zeros((4, 3), complex), "complex"),
    "strings": (np.array([["ab"], ["cd"]]), "<U2"),
    "2 channels": (np.zeros((4, 2, 8, 8), np.uint8), "1 or 3"),
    "one sample": (np.zeros((1, 5)), "at least 2"),
    "not square": (np.zeros((4, 1, 8, 6), np.uint8), "square"),
    "int16 images": (np.zeros((4, 8, 8), np.int16), "uint8"),
    "NaN vectors": (np.array([[0.0], [np.nan]]), "NaN"),
}


@pytest.mark.parametrize("case", BAD_X)
def test_bad_array_is_one_line(tmp_path: Path, case: str) -> None:
    x, expected = BAD_X[case]
    message = one_line_error("array", path=str(save(tmp_path, x)))
    assert message.startswith("data.path ") and expected in message


BAD_Y: dict[str, tuple[Any, str]] = {
    "wrong length": (np.zeros(3, np.int64), "(5,)"),
    "float": (np.zeros(5), "float64"),
    "negative": (np.array([0, 1, -1, 2, 0]), "negative"),
    "2-D": (np.zeros((5, 1), np.int64), "(5, 1)"),
}


@pytest.mark.parametrize("case", BAD_Y)
def test_bad_labels_are_one_line(tmp_path: Path, case: str) -> None:
    y, expected = BAD_Y[case]
    message = one_line_error("array", path=str(save(tmp_path, np.zeros((5, 2)), "d.npz", y=y)))
    assert "y " in message and expected in message


def test_bad_files_are_one_line(tmp_path: Path) -> None:
    def error(path: Path) -> str:
        return one_line_error("array", path=str(path))

    assert "no such file" in error(tmp_path / "missing.npy")
    (tmp_path / "dir.npy").mkdir()
    assert "directory" in error(tmp_path / "dir.npy")
    (tmp_path / "x.csv").write_text("1,2\n3,4\n")
    assert ".npy or .npz" in error(tmp_path / "x.csv")
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    assert "not a NumPy .npy" in error(tmp_path / "junk.npy")
    assert "not a NumPy .npz" in error(tmp_path / "junk.npz")
    whole = save(tmp_path, np.zeros((100, 8)), "whole.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(whole[: len(whole) // 2])
    zipped = save(tmp_path, np.zeros((100, 8)), "w.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(zipped[:60])
    assert "cannot be read" in error(tmp_path / "cut.npy")
    assert "cannot be read" in error(tmp_path / "cut.npz")
    objects = np.array([{"a": 1}, None], dtype=object)
    np.save(tmp_path / "obj.npy", objects, allow_pickle=True)
    np.savez(tmp_path / "obj.npz", x=objects)
    assert "pickle" in error(tmp_path / "obj.npy") and "pickle" in error(tmp_path / "obj.npz")
    no_x = error(save(tmp_path, None, "nox.npz", images=np.zeros((4, 2)), y=np.zeros(4, int)))
    assert "no array 'x'" in no_x and "images, y" in no_x
    assert "needs the .npy" in one_line_error("array")


def test_array_and_python_sources_are_registered_with_unknown_kind() -> None:
    for name, key in (("array", "path"), ("python", "source")):
        cfg = DataConfig(name=name, **{key: "x"})
        assert cfg.kind.form is None and cfg.kind.labelled is None
        with pytest.raises(ConfigError, match=r"data\.samples"):
            DataConfig(name=name, samples=5)  # a key the source does not read


# ---------------------------------------------------------------- python: a user's function

USER_MODULE = '''
import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

N = 12


def array():
    return np.arange(N * 64, dtype=np.uint8).reshape(N, 8, 8)


def tensor():
    return torch.linspace(-1, 1, N * 4).reshape(N, 4).requires_grad_()


def pair():
    return np.ones((N, 3)), np.arange(N) % 2


def pair_list():
    return [torch.zeros(N, 1, 4, 4), torch.arange(N) % 3]


def unlabelled_pair():
    return np.ones((N, 3)), None


class Items(Dataset):
    def __len__(self):
        return N

    def __getitem__(self, i):
        return torch.full((1, 4, 4), i / N), i % 5


def map_dataset():
    return Items()


class Stream(IterableDataset):
    def __iter__(self):
        return (np.full(3, i, np.int32) for i in range(N))


def iterable_dataset():
    return Stream()


class Ragged(Dataset):
    def __len__(self):
        return 3

    def __getitem__(self, i):
        return torch.zeros(i + 1)


def ragged():
    return Ragged()


class Broken(Dataset):
    def __len__(self):
        return 3

    def __getitem__(self, i):
        raise IndexError("item store is gone")


def broken():
    return Broken()


def boom():
    raise RuntimeError("no data here\\nsecond line")


def a_dict():
    return {"x": 1}


def wrong_shape():
    return np.zeros((N, 2, 5, 5))


NOT_CALLABLE = 5
'''


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module `raygan_user_data` of data functions on sys.path; its name."""
    (tmp_path / "raygan_user_data.py").write_text(USER_MODULE)
    (tmp_path / "raygan_broken_import.py").write_text("import no_such_package_xyz\n")
    (tmp_path / "raygan_bad_syntax.py").write_text("def f(:\n")
    for name in ("raygan_user_data", "raygan_broken_import", "raygan_bad_syntax"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "raygan_user_data"


def load_python(source: str) -> Dataset:
    return load_dataset(DataConfig(name="python", source=source), 0)


def test_python_source_returns_arrays_and_tensors(user_module: str) -> None:
    data = load_python(f"{user_module}:array")
    assert data.store.shape == (12, 1, 8, 8) and data.store.dtype == np.uint8
    data = load_python(f"{user_module}:tensor")
    assert data.store.shape == (12, 4) and data.store.dtype == np.float32
    assert data.labels is None and data.kind.form == "vectors"
    data = load_python(f"{user_module}:pair")
    assert data.kind.labelled and data.num_classes == 2
    data = load_python(f"{user_module}:pair_list")
    assert data.store.shape == (12, 1, 4, 4) and data.num_classes == 3
    assert load_python(f"{user_module}:unlabelled_pair").labels is None


def test_python_source_stacks_torch_datasets(user_module: str, tmp_path: Path) -> None:
    data = load_python(f"{user_module}:map_dataset")
    assert data.store.shape == (12, 1, 4, 4) and data.store.dtype == np.float32
    np.testing.assert_allclose(data.store[7], 7 / 12)
    assert data.labels is not None and list(data.labels[:6]) == [0, 1, 2, 3, 4, 0]
    data = load_python(f"{user_module}:iterable_dataset")
    assert data.store.shape == (12, 3) and float(data.store[11, 0]) == 11.0
    # a file path instead of a module name
    data = load_python(f"{tmp_path / 'raygan_user_data.py'}:pair")
    assert data.store.shape == (12, 3)


PYTHON_ERRORS: dict[str, tuple[str, str]] = {
    "no colon": ("raygan_user_data.array", "package.module:function"),
    "no module": ("no_such_module_xyz:f", "cannot import 'no_such_module_xyz'"),
    "its import fails": ("raygan_broken_import:f", "no_such_package_xyz"),
    "syntax error": ("raygan_bad_syntax:f", "SyntaxError"),
    "no file": ("missing_dir/file.py:f", "no such file"),
    "no attribute": ("raygan_user_data:nothing", "no attribute 'nothing'"),
    "not callable": ("raygan_user_data:NOT_CALLABLE", "not callable"),
    "it raises": ("raygan_user_data:boom", "RuntimeError: no data here"),
    "wrong type": ("raygan_user_data:a_dict", "returned a dict; allowed"),
    "ragged items": ("raygan_user_data:ragged", "one shape"),
    "items raise": ("raygan_user_data:broken", "IndexError: item store is gone"),
    "bad array": ("raygan_user_data:wrong_shape", "1 or 3"),
}


@pytest.mark.parametrize("case", PYTHON_ERRORS)
def test_python_source_errors_are_one_line(user_module: str, case: str) -> None:
    source, expected = PYTHON_ERRORS[case]
    message = one_line_error("python", source=source)
    assert message.startswith("data.source") and expected in message


# ---------------------------------------------------------------- training on an array


def test_npz_vectors_train_on_the_mlp(tmp_path: Path) -> None:
    from raygan.engine.run import train
    from raygan.metrics.registry import FAMILIES

    names = [n for n in ("swd", "energy") if n in FAMILIES]
    if not names:
        pytest.skip("no metric for vectors is registered yet (swd, energy)")
    x = RNG.normal(size=(400, 8)).astype(np.float32)
    path = save(tmp_path, x, "points.npz", y=np.arange(400) % 4)
    config = tiny_toy_config(**{
        "data.name": "array", "data.path": str(path), "data.samples": DataConfig.samples,
        "networks.kind": "mlp", "training.generations": 2, "metrics.names": names,
        "metrics.rank_by": names[0], "mixture.objective": names[0],
    })
    controller = train(config, tmp_path / "run", progress=False)
    assert controller.generation == 2
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    assert all(math.isfinite(final[f"best/{name}"]) for name in names)
