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

"""Tests of the dataset layout readers on tiny fixtures written here (7-Scenes, Cambridge, TUM RGB-D)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from reloc_ros.data.layouts import (SEVEN_SCENES_INTRINSICS, TUM_FR1_INTRINSICS, TUM_FR3_INTRINSICS, detect_layout,
                                    read_7scenes, read_cambridge, read_layout, read_tum_rgbd, read_tum_trajectory)
from reloc_ros.data.types import (SKIP_DUPLICATE_STAMP, SKIP_NO_POSE, SKIP_OUTSIDE_TOLERANCE, Intrinsics,
                                  write_tum)
from reloc_ros.errors import RelocError

W, H = 8, 6
RED_BGR = (0, 0, 255)
BLUE_BGR = (255, 0, 0)


def _write_png(path: Path, bgr: tuple[int, int, int] = BLUE_BGR) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.zeros((H, W, 3), np.uint8)
    img[:] = bgr
    assert cv2.imwrite(str(path), img)


def _random_pose(rng: np.random.Generator) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.random(random_state=int(rng.integers(1 << 31))).as_matrix()
    T[:3, 3] = rng.uniform(-3, 3, 3)
    return T


def _write_matrix(path: Path, T: np.ndarray) -> None:
    path.write_text("\n".join(" ".join(repr(float(v)) for v in row) for row in T) + "\n")


# --------------------------------------------------------------------------
# 7-Scenes fixture: seq-01 (3 frames), seq-02 (2), seq-03 (2); train = 1, 3; test = 2
# --------------------------------------------------------------------------

@pytest.fixture
def seven(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path / "chess"
    rng = np.random.default_rng(0)
    poses = {}
    for seq, n in ((1, 3), (2, 2), (3, 2)):
        for k in range(n):
            stem = root / f"seq-{seq:02d}" / f"frame-{k:06d}"
            # frame 0 of seq-01 is pure red, to check the channel order.
            _write_png(stem.with_name(stem.name + ".color.png"), RED_BGR if (seq, k) == (1, 0) else BLUE_BGR)
            T = _random_pose(rng)
            _write_matrix(stem.with_name(stem.name + ".pose.txt"), T)
            depth = np.full((H, W), 1500, np.uint16)
            depth[0, 0] = 65535
            depth[0, 1] = 0
            assert cv2.imwrite(str(stem.with_name(stem.name + ".depth.png")), depth)
            poses[f"seq-{seq:02d}/frame-{k:06d}.color.png"] = T
    (root / "TrainSplit.txt").write_text("sequence1\nsequence3\n")
    (root / "TestSplit.txt").write_text("sequence2\n")
    return root, poses


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
    _write_matrix(root / "seq-01" / "frame-000001.pose.txt", T)
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


# --------------------------------------------------------------------------
# Cambridge fixture
# --------------------------------------------------------------------------

HEADER = "Visual Landmark Dataset V1\nImageFile, Camera Position [X Y Z W P Q R]\n\n"


def _cambridge_line(name: str, T_map_cam: np.ndarray) -> str:
    """Return the dataset's line for a camera pose: centre c and the (w, x, y, z) quaternion of R_cw."""
    R_cw = T_map_cam[:3, :3].T
    x, y, z, w = Rotation.from_matrix(R_cw).as_quat()
    return " ".join([name] + [repr(float(v)) for v in (*T_map_cam[:3, 3], w, x, y, z)])


@pytest.fixture
def cambridge(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path / "KingsCollege"
    rng = np.random.default_rng(1)
    poses = {}
    lists = {"train": ["seq1/frame00001.png", "seq1/frame00002.png", "seq3/frame00001.png"],
             "test": ["seq2/frame00001.png", "seq2/frame00002.png"]}
    for split, names in lists.items():
        lines = []
        for name in names:
            poses[name] = _random_pose(rng)
            _write_png(root / name, RED_BGR if name == "seq1/frame00001.png" else BLUE_BGR)
            lines.append(_cambridge_line(name, poses[name]))
        (root / f"dataset_{split}.txt").write_text(HEADER + "\n".join(lines) + "\n")
    return root, poses


def test_cambridge_convention_centre_and_viewing_direction(tmp_path):
    root = tmp_path / "Scene"
    _write_png(root / "seq1/frame00001.png")
    c = np.array([10.0, -2.0, 3.0])
    # Camera looking along world +x, image "down" (optical y) along world -z.
    R_wc = np.column_stack([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    R_cw = R_wc.T
    x, y, z, w = Rotation.from_matrix(R_cw).as_quat()
    (root / "dataset_train.txt").write_text(HEADER + f"seq1/frame00001.png {c[0]} {c[1]} {c[2]} {w} {x} {y} {z}\n")
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


# --------------------------------------------------------------------------
# TUM trajectory + TUM RGB-D fixture
# --------------------------------------------------------------------------

def test_tum_trajectory_round_trips_write_tum(tmp_path):
    rng = np.random.default_rng(2)
    stamps = np.array([1305031102_175304000, 1305031102_211214000, 1305031103_000000001], np.int64)
    poses = np.stack([_random_pose(rng) for _ in stamps])
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


Q_ID = (0.0, 0.0, 0.0, 1.0)
Q_Z90 = tuple(Rotation.from_euler("z", 90, degrees=True).as_quat())


def _make_tum(root: Path, gt: list[tuple[str, tuple, tuple]], rgb: list[str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    gt_lines = ["# ground truth trajectory", "# timestamp tx ty tz qx qy qz qw"]
    gt_lines += [" ".join([s] + [repr(float(v)) for v in (*t, *q)]) for s, t, q in gt]
    (root / "groundtruth.txt").write_text("\n".join(gt_lines) + "\n")
    lines = ["# color images", "# timestamp filename"]
    for i, s in enumerate(rgb):
        lines.append(f"{s} rgb/{s}.png")
        _write_png(root / "rgb" / f"{s}.png", RED_BGR if i == 0 else BLUE_BGR)
    (root / "rgb.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def tum(tmp_path: Path) -> Path:
    root = tmp_path / "rgbd_dataset_freiburg1_xyz"
    gt = [("1.00", (0, 0, 0), Q_ID), ("1.01", (0.1, 0.2, 0.3), Q_Z90),
          ("2.00", (1, 1, 1), Q_ID), ("2.01", (1, 1, 1), Q_ID)]
    # 1.005 midway, 1.01 exact, 1.5 inside the 1.01 -> 2.00 gap, 0.5 before, 3.0 after the ground truth.
    _make_tum(root, gt, ["1.005", "0.5", "1.01", "1.5", "3.0"])
    return root


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
    _make_tum(root, [("1.0", (0, 0, 0), Q_ID), ("2.0", (1, 0, 0), Q_ID)], ["1.5", "1.2"])
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


# --------------------------------------------------------------------------
# Layout detection
# --------------------------------------------------------------------------

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
