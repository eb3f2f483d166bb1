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
not used is counted with its reason (:class:`~reloc_ros.data.types.SkipReport`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from reloc_ros import conversions
from reloc_ros.data.tf_buffer import PoseSeries, TfBuffer, TfLookupError
from reloc_ros.data.types import (SKIP_DUPLICATE_STAMP, SKIP_UNDECODABLE, Intrinsics, PoseDataset,
                                  SkipReport)
from reloc_ros.errors import RelocError
from reloc_ros.geometry import is_rigid, make_pose
from reloc_ros.io_utils import atomic_path
from reloc_ros.preprocess import preprocess_image, preprocess_intrinsics

log = logging.getLogger(__name__)

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
TF_TYPES = ("tf2_msgs/msg/TFMessage", "tf/msg/tfMessage")  # the second: old ROS 1 bags
DEPTH_ENCODINGS = ("16UC1", "32FC1", "mono16")
SKIP_NO_DEPTH = "no aligned depth image"
_CACHE_VERSION = 1


@dataclass(frozen=True)
class BagSource:
    """Which topics and frames of a bag give images and ground truth.

    Every subcommand that reads a bag (extract, train, eval, replay) takes
    these same options with these same defaults.

    image_topic: colour image topic; None picks the only colour image topic.
    map_frame: frame the poses are expressed in.
    camera_frame: frame of the camera; None uses the images' header frame_id.
    pose_topic: take ground truth from this topic instead of TF.
    tolerance_s: how far a pose sample may be from an image stamp when it is
        held rather than interpolated (before the first / after the last
        sample, or across a gap), and how far TF may be extrapolated.
    max_gap_s: widest gap between two samples that is interpolated.
    depth_topic: aligned depth images (same stamp and size as the colour).
    """

    image_topic: str | None = None
    map_frame: str = "map"
    camera_frame: str | None = None
    pose_topic: str | None = None
    tolerance_s: float = 0.05
    max_gap_s: float = 0.5
    depth_topic: str | None = None

    def __post_init__(self) -> None:
        if self.tolerance_s < 0:
            raise ValueError(f"tolerance must be >= 0 s, got {self.tolerance_s}")
        if self.max_gap_s <= 0:
            raise ValueError(f"max gap must be > 0 s, got {self.max_gap_s}")


def bag_source_from_metadata(meta: dict) -> BagSource:
    """Return the bag options a model was trained with (``meta['bag_source']``); defaults where absent.

    Without the depth topic: depth only labels training pairs (CamNet), and a
    query bag need not have it.
    """
    trained = meta.get("bag_source") or {}
    return BagSource(**{f.name: trained[f.name] for f in fields(BagSource) if f.name in trained and
                        f.name != "depth_topic"})


# ---------------------------------------------------------------------------
# Opening bags
# ---------------------------------------------------------------------------

def _bag_path(path: str | Path) -> Path:
    """Return the path rosbags wants: a rosbag2 directory or a ROS 1 .bag file."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"bag '{p}' does not exist")
    if p.is_file() and p.suffix in (".mcap", ".db3") and (p.parent / "metadata.yaml").exists():
        return p.parent  # a rosbag2 storage file: its directory is the bag
    if p.is_dir() and not (p / "metadata.yaml").exists():
        raise ValueError(f"'{p}' is a directory without metadata.yaml, so not a rosbag2 bag "
                         "(valid: a rosbag2 directory, its .mcap/.db3 file, or a ROS 1 .bag file)")
    if p.is_file() and p.suffix != ".bag" and p.suffix not in (".mcap", ".db3"):
        raise ValueError(f"'{p}' is not a bag (valid: a rosbag2 directory, its .mcap/.db3 file, "
                         "or a ROS 1 .bag file)")
    return p


class Bag:
    """An open bag (or several, read as one), with friendly errors.

    Use as a context manager: ``with Bag(paths) as bag: ...``.
    """

    def __init__(self, paths: str | Path | Sequence[str | Path]) -> None:
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        if isinstance(paths, (str, Path)):
            paths = [paths]
        if not paths:
            raise ValueError("no bag given")
        self.paths = [_bag_path(p) for p in paths]
        self.name = ", ".join(str(p) for p in self.paths)
        # ROS 2 bags written without embedded definitions need a default store.
        self._reader = AnyReader(self.paths, default_typestore=get_typestore(Stores.ROS2_HUMBLE))
        if not self._reader.is2 and all(p.is_dir() for p in self.paths):
            # rosbags takes any path ending in '.bag' for ROS 1, even a rosbag2 directory such as the
            # 'map.bag' that 'reloc-ros synth map.bag' (and 'ros2 bag record -o map.bag') writes.
            from rosbags.rosbag2 import Reader as Reader2

            self._reader.is2 = True
            self._reader.readers = [Reader2(p) for p in self.paths]

    def __enter__(self) -> "Bag":
        try:
            self._reader.open()
        except Exception as exc:  # rosbags raises several unrelated types for broken files
            raise RelocError(f"cannot open bag {self.name}: {exc} (truncated or corrupt?)") from exc
        return self

    def __exit__(self, *exc: object) -> None:
        self._reader.close()

    @property
    def topics(self) -> dict[str, str]:
        """Topic -> message type."""
        return {c.topic: c.msgtype for c in self._reader.connections}

    def message_count(self, topic: str) -> int:
        return sum(c.msgcount for c in self._reader.connections if c.topic == topic)

    def describe_topics(self, types: Sequence[str] | None = None) -> str:
        items = sorted((t, m) for t, m in self.topics.items() if types is None or m in types)
        return ", ".join(f"{t} ({m})" for t, m in items) or "none"

    def messages(self, topics: Sequence[str]) -> Iterator[tuple[str, int, object]]:
        """(topic, log time ns, deserialized message) in log-time order."""
        conns = [c for c in self._reader.connections if c.topic in topics]
        if not conns:  # rosbags reads an empty connection list as "all connections"
            return
        try:
            for conn, t_ns, raw in self._reader.messages(connections=conns):
                yield conn.topic, t_ns, self._reader.deserialize(raw, conn.msgtype)
        except RelocError:
            raise
        except Exception as exc:
            raise RelocError(f"error reading {', '.join(topics)} from bag {self.name}: {exc} "
                             "(truncated or corrupt?)") from exc

    def first_message(self, topic: str) -> object | None:
        for _, _, msg in self.messages([topic]):
            return msg
        return None


# ---------------------------------------------------------------------------
# Choosing topics
# ---------------------------------------------------------------------------

def _is_colour(bag: Bag, topic: str) -> bool:
    msg = bag.first_message(topic)
    if msg is None:
        return False
    if bag.topics[topic] == COMPRESSED_TYPE:
        return "compresseddepth" not in msg.format.lower().replace(" ", "")
    return msg.encoding not in DEPTH_ENCODINGS


def choose_image_topic(bag: Bag, image_topic: str | None) -> str:
    """Return the given topic after checking it, or the bag's only colour image topic."""
    image_types = (IMAGE_TYPE, COMPRESSED_TYPE)
    if image_topic is not None:
        if image_topic not in bag.topics:
            raise ValueError(f"image topic '{image_topic}' not in bag {bag.name}; image topics present: "
                             f"{bag.describe_topics(image_types)}")
        if bag.topics[image_topic] not in image_types:
            raise ValueError(f"topic '{image_topic}' has type {bag.topics[image_topic]}, not an image; "
                             f"image topics present: {bag.describe_topics(image_types)}")
        return image_topic
    colour = sorted(t for t, m in bag.topics.items() if m in image_types and _is_colour(bag, t))
    if len(colour) == 1:
        log.info("using image topic %s (the only colour image topic)", colour[0])
        return colour[0]
    if not colour:
        raise ValueError(f"bag {bag.name} has no colour image topic; topics present: {bag.describe_topics()}")
    raise ValueError(f"bag {bag.name} has several colour image topics: {', '.join(colour)}; "
                     "choose one with --image-topic")


def camera_info_topic(bag: Bag, image_topic: str) -> str | None:
    """Find the CameraInfo beside the image topic (image_transport's naming), or the only one."""
    infos = [t for t, m in bag.topics.items() if m == CAMERA_INFO_TYPE]
    base = image_topic.rsplit("/", 1)[0]
    for cand in (f"{base}/camera_info", f"{base.rsplit('/', 1)[0]}/camera_info"):
        if cand in infos:
            return cand
    return infos[0] if len(infos) == 1 else None


# ---------------------------------------------------------------------------
# Ground truth
# ---------------------------------------------------------------------------

def read_tf(bag: Bag, tolerance_s: float = 0.05, max_gap_s: float = 0.5) -> TfBuffer:
    """Fill a TF buffer from the bag's /tf and /tf_static (any TFMessage topic)."""
    buf = TfBuffer(tolerance_s=tolerance_s, max_gap_s=max_gap_s)
    tf_topics = [t for t, m in bag.topics.items() if m in TF_TYPES]
    rows, xyz, xyzw = [], [], []
    for topic, _, msg in bag.messages(tf_topics):
        for tr in msg.transforms:
            rows.append((tr.header.frame_id, tr.child_frame_id, conversions.stamp_to_ns(tr.header.stamp),
                         topic.endswith("tf_static"), topic))
            xyz.append((tr.transform.translation.x, tr.transform.translation.y, tr.transform.translation.z))
            q = tr.transform.rotation
            xyzw.append((q.x, q.y, q.z, q.w))
    if not rows:
        return buf
    # One vectorised conversion: per-message scipy calls dominated reading TF.
    q_n4 = np.asarray(xyzw, dtype=np.float64)
    t_n3 = np.asarray(xyz, dtype=np.float64)
    norms = np.linalg.norm(q_n4, axis=1)
    bad = ~(np.isfinite(q_n4).all(1) & np.isfinite(t_n3).all(1) & (norms > 1e-9))
    if bad.any():
        parent, child, stamp, _, topic = rows[int(np.flatnonzero(bad)[0])]
        raise RelocError(f"bad transform {parent} -> {child} on {topic} at {stamp * 1e-9:.3f} s: NaN, inf or "
                         f"zero-norm quaternion ({int(bad.sum())} such transforms in the bag)")
    poses = make_pose(t_n3, q_n4)
    for (parent, child, stamp, static, _), T in zip(rows, poses):
        buf.add(parent, child, stamp, T, static=static)
    return buf


def _read_pose_topic(bag: Bag, source: BagSource) -> tuple[PoseSeries, str]:
    """Read the pose topic as a series in the map frame, and the frame it is the pose of."""
    topic = source.pose_topic
    if topic not in bag.topics:
        raise ValueError(f"pose topic '{topic}' not in bag {bag.name}; pose topics present: "
                         f"{bag.describe_topics(conversions.POSE_MSGTYPES)}")
    if bag.topics[topic] not in conversions.POSE_MSGTYPES:
        raise ValueError(f"pose topic '{topic}' has type {bag.topics[topic]}; valid types: "
                         f"{', '.join(conversions.POSE_MSGTYPES)}")
    stamps, poses, frames, children = [], [], set(), set()
    for _, _, msg in bag.messages([topic]):
        try:
            stamp, frame, child, T = conversions.stamped_pose_from_msg(msg)
        except ValueError as exc:
            raise RelocError(f"bad pose on {topic}: {exc}") from exc
        stamps.append(stamp)
        poses.append(T)
        frames.add(frame.lstrip("/"))
        children.add(child.lstrip("/"))
    if not stamps:
        raise RelocError(f"pose topic '{topic}' in bag {bag.name} has no messages")
    if frames != {source.map_frame}:
        raise ValueError(f"poses on '{topic}' are in frame(s) {', '.join(sorted(frames))}, but the map frame is "
                         f"'{source.map_frame}'; pass --map-frame {sorted(frames)[0]}")
    if len(children) > 1:
        raise RelocError(f"poses on '{topic}' describe several frames: {', '.join(sorted(children))}")
    series = PoseSeries.from_samples(np.array(stamps), np.array(poses))
    if series.duplicates:
        log.warning("pose topic %s: ignored %d messages with a repeated stamp", topic, series.duplicates)
    return series, children.pop()


def _ground_truth(bag: Bag, source: BagSource, camera_frame: str, tf: TfBuffer,
                  stamps: np.ndarray) -> tuple[np.ndarray, list[str | None]]:
    """T_map_cam at each image stamp, with a skip reason where there is none."""
    if source.pose_topic is None:
        try:
            return tf.lookup_many(source.map_frame, camera_frame, stamps)
        except TfLookupError as exc:
            raise ValueError(f"ground truth from TF in bag {bag.name}: {exc}; use --map-frame/--camera-frame, "
                             "or --pose-topic for ground truth from a pose topic") from exc
    series, body = _read_pose_topic(bag, source)
    T_map_body, reasons = series.interpolate(stamps, source.tolerance_s, source.max_gap_s)
    if body and body != camera_frame:
        # The topic gives the pose of e.g. base_link: add the camera extrinsics from TF.
        try:
            T_body_cam, r2 = tf.lookup_many(body, camera_frame, stamps)
        except TfLookupError as exc:
            raise ValueError(f"poses on '{source.pose_topic}' are of frame '{body}', but TF does not connect it "
                             f"to camera frame '{camera_frame}': {exc}") from exc
        return T_map_body @ T_body_cam, [a or b for a, b in zip(reasons, r2)]
    return T_map_body, reasons


# ---------------------------------------------------------------------------
# Reading a dataset
# ---------------------------------------------------------------------------

def _decode(msg: object, msgtype: str) -> np.ndarray:
    if msgtype == COMPRESSED_TYPE:
        return conversions.compressed_to_rgb8(msg)
    return conversions.image_to_rgb8(msg)


def _resize(img: np.ndarray, size: tuple[int, int] | None, mode: str, nearest: bool = False) -> np.ndarray:
    if size is None:
        return img
    return preprocess_image(img, mode, size, nearest=nearest)


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
        the source options and the size, so later reads skip decoding.
    """
    if image_size is not None:
        w, h = image_size
        if w <= 0 or h <= 0:
            raise ValueError(f"image size must be positive, got {w}x{h}")
    key = None
    if cache_dir is not None and load_images:
        key = _cache_key(paths, source, image_size, preprocessing)
        cached = _load_cache(Path(cache_dir), key)
        if cached is not None:
            return cached
    with Bag(paths) as bag:
        ds = _read(bag, source, load_images, image_size, progress, preprocessing)
    if key is not None:
        _save_cache(Path(cache_dir), key, ds)
    return ds


def _read(bag: Bag, source: BagSource, load_images: bool, image_size: tuple[int, int] | None,
          progress: bool, mode: str) -> PoseDataset:
    image_topic = choose_image_topic(bag, source.image_topic)
    msgtype = bag.topics[image_topic]
    depth_topic = source.depth_topic
    if depth_topic is not None and depth_topic not in bag.topics:
        raise ValueError(f"depth topic '{depth_topic}' not in bag {bag.name}; image topics present: "
                         f"{bag.describe_topics((IMAGE_TYPE,))}")
    tf = read_tf(bag, source.tolerance_s, source.max_gap_s)
    skipped = SkipReport()

    # One pass over the images: header stamps (what TF is looked up at), frame ids, decoded frames.
    total = bag.message_count(image_topic)
    if total == 0:
        raise RelocError(f"image topic '{image_topic}' in bag {bag.name} has no messages")
    from tqdm import tqdm

    stamps, frame_ids, images = [], set(), []
    undecodable = np.zeros(total, dtype=bool)
    native_size = None
    bar = tqdm(total=total, desc=f"reading {image_topic}", unit="frame", disable=not progress)
    for k, (_, _, msg) in enumerate(bag.messages([image_topic])):
        stamps.append(conversions.stamp_to_ns(msg.header.stamp))
        frame_ids.add(msg.header.frame_id.lstrip("/"))
        images.append(None)
        bar.update()
        if not load_images:
            continue
        try:
            img = _decode(msg, msgtype)
        except ValueError as exc:
            if not undecodable.any():
                log.warning("%s: undecodable image at %.3f s: %s", image_topic, stamps[-1] * 1e-9, exc)
            undecodable[k] = True
            continue
        native_size = (img.shape[1], img.shape[0])
        images[k] = _resize(img, image_size, mode)
    bar.close()
    stamps_arr = np.array(stamps, dtype=np.int64)
    if source.camera_frame is None and len(frame_ids) > 1:
        raise ValueError(f"images on '{image_topic}' have several frame ids ({', '.join(sorted(frame_ids))}); "
                         "choose one with --camera-frame")
    image_frames = sorted(frame_ids)
    camera_frame = source.camera_frame or image_frames[0]
    if np.any(np.diff(stamps_arr) < 0):
        log.warning("%s: image stamps are not monotonic; frames are ordered by stamp", image_topic)

    poses, reasons = _ground_truth(bag, source, camera_frame, tf, stamps_arr)
    use = np.zeros(len(stamps_arr), dtype=bool)
    seen: set[int] = set()
    for i, r in enumerate(reasons):
        if r is None and undecodable[i]:
            r = SKIP_UNDECODABLE
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
    intrinsics = _intrinsics(bag, image_topic, native_size, image_size, mode)

    order = np.flatnonzero(use)
    order = order[np.argsort(stamps_arr[order], kind="stable")]
    depths = None
    if depth_topic is not None and load_images:
        colour_frame = image_frames[0] if len(image_frames) == 1 else None
        depths, order = _aligned_depth(depth_by_stamp, stamps_arr, order, native_size, image_size, mode,
                                       depth_topic, skipped, colour_frame)
    if len(order) == 0:
        raise RelocError(f"no posed frames in bag {bag.name} on '{image_topic}' "
                         f"(map frame '{source.map_frame}', camera frame '{camera_frame}'): {skipped}")
    ds = PoseDataset(
        stamps_ns=stamps_arr[order], poses_n44=poses[order], intrinsics=intrinsics,
        images=np.stack([images[i] for i in order]) if load_images else None, depths=depths,
        skipped=skipped, source=f"{bag.name} {image_topic}", map_frame=source.map_frame, camera_frame=camera_frame)
    log.info("%s", ds.summary())
    return ds


def read_camera_intrinsics(bag: Bag, image_topic: str) -> Intrinsics | None:
    """Return the intrinsics of the CameraInfo beside ``image_topic`` (its first message), or None without one."""
    info_topic = camera_info_topic(bag, image_topic)
    msg = None if info_topic is None else bag.first_message(info_topic)
    return None if msg is None else conversions.camera_info_to_intrinsics(msg)


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
    unlabelled input of PMNet_ud's alignment). Undecodable frames are skipped
    with one warning.
    """
    from tqdm import tqdm

    with Bag(paths) as bag:
        topic = choose_image_topic(bag, image_topic)
        msgtype = bag.topics[topic]
        stamps, images, bad = [], [], 0
        for _, _, msg in tqdm(bag.messages([topic]), total=bag.message_count(topic), desc=f"reading {topic}",
                              unit="frame", disable=not progress):
            try:
                img = _decode(msg, msgtype)
            except ValueError as exc:
                if not bad:
                    log.warning("%s: undecodable image: %s", topic, exc)
                bad += 1
                continue
            stamps.append(conversions.stamp_to_ns(msg.header.stamp))
            images.append(_resize(img, image_size, preprocessing))
    if not images:
        raise RelocError(f"no decodable image on '{topic}' in {bag.name}")
    order = np.argsort(np.array(stamps, dtype=np.int64), kind="stable")
    return np.array(stamps, dtype=np.int64)[order], np.stack(images)[order]


def _aligned_depth(depth_by_stamp: dict[int, object], stamps: np.ndarray, order: np.ndarray,
                   native_size: tuple[int, int] | None, image_size: tuple[int, int] | None, mode: str, topic: str,
                   skipped: SkipReport, colour_frame: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Depth (metres, NaN invalid) for each kept frame; frames without one are skipped."""
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
        d = conversions.depth_to_metres(msg)
        if native_size is not None and (d.shape[1], d.shape[0]) != native_size:
            raise ValueError(f"depth on '{topic}' is {d.shape[1]}x{d.shape[0]} but the colour images are "
                             f"{native_size[0]}x{native_size[1]}: depth must be aligned (registered) to colour")
        keep.append(i)
        depths.append(_resize(d, image_size, mode, nearest=True))  # never blend depth across edges
    if not keep:
        return np.zeros((0, 1, 1), np.float32), np.array([], dtype=np.int64)
    return np.stack(depths).astype(np.float32), np.array(keep, dtype=np.int64)


# ---------------------------------------------------------------------------
# Cache of decoded frames
# ---------------------------------------------------------------------------

def _cache_key(paths: str | Path | Sequence[str | Path], source: BagSource,
               image_size: tuple[int, int] | None, mode: str) -> str:
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files = []
    for p in paths:
        p = _bag_path(p).resolve()
        for f in sorted([p] if p.is_file() else p.rglob("*")):
            if f.is_file():
                st = f.stat()
                files.append((str(f), st.st_size, st.st_mtime_ns))
    blob = json.dumps({"v": _CACHE_VERSION, "files": files, "source": asdict(source),
                       "size": list(image_size) if image_size else None, "mode": mode}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _load_cache(cache_dir: Path, key: str) -> PoseDataset | None:
    meta_path = cache_dir / f"{key}.json"
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        arrays = np.load(cache_dir / f"{key}.npz")
        images = np.load(cache_dir / f"{key}.images.npy", mmap_mode="r")
        depths = np.load(cache_dir / f"{key}.depths.npy", mmap_mode="r") if meta["has_depth"] else None
        skipped = SkipReport()
        for reason, n in meta["skipped"].items():
            skipped.add(reason, n)
        ds = PoseDataset(stamps_ns=arrays["stamps_ns"], poses_n44=arrays["poses_n44"],
                         intrinsics=Intrinsics(**meta["intrinsics"]) if meta["intrinsics"] else None,
                         images=images, depths=depths, skipped=skipped, source=meta["source"],
                         map_frame=meta["map_frame"], camera_frame=meta["camera_frame"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable cache entry %s: %s", meta_path, exc)
        return None
    log.info("read %d decoded frames from cache %s", len(ds), meta_path)
    return ds


def _save_cache(cache_dir: Path, key: str, ds: PoseDataset) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Arrays first, metadata last: an entry only counts once its .json exists.
    with atomic_path(cache_dir / f"{key}.images.npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(ds.images))
    if ds.depths is not None:
        with atomic_path(cache_dir / f"{key}.depths.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, ds.depths)
    with atomic_path(cache_dir / f"{key}.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, stamps_ns=ds.stamps_ns, poses_n44=ds.poses_n44)
    meta = {"source": ds.source, "map_frame": ds.map_frame, "camera_frame": ds.camera_frame,
            "intrinsics": asdict(ds.intrinsics) if ds.intrinsics else None,
            "skipped": dict(ds.skipped.counts), "has_depth": ds.depths is not None}
    with atomic_path(cache_dir / f"{key}.json") as tmp:
        tmp.write_text(json.dumps(meta))
