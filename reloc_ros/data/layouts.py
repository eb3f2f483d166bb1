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

"""Read the dataset layouts relocalization research uses into :class:`PoseDataset`.

Three layouts are supported, each read into the same type (camera pose
``T_map_cam`` in the dataset's world frame, camera *optical* frame z forward,
x right, y down; stamps in ns; intrinsics; names; a lazy RGB image loader):

* **7-Scenes** (:func:`read_7scenes`): ``seq-XX/frame-XXXXXX.color.png`` with
  ``frame-XXXXXX.pose.txt`` (4x4 camera-to-world) and ``TrainSplit.txt`` /
  ``TestSplit.txt``.
* **Cambridge Landmarks** (:func:`read_cambridge`): ``dataset_train.txt`` /
  ``dataset_test.txt`` (image, camera centre, quaternion) and optionally
  ``reconstruction.nvm`` for the focal length.
* **TUM RGB-D** (:func:`read_tum_rgbd`): ``rgb.txt`` + ``groundtruth.txt``,
  ground truth interpolated at each image stamp.

:func:`read_layout` detects which of them a directory holds.
:func:`read_tum_trajectory` reads any TUM trajectory file (the format
:func:`reloc_ros.data.types.write_tum` writes).

Parsing is line by line in Python rather than one ``np.loadtxt`` call so that
every malformed line is reported as ``file:line`` with the expected format;
the files are small (thousands of lines), so this costs nothing noticeable.
"""

from __future__ import annotations

import logging
import math
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import cv2
import numpy as np

from reloc_ros.errors import RelocError
from reloc_ros.geometry import (is_rigid, make_pose, pose_to_tq, quat_normalize, quat_to_matrix,
                                quat_wxyz_to_xyzw, slerp)
from reloc_ros.data.types import (SKIP_DUPLICATE_STAMP, SKIP_NO_POSE, SKIP_OUTSIDE_TOLERANCE, Intrinsics,
                                  PoseDataset, SkipReport)

logger = logging.getLogger(__name__)

__all__ = [
    "SEVEN_SCENES_INTRINSICS", "SEVEN_SCENES_RATE_HZ", "CAMBRIDGE_RATE_HZ", "TUM_FR1_INTRINSICS",
    "TUM_FR2_INTRINSICS", "TUM_FR3_INTRINSICS", "LAYOUTS", "ImageLoader", "read_tum_trajectory",
    "read_7scenes", "read_cambridge", "read_tum_rgbd", "detect_layout", "read_layout",
]

#: 7-Scenes calibration as published with the dataset (Microsoft's page: 640x480,
#: principal point (320, 240), focal length (585, 585)). That is the Kinect *depth*
#: camera, which the published poses also belong to; the RGB camera is not
#: registered to it and its focal is nearer 525 px (the value DSAC*/ACE use after
#: re-registering poses to the RGB sensor). Pass ``intrinsics=`` to choose.
SEVEN_SCENES_INTRINSICS = Intrinsics(fx=585.0, fy=585.0, cx=320.0, cy=240.0, width=640, height=480)
#: 7-Scenes frames are consecutive Kinect frames; the dataset has no stamps, so a
#: synthetic clock at the Kinect's 30 Hz is used.
SEVEN_SCENES_RATE_HZ = 30.0
#: Cambridge frames are subsampled from video and carry no times; an assumed 2 Hz
#: clock only orders them (no timing-dependent result should rely on it).
CAMBRIDGE_RATE_HZ = 2.0
#: TUM RGB-D colour-camera calibrations as published by TUM per camera (freiburg1/2/3).
#: fr1 and fr2 images are distorted; these are only the pinhole parts.
TUM_FR1_INTRINSICS = Intrinsics(fx=517.3, fy=516.5, cx=318.6, cy=255.3, width=640, height=480)
TUM_FR2_INTRINSICS = Intrinsics(fx=520.9, fy=521.0, cx=325.1, cy=249.7, width=640, height=480)
TUM_FR3_INTRINSICS = Intrinsics(fx=535.4, fy=539.2, cx=320.1, cy=247.6, width=640, height=480)

#: Layout name -> what a directory needs to be recognised as it (used in errors).
LAYOUTS: dict[str, str] = {
    "7scenes": "TrainSplit.txt or TestSplit.txt, or seq-XX/ folders holding frame-XXXXXX.color.png "
               "+ frame-XXXXXX.pose.txt",
    "cambridge": "dataset_train.txt or dataset_test.txt (3 header lines, then 'seqN/frameNNNNN.png X Y Z W P Q R')",
    "tum_rgbd": "rgb.txt ('timestamp filename') and groundtruth.txt ('timestamp tx ty tz qx qy qz qw')",
}

# Synthetic clocks put sequence k at k * spacing so a frame gets the same stamp
# whichever split it is read in; the spacing grows only for sequences longer than this.
_SEQ_SPACING_NS = 1000 * 1_000_000_000
_NS_PER_S = 1_000_000_000

_TUM_TRAJ_FORMAT = "'timestamp tx ty tz qx qy qz qw' (8 numbers)"
_CAMBRIDGE_FORMAT = "'seqN/frameNNNNN.png X Y Z W P Q R' (image, camera centre, quaternion w x y z)"
_RGB_TXT_FORMAT = "'timestamp filename'"


# --------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------

class ImageLoader:
    """Callable ``loader(i) -> RGB uint8 (H, W, 3)`` reading ``paths[i]`` lazily.

    A class rather than a closure so a dataset can be pickled into DataLoader
    worker processes.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = [Path(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __call__(self, i: int) -> np.ndarray:
        path = self.paths[i]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise RelocError(f"image '{path}' could not be read or decoded")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _data_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield (1-based line number, whitespace-split tokens) of non-blank, non-comment lines."""
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            yield lineno, text.split()


def _parse_floats(tokens: Sequence[str], where: str, expected: str) -> list[float]:
    try:
        return [float(t) for t in tokens]
    except ValueError:
        raise ValueError(f"{where}: expected {expected}, got non-numeric value in '{' '.join(tokens)}'") from None


def _parse_stamp_ns(token: str, where: str) -> int:
    """Seconds as decimal text -> integer nanoseconds, exactly (no float rounding)."""
    try:
        sec = Decimal(token)
    except InvalidOperation:
        raise ValueError(f"{where}: timestamp '{token}' is not a number of seconds") from None
    if not sec.is_finite():
        raise ValueError(f"{where}: timestamp '{token}' is not finite")
    return int((sec * _NS_PER_S).to_integral_value())


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ValueError(f"{what} '{path}' does not exist")
    return path


def _require_dir(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise ValueError(f"{what} '{p}' is not a directory")
    return p


def _check_images_exist(paths: Sequence[Path], listed_in: str) -> None:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise ValueError(f"{len(missing)} image(s) listed in {listed_in} do not exist: {shown}{more}")


def _normalize_quats_at(q_n4: np.ndarray, wheres: Sequence[str]) -> np.ndarray:
    """quat_normalize on a batch, re-raising geometry's error prefixed with the offending ``file:line``."""
    try:
        return quat_normalize(q_n4)
    except ValueError as err:
        for row, where in zip(q_n4, wheres):
            try:
                quat_normalize(row)
            except ValueError as row_err:
                raise ValueError(f"{where}: {row_err}") from err
        raise


def _synthetic_stamps(seq_nums: np.ndarray, frame_nums: np.ndarray, rate_hz: float) -> np.ndarray:
    """Stamps for datasets without times: frame / rate, sequence k offset by k * spacing.

    The spacing is 1000 s (or the next multiple of it above the longest
    sequence), so every sequence starts after the previous one ends and a frame's
    stamp does not depend on which other sequences were read.
    """
    if not np.isfinite(rate_hz) or rate_hz <= 0:
        raise ValueError(f"rate_hz must be a finite frame rate > 0, got {rate_hz}")
    # Rounded per frame (not frame * rounded period) so no error accumulates along a sequence.
    frame_ns = np.rint(np.asarray(frame_nums, dtype=np.float64) * (_NS_PER_S / rate_hz)).astype(np.int64)
    span_ns = int(frame_ns.max()) + int(round(_NS_PER_S / rate_hz)) if len(frame_ns) else 0
    spacing = max(_SEQ_SPACING_NS, -(-span_ns // _SEQ_SPACING_NS) * _SEQ_SPACING_NS)
    return np.asarray(seq_nums, dtype=np.int64) * spacing + frame_ns


# --------------------------------------------------------------------------
# TUM trajectory files
# --------------------------------------------------------------------------

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
    p = _require_file(Path(path), "trajectory file")
    stamps: list[int] = []
    values: list[list[float]] = []
    linenos: list[int] = []
    for lineno, tokens in _data_lines(p):
        where = f"{p}:{lineno}"
        if len(tokens) != 8:
            raise ValueError(f"{where}: expected {_TUM_TRAJ_FORMAT}, got {len(tokens)} values: '{' '.join(tokens)}'")
        stamp = _parse_stamp_ns(tokens[0], where)
        vals = _parse_floats(tokens[1:], where, _TUM_TRAJ_FORMAT)
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
    q_n4 = _normalize_quats_at(arr[:, 3:7], [f"{p}:{ln}" for ln in linenos])
    return np.asarray(stamps, dtype=np.int64), make_pose(arr[:, :3], q_n4)


# --------------------------------------------------------------------------
# 7-Scenes
# --------------------------------------------------------------------------

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
    for lineno, tokens in _data_lines(path):
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
    for lineno, tokens in _data_lines(path):
        if len(tokens) != 4:
            raise ValueError(f"{path}:{lineno}: expected {fmt}, got {len(tokens)} values on this line")
        rows.append(_parse_floats(tokens, f"{path}:{lineno}", fmt))
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
    root = _require_dir(scene_dir, "7-Scenes scene directory")
    if sequences is not None and split is not None:
        raise ValueError(f"give either split ('{split}') or sequences ({list(sequences)}), not both")
    if sequences is not None:
        seq_nums = [_seven_seq_number(s, "sequences") for s in sequences]
        label = "sequences"
    else:
        split = "train" if split is None else split
        label = split
        if split in ("train", "test"):
            split_file = _require_file(root / ("TrainSplit.txt" if split == "train" else "TestSplit.txt"),
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
        stamps_ns=_synthetic_stamps(np.asarray(seqs), np.asarray(frames), rate_hz),
        poses_n44=np.stack(poses), intrinsics=intrinsics or SEVEN_SCENES_INTRINSICS,
        image_loader=ImageLoader(paths), depths=np.stack(depths) if with_depth else None, names=names,
        skipped=skipped, source=f"7-Scenes {root.name} ({label}: {seq_label})")
    logger.info("read %s", ds.summary())
    return ds


# --------------------------------------------------------------------------
# Cambridge Landmarks
# --------------------------------------------------------------------------

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
        focal = _parse_floats(tokens[1:2], f"{path}:{lineno}", fmt)[0]
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
            vals = _parse_floats(tokens[1:], where, _CAMBRIDGE_FORMAT)
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
    root = _require_dir(scene_dir, "Cambridge Landmarks scene directory")
    if split in ("train", "test"):
        list_files = [root / f"dataset_{split}.txt"]
    elif split == "all":
        list_files = [root / "dataset_train.txt", root / "dataset_test.txt"]
    else:
        raise ValueError(f"split must be 'train', 'test' or 'all', got '{split}'")
    entries: list[tuple[str, str, list[float]]] = []  # (where, name, values)
    for lf in list_files:
        _require_file(lf, f"Cambridge {split} list")
        entries.extend((f"{lf}:{ln}", name, vals) for ln, name, vals in _read_cambridge_list(lf))
    if not entries:
        raise ValueError(f"{', '.join(str(f) for f in list_files)} list no frames after the 3 header lines "
                         f"(expected {_CAMBRIDGE_FORMAT})")

    vals = np.asarray([e[2] for e in entries], dtype=np.float64)
    # The one (w, x, y, z) -> (x, y, z, w) boundary for this layout.
    q_xyzw = _normalize_quats_at(quat_wxyz_to_xyzw(vals[:, 3:7]), [e[0] for e in entries])
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
        stamps = _synthetic_stamps(np.asarray([int(m.group(1)) for m in matches]),
                                   np.asarray([int(m.group(2)) for m in matches]), rate_hz)
    else:
        stamps = _synthetic_stamps(np.zeros(len(names)), np.arange(len(names)), rate_hz)
    order = np.argsort(stamps, kind="stable")
    sorted_stamps = stamps[order]
    dup = np.nonzero(np.diff(sorted_stamps) == 0)[0]
    if len(dup):
        a, b = entries[order[dup[0]]], entries[order[dup[0] + 1]]
        raise ValueError(f"{b[0]}: frame '{b[1]}' has the same sequence and frame number as '{a[1]}' at {a[0]}")

    paths = [root / n for n in names]
    _check_images_exist(paths, ", ".join(str(f) for f in list_files))

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


# --------------------------------------------------------------------------
# TUM RGB-D
# --------------------------------------------------------------------------

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
    root = _require_dir(seq_dir, "TUM RGB-D sequence directory")
    rgb_txt = _require_file(root / "rgb.txt", "TUM image list")
    gt_stamps, gt_poses = read_tum_trajectory(_require_file(root / "groundtruth.txt", "TUM ground truth"))

    img_stamps: list[int] = []
    img_names: list[str] = []
    for lineno, tokens in _data_lines(rgb_txt):
        where = f"{rgb_txt}:{lineno}"
        if len(tokens) != 2:
            raise ValueError(f"{where}: expected {_RGB_TXT_FORMAT}, got '{' '.join(tokens)}'")
        img_stamps.append(_parse_stamp_ns(tokens[0], where))
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

    max_dt_ns = int(round(max_dt * _NS_PER_S))
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
    _check_images_exist(paths, str(rgb_txt))
    ds = PoseDataset(
        stamps_ns=stamps[sel], poses_n44=poses[sel], intrinsics=intrinsics or _tum_default_intrinsics(root),
        image_loader=ImageLoader(paths), names=names, skipped=skipped,
        source=f"TUM RGB-D {root.resolve().name}")
    logger.info("read %s", ds.summary())
    return ds


# --------------------------------------------------------------------------
# Layout detection
# --------------------------------------------------------------------------

def _looks_like_7scenes(root: Path) -> bool:
    if (root / "TrainSplit.txt").is_file() or (root / "TestSplit.txt").is_file():
        return True
    for seq in root.glob("seq-*"):
        if seq.is_dir() and any(seq.glob("frame-*.pose.txt")):
            return True
    return False


def detect_layout(path: str | Path) -> str:
    """Name of the layout (a key of :data:`LAYOUTS`) the directory ``path`` holds.

    Raises ``ValueError`` listing the layouts and the files each needs when none
    (or more than one) matches.
    """
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"'{root}' is not a directory; dataset layouts are folders ({', '.join(LAYOUTS)})")
    found = []
    if _looks_like_7scenes(root):
        found.append("7scenes")
    if (root / "dataset_train.txt").is_file() or (root / "dataset_test.txt").is_file():
        found.append("cambridge")
    if (root / "rgb.txt").is_file() and (root / "groundtruth.txt").is_file():
        found.append("tum_rgbd")
    needs = "; ".join(f"{name}: {need}" for name, need in LAYOUTS.items())
    if not found:
        raise ValueError(f"'{root}' is not a known dataset layout. Known layouts and what they need: {needs}")
    if len(found) > 1:
        raise ValueError(f"'{root}' matches several layouts ({', '.join(found)}); call its reader directly")
    return found[0]


def read_layout(path: str | Path, **kwargs) -> PoseDataset:
    """Detect the layout of directory ``path`` and read it; ``kwargs`` go to that reader.

    7-Scenes -> :func:`read_7scenes`, Cambridge Landmarks -> :func:`read_cambridge`,
    TUM RGB-D -> :func:`read_tum_rgbd`.
    """
    readers = {"7scenes": read_7scenes, "cambridge": read_cambridge, "tum_rgbd": read_tum_rgbd}
    return readers[detect_layout(path)](path, **kwargs)
