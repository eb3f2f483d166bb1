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

"""Atomic file writes: a crash never leaves a half-written file where a reader looks."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary file lives in the same directory so the final ``os.replace``
    is atomic on POSIX file systems. On any exception the temporary is removed
    and ``path`` is left as it was.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"cannot write '{target}': directory '{parent}' does not exist")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"cannot write '{target}': directory '{parent}' is not writable")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
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
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


@contextmanager
def atomic_new_dir(path: str | Path) -> Iterator[Path]:
    """Yield a path, inside a temporary directory beside ``path``, to create a directory at (e.g. a rosbag2).

    On success it is renamed to ``path``; on any exception nothing appears at
    ``path``. The yielded path has ``path``'s name, so files named after
    their directory (rosbag2's ``<name>_0.mcap``) keep the right names. An
    existing ``path`` is never overwritten (``ValueError``).
    """
    out = Path(path)
    if out.exists() or out.is_symlink():
        raise ValueError(f"'{out}' already exists; choose a new path (it is never overwritten)")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"cannot write '{out}': directory '{parent}' does not exist")
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
    try:
        yield tmp_dir / out.name
        if out.exists() or out.is_symlink():
            raise ValueError(f"'{out}' appeared while writing; not overwriting it")
        os.rename(tmp_dir / out.name, out)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
