"""Image files to one uint8 array, decoded once and cached: the part the folder and Hugging Face
sources share.

`decode_images` reads every image through an `open_image(i)` callback (a file path, bytes in an
Arrow column, ...), so the sources differ only in where the bytes come from. It first reads each
image's header (mode and size: cheap) to choose the channels and check the sizes, then decodes
on a thread pool into one preallocated (N, C, S, S) array: Pillow releases the GIL while it
inflates, decodes and resamples, and threads share the output array (a process pool would copy
every image back through a pipe). `cached` keeps the result under `data.cache_dir`, keyed by a
dict of everything that changes the pixels, and memory-maps it on every later load.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from raygan.atomic import atomic_write
from raygan.errors import DataError

if TYPE_CHECKING:
    from PIL import Image

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".bmp", ".gif", ".jpeg", ".jpg", ".png", ".pbm", ".pgm", ".ppm", ".pnm", ".tif", ".tiff",
    ".webp",
)
"""File extensions read as images (matched case-insensitively)."""

GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
"""Pillow modes counted as grayscale when `data.channels` is not set."""

CACHE_VERSION = "raygan-decode-1"
"""Part of every cache key: bump it when decoding changes, so old caches are not read."""

_CHUNK = 64  # images per pool task: small images cost more in task overhead than in decoding


@dataclass(frozen=True)
class Decoded:
    """The decoded images of a source.

    Attributes:
        pixels: (len(kept), C, H, W) uint8.
        kept: indices (into the items given to `decode_images`) of the images in `pixels`.
    """

    pixels: np.ndarray
    kept: np.ndarray


def to_chw(image: Image.Image, image_size: int | None, channels: int) -> np.ndarray:
    """One image as a uint8 (channels, H, W) array.

    Sixteen-bit grayscale is scaled to 8 bits, palette and alpha images become RGB (alpha is
    dropped), colour becomes luma for `channels` 1. With `image_size` the centre square of side
    min(W, H) is resized (bilinear, antialiased when shrinking) to image_size x image_size,
    which is resizing the short side and centre-cropping in one resampling.
    """
    from PIL import Image

    if image_size is not None:
        # JPEG only: decode at a reduced DCT scale that still leaves the short side >= image_size
        image.draft(image.mode, (image_size, image_size))
    if image.mode.startswith("I"):
        wide = np.asarray(image, dtype=np.float32) / 257.0  # 16-bit range onto 0..255
        image = Image.fromarray(np.clip(np.rint(wide), 0, 255).astype(np.uint8), "L")
    elif image.mode == "P":
        image = image.convert("RGBA")  # palette transparency: converting straight warns
    target = "L" if channels == 1 else "RGB"
    if image.mode != target:
        image = image.convert(target)
    if image_size is not None and image.size != (image_size, image_size):
        width, height = image.size
        side = min(width, height)
        left, top = (width - side) / 2, (height - side) / 2
        image = image.resize((image_size, image_size), Image.Resampling.BILINEAR,
                             box=(left, top, left + side, top + side))
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _problem(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _headers(count: int, open_image: Callable[[int], Image.Image], workers: int
             ) -> list[tuple[str, tuple[int, int]] | str]:
    def headers(start: int) -> list[tuple[str, tuple[int, int]] | str]:
        found: list[tuple[str, tuple[int, int]] | str] = []
        for i in range(start, min(start + _CHUNK, count)):
            try:
                with open_image(i) as image:
                    found.append((image.mode, image.size))
            except Exception as exc:  # noqa: BLE001  (any file can be broken in any way)
                found.append(_problem(exc))
        return found

    with ThreadPoolExecutor(workers) as pool:
        return [h for chunk in pool.map(headers, range(0, count, _CHUNK)) for h in chunk]


def _check_sizes(sizes: dict[tuple[int, int], str], key: str, where: str) -> int:
    """The one square side all images share (without `data.image_size`)."""
    (first, first_name), *others = sizes.items()
    if others:
        (size, name) = others[0]
        raise DataError(
            f"{key}: images in {where} differ in size ({first_name} is {first[0]}x{first[1]}, "
            f"{name} is {size[0]}x{size[1]}); set data.image_size to resize and centre-crop "
            "them all to one square size")
    if first[0] != first[1]:
        raise DataError(
            f"{key}: images in {where} are {first[0]}x{first[1]}, not square; the networks "
            "need square images: set data.image_size to crop them square")
    return first[0]


def decode_images(count: int, open_image: Callable[[int], Image.Image],
                  name: Callable[[int], str], image_size: int | None, channels: int | None,
                  key: str, where: str) -> Decoded:
    """Decode `count` images into one uint8 (N, C, S, S) array, skipping unreadable ones.

    Args:
        count: number of images.
        open_image: opens image `i` lazily (`PIL.Image.open`); it is called twice per image,
            for its header and to decode it, possibly from several threads.
        name: image `i`'s name in messages (a relative path, a row number).
        image_size: the square side to resize and centre-crop to; None keeps the images' own
            size, which must then be one square size.
        channels: 1 or 3; None for 1 when every image is grayscale, else 3.
        key: the `data.*` key errors name.
        where: where the images are, for messages (a folder, a column of a data set).

    Raises:
        DataError: no image is readable, or (without `image_size`) the images differ in size
            or are not square.
    """
    from tqdm import tqdm

    workers = min(8, os.cpu_count() or 1)
    headers = _headers(count, open_image, workers)
    found = {i: h for i, h in enumerate(headers) if not isinstance(h, str)}
    failed = {i: h for i, h in enumerate(headers) if isinstance(h, str)}
    readable = list(found)
    if not readable:
        first = min(failed)
        raise DataError(f"{key}: no readable image in {where}: {name(first)} cannot be read "
                        f"({failed[first]}); skipped {count} of {count} files")
    if channels is None:
        channels = 1 if all(mode in GRAY_MODES for mode, _ in found.values()) else 3
    if image_size is None:
        sizes: dict[tuple[int, int], str] = {}
        for i, (_, size) in found.items():
            sizes.setdefault(size, name(i))
        side = _check_sizes(sizes, key, where)
    else:
        side = image_size
    pixels = np.empty((len(readable), channels, side, side), dtype=np.uint8)
    ok = np.ones(len(readable), dtype=bool)
    bar = tqdm(total=len(readable), desc=f"raygan: decoding {where}", unit="img",
               file=sys.stderr, disable=None, leave=False)

    def decode(start: int) -> dict[int, str]:
        errors: dict[int, str] = {}
        for j in range(start, min(start + _CHUNK, len(readable))):
            try:
                with open_image(readable[j]) as image:
                    pixels[j] = to_chw(image, image_size, channels)
            except Exception as exc:  # noqa: BLE001  (a header can be fine, the data truncated)
                ok[j] = False
                errors[readable[j]] = _problem(exc)
        bar.update(min(_CHUNK, len(readable) - start))
        return errors

    with bar, ThreadPoolExecutor(workers) as pool:
        for errors in pool.map(decode, range(0, len(readable), _CHUNK)):
            failed.update(errors)
    kept = np.asarray(readable, dtype=np.int64)[ok]
    if not len(kept):
        first = min(failed)
        raise DataError(f"{key}: no readable image in {where}: {name(first)} cannot be read "
                        f"({failed[first]}); skipped {count} of {count} files")
    if failed:
        first = min(failed)
        print(f"raygan: data: skipped {len(failed)} unreadable of {count} files in {where}; "
              f"first: {name(first)} ({failed[first]})", file=sys.stderr, flush=True)
    return Decoded(pixels if ok.all() else pixels[ok], kept)


def cache_key(parts: dict[str, Any]) -> str:
    """A sha256 hex digest of `parts` (JSON-serialisable) and `CACHE_VERSION`."""
    text = json.dumps({"version": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_cache(pixels_path: Path, extras_path: Path
                ) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    # the extras are written last, so their presence says the pixels are complete
    if not extras_path.is_file() or not pixels_path.is_file():
        return None
    try:
        pixels = np.load(pixels_path, mmap_mode="r")
        with np.load(extras_path, allow_pickle=False) as saved:
            extras = {k: np.asarray(saved[k]) for k in saved.files}
    except (OSError, ValueError, EOFError):
        return None  # unreadable (another version, a damaged disk): decode again
    return pixels, extras


def cached(cache_dir: str | Path, prefix: str, key: dict[str, Any],
           build: Callable[[], tuple[np.ndarray, dict[str, np.ndarray]]], where: str
           ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """`build()`'s (pixels, extras), decoded once and memory-mapped on later calls.

    The pixels are saved as `<cache_dir>/<prefix>-<digest>.npy` and the extras (labels, class
    names: small arrays) beside them as `.npz`, both written atomically, so an interrupted
    decode leaves no cache behind. A cache that cannot be written costs a warning line, not
    the run.

    Args:
        cache_dir: folder of the cache files (`~` expanded).
        prefix: the source's name, leading the file names.
        key: everything the pixels depend on (see `cache_key`).
        build: decodes; it may raise `DataError`, and then nothing is written.
        where: where the images come from, for the summary line on stderr.
    """
    stem = f"{prefix}-{cache_key(key)[:32]}"
    folder = Path(cache_dir).expanduser()
    pixels_path, extras_path = folder / f"{stem}.npy", folder / f"{stem}.npz"
    hit = _read_cache(pixels_path, extras_path)
    if hit is not None:
        return hit
    start = time.perf_counter()
    pixels, extras = build()
    seconds = time.perf_counter() - start
    try:
        atomic_write(pixels_path, lambda handle: np.save(handle, pixels))
        atomic_write(extras_path, lambda handle: np.savez(handle, allow_pickle=False, **extras))
    except OSError as exc:
        where_to = f"not cached: {exc.filename or folder}: {exc.strerror or exc}"
    else:
        where_to = f"cached at {pixels_path}"
        pixels = np.load(pixels_path, mmap_mode="r")  # the page cache, shared by processes
    print(f"raygan: data: decoded {len(pixels)} images from {where} in {seconds:.1f} s "
          f"({where_to})", file=sys.stderr, flush=True)
    return pixels, extras
