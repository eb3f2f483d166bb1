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
Frames that cannot be used are skipped and counted by reason, as ``reloc-ros
eval`` counts them (a second image with an already relocalized stamp
included), and an error of one frame costs that frame only.

If the input bag has ground truth (TF or a pose topic, the same options as
``reloc-ros eval``), the camera poses are compared with it and the same
report as ``reloc-ros eval`` is returned, covariance calibration included.
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from reloc_ros import conversions as conv
from reloc_ros.data.bag import (Bag, BagSource, bag_source_from_metadata, choose_image_topic, read_bag_dataset,
                                read_camera_intrinsics, read_tf)
from reloc_ros.data.tf_buffer import TfLookupError
from reloc_ros.data.types import SKIP_DUPLICATE_STAMP, SkipReport
from reloc_ros.errors import RelocError
from reloc_ros.geometry import covariance_from_std
from reloc_ros.io_utils import atomic_new_dir, check_new_dir
from reloc_ros.runtime.engine import STAGES, NoEstimate, Relocalizer
from reloc_ros.runtime.frame_status import make_frame_status
from reloc_ros.runtime.pipeline import FRAME_ERROR, FrameErrors, check_probability, localize_frame
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
# Reasons a replayed frame is skipped (beside the bag reader's SKIP_DUPLICATE_STAMP, shared with eval).
SKIP_NON_FINITE = "non-finite model output"
SKIP_REPLAY_UNDECODABLE = "undecodable image"
SKIP_NEGATIVE_STAMP = "negative image stamp"


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
    ``initialpose.belief_std_m/rad`` defaults). ``out_bag`` must not exist and
    its directory must be writable (checked, with the options, before
    anything is loaded); it is written atomically (a crash leaves nothing
    behind). ``verify`` is the engine's
    verification mode; each frame is verified with the bag's CameraInfo. As
    in the node, a ``failed`` frame publishes nothing, and only verified poses
    (also unverified ones with ``allow_unverified``) write TF and
    ``/initialpose``.

    Frames are skipped and counted by reason, as ``reloc-ros eval`` counts
    them: an image whose stamp was already relocalized (``duplicate image
    stamp``: the first is kept), an undecodable image, a non-finite model
    output, a failed verification, and any error of one frame's estimate,
    verification, TF math or recovery (logged with its traceback the first
    time: one bad frame never ends the run).
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    from tqdm import tqdm

    check_new_dir(out_bag, "output bag")  # before loading anything
    min_confidence = check_probability(min_confidence, "min_confidence")
    belief_std = _check_belief_std(belief_std)
    if not isinstance(base_frame, str) or not base_frame:
        raise ValueError(f"base_frame must be a frame id (a non-empty string), got {base_frame!r}")
    if not isinstance(odom_frame, str):
        raise ValueError(f"odom_frame must be a frame id, or '' when the robot has none, got {odom_frame!r}")
    # Anything with the Relocalizer's interface will do (tests pass an oracle).
    reloc = model if hasattr(model, "relocalize_msg") else Relocalizer(model, device=device, backend=backend,
                                                                       verify=verify)
    source = bag_source_from_metadata(reloc.metadata) if source is None else source
    detector = KidnapDetector(recovery or RecoveryConfig())
    ts = get_typestore(Stores.ROS2_HUMBLE)
    result = ReplayResult(Path(out_bag))
    with Bag(in_bags) as bag, atomic_new_dir(out_bag) as tmp:
        image_topic = choose_image_topic(bag, source.image_topic)
        tf = read_tf(bag, source.tolerance_s, source.max_gap_s)
        with Writer(tmp, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
            run = _Run(reloc, result, writer, ts, tf, source, read_camera_intrinsics(bag, image_topic),
                       {"base_frame": base_frame, "odom_frame": odom_frame, "publish_tf": publish_tf,
                        "min_confidence": min_confidence, "detector": detector, "allow_unverified": allow_unverified},
                       covariance_from_std(belief_std[0], belief_std[1]))
            bar = tqdm(total=bag.message_count(image_topic), desc="replaying", unit="frame", disable=not progress)
            for _, _, msg in bag.messages([image_topic]):
                bar.update()
                try:
                    run.frame(msg)
                except CameraMismatch as e:  # every frame would fail the same way: say it once, stop
                    raise RelocError(f"{image_topic} in {', '.join(map(str, in_bags))}: {e}") from e
            bar.close()
        run.errors.log_summary()
        if not run.stamps:  # inside the atomic block: a failed replay leaves no bag behind
            raise RelocError(f"no frame of {', '.join(map(str, in_bags))} could be relocalized "
                             f"({result.skipped})")
    result.stamps_ns = np.asarray(run.stamps, np.int64)
    result.T_map_cam = np.stack(run.poses)
    result.covariances = np.stack(run.covs)
    result.latency_ms = {k: float(np.median(v)) for k, v in run.timings.items()}
    for note, n in result.notes.items():
        logger.warning("%d frames: %s", n, note)
    _compare_with_ground_truth(result, reloc, in_bags, source, run.every)
    logger.info("replay wrote %s: %s", result.out_bag, result.summary())
    return result


def _check_belief_std(belief_std: Any) -> tuple[float, float]:
    ok = (not isinstance(belief_std, (str, bytes)) and hasattr(belief_std, "__len__") and len(belief_std) == 2
          and all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                  for v in belief_std))
    if not ok:
        raise ValueError(f"belief_std must be two standard deviations (position m, rotation rad), both finite and "
                         f"> 0, got {belief_std!r}")
    return float(belief_std[0]), float(belief_std[1])


class _Run:
    """One replay's per-frame state: what is written, counted and collected for the report."""

    def __init__(self, reloc: Any, result: ReplayResult, writer: Any, ts: Any, tf: Any, source: BagSource,
                 intrinsics: Any, options: dict[str, Any], belief_cov: np.ndarray) -> None:
        self.reloc, self.result, self.writer, self.ts, self.tf = reloc, result, writer, ts, tf
        self.source, self.intrinsics, self.options, self.belief_cov = source, intrinsics, options, belief_cov
        self.has_belief = reloc.map_frame in tf.frames and options["base_frame"] in tf.frames
        self.conn = {topic: writer.add_connection(topic, msgtype, typestore=ts) for topic, msgtype in (
            (POSE_TOPIC, _PWCS), (CAMERA_POSE_TOPIC, _PWCS), (HYPOTHESES_TOPIC, _POSE_ARRAY), (TF_TOPIC, _TF),
            (INITIALPOSE_TOPIC, _PWCS), (STATUS_TOPIC, _DIAG))}
        self.stamps: list[int] = []
        self.poses: list[np.ndarray] = []
        self.covs: list[np.ndarray] = []
        self.every: list = []  # the estimate of every frame that has one, for the per-status report
        self.timings: dict[str, list[float]] = {k: [] for k in (*STAGES, "total")}
        self.seen: set[int] = set()  # stamps of the frames relocalized (or tried), as eval keeps the first
        self.last_stamp: int | None = None
        self.went_back = False
        self.errors = FrameErrors(logger)

    def frame(self, msg: Any) -> None:
        """Relocalize one image message and write what the node would publish; skips are counted."""
        self.result.frames += 1
        pending: list[tuple[Any, int, bytes]] = []
        stamp = None
        try:
            stamp = _msg_stamp(msg)
            self._frame(msg, stamp, pending)
        except CameraMismatch:
            raise
        except Exception as e:  # noqa: BLE001 - one frame's failure costs that frame only; logged, counted
            self.result.skipped.add(self.errors.record(e, stamp))
            pending = [w for w in pending if w[0] is self.conn[STATUS_TOPIC]]  # what the node had published
        for conn, t, data in pending:  # outside the guard: a write that fails (disk full) ends the run
            self.writer.write(conn, t, data)

    def _skip(self, reason: str, stamp: int, detail: str = "") -> None:
        """Count a skipped frame; say the first of each reason."""
        if reason not in self.result.skipped.counts:
            logger.warning("frame at %.3f s skipped (%s)%s; such frames are counted in the skip report",
                           stamp * 1e-9, reason, f": {detail}" if detail else "")
        self.result.skipped.add(reason)

    def _frame(self, msg: Any, stamp: int, pending: list) -> None:
        result, ts, types = self.result, self.ts, self.ts.types
        if stamp < 0:  # no bag can hold it, and no TF is looked up there
            self._skip(SKIP_NEGATIVE_STAMP, stamp)
            return
        if stamp in self.seen:  # as eval: the first frame of a stamp is kept, the others skipped
            self._skip(SKIP_DUPLICATE_STAMP, stamp)
            return
        if self.last_stamp is not None and stamp < self.last_stamp and not self.went_back:
            self.went_back = True  # eval orders such frames by stamp; the figures are the same
            logger.warning("image stamps are not monotonic (%.3f s after %.3f s): frames are relocalized in bag "
                           "order, as the node receives them", stamp * 1e-9, self.last_stamp * 1e-9)
        try:
            est = self.reloc.relocalize_msg(msg, self.intrinsics)
        except NoEstimate as e:
            self.seen.add(stamp)
            self._skip(SKIP_NON_FINITE, stamp, str(e))
            return
        except CameraMismatch:
            raise
        except ValueError as e:  # undecodable image: say which, keep going
            self._skip(SKIP_REPLAY_UNDECODABLE, stamp, str(e))
            return
        self.seen.add(stamp)
        self.last_stamp = stamp
        result.statuses[est.status] = result.statuses.get(est.status, 0) + 1
        self.every.append(est)
        pending.append((self.conn[STATUS_TOPIC], est.stamp_ns, ts.serialize_cdr(
            make_frame_status(types, est, "relocalization", str(self.reloc.model_path)), _DIAG)))
        if not est.publishable:
            result.skipped.add("failed verification")
            return
        fr = self._localize(est, msg)
        stamp, mf = est.stamp_ns, est.map_frame
        cam = conv.make_pose_with_covariance_stamped(types, est.T_map_cam, est.covariance, stamp, mf)
        pending.append((self.conn[CAMERA_POSE_TOPIC], stamp, ts.serialize_cdr(cam, _PWCS)))
        pwcs = None
        if fr.T_map_base is not None:
            pwcs = ts.serialize_cdr(conv.make_pose_with_covariance_stamped(types, fr.T_map_base, fr.cov_base, stamp,
                                                                           mf), _PWCS)
            pending.append((self.conn[POSE_TOPIC], stamp, pwcs))
        pending.append((self.conn[HYPOTHESES_TOPIC], stamp, ts.serialize_cdr(
            conv.make_pose_array(types, fr.hypotheses, stamp, mf), _POSE_ARRAY)))
        if fr.tf is not None:
            tr = conv.make_transform_stamped(types, fr.tf[2], stamp, fr.tf[0], fr.tf[1])
            pending.append((self.conn[TF_TOPIC], stamp, ts.serialize_cdr(conv.make_tf_message(types, [tr]), _TF)))
        reinit = fr.decision is not None and fr.decision.reinitialise and pwcs is not None
        if reinit:
            pending.append((self.conn[INITIALPOSE_TOPIC], stamp, pwcs))
        timings = {k: float(est.timings_ms[k]) for k in self.timings}
        # Everything of this frame is built: count it.
        for note in fr.notes:
            result.notes[note] = result.notes.get(note, 0) + 1
        if reinit:
            result.reinitialisations.append((stamp, fr.decision.reason))
            logger.info("re-initialisation at %.3f s: %s", stamp * 1e-9, fr.decision.reason)
        result.published += 1
        self.stamps.append(stamp)
        self.poses.append(est.T_map_cam)
        self.covs.append(est.covariance)
        for k, v in timings.items():
            self.timings[k].append(v)

    def _localize(self, est: Any, msg: Any) -> Any:
        """Run the node's per-frame pipeline on the bag's own TF at the image stamp."""
        base, odom, stamp = self.options["base_frame"], self.options["odom_frame"], est.stamp_ns
        camera_frame = self.source.camera_frame or msg.header.frame_id.lstrip("/") or self.reloc.camera_frame
        belief = None
        if self.has_belief:
            T_belief = _lookup(self.tf, self.reloc.map_frame, base, stamp)
            belief = None if T_belief is None else (T_belief, self.belief_cov)
        return localize_frame(est, T_base_cam=_lookup(self.tf, base, camera_frame, stamp), camera_frame=camera_frame,
                              T_odom_base=_lookup(self.tf, odom, base, stamp) if odom else None, belief=belief,
                              **self.options)


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
        int(result.skipped.counts.get(SKIP_NON_FINITE, 0)),
        latency_ms=dict(result.latency_ms), reinitialisations=len(result.reinitialisations),
        **({} if status is None else {"status": status}), **_frame_errors(result.skipped))


def _frame_errors(skipped: SkipReport) -> dict[str, Any]:
    """``{"frame_errors": {reason: n}}`` when frames failed with an error (as eval reports them), else ``{}``."""
    errors = {r: int(n) for r, n in skipped.counts.items() if r.startswith(FRAME_ERROR)}
    return {"frame_errors": errors} if errors else {}
