"""Image loaders, checked on tiny fake files in torchvision's exact on-disk formats."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_fake_cifar10
from image_sets import image_data
from PIL import Image

from raygan.data.images import (
    IMAGE_DATASETS,
    DatasetMissingError,
    ImageData,
    check_image_dataset,
)


def _write_idx(path: Path, array: np.ndarray) -> None:
    # idx header: two zero bytes, dtype code 0x08 (ubyte), ndim, then big-endian int32 dims.
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _write_mnist(root: Path, folder: str, n_train: int, n_test: int) -> dict[str, np.ndarray]:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[0] = 0  # a known all-black image maps to exactly -1
        images[1] = 255  # and an all-white one to exactly +1
        labels = (np.arange(n) % 10).astype(np.uint8)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        arrays[prefix] = labels
    return arrays


@pytest.mark.parametrize(
    ("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")]
)
def test_mnist_like_loaders_read_idx_files(tmp_path: Path, name: str, folder: str) -> None:
    labels = _write_mnist(tmp_path, folder, n_train=12, n_test=7)
    data = image_data(name, root=tmp_path)
    assert data.shape == (1, 28, 28) and len(data) == 12
    assert data.images.dtype == torch.float32 and data.labels.dtype == torch.int64
    assert torch.equal(data.images[0], torch.full((1, 28, 28), -1.0))
    assert torch.equal(data.images[1], torch.full((1, 28, 28), 1.0))
    assert data.images.min() >= -1.0 and data.images.max() <= 1.0
    assert data.labels.tolist() == labels["train"].tolist()
    assert data.name == name and data.num_classes == 10

    test = image_data(name, root=tmp_path, train=False, image_size=32)
    assert test.shape == (1, 32, 32) and len(test) == 7
    assert test.labels.tolist() == labels["t10k"].tolist()
    assert test.images.min() >= -1.0 and test.images.max() <= 1.0


@pytest.mark.usefixtures("skip_md5")
def test_cifar10_loader_reads_pickled_batches(tmp_path: Path) -> None:
    write_fake_cifar10(tmp_path, per_batch=3)
    data = image_data("cifar10", root=tmp_path)
    assert data.shape == (3, 32, 32) and len(data) == 15
    assert data.images.min() >= -1.0 and data.images.max() <= 1.0
    # CHW layout must be restored from torchvision's HWC array: channel 0, pixel (0, 0).
    expected = torch.tensor([2.0 * k / 255.0 - 1.0 for k in range(5) for _ in range(3)])
    assert torch.allclose(data.images[:, 0, 0, 0], expected)
    assert data.labels.tolist() == [(k + j) % 10 for k in range(5) for j in range(3)]

    test = image_data("cifar10", root=tmp_path, train=False, image_size=64)
    assert test.shape == (3, 64, 64) and len(test) == 3
    assert test.labels.tolist() == [5, 6, 7]


_ATTRS = ["5_o_Clock_Shadow", "Arched_Eyebrows"] + [f"attr{i}" for i in range(38)]


def _write_celeba(root: Path, partitions: list[int]) -> None:
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    names = [f"{i + 1:06d}.jpg" for i in range(len(partitions))]
    for i, name in enumerate(names):
        # 178x218 like the aligned CelebA images; brightness encodes the index.
        Image.new("RGB", (178, 218), color=(40 * i, 100, 200)).save(
            folder / "img_align_celeba" / name
        )
    lines = {
        "list_eval_partition.txt": [f"{n} {p}" for n, p in zip(names, partitions, strict=True)],
        "identity_CelebA.txt": [f"{n} {i + 1}" for i, n in enumerate(names)],
        "list_bbox_celeba.txt": [str(len(names)), "image_id x_1 y_1 width height"]
        + [f"{n} 95 71 226 313" for n in names],
        "list_landmarks_align_celeba.txt": [
            str(len(names)),
            "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
            "leftmouth_x leftmouth_y rightmouth_x rightmouth_y",
        ]
        + [f"{n} 69 109 106 113 77 142 73 152 108 154" for n in names],
        "list_attr_celeba.txt": [str(len(names)), " ".join(_ATTRS)]
        + [f"{n} " + " ".join(["-1", "1"] * 20) for n in names],
    }
    for filename, rows in lines.items():
        (folder / filename).write_text("\n".join(rows) + "\n")


@pytest.mark.usefixtures("skip_md5")
def test_celeba_loader_crops_resizes_and_splits(tmp_path: Path) -> None:
    _write_celeba(tmp_path, partitions=[0, 0, 0, 1, 2, 2])
    data = image_data("celeba", root=tmp_path)
    assert data.shape == (3, 64, 64) and len(data) == 3
    assert data.labels.tolist() == [-1, -1, -1] and data.num_classes == 0
    assert data.images.min() >= -1.0 and data.images.max() <= 1.0
    # Uniform images stay uniform through crop + resize (JPEG may shift values slightly).
    red = data.images[:, 0].mean(dim=(1, 2))
    expected = torch.tensor([2.0 * 40 * i / 255.0 - 1.0 for i in range(3)])
    assert torch.allclose(red, expected, atol=0.05)

    test = image_data("celeba", root=tmp_path, train=False, image_size=32)
    assert test.shape == (3, 32, 32) and len(test) == 2


@pytest.mark.usefixtures("skip_md5")
def test_celeba_is_decoded_once_then_read_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import raygan.data.images as images
    from raygan.config.model import DataConfig
    from raygan.data import load_dataset

    _write_celeba(tmp_path, partitions=[0, 0, 0, 1, 2, 2])
    cfg = DataConfig(name="celeba", root=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    first = load_dataset(cfg, 0)
    assert first.store.dtype == np.uint8 and first.store.shape == (3, 3, 64, 64)
    assert first.kind.natural and first.labels is None

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded CelebA again")

    monkeypatch.setattr(images, "_load_celeba", no_decoding)
    again = load_dataset(cfg, 0)
    assert isinstance(again.store, np.memmap)
    assert np.array_equal(np.asarray(again.store), np.asarray(first.store))


def test_mnist5k_is_embedded_and_scaled() -> None:
    data = image_data("mnist5k", root="/nonexistent")
    assert data.shape == (1, 28, 28) and len(data) == 5000
    assert float(data.images.min()) == -1.0 and float(data.images.max()) == 1.0
    assert torch.bincount(data.labels).tolist() == [500] * 10
    resized = image_data("mnist5k", image_size=32)
    assert resized.shape == (1, 32, 32)
    assert resized.images.min() >= -1.0 and resized.images.max() <= 1.0


def test_digits8x8_is_embedded_and_scaled() -> None:
    data = image_data("digits8x8")
    assert data.shape == (1, 8, 8) and len(data) == 1797
    assert float(data.images.min()) == -1.0 and float(data.images.max()) == 1.0
    assert sorted(set(data.labels.tolist())) == list(range(10))


@pytest.mark.parametrize(
    ("name", "subdir"),
    [
        ("mnist", "MNIST/raw"),
        ("fashion_mnist", "FashionMNIST/raw"),
        ("cifar10", "cifar-10-batches-py"),
        ("celeba", "celeba"),
    ],
)
def test_missing_files_raise_helpful_error(tmp_path: Path, name: str, subdir: str) -> None:
    with pytest.raises(DatasetMissingError) as info:
        image_data(name, root=tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path.resolve() / subdir) in message
    assert "data.download=true" in message
    assert "http" in message
    assert isinstance(info.value, FileNotFoundError)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown image data set"):
        image_data("imagenet")
    with pytest.raises(ValueError, match="image_size"):
        image_data("digits8x8", image_size=0)
    assert "mnist5k" in IMAGE_DATASETS


def test_image_data_validates_its_fields() -> None:
    with pytest.raises(ValueError, match="shape"):
        ImageData(torch.zeros(2, 8, 8), torch.zeros(2, dtype=torch.int64), "x", 10)
    with pytest.raises(ValueError, match="labels"):
        ImageData(torch.zeros(2, 1, 8, 8), torch.zeros(3, dtype=torch.int64), "x", 10)


@pytest.mark.usefixtures("skip_md5")
def test_check_finds_missing_files_without_decoding_and_passes_present_ones(
    tmp_path: Path,
) -> None:
    with pytest.raises(DatasetMissingError, match="CIFAR-10"):
        check_image_dataset("cifar10", tmp_path, download=False)
    write_fake_cifar10(tmp_path, per_batch=3)
    check_image_dataset("cifar10", tmp_path, download=False)
    check_image_dataset("mnist5k", tmp_path / "nowhere", download=False)  # embedded


def test_a_missing_data_set_stops_raygan_train_before_tune_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import ray

    from raygan.cli import main

    config = tmp_path / "c.yaml"
    config.write_text(
        "name: nodata\n"
        f"data: {{name: cifar10, root: {tmp_path / 'data'}}}\n"
        "networks: {kind: dcgan}\n"
        "grid: {rows: 1, cols: 1}\n"
        "metrics: {names: [tvd], rank_by: tvd}\n"  # no Inception weights needed
        "mixture: {objective: tvd}\n"
    )
    was_running = ray.is_initialized()
    code = main(["train", str(config), "--storage", str(tmp_path / "results"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) <= 3 and "CIFAR-10 data set not found" in err[-1]
    assert not (tmp_path / "results" / "nodata").exists()  # Tune never started
    assert ray.is_initialized() == was_running


@pytest.mark.parametrize("name", ["mnist5k", "digits8x8"])
def test_image_shape_is_the_loaded_shape_without_loading(name: str) -> None:
    from raygan.data.images import image_shape

    assert image_shape(name) == tuple(image_data(name).images.shape[1:])
    assert image_shape(name, 16) == (1, 16, 16)
    with pytest.raises(ValueError, match="unknown image data set 'ring8'"):
        image_shape("ring8")
