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

"""Offline replay: a recorded bag through the relocalizer, as the node would run it, into a new rosbag2.

``reloc-ros replay MODEL IN_BAG OUT_BAG`` reads the image topic and TF of
``IN_BAG`` (any bag reloc_ros reads), runs every frame through the same
engine (:class:`~reloc_ros.runtime.engine.Relocalizer`), the same TF math and
kidnapped-robot logic (:func:`~reloc_ros.runtime.pipeline.localize_frame`)
as ``relocalization_node``, and writes what the node would publish, stamped
with the image stamps, into ``OUT_BAG`` (rosbag2, mcap, metadata version 8 so
Humble's ``ros2 bag`` reads it):

* ``/relocalization/pose`` ``geometry_msgs/PoseWithCovarianceStamped``: the
  ``base_frame`` pose in the map frame (only when the bag has the
  ``base_frame -> camera`` transform);
* ``/relocalization/camera_pose`` ``geometry_msgs/PoseWithCovarianceStamped``:
  the camera (optical frame) pose, every frame;
* ``/relocalization/hypotheses`` ``geometry_msgs/PoseArray``;
* ``/tf`` ``tf2_msgs/TFMessage``: ``map -> odom`` (REP-105);
* ``/initialpose`` ``geometry_msgs/PoseWithCovarianceStamped``: the
  re-initialisations the kidnapped-robot detector would have sent;
* ``/relocalization/status`` ``diagnostic_msgs/DiagnosticArray``: every
  frame's verification status (verified, unverified, failed) and why, as the
  node's ``~/status``. A failed frame has only this: no pose, no TF.

The belief the detector compares against is ``map -> base_frame`` from the
input bag's own TF (e.g. what AMCL published while recording), when it has
one. Frames are processed in order and none is dropped (offline there is no
hurry); the node drops frames only when they arrive faster than it infers.

If the input bag has ground truth (TF or a pose topic, the same options as
``reloc-ros eval``), the camera poses are compared with it and the same
report as ``reloc-ros eval`` is returned, covariance calibration included.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from reloc_ros import conversions as conv
from reloc_ros.data.bag import (Bag, BagSource, bag_source_from_metadata, choose_image_topic, read_bag_dataset,
                                read_camera_intrinsics, read_tf)
from reloc_ros.data.tf_buffer import TfLookupError
from reloc_ros.data.types import SkipReport
from reloc_ros.errors import RelocError
from reloc_ros.geometry import covariance_from_std
from reloc_ros.io_utils import atomic_new_dir
from reloc_ros.runtime.engine import STAGES, NoEstimate, Relocalizer
from reloc_ros.runtime.frame_status import make_frame_status
from reloc_ros.runtime.pipeline import localize_frame
from reloc_ros.runtime.recovery import KidnapDetector, RecoveryConfig
from reloc_ros.runtime.verify import CameraMismatch

logger = logging.getLogger(__name__)

POSE_TOPIC = "/relocalization/pose"
CAMERA_POSE_TOPIC = "/relocalization/camera_pose"
HYPOTHESES_TOPIC = "/relocalization/hypotheses"
TF_TOPIC = "/tf"
INITIALPOSE_TOPIC = "/initialpose"
STATUS_TOPIC = "/relocalization/status"
_DIAG = "diagnostic_msgs/msg/DiagnosticArray"
_PWCS = "geometry_msgs/msg/PoseWithCovarianceStamped"
_POSE_ARRAY = "geometry_msgs/msg/PoseArray"
_TF = "tf2_msgs/msg/TFMessage"


@dataclass
class ReplayResult:
    """What a replay did.

    Attributes:
        out_bag: the bag written.
        frames: image messages read.
        published: frames with a published (camera) pose: verified or unverified, never failed.
        statuses: frames per verification status (verified, unverified, failed).
        skipped: frames without a pose, by reason (failed verification included).
        notes: parts skipped on published frames (no TF correction ...), by reason.
        reinitialisations: (stamp_ns, reason) of every /initialpose written.
        stamps_ns, T_map_cam, covariances: the camera estimates, in order.
        latency_ms: median per stage (decode, preprocess, inference, postprocess, total).
        report: the ``reloc-ros eval`` report against ground truth, or None.
        pred_n44, gt_n44, cov_n66: the matched estimates and ground truth behind ``report``.
    """

    out_bag: Path
    frames: int = 0
    published: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    skipped: SkipReport = field(default_factory=SkipReport)
    notes: dict[str, int] = field(default_factory=dict)
    reinitialisations: list[tuple[int, str]] = field(default_factory=list)
    stamps_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    T_map_cam: np.ndarray = field(default_factory=lambda: np.zeros((0, 4, 4)))
    covariances: np.ndarray = field(default_factory=lambda: np.zeros((0, 6, 6)))
    latency_ms: dict[str, float] = field(default_factory=dict)
    report: dict[str, Any] | None = None
    pred_n44: np.ndarray | None = None
    gt_n44: np.ndarray | None = None
    cov_n66: np.ndarray | None = None

    def summary(self) -> str:
        """One line for the log / CLI."""
        lat = ", ".join(f"{k} {self.latency_ms[k]:.1f}" for k in (*STAGES, "total") if k in self.latency_ms)
        st = ", ".join(f"{n} {s}" for s, n in self.statuses.items())
        return (f"{self.frames} frames ({st}), {self.published} poses published, skipped: {self.skipped}; "
                f"{len(self.reinitialisations)} re-initialisations; median latency ms: {lat}")


def _lookup(tf: Any, target: str, source: str, stamp_ns: int) -> np.ndarray | None:
    try:
        return tf.lookup(target, source, stamp_ns)
    except (TfLookupError, ValueError):
        return None


def replay(model: str | Path | Relocalizer, in_bags: Sequence[str | Path], out_bag: str | Path,
           source: BagSource | None = None, *, base_frame: str = "base_link", odom_frame: str = "odom",
           publish_tf: bool = True, min_confidence: float = 0.5, recovery: RecoveryConfig | None = None,
           belief_std: tuple[float, float] = (0.5, 0.2), device: str = "cpu", backend: str = "auto",
           progress: bool = True, verify: str = "auto", allow_unverified: bool = False) -> ReplayResult:
    """Replay ``in_bags`` through the relocalizer into ``out_bag``; see the module docstring.

    ``model`` is a model file or a loaded :class:`Relocalizer`. ``source``
    defaults to the bag options the model was trained with. ``recovery``
    configures the kidnapped-robot detector (default: enabled, defaults of
    :class:`RecoveryConfig`); ``belief_std`` (metres, radians) is the
    standard deviation assumed for the bag's own ``map -> base_frame``
    belief (a bag's TF carries no covariance; the node's
    ``initialpose.belief_std_m/rad`` defaults). ``out_bag`` must not exist; it is written
    atomically (a crash leaves nothing behind). ``verify`` is the engine's
    verification mode; each frame is verified with the bag's CameraInfo. As
    in the node, a ``failed`` frame publishes nothing, and only verified poses
    (also unverified ones with ``allow_unverified``) write TF and
    ``/initialpose``.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    from tqdm import tqdm

    if Path(out_bag).exists() or Path(out_bag).is_symlink():  # before loading anything
        raise ValueError(f"output bag '{out_bag}' already exists; choose a new path (it is never overwritten)")
    # Anything with the Relocalizer's interface will do (tests pass an oracle).
    reloc = model if hasattr(model, "relocalize_msg") else Relocalizer(model, device=device, backend=backend,
                                                                       verify=verify)
    source = bag_source_from_metadata(reloc.metadata) if source is None else source
    detector = KidnapDetector(recovery or RecoveryConfig())
    belief_cov = covariance_from_std(belief_std[0], belief_std[1])
    ts = get_typestore(Stores.ROS2_HUMBLE)
    types = ts.types
    result = ReplayResult(Path(out_bag))
    stamps, poses, covs = [], [], []
    every: list = []  # the estimate of every frame that has one, for the per-status report
    timings: dict[str, list[float]] = {k: [] for k in (*STAGES, "total")}
    with Bag(in_bags) as bag, atomic_new_dir(out_bag) as tmp:
        image_topic = choose_image_topic(bag, source.image_topic)
        intrinsics = read_camera_intrinsics(bag, image_topic)
        tf = read_tf(bag, source.tolerance_s, source.max_gap_s)
        has_belief = reloc.map_frame in tf.frames and base_frame in tf.frames
        with Writer(tmp, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
            c_pose = writer.add_connection(POSE_TOPIC, _PWCS, typestore=ts)
            c_cam = writer.add_connection(CAMERA_POSE_TOPIC, _PWCS, typestore=ts)
            c_hyp = writer.add_connection(HYPOTHESES_TOPIC, _POSE_ARRAY, typestore=ts)
            c_tf = writer.add_connection(TF_TOPIC, _TF, typestore=ts)
            c_init = writer.add_connection(INITIALPOSE_TOPIC, _PWCS, typestore=ts)
            c_status = writer.add_connection(STATUS_TOPIC, _DIAG, typestore=ts)
            bar = tqdm(total=bag.message_count(image_topic), desc="replaying", unit="frame", disable=not progress)
            for _, _, msg in bag.messages([image_topic]):
                result.frames += 1
                bar.update()
                try:
                    est = reloc.relocalize_msg(msg, intrinsics)
                except NoEstimate:
                    result.skipped.add("non-finite model output")
                    continue
                except CameraMismatch as e:  # every frame would fail the same way: say it once, stop
                    raise RelocError(f"{image_topic} in {', '.join(map(str, in_bags))}: {e}") from e
                except ValueError as e:  # undecodable image: say which, keep going
                    if "undecodable image" not in result.skipped.counts:
                        logger.warning("frame at %.3f s: %s", _msg_stamp(msg) * 1e-9, e)
                    result.skipped.add("undecodable image")
                    continue
                result.statuses[est.status] = result.statuses.get(est.status, 0) + 1
                every.append(est)
                writer.write(c_status, est.stamp_ns, ts.serialize_cdr(
                    make_frame_status(types, est, "relocalization", str(reloc.model_path)), _DIAG))
                if not est.publishable:
                    result.skipped.add("failed verification")
                    continue
                camera_frame = source.camera_frame or msg.header.frame_id.lstrip("/") or reloc.camera_frame
                stamp = est.stamp_ns
                belief = None
                if has_belief:
                    T_belief = _lookup(tf, reloc.map_frame, base_frame, stamp)
                    belief = None if T_belief is None else (T_belief, belief_cov)
                fr = localize_frame(est, T_base_cam=_lookup(tf, base_frame, camera_frame, stamp),
                                    base_frame=base_frame, camera_frame=camera_frame, odom_frame=odom_frame,
                                    T_odom_base=_lookup(tf, odom_frame, base_frame, stamp) if odom_frame else None,
                                    publish_tf=publish_tf, min_confidence=min_confidence, detector=detector,
                                    belief=belief, allow_unverified=allow_unverified)
                for note in fr.notes:
                    result.notes[note] = result.notes.get(note, 0) + 1
                cam = conv.make_pose_with_covariance_stamped(types, est.T_map_cam, est.covariance, stamp,
                                                             est.map_frame)
                writer.write(c_cam, stamp, ts.serialize_cdr(cam, _PWCS))
                if fr.T_map_base is not None:
                    pwcs = conv.make_pose_with_covariance_stamped(types, fr.T_map_base, fr.cov_base, stamp,
                                                                  est.map_frame)
                    writer.write(c_pose, stamp, ts.serialize_cdr(pwcs, _PWCS))
                writer.write(c_hyp, stamp, ts.serialize_cdr(
                    conv.make_pose_array(types, fr.hypotheses, stamp, est.map_frame), _POSE_ARRAY))
                if fr.tf is not None:
                    tr = conv.make_transform_stamped(types, fr.tf[2], stamp, fr.tf[0], fr.tf[1])
                    writer.write(c_tf, stamp, ts.serialize_cdr(conv.make_tf_message(types, [tr]), _TF))
                if fr.decision is not None and fr.decision.reinitialise:
                    writer.write(c_init, stamp, ts.serialize_cdr(pwcs, _PWCS))
                    result.reinitialisations.append((stamp, fr.decision.reason))
                    logger.info("re-initialisation at %.3f s: %s", stamp * 1e-9, fr.decision.reason)
                result.published += 1
                stamps.append(stamp)
                poses.append(est.T_map_cam)
                covs.append(est.covariance)
                for k in timings:
                    timings[k].append(est.timings_ms[k])
            bar.close()
        if not stamps:  # inside the atomic block: a failed replay leaves no bag behind
            raise RelocError(f"no frame of {', '.join(map(str, in_bags))} could be relocalized "
                             f"({result.skipped})")
    result.stamps_ns = np.asarray(stamps, np.int64)
    result.T_map_cam = np.stack(poses)
    result.covariances = np.stack(covs)
    result.latency_ms = {k: float(np.median(v)) for k, v in timings.items()}
    for note, n in result.notes.items():
        logger.warning("%d frames: %s", n, note)
    _compare_with_ground_truth(result, reloc, in_bags, source, every)
    logger.info("replay wrote %s: %s", result.out_bag, result.summary())
    return result


def _msg_stamp(msg: Any) -> int:
    return conv.stamp_to_ns(msg.header.stamp)


def _compare_with_ground_truth(result: ReplayResult, reloc: Relocalizer, in_bags: Sequence[str | Path],
                               source: BagSource, every: Sequence[Any] = ()) -> None:
    """Fill ``result.report`` when the bags have ground truth for the replayed frames."""
    from reloc_ros.evaluation import relocalization_report, status_report

    try:
        gt = read_bag_dataset(in_bags, source, load_images=False)
    except (RelocError, ValueError) as e:
        logger.info("no ground truth in %s (%s): no accuracy report", ", ".join(map(str, in_bags)), e)
        return
    index = {int(s): i for i, s in enumerate(gt.stamps_ns)}
    with_gt = [(e, index[int(e.stamp_ns)]) for e in every if int(e.stamp_ns) in index]
    status = status_report([e for e, _ in with_gt], gt.poses_n44[[g for _, g in with_gt]]) if with_gt else None
    pairs = [(k, index[int(s)]) for k, s in enumerate(result.stamps_ns) if int(s) in index]
    if not pairs:
        logger.info("ground truth covers none of the replayed frames: no accuracy report")
        return
    k_idx, g_idx = (np.array(v) for v in zip(*pairs))
    result.pred_n44, result.gt_n44 = result.T_map_cam[k_idx], gt.poses_n44[g_idx]
    result.cov_n66 = result.covariances[k_idx]
    result.report = relocalization_report(
        result.pred_n44, result.gt_n44, result.cov_n66, reloc, gt.source,
        int(result.skipped.counts.get("non-finite model output", 0)),
        latency_ms=dict(result.latency_ms), reinitialisations=len(result.reinitialisations),
        **({} if status is None else {"status": status}))
