"""Writes that never destroy: outputs are built beside their target and swapped in atomically.

Every command that writes a directory (``tune``, ``package``, ``corpus``, the Label Studio
importers) or a result file goes through :func:`atomic_dir` / :func:`atomic_file`:

- the output is built in a temporary sibling (same filesystem, so the swap is a rename);
- an existing target is replaced only when it was made by textcat-kit (directories carry a
  marker file, :data:`MARKER`) **and** the caller passed ``overwrite=True``; a directory the user
  made (or an unrelated file) is never replaced or deleted;
- on Linux the old and new directory are exchanged with one ``renameat2(RENAME_EXCHANGE)``, so
  there is no moment at which the target is missing; elsewhere two renames are used;
- a crash (exception) removes the temporary sibling; a killed process leaves it behind, and the
  next write to the same target removes siblings whose process is gone;
- written directories get normal permissions (``0o777 & ~umask``), not ``mkdtemp``'s ``0o700``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

from .errors import Errors, OutputError

MARKER = ".textcat-kit-output.json"
"""Marker file written into every directory textcat-kit creates."""

_TMP_TAG = ".tmp-textcat-kit-"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _tmp_sibling(target: Path) -> Path:
    return target.with_name(f".{target.name}{_TMP_TAG}{socket.gethostname()}-{os.getpid()}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_siblings(target: Path) -> list[Path]:
    """Remove temporary siblings of ``target`` left by killed runs on this host; return them."""
    removed: list[Path] = []
    parent = target.parent
    if not parent.is_dir():
        return removed
    prefix = f".{target.name}{_TMP_TAG}"
    host = socket.gethostname()
    for path in parent.iterdir():
        if not path.name.startswith(prefix):
            continue
        owner = path.name[len(prefix) :]
        owner_host, _, pid_text = owner.rpartition("-")
        pid_text = pid_text.removeprefix("old")
        if owner_host != host or not pid_text.isdigit():
            continue
        pid = int(pid_text)
        if pid != os.getpid() and _pid_alive(pid):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def is_kit_output(path: Path) -> bool:
    """True when ``path`` is a directory that textcat-kit wrote (it holds the marker file)."""
    return path.is_dir() and (path / MARKER).is_file()


def check_target(target: Path, *, overwrite: bool, option: str = "--overwrite") -> None:
    """Raise :class:`OutputError` unless writing ``target`` is allowed.

    Allowed: the target does not exist, is an empty directory, or is a textcat-kit output and
    ``overwrite`` is true. Never allowed: a non-empty directory or a file textcat-kit did not
    write (for directories), whatever ``overwrite`` says.
    """
    if not target.exists() and not target.is_symlink():
        return
    if target.is_dir() and not target.is_symlink():
        if not any(target.iterdir()):
            return
        if not is_kit_output(target):
            raise OutputError(Errors.E022.format(path=target))
        if not overwrite:
            raise OutputError(Errors.E023.format(path=target, option=option))
        return
    raise OutputError(Errors.E024.format(path=target))


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths with renameat2; False where the call is not available."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    renameat2.restype = ctypes.c_int
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result != 0:
        errno = ctypes.get_errno()
        if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: filesystem cannot exchange
            return False
        raise OSError(errno, os.strerror(errno), str(a))
    return True


def _fix_permissions(root: Path) -> None:
    mode_dir = 0o777 & ~_umask()
    mode_file = 0o666 & ~_umask()
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, mode_dir)
        for name in filenames:
            path = Path(dirpath) / name
            if not path.is_symlink():
                current = path.stat().st_mode & 0o777
                os.chmod(path, (current | mode_file) & ~_umask() if current & 0o111 else mode_file)


@contextlib.contextmanager
def atomic_dir(
    target: Path | str,
    *,
    overwrite: bool = False,
    command: str = "textcat-kit",
    option: str = "--overwrite",
) -> Iterator[Path]:
    """Yield a fresh temporary directory; on success it replaces ``target`` in one step.

    ``target`` is checked first (:func:`check_target`) so nothing is built only to be refused.
    The marker file records which command wrote the directory.
    """
    target = Path(target).absolute()
    check_target(target, overwrite=overwrite, option=option)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_siblings(target)
    tmp = _tmp_sibling(target)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(mode=0o777)
    try:
        yield tmp
        (tmp / MARKER).write_text(json.dumps({"written_by": command}) + "\n", encoding="utf8")
        _fix_permissions(tmp)
        # Re-check: someone may have created the target while we were building.
        check_target(target, overwrite=overwrite, option=option)
        if target.exists() and target.is_dir() and _exchange(tmp, target):
            shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the previous output
        elif target.exists():
            old = target.with_name(
                f".{target.name}{_TMP_TAG}{socket.gethostname()}-old-{os.getpid()}"
            )
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(
    target: Path | str, *, overwrite: bool = False, option: str = "--overwrite"
) -> Iterator[Path]:
    """Yield a temporary sibling path; on success it replaces ``target`` with one ``os.replace``.

    An existing file is replaced only with ``overwrite=True``; an existing directory never.
    """
    target = Path(target).absolute()
    if target.is_dir():
        raise OutputError(Errors.E025.format(path=target))
    if target.exists() and not overwrite:
        raise OutputError(Errors.E023.format(path=target, option=option))
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_siblings(target)
    tmp = _tmp_sibling(target)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
