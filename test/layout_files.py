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

"""Tiny dataset layout folders written for the layout reader tests (7-Scenes, Cambridge Landmarks, TUM RGB-D)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

W, H = 8, 6
RED_BGR = (0, 0, 255)
BLUE_BGR = (255, 0, 0)


def write_png(path: Path, bgr: tuple[int, int, int] = BLUE_BGR) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.zeros((H, W, 3), np.uint8)
    img[:] = bgr
    assert cv2.imwrite(str(path), img)


def random_pose(rng: np.random.Generator) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.random(random_state=int(rng.integers(1 << 31))).as_matrix()
    T[:3, 3] = rng.uniform(-3, 3, 3)
    return T


def write_matrix(path: Path, T: np.ndarray) -> None:
    path.write_text("\n".join(" ".join(repr(float(v)) for v in row) for row in T) + "\n")


def write_seven_scenes(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """7-Scenes 'chess': seq-01 (3 frames), seq-02 (2), seq-03 (2); train = 1, 3; test = 2. Returns root, poses."""
    root = tmp_path / "chess"
    rng = np.random.default_rng(0)
    poses = {}
    for seq, n in ((1, 3), (2, 2), (3, 2)):
        for k in range(n):
            stem = root / f"seq-{seq:02d}" / f"frame-{k:06d}"
            # frame 0 of seq-01 is pure red, to check the channel order.
            write_png(stem.with_name(stem.name + ".color.png"), RED_BGR if (seq, k) == (1, 0) else BLUE_BGR)
            T = random_pose(rng)
            write_matrix(stem.with_name(stem.name + ".pose.txt"), T)
            depth = np.full((H, W), 1500, np.uint16)
            depth[0, 0] = 65535
            depth[0, 1] = 0
            assert cv2.imwrite(str(stem.with_name(stem.name + ".depth.png")), depth)
            poses[f"seq-{seq:02d}/frame-{k:06d}.color.png"] = T
    (root / "TrainSplit.txt").write_text("sequence1\nsequence3\n")
    (root / "TestSplit.txt").write_text("sequence2\n")
    return root, poses


CAMBRIDGE_HEADER = "Visual Landmark Dataset V1\nImageFile, Camera Position [X Y Z W P Q R]\n\n"


def cambridge_line(name: str, T_map_cam: np.ndarray) -> str:
    """Return the dataset's line for a camera pose: centre c and the (w, x, y, z) quaternion of R_cw."""
    R_cw = T_map_cam[:3, :3].T
    x, y, z, w = Rotation.from_matrix(R_cw).as_quat()
    return " ".join([name] + [repr(float(v)) for v in (*T_map_cam[:3, 3], w, x, y, z)])


def write_cambridge(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Cambridge 'KingsCollege': train seq1 (2 frames) + seq3 (1), test seq2 (2); no NVM. Returns root, poses."""
    root = tmp_path / "KingsCollege"
    rng = np.random.default_rng(1)
    poses = {}
    lists = {"train": ["seq1/frame00001.png", "seq1/frame00002.png", "seq3/frame00001.png"],
             "test": ["seq2/frame00001.png", "seq2/frame00002.png"]}
    for split, names in lists.items():
        lines = []
        for name in names:
            poses[name] = random_pose(rng)
            write_png(root / name, RED_BGR if name == "seq1/frame00001.png" else BLUE_BGR)
            lines.append(cambridge_line(name, poses[name]))
        (root / f"dataset_{split}.txt").write_text(CAMBRIDGE_HEADER + "\n".join(lines) + "\n")
    return root, poses


Q_ID = (0.0, 0.0, 0.0, 1.0)
Q_Z90 = tuple(Rotation.from_euler("z", 90, degrees=True).as_quat())


def make_tum(root: Path, gt: list[tuple[str, tuple, tuple]], rgb: list[str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    gt_lines = ["# ground truth trajectory", "# timestamp tx ty tz qx qy qz qw"]
    gt_lines += [" ".join([s] + [repr(float(v)) for v in (*t, *q)]) for s, t, q in gt]
    (root / "groundtruth.txt").write_text("\n".join(gt_lines) + "\n")
    lines = ["# color images", "# timestamp filename"]
    for i, s in enumerate(rgb):
        lines.append(f"{s} rgb/{s}.png")
        write_png(root / "rgb" / f"{s}.png", RED_BGR if i == 0 else BLUE_BGR)
    (root / "rgb.txt").write_text("\n".join(lines) + "\n")


def write_tum_rgbd(tmp_path: Path) -> Path:
    """TUM RGB-D 'freiburg1_xyz' with ground truth at 1.00, 1.01, 2.00, 2.01 s and five images around it."""
    root = tmp_path / "rgbd_dataset_freiburg1_xyz"
    gt = [("1.00", (0, 0, 0), Q_ID), ("1.01", (0.1, 0.2, 0.3), Q_Z90),
          ("2.00", (1, 1, 1), Q_ID), ("2.01", (1, 1, 1), Q_ID)]
    # 1.005 midway, 1.01 exact, 1.5 inside the 1.01 -> 2.00 gap, 0.5 before, 3.0 after the ground truth.
    make_tum(root, gt, ["1.005", "0.5", "1.01", "1.5", "3.0"])
    return root
