"""Atomic file writes, shared by `mewcp.io`, `sirfp_adapter` and the benchmark scripts.

A file is written to a temporary file in the target's folder, flushed and fsynced, then
moved onto the target with `os.replace`, so a reader sees the old file or the new one,
never a partial one; an interrupted write leaves nothing behind (the temporary file,
``.<name>.*.tmp``, is removed). The new file gets the mode a plain ``open()`` would give
(``0o666`` less the umask), not `tempfile.mkstemp`'s ``0o600``.

>>> import pathlib, tempfile
>>> target = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
>>> atomic_write(target, lambda f: f.write(b"hello"))
>>> target.read_bytes(), [p.name for p in target.parent.iterdir()]
(b'hello', ['note.txt'])
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "check_writable", "staged"]


def check_writable(path: str | os.PathLike[str]) -> Path:
    """``path`` as a `Path`, after checking that a file can be written there.

    Raises `IsADirectoryError` when ``path`` is a folder and `FileNotFoundError` when its
    folder does not exist, naming ``path`` or its folder, not the temporary file that
    the write would have failed on (call it before long work, too).
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder; give the path of a file to write", str(target))
    if not target.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "the folder to write into does not exist", str(target.parent))
    return target


@contextlib.contextmanager
def staged(path: str | os.PathLike[str]) -> Iterator[tuple[BinaryIO, Path]]:
    """Open a temporary file beside ``path``; yields ``(file, temporary path)``.

    Raises what `check_writable` raises before anything is written. On a normal exit the
    file is flushed, fsynced and closed but **not** moved: call
    ``os.replace(temporary, path)`` to publish it (several files can so be staged first
    and published together). On an exception it is removed.
    """
    target = check_writable(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp_path = Path(tmp)
    try:
        os.chmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            yield f, tmp_path
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> None:
    """``write(file)`` into a temporary file beside ``path``, then replace ``path`` with it."""
    with staged(path) as (f, tmp):
        write(f)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
