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

"""The 7-Scenes reader on a tiny scene written here: splits, exact poses, the synthetic clock, depth, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from layout_files import H, W, write_matrix, write_seven_scenes
from reloc_ros.data.layouts import SEVEN_SCENES_INTRINSICS, read_7scenes
from reloc_ros.data.types import SKIP_NO_POSE, Intrinsics
from reloc_ros.errors import RelocError


@pytest.fixture
def seven(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    return write_seven_scenes(tmp_path)


def test_7scenes_train_split_reads_its_sequences_with_exact_poses(seven):
    root, poses = seven
    ds = read_7scenes(root)
    assert list(ds.names) == ["seq-01/frame-000000.color.png", "seq-01/frame-000001.color.png",
                              "seq-01/frame-000002.color.png", "seq-03/frame-000000.color.png",
                              "seq-03/frame-000001.color.png"]
    np.testing.assert_array_equal(ds.poses_n44, np.stack([poses[n] for n in ds.names]))
    assert ds.intrinsics == SEVEN_SCENES_INTRINSICS
    assert ds.depths is None
    assert ds.skipped.total == 0


def test_7scenes_test_all_and_explicit_sequences(seven):
    root, poses = seven
    assert [n[:6] for n in read_7scenes(root, split="test").names] == ["seq-02"] * 2
    assert len(read_7scenes(root, split="all")) == 7
    ds = read_7scenes(root, sequences=["seq-02", 3])
    assert [n[:6] for n in ds.names] == ["seq-02", "seq-02", "seq-03", "seq-03"]
    np.testing.assert_array_equal(ds.poses_n44, np.stack([poses[n] for n in ds.names]))


def test_7scenes_synthetic_30hz_clock_is_monotonic_and_split_independent(seven):
    root, _ = seven
    ds = read_7scenes(root, split="all")
    assert np.all(np.diff(ds.stamps_ns) > 0)
    by_name = dict(zip(ds.names, ds.stamps_ns))
    # frame k of seq-NN at NN * 1000 s + k / 30 s
    assert by_name["seq-01/frame-000002.color.png"] == 1000 * 10**9 + round(2 * 1e9 / 30)
    assert by_name["seq-03/frame-000001.color.png"] == 3000 * 10**9 + round(1e9 / 30)
    train = read_7scenes(root, split="train")
    assert all(by_name[n] == s for n, s in zip(train.names, train.stamps_ns))


def test_7scenes_image_is_rgb_and_intrinsics_override(seven):
    root, _ = seven
    K = Intrinsics(525.0, 525.0, 320.0, 240.0, 640, 480)
    ds = read_7scenes(root, intrinsics=K)
    assert ds.intrinsics == K
    img = ds.image(0)  # pure red frame
    assert img.shape == (H, W, 3) and img.dtype == np.uint8
    assert np.all(img[..., 0] == 255) and np.all(img[..., 1:] == 0)
    assert np.all(ds.image(1)[..., 2] == 255) and np.all(ds.image(1)[..., 0] == 0)  # blue stays blue


def test_7scenes_depth_in_metres_with_nan_for_invalid(seven):
    root, _ = seven
    ds = read_7scenes(root, split="test", with_depth=True)
    assert ds.depths.shape == (2, H, W) and ds.depths.dtype == np.float32
    assert np.isnan(ds.depths[0, 0, 0]) and np.isnan(ds.depths[0, 0, 1])
    assert ds.depths[0, 3, 3] == pytest.approx(1.5)


def test_7scenes_missing_or_infinite_pose_is_skipped_as_no_pose(seven):
    root, poses = seven
    (root / "seq-01" / "frame-000001.pose.txt").unlink()
    (root / "seq-03" / "frame-000000.pose.txt").write_text("inf inf inf inf\n" * 4)
    ds = read_7scenes(root)
    assert len(ds) == 3
    assert ds.skipped.counts[SKIP_NO_POSE] == 2
    assert "seq-01/frame-000001.color.png" not in ds.names
    np.testing.assert_array_equal(ds.poses_n44, np.stack([poses[n] for n in ds.names]))


def test_7scenes_non_rigid_matrix_raises(seven):
    root, poses = seven
    T = poses["seq-01/frame-000001.color.png"].copy()
    T[:3, :3] *= 2.0
    write_matrix(root / "seq-01" / "frame-000001.pose.txt", T)
    with pytest.raises(ValueError, match=r"frame-000001\.pose\.txt: matrix is not a rigid transform"):
        read_7scenes(root)


def test_7scenes_malformed_pose_line_names_file_and_line(seven):
    root, _ = seven
    (root / "seq-01" / "frame-000000.pose.txt").write_text("1 0 0 0\n0 1 0\n0 0 1 0\n0 0 0 1\n")
    with pytest.raises(ValueError, match=r"frame-000000\.pose\.txt:2: expected a 4x4 camera-to-world matrix"):
        read_7scenes(root)
    (root / "seq-01" / "frame-000000.pose.txt").write_text("1 0 0 0\n0 1 0 x\n0 0 1 0\n0 0 0 1\n")
    with pytest.raises(ValueError, match=r"frame-000000\.pose\.txt:2: .*non-numeric"):
        read_7scenes(root)


def test_7scenes_bad_split_and_missing_files_raise(seven):
    root, _ = seven
    (root / "TestSplit.txt").unlink()
    with pytest.raises(ValueError, match=r"TestSplit\.txt' does not exist"):
        read_7scenes(root, split="test")
    with pytest.raises(ValueError, match=r"seq-05' does not exist; present: seq-01, seq-02, seq-03"):
        read_7scenes(root, sequences=[5])
    with pytest.raises(ValueError, match="either split"):
        read_7scenes(root, split="train", sequences=[1])
    with pytest.raises(ValueError, match="split must be 'train', 'test' or 'all'"):
        read_7scenes(root, split="val")
    (root / "TrainSplit.txt").write_text("sequence1\nkitchen\n")
    with pytest.raises(ValueError, match=r"TrainSplit\.txt:2: 'kitchen' is not a 7-Scenes sequence"):
        read_7scenes(root)
    with pytest.raises(ValueError, match="is not a directory"):
        read_7scenes(root / "nope")


def test_7scenes_undecodable_image_raises_on_load(seven):
    root, _ = seven
    (root / "seq-01" / "frame-000000.color.png").write_bytes(b"not a png")
    ds = read_7scenes(root)
    with pytest.raises(RelocError, match=r"frame-000000\.color\.png' could not be read"):
        ds.image(0)
