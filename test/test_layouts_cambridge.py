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

"""The Cambridge Landmarks reader on a tiny scene written here: pose convention, order, NVM focal, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from layout_files import CAMBRIDGE_HEADER, H, W, write_cambridge, write_png
from reloc_ros.data.layouts import read_cambridge


@pytest.fixture
def cambridge(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    return write_cambridge(tmp_path)


def test_cambridge_convention_centre_and_viewing_direction(tmp_path):
    root = tmp_path / "Scene"
    write_png(root / "seq1/frame00001.png")
    c = np.array([10.0, -2.0, 3.0])
    # Camera looking along world +x, image "down" (optical y) along world -z.
    R_wc = np.column_stack([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    R_cw = R_wc.T
    x, y, z, w = Rotation.from_matrix(R_cw).as_quat()
    line = f"seq1/frame00001.png {c[0]} {c[1]} {c[2]} {w} {x} {y} {z}\n"
    (root / "dataset_train.txt").write_text(CAMBRIDGE_HEADER + line)
    T = read_cambridge(root).poses_n44[0]
    np.testing.assert_allclose(T[:3, 3], c, atol=1e-12)
    np.testing.assert_allclose(T[:3, 2], [1.0, 0.0, 0.0], atol=1e-12)  # optical z along world +x
    np.testing.assert_allclose(T[:3, 1], [0.0, 0.0, -1.0], atol=1e-12)  # optical y (down) along world -z
    # A point 5 m in front of the camera lands on the optical axis at depth 5.
    p_cam = np.linalg.inv(T) @ np.append(c + [5.0, 0.0, 0.0], 1.0)
    np.testing.assert_allclose(p_cam[:3], [0.0, 0.0, 5.0], atol=1e-12)


def test_cambridge_splits_order_and_exact_poses(cambridge):
    root, poses = cambridge
    train = read_cambridge(root)
    assert list(train.names) == ["seq1/frame00001.png", "seq1/frame00002.png", "seq3/frame00001.png"]
    np.testing.assert_allclose(train.poses_n44, np.stack([poses[n] for n in train.names]), atol=1e-12)
    assert np.all(np.diff(train.stamps_ns) > 0)
    assert train.stamps_ns[1] - train.stamps_ns[0] == 500_000_000  # assumed 2 Hz
    test = read_cambridge(root, split="test")
    assert list(test.names) == ["seq2/frame00001.png", "seq2/frame00002.png"]
    np.testing.assert_allclose(test.poses_n44, np.stack([poses[n] for n in test.names]), atol=1e-12)
    both = read_cambridge(root, split="all")
    assert [n[:4] for n in both.names] == ["seq1", "seq1", "seq2", "seq2", "seq3"]
    assert train.intrinsics is None  # no reconstruction.nvm


def test_cambridge_image_is_rgb(cambridge):
    root, _ = cambridge
    img = read_cambridge(root).image(0)
    assert np.all(img[..., 0] == 255) and np.all(img[..., 2] == 0)


def test_cambridge_focal_from_nvm_is_median_with_centred_principal_point(cambridge):
    root, _ = cambridge
    cams = [("seq1/frame00001.jpg", 1000.0), ("seq1/frame00002.jpg", 1300.0), ("seq3/frame00001.jpg", 1100.0),
            ("seq2/frame00001.jpg", 5000.0)]
    body = "\n".join(f"{n} {f} 1 0 0 0 0 0 0 0 0" for n, f in cams)
    (root / "reconstruction.nvm").write_text(f"NVM_V3\n\n{len(cams)}\n{body}\n\n0\n")
    K = read_cambridge(root).intrinsics
    assert (K.fx, K.fy, K.width, K.height) == (1100.0, 1100.0, W, H)
    assert (K.cx, K.cy) == ((W - 1) / 2, (H - 1) / 2)
    assert read_cambridge(root, use_nvm=False).intrinsics is None


@pytest.mark.parametrize("values, message", [
    ("1 2 3 nan 0 0 0", r"dataset_train\.txt:5: quaternion contains NaN"),
    ("1 2 3 0 0 0 0", r"dataset_train\.txt:5: quaternion has zero norm"),
    ("1 2 3 1 0 0", r"dataset_train\.txt:5: expected 'seqN/frameNNNNN\.png X Y Z W P Q R'"),
    ("1 2 3 1 0 0 zero", r"dataset_train\.txt:5: .*non-numeric"),
])
def test_cambridge_bad_lines_name_file_and_line(cambridge, values, message):
    root, _ = cambridge
    text = (root / "dataset_train.txt").read_text().splitlines()
    text[4] = "seq1/frame00002.png " + values
    (root / "dataset_train.txt").write_text("\n".join(text) + "\n")
    with pytest.raises(ValueError, match=message):
        read_cambridge(root)


def test_cambridge_missing_files_and_duplicates_raise(cambridge):
    root, _ = cambridge
    (root / "seq2" / "frame00002.png").unlink()
    with pytest.raises(ValueError, match=r"1 image\(s\) listed in .*dataset_test\.txt do not exist: .*frame00002"):
        read_cambridge(root, split="test")
    with open(root / "dataset_train.txt", "a") as fh:
        fh.write("seq1/frame00001.png 1 2 3 1 0 0 0\n")
    with pytest.raises(ValueError, match=r"dataset_train\.txt:7: frame 'seq1/frame00001\.png' is listed twice"):
        read_cambridge(root)
    (root / "dataset_train.txt").unlink()
    with pytest.raises(ValueError, match=r"dataset_train\.txt' does not exist"):
        read_cambridge(root)
