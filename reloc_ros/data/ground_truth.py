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

"""Ground truth from a bag: TF (``/tf`` + ``/tf_static``) or a pose topic, at the image stamps.

Samples are taken as tf2 takes them: one with NaN/inf, a zero or a non-unit
quaternion (tf2's TF_NAN_INPUT, TF_DENORMALIZED_QUATERNION), an empty frame
id (TF_NO_FRAME_ID, TF_NO_CHILD_FRAME_ID) or a transform of a frame to itself
(TF_SELF_TRANSFORM) is ignored, never the end of the read. Each is counted
by reason, and the frames whose ground truth it would have given are skipped
with a reason (:data:`~reloc_ros.data.types.SKIP_BAD_TF`,
:data:`~reloc_ros.data.types.SKIP_BAD_POSE`) rather than interpolated across it.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from reloc_ros import conversions
from reloc_ros.conversions.poses import InvalidPose, pose_sample_problems
from reloc_ros.data.bag_file import TF_TYPES, Bag, BagSource
from reloc_ros.data.tf_buffer import PoseSeries, TfBuffer, TfLookupError
from reloc_ros.data.types import BAD_POSE_SAMPLE, BAD_TF_SAMPLE, SKIP_BAD_POSE, SKIP_BAD_TF, with_detail
from reloc_ros.errors import RelocError
from reloc_ros.geometry import make_pose

log = logging.getLogger(__name__)

# Samples tf2 drops for their frame ids: they belong to no edge, so they touch no frame's ground truth.
EMPTY_FRAME_ID = "empty frame id"
SELF_TRANSFORM = "transform of a frame to itself"


def read_tf(bag: Bag, tolerance_s: float = 0.05, max_gap_s: float = 0.5) -> TfBuffer:
    """Fill a TF buffer from the bag's /tf and /tf_static (any TFMessage topic).

    Bad samples are ignored as tf2 ignores them and counted in the buffer's
    ``ignored_samples`` (by reason); the lookups they would have served are
    skipped with :data:`SKIP_BAD_TF` and the reason.
    """
    buf = TfBuffer(tolerance_s=tolerance_s, max_gap_s=max_gap_s)
    tf_topics = [t for t, m in bag.topics.items() if m in TF_TYPES]
    rows, xyz, xyzw = [], [], []
    first: dict[str, str] = {}  # one example per reason, for the warning
    for topic, _, msg in bag.messages(tf_topics):
        for tr in msg.transforms:
            parent, child = tr.header.frame_id.lstrip("/"), tr.child_frame_id.lstrip("/")
            stamp = conversions.stamp_to_ns(tr.header.stamp)
            frame_problem = EMPTY_FRAME_ID if not parent or not child else SELF_TRANSFORM if parent == child else None
            if frame_problem is not None:
                reason = with_detail(BAD_TF_SAMPLE, frame_problem)
                buf.ignored_samples[reason] += 1
                first.setdefault(reason, f"'{parent}' -> '{child}' on {topic} at {stamp * 1e-9:.3f} s")
                continue
            rows.append((parent, child, stamp, topic.endswith("tf_static"), topic))
            xyz.append((tr.transform.translation.x, tr.transform.translation.y, tr.transform.translation.z))
            q = tr.transform.rotation
            xyzw.append((q.x, q.y, q.z, q.w))
    if rows:
        # One vectorised conversion: per-message scipy calls dominated reading TF.
        t_n3 = np.asarray(xyz, dtype=np.float64)
        q_n4 = np.asarray(xyzw, dtype=np.float64)
        problems = pose_sample_problems(t_n3, q_n4)
        good = np.array([p is None for p in problems])
        poses = np.zeros((len(rows), 4, 4))
        if good.any():
            poses[good] = make_pose(t_n3[good], q_n4[good])  # normalises the (near-unit) quaternions
        for i, ((parent, child, stamp, static, topic), T, problem) in enumerate(zip(rows, poses, problems)):
            if problem is None:
                buf.add(parent, child, stamp, T, static=static)
                continue
            buf.add_bad(parent, child, stamp, with_detail(SKIP_BAD_TF, problem), static=static)
            reason = with_detail(BAD_TF_SAMPLE, problem)
            buf.ignored_samples[reason] += 1
            first.setdefault(reason, f"{parent} -> {child} on {topic} at {stamp * 1e-9:.3f} s: translation "
                                     f"{t_n3[i].tolist()}, rotation (x, y, z, w) {q_n4[i].tolist()}")
    for reason, n in buf.ignored_samples.items():
        log.warning("bag %s: ignored %d %s, as tf2 would (first: %s)", bag.name, n, reason, first[reason])
    return buf


def read_pose_topic(bag: Bag, source: BagSource) -> tuple[PoseSeries, str, Counter]:
    """Read the pose topic as a series in the map frame, the frame it is the pose of, and the ignored samples.

    A bad sample (NaN/inf, zero or non-unit quaternion) is ignored and
    counted by reason; the series skips the stamps it would have served
    with :data:`SKIP_BAD_POSE`.
    """
    topic = source.pose_topic
    if topic not in bag.topics:
        raise ValueError(f"pose topic '{topic}' not in bag {bag.name}; pose topics present: "
                         f"{bag.describe_topics(conversions.POSE_MSGTYPES)}")
    if bag.topics[topic] not in conversions.POSE_MSGTYPES:
        raise ValueError(f"pose topic '{topic}' has type {bag.topics[topic]}; valid types: "
                         f"{', '.join(conversions.POSE_MSGTYPES)}")
    stamps, poses, frames, children = [], [], set(), set()
    bad_stamps, bad_reasons, ignored, first = [], [], Counter(), {}
    n_read = 0
    for _, _, msg in bag.messages([topic]):
        n_read += 1
        try:
            stamp, frame, child, T = conversions.stamped_pose_from_msg(msg)
        except InvalidPose as exc:
            stamp = conversions.stamp_to_ns(msg.header.stamp)
            bad_stamps.append(stamp)
            bad_reasons.append(with_detail(SKIP_BAD_POSE, exc.reason))
            reason = with_detail(BAD_POSE_SAMPLE, exc.reason)
            ignored[reason] += 1
            first.setdefault(reason, f"at {stamp * 1e-9:.3f} s: {exc}")
            continue
        stamps.append(stamp)
        poses.append(T)
        frames.add(frame.lstrip("/"))
        children.add(child.lstrip("/"))
    if not n_read:
        raise RelocError(f"pose topic '{topic}' in bag {bag.name} holds no messages")
    for reason, n in ignored.items():
        log.warning("pose topic %s: ignored %d %s (first %s)", topic, n, reason, first[reason])
    if frames and frames != {source.map_frame}:
        raise ValueError(f"poses on '{topic}' are in frame(s) {', '.join(sorted(frames))}, but the map frame is "
                         f"'{source.map_frame}'; pass --map-frame {sorted(frames)[0]}")
    if len(children) > 1:
        raise RelocError(f"poses on '{topic}' describe several frames: {', '.join(sorted(children))}")
    series = PoseSeries.from_samples(np.array(stamps, dtype=np.int64), np.array(poses).reshape(-1, 4, 4),
                                     np.array(bad_stamps, dtype=np.int64), bad_reasons)
    if series.duplicates:
        log.warning("pose topic %s: ignored %d messages with a repeated stamp", topic, series.duplicates)
    return series, (children.pop() if children else ""), ignored


def ground_truth_at(bag: Bag, source: BagSource, camera_frame: str, tf: TfBuffer,
                    stamps: np.ndarray) -> tuple[np.ndarray, list[str | None], Counter]:
    """T_map_cam at each image stamp, with a skip reason where there is none, and the ignored samples by reason."""
    ignored = Counter(tf.ignored_samples)
    if source.pose_topic is None:
        try:
            poses, reasons = tf.lookup_many(source.map_frame, camera_frame, stamps)
        except TfLookupError as exc:
            raise ValueError(f"ground truth from TF in bag {bag.name}: {exc}; use --map-frame/--camera-frame, "
                             "or --pose-topic for ground truth from a pose topic") from exc
        return poses, reasons, ignored
    series, body, ignored_poses = read_pose_topic(bag, source)
    ignored.update(ignored_poses)
    T_map_body, reasons = series.interpolate(stamps, source.tolerance_s, source.max_gap_s)
    if body and body != camera_frame:
        # The topic gives the pose of e.g. base_link: add the camera extrinsics from TF.
        try:
            T_body_cam, r2 = tf.lookup_many(body, camera_frame, stamps)
        except TfLookupError as exc:
            raise ValueError(f"poses on '{source.pose_topic}' are of frame '{body}', but TF does not connect it "
                             f"to camera frame '{camera_frame}': {exc}") from exc
        return T_map_body @ T_body_cam, [a or b for a, b in zip(reasons, r2)], ignored
    return T_map_body, reasons, ignored
