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

"""(image, camera pose in map) pairs from rosbag2 (mcap, sqlite3) and ROS 1 bags.

Reading uses the ``rosbags`` library, so no ROS installation is needed.
Ground truth comes either from TF (``/tf`` + ``/tf_static``, any chain from the
map frame to the camera frame) or from a pose topic (PoseStamped,
PoseWithCovarianceStamped, Odometry, TransformStamped). Every frame that is
not used is counted with its reason (:class:`~reloc_ros.data.types.SkipReport`):
an image that cannot be decoded, ground truth missing or from a bad sample.
Arrays grow with the messages read: a bag's metadata counts are never trusted.

This module reads datasets; it also gives the names of the modules it is
built on, as importers have always found them here: opening bags and
choosing topics (:mod:`~reloc_ros.data.bag_file`), ground truth
(:mod:`~reloc_ros.data.ground_truth`), the cache of decoded frames
(:mod:`~reloc_ros.data.frame_cache`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from reloc_ros import conversions
from reloc_ros.conversions.images import UndecodableImage, check_compressed_rgb8, check_rgb8_image
from reloc_ros.data.bag_file import (CAMERA_INFO_TYPE, COMPRESSED_TYPE, DEPTH_ENCODINGS, IMAGE_TYPE, TF_TYPES, Bag,
                                     BagSource, bag_source_from_metadata, camera_info_topic, choose_image_topic,
                                     read_camera_intrinsics)
from reloc_ros.data.frame_cache import cache_key, check_cache_dir, load_cache, save_cache
from reloc_ros.data.ground_truth import ground_truth_at, read_pose_topic, read_tf
from reloc_ros.data.types import (SKIP_DEPTH_UNDECODABLE, SKIP_DUPLICATE_STAMP, SKIP_IMAGE_SIZE, SKIP_NO_DEPTH,
                                  SKIP_UNDECODABLE, Intrinsics, PoseDataset, SkipReport, with_detail)
from reloc_ros.errors import RelocError
from reloc_ros.geometry import is_rigid
from reloc_ros.preprocess import preprocess_image, preprocess_intrinsics

__all__ = [
    "IMAGE_TYPE", "COMPRESSED_TYPE", "CAMERA_INFO_TYPE", "TF_TYPES", "DEPTH_ENCODINGS", "SKIP_NO_DEPTH",
    "Bag", "BagSource", "bag_source_from_metadata", "choose_image_topic", "camera_info_topic",
    "read_camera_intrinsics", "read_tf", "read_pose_topic", "read_bag_dataset", "read_bag_images",
]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------

def _decode(msg: object, msgtype: str) -> np.ndarray:
    if msgtype == COMPRESSED_TYPE:
        return conversions.compressed_to_rgb8(msg)
    return conversions.image_to_rgb8(msg)


def _resize(img: np.ndarray, size: tuple[int, int] | None, mode: str, nearest: bool = False) -> np.ndarray:
    if size is None:
        return img
    return preprocess_image(img, mode, size, nearest=nearest)


@dataclass
class _Frames:
    """Every message of an image topic, in log order: stamp, pixels (if decoded) and why it is unusable."""

    stamps: list[int] = field(default_factory=list)
    images: list[np.ndarray | None] = field(default_factory=list)
    problems: list[str | None] = field(default_factory=list)
    frame_ids: set[str] = field(default_factory=set)  # of the usable frames
    native_size: tuple[int, int] | None = None  # (width, height) of the first usable frame


def _read_frames(bag: Bag, topic: str, load_images: bool, image_size: tuple[int, int] | None, mode: str,
                 progress: bool) -> _Frames:
    """One pass over the images: header stamps (what TF is looked up at), frame ids, pixels, problems.

    Without ``load_images`` each image is only checked (header and data
    length; compressed ones decoded as grey), so the same frames are usable
    either way. A frame of another size than the first usable one is
    unusable (one CameraInfo, one network input size).
    """
    from tqdm import tqdm

    msgtype = bag.topics[topic]
    check = check_compressed_rgb8 if msgtype == COMPRESSED_TYPE else check_rgb8_image
    out, warned = _Frames(), set()
    # The metadata's count only sizes the progress bar; it may be wrong either way.
    bar = tqdm(total=bag.message_count(topic) or None, desc=f"reading {topic}", unit="frame", disable=not progress)
    for _, _, msg in bag.messages([topic]):
        bar.update()
        stamp = conversions.stamp_to_ns(msg.header.stamp)
        out.stamps.append(stamp)
        out.images.append(None)
        img = None
        try:
            if load_images:
                img = _decode(msg, msgtype)
                size = (img.shape[1], img.shape[0])
            else:
                size = check(msg)
        except UndecodableImage as exc:
            problem, detail = with_detail(SKIP_UNDECODABLE, exc.reason), str(exc)
        else:
            out.native_size = out.native_size or size
            problem = None if size == out.native_size else SKIP_IMAGE_SIZE
            detail = f"{size[0]}x{size[1]}, the first image is {out.native_size[0]}x{out.native_size[1]}"
        if problem is not None and problem not in warned:
            warned.add(problem)
            log.warning("%s: frame at %.3f s skipped, %s: %s", topic, stamp * 1e-9, problem, detail)
        out.problems.append(problem)
        if problem is None:
            out.frame_ids.add(msg.header.frame_id.lstrip("/"))
            if img is not None:
                out.images[-1] = _resize(img, image_size, mode)
    bar.close()
    return out


def _check_frames(bag: Bag, topic: str, frames: _Frames) -> None:
    if not frames.stamps:
        raise RelocError(f"image topic '{topic}' in bag {bag.name} holds no messages")
    if not frames.frame_ids:
        unusable = SkipReport()
        for p in frames.problems:
            unusable.add(p)
        raise RelocError(f"no usable image on '{topic}' in bag {bag.name}: {unusable}")


# ---------------------------------------------------------------------------
# Reading a dataset
# ---------------------------------------------------------------------------

def read_bag_dataset(paths: str | Path | Sequence[str | Path], source: BagSource = BagSource(),
                     load_images: bool = True, image_size: tuple[int, int] | None = None,
                     cache_dir: str | Path | None = None, progress: bool = False,
                     preprocessing: str = "resize") -> PoseDataset:
    """Read posed frames from bag(s).

    image_size: (width, height) to bring images to, or None to keep them as
        recorded; intrinsics follow.
    preprocessing: how to reach ``image_size``: 'resize' the whole image or
        'crop' the centre after scaling (see :mod:`reloc_ros.preprocess`).
    cache_dir: keep decoded (resized) frames there, keyed by the bags' files,
        the source options and the size, so later reads skip decoding. It is
        checked before any work.
    """
    if image_size is not None:
        w, h = image_size
        if w <= 0 or h <= 0:
            raise ValueError(f"image size must be positive, got {w}x{h}")
    key = None
    if cache_dir is not None and load_images:
        check_cache_dir(cache_dir)
        key = cache_key(paths, source, image_size, preprocessing)
        cached = load_cache(Path(cache_dir), key)
        if cached is not None:
            return cached
    with Bag(paths) as bag:
        ds = _read(bag, source, load_images, image_size, progress, preprocessing)
    if key is not None:
        save_cache(Path(cache_dir), key, ds)
    return ds


def _read(bag: Bag, source: BagSource, load_images: bool, image_size: tuple[int, int] | None,
          progress: bool, mode: str) -> PoseDataset:
    image_topic = choose_image_topic(bag, source.image_topic)
    depth_topic = source.depth_topic
    if depth_topic is not None and depth_topic not in bag.topics:
        raise ValueError(f"depth topic '{depth_topic}' not in bag {bag.name}; image topics present: "
                         f"{bag.describe_topics((IMAGE_TYPE,))}")
    tf = read_tf(bag, source.tolerance_s, source.max_gap_s)
    skipped = SkipReport()

    frames = _read_frames(bag, image_topic, load_images, image_size, mode, progress)
    _check_frames(bag, image_topic, frames)
    stamps_arr = np.array(frames.stamps, dtype=np.int64)
    if source.camera_frame is None and len(frames.frame_ids) > 1:
        raise ValueError(f"images on '{image_topic}' have several frame ids ({', '.join(sorted(frames.frame_ids))}); "
                         "choose one with --camera-frame")
    image_frames = sorted(frames.frame_ids)
    camera_frame = source.camera_frame or image_frames[0]
    if np.any(np.diff(stamps_arr) < 0):
        log.warning("%s: image stamps are not monotonic; frames are ordered by stamp", image_topic)

    poses, reasons, ignored = ground_truth_at(bag, source, camera_frame, tf, stamps_arr)
    for reason, n in ignored.items():
        skipped.add_ignored_sample(reason, n)
    use = np.zeros(len(stamps_arr), dtype=bool)
    seen: set[int] = set()
    for i, r in enumerate(reasons):
        if r is None and frames.problems[i] is not None:
            r = frames.problems[i]
        elif r is None and int(stamps_arr[i]) in seen:
            r = SKIP_DUPLICATE_STAMP  # keep the first, as a TF buffer would
        if r is not None:
            skipped.add(r)
            continue
        if not is_rigid(poses[i]):
            raise RelocError(f"ground truth at {stamps_arr[i] * 1e-9:.3f} s is not a rigid transform")
        seen.add(int(stamps_arr[i]))
        use[i] = True
    depth_by_stamp: dict[int, object] = {}
    if depth_topic is not None and load_images:
        for _, _, msg in bag.messages([depth_topic]):
            depth_by_stamp[conversions.stamp_to_ns(msg.header.stamp)] = msg
    # Without decoded images the size is not checked against CameraInfo (extract needs no intrinsics).
    intrinsics = _intrinsics(bag, image_topic, frames.native_size if load_images else None, image_size, mode)

    order = np.flatnonzero(use)
    order = order[np.argsort(stamps_arr[order], kind="stable")]
    depths = None
    if depth_topic is not None and load_images:
        colour_frame = image_frames[0] if len(image_frames) == 1 else None
        depths, order = _aligned_depth(depth_by_stamp, stamps_arr, order, frames.native_size, image_size, mode,
                                       depth_topic, skipped, colour_frame)
    if len(order) == 0:
        raise RelocError(f"no posed frames in bag {bag.name} on '{image_topic}' "
                         f"(map frame '{source.map_frame}', camera frame '{camera_frame}'): {skipped}")
    ds = PoseDataset(
        stamps_ns=stamps_arr[order], poses_n44=poses[order], intrinsics=intrinsics,
        images=np.stack([frames.images[i] for i in order]) if load_images else None, depths=depths,
        skipped=skipped, source=f"{bag.name} {image_topic}", map_frame=source.map_frame, camera_frame=camera_frame)
    log.info("%s", ds.summary())
    return ds


def _intrinsics(bag: Bag, image_topic: str, native_size: tuple[int, int] | None,
                image_size: tuple[int, int] | None, mode: str) -> Intrinsics | None:
    info_topic = camera_info_topic(bag, image_topic)
    K = read_camera_intrinsics(bag, image_topic)
    if K is None:
        log.warning("no CameraInfo for %s: intrinsics unknown", image_topic)
        return None
    if native_size is not None and (K.width, K.height) != native_size:
        raise RelocError(f"CameraInfo on '{info_topic}' is for {K.width}x{K.height} images but '{image_topic}' "
                         f"has {native_size[0]}x{native_size[1]}")
    return preprocess_intrinsics(K, mode, image_size) if image_size is not None else K


def read_bag_images(paths: str | Path | Sequence[str | Path], image_topic: str | None = None,
                    image_size: tuple[int, int] | None = None, preprocessing: str = "resize",
                    progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read only the images of bag(s): ``(stamps_ns, images_nhw3)``, ordered by stamp.

    Reads no TF and no pose topic: nothing about where the camera was (the
    unlabelled input of PMNet_ud's alignment). Unusable frames (undecodable,
    another size) are skipped with a warning per reason and a count by reason.
    """
    with Bag(paths) as bag:
        topic = choose_image_topic(bag, image_topic)
        frames = _read_frames(bag, topic, True, image_size, preprocessing, progress)
    _check_frames(bag, topic, frames)
    keep = [i for i, p in enumerate(frames.problems) if p is None]
    if len(keep) < len(frames.problems):
        unusable = SkipReport()
        for p in frames.problems:
            if p is not None:
                unusable.add(p)
        log.warning("%s: %s", topic, unusable)
    stamps = np.array([frames.stamps[i] for i in keep], dtype=np.int64)
    order = np.argsort(stamps, kind="stable")
    return stamps[order], np.stack([frames.images[i] for i in keep])[order]


def _aligned_depth(depth_by_stamp: dict[int, object], stamps: np.ndarray, order: np.ndarray,
                   native_size: tuple[int, int] | None, image_size: tuple[int, int] | None, mode: str, topic: str,
                   skipped: SkipReport, colour_frame: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Depth (metres, NaN invalid) for each kept frame; frames without a decodable one are skipped."""
    keep, depths = [], []
    for i in order:
        msg = depth_by_stamp.get(int(stamps[i]))
        if msg is None:
            skipped.add(SKIP_NO_DEPTH)
            continue
        depth_frame = msg.header.frame_id.lstrip("/")
        if colour_frame is not None and depth_frame != colour_frame:
            raise ValueError(f"depth on '{topic}' is in frame '{depth_frame}' but the colour images are in "
                             f"'{colour_frame}': depth must be aligned (registered) to colour, e.g. a driver's "
                             f"aligned_depth_to_color topic")
        try:
            d = conversions.depth_to_metres(msg)
        except UndecodableImage as exc:
            reason = with_detail(SKIP_DEPTH_UNDECODABLE, exc.reason)
            if reason not in skipped.counts:
                log.warning("%s: depth at %.3f s skipped: %s", topic, stamps[i] * 1e-9, exc)
            skipped.add(reason)
            continue
        if native_size is not None and (d.shape[1], d.shape[0]) != native_size:
            raise ValueError(f"depth on '{topic}' is {d.shape[1]}x{d.shape[0]} but the colour images are "
                             f"{native_size[0]}x{native_size[1]}: depth must be aligned (registered) to colour")
        keep.append(i)
        depths.append(_resize(d, image_size, mode, nearest=True))  # never blend depth across edges
    if not keep:
        return np.zeros((0, 1, 1), np.float32), np.array([], dtype=np.int64)
    return np.stack(depths).astype(np.float32), np.array(keep, dtype=np.int64)
