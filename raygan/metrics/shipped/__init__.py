"""The reference classifiers shipped with raygan, and their real-data statistics.

A metrics classifier trained on first use reaches a slightly different accuracy on every
machine (other CPU kernels, thread counts and torch versions round differently), and every FID
on its features moves with it. For the built-in labelled sets (`mnist5k`, `digits8x8`) the
classifiers of their default metrics are therefore trained once by
`scripts/ship_classifiers.py` and shipped in this folder: safetensors weights, the real-data
statistics (`real-stats-*.npz`) at the default evaluation size, and `manifest.json`, which
records for each classifier its data set, architecture, settings, `CLASSIFIER_VERSION`, data
fingerprint, cache key, held-out accuracy, floors and the sha256 of every file.

`raygan.metrics.classifier.load_or_train_classifier` and `raygan.metrics.image.FeatureScorer`
look here before their cache: a classifier whose cache key (architecture, data fingerprint,
settings, version) equals a recorded one is loaded from here, never trained. A file whose
sha256 differs from the manifest's is refused with `ShippedFileError` (rather than silently
retrained, which would change the FID scale unnoticed). The lookups read `SHIPPED_DIR` when
called, so a test or the shipping script can point them at another folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raygan.errors import ShippedFileError

if TYPE_CHECKING:
    from raygan.metrics.cnn import Classifier

SHIPPED_DIR: Path = Path(__file__).parent
"""The folder the lookups read (`manifest.json` and the files it lists)."""
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


def read_manifest(folder: Path | None = None) -> dict[str, Any]:
    """The manifest of `folder` (default `SHIPPED_DIR`); an empty one when there is none.

    Raises:
        ShippedFileError: naming the manifest, when it is not valid JSON.
    """
    path = (SHIPPED_DIR if folder is None else folder) / MANIFEST
    if not path.is_file():
        return {"format": MANIFEST_FORMAT, "classifiers": []}
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ShippedFileError(f"{path}: not valid JSON ({exc}), so the shipped manifest is "
                               "damaged; reinstall raygan") from None
    return manifest


def shipped_entry(cache_key: str) -> dict[str, Any] | None:
    """The manifest entry of the classifier with `cache_key`, or None when none is shipped.

    The key hashes the architecture, the data fingerprint (which includes the data set's
    name), the training settings and `CLASSIFIER_VERSION`, so an equal key means all match.
    """
    for entry in read_manifest()["classifiers"]:
        if entry["cache_key"] == cache_key:
            return dict(entry)
    return None


def sha256_of(data: bytes) -> str:
    """Hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def _verified_bytes(name: str, expected: str) -> bytes:
    """The bytes of shipped file `name`, after checking them against the recorded sha256.

    Raises:
        ShippedFileError: naming the file, when it is missing or its sha256 differs.
    """
    path = SHIPPED_DIR / name
    if not path.is_file():
        raise ShippedFileError(f"{path}: shipped file listed in {MANIFEST} is missing; "
                               "reinstall raygan")
    data = path.read_bytes()
    actual = sha256_of(data)
    if actual != expected:
        raise ShippedFileError(
            f"{path}: sha256 {actual[:16]}... differs from the {expected[:16]}... recorded in "
            f"{MANIFEST}, so the shipped file is damaged or was changed; reinstall raygan"
        )
    return data


def load_shipped_classifier(cache_key: str, device: str = "cpu") -> tuple[Classifier, float] | None:
    """The shipped classifier with `cache_key` (eval mode, on `device`) and its recorded
    held-out accuracy, or None when none is shipped for that key.

    Raises:
        ShippedFileError: when its weight file is missing or fails the sha256 check.
    """
    entry = shipped_entry(cache_key)
    if entry is None:
        return None
    from safetensors.torch import load

    from raygan.metrics.cnn import ARCHITECTURES

    state = load(_verified_bytes(entry["file"], entry["sha256"]))
    model = ARCHITECTURES[entry["arch"]](**entry["arch_args"])
    model.load_state_dict(state)
    return model.to(device).eval(), float(entry["accuracy"])


def shipped_stats(name: str) -> Path | None:
    """The verified path of the shipped real-statistics file `name` (the file name the cache
    would use, `real-stats-<data>-<digest>.npz`), or None when none is shipped by that name.

    Raises:
        ShippedFileError: when the file is missing or fails the sha256 check.
    """
    for entry in read_manifest()["classifiers"]:
        for stats in entry["real_stats"]:
            if stats["file"] == name:
                _verified_bytes(name, stats["sha256"])
                return SHIPPED_DIR / name
    return None
