"""Objects a config names by a string: `"package.module:name"` or `"path/to/file.py:name"`.

The module part is imported as Python imports it (so its package must be on `sys.path` /
`PYTHONPATH`), or, when it ends in `.py`, loaded from that file (a relative path is taken from
the working directory). The part after the colon may be a dotted attribute path
(`module:Class.factory`). Every failure is one line naming the option: `data.source`
(`raygan.data.sources.python`) and `networks.generator` / `networks.discriminator`
(`raygan.core.custom`) read their objects through here.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from raygan.errors import ConfigError


def one_line(exc: BaseException) -> str:
    """`"Type: first line of the message"` of an exception (the type alone without one)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def split_spec(spec: str, what: str, noun: str,
               error: type[ConfigError] = ConfigError) -> tuple[str, str]:
    """The module (or file) and the attribute path of `spec`, checked for form only.

    Args:
        spec: the string the config holds.
        what: how messages name it, e.g. `"data.source 'x'"`.
        noun: what the attribute is, for the message on a malformed string ("function").
        error: the `ConfigError` subclass to raise.

    Raises:
        ConfigError: (`error`) without a module and an attribute around a colon.
    """
    module, _, attribute = spec.strip().rpartition(":")
    if not module or not attribute:
        raise error(f"{what}: must be 'package.module:{noun}' or 'path/to/file.py:{noun}'")
    return module, attribute


def import_module(module: str, what: str,
                  error: type[ConfigError] = ConfigError) -> ModuleType:
    """The module named `module`, or the file `module` when it ends in `.py`.

    A file is loaded once per process (under a name derived from its full path, registered in
    `sys.modules` so that dataclasses and pickle in the file find their module); a second
    call returns that module.

    Raises:
        ConfigError: (`error`) one line for a missing file, a module that does not import or
            one whose own code fails while it is imported.
    """
    try:
        if not module.endswith(".py"):
            return importlib.import_module(module)
        path = Path(module).expanduser().resolve()
        if not path.is_file():
            raise error(f"{what}: no such file {path}")
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
        name = f"_raygan_file_{path.stem}_{digest}"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None  # a .py path always has one
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[name] = loaded
        try:
            spec.loader.exec_module(loaded)
        except BaseException:
            del sys.modules[name]  # a failed file is tried afresh next time
            raise
        return loaded
    except ConfigError:
        raise
    except ImportError as exc:
        raise error(f"{what}: cannot import {module!r} ({one_line(exc)})") from exc
    except Exception as exc:  # the module's own code failed while it was imported
        raise error(f"{what}: importing {module!r} raised {one_line(exc)}") from exc


def resolve_callable(spec: str, what: str, noun: str,
                     error: type[ConfigError] = ConfigError) -> Callable[..., Any]:
    """The callable `spec` names (a function, a class, a factory).

    Args:
        spec: `"package.module:name"` or `"path/to/file.py:name"`.
        what: how messages name it, e.g. `"networks.generator 'x:G'"`.
        noun: what `name` is, for the message on a malformed string ("function", "Class").
        error: the `ConfigError` subclass to raise (`DataError` for data).

    Raises:
        ConfigError: (`error`) one line for a malformed string, a module that does not
            import, a missing attribute or one that is not callable.
    """
    module, attribute = split_spec(spec, what, noun, error)
    target: Any = import_module(module, what, error)
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise error(f"{what}: {getattr(target, '__name__', module)!r} has no "
                        f"attribute {part!r}")
        target = getattr(target, part)
    if not callable(target):
        raise error(f"{what}: {attribute!r} is not callable (it is a "
                    f"{type(target).__name__!r})")
    return target  # type: ignore[no-any-return]
