"""Python objects handed to `raygan.train` / `raygan.tune` where a config holds a name.

A notebook's networks and in-memory data have no import path, yet the config must stay plain
YAML (it is saved, compared and reloaded). So the config names such an object by a token in
this module, `"raygan.objects:Generator_3f2a9c1b"`, which `raygan.imports.resolve_callable`
reads like any `"module:name"`: the module's `__getattr__` looks the token up.

Where a token is found:

- this process's registry: filled by `register` when the object is passed, and by `put` when
  it is passed again in another process (`raygan.load(path, generator=...)`);
- Ray's key-value store: `ship` puts networks there, cloudpickled, before any Ray worker
  builds them; a worker reads each one the first time it needs it. Classes of `__main__` or
  defined inside a function, and those of modules outside site-packages, are pickled by value
  (`cloudpickle.register_pickle_by_value`), so the workers need not import them.

Data is never shipped: the driver puts the loaded set in Ray's object store, as it does for
every source. A token that is found nowhere is a one-line `ConfigError` saying to pass the
object again.

`with_objects` is how `raygan.train`'s arguments enter a config (`data` as `data.name: python`
with a token for `data.source`, checked at once by `as_dataset`; networks as `networks.kind:
custom`), `reattach` registers them again under a saved config's tokens, and `shipped` keeps
the networks in Ray's store while a run's workers may need them.
"""

from __future__ import annotations

import re
import secrets
import sys
import sysconfig
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from raygan.errors import ConfigError, DataError
from raygan.imports import one_line

if TYPE_CHECKING:
    from raygan.config import RunConfig
    from raygan.data import Dataset

MODULE = __name__
"""The module part of every token spec (`"raygan.objects:<token>"`)."""
DATA_TYPES = ("a numpy array or torch tensor of samples, an (x, y) pair of samples and integer "
              "labels, a raygan.data.Dataset or a torch.utils.data.Dataset")
"""What `data=` may be, for error messages."""
_TOKEN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*_[0-9a-f]{8}$")
_KV_NAMESPACE = b"raygan"
_SIDES = ("generator", "discriminator")
_WORKER_PROBLEM = re.compile(  # a Ray worker's error that is ours (see `_fetch`, `__getattr__`)
    r"(raygan\.objects[.:]\w+(?: names a Python object|: the object passed)[^\n]*)")
_objects: dict[str, Any] = {}


def _kv_key(token: str) -> bytes:
    return f"objects/{token}".encode()


def token_of(spec: str) -> str | None:
    """The token of a spec that names an object of this module (`"raygan.objects:<token>"`),
    else None (an import path)."""
    module, _, token = spec.strip().rpartition(":")
    return token if module == MODULE and _TOKEN.match(token) else None


def register(obj: Any, stem: str) -> str:
    """Keep `obj` in this process under a new token.

    Args:
        obj: the object (a class, a factory, a zero-argument function returning data).
        stem: what the token starts with, for a readable config (a class's name); characters
            other than letters, digits and `_` are dropped.

    Returns:
        The spec to put in the config, `"raygan.objects:<stem>_<8 hex digits>"`.
    """
    clean = re.sub(r"\W", "", stem)
    clean = clean if clean[:1].isalpha() else f"obj{clean}"
    token = f"{clean}_{secrets.token_hex(4)}"
    _objects[token] = obj
    return f"{MODULE}:{token}"


def put(spec: str, obj: Any) -> None:
    """Keep `obj` in this process under the token of `spec` (a run's config names it).

    Raises:
        ValueError: when `spec` names no object of this module.
    """
    token = token_of(spec)
    if token is None:
        raise ValueError(f"{spec!r} is not a {MODULE} token")
    _objects[token] = obj


def _outside_site_packages(module: ModuleType) -> bool:
    """Whether a module is a user's file (not the standard library, an installed package or
    raygan), which a Ray worker on another node may not import."""
    file = getattr(module, "__file__", None)
    if not file or module.__name__.split(".")[0] == "raygan":
        return False
    path = Path(file).resolve()
    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return not any(path.is_relative_to(Path(root).resolve()) for root in roots)


@contextmanager
def _by_value(obj: Any) -> Iterator[None]:
    """Cloudpickle `obj`'s module by value while inside (see the module docstring)."""
    from ray import cloudpickle

    target = getattr(obj, "func", obj)  # a functools.partial: its function's module
    module = sys.modules.get(getattr(target, "__module__", None) or "")
    added = (module is not None and module.__name__ != "__main__"
             and _outside_site_packages(module)
             and module.__name__ not in cloudpickle.list_registry_pickle_by_value())
    if added:
        assert module is not None
        cloudpickle.register_pickle_by_value(module)
    try:
        yield
    finally:
        if added:
            assert module is not None
            cloudpickle.unregister_pickle_by_value(module)


def ship(specs: Iterable[str]) -> list[str]:
    """Put the objects that `specs` name in Ray's key-value store, for the Ray workers
    (Ray must be initialised). Import paths among `specs` are skipped.

    Args:
        specs: config values that may be tokens.

    Returns:
        The tokens shipped (give them to `unship` when the run is over).

    Raises:
        ConfigError: one line, when an object cannot be pickled.
    """
    shipped = []
    for spec in specs:
        token = token_of(spec)
        if token is None or token not in _objects:
            continue
        obj = _objects[token]
        _put(token, obj, [obj], f"{getattr(obj, '__qualname__', obj)!r}")
        shipped.append(token)
    return shipped


def _put(token: str, obj: Any, by_value: Iterable[Any], what: str) -> None:
    """Pickle `obj` (the modules of `by_value` by value, `_by_value`) into Ray's key-value
    store under `token`.

    Raises:
        ConfigError: one line naming `what`, when `obj` cannot be pickled.
    """
    from contextlib import ExitStack

    from ray import cloudpickle
    from ray.experimental import internal_kv

    with ExitStack() as stack:
        for part in by_value:
            stack.enter_context(_by_value(part))
        try:
            payload = cloudpickle.dumps(obj)
        except Exception as exc:  # pickling runs the user's code (__reduce__, closures)
            raise ConfigError(f"{what}: cannot be pickled for the Ray workers "
                              f"({one_line(exc)})") from exc
    internal_kv._internal_kv_put(_kv_key(token), payload, namespace=_KV_NAMESPACE)


def unship(tokens: Iterable[str]) -> None:
    """Take shipped objects out of Ray's key-value store (nothing when Ray is down)."""
    import ray
    from ray.experimental import internal_kv

    if not ray.is_initialized():
        return
    for token in tokens:
        internal_kv._internal_kv_del(_kv_key(token), namespace=_KV_NAMESPACE)


def _fetch(token: str) -> Any:
    """The shipped object `token`, unpickled here; None when Ray is down or it is not there."""
    if "ray" not in sys.modules:  # a process without Ray has nothing shipped to it
        return None
    import pickle

    import ray
    from ray.experimental import internal_kv

    if not (ray.is_initialized() and internal_kv._internal_kv_initialized()):
        return None
    payload = internal_kv._internal_kv_get(_kv_key(token), namespace=_KV_NAMESPACE)
    if payload is None:
        return None
    try:
        return pickle.loads(payload)  # noqa: S301  (what this run's driver put there)
    except Exception as exc:  # a module the pickle refers to by name does not import here
        raise ConfigError(f"{MODULE}.{token}: the object passed to raygan.train cannot be "
                          f"unpickled on this Ray worker ({one_line(exc)}); define it in the "
                          "script or notebook, or make its module importable on the workers "
                          "(runtime_env={'py_modules': [...]})") from exc




def as_dataset(data: Any, what: str = "data argument") -> Dataset:
    """`data` held as raygan holds a training set, checked as `data.name: array` checks files
    (`raygan.data.sources.array`).

    Args:
        data: see `DATA_TYPES`.
        what: how messages name it.

    Raises:
        DataError: one line naming what was found and what is allowed.
    """
    import numpy as np
    import torch
    from torch.utils.data import Dataset as TorchDataset

    from raygan.data import Dataset
    from raygan.data.sources.array import dataset_from_arrays
    from raygan.data.sources.python import arrays_from

    if isinstance(data, Dataset):
        return data
    arrays = (np.ndarray, torch.Tensor)
    if isinstance(data, (tuple, list)) and not (
            len(data) == 2 and isinstance(data[0], arrays)):
        raise DataError(f"{what}: a {type(data).__name__} of {len(data)} item(s) is not an "
                        "(x, y) pair with x a numpy array or torch tensor; allowed: "
                        + DATA_TYPES)
    if not isinstance(data, (*arrays, tuple, list, TorchDataset)):
        raise DataError(f"{what}: a {type(data).__name__} is not training data; allowed: "
                        + DATA_TYPES)
    x, y = arrays_from(data, what)
    return dataset_from_arrays("python", x, y, what)


def serve_shared(spec: str, ref: Any) -> None:
    """Let the data token `spec` resolve to the set the driver shared (`ref`, its object-store
    reference): in a Tune trial, all there is of data passed from Python (the figures of
    vector data read it again by its config). An import path is left alone."""
    token = token_of(spec)
    if token is not None and token not in _objects:
        import ray

        _objects[token] = lambda: ray.get(ref)


def _returning(dataset: Dataset) -> Callable[[], Dataset]:
    """A `data.source` function (`data.name: python`) returning `dataset`."""
    return lambda: dataset


def network_spec(obj: Any, side: str) -> str:
    """The config value for a network passed as `obj`: an import path as it is, a class or
    factory registered under a token."""
    from torch import nn

    if isinstance(obj, str):
        return obj
    if isinstance(obj, nn.Module):
        raise ConfigError(f"{side}: pass the network's class or a factory, not a built "
                          f"{type(obj).__name__}: every cell builds its own, with weights "
                          "drawn from its seed")
    if not callable(obj):
        raise ConfigError(f"{side}: a {type(obj).__name__} is not a class or a factory "
                          "returning an nn.Module")
    name = getattr(obj, "__name__", None) or getattr(getattr(obj, "func", None), "__name__", "")
    return register(obj, name or side)


def with_objects(config: RunConfig, *, data: Any = None, generator: Any = None,
                 discriminator: Any = None) -> RunConfig:
    """`config` training on `data` with the networks `generator` and `discriminator` (see
    the module docstring); None leaves that part of the config as it is.

    Raises:
        DataError: `data` cannot be used (one line).
        ConfigError: a network that is not a class, factory or import path, or one of the two
            given where the config does not name the other (`networks.kind: custom`).
    """
    overrides: dict[str, Any] = {}
    if data is not None:
        spec = register(_returning(as_dataset(data)), "data")
        overrides["data"] = {"name": "python", "source": spec, "sharding": config.data.sharding}
    given = {side: obj for side, obj in zip(_SIDES, (generator, discriminator))
             if obj is not None}
    if given:
        for side in _SIDES:
            if side not in given and config.networks.kind != "custom":
                raise ConfigError(f"{side}: pass it too (or set networks.kind: custom and "
                                  f"networks.{side} in the config); a custom "
                                  f"{', '.join(given)} needs its own {side}")
        overrides["networks.kind"] = "custom"
        overrides.update({f"networks.{s}": network_spec(o, s) for s, o in given.items()})
    return config.replace(**overrides) if overrides else config


def reattach(config: RunConfig, data: Any, generator: Any, discriminator: Any) -> None:
    """Register objects passed again under the tokens `config` recorded for them.

    Raises:
        ConfigError: an object given for a part the config names by an import path or file.
    """
    for key, obj in (("data.source", data), ("networks.generator", generator),
                     ("networks.discriminator", discriminator)):
        if obj is None:
            continue
        section, name = key.split(".")
        spec = getattr(getattr(config, section), name)
        arg = "data" if section == "data" else name
        if token_of(spec) is None:
            raise ConfigError(f"{arg}: this run's {key} is {spec!r}, not an object passed "
                              f"from Python; leave {arg}= out")
        if section == "data":
            put(spec, _returning(as_dataset(obj)))
        elif isinstance(obj, str) or not callable(obj):
            raise ConfigError(f"{arg}: pass the class or factory the run trained")
        else:
            put(spec, obj)


_REGISTRATIONS = "registrations"
"""The token the components registered through the public API are shipped under."""


def _ship_registrations() -> list[str]:
    """Put this process's registrations (`raygan.config.specs.registered`) in Ray's key-value
    store, their classes and functions pickled by value where their modules are a user's
    files (`_by_value`); returns the token to `unship` ([] when there are none)."""
    from raygan.config import specs

    entries = specs.registered()
    if not entries:
        return []
    parts = [part for _, args in entries for obj in args
             for part in ((obj, *vars(obj).values()) if hasattr(obj, "__dict__") else (obj,))
             if callable(part)]
    _put(_REGISTRATIONS, entries, parts, "a registered component")
    return [_REGISTRATIONS]


def fetch_registrations() -> bool:
    """Repeat the driver's registrations in this Ray worker (`raygan.config.specs.on_unknown`
    calls it for a name it does not know); False when there are none to fetch. Fetched at
    every such miss: a worker Ray reuses may serve another driver's run."""
    entries = _fetch(_REGISTRATIONS)
    if entries is None:
        return False
    for register, args in entries:
        register(*args)
    return True


@contextmanager
def shipped(config: RunConfig, start: Callable[[], object] | None) -> Iterator[None]:
    """While inside, the Ray workers find `config`'s networks passed as objects (`ship`) and
    the components registered in this process (`_ship_registrations`); `start()` brings Ray
    up first (None: no Ray worker builds them, nothing is shipped). A worker's failure to
    unpickle one is one line."""
    from raygan.config import specs as component_specs

    nets = config.networks
    specs = [nets.generator, nets.discriminator] if nets.kind == "custom" else []
    if start is None or not (any(token_of(spec) for spec in specs)
                             or component_specs.registered()):
        yield
        return
    from ray.exceptions import RayError

    start()
    tokens = ship(specs) + _ship_registrations()
    try:
        yield
    except RayError as exc:
        found = _WORKER_PROBLEM.search(str(exc))
        if found is None:
            raise
        raise ConfigError(found.group(1)) from None
    finally:
        unship(tokens)


def __getattr__(name: str) -> Any:
    """A token's object (module attribute access: `resolve_callable` reads tokens here)."""
    if not _TOKEN.match(name):
        raise AttributeError(f"module {MODULE!r} has no attribute {name!r}")
    if name not in _objects:
        found = _fetch(name)
        if found is None:
            raise ConfigError(
                f"{MODULE}:{name} names a Python object passed to raygan.train or raygan.tune "
                "(data=, generator= or discriminator=) in another process; pass the same "
                "object again, e.g. raygan.load(path, generator=..., discriminator=..., "
                "data=...)")
        _objects[name] = found
    return _objects[name]
