"""The image-folder and Hugging Face sources: tiny PNGs written here, decoded once into a
cached uint8 array, and every bad folder one line that writes nothing."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from raygan.config.model import DataConfig
from raygan.data.dataset import Dataset
from raygan.data.sources import get_source
from raygan.errors import DataError


def _png(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def _folder(root: Path, n: int = 40, size: int = 8, gray: bool = False,
            classes: tuple[str, ...] = ("cats", "dogs"), seed: int = 0) -> list[np.ndarray]:
    """`n` random images in the class sub-folders, in sorted-path order."""
    rng = np.random.default_rng(seed)
    shape = (size, size) if gray else (size, size, 3)
    images = []
    for i in range(n):
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        _png(root / classes[i % len(classes)] / f"{i:03d}.png", pixels)
        images.append(pixels)
    order = sorted(range(n), key=lambda i: (classes[i % len(classes)], f"{i:03d}"))
    return [images[i] for i in order]


def _load(root: Path, tmp_path: Path, **keys: object) -> Dataset:
    cfg = DataConfig(name="folder", root=str(root), cache_dir=str(tmp_path / "cache"),
                     **keys)  # type: ignore[arg-type]
    return get_source("folder").load(cfg, 0)


def _chw(pixels: np.ndarray) -> np.ndarray:
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def test_a_labelled_folder_loads_as_uint8_with_its_classes(tmp_path: Path) -> None:
    images = _folder(tmp_path / "imgs")
    data = _load(tmp_path / "imgs", tmp_path, labels="folders")
    assert data.store.shape == (40, 3, 8, 8) and data.store.dtype == np.uint8
    assert np.array_equal(data.store, np.stack([_chw(p) for p in images]))
    assert data.labels is not None and data.num_classes == 2
    assert data.labels.tolist() == [0] * 20 + [1] * 20  # cats < dogs, in sorted path order
    assert data.kind.form == "images" and data.kind.labelled
    batch = data.take(np.arange(4))
    assert float(batch.min()) >= -1.0 and float(batch.max()) <= 1.0
    unlabelled = _load(tmp_path / "imgs", tmp_path)
    assert unlabelled.labels is None and not unlabelled.kind.labelled


def test_channels_default_from_the_files_and_can_be_forced(tmp_path: Path) -> None:
    gray = _folder(tmp_path / "gray", n=6, gray=True)
    assert _load(tmp_path / "gray", tmp_path).store.shape == (6, 1, 8, 8)
    three = _load(tmp_path / "gray", tmp_path, channels=3).store
    assert three.shape == (6, 3, 8, 8) and np.array_equal(three[0, 2], gray[0])
    _folder(tmp_path / "mixed", n=4, gray=True)
    rgba = np.full((8, 8, 4), 200, dtype=np.uint8)
    _png(tmp_path / "mixed" / "cats" / "rgba.png", rgba)
    assert _load(tmp_path / "mixed", tmp_path).store.shape == (5, 3, 8, 8)
    one = _load(tmp_path / "mixed", tmp_path, channels=1).store
    assert one.shape == (5, 1, 8, 8) and one[2].min() == one[2].max() == 200  # cats/rgba.png


def test_image_size_resizes_the_short_side_and_crops_the_centre(tmp_path: Path) -> None:
    wide = np.zeros((8, 16, 3), dtype=np.uint8)  # 16 wide, 8 high: white bands at both ends
    wide[:, :3] = wide[:, 13:] = 255  # beyond the resampling filter's reach from the centre
    _png(tmp_path / "wide" / "a.png", wide)
    with pytest.raises(DataError, match="crop them square"):
        _load(tmp_path / "wide", tmp_path)
    data = _load(tmp_path / "wide", tmp_path, image_size=4)
    assert data.store.shape == (1, 3, 4, 4)
    assert data.store.max() == 0  # the bands were cropped away, not squashed in
    assert _load(tmp_path / "wide", tmp_path, image_size=16).store.shape == (1, 3, 16, 16)


def test_the_second_load_decodes_nothing_and_a_changed_file_decodes_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from raygan.data.sources import folder

    _folder(tmp_path / "imgs")
    first = _load(tmp_path / "imgs", tmp_path, labels="folders")
    assert "raygan: data: decoded 40 images from" in capsys.readouterr().err
    calls: list[int] = []
    decode = folder.decode_images

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return decode(*args, **kwargs)

    monkeypatch.setattr(folder, "decode_images", counted)
    second = _load(tmp_path / "imgs", tmp_path, labels="folders")
    assert not calls and isinstance(second.store, np.memmap)
    assert np.array_equal(first.store, second.store)
    assert np.array_equal(first.labels, second.labels)  # type: ignore[arg-type]
    assert "decoded" not in capsys.readouterr().err
    changed = tmp_path / "imgs" / "cats" / "000.png"
    _png(changed, np.zeros((8, 8, 3), dtype=np.uint8))
    os.utime(changed, ns=(1, 1))  # a rewrite within the clock tick must still count
    third = _load(tmp_path / "imgs", tmp_path, labels="folders")
    assert calls == [1] and third.store[0].max() == 0
    assert _load(tmp_path / "imgs", tmp_path, image_size=4).store.shape == (40, 3, 4, 4)
    assert calls == [1, 1]  # other settings, another cache entry


def test_unreadable_files_are_skipped_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    _folder(tmp_path / "imgs", n=10)
    (tmp_path / "imgs" / "cats" / "aaa.png").write_bytes(b"not a png")
    good = (tmp_path / "imgs" / "dogs" / "001.png").read_bytes()
    (tmp_path / "imgs" / "dogs" / "zzz.png").write_bytes(good[: len(good) // 2])  # truncated
    data = _load(tmp_path / "imgs", tmp_path, labels="folders")
    assert len(data) == 10 and data.labels is not None and data.labels.tolist().count(0) == 5
    warning = [line for line in capsys.readouterr().err.splitlines() if "skipped" in line]
    assert len(warning) == 1 and "skipped 2 unreadable of 12" in warning[0]
    assert "aaa.png" in warning[0]


def _bad(tmp_path: Path, case: str) -> tuple[Path, dict[str, object]]:
    root = tmp_path / "imgs"
    if case == "missing":
        return root, {}
    if case == "a file":
        root.write_bytes(b"x")
        return root, {}
    if case == "no images":
        (root / "sub").mkdir(parents=True)
        (root / "sub" / "notes.txt").write_text("hi")
        return root, {}
    if case == "none readable":
        for i in range(3):
            _png(root / f"{i}.png", np.zeros((4, 4), dtype=np.uint8)).write_bytes(b"junk")
        return root, {}
    if case == "mixed sizes":
        _png(root / "a.png", np.zeros((8, 8), dtype=np.uint8))
        _png(root / "b.png", np.zeros((6, 6), dtype=np.uint8))
        return root, {}
    if case == "top-level image":
        _folder(root, n=4)
        _png(root / "loose.png", np.zeros((8, 8, 3), dtype=np.uint8))
        return root, {"labels": "folders"}
    _folder(root, n=4, classes=("only",))
    return root, {"labels": "folders"}


BAD_FOLDERS = [
    ("missing", ["data.root", "does not exist"]),
    ("a file", ["data.root", "not a directory", "data.name: array"]),
    ("no images", ["data.root", "no image files", "png, ", "webp"]),
    ("none readable", ["data.root", "no readable image", "0.png", "skipped 3 of 3"]),
    ("mixed sizes", ["data.root", "a.png is 8x8", "b.png is 6x6", "data.image_size"]),
    ("top-level image", ["data.labels", "loose.png", "directly under data.root"]),
    ("one class", ["data.labels", "found 1 class", "only", "at least 2"]),
]


@pytest.mark.parametrize("case,fragments", BAD_FOLDERS, ids=[c for c, _ in BAD_FOLDERS])
def test_a_bad_folder_is_one_line_and_caches_nothing(
    tmp_path: Path, case: str, fragments: list[str],
) -> None:
    root, keys = _bad(tmp_path, case)
    with pytest.raises(DataError) as raised:
        _load(root, tmp_path, **keys)
    message = str(raised.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def _hf_dir(tmp_path: Path, n: int = 12) -> Path:
    from datasets import ClassLabel, Features, Sequence, Value  # type: ignore[import-untyped]
    from datasets import Dataset as HFDataset
    from datasets import Image as HFImage

    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
              for _ in range(n)]
    features = Features({"img": HFImage(), "label": ClassLabel(names=["a", "b", "c"]),
                         "vec": Sequence(Value("float32"), length=4)})
    saved = HFDataset.from_dict({"img": images, "label": [i % 3 for i in range(n)],
                                 "vec": rng.normal(size=(n, 4)).tolist()}, features=features)
    saved.save_to_disk(str(tmp_path / "hf"))
    return tmp_path / "hf"


def _load_hf(tmp_path: Path, **keys: object) -> Dataset:
    cfg = DataConfig(name="hf", cache_dir=str(tmp_path / "cache"), **keys)  # type: ignore[arg-type]
    return get_source("hf").load(cfg, 0)


def test_hf_reads_a_saved_image_dataset_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    datasets = pytest.importorskip("datasets")
    from raygan.data.sources import hf

    path = _hf_dir(tmp_path)
    data = _load_hf(tmp_path, path=str(path), label_column="label")
    assert data.store.shape == (12, 3, 8, 8) and data.store.dtype == np.uint8
    assert data.labels is not None and data.labels.tolist() == [i % 3 for i in range(12)]
    expected = np.asarray(datasets.load_from_disk(str(path))[5]["img"]).transpose(2, 0, 1)
    assert np.array_equal(data.store[5], expected)
    small = _load_hf(tmp_path, path=str(path), image_size=4, channels=1)
    assert small.store.shape == (12, 1, 4, 4) and small.labels is None
    vectors = _load_hf(tmp_path, path=str(path), column="vec", label_column="label")
    assert vectors.store.shape == (12, 4) and vectors.labels is not None
    monkeypatch.setattr(hf, "decode_images", lambda *a, **k: pytest.fail("decoded again"))
    again = _load_hf(tmp_path, path=str(path), label_column="label")
    assert np.array_equal(again.store, data.store)


def test_hf_bad_input_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    path = _hf_dir(tmp_path)
    datasets.DatasetDict({"train": datasets.load_from_disk(str(path))}).save_to_disk(
        str(tmp_path / "dict"))
    cases: list[tuple[dict[str, Any], str]] = [
        ({"path": str(tmp_path / "nowhere")}, "does not exist"),
        ({"path": str(tmp_path / "dict"), "split": "test"}, "data.split: 'test'"),
        ({"path": str(path), "column": "pixels"}, "data.column: 'pixels' is not a column"),
        ({"path": str(path), "label_column": "img"}, "ClassLabel or an integer column"),
        ({"path": str(path), "column": "vec", "image_size": 4}, "applies to an image column only"),
    ]
    for keys, fragment in cases:
        with pytest.raises(DataError, match=fragment) as raised:
            _load_hf(tmp_path, **keys)
        assert "\n" not in str(raised.value)
    assert _load_hf(tmp_path, path=str(tmp_path / "dict")).store.shape == (12, 3, 8, 8)
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(DataError, match=r"pip install raygan\[hf\]"):
        _load_hf(tmp_path, path=str(path))
