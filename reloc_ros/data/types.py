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

"""The dataset type every reader produces: (image, camera pose in map, stamp, intrinsics).

Bags, 7-Scenes, Cambridge Landmarks and TUM RGB-D are all read into a
:class:`PoseDataset`, so training and evaluation never care where frames came
from.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

# Reasons a frame is skipped, shared by every reader so reports read alike.
SKIP_NO_TF_YET = "no TF yet (image before the first transform sample)"
SKIP_OUTSIDE_TOLERANCE = "ground truth outside tolerance"
SKIP_UNDECODABLE = "image undecodable"
SKIP_NO_POSE = "no ground-truth pose"
SKIP_AFTER_LAST_TF = "no TF anymore (image after the last transform sample)"
SKIP_DUPLICATE_STAMP = "duplicate image stamp"
SKIP_NO_DEPTH = "no aligned depth image"
SKIP_DEPTH_UNDECODABLE = "depth image undecodable"
SKIP_IMAGE_SIZE = "image size differs from the topic's first image"
SKIP_BAD_TF = "ground truth from a bad TF sample"
SKIP_BAD_POSE = "ground truth from a bad pose sample"
# Ground-truth samples (not frames) that are ignored, as tf2 ignores them (SkipReport.ignored_samples).
BAD_TF_SAMPLE = "bad TF sample"
BAD_POSE_SAMPLE = "bad pose sample"


def with_detail(reason: str, detail: str) -> str:
    """Return a reason with its detail, e.g. ``image undecodable (unknown encoding)``, as reports count it."""
    return f"{reason} ({detail})"


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of an image of ``width`` x ``height`` pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        vals = (self.fx, self.fy, self.cx, self.cy)
        if not all(np.isfinite(v) for v in vals) or self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"intrinsics need finite fx, fy > 0, got fx={self.fx}, fy={self.fy}, "
                             f"cx={self.cx}, cy={self.cy}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")

    @property
    def K_33(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def scaled(self, width: int, height: int) -> "Intrinsics":
        """Intrinsics after resizing the whole image (no crop) to width x height.

        Uses the pixel-edge convention (pixel centres at +0.5), as OpenCV's
        resize does, so principal points scale about the image corner.
        """
        sx = width / self.width
        sy = height / self.height
        return Intrinsics(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5,
                          (self.cy + 0.5) * sy - 0.5, width, height)


@dataclass
class SkipReport:
    """Frames not used, counted by reason, so nothing disappears silently.

    ``ignored_samples`` counts, by reason, the ground-truth samples (TF,
    pose topic) that were ignored as tf2 would ignore them (NaN, zero or
    non-unit quaternion, ...); the frames whose ground truth they would have
    given are in ``counts``. ``total`` counts frames only.
    """

    counts: Counter = field(default_factory=Counter)
    ignored_samples: Counter = field(default_factory=Counter)

    def add(self, reason: str, n: int = 1) -> None:
        self.counts[reason] += n

    def add_ignored_sample(self, reason: str, n: int = 1) -> None:
        self.ignored_samples[reason] += n

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __str__(self) -> str:
        if not self.counts:
            text = "no frames skipped"
        else:
            parts = [f"{n} {reason}" for reason, n in self.counts.most_common()]
            text = f"{self.total} frames skipped: " + ", ".join(parts)
        if self.ignored_samples:
            n = sum(self.ignored_samples.values())
            parts = [f"{k} {reason}" for reason, k in self.ignored_samples.most_common()]
            text += f"; {n} ground-truth sample{'s' if n != 1 else ''} ignored: " + ", ".join(parts)
        return text


@dataclass
class PoseDataset:
    """Frames with camera poses in the map frame.

    ``poses_n44[i]`` is ``T_map_cam`` of frame i (camera optical frame: z forward,
    x right, y down, REP-103), ``stamps_ns[i]`` its stamp in nanoseconds.
    Images come from ``images`` (an ``N x H x W x 3`` uint8 RGB array, possibly a
    memmap) or, lazily, from ``image_loader(i)``; a dataset read for its
    trajectory only has neither.
    """

    stamps_ns: np.ndarray
    poses_n44: np.ndarray
    intrinsics: Intrinsics | None = None
    images: np.ndarray | None = None
    image_loader: Callable[[int], np.ndarray] | None = None
    depths: np.ndarray | None = None
    names: Sequence[str] | None = None
    skipped: SkipReport = field(default_factory=SkipReport)
    source: str = ""
    map_frame: str = "map"
    camera_frame: str = ""

    def __post_init__(self) -> None:
        self.stamps_ns = np.asarray(self.stamps_ns, dtype=np.int64)
        self.poses_n44 = np.asarray(self.poses_n44, dtype=np.float64).reshape(-1, 4, 4)
        n = len(self.stamps_ns)
        if len(self.poses_n44) != n:
            raise ValueError(f"{n} stamps but {len(self.poses_n44)} poses")
        if self.images is not None and len(self.images) != n:
            raise ValueError(f"{n} poses but {len(self.images)} images")
        if self.depths is not None and len(self.depths) != n:
            raise ValueError(f"{n} poses but {len(self.depths)} depth images")
        if self.names is not None and len(self.names) != n:
            raise ValueError(f"{n} poses but {len(self.names)} names")

    def __len__(self) -> int:
        return len(self.stamps_ns)

    @property
    def has_images(self) -> bool:
        return self.images is not None or self.image_loader is not None

    def image(self, i: int) -> np.ndarray:
        """Return the RGB uint8 pixels (H, W, 3) of frame i."""
        if self.images is not None:
            return np.asarray(self.images[i])
        if self.image_loader is not None:
            return self.image_loader(i)
        raise ValueError(f"dataset '{self.source}' was read without images")

    def subset(self, indices: Sequence[int] | np.ndarray) -> "PoseDataset":
        """Return a dataset of the given frames (e.g. a train or validation split)."""
        idx = np.asarray(indices, dtype=np.int64)
        loader = None
        if self.image_loader is not None and self.images is None:
            base = self.image_loader
            loader = lambda i: base(int(idx[i]))  # noqa: E731 - tiny closure over idx
        return PoseDataset(
            stamps_ns=self.stamps_ns[idx], poses_n44=self.poses_n44[idx], intrinsics=self.intrinsics,
            images=None if self.images is None else self.images[idx], image_loader=loader,
            depths=None if self.depths is None else self.depths[idx],
            names=None if self.names is None else [self.names[i] for i in idx],
            skipped=self.skipped, source=self.source, map_frame=self.map_frame,
            camera_frame=self.camera_frame)

    def summary(self) -> str:
        pos = self.poses_n44[:, :3, 3]
        extent = (pos.max(0) - pos.min(0)) if len(pos) else np.zeros(3)
        dur = (self.stamps_ns[-1] - self.stamps_ns[0]) / 1e9 if len(self) > 1 else 0.0
        return (f"{len(self)} posed frames from {self.source or 'unknown source'} over {dur:.1f} s, "
                f"extent {extent[0]:.2f} x {extent[1]:.2f} x {extent[2]:.2f} m; {self.skipped}")


def write_tum(path: str | Path, stamps_ns: np.ndarray, poses_n44: np.ndarray) -> None:
    """Write a TUM trajectory (``stamp tx ty tz qx qy qz qw``), the format evo reads.

    Written atomically: a crash never leaves a half-written file. A bad path
    (a directory, a missing or read-only directory) is a ``ValueError`` saying so.
    """
    from reloc_ros.geometry import pose_to_tq
    from reloc_ros.io_utils import atomic_write_text, check_output_file

    check_output_file(path, "TUM trajectory")
    t_n3, q_n4 = pose_to_tq(np.asarray(poses_n44).reshape(-1, 4, 4))
    lines = ["# timestamp tx ty tz qx qy qz qw"]
    for s, t, q in zip(np.asarray(stamps_ns, dtype=np.int64), t_n3, q_n4):
        sec, nsec = divmod(int(s), 1_000_000_000)
        lines.append(f"{sec}.{nsec:09d} " + " ".join(f"{v:.9f}" for v in (*t, *q)))
    atomic_write_text(path, "\n".join(lines) + "\n")
