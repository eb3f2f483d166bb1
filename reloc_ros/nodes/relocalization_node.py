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
* ``/diagnostics`` once per ``diagnostics_period_s``, with the share of
  verified / unverified / failed frames.

All the maths is in the ROS-free core (:mod:`reloc_ros.runtime.pipeline`,
:mod:`reloc_ros.runtime.tf_math`, :mod:`reloc_ros.runtime.recovery`,
:mod:`reloc_ros.conversions`).
"""

from __future__ import annotations

import array
import logging
import statistics
import threading
import time
from typing import Any, Sequence

import numpy as np
import rclpy
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.duration import Duration
from rclpy.exceptions import (InvalidParameterTypeException, InvalidParameterValueException,
                              ParameterUninitializedException)
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.time import Time
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from std_srvs.srv import Trigger
import tf2_ros

from reloc_ros import conversions as conv
from reloc_ros.errors import RelocError
from reloc_ros.runtime.engine import STAGES, STATUSES, Estimate, LatestFrameWorker, NoEstimate, Relocalizer
from reloc_ros.runtime.frame_status import make_frame_status, verification_report
from reloc_ros.runtime.node_params import (RELOCALIZATION_PARAMS, ParamSpec, RelocalizationOptions, check_value,
                                           relocalization_options, spec_by_name)
from reloc_ros.runtime.pipeline import localize_frame
from reloc_ros.runtime.recovery import KidnapDetector, OneShotRequest

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE
_NS = 1_000_000_000
BELIEF_MAX_AGE_S = 5.0
"""A belief_pose_topic message is used for frames within this many seconds of its stamp."""

_ROS_TYPES = {
    "bool": Parameter.Type.BOOL, "int": Parameter.Type.INTEGER, "float": Parameter.Type.DOUBLE,
    "str": Parameter.Type.STRING, "str[]": Parameter.Type.STRING_ARRAY, "int[]": Parameter.Type.INTEGER_ARRAY,
}


# --------------------------------------------------------------------------
# Parameters and logging, shared with trainer_node
# --------------------------------------------------------------------------

def make_descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """``ParameterDescriptor`` of a spec: description, read-only flag, range, choices."""
    d = ParameterDescriptor(name=spec.name, description=spec.description, read_only=spec.read_only)
    if spec.choices:
        d.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.min is not None:
        if spec.kind == "float":
            d.floating_point_range = [FloatingPointRange(from_value=float(spec.min), to_value=float(spec.max),
                                                         step=0.0)]
        else:
            d.integer_range = [IntegerRange(from_value=int(spec.min), to_value=int(spec.max), step=1)]
    return d


def declare_specs(node: Any, specs: Sequence[ParamSpec]) -> dict[str, str]:
    """Declare every parameter of ``specs``; return ``{name: error}`` for overrides ROS refused.

    An override of the wrong type or out of range does not crash the
    constructor: the parameter keeps its default and the error is reported
    (configure fails with it) until a valid value is set.
    """
    errors: dict[str, str] = {}
    for spec in specs:
        default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        # An empty list has no type for ROS: declare it typed (its value is then unset until overridden).
        value = _ROS_TYPES[spec.kind] if default == [] else default
        try:
            node.declare_parameter(spec.name, value, make_descriptor(spec))
        except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
            hint = " (write floats with a decimal point, e.g. 5.0)" if spec.kind == "float" else ""
            errors[spec.name] = f"parameter '{spec.name}': {exc}{hint}"
            node.declare_parameter(spec.name, value, make_descriptor(spec), ignore_override=True)
    return errors


def read_specs(node: Any, specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """Return the current values of the parameters of ``specs`` as plain Python values."""
    out = {}
    for spec in specs:
        try:
            value = node.get_parameter(spec.name).value
        except ParameterUninitializedException:
            value = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        if isinstance(value, (array.array, tuple)):
            value = list(value)
        out[spec.name] = value
    return out


class RosLogHandler(logging.Handler):
    """Forward Python ``logging`` records of the core (``reloc_ros.*``) to a node's rclpy logger."""

    def __init__(self, ros_logger: Any) -> None:
        super().__init__()
        self.ros_logger = ros_logger
        self.setFormatter(logging.Formatter("%(message)s"))
        self.listeners: list = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            for listener in self.listeners:
                listener(record, text)
            # rclpy keys its log context by call site and refuses a second severity at the same
            # site: one call per severity.
            if record.levelno >= logging.ERROR:
                self.ros_logger.error(text)
            elif record.levelno >= logging.WARNING:
                self.ros_logger.warning(text)
            elif record.levelno >= logging.INFO:
                self.ros_logger.info(text)
            else:
                self.ros_logger.debug(text)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


def attach_core_logging(ros_logger: Any, level: int = logging.INFO) -> tuple:
    """Route the ``reloc_ros`` Python loggers to ``ros_logger``; return what :func:`detach_core_logging` needs."""
    core = logging.getLogger("reloc_ros")
    handler = RosLogHandler(ros_logger)
    old_level, old_propagate = core.level, core.propagate
    core.addHandler(handler)
    if core.level == logging.NOTSET or core.level > level:
        core.setLevel(level)
    core.propagate = False  # else Python's last-resort handler prints warnings a second time
    # Importing `launch` (launch_testing's pytest plugin does) makes every logger created afterwards
    # non-propagating: reconnect the core's module loggers to "reloc_ros".
    cut = [lg for name, lg in logging.root.manager.loggerDict.items()
           if name.startswith("reloc_ros.") and isinstance(lg, logging.Logger) and not lg.propagate]
    for lg in cut:
        lg.propagate = True
    return handler, old_level, old_propagate, cut


def detach_core_logging(state: tuple) -> None:
    """Undo :func:`attach_core_logging`."""
    handler, old_level, old_propagate, cut = state
    core = logging.getLogger("reloc_ros")
    core.removeHandler(handler)
    core.setLevel(old_level)
    core.propagate = old_propagate
    for lg in cut:
        lg.propagate = False


# --------------------------------------------------------------------------
# The node
# --------------------------------------------------------------------------

class RelocalizationNode(LifecycleNode):
    """Lifecycle node relocalizing camera images; see the module docstring."""

    def __init__(self, node_name: str = "relocalization", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._types = conv.ros_message_types()
        self._param_errors = declare_specs(self, RELOCALIZATION_PARAMS)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._log_state = attach_core_logging(self.get_logger())
        self._service_group = ReentrantCallbackGroup()
        self._stats_lock = threading.Lock()
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
        self._timer = None
        self._worker: LatestFrameWorker | None = None
        self._image_topic = ""
        self._camera_info_topic = ""
        self._intrinsics = None  # reloc_ros.data.types.Intrinsics of the latest valid CameraInfo
        self._oneshot_skipped: dict[str, int] = {}
        self._belief: tuple[int, np.ndarray] | None = None
        self._reset_stats()

    # -- parameters --------------------------------------------------------

    def _on_set_parameters(self, params: list) -> SetParametersResult:
        specs = spec_by_name(RELOCALIZATION_PARAMS)
        for p in params:
            spec = specs.get(p.name)
            if spec is None:
                continue
            value = list(p.value) if isinstance(p.value, (array.array, tuple)) else p.value
            try:
                check_value(spec, value)
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        names = [p.name for p in params if p.name in specs]
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
            self.get_logger().error(f"configure failed: {type(exc).__name__}: {exc}")
            ret = FAILURE
        if ret != SUCCESS:
            self._release()
            return ret
        return super().on_configure(state)

    def _configure(self) -> TransitionCallbackReturn:
        log = self.get_logger()
        if self._param_errors:
            for err in self._param_errors.values():
                log.error(f"configure failed: {err}")
            return FAILURE
        try:
            opts = relocalization_options(read_specs(self, RELOCALIZATION_PARAMS))
        except ValueError as exc:
            log.error(f"configure failed: {exc}")
            return FAILURE
        try:
            reloc = Relocalizer(**opts.relocalizer_kwargs)
        except (ValueError, RelocError, OSError, RuntimeError, ImportError) as exc:
            log.error(f"configure failed: cannot load model '{opts.relocalizer_kwargs['model_path']}': "
                      f"{type(exc).__name__}: {exc}")
            return FAILURE
        self._opts, self._reloc = opts, reloc
        self._map_frame = opts.map_frame or reloc.map_frame
        if opts.map_frame and opts.map_frame != reloc.map_frame:
            log.warning(f"map_frame '{opts.map_frame}' differs from the model's map frame '{reloc.map_frame}': "
                        f"poses are published in '{opts.map_frame}' as they are (no transform is applied)")
        self._tf_buffer = tf2_ros.Buffer()
        self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self)
        self._tf_broadcaster = tf2_ros.TransformBroadcaster(self)
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
            "diagnostics": create(t["diagnostic_msgs/msg/DiagnosticArray"], "/diagnostics", 10),
            "initialpose": create(pose_cls, opts.initialpose_topic, reliable),
        }
        if opts.recovery_enabled and opts.belief_pose_topic:
            # Volatile: matches AMCL's transient-local publisher and volatile ones alike.
            self._belief_sub = self.create_subscription(pose_cls, opts.belief_pose_topic, self._on_belief_pose,
                                                        QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
        self._service = self.create_service(Trigger, "~/relocalize", self._on_relocalize,
                                            callback_group=self._service_group)
        log.info(f"configured: {reloc.describe()}; publishing {self._map_frame} -> "
                 f"{opts.odom_frame or opts.base_frame} {'on /tf' if opts.publish_tf else '(publish_tf off)'}")
        if not reloc.verifying and not opts.allow_unverified and (opts.publish_tf or opts.recovery_enabled):
            log.warning(f"poses are not verified (verify '{opts.relocalizer_kwargs.get('verify')}', model without a "
                        f"feature map, or verification off): they are published on ~/pose, but with "
                        f"allow_unverified false no TF correction, re-initialisation or ~/relocalize answer comes "
                        f"from them. Use a model file with a feature map, or set allow_unverified true to act on "
                        f"learned-only poses.")
        if opts.recovery_enabled and opts.publish_tf:
            log.warning("initialpose.enabled with publish_tf true: this node itself publishes map -> "
                        f"{opts.odom_frame or opts.base_frame}, so there is no independent belief to compare with "
                        "and recovery runs as if the robot were never localised. Under AMCL (or any other "
                        "localizer owning map -> odom) set publish_tf false.")
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
            self._reset_stats()
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
            self._timer = self.create_timer(opts.diagnostics_period_s, self._publish_diagnostics)
        except Exception as exc:  # noqa: BLE001 - rclpy would swallow it without a word
            self.get_logger().error(f"activate failed: {type(exc).__name__}: {exc}")
            self._stop_input()
            return FAILURE
        ret = super().on_activate(state)  # enables the lifecycle publishers
        if ret != SUCCESS:
            self._stop_input()
            return ret
        self._active = True
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
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
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
        try:
            stamp = conv.stamp_to_ns(msg.header.stamp)
        except (ValueError, AttributeError):
            stamp = 0
        if stamp <= 0:
            stamp = time.monotonic_ns()  # an unstamped camera: rate-limit by arrival time instead
        with self._stats_lock:
            self._n_input += 1
            last = self._last_accepted_ns
            if last is not None and stamp < last - _NS:
                last = None  # stamps went back (bag loop, sim time reset): start again
                jumped = True
            else:
                jumped = False
            min_period = opts.min_period_ns
            if min_period and last is not None and 0 <= stamp - last < min_period:
                self._n_rate_dropped += 1
                return
            self._last_accepted_ns = stamp
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
        try:
            cov = conv.pose_covariance_from_msg(msg, "geometry_msgs/msg/PoseWithCovarianceStamped")
            self._belief = (conv.stamp_to_ns(msg.header.stamp), cov)
        except ValueError as exc:
            self.get_logger().warning(f"ignoring a belief pose message: {exc}", throttle_duration_sec=10.0)

    # -- worker thread ---------------------------------------------------------

    def _lookup(self, target: str, source: str, stamp_ns: int | None) -> np.ndarray:
        """``T_target_source`` from TF (latest when ``stamp_ns`` is None), waiting up to tf_timeout_s."""
        when = Time() if stamp_ns is None else Time(nanoseconds=int(stamp_ns))
        ts = self._tf_buffer.lookup_transform(target, source, when,
                                              timeout=Duration(nanoseconds=int(self._opts.tf_timeout_s * _NS)))
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
        self._record(est)
        acts = opts.acts_on(est.status)  # may this frame move the robot's belief (TF, /initialpose, ~/relocalize)?
        oneshot = self._oneshot
        if not acts and oneshot is not None and oneshot.active:
            with self._stats_lock:
                self._oneshot_skipped[est.status] = self._oneshot_skipped.get(est.status, 0) + 1
        if not est.publishable:
            # The geometry contradicts the learned pose: say so on ~/status, publish no pose at all.
            self._publish_status(est)
            self.get_logger().info(f"frame at {stamp / _NS:.3f} s failed verification, no pose published: "
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
        if (acts and T_base_cam is not None and opts.publish_tf and opts.odom_frame
                and est.confidence >= opts.min_confidence):
            T_odom_base = self._try_lookup(opts.odom_frame, opts.base_frame, stamp)
        belief = None
        if acts and T_base_cam is not None and opts.recovery_enabled and not opts.publish_tf:
            # With publish_tf the node owns map -> odom itself: nothing independent to compare with.
            T_belief = self._try_lookup(map_frame, opts.base_frame, stamp)
            belief = None if T_belief is None else (T_belief, self._belief_covariance(stamp))
        try:
            fr = localize_frame(est, T_base_cam=T_base_cam, base_frame=opts.base_frame, camera_frame=cam_frame,
                                odom_frame=opts.odom_frame, T_odom_base=T_odom_base, publish_tf=opts.publish_tf,
                                min_confidence=opts.min_confidence,
                                detector=self._detector if opts.recovery_enabled else None, belief=belief,
                                allow_unverified=opts.allow_unverified)
        except ValueError as exc:  # e.g. a belief covariance from AMCL that is not one
            self.get_logger().warning(f"frame at {stamp / _NS:.3f} s: {exc}", throttle_duration_sec=5.0)
            self._set_problem(str(exc))
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
        # Low confidence is normal operation; an unverified pose skipping the TF correction is reported on
        # ~/status and /diagnostics (and once at configure), not as a problem of every frame.
        problems = [n for n in fr.notes if "confidence" not in n and not n.startswith(f"pose {est.status}:")]
        self._set_problem("; ".join(problems))
        if pose_msg is None:
            return  # warned above, with a hint
        for note in problems:
            self.get_logger().warning(note, throttle_duration_sec=5.0)
        if fr.tf is not None:
            self._tf_broadcaster.sendTransform(conv.make_transform_stamped(t, fr.tf[2], stamp, map_frame, fr.tf[1]))
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

    def _belief_covariance(self, stamp: int) -> np.ndarray:
        belief = self._belief
        if belief is not None and abs(stamp - belief[0]) < BELIEF_MAX_AGE_S * _NS:
            return belief[1]
        s_m, s_rad = self._opts.belief_std
        return np.diag([s_m ** 2] * 3 + [s_rad ** 2] * 3)

    def _on_frame_error(self, exc: BaseException, msg: Any) -> None:
        """One frame failed: count it and say why (throttled per kind); the node carries on."""
        with self._stats_lock:
            self._last_failed = True
            self._last_done = time.monotonic()
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
            with self._stats_lock:
                self._oneshot_skipped = {}
            oneshot.start(time.monotonic_ns())
            while True:
                time.sleep(0.02)
                result = oneshot.result or oneshot.poll(time.monotonic_ns())
                if result is not None:
                    break
                if not self._active:
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
                with self._stats_lock:
                    skipped = dict(self._oneshot_skipped)
                if skipped:
                    which = ", ".join(f"{n} {status}" for status, n in sorted(skipped.items()))
                    allowed = "verified or unverified" if opts.allow_unverified else "verified"
                    message += (f" ({which} frame(s) not used: only {allowed} poses answer ~/relocalize"
                                f"{'' if opts.allow_unverified else '; see allow_unverified'})")
                if self._problem:
                    message += f" (last problem: {self._problem})"
                self.get_logger().warning(f"~/relocalize failed: {message}")
            response.success, response.message = bool(result.success), message
            return response
        finally:
            self._oneshot_lock.release()

    # -- diagnostics ------------------------------------------------------------

    def _reset_stats(self) -> None:
        with self._stats_lock:
            self._n_input = 0
            self._n_rate_dropped = 0
            self._last_accepted_ns: int | None = None
            self._timings: list[dict] = []
            self._last_confidence: float | None = None
            self._last_sigmas: tuple[float, float] | None = None
            self._last_failed = False
            self._last_done = time.monotonic()
            self._problem = ""
            self._diag_prev = (time.monotonic(), 0, 0)
            self._status_counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
            self._verified_inliers: list[int] = []

    def _record(self, est: Estimate) -> None:
        with self._stats_lock:
            self._timings.append(dict(est.timings_ms))
            self._last_confidence = est.confidence
            self._last_sigmas = est.sigmas
            self._last_failed = False
            self._last_done = time.monotonic()
            if est.status in self._status_counts:
                self._status_counts[est.status] += 1
            if est.status == "verified":
                self._verified_inliers.append(int(est.inliers))

    def _set_problem(self, problem: str) -> None:
        with self._stats_lock:
            self._problem = problem

    def _publish_diagnostics(self) -> None:
        opts, reloc, worker = self._opts, self._reloc, self._worker
        pub = self._pubs.get("diagnostics")
        if opts is None or pub is None:
            return
        now = time.monotonic()
        stats = worker.stats if worker is not None else None
        processed = stats.processed if stats else 0
        with self._stats_lock:
            t0, n_in0, n_done0 = self._diag_prev
            elapsed = max(now - t0, 1e-9)
            in_rate = (self._n_input - n_in0) / elapsed
            done = processed + (stats.failed if stats else 0)
            out_rate = (processed - n_done0) / elapsed
            self._diag_prev = (now, self._n_input, processed)
            timings, self._timings = self._timings, []
            since_done = now - self._last_done
            last_failed, problem = self._last_failed, self._problem
            conf, sigmas, rate_dropped = self._last_confidence, self._last_sigmas, self._n_rate_dropped
            counts, self._status_counts = self._status_counts, dict.fromkeys(STATUSES, 0)
            inliers, self._verified_inliers = self._verified_inliers, []
        period = opts.diagnostics_period_s
        verifying = bool(reloc.verifying) if reloc is not None else False
        verification, all_failed = verification_report(counts, inliers, verifying)
        if reloc is None:
            level, message = "ERROR", "model not loaded"
        elif since_done > 2 * period:
            level = "WARN"
            message = (f"no frames for {since_done:.1f} s: is anything publishing on {self._image_topic}?"
                       if done == 0 else f"no frames for {since_done:.1f} s on {self._image_topic}")
        elif last_failed:
            level, message = "WARN", f"last frame failed: {stats.last_error if stats else '?'}"
        elif all_failed:
            level, message = "WARN", all_failed
        elif problem:
            level, message = "WARN", problem
        else:
            level = "OK"
            message = f"relocalizing at {out_rate:.1f} Hz" + (f", confidence {conf:.2f}" if conf is not None else "")
            if verifying and isinstance(verification["frames verified (%)"], float):
                message += f", {verification['frames verified (%)']:.0f}% verified"
        values: dict[str, Any] = {
            "input rate (Hz)": float(in_rate),
            "processed rate (Hz)": float(out_rate),
            "processed": processed,
            "dropped (worker busy)": stats.dropped if stats else 0,
            "dropped (max_rate_hz)": rate_dropped,
            "failed": stats.failed if stats else 0,
            "last error": (stats.last_error if stats else "") or "none",
        }
        for stage in (*STAGES, "total"):
            vals = [tm[stage] for tm in timings if stage in tm]
            values[f"latency {stage} median (ms)"] = float(statistics.median(vals)) if vals else "n/a"
        values.update(verification)
        values["last confidence"] = float(conf) if conf is not None else "n/a"
        values["sigma position (m)"] = float(sigmas[0]) if sigmas else "n/a"
        values["sigma rotation (deg)"] = float(sigmas[1]) if sigmas else "n/a"
        if reloc is not None:
            values["model"] = str(reloc.model_path)
            values["device"] = reloc.device
            values["uncertainty"] = reloc.uncertainty
        values["image topic"] = self._image_topic
        intrinsics = self._intrinsics
        values["camera_info"] = (f"{intrinsics.width}x{intrinsics.height} from {self._camera_info_topic}"
                                 if intrinsics is not None else
                                 f"none yet on {self._camera_info_topic} (the map's intrinsics are used when the "
                                 f"image size matches)")
        stamp = max(int(self.get_clock().now().nanoseconds), 0)
        pub.publish(conv.make_diagnostic_array(self._types, stamp, f"relocalization: {self.get_name()}", level,
                                               message, values))


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
        if node is not None:
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    main()
