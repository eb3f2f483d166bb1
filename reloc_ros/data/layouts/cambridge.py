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

"""Cambridge Landmarks: ``dataset_train.txt`` / ``dataset_test.txt`` and the focal lengths of ``reconstruction.nvm``."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from reloc_ros.data.layouts.common import (ImageLoader, check_images_exist, normalize_quats_at, parse_floats,
                                           require_dir, require_file, synthetic_stamps)
from reloc_ros.data.types import Intrinsics, PoseDataset, SkipReport
from reloc_ros.errors import RelocError
from reloc_ros.geometry import quat_to_matrix, quat_wxyz_to_xyzw

logger = logging.getLogger(__name__)

#: Cambridge frames are subsampled from video and carry no times; an assumed 2 Hz
#: clock only orders them (no timing-dependent result should rely on it).
CAMBRIDGE_RATE_HZ = 2.0

_CAMBRIDGE_FORMAT = "'seqN/frameNNNNN.png X Y Z W P Q R' (image, camera centre, quaternion w x y z)"
_CAMBRIDGE_NAME_RE = re.compile(r"seq(\d+)[/\\]frame(\d+)\.\w+$", re.IGNORECASE)


def _read_nvm_focals(path: Path) -> dict[str, float]:
    """Focal length (px) per image of the first model in a VisualSFM ``.nvm`` file, keyed by name without extension.

    Camera lines are ``name focal qw qx qy qz cx cy cz radial 0``.
    """
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        lines = fh.read().splitlines()
    if not lines or not lines[0].strip().startswith("NVM_V3"):
        raise ValueError(f"{path}:1: expected an 'NVM_V3' header")
    i = 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines) or not lines[i].strip().isdigit():
        raise ValueError(f"{path}:{i + 1}: expected the number of cameras")
    n_cams = int(lines[i].strip())
    focals: dict[str, float] = {}
    fmt = "'name focal qw qx qy qz cx cy cz radial 0'"
    for lineno in range(i + 2, i + 2 + n_cams):
        if lineno > len(lines):
            raise ValueError(f"{path}: file ends at line {len(lines)} but {n_cams} cameras were announced")
        tokens = lines[lineno - 1].split()
        if len(tokens) < 10:
            raise ValueError(f"{path}:{lineno}: expected {fmt}, got '{lines[lineno - 1].strip()}'")
        focal = parse_floats(tokens[1:2], f"{path}:{lineno}", fmt)[0]
        focals[str(Path(tokens[0].replace("\\", "/")).with_suffix(""))] = focal
    return focals


def _read_cambridge_list(path: Path) -> list[tuple[int, str, list[float]]]:
    """(line number, image name, [X Y Z W P Q R]) of a ``dataset_*.txt`` after its 3 header lines."""
    out = []
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            if lineno <= 3:
                continue  # "Visual Landmark Dataset V1", the column header, a blank line
            tokens = line.split()
            if not tokens:
                continue
            where = f"{path}:{lineno}"
            if len(tokens) != 8:
                raise ValueError(f"{where}: expected {_CAMBRIDGE_FORMAT}, got {len(tokens)} values: '{line.strip()}'")
            vals = parse_floats(tokens[1:], where, _CAMBRIDGE_FORMAT)
            if not all(math.isfinite(v) for v in vals[:3]):
                raise ValueError(f"{where}: camera position contains NaN or inf: {vals[:3]}")
            out.append((lineno, tokens[0], vals))
    return out


def read_cambridge(scene_dir: str | Path, split: str = "train", use_nvm: bool = True,
                   intrinsics: Intrinsics | None = None, rate_hz: float = CAMBRIDGE_RATE_HZ) -> PoseDataset:
    """Read one Cambridge Landmarks scene (e.g. ``KingsCollege/``) into a :class:`PoseDataset`.

    Args:
        scene_dir: folder holding ``dataset_train.txt`` / ``dataset_test.txt``
            and the ``seqN/`` image folders.
        split: ``'train'``, ``'test'`` or ``'all'`` (both lists).
        use_nvm: read focal lengths from ``reconstruction.nvm`` when present.
        intrinsics: explicit intrinsics (overrides the NVM).
        rate_hz: rate of the synthetic clock.

    Pose convention. Each line is ``image X Y Z W P Q R``: ``(X, Y, Z)`` is the
    camera centre ``c`` in the SfM world and ``(W, P, Q, R)`` a scalar-first
    quaternion of the **world-to-camera** rotation ``R_cw``. The lists were
    generated from the VisualSFM reconstruction, and an NVM camera stores exactly
    this pair (quaternion of ``R_cw`` and camera centre), with the
    computer-vision camera axes (x right, y down, z forward). Reference
    converters agree: DSAC*'s and ACE's ``setup_cambridge.py`` build the
    world-to-camera matrix ``[R | -R c]`` from these fields and invert it to get
    the camera-to-world pose. So here ``T_map_cam = [R_cw^T | c]``: the
    translation is the listed position and the camera's optical z axis in the
    world is the third row of ``R_cw``. The quaternion is converted from
    (w, x, y, z) to ROS order at one place, :func:`quat_wxyz_to_xyzw`.

    Intrinsics. Focal lengths exist only per image in ``reconstruction.nvm``
    (VisualSFM estimates one per image and assumes the principal point at the
    image centre). With the NVM, the dataset's intrinsics use the **median**
    focal of the frames read (the spread is logged), the image centre, and the
    size of the first image on disk. Without an NVM (or ``use_nvm=False``) and
    without ``intrinsics=``, ``intrinsics`` is ``None``: guessing a focal
    length would silently corrupt anything that projects.

    Stamps: the dataset has none. Frame ``seqS/frameF`` is stamped
    ``S * 1000 s + F / rate_hz`` (an assumed 2 Hz; it only orders frames), and
    frames are returned in that order. If any name does not follow
    ``seqN/frameNNNNN.ext``, stamps follow the list order instead.
    """
    root = require_dir(scene_dir, "Cambridge Landmarks scene directory")
    if split in ("train", "test"):
        list_files = [root / f"dataset_{split}.txt"]
    elif split == "all":
        list_files = [root / "dataset_train.txt", root / "dataset_test.txt"]
    else:
        raise ValueError(f"split must be 'train', 'test' or 'all', got '{split}'")
    entries: list[tuple[str, str, list[float]]] = []  # (where, name, values)
    for lf in list_files:
        require_file(lf, f"Cambridge {split} list")
        entries.extend((f"{lf}:{ln}", name, vals) for ln, name, vals in _read_cambridge_list(lf))
    if not entries:
        raise ValueError(f"{', '.join(str(f) for f in list_files)} list no frames after the 3 header lines "
                         f"(expected {_CAMBRIDGE_FORMAT})")

    vals = np.asarray([e[2] for e in entries], dtype=np.float64)
    # The one (w, x, y, z) -> (x, y, z, w) boundary for this layout.
    q_xyzw = normalize_quats_at(quat_wxyz_to_xyzw(vals[:, 3:7]), [e[0] for e in entries])
    R_cw = quat_to_matrix(q_xyzw)
    poses = np.zeros((len(entries), 4, 4))
    poses[:, :3, :3] = np.swapaxes(R_cw, -1, -2)  # R_wc = R_cw^T
    poses[:, :3, 3] = vals[:, :3]  # the camera centre is the camera's position in the world
    poses[:, 3, 3] = 1.0

    names = [e[1] for e in entries]
    first_seen: dict[str, str] = {}
    for where, name, _v in entries:
        if name in first_seen:
            raise ValueError(f"{where}: frame '{name}' is listed twice (also at {first_seen[name]})")
        first_seen[name] = where
    matches = [_CAMBRIDGE_NAME_RE.search(n) for n in names]
    if all(m is not None for m in matches):
        stamps = synthetic_stamps(np.asarray([int(m.group(1)) for m in matches]),
                                  np.asarray([int(m.group(2)) for m in matches]), rate_hz)
    else:
        stamps = synthetic_stamps(np.zeros(len(names)), np.arange(len(names)), rate_hz)
    order = np.argsort(stamps, kind="stable")
    sorted_stamps = stamps[order]
    dup = np.nonzero(np.diff(sorted_stamps) == 0)[0]
    if len(dup):
        a, b = entries[order[dup[0]]], entries[order[dup[0] + 1]]
        raise ValueError(f"{b[0]}: frame '{b[1]}' has the same sequence and frame number as '{a[1]}' at {a[0]}")

    paths = [root / n for n in names]
    check_images_exist(paths, ", ".join(str(f) for f in list_files))

    if intrinsics is None and use_nvm and (root / "reconstruction.nvm").is_file():
        intrinsics = _cambridge_intrinsics(root / "reconstruction.nvm", names, paths[int(order[0])])
    elif intrinsics is None:
        logger.info("no reconstruction.nvm read in '%s': intrinsics unknown (None)", root)

    ds = PoseDataset(
        stamps_ns=sorted_stamps, poses_n44=poses[order], intrinsics=intrinsics,
        image_loader=ImageLoader([paths[i] for i in order]), names=[names[i] for i in order],
        skipped=SkipReport(), source=f"Cambridge Landmarks {root.name} ({split})")
    logger.info("read %s", ds.summary())
    return ds


def _cambridge_intrinsics(nvm: Path, names: Sequence[str], first_image: Path) -> Intrinsics | None:
    """Median NVM focal of ``names`` with the principal point at the centre of ``first_image``."""
    focals_by_name = _read_nvm_focals(nvm)
    focals = np.asarray([focals_by_name[k] for k in (str(Path(n.replace("\\", "/")).with_suffix("")) for n in names)
                         if k in focals_by_name], dtype=np.float64)
    if len(focals) == 0:
        logger.warning("none of the %d frames is in '%s': intrinsics unknown (None)", len(names), nvm)
        return None
    img = cv2.imread(str(first_image), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise RelocError(f"image '{first_image}' could not be read to get the image size")
    h, w = img.shape[:2]
    f = float(np.median(focals))
    logger.info("Cambridge focal from %s: median %.1f px over %d/%d frames (min %.1f, max %.1f), image %dx%d",
                nvm.name, f, len(focals), len(names), focals.min(), focals.max(), w, h)
    # VisualSFM's model has the principal point at the image centre (pixel-centre coordinates).
    return Intrinsics(fx=f, fy=f, cx=(w - 1) / 2.0, cy=(h - 1) / 2.0, width=w, height=h)
