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

"""TUM trajectory files and the TUM RGB-D reader on a tiny sequence written here: interpolation, skips, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from layout_files import Q_ID, Q_Z90, make_tum, random_pose, write_tum_rgbd
from reloc_ros.data.layouts import TUM_FR1_INTRINSICS, TUM_FR3_INTRINSICS, read_tum_rgbd, read_tum_trajectory
from reloc_ros.data.types import (SKIP_DUPLICATE_STAMP, SKIP_NO_POSE, SKIP_OUTSIDE_TOLERANCE, Intrinsics,
                                  write_tum)


def test_tum_trajectory_round_trips_write_tum(tmp_path):
    rng = np.random.default_rng(2)
    stamps = np.array([1305031102_175304000, 1305031102_211214000, 1305031103_000000001], np.int64)
    poses = np.stack([random_pose(rng) for _ in stamps])
    write_tum(tmp_path / "traj.txt", stamps, poses)
    s, P = read_tum_trajectory(tmp_path / "traj.txt")
    np.testing.assert_array_equal(s, stamps)
    np.testing.assert_allclose(P, poses, atol=1e-8)


@pytest.mark.parametrize("lines, message", [
    (["1.0 0 0 0 0 0 0 1", "1.0 0 0 0 0 0 0 1"], r"traj\.txt:3: timestamp 1\.0 duplicates the previous one at line 2"),
    (["2.0 0 0 0 0 0 0 1", "1.5 0 0 0 0 0 0 1"], r"traj\.txt:3: timestamp 1\.5 is before the previous one"),
    (["1.0 0 0 0 nan 0 0 1"], r"traj\.txt:2: quaternion contains NaN"),
    (["1.0 0 0 0 0 0 0 0"], r"traj\.txt:2: quaternion has zero norm"),
    (["1.0 0 0 0 0 0 1"], r"traj\.txt:2: expected 'timestamp tx ty tz qx qy qz qw'"),
    (["abc 0 0 0 0 0 0 1"], r"traj\.txt:2: timestamp 'abc' is not a number"),
    (["1.0 nan 0 0 0 0 0 1"], r"traj\.txt:2: position contains NaN"),
    ([], "has no poses"),
])
def test_tum_trajectory_bad_input_names_line(tmp_path, lines, message):
    (tmp_path / "traj.txt").write_text("# timestamp tx ty tz qx qy qz qw\n" + "\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=message):
        read_tum_trajectory(tmp_path / "traj.txt")


@pytest.fixture
def tum(tmp_path: Path) -> Path:
    return write_tum_rgbd(tmp_path)


def test_tum_rgbd_interpolates_midway_and_skips_with_reasons(tum):
    ds = read_tum_rgbd(tum)
    assert list(ds.names) == ["rgb/1.005.png", "rgb/1.01.png"]
    np.testing.assert_array_equal(ds.stamps_ns, [1_005_000_000, 1_010_000_000])
    mid = ds.poses_n44[0]
    np.testing.assert_allclose(mid[:3, 3], [0.05, 0.1, 0.15], atol=1e-12)
    np.testing.assert_allclose(mid[:3, :3], Rotation.from_euler("z", 45, degrees=True).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(ds.poses_n44[1][:3, 3], [0.1, 0.2, 0.3], atol=1e-12)
    np.testing.assert_allclose(ds.poses_n44[1][:3, :3], Rotation.from_quat(Q_Z90).as_matrix(), atol=1e-12)
    assert ds.skipped.counts[SKIP_NO_POSE] == 2
    assert ds.skipped.counts[SKIP_OUTSIDE_TOLERANCE] == 1
    assert ds.skipped.total == 3
    assert ds.intrinsics == TUM_FR1_INTRINSICS


def test_tum_rgbd_max_dt_controls_the_gap(tum):
    ds = read_tum_rgbd(tum, max_dt=1.0)
    assert "rgb/1.5.png" in ds.names
    assert ds.skipped.counts[SKIP_OUTSIDE_TOLERANCE] == 0
    i = list(ds.names).index("rgb/1.5.png")
    alpha = (1.5 - 1.01) / (2.00 - 1.01)
    np.testing.assert_allclose(ds.poses_n44[i][:3, 3], (1 - alpha) * np.array([0.1, 0.2, 0.3]) + alpha, atol=1e-12)


def test_tum_rgbd_image_rgb_intrinsics_and_duplicate_stamps(tmp_path):
    root = tmp_path / "rgbd_dataset_freiburg3_office"
    make_tum(root, [("1.0", (0, 0, 0), Q_ID), ("2.0", (1, 0, 0), Q_ID)], ["1.5", "1.2"])
    with open(root / "rgb.txt", "a") as fh:
        fh.write("1.5 rgb/1.2.png\n")  # duplicate stamp: the first listed image is kept
    ds = read_tum_rgbd(root, max_dt=1.0)
    assert ds.intrinsics == TUM_FR3_INTRINSICS
    assert list(ds.names) == ["rgb/1.2.png", "rgb/1.5.png"]  # stamp order
    assert ds.skipped.counts[SKIP_DUPLICATE_STAMP] == 1
    img = ds.image(1)  # rgb/1.5.png was written pure red
    assert np.all(img[..., 0] == 255) and np.all(img[..., 2] == 0)
    K = Intrinsics(500.0, 500.0, 319.5, 239.5, 640, 480)
    assert read_tum_rgbd(root, max_dt=1.0, intrinsics=K).intrinsics == K


def test_tum_rgbd_bad_input(tum):
    (tum / "rgb.txt").write_text("# header\n1.005 rgb/1.005.png extra\n")
    with pytest.raises(ValueError, match=r"rgb\.txt:2: expected 'timestamp filename'"):
        read_tum_rgbd(tum)
    (tum / "rgb.txt").write_text("1.005 rgb/missing.png\n")
    with pytest.raises(ValueError, match=r"do not exist: .*missing\.png"):
        read_tum_rgbd(tum)
    (tum / "rgb.txt").write_text("9.0 rgb/1.005.png\n")
    with pytest.raises(ValueError, match="no image .* has ground truth within 0.02 s"):
        read_tum_rgbd(tum)
    with open(tum / "groundtruth.txt", "a") as fh:
        fh.write("1.5 0 0 0 0 0 0 1\n")
    with pytest.raises(ValueError, match=r"groundtruth\.txt:7: timestamp 1\.5 is before the previous one at line 6"):
        read_tum_rgbd(tum)
    (tum / "groundtruth.txt").unlink()
    with pytest.raises(ValueError, match=r"groundtruth\.txt' does not exist"):
        read_tum_rgbd(tum)
    with pytest.raises(ValueError, match="max_dt"):
        read_tum_rgbd(tum, max_dt=-1.0)
