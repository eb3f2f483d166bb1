# Copyright 2026 reloc_ros contributors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""Atomic file writes, and output paths checked before any work.

A crash never leaves a half-written file where a reader looks: files and
directories are written under a temporary name beside their target and
renamed onto it. The temporary name says whose it is,
``.<name>.<pid>@<host>.<random>.tmp``, so the temporaries a killed run left
behind (up to a checkpoint's size each) are removed by the next atomic write
to the same target, when the process that wrote them no longer runs on this
host (:func:`remove_stale_temporaries`); those of a live process are never
touched.

:func:`check_output_file`, :func:`check_output_dir` and :func:`check_new_dir`
refuse, with one clear message, an output path that cannot be written (a
directory where a file is expected, a missing or unwritable parent, a
directory that must be new but exists) before a command does its work.
Writability is tried, not only read from permission bits: a read-only file
system, an ACL or a full quota show too, and so does root.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "atomic_write_text", "atomic_write_bytes", "atomic_new_dir", "check_output_file",
           "check_output_dir", "check_new_dir", "remove_stale_temporaries", "temporary_prefix", "process_alive"]

log = logging.getLogger(__name__)


def _parent(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def _kind(path: Path) -> str:
    """'dir', 'file' (anything else that exists), 'missing', or 'unreadable' (its directory may not be searched)."""
    try:
        return "dir" if path.is_dir() else ("file" if path.exists() else "missing")
    except PermissionError:
        return "unreadable"


def _check_writable(directory: Path, target: Path, what: str) -> None:
    """Refuse ``directory`` when files cannot be created in it: permission bits first, then a real try."""
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write the {what} '{target}': directory '{directory}' is not writable")
    try:
        probe = tempfile.mkdtemp(prefix=".reloc_ros_probe.", dir=directory)
    except OSError as e:
        raise ValueError(f"cannot write the {what} '{target}': directory '{directory}' is not writable: cannot "
                         f"create files in it ({e.strerror or e}); choose a writable location") from None
    os.rmdir(probe)


def _check_parent(parent: Path, target: Path, what: str) -> None:
    """Refuse a ``parent`` of ``target`` that is not an existing directory files can be created in."""
    kind = _kind(parent)
    if kind != "dir":
        why = {"file": "is not a directory", "missing": "does not exist", "unreadable": "is not accessible"}[kind]
        raise ValueError(f"cannot write the {what} '{target}': directory '{parent}' {why}")
    _check_writable(parent, target, what)


def _nearest_existing(path: Path) -> Path:
    while _kind(path) == "missing" and path != _parent(path):
        path = _parent(path)
    return path


def check_output_file(path: str | Path, what: str = "file", make_parents: bool = False) -> Path:
    """Return ``path`` if a file can be written there; else ``ValueError`` saying why, before any work.

    Refused: an existing directory at ``path``, a parent that does not exist
    (unless ``make_parents``: then the nearest existing ancestor must be a
    directory) or is not a directory, and a parent this process cannot create
    files in (files are written beside their target and renamed onto it). An
    existing file is fine: it is replaced. ``what`` names the file in the
    message (``'model'``, ``'report JSON'``).
    """
    path = Path(path)
    if _kind(path) == "dir":
        raise ValueError(f"cannot write the {what} '{path}': it is a directory; give a file path (e.g. "
                         f"'{path / 'NAME'}')")
    parent = _nearest_existing(_parent(path)) if make_parents else _parent(path)
    _check_parent(parent, path, what)
    return path


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """Return ``path`` if files can be written into it (made with its parents if missing); else ``ValueError``.

    Refused: an existing file at ``path`` (or at one of its missing parents'
    places), and a directory (``path`` or its nearest existing ancestor) this
    process cannot create files in.
    """
    path = Path(path)
    existing = _nearest_existing(path)
    kind = _kind(existing)
    if kind != "dir":
        where = "it" if existing == path else f"'{existing}'"
        why = "is not accessible" if kind == "unreadable" else "is a file, not a directory"
        raise ValueError(f"cannot write the {what} '{path}': {where} {why}")
    _check_writable(existing, path, what)
    return path


def check_new_dir(path: str | Path, what: str = "output") -> Path:
    """Return ``path`` if it can be created as a new directory; else ``ValueError``, before any work.

    For outputs that are never overwritten (a rosbag2 written atomically
    beside its place): ``path`` must not exist, and its parent must be a
    directory this process can create files in.
    """
    path = Path(path)
    if _kind(path) != "missing" or path.is_symlink():
        raise ValueError(f"the {what} '{path}' already exists; choose a new path (it is never overwritten)")
    parent = _parent(path)
    _check_parent(parent, path, what)
    return path


# --------------------------------------------------------------------------
# Temporaries: named after their owner, removed when it no longer runs
# --------------------------------------------------------------------------

def _host() -> str:
    """Return this host's name as it goes into temporary names: letters, digits and '-' (no '.', no '@')."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def temporary_prefix(target: str | Path) -> str:
    """Return the name prefix of this process's temporaries for ``target``: ``.<name>.<pid>@<host>.``."""
    return f".{Path(target).name}.{os.getpid()}@{_host()}."


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (one of another user counts as running)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    except OSError:
        return True  # when in doubt, it runs: its files are kept
    return True


def _size(path: Path) -> int:
    """Bytes in a file, or in the files under a directory."""
    if path.is_dir() and not path.is_symlink():
        return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return path.lstat().st_size


def remove_stale_temporaries(target: str | Path) -> list[Path]:
    """Remove the temporaries of ``target`` left by processes of this host that no longer run; return them.

    Only names of the form ``.<name>.<pid>@<host>.<random>.tmp`` beside
    ``target`` (files or directories) are considered, and only those whose
    ``host`` is this one and whose ``pid`` is not a running process: never
    those of a live process (this one included) or of another host sharing
    the directory. Each removal is logged.
    """
    target = Path(target)
    parent = _parent(target)
    pattern = re.compile(re.escape(f".{target.name}.") + r"(\d+)@([A-Za-z0-9-]+)\.[A-Za-z0-9_]+\.tmp")
    removed = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    host, me = _host(), os.getpid()
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if not m or m.group(2) != host:
            continue
        pid = int(m.group(1))
        if pid == me or process_alive(pid):
            continue
        try:
            size = _size(entry)
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError as exc:
            log.warning("could not remove the stale temporary '%s' of a killed run (process %d): %s", entry, pid, exc)
            continue
        log.info("removed the stale temporary '%s' (%.1f MB) left by a killed run (process %d, no longer "
                 "running)", entry, size / 1e6, pid)
        removed.append(entry)
    return removed


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary file lives in the same directory so the final ``os.replace``
    is atomic on POSIX file systems. On any exception the temporary is removed
    and ``path`` is left as it was. Temporaries of ``path`` that killed
    processes left behind are removed first (:func:`remove_stale_temporaries`).
    """
    target = check_output_file(path)
    parent = _parent(target)
    remove_stale_temporaries(target)
    fd, tmp_name = tempfile.mkstemp(prefix=temporary_prefix(target), suffix=".tmp", dir=parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


@contextmanager
def atomic_new_dir(path: str | Path) -> Iterator[Path]:
    """Yield a path, inside a temporary directory beside ``path``, to create a directory at (e.g. a rosbag2).

    On success it is renamed to ``path``; on any exception nothing appears at
    ``path``. The yielded path has ``path``'s name, so files named after
    their directory (rosbag2's ``<name>_0.mcap``) keep the right names. An
    existing ``path`` is never overwritten (``ValueError``). Temporary
    directories of ``path`` that killed processes left behind are removed
    first (:func:`remove_stale_temporaries`).
    """
    out = Path(path)
    if out.exists() or out.is_symlink():
        raise ValueError(f"'{out}' already exists; choose a new path (it is never overwritten)")
    check_output_file(out, "output")
    parent = _parent(out)
    remove_stale_temporaries(out)
    tmp_dir = Path(tempfile.mkdtemp(prefix=temporary_prefix(out), suffix=".tmp", dir=parent))
    try:
        yield tmp_dir / out.name
        if out.exists() or out.is_symlink():
            raise ValueError(f"'{out}' appeared while writing; not overwriting it")
        os.rename(tmp_dir / out.name, out)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
