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

"""7-Scenes: ``seq-XX/frame-XXXXXX.color.png`` + ``.pose.txt`` (and ``.depth.png``), with the split files."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from reloc_ros.data.layouts.common import (ImageLoader, data_lines, parse_floats, require_dir, require_file,
                                           synthetic_stamps)
from reloc_ros.data.types import SKIP_NO_POSE, Intrinsics, PoseDataset, SkipReport
from reloc_ros.errors import RelocError
from reloc_ros.geometry import is_rigid

logger = logging.getLogger(__name__)

#: 7-Scenes calibration as published with the dataset (Microsoft's page: 640x480,
#: principal point (320, 240), focal length (585, 585)). That is the Kinect *depth*
#: camera, which the published poses also belong to; the RGB camera is not
#: registered to it and its focal is nearer 525 px (the value DSAC*/ACE use after
#: re-registering poses to the RGB sensor). Pass ``intrinsics=`` to choose.
SEVEN_SCENES_INTRINSICS = Intrinsics(fx=585.0, fy=585.0, cx=320.0, cy=240.0, width=640, height=480)
#: 7-Scenes frames are consecutive Kinect frames; the dataset has no stamps, so a
#: synthetic clock at the Kinect's 30 Hz is used.
SEVEN_SCENES_RATE_HZ = 30.0

_SEVEN_SEQ_RE = re.compile(r"^(?:sequence|seq-?)?0*(\d+)$", re.IGNORECASE)
_SEVEN_FRAME_RE = re.compile(r"^frame-(\d+)\.color\.png$")


def _seven_seq_number(item: int | str, where: str) -> int:
    if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
        num = int(item)
    else:
        m = _SEVEN_SEQ_RE.match(str(item).strip())
        if m is None:
            raise ValueError(f"{where}: '{item}' is not a 7-Scenes sequence; expected 'sequence1', 'seq-01' or 1")
        num = int(m.group(1))
    if num < 0:
        raise ValueError(f"{where}: sequence number must be >= 0, got {num}")
    return num


def _read_seven_split(path: Path) -> list[int]:
    nums = []
    for lineno, tokens in data_lines(path):
        if len(tokens) != 1:
            raise ValueError(f"{path}:{lineno}: expected one sequence per line like 'sequence1', "
                             f"got '{' '.join(tokens)}'")
        nums.append(_seven_seq_number(tokens[0], f"{path}:{lineno}"))
    if not nums:
        raise ValueError(f"split file '{path}' lists no sequences (expected lines like 'sequence1')")
    return nums


def _read_seven_pose(path: Path) -> np.ndarray:
    """4x4 camera-to-world matrix of a ``frame-XXXXXX.pose.txt``; NaN matrix if it holds non-finite values."""
    fmt = "a 4x4 camera-to-world matrix, 4 lines of 4 numbers"
    rows = []
    for lineno, tokens in data_lines(path):
        if len(tokens) != 4:
            raise ValueError(f"{path}:{lineno}: expected {fmt}, got {len(tokens)} values on this line")
        rows.append(parse_floats(tokens, f"{path}:{lineno}", fmt))
    if len(rows) != 4:
        raise ValueError(f"{path}: expected {fmt}, got {len(rows)} lines")
    T = np.asarray(rows, dtype=np.float64)
    if not np.all(np.isfinite(T)):
        # A non-finite matrix carries no pose: one unposed frame, not a reason to reject the whole scene.
        return np.full((4, 4), np.nan)
    # Poses are written with ~8 significant digits, so R^T R deviates from I by ~1e-7: 1e-4 leaves margin.
    if not is_rigid(T, tol=1e-4):
        raise ValueError(f"{path}: matrix is not a rigid transform (needs orthonormal rotation with det +1 and "
                         f"last row 0 0 0 1), got {T.tolist()}")
    return T


def _read_seven_depth(path: Path) -> np.ndarray:
    if not path.is_file():
        raise ValueError(f"depth image '{path}' does not exist (with_depth=True needs frame-XXXXXX.depth.png)")
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint16 or raw.ndim != 2:
        raise RelocError(f"depth image '{path}' is not a single-channel 16-bit PNG in millimetres")
    depth = raw.astype(np.float32) / 1000.0
    # 65535 marks invalid pixels in 7-Scenes; 0 is "no measurement" for any Kinect depth.
    depth[(raw == 0) | (raw == 65535)] = np.nan
    return depth


def read_7scenes(scene_dir: str | Path, split: str | None = None, sequences: Iterable[int | str] | None = None,
                 with_depth: bool = False, intrinsics: Intrinsics | None = None,
                 rate_hz: float = SEVEN_SCENES_RATE_HZ) -> PoseDataset:
    """Read one 7-Scenes scene (e.g. ``chess/``) into a :class:`PoseDataset`.

    Args:
        scene_dir: folder holding ``seq-XX/`` folders and ``TrainSplit.txt`` /
            ``TestSplit.txt`` (lines like ``sequence1``, meaning ``seq-01``).
        split: ``'train'`` (default), ``'test'`` or ``'all'`` (every ``seq-XX``
            folder present). Not allowed together with ``sequences``.
        sequences: explicit sequences instead of a split (``1``, ``'seq-01'`` or
            ``'sequence1'``).
        with_depth: also load ``frame-XXXXXX.depth.png`` (uint16 mm) into
            ``depths`` as float32 metres with NaN for invalid pixels (0 and
            65535). Everything is held in memory (1.2 MB per frame): for small
            scenes or subsets only.
        intrinsics: override of :data:`SEVEN_SCENES_INTRINSICS` (585 px, the
            published depth-camera calibration; see its note about the RGB camera).
        rate_hz: rate of the synthetic clock.

    Poses are ``frame-XXXXXX.pose.txt`` as written: camera-to-world, which is
    ``T_map_cam`` with the scene's world as map. 7-Scenes cameras use the
    computer-vision optical convention already (x right, y down, z forward).

    Stamps: 7-Scenes has none. Frame ``k`` of ``seq-NN`` is stamped
    ``NN * 1000 s + k / rate_hz`` (30 Hz, the Kinect's rate), so stamps increase
    over the whole dataset and a frame's stamp is the same in every split.

    A frame whose pose file is missing or holds inf/NaN is skipped as
    :data:`SKIP_NO_POSE`. Missing folders / split files, malformed or non-rigid
    pose matrices raise ``ValueError``.
    """
    root = require_dir(scene_dir, "7-Scenes scene directory")
    if sequences is not None and split is not None:
        raise ValueError(f"give either split ('{split}') or sequences ({list(sequences)}), not both")
    if sequences is not None:
        seq_nums = [_seven_seq_number(s, "sequences") for s in sequences]
        label = "sequences"
    else:
        split = "train" if split is None else split
        label = split
        if split in ("train", "test"):
            split_file = require_file(root / ("TrainSplit.txt" if split == "train" else "TestSplit.txt"),
                                      f"7-Scenes {split} split file")
            seq_nums = _read_seven_split(split_file)
        elif split == "all":
            seq_nums = sorted(int(d.name[4:]) for d in root.glob("seq-*") if d.is_dir() and d.name[4:].isdigit())
        else:
            raise ValueError(f"split must be 'train', 'test' or 'all', got '{split}'")
    if not seq_nums:
        raise ValueError(f"no 7-Scenes sequences to read in '{root}' (split/sequences: {label})")
    if len(set(seq_nums)) != len(seq_nums):
        raise ValueError(f"sequence listed twice in {label}: {seq_nums}")

    present = sorted(d.name for d in root.glob("seq-*") if d.is_dir())
    paths: list[Path] = []
    names: list[str] = []
    poses: list[np.ndarray] = []
    seqs: list[int] = []
    frames: list[int] = []
    depths: list[np.ndarray] = []
    skipped = SkipReport()
    for num in sorted(seq_nums):
        seq_dir = root / f"seq-{num:02d}"
        if not seq_dir.is_dir():
            raise ValueError(f"sequence folder '{seq_dir}' does not exist; present: {', '.join(present) or 'none'}")
        found = []
        for f in seq_dir.iterdir():
            m = _SEVEN_FRAME_RE.match(f.name)
            if m:
                found.append((int(m.group(1)), f))
        if not found:
            raise ValueError(f"no frame-XXXXXX.color.png images in '{seq_dir}'")
        for idx, color in sorted(found):
            pose_path = seq_dir / color.name.replace(".color.png", ".pose.txt")
            if not pose_path.is_file():
                skipped.add(SKIP_NO_POSE)
                continue
            T = _read_seven_pose(pose_path)
            if not np.all(np.isfinite(T)):
                skipped.add(SKIP_NO_POSE)
                continue
            if with_depth:
                depths.append(_read_seven_depth(seq_dir / color.name.replace(".color.png", ".depth.png")))
            paths.append(color)
            names.append(f"{seq_dir.name}/{color.name}")
            poses.append(T)
            seqs.append(num)
            frames.append(idx)
    if not poses:
        raise ValueError(f"no posed frames in '{root}' ({label}); {skipped}")
    seq_label = ", ".join(f"seq-{n:02d}" for n in sorted(seq_nums))
    ds = PoseDataset(
        stamps_ns=synthetic_stamps(np.asarray(seqs), np.asarray(frames), rate_hz),
        poses_n44=np.stack(poses), intrinsics=intrinsics or SEVEN_SCENES_INTRINSICS,
        image_loader=ImageLoader(paths), depths=np.stack(depths) if with_depth else None, names=names,
        skipped=skipped, source=f"7-Scenes {root.name} ({label}: {seq_label})")
    logger.info("read %s", ds.summary())
    return ds
