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

"""``reloc-ros extract`` on bad input: output paths checked first, unusable frames left out and counted."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from conftest import robot_messages, set_metadata_message_count, write_rosbag2

from reloc_ros.cli import main
from reloc_ros.data import bag as bagmod
from reloc_ros.data.layouts import read_tum_trajectory
from reloc_ros.data.types import write_tum


def _no_work(*a, **k):
    raise AssertionError("the bag was read before the output path was checked")


@pytest.mark.parametrize("make, message", [
    (lambda p: p.mkdir() or p, "is a directory; give a file path"),
    (lambda p: p / "missing" / "gt.tum", "directory '.*missing' does not exist"),
])
def test_extract_checks_the_output_path_before_reading(robot_bag, tmp_path, capsys, monkeypatch, make, message):
    path, _ = robot_bag
    out = make(tmp_path / "out")
    monkeypatch.setattr(bagmod, "read_bag_dataset", _no_work)
    assert main(["-q", "extract", str(path), "--tum", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(out) in err
    assert re.search(message, err), err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_extract_refuses_a_read_only_directory(robot_bag, tmp_path, capsys, monkeypatch):
    path, _ = robot_bag
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    monkeypatch.setattr(bagmod, "read_bag_dataset", _no_work)
    try:
        assert main(["-q", "extract", str(path), "--tum", str(ro / "gt.tum")]) == 2
    finally:
        ro.chmod(0o700)
    assert "is not writable" in capsys.readouterr().err


def test_write_tum_to_a_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        write_tum(tmp_path, np.array([1]), np.eye(4)[None])


def test_extract_leaves_out_undecodable_frames_and_counts_them(tmp_path, typestore, capsys):
    msgs, truth = robot_messages(typestore.types, n_images=6)
    imgs = [m[3] for m in msgs if m[0] == "/camera/image_raw"]
    imgs[1].encoding = "rgb9"
    imgs[3].height = 0
    imgs[4].data = imgs[4].data[:-3]
    path = write_rosbag2(tmp_path / "b", typestore, msgs)
    out = tmp_path / "gt.tum"
    assert main(["-q", "extract", str(path), "--tum", str(out)]) == 0
    stamps, _ = read_tum_trajectory(out)
    good = sorted(t for k, t in enumerate(sorted(truth)) if k in (0, 2, 5))
    assert stamps.tolist() == good
    text = capsys.readouterr().out
    assert "wrote 3 poses" in text and "3 frames skipped" in text and "no frames skipped" not in text
    assert "image undecodable (unknown encoding)" in text and "image undecodable (zero size)" in text
    assert "image undecodable (data length is not height x step)" in text


def test_extract_reads_every_image_whatever_the_metadata_counts(tmp_path, typestore, capsys):
    msgs, truth = robot_messages(typestore.types, n_images=40)
    path = write_rosbag2(tmp_path / "b", typestore, msgs)
    set_metadata_message_count(path, "/camera/image_raw", 10)
    out = tmp_path / "gt.tum"
    assert main(["-q", "extract", str(path), "--tum", str(out)]) == 0
    stamps, _ = read_tum_trajectory(out)
    assert stamps.tolist() == sorted(truth) and "wrote 40 poses" in capsys.readouterr().out
