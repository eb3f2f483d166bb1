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

"""The output side of :class:`~reloc_ros.nodes.relocalization_node.RelocalizationNode`: what it publishes.

:class:`RelocalizationOutputs` is mixed into the lifecycle node and holds
its callbacks that publish:

* :meth:`~RelocalizationOutputs._process` (the inference worker's thread):
  one image through the engine and
  :func:`~reloc_ros.runtime.pipeline.localize_frame`, then ``~/status``,
  ``~/pose``, ``~/camera_pose``, ``~/hypotheses``, the TF correction and
  ``/initialpose``, all stamped with the image stamp;
* :meth:`~RelocalizationOutputs._on_relocalize`: the ``~/relocalize``
  service (its own reentrant callback group);
* :meth:`~RelocalizationOutputs._diagnose`: the node's ``/diagnostics``
  status, a ``diagnostic_updater`` task (the updater's timer).

The decisions and contents are ROS-free (:mod:`reloc_ros.runtime.node_core`,
:mod:`reloc_ros.runtime.node_diagnostics`); this module needs rclpy and
tf2_ros for TF lookups and the node's throttled logging.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from rclpy.duration import Duration
from rclpy.time import Time
import tf2_ros

from reloc_ros import conversions as conv
from reloc_ros.nodes.diagnostics import FramesTask, fill_status
from reloc_ros.runtime.engine import Estimate, NoEstimate, Relocalizer
from reloc_ros.runtime.frame_status import make_frame_status
from reloc_ros.runtime.node_core import (NS_PER_S, belief_covariance, frame_problems, oneshot_failure_message,
                                         wait_for_oneshot, wants_belief, wants_odom_correction)
from reloc_ros.runtime.node_diagnostics import DiagnosticsReport, NodeStats, diagnostics_report, inactive_report
from reloc_ros.runtime.node_params import RelocalizationOptions
from reloc_ros.runtime.pipeline import localize_frame
from reloc_ros.runtime.recovery import KidnapDetector, OneShotRequest
from reloc_ros.runtime.tf_broadcast import MapOdomBroadcast
from reloc_ros.runtime.worker import LatestFrameWorker


class RelocalizationOutputs:
    """Publishing callbacks of the relocalization node (a mixin of ``LifecycleNode``; see the module docstring).

    The node makes the members below (configure / activate) and releases them; these callbacks only read
    them, and return early while the node is not configured.
    """

    _types: dict[str, Any]
    _opts: RelocalizationOptions | None
    _reloc: Relocalizer | None
    _map_frame: str
    _tf_buffer: Any
    _tf_broadcaster: Any
    _map_odom: MapOdomBroadcast | None
    _detector: KidnapDetector | None
    _oneshot: OneShotRequest | None
    _oneshot_lock: threading.Lock
    _pubs: dict[str, Any]
    _worker: LatestFrameWorker | None
    _active: bool
    _image_topic: str
    _camera_info_topic: str
    _intrinsics: Any
    _belief: tuple[int, np.ndarray] | None
    _stats: NodeStats
    _configure_failure: DiagnosticsReport | None
    _frames_task: FramesTask | None

    # -- worker thread ---------------------------------------------------------

    def _lookup(self, target: str, source: str, stamp_ns: int | None) -> np.ndarray:
        """``T_target_source`` from TF (latest when ``stamp_ns`` is None), waiting up to tf_timeout_s."""
        when = Time() if stamp_ns is None else Time(nanoseconds=int(stamp_ns))
        timeout = Duration(nanoseconds=int(self._opts.tf_timeout_s * NS_PER_S))
        ts = self._tf_buffer.lookup_transform(target, source, when, timeout=timeout)
        return conv.transform_to_matrix(ts.transform)

    def _process(self, msg: Any) -> None:
        """Relocalize one image and publish everything that follows from it (the core's per-frame pipeline)."""
        reloc, opts, t = self._reloc, self._opts, self._types
        if reloc is None or opts is None or not self._pubs:
            return
        est = reloc.relocalize_msg(msg, intrinsics=self._intrinsics)
        stamp = est.stamp_ns
        cam_frame = opts.camera_frame or str(msg.header.frame_id) or reloc.camera_frame
        map_frame = self._map_frame
        self._stats.record(est)
        frames = self._frames_task
        if frames is not None:  # /diagnostics: the rate of relocalized frames and the delay of their stamps
            frames.tick(Time(nanoseconds=int(stamp)))
        acts = opts.acts_on(est.status)  # may this frame move the robot's belief (TF, /initialpose, ~/relocalize)?
        oneshot = self._oneshot
        if not acts and oneshot is not None and oneshot.active:
            self._stats.count_oneshot_skipped(est.status)
        if not est.publishable:
            # The geometry contradicts the learned pose: say so on ~/status, publish no pose at all.
            self._publish_status(est)
            self.get_logger().info(f"frame at {stamp / NS_PER_S:.3f} s failed verification, no pose published: "
                                   f"{est.status_detail or 'no reason given'}", throttle_duration_sec=5.0)
            return
        # Extrinsics: static normally, so the latest is right (and no stamp can be too new).
        T_base_cam = self._try_lookup(opts.base_frame, cam_frame, None)
        if T_base_cam is None:
            self.get_logger().warning(
                f"no TF from '{opts.base_frame}' to the camera frame '{cam_frame}': only ~/camera_pose is published "
                f"(no ~/pose, TF correction or re-initialisation). Publish the camera extrinsics "
                f"(robot_state_publisher / static_transform_publisher) or set camera_frame.",
                throttle_duration_sec=5.0)
        T_odom_base = None
        if wants_odom_correction(opts, est.confidence, acts, T_base_cam is not None):
            T_odom_base = self._try_lookup(opts.odom_frame, opts.base_frame, stamp)
        belief = None
        if wants_belief(opts, acts, T_base_cam is not None):
            T_belief = self._try_lookup(map_frame, opts.base_frame, stamp)
            belief = None if T_belief is None else (T_belief, belief_covariance(stamp, self._belief, opts.belief_std))
        try:
            fr = localize_frame(est, T_base_cam=T_base_cam, base_frame=opts.base_frame, camera_frame=cam_frame,
                                odom_frame=opts.odom_frame, T_odom_base=T_odom_base, publish_tf=opts.publish_tf,
                                min_confidence=opts.min_confidence,
                                detector=self._detector if opts.recovery_enabled else None, belief=belief,
                                allow_unverified=opts.allow_unverified)
        except ValueError as exc:  # e.g. a belief covariance from AMCL that is not one
            self.get_logger().warning(f"frame at {stamp / NS_PER_S:.3f} s: {exc}", throttle_duration_sec=5.0)
            self._stats.set_problem(str(exc))
            self._publish_status(est)
            return
        pose_msg = None
        if fr.T_map_base is not None:  # the main output first
            pose_msg = conv.make_pose_with_covariance_stamped(t, fr.T_map_base, fr.cov_base, stamp, map_frame)
            self._pubs["pose"].publish(pose_msg)
        self._pubs["camera_pose"].publish(conv.make_pose_with_covariance_stamped(t, est.T_map_cam, est.covariance,
                                                                                 stamp, map_frame))
        if len(fr.hypotheses):
            self._pubs["hypotheses"].publish(conv.make_pose_array(t, fr.hypotheses, stamp, map_frame))
        self._publish_status(est)
        problems = frame_problems(fr.notes, est.status)
        self._stats.set_problem("; ".join(problems))
        if pose_msg is None:
            return  # warned above, with a hint
        for note in problems:
            self.get_logger().warning(note, throttle_duration_sec=5.0)
        if fr.tf is not None:  # stamped transform_tolerance_s ahead, held for _rebroadcast_tf
            tf_stamp = self._map_odom.correct(fr.tf[2], stamp, map_frame, fr.tf[1])
            self._tf_broadcaster.sendTransform(conv.make_transform_stamped(t, fr.tf[2], tf_stamp, map_frame,
                                                                           fr.tf[1]))
        if fr.decision is not None and fr.decision.reinitialise:
            self._pubs["initialpose"].publish(pose_msg)
            self.get_logger().info(f"re-initialising through {opts.initialpose_topic}: {fr.decision.reason}")
        if acts and oneshot is not None and oneshot.active:
            oneshot.offer(stamp, fr.T_map_base, fr.cov_base, est.confidence)

    def _publish_status(self, est: Estimate) -> None:
        """``~/status`` of one frame: verified / unverified / failed and why, stamped with the image stamp."""
        pub, reloc = self._pubs.get("status"), self._reloc
        if pub is None or reloc is None:
            return
        pub.publish(make_frame_status(self._types, est, self.get_name(), str(reloc.model_path)))

    def _try_lookup(self, target: str, source: str, stamp_ns: int | None) -> np.ndarray | None:
        """:meth:`_lookup`, or None when TF cannot give it (in time)."""
        try:
            return self._lookup(target, source, stamp_ns)
        except tf2_ros.TransformException:
            return None

    def _on_frame_error(self, exc: BaseException, msg: Any) -> None:
        """One frame failed: count it and say why (throttled per kind); the node carries on."""
        self._stats.frame_failed()
        log = self.get_logger()
        if isinstance(exc, ValueError):
            # A bad image, or camera_info intrinsics that do not fit the model's map camera.
            log.warning(f"frame not usable: {exc}", throttle_duration_sec=5.0)
        elif isinstance(exc, NoEstimate):
            log.warning(f"no estimate: {exc}", throttle_duration_sec=5.0)
        elif isinstance(exc, tf2_ros.TransformException):
            log.warning(f"TF: {type(exc).__name__}: {exc}", throttle_duration_sec=5.0)
        else:
            log.error(f"frame failed: {type(exc).__name__}: {exc}", throttle_duration_sec=5.0)

    # -- one-shot service (its own reentrant callback group) ------------------

    def _on_relocalize(self, request: Any, response: Any) -> Any:
        """Relocalize from the best of the next oneshot.frames frames; publish it on /initialpose."""
        oneshot, opts = self._oneshot, self._opts
        if not self._active or oneshot is None or opts is None:
            response.success = False
            response.message = "the relocalization node is not active (lifecycle state must be 'active')"
            return response
        if not self._oneshot_lock.acquire(blocking=False):
            response.success = False
            response.message = "a ~/relocalize request is already running; try again when it has answered"
            return response
        try:
            self._stats.clear_oneshot_skipped()
            oneshot.start(time.monotonic_ns())
            result = wait_for_oneshot(oneshot, lambda: self._active)
            if result is None:
                response.success = False
                response.message = "the node was deactivated while waiting for frames"
                return response
            message = result.message
            if result.success:
                pose = conv.make_pose_with_covariance_stamped(self._types, result.T_map_base, result.cov_66,
                                                              result.stamp_ns, self._map_frame)
                pub = self._pubs.get("initialpose")
                if pub is not None:
                    pub.publish(pose)
                    message += f"; published on {opts.initialpose_topic}"
                self.get_logger().info(f"~/relocalize: {message}")
            else:
                message = oneshot_failure_message(message, self._stats.oneshot_skipped(), opts.allow_unverified,
                                                  self._stats.problem)
                self.get_logger().warning(f"~/relocalize failed: {message}")
            response.success, response.message = bool(result.success), message
            return response
        finally:
            self._oneshot_lock.release()

    # -- TF ------------------------------------------------------------------------

    def _rebroadcast_tf(self) -> None:
        """Re-send the last map -> odom correction stamped now + transform_tolerance_s (timer, publish_tf)."""
        held, broadcaster = self._map_odom, self._tf_broadcaster
        if held is None or broadcaster is None or not self._active:
            return
        out = held.rebroadcast(self.get_clock().now().nanoseconds)
        if out is not None:
            T, stamp, parent, child = out
            broadcaster.sendTransform(conv.make_transform_stamped(self._types, T, stamp, parent, child))

    # -- diagnostics ------------------------------------------------------------

    def _diagnose(self, stat: Any) -> Any:
        """Fill the node's ``/diagnostics`` status (diagnostic_updater task, every ``diagnostic_updater.period``)."""
        return fill_status(stat, self._status_report())

    def _status_report(self) -> DiagnosticsReport:
        """Return the configure failure, the lifecycle state, or the figures since the previous report."""
        if self._configure_failure is not None:
            return self._configure_failure
        opts, reloc, worker = self._opts, self._reloc, self._worker
        if opts is None or not self._active:
            return inactive_report(configured=opts is not None)
        stats = worker.stats if worker is not None else None
        period = self._stats.take_period(stats.processed if stats else 0, time.monotonic())
        return diagnostics_report(period, stats, reloc, period_s=opts.diagnostics_period_s,
                                  image_topic=self._image_topic, camera_info_topic=self._camera_info_topic,
                                  intrinsics=self._intrinsics)
