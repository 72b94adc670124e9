"""Atomic file and directory writes: write to a temporary sibling, then rename over the target.

A crash or a kill never leaves a half-written file under the final name: readers see either the old
content or the complete new one. The temporary lives in the same directory so the rename stays on one
filesystem (``os.replace`` is atomic only there).

Temporaries are hidden siblings named ``.<target name>.<pid>@<host>.<random>.tmp`` (``.old`` for a
directory moved aside during a swap). A write that is killed outright (SIGKILL, OOM killer, power loss,
a SLURM time limit) leaves its temporary behind, up to the size of the whole output.
:func:`remove_stale_temporaries` deletes such leftovers and only those: a name must match the pattern
above, and the write that made it must be over. The writer's pid and host in the name decide that on the
machine that wrote it (the pid no longer runs); from any other machine, a temporary counts as abandoned
once nothing in it has changed for :data:`STALE_AFTER_S` seconds (a live write keeps touching its
temporary; DDP ranks on other nodes of a shared filesystem are never that quiet while writing). Every
atomic write first removes the stale temporaries of its own target, and the field and point-cloud data
modules clean their data folder in ``prepare_data``. Temporaries of older sciml versions
(``.<target name>.<random>.tmp``, no pid) fall under the age rule only. Two hosts that share a filesystem
and a host name (containers started with the same ``--hostname``) would defeat the pid rule; give them
distinct names.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

#: A temporary whose writer cannot be checked (another host) is abandoned after this long unchanged.
STALE_AFTER_S = 24 * 3600

# The host part may hold only characters that cannot be confused with the name's separators.
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "unknown-host"
_RANDOM = "[a-z0-9_]{8}"  # tempfile's random part


def _temporary_pattern(target: str) -> re.Pattern[str]:
    return re.compile(
        rf"\.(?P<target>{target})\."
        rf"(?:(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)\.{_RANDOM}\.(?:tmp|old)|{_RANDOM}\.tmp)"
    )


_ANY_TEMPORARY = _temporary_pattern(".+?")


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary file path next to ``target``; on success rename it to ``target``.

    On an exception the temporary is removed and ``target`` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target.parent, target.name)
    fd, tmp_name = tempfile.mkstemp(prefix=_prefix(target), suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    _apply_umask(tmp, 0o666)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory next to ``target``; on success it replaces ``target``.

    Used for directory-shaped stores (zarr, run folders). An existing ``target`` is moved aside and
    deleted only after the new directory is in place.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target.parent, target.name)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(target), suffix=".tmp", dir=target.parent))
    _apply_umask(tmp, 0o777)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = tmp.with_suffix(".old")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_text_atomic(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def is_temporary(name: str) -> bool:
    """Whether ``name`` is the name of an atomic write's temporary (live or abandoned)."""
    return _ANY_TEMPORARY.fullmatch(name) is not None


def remove_stale_temporaries(folder: str | Path, target_name: str | None = None) -> list[Path]:
    """Delete the temporaries that interrupted atomic writes left in ``folder``; returns what went.

    Only names of this module's pattern whose write is over are touched (see the module docstring);
    ``target_name`` limits the cleanup to the temporaries of that one target. A missing folder holds none.
    """
    folder = Path(folder)
    pattern = _ANY_TEMPORARY if target_name is None else _temporary_pattern(re.escape(target_name))
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    now = time.time()
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or not _abandoned(Path(entry.path), match, now):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            Path(entry.path).unlink(missing_ok=True)
        removed.append(Path(entry.path))
    return removed


def _prefix(target: Path) -> str:
    # The pid is read at each write, not at import: forked workers and DDP ranks have their own.
    return f".{target.name}.{os.getpid()}@{_HOST}."


def _abandoned(path: Path, match: re.Match[str], now: float) -> bool:
    if match["pid"] is not None and match["host"] == _HOST and not _running(int(match["pid"])):
        return True
    try:
        return now - _last_change(path) > STALE_AFTER_S
    except FileNotFoundError:
        return False  # its writer finished (renamed or removed it) while we looked


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # a process of another user holds that pid
    return True


def _last_change(path: Path) -> float:
    """Latest modification time of ``path`` and, for a directory, of anything inside it."""
    latest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for name in (*dirs, *files):
                with contextlib.suppress(FileNotFoundError):
                    latest = max(latest, os.lstat(os.path.join(root, name)).st_mtime)
    return latest


def _apply_umask(path: Path, mode: int) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; give them what a plain open/mkdir would."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
