"""The error a configuration check raises, in a module that imports nothing of raygan.

Every layer validates through `check` (the config sections, data sources, the API); keeping it
in a leaf module below them all leaves no import cycle. Import `ConfigError` from
`raygan.config`.
"""

from __future__ import annotations

import errno
import math
import re


class ConfigError(ValueError):
    """A configuration key is unknown or its value is not allowed."""


class DataError(ConfigError):
    """The data a config names cannot be used: a missing or empty folder, unreadable files, a
    wrong array shape, an import that fails. One line, said before anything trains."""


def check(ok: bool, key: str, message: str) -> None:
    """Raise `ConfigError("<key>: <message>")` unless `ok`.

    Raises:
        ConfigError: when `ok` is false.
    """
    if not ok:
        raise ConfigError(f"{key}: {message}")


def check_nonnegative(value: float, key: str, meaning: str = "") -> None:
    """Raise `ConfigError` unless `value` is a finite number >= 0; `meaning` (e.g. "0: off")
    is shown in brackets in the message.

    Raises:
        ConfigError: when `value` is negative, NaN or infinite.
    """
    note = f" ({meaning})" if meaning else ""
    ok = math.isfinite(value) and value >= 0
    check(ok, key, f"must be a finite number >= 0{note}, got {value}")


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def check_run_name(name: str, key: str) -> None:
    """Raise `ConfigError` unless `name` is one plain folder name (it becomes
    `<storage>/<name>`, so a `/` or `..` would write outside the storage).

    Raises:
        ConfigError: naming `key`, when `name` is empty, has a path separator or starts with
            anything but a letter or digit.
    """
    check(_NAME.fullmatch(name) is not None, key,
          f"{name!r} is not a plain folder name (letters, digits and . _ + -, starting with a "
          "letter or digit; no / or ..)")


class ShippedFileError(ValueError):
    """A file shipped inside the raygan package (a reference classifier or its real-data
    statistics) is missing or does not have the sha256 its manifest records: it is damaged or
    was changed. One line naming the file; reinstalling raygan restores it."""


class StorageError(OSError):
    """A file raygan must write or read cannot be: the disk is full, read-only or forbidden."""


STORAGE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
)
"""OS errors that say where raygan writes is unusable, not that raygan is wrong."""


def storage_problem(exc: BaseException) -> str | None:
    """One line for an OS error of the storage (`STORAGE_ERRNOS`), else None."""
    if isinstance(exc, OSError) and (isinstance(exc, StorageError) or exc.errno in STORAGE_ERRNOS):
        where = exc.filename or ""
        what = exc.strerror or str(exc)
        return f"{where}: {what}" if where else what
    return None
