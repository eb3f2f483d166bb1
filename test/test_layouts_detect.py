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

"""Layout detection: which reader a directory needs, and the errors naming what each layout needs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from layout_files import write_cambridge, write_seven_scenes, write_tum_rgbd
from reloc_ros.data.layouts import detect_layout, read_layout


@pytest.fixture
def seven(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    return write_seven_scenes(tmp_path)


@pytest.fixture
def cambridge(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    return write_cambridge(tmp_path)


@pytest.fixture
def tum(tmp_path: Path) -> Path:
    return write_tum_rgbd(tmp_path)


def test_detect_and_read_layout(seven, cambridge, tum):
    assert detect_layout(seven[0]) == "7scenes"
    assert detect_layout(cambridge[0]) == "cambridge"
    assert detect_layout(tum) == "tum_rgbd"
    assert read_layout(seven[0], split="test").source.startswith("7-Scenes chess (test")
    assert list(read_layout(cambridge[0], split="test").names)[0] == "seq2/frame00001.png"
    assert read_layout(tum).source == "TUM RGB-D rgbd_dataset_freiburg1_xyz"


def test_detect_layout_unknown_lists_the_layouts(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(ValueError, match=r"not a known dataset layout.*7scenes: TrainSplit\.txt.*"
                                         r"cambridge: dataset_train\.txt.*tum_rgbd: rgb\.txt"):
        read_layout(tmp_path)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError, match="is not a directory"):
        detect_layout(tmp_path / "file.txt")
    (tmp_path / "rgb.txt").write_text("")
    (tmp_path / "groundtruth.txt").write_text("")
    (tmp_path / "dataset_test.txt").write_text("")
    with pytest.raises(ValueError, match=r"matches several layouts \(cambridge, tum_rgbd\)"):
        detect_layout(tmp_path)
