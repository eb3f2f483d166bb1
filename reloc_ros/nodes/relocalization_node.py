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

"""relocalization_node: camera images in, map poses with covariance, map -> odom and /initialpose out.

A lifecycle (managed) node, default name ``relocalization``:

* configure: parameters (``config/relocalize.yaml``) are read and checked,
  the model is loaded (:class:`~reloc_ros.runtime.engine.Relocalizer`), TF
  listener/broadcaster, publishers and the ``~/relocalize`` service are made.
* activate: subscribes to ``image`` (``sensor_msgs/Image``) or
  ``image/compressed`` (``CompressedImage``) and to ``camera_info``
  (``CameraInfo``: the intrinsics handed to the engine's geometric
  verification) with the sensor-data QoS; every image goes into a size-1
  drop-oldest slot and is relocalized on a worker thread
  (:class:`~reloc_ros.runtime.engine.LatestFrameWorker`), never on the
  executor.
* per frame: ``~/status`` (``DiagnosticArray``, image stamp): ``verified``
  (the model file's feature map confirmed and refined the pose, OK),
  ``unverified`` (learned pose only, WARN) or ``failed`` (the geometry
  contradicts the learned pose, ERROR: nothing else is published for the
  frame). For verified and unverified frames
  (:func:`~reloc_ros.runtime.pipeline.localize_frame`, shared with
  ``reloc-ros replay``): ``~/camera_pose`` (``PoseWithCovarianceStamped`` of
  the camera in the map), ``~/pose`` (the same for ``base_frame``, through
  the camera extrinsics from TF, with the covariance propagated), both
  stamped with the image stamp, and ``~/hypotheses`` (``PoseArray``). Only
  verified poses (and unverified ones with ``allow_unverified``) move the
  robot's belief: the ``map -> odom`` correction on ``/tf`` when confident,
  kidnapped-robot recovery on ``/initialpose`` and ``~/relocalize``.
* ``/diagnostics`` through ``diagnostic_updater`` (hardware id: the image
  topic), once per ``diagnostic_updater.period``: the node's status
  (``relocalization``: rates, latency, the share of verified / unverified /
  failed frames; ERROR with the reason while a failed configure leaves it
  unconfigured) and, while active, the rate and image-stamp delay of the
  relocalized frames (``relocalized frames``).

All the maths is in the ROS-free core (:mod:`reloc_ros.runtime.pipeline`,
:mod:`reloc_ros.runtime.tf_math`, :mod:`reloc_ros.runtime.recovery`,
:mod:`reloc_ros.conversions`), and so are the node's own decisions
(:mod:`reloc_ros.runtime.node_core`), its counters and ``/diagnostics``
(:mod:`reloc_ros.runtime.node_diagnostics`; the updater in
:mod:`reloc_ros.nodes.diagnostics`) and its log forwarding
(:mod:`reloc_ros.runtime.log_bridge`). This module is the lifecycle and
input side; the publishing callbacks are in
:mod:`reloc_ros.nodes.relocalization_outputs`, the parameter declaration in
:mod:`reloc_ros.nodes.ros_params`.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import numpy as np
import rclpy
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rcl_interfaces.msg import SetParametersResult
from std_srvs.srv import Trigger
import tf2_ros

from reloc_ros import conversions as conv
from reloc_ros.errors import RelocError
from reloc_ros.nodes.diagnostics import FramesTask, make_updater
from reloc_ros.nodes.relocalization_outputs import RelocalizationOutputs
from reloc_ros.nodes.ros_params import declare_specs, read_specs
from reloc_ros.runtime.engine import Relocalizer
from reloc_ros.runtime.lifecycle_bond import LifecycleBond
from reloc_ros.runtime.log_bridge import attach_core_logging, detach_core_logging
from reloc_ros.runtime.node_core import check_parameter_update, configure_report, image_stamp_ns, map_frame_warning
from reloc_ros.runtime.node_diagnostics import (DiagnosticsReport, FRAMES_TASK, NodeStats, STATUS_TASK,
                                                configure_failure_report)
from reloc_ros.runtime.node_params import (RELOCALIZATION_PARAMS, RelocalizationOptions, relocalization_options,
                                           spec_by_name)
from reloc_ros.runtime.recovery import KidnapDetector, OneShotRequest
from reloc_ros.runtime.tf_broadcast import MapOdomBroadcast
from reloc_ros.runtime.worker import LatestFrameWorker

try:  # ros-$ROS_DISTRO-bondpy: the bond a Nav2 lifecycle manager waits for (LifecycleBond warns without it)
    from bondpy.bondpy import Bond
except ImportError:
    Bond = None

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE


# --------------------------------------------------------------------------
# The node
# --------------------------------------------------------------------------

class RelocalizationNode(RelocalizationOutputs, LifecycleNode):
    """Lifecycle node relocalizing camera images; see the module docstring.

    Its publishing callbacks (per frame, ``~/relocalize``, ``/diagnostics``) are in
    :class:`~reloc_ros.nodes.relocalization_outputs.RelocalizationOutputs`.
    """

    def __init__(self, node_name: str = "relocalization", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._types = conv.ros_message_types()
        self._param_errors = declare_specs(self, RELOCALIZATION_PARAMS)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._log_state = attach_core_logging(self.get_logger())
        self._service_group = ReentrantCallbackGroup()
        self._oneshot_lock = threading.Lock()
        self._active = False
        self._opts: RelocalizationOptions | None = None
        self._reloc: Relocalizer | None = None
        self._map_frame = ""
        self._tf_buffer = None
        self._tf_listener = None
        self._tf_broadcaster = None
        self._detector: KidnapDetector | None = None
        self._oneshot: OneShotRequest | None = None
        self._pubs: dict[str, Any] = {}
        self._belief_sub = None
        self._service = None
        self._sub = None
        self._camera_info_sub = None
        self._tf_timer = None
        self._map_odom: MapOdomBroadcast | None = None
        self._bond: LifecycleBond | None = None
        self._worker: LatestFrameWorker | None = None
        self._image_topic = ""
        self._camera_info_topic = ""
        self._intrinsics = None  # reloc_ros.data.types.Intrinsics of the latest valid CameraInfo
        self._belief: tuple[int, np.ndarray] | None = None
        self._stats = NodeStats()  # counters of the executor, worker and service threads; /diagnostics
        # /diagnostics: the node's status (task STATUS_TASK) from now on, so a failed configure is an ERROR there
        # while unconfigured; the relocalized frames' rate and stamps (FRAMES_TASK) while active.
        self._configure_failure: DiagnosticsReport | None = None
        self._frames_task: FramesTask | None = None
        self._updater = make_updater(self, self._expected_image_topic())
        self._updater.add(STATUS_TASK, self._diagnose)

    # -- parameters --------------------------------------------------------

    def _on_set_parameters(self, params: list) -> SetParametersResult:
        reason, names = check_parameter_update(spec_by_name(RELOCALIZATION_PARAMS),
                                               [(p.name, p.value) for p in params])
        if reason is not None:
            return SetParametersResult(successful=False, reason=reason)
        for name in names:
            self._param_errors.pop(name, None)
        if names and self._opts is not None:
            self.get_logger().info(f"parameter(s) {', '.join(names)} set: they apply at the next configure "
                                   f"(deactivate, cleanup, configure, activate)")
        return SetParametersResult(successful=True)

    @property
    def autostart(self) -> bool:
        """Whether the node configures and activates itself (the ``autostart`` parameter)."""
        return bool(self.get_parameter("autostart").value)

    @property
    def worker_stats(self):
        """Counters of the inference worker (``None`` while inactive)."""
        return self._worker.stats if self._worker is not None else None

    # -- lifecycle -----------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            ret = self._configure()
        except Exception as exc:  # noqa: BLE001 - rclpy would swallow it without a word
            ret = self._configure_failed(f"{type(exc).__name__}: {exc}")
        if ret != SUCCESS:
            self._release()
            return ret
        return super().on_configure(state)

    def _configure_failed(self, reason: str) -> TransitionCallbackReturn:
        """Log why configure failed, report it as an ERROR on /diagnostics (now, and until a configure succeeds)."""
        self.get_logger().error(f"configure failed: {reason}")
        model = str(self.get_parameter("model_path").value) if self.has_parameter("model_path") else ""
        self._configure_failure = configure_failure_report(reason, model)
        self._updater.force_update()
        return FAILURE

    def _expected_image_topic(self) -> str:
        """Return the image topic activate will subscribe to, resolved (remapped): the diagnostics' hardware id."""
        topic = "image/compressed" if self.get_parameter("image_transport").value == "compressed" else "image"
        try:
            return self.resolve_topic_name(topic)
        except Exception:  # noqa: BLE001 - a name rcl cannot resolve: the relative one says enough
            return topic

    def _configure(self) -> TransitionCallbackReturn:
        log = self.get_logger()
        if self._param_errors:
            return self._configure_failed("; ".join(self._param_errors.values()))
        try:
            opts = relocalization_options(read_specs(self, RELOCALIZATION_PARAMS))
        except ValueError as exc:
            return self._configure_failed(str(exc))
        try:
            reloc = Relocalizer(**opts.relocalizer_kwargs)
        except (ValueError, RelocError, OSError, RuntimeError, ImportError) as exc:
            return self._configure_failed(f"cannot load model '{opts.relocalizer_kwargs['model_path']}': "
                                          f"{type(exc).__name__}: {exc}")
        self._opts, self._reloc = opts, reloc
        self._map_frame = opts.map_frame or reloc.map_frame
        warning = map_frame_warning(opts.map_frame, reloc.map_frame)
        if warning:
            log.warning(warning)
        self._tf_buffer = tf2_ros.Buffer()
        self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self)
        self._tf_broadcaster = tf2_ros.TransformBroadcaster(self)
        self._map_odom = MapOdomBroadcast(opts.transform_tolerance_s, opts.tf_rebroadcast_hz)
        self._detector = KidnapDetector(opts.recovery)
        self._oneshot = OneShotRequest(opts.oneshot_frames, opts.oneshot_timeout_s, opts.min_confidence)
        t = self._types
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                              durability=DurabilityPolicy.VOLATILE)
        create = getattr(self, "create_lifecycle_publisher", self.create_publisher)
        pose_cls = t["geometry_msgs/msg/PoseWithCovarianceStamped"]
        self._pubs = {
            "pose": create(pose_cls, "~/pose", reliable),
            "camera_pose": create(pose_cls, "~/camera_pose", reliable),
            "hypotheses": create(t["geometry_msgs/msg/PoseArray"], "~/hypotheses", reliable),
            "status": create(t["diagnostic_msgs/msg/DiagnosticArray"], "~/status", reliable),
            "initialpose": create(pose_cls, opts.initialpose_topic, reliable),
        }
        if opts.recovery_enabled and opts.belief_pose_topic:
            # Transient local (default) also delivers AMCL's last amcl_pose, published before this node started;
            # a volatile publisher needs belief_pose_durability: volatile.
            durability = (DurabilityPolicy.TRANSIENT_LOCAL if opts.belief_pose_transient_local
                          else DurabilityPolicy.VOLATILE)
            self._belief_sub = self.create_subscription(
                pose_cls, opts.belief_pose_topic, self._on_belief_pose,
                QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE, durability=durability))
        self._service = self.create_service(Trigger, "~/relocalize", self._on_relocalize,
                                            callback_group=self._service_group)
        self._configure_failure = None
        info, warnings = configure_report(opts, self._map_frame, reloc.describe(), reloc.verifying)
        log.info(info)
        for warning in warnings:
            log.warning(warning)
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            opts = self._opts
            if opts is None or self._reloc is None:
                self.get_logger().error("activate failed: the node is not configured")
                return FAILURE
            if opts.image_transport == "compressed":
                topic, msg_cls = "image/compressed", self._types["sensor_msgs/msg/CompressedImage"]
            else:
                topic, msg_cls = "image", self._types["sensor_msgs/msg/Image"]
            self._stats.reset()
            self._worker = LatestFrameWorker(self._process, on_error=self._on_frame_error,
                                             name="reloc_ros-relocalization")
            self._sub = self.create_subscription(msg_cls, topic, self._on_image, qos_profile_sensor_data)
            self._image_topic = str(getattr(self._sub, "topic_name", topic))
            # Sensor-data QoS (best effort) matches reliable and best-effort CameraInfo publishers alike.
            self._intrinsics = None
            self._camera_info_sub = self.create_subscription(self._types["sensor_msgs/msg/CameraInfo"],
                                                             "camera_info", self._on_camera_info,
                                                             qos_profile_sensor_data)
            self._camera_info_topic = str(getattr(self._camera_info_sub, "topic_name", "camera_info"))
            self._updater.setHardwareID(self._image_topic)
            self._frames_task = FramesTask(self.get_clock(), opts.diagnostics_min_rate_hz)
            self._updater.add(self._frames_task)
            if opts.publish_tf and self._map_odom.period_s is not None:
                self._tf_timer = self.create_timer(self._map_odom.period_s, self._rebroadcast_tf)
        except Exception as exc:  # noqa: BLE001 - rclpy would swallow it without a word
            self.get_logger().error(f"activate failed: {type(exc).__name__}: {exc}")
            self._stop_input()
            return FAILURE
        ret = super().on_activate(state)  # enables the lifecycle publishers
        if ret != SUCCESS:
            self._stop_input()
            return ret
        self._active = True
        # As Nav2's own nodes: the bond its lifecycle manager waits for after activating us.
        self._bond = LifecycleBond(Bond, self, self.get_name(), opts.bond_heartbeat_period_s, self.get_logger().warning)
        self._bond.start()
        self.get_logger().info(f"active: relocalizing {msg_cls.__name__} from {self._image_topic} (intrinsics "
                               f"from {self._camera_info_topic}), publishing {self._pubs['pose'].topic_name}")
        return SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_input()
        self.get_logger().info("inactive: image subscription closed")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_input()
        ret = super().on_cleanup(state)
        self._release()
        self.get_logger().info("cleaned up: model and publishers released")
        return ret

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_input()
        self._release()
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error during a transition from '{state.label}': releasing everything")
        self._stop_input()
        self._release()
        return SUCCESS

    def bring_up(self) -> bool:
        """Configure and activate (``autostart``); return whether the node is active."""
        if self.trigger_configure() != SUCCESS:
            self.get_logger().error(f"autostart: configure failed (see above); the node stays unconfigured. Fix the "
                                    f"parameters, then: ros2 lifecycle set {self.get_fully_qualified_name()} "
                                    f"configure")
            return False
        if self.trigger_activate() != SUCCESS:
            self.get_logger().error("autostart: activate failed (see above)")
            return False
        return True

    def _stop_input(self) -> None:
        """Stop images, diagnostics and the worker (deactivate)."""
        self._active = False
        if self._sub is not None:
            self.destroy_subscription(self._sub)
            self._sub = None
        if self._camera_info_sub is not None:
            self.destroy_subscription(self._camera_info_sub)
            self._camera_info_sub = None
        if self._frames_task is not None:
            self._updater.removeByName(FRAMES_TASK)
            self._frames_task = None
        if self._tf_timer is not None:
            self.destroy_timer(self._tf_timer)
            self._tf_timer = None
        if self._map_odom is not None:
            self._map_odom.clear()  # a re-activated node starts from a fresh correction
        if self._bond is not None:
            self._bond.stop()
            self._bond = None
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    def _release(self) -> None:
        """Release everything configure made (cleanup, shutdown, failed configure)."""
        destroy_pub = getattr(self, "destroy_lifecycle_publisher", self.destroy_publisher)
        for pub in self._pubs.values():
            destroy_pub(pub)
        self._pubs = {}
        if self._belief_sub is not None:
            self.destroy_subscription(self._belief_sub)
            self._belief_sub = None
        if self._service is not None:
            self.destroy_service(self._service)
            self._service = None
        if self._tf_listener is not None:
            self._tf_listener.unregister()
            self._tf_listener = None
        if self._tf_broadcaster is not None:
            pub = getattr(self._tf_broadcaster, "pub_tf", None)
            if pub is not None:
                self.destroy_publisher(pub)
            self._tf_broadcaster = None
        self._tf_buffer = None
        self._map_odom = None
        self._detector = self._oneshot = None
        self._reloc = None
        self._opts = None
        self._belief = None

    def destroy_node(self) -> None:
        """Stop the worker, release everything and detach the core's logging, then destroy the node."""
        self._stop_input()
        self._release()
        if self._log_state is not None:
            detach_core_logging(self._log_state)
            self._log_state = None
        super().destroy_node()

    # -- input (executor threads: cheap only) ---------------------------------

    def _on_image(self, msg: Any) -> None:
        """Rate and stamp check, then hand the image to the worker; nothing heavy here."""
        opts, worker = self._opts, self._worker
        if opts is None or worker is None:
            return
        # An unstamped camera is rate-limited by arrival time instead.
        accepted, jumped = self._stats.admit(image_stamp_ns(msg), opts.min_period_ns)
        if not accepted:
            return
        if jumped:
            self.get_logger().info("image stamps went back in time (bag loop or sim time reset?): TF buffer, rate "
                                   "limit and recovery state start again", throttle_duration_sec=5.0)
            if self._detector is not None:
                self._detector.reset()
            buffer = self._tf_buffer
            if buffer is not None and hasattr(buffer, "clear"):
                buffer.clear()  # transforms from the "future" of the old timeline would be used otherwise
        try:
            worker.submit(msg)
        except RuntimeError:
            pass  # the worker stopped while deactivating

    def _on_camera_info(self, msg: Any) -> None:
        """Keep the intrinsics of the latest valid CameraInfo (cheap); a bad one is ignored with a warning."""
        try:
            self._intrinsics = conv.camera_info_to_intrinsics(msg)
        except (ValueError, TypeError, AttributeError) as exc:
            keep = "keeping the previous one" if self._intrinsics is not None else "none received yet"
            self.get_logger().warning(f"ignoring a CameraInfo on {self._camera_info_topic} ({keep}): {exc}",
                                      throttle_duration_sec=10.0)

    def _on_belief_pose(self, msg: Any) -> None:
        """Keep the belief's covariance (AMCL's amcl_pose); say when the first one of a configuration arrives."""
        try:
            cov = conv.pose_covariance_from_msg(msg, "geometry_msgs/msg/PoseWithCovarianceStamped")
            first = self._belief is None
            self._belief = (conv.stamp_to_ns(msg.header.stamp), cov)
            if first:
                topic = self._belief_sub.topic_name if self._belief_sub is not None else "the belief topic"
                self.get_logger().info(f"belief covariance from {topic} (stamp {self._belief[0] / 1e9:.3f} s): "
                                       f"recovery compares with it")
        except ValueError as exc:
            self.get_logger().warning(f"ignoring a belief pose message: {exc}", throttle_duration_sec=10.0)


def main(args: list[str] | None = None) -> None:
    """Run the node: configure + activate itself when ``autostart`` is true, spin until Ctrl-C."""
    rclpy.init(args=args)
    node = None
    executor = MultiThreadedExecutor(num_threads=3)
    try:
        node = RelocalizationNode()
        executor.add_node(node)
        if node.autostart:
            node.bring_up()
        else:
            node.get_logger().info(f"autostart false: waiting for a lifecycle manager to configure "
                                   f"{node.get_fully_qualified_name()}")
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # Under ros2 launch, Ctrl-C brings two SIGINTs (the terminal's and launch's): the second one must not cut
        # the clean-up short with a KeyboardInterrupt (seen on Humble: a traceback and "process has died").
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if node is not None:
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    main()
