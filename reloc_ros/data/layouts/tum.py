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

"""TUM: trajectory files (``timestamp tx ty tz qx qy qz qw``) and TUM RGB-D sequences (``rgb.txt`` + ground truth)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from reloc_ros.data.layouts.common import (NS_PER_S, ImageLoader, check_images_exist, data_lines,
                                           normalize_quats_at, parse_floats, parse_stamp_ns, require_dir,
                                           require_file)
from reloc_ros.data.types import (SKIP_DUPLICATE_STAMP, SKIP_NO_POSE, SKIP_OUTSIDE_TOLERANCE, Intrinsics,
                                  PoseDataset, SkipReport)
from reloc_ros.geometry import make_pose, pose_to_tq, slerp

logger = logging.getLogger(__name__)

#: TUM RGB-D colour-camera calibrations as published by TUM per camera (freiburg1/2/3).
#: fr1 and fr2 images are distorted; these are only the pinhole parts.
TUM_FR1_INTRINSICS = Intrinsics(fx=517.3, fy=516.5, cx=318.6, cy=255.3, width=640, height=480)
TUM_FR2_INTRINSICS = Intrinsics(fx=520.9, fy=521.0, cx=325.1, cy=249.7, width=640, height=480)
TUM_FR3_INTRINSICS = Intrinsics(fx=535.4, fy=539.2, cx=320.1, cy=247.6, width=640, height=480)

_TUM_TRAJ_FORMAT = "'timestamp tx ty tz qx qy qz qw' (8 numbers)"
_RGB_TXT_FORMAT = "'timestamp filename'"


def read_tum_trajectory(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a TUM trajectory file into ``(stamps_ns (N,), poses_n44 (N, 4, 4))``.

    Each data line is ``timestamp tx ty tz qx qy qz qw`` (seconds, metres, ROS
    quaternion order); ``#`` comments and blank lines are skipped. Stamps are
    parsed exactly to nanoseconds, so a file written by
    :func:`reloc_ros.data.types.write_tum` reads back bit-identical stamps.

    Raises ``ValueError`` naming ``file:line`` for a malformed line, a NaN or
    zero-norm quaternion, a non-finite position, or a stamp that is not strictly
    after the previous one (interpolating between samples needs a strictly
    increasing clock).
    """
    p = require_file(Path(path), "trajectory file")
    stamps: list[int] = []
    values: list[list[float]] = []
    linenos: list[int] = []
    for lineno, tokens in data_lines(p):
        where = f"{p}:{lineno}"
        if len(tokens) != 8:
            raise ValueError(f"{where}: expected {_TUM_TRAJ_FORMAT}, got {len(tokens)} values: '{' '.join(tokens)}'")
        stamp = parse_stamp_ns(tokens[0], where)
        vals = parse_floats(tokens[1:], where, _TUM_TRAJ_FORMAT)
        if not all(math.isfinite(v) for v in vals[:3]):
            raise ValueError(f"{where}: position contains NaN or inf: {vals[:3]}")
        if stamps and stamp <= stamps[-1]:
            kind = "duplicates" if stamp == stamps[-1] else "is before"
            raise ValueError(f"{where}: timestamp {tokens[0]} {kind} the previous one at line {linenos[-1]}; "
                             "trajectory stamps must be strictly increasing")
        stamps.append(stamp)
        values.append(vals)
        linenos.append(lineno)
    if not stamps:
        raise ValueError(f"trajectory file '{p}' has no poses (expected lines {_TUM_TRAJ_FORMAT})")
    arr = np.asarray(values, dtype=np.float64)
    q_n4 = normalize_quats_at(arr[:, 3:7], [f"{p}:{ln}" for ln in linenos])
    return np.asarray(stamps, dtype=np.int64), make_pose(arr[:, :3], q_n4)


def _tum_default_intrinsics(seq_dir: Path) -> Intrinsics:
    name = seq_dir.resolve().name.lower()
    if "freiburg2" in name:
        return TUM_FR2_INTRINSICS
    if "freiburg3" in name:
        return TUM_FR3_INTRINSICS
    if "freiburg1" not in name:
        logger.warning("'%s' does not name a TUM camera (freiburg1/2/3): using the fr1 intrinsics; "
                       "pass intrinsics= if that is wrong", seq_dir)
    return TUM_FR1_INTRINSICS


def read_tum_rgbd(seq_dir: str | Path, max_dt: float = 0.02, intrinsics: Intrinsics | None = None) -> PoseDataset:
    """Read a TUM RGB-D sequence (``rgb.txt`` + ``groundtruth.txt``) into a :class:`PoseDataset`.

    ``groundtruth.txt`` holds the pose of the colour camera's optical centre in
    the motion-capture world (TUM's definition; camera axes x right, y down,
    z forward), i.e. ``T_map_cam`` directly. Each image stamp is associated by
    interpolating between its two neighbouring ground-truth samples (lerp on
    position, slerp on rotation, as tf2 does) when the earlier one is at most
    ``max_dt`` seconds before and the later one at most ``max_dt`` seconds after
    the image; an exact stamp match uses that sample. Otherwise the frame is
    skipped: :data:`SKIP_NO_POSE` before the first / after the last sample,
    :data:`SKIP_OUTSIDE_TOLERANCE` inside a gap of the ground truth (motion
    capture dropouts). Duplicate image stamps keep the first listed image
    (:data:`SKIP_DUPLICATE_STAMP`); images are returned in stamp order.

    Intrinsics: ``intrinsics=`` if given, else TUM's published colour-camera
    calibration chosen by the folder name (``freiburg2`` / ``freiburg3``), and
    fr1 (fx 517.3, fy 516.5, cx 318.6, cy 255.3, 640x480) otherwise. fr1/fr2
    images are distorted; these are only the pinhole parts.
    """
    if not np.isfinite(max_dt) or max_dt < 0:
        raise ValueError(f"max_dt must be a finite number of seconds >= 0, got {max_dt}")
    root = require_dir(seq_dir, "TUM RGB-D sequence directory")
    rgb_txt = require_file(root / "rgb.txt", "TUM image list")
    gt_stamps, gt_poses = read_tum_trajectory(require_file(root / "groundtruth.txt", "TUM ground truth"))

    img_stamps: list[int] = []
    img_names: list[str] = []
    for lineno, tokens in data_lines(rgb_txt):
        where = f"{rgb_txt}:{lineno}"
        if len(tokens) != 2:
            raise ValueError(f"{where}: expected {_RGB_TXT_FORMAT}, got '{' '.join(tokens)}'")
        img_stamps.append(parse_stamp_ns(tokens[0], where))
        img_names.append(tokens[1])
    if not img_stamps:
        raise ValueError(f"'{rgb_txt}' lists no images (expected lines {_RGB_TXT_FORMAT})")

    skipped = SkipReport()
    stamps = np.asarray(img_stamps, dtype=np.int64)
    order = np.argsort(stamps, kind="stable")
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = np.diff(stamps[order]) != 0
    if not keep.all():
        skipped.add(SKIP_DUPLICATE_STAMP, int((~keep).sum()))
    order = order[keep]
    stamps = stamps[order]

    max_dt_ns = int(round(max_dt * NS_PER_S))
    hi = np.searchsorted(gt_stamps, stamps, side="left")
    exact = (hi < len(gt_stamps)) & (gt_stamps[np.minimum(hi, len(gt_stamps) - 1)] == stamps)
    outside = ~exact & ((hi == 0) | (hi == len(gt_stamps)))
    inner = ~exact & ~outside
    lo_c = np.clip(hi - 1, 0, len(gt_stamps) - 1)
    hi_c = np.clip(hi, 0, len(gt_stamps) - 1)
    close = (stamps - gt_stamps[lo_c] <= max_dt_ns) & (gt_stamps[hi_c] - stamps <= max_dt_ns)
    interp = inner & close
    gap = inner & ~close
    if outside.any():
        skipped.add(SKIP_NO_POSE, int(outside.sum()))
    if gap.any():
        skipped.add(SKIP_OUTSIDE_TOLERANCE, int(gap.sum()))
    used = exact | interp
    if not used.any():
        raise ValueError(f"no image in '{rgb_txt}' has ground truth within {max_dt} s in "
                         f"'{root / 'groundtruth.txt'}'; {skipped}")

    poses = np.empty((len(stamps), 4, 4))
    poses[exact] = gt_poses[hi_c[exact]]
    if interp.any():
        lo_i, hi_i = lo_c[interp], hi_c[interp]
        alpha = (stamps[interp] - gt_stamps[lo_i]) / (gt_stamps[hi_i] - gt_stamps[lo_i])
        t0, q0 = pose_to_tq(gt_poses[lo_i])
        t1, q1 = pose_to_tq(gt_poses[hi_i])
        poses[interp] = make_pose((1.0 - alpha)[:, None] * t0 + alpha[:, None] * t1, slerp(q0, q1, alpha))

    sel = np.nonzero(used)[0]
    names = [img_names[order[i]] for i in sel]
    paths = [root / n for n in names]
    check_images_exist(paths, str(rgb_txt))
    ds = PoseDataset(
        stamps_ns=stamps[sel], poses_n44=poses[sel], intrinsics=intrinsics or _tum_default_intrinsics(root),
        image_loader=ImageLoader(paths), names=names, skipped=skipped,
        source=f"TUM RGB-D {root.resolve().name}")
    logger.info("read %s", ds.summary())
    return ds
