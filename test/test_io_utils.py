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

"""Atomic writes: temporaries named after their owner, stale ones removed; output paths checked before work."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from reloc_ros import io_utils as IO


def _dead_pid() -> int:
    """Return the PID of a process that has run and exited (its number is not reused this soon)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not IO.process_alive(proc.pid)
    return proc.pid


def _host() -> str:
    return IO.temporary_prefix("x").split("@", 1)[1].rstrip(".")


def test_temporaries_name_their_process_and_host(tmp_path):
    target = tmp_path / "m.pt"
    with IO.atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".tmp")
        assert tmp.name.startswith(f".m.pt.{os.getpid()}@{_host()}.")
        tmp.write_text("x")
    assert target.read_text() == "x" and [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    with IO.atomic_new_dir(tmp_path / "bag") as inner:
        assert inner.parent.name.startswith(f".bag.{os.getpid()}@{_host()}.") and inner.name == "bag"
        inner.mkdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag", "m.pt"]


def test_stale_temporaries_of_dead_processes_are_removed_and_logged(tmp_path, caplog):
    dead, host = _dead_pid(), _host()
    target = tmp_path / "m.pt.ckpt"
    stale = tmp_path / f".m.pt.ckpt.{dead}@{host}.k2j4_x9a.tmp"
    stale.write_bytes(b"\0" * 1000)
    mine = tmp_path / f".m.pt.ckpt.{os.getpid()}@{host}.abcd1234.tmp"   # a live process: this one
    mine.write_text("being written")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        other_live = tmp_path / f".m.pt.ckpt.{sleeper.pid}@{host}.zz.tmp"
        other_live.write_text("being written")
        kept = [mine, other_live,
                tmp_path / f".m.pt.ckpt.{dead}@another-host.q1.tmp",   # another host's: its PIDs are not ours
                tmp_path / f".m.pt.{dead}@{host}.q2.tmp",               # another target's
                tmp_path / ".m.pt.ckpt.q3w8e7.tmp",                     # no owner in its name
                tmp_path / f"m.pt.ckpt.{dead}@{host}.q4.tmp"]           # not one of our temporaries
        for p in kept[2:]:
            p.write_text("x")
        with caplog.at_level(logging.INFO, logger="reloc_ros.io_utils"):
            IO.atomic_write_text(target, "new")
        assert target.read_text() == "new" and not stale.exists()
        assert all(p.exists() for p in kept)
        assert f"removed the stale temporary '{stale}'" in caplog.text and f"process {dead}" in caplog.text
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stale_temporary_directories_are_removed_too(tmp_path, caplog):
    dead, host = _dead_pid(), _host()
    stale = tmp_path / f".bag.{dead}@{host}.abc.tmp"
    (stale / "bag").mkdir(parents=True)
    (stale / "bag" / "bag_0.mcap").write_bytes(b"\0" * 10)
    live = tmp_path / f".bag.{os.getpid()}@{host}.def.tmp"
    live.mkdir()
    with caplog.at_level(logging.INFO, logger="reloc_ros.io_utils"):
        with IO.atomic_new_dir(tmp_path / "bag") as inner:
            inner.mkdir()
    assert not stale.exists() and live.is_dir() and (tmp_path / "bag").is_dir()
    assert "removed the stale temporary" in caplog.text
    assert IO.remove_stale_temporaries(tmp_path / "bag") == []  # nothing left to remove


def test_process_alive():
    assert IO.process_alive(os.getpid()) and not IO.process_alive(_dead_pid())
    assert not IO.process_alive(0) and not IO.process_alive(2**40)


# --------------------------------------------------------------------------
# Output paths, checked before any work
# --------------------------------------------------------------------------

def test_check_output_file(tmp_path, monkeypatch):
    assert IO.check_output_file(tmp_path / "m.pt") == tmp_path / "m.pt"
    (tmp_path / "m.pt").write_text("old")
    assert IO.check_output_file(tmp_path / "m.pt", "model") == tmp_path / "m.pt"   # replaced, atomically
    (tmp_path / "out").mkdir()
    with pytest.raises(ValueError, match=r"cannot write the model '.*out': it is a directory; give a file path"):
        IO.check_output_file(tmp_path / "out", "model")
    with pytest.raises(ValueError, match=r"cannot write the report '.*r\.json': directory '.*nope' does not exist"):
        IO.check_output_file(tmp_path / "nope" / "r.json", "report")
    with pytest.raises(ValueError, match=r"directory '.*m\.pt' is not a directory"):
        IO.check_output_file(tmp_path / "m.pt" / "r.json")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode & os.W_OK else real_access(p, mode))
    with pytest.raises(ValueError, match=r"cannot write the file '.*x\.pt': directory '.*' is not writable"):
        IO.check_output_file(tmp_path / "x.pt")
    with pytest.raises(ValueError, match="is not writable"):
        IO.atomic_write_text(tmp_path / "x.pt", "x")   # atomic writes check the same way, before writing
    assert not (tmp_path / "x.pt").exists()


def test_atomic_path_refuses_a_directory_target_before_writing(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(ValueError, match="it is a directory"):
        IO.atomic_write_text(tmp_path / "d", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_check_output_dir(tmp_path, monkeypatch):
    assert IO.check_output_dir(tmp_path) == tmp_path
    assert IO.check_output_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"   # made with its parents later
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match=r"cannot write the output folder '.*f': it is a file, not a directory"):
        IO.check_output_dir(tmp_path / "f")
    with pytest.raises(ValueError, match=r"cannot write the demo folder '.*f/sub': '.*f' is a file"):
        IO.check_output_dir(tmp_path / "f" / "sub", "demo folder")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode & os.W_OK else real_access(p, mode))
    with pytest.raises(ValueError, match=r"'.*' is not writable"):
        IO.check_output_dir(tmp_path / "new")
    with pytest.raises(ValueError, match=rf"output folder '{tmp_path}': directory '{tmp_path}' is not writable"):
        IO.check_output_dir(tmp_path)
