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

"""Opening bags (rosbag2 mcap/sqlite3, ROS 1) and choosing their topics, with errors that name the bag.

:class:`Bag` reads one or several bags as one, in log-time order, through
the ``rosbags`` library (no ROS installation). A broken bag among several is
named alone. Nothing here trusts the message counts of a bag's metadata:
topics are judged by the messages they hold.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Sequence

from reloc_ros import conversions
from reloc_ros.data.types import Intrinsics
from reloc_ros.errors import RelocError

log = logging.getLogger(__name__)

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
TF_TYPES = ("tf2_msgs/msg/TFMessage", "tf/msg/tfMessage")  # the second: old ROS 1 bags
DEPTH_ENCODINGS = ("16UC1", "32FC1", "mono16")


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

def bag_path(path: str | Path) -> Path:
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


def _any_reader(paths: list[Path]) -> Any:
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    # ROS 2 bags written without embedded definitions need a default store.
    reader = AnyReader(paths, default_typestore=get_typestore(Stores.ROS2_HUMBLE))
    if not reader.is2 and all(p.is_dir() for p in paths):
        # rosbags takes any path ending in '.bag' for ROS 1, even a rosbag2 directory such as the
        # 'map.bag' that 'reloc-ros synth map.bag' (and 'ros2 bag record -o map.bag') writes.
        from rosbags.rosbag2 import Reader as Reader2

        reader.is2 = True
        reader.readers = [Reader2(p) for p in paths]
    return reader


def _broken(paths: list[Path], action: str) -> list[tuple[Path, Exception]]:
    """Return the bags among ``paths`` that fail ``action`` ('create' or 'open') alone, with their errors."""
    broken = []
    for p in paths:
        try:
            reader = _any_reader([p])
            if action == "open":
                reader.open()
                reader.close()
        except Exception as exc:  # rosbags raises several unrelated types for broken files
            broken.append((p, exc))
    return broken


def _corrupt_error(paths: list[Path], action: str, exc: Exception) -> RelocError:
    """Return the error for bags that cannot be read, naming only the broken one(s) when several were given."""
    broken = _broken(paths, action) if len(paths) > 1 else [(paths[0], exc)]
    if not broken:  # each opens alone: the combination fails (e.g. ROS 1 and ROS 2 bags mixed)
        return RelocError(f"cannot read bags {', '.join(map(str, paths))} together: {exc}")
    return RelocError("; ".join(f"cannot open bag {p}: {e} (truncated or corrupt?)" for p, e in broken))


class Bag:
    """An open bag (or several, read as one), with friendly errors.

    Use as a context manager: ``with Bag(paths) as bag: ...``.
    """

    def __init__(self, paths: str | Path | Sequence[str | Path]) -> None:
        if isinstance(paths, (str, Path)):
            paths = [paths]
        if not paths:
            raise ValueError("no bag given")
        self.paths = [bag_path(p) for p in paths]
        self.name = ", ".join(str(p) for p in self.paths)
        try:
            self._reader = _any_reader(self.paths)  # reads each rosbag2's metadata.yaml
        except Exception as exc:
            raise _corrupt_error(self.paths, "create", exc) from exc

    def __enter__(self) -> "Bag":
        try:
            self._reader.open()
        except Exception as exc:
            raise _corrupt_error(self.paths, "open", exc) from exc
        return self

    def __exit__(self, *exc: object) -> None:
        self._reader.close()

    @property
    def topics(self) -> dict[str, str]:
        """Topic -> message type."""
        return {c.topic: c.msgtype for c in self._reader.connections}

    def message_count(self, topic: str) -> int:
        """Return the message count of ``topic`` as the bag's metadata says: for progress bars only.

        Metadata may over- or under-count (a recorder killed mid-write, an
        edited bag); never size anything from it.
        """
        return sum(c.msgcount for c in self._reader.connections if c.topic == topic)

    def describe_topics(self, types: Sequence[str] | None = None) -> str:
        items = sorted((t, m) for t, m in self.topics.items() if types is None or m in types)
        return ", ".join(f"{t} ({m})" for t, m in items) or "none"

    def messages(self, topics: Sequence[str]) -> Iterator[tuple[str, int, object]]:
        """(topic, log time ns, deserialized message) in log-time order.

        An error names the bag it comes from, not every bag read together.
        """
        conns = [c for c in self._reader.connections if c.topic in topics]
        if not conns:  # rosbags reads an empty connection list as "all connections"
            return
        # As AnyReader.messages does (one generator per bag, merged by log time), but each generator's
        # errors name its own bag.
        by_owner: dict[int, tuple[Any, list]] = {}
        for c in sorted(conns, key=lambda c: id(c.owner)):
            by_owner.setdefault(id(c.owner), (c.owner, []))[1].append(c)
        what = ", ".join(topics)
        gens = [self._labelled(owner, owner_conns, what) for owner, owner_conns in by_owner.values()]
        for conn, t_ns, raw in heapq.merge(*gens, key=lambda x: x[1]):
            try:
                msg = self._reader.deserialize(raw, conn.msgtype)
            except Exception as exc:
                raise RelocError(f"cannot deserialize a {conn.msgtype} message on {conn.topic} at {t_ns * 1e-9:.3f} s "
                                 f"in bag {conn.owner.path}: {exc} (truncated or corrupt?)") from exc
            yield conn.topic, t_ns, msg

    @staticmethod
    def _labelled(owner: Any, conns: list, what: str) -> Iterator[tuple[Any, int, bytes]]:
        it = owner.messages(connections=conns)
        while True:
            try:
                item = next(it)
            except StopIteration:
                return
            except Exception as exc:
                raise RelocError(f"error reading {what} from bag {owner.path}: {exc} (truncated or corrupt?)") from exc
            yield item

    def first_message(self, topic: str) -> object | None:
        for _, _, msg in self.messages([topic]):
            return msg
        return None


# ---------------------------------------------------------------------------
# Choosing topics
# ---------------------------------------------------------------------------

def image_topic_encoding(bag: Bag, topic: str) -> str | None:
    """Return the encoding (Image) or format (CompressedImage) of the topic's first message; None if it has none."""
    msg = bag.first_message(topic)
    if msg is None:
        return None
    return str(msg.format if bag.topics[topic] == COMPRESSED_TYPE else msg.encoding)


def _is_depth(msgtype: str, encoding: str) -> bool:
    if msgtype == COMPRESSED_TYPE:
        return "compresseddepth" in encoding.lower().replace(" ", "")
    return encoding in DEPTH_ENCODINGS


def choose_image_topic(bag: Bag, image_topic: str | None) -> str:
    """Return the given topic after checking it, or the bag's only colour image topic.

    Topics are judged by their first message, not by the metadata's counts;
    when no colour topic is found the error says why for each image topic
    (no messages, depth-encoded).
    """
    image_types = (IMAGE_TYPE, COMPRESSED_TYPE)
    if image_topic is not None:
        if image_topic not in bag.topics:
            raise ValueError(f"image topic '{image_topic}' not in bag {bag.name}; image topics present: "
                             f"{bag.describe_topics(image_types)}")
        if bag.topics[image_topic] not in image_types:
            raise ValueError(f"topic '{image_topic}' has type {bag.topics[image_topic]}, not an image; "
                             f"image topics present: {bag.describe_topics(image_types)}")
        return image_topic
    colour, depth, empty = [], [], []
    for t in sorted(t for t, m in bag.topics.items() if m in image_types):
        enc = image_topic_encoding(bag, t)
        if enc is None:
            empty.append(t)
        elif _is_depth(bag.topics[t], enc):
            depth.append(f"{t} ({enc})")
        else:
            colour.append(t)
    if len(colour) == 1:
        log.info("using image topic %s (the only colour image topic)", colour[0])
        return colour[0]
    if colour:
        raise ValueError(f"bag {bag.name} has several colour image topics: {', '.join(colour)}; "
                         "choose one with --image-topic")
    if not depth and not empty:
        raise ValueError(f"bag {bag.name} has no image topic ({IMAGE_TYPE} or {COMPRESSED_TYPE}); "
                         f"topics present: {bag.describe_topics()}")
    why = []
    if depth:
        why.append(f"{', '.join(depth)} {'is' if len(depth) == 1 else 'are'} depth-encoded "
                   f"({', '.join(DEPTH_ENCODINGS)} or compressedDepth count as depth, not colour)")
    if empty:
        why.append(f"{', '.join(empty)} {'holds' if len(empty) == 1 else 'hold'} no messages")
    hint = "; choose a topic with --image-topic" if depth else ""
    if empty and not depth and not _has_messages(bag):
        raise ValueError(f"bag {bag.name} holds no messages at all (topics declared: {bag.describe_topics()})")
    raise ValueError(f"bag {bag.name} has no colour image topic: {'; '.join(why)}{hint}")


def _has_messages(bag: Bag) -> bool:
    for _ in bag.messages(list(bag.topics)):
        return True
    return False


def camera_info_topic(bag: Bag, image_topic: str) -> str | None:
    """Find the CameraInfo beside the image topic (image_transport's naming), or the only one."""
    infos = [t for t, m in bag.topics.items() if m == CAMERA_INFO_TYPE]
    base = image_topic.rsplit("/", 1)[0]
    for cand in (f"{base}/camera_info", f"{base.rsplit('/', 1)[0]}/camera_info"):
        if cand in infos:
            return cand
    return infos[0] if len(infos) == 1 else None


def read_camera_intrinsics(bag: Bag, image_topic: str) -> Intrinsics | None:
    """Return the intrinsics of the CameraInfo beside ``image_topic``, or None without one.

    The first valid message counts (invalid ones before it are passed over
    with a warning); ``ValueError`` naming the topic when none is valid.
    """
    info_topic = camera_info_topic(bag, image_topic)
    if info_topic is None:
        return None
    first_error, bad = None, 0
    for _, t_ns, msg in bag.messages([info_topic]):
        try:
            K = conversions.camera_info_to_intrinsics(msg)
        except ValueError as exc:
            first_error, bad = first_error or f"at {t_ns * 1e-9:.3f} s: {exc}", bad + 1
            continue
        if bad:
            log.warning("%s: passed over %d invalid CameraInfo message(s) before the first valid one (first %s)",
                        info_topic, bad, first_error)
        return K
    if bad:
        raise ValueError(f"CameraInfo on '{info_topic}' in bag {bag.name}: none of its {bad} messages is valid "
                         f"(first {first_error})")
    return None
