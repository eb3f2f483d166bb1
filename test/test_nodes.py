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

"""The relocalization node on a real ROS 2 system, in-process (skipped where rclpy is not installed).

A tiny untrained model is exported; a helper node publishes the static TF
base_link -> camera and odom -> base_link and images; the lifecycle node must
publish ~/pose with the image's stamp and an honest covariance, broadcast
map -> odom consistent with that pose, answer ~/relocalize, and survive an
image it cannot decode. The tiny model has no feature map, so its poses are
unverified: the tests that need the TF correction or /initialpose from it set
allow_unverified, and one checks that without it they move nothing. An
oracle engine (verified and failed frames) checks ~/status, that a failed
frame publishes no pose, and that camera_info reaches the engine.
"""

from __future__ import annotations

import os
from pathlib import Path
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
tf2_ros = pytest.importorskip("tf2_ros")

from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402

from reloc_ros import conversions as conv  # noqa: E402
from reloc_ros.data.types import Intrinsics  # noqa: E402
from reloc_ros.geometry import covariance_from_std, make_pose  # noqa: E402
from reloc_ros.runtime.engine import STAGES, Estimate, decode_image  # noqa: E402

S = 1_000_000_000
NS = "/reloc_test"
OPTICAL_Q = [-0.5, 0.5, -0.5, 0.5]  # camera_link -> optical frame (REP-103)
T_BASE_CAM = make_pose([0.2, 0.0, 0.8], OPTICAL_Q)
T_ODOM_BASE = make_pose([1.0, 2.0, 0.0], [0.0, 0.0, np.sin(0.3), np.cos(0.3)])
INTRINSICS = Intrinsics(fx=50.0, fy=52.0, cx=31.5, cy=23.5, width=64, height=48)


def _level(status):
    """DiagnosticStatus.level as an int (rclpy gives a 1-byte bytes)."""
    return status.level[0] if isinstance(status.level, (bytes, bytearray)) else int(status.level)


class OracleRelocalizer:
    """Stands in for the engine (monkeypatched into the node module): a fixed pose, verified or failed.

    Frames whose stamp has an even second are verified (the refined pose 10 cm from the learned one), odd
    seconds fail verification. Records the intrinsics the node hands over.
    """

    T_LEARNED = make_pose([2.0, 1.0, 1.0], OPTICAL_Q)
    T_VERIFIED = make_pose([2.1, 1.0, 1.0], OPTICAL_Q)
    COV = covariance_from_std(0.05, np.radians(1.0))

    def __init__(self, model_path, **kwargs):
        self.kwargs = kwargs
        self.model_path = Path(model_path)
        self.metadata = {"model": "oracle"}
        self.map_frame, self.camera_frame = "map", "camera_optical_frame"
        self.device, self.uncertainty = "cpu", "oracle"
        self.verifying = kwargs.get("verify", "auto") != "off"
        self.lock = threading.Lock()
        self.intrinsics = []

    def describe(self):
        return f"oracle from {self.model_path}, verifying: {self.verifying}"

    def relocalize_msg(self, msg, intrinsics=None):
        decode_image(msg)
        with self.lock:
            self.intrinsics.append(intrinsics)
        stamp = conv.stamp_to_ns(msg.header.stamp)
        timings = dict.fromkeys(STAGES, 1.0)
        timings["total"] = float(len(STAGES))
        failed = (stamp // S) % 2 == 1
        T = self.T_LEARNED if failed else self.T_VERIFIED
        return Estimate(stamp, T.copy(), self.COV.copy(), 0.95, np.zeros((0, 4, 4)), timings, "map",
                        "camera_optical_frame", status="failed" if failed else "verified",
                        status_detail="3 inliers < 20" if failed else "80 inliers of 120 matches",
                        inliers=3 if failed else 80, learned_T_map_cam=self.T_LEARNED.copy(),
                        learned_covariance=self.COV.copy())


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from reloc_ros.nets.apr import APRConfig, build_apr
    from reloc_ros.training.export import export_torchscript

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    export_torchscript(build_apr(APRConfig(backbone="resnet18")), path,
                       {"model": "posenet", "preprocessing": "resize",
                        "frames": {"map_frame": "map", "camera_frame": "camera_optical_frame"}},
                       pos_mean=[0.0, 0.0, 0.0], pos_scale=1.0, input_size=(64, 48))
    return path


@pytest.fixture
def ros():
    """Initialise rclpy on a private domain, spin an executor on a thread, tear everything down."""
    rclpy.init(domain_id=100 + os.getpid() % 100)
    executor = MultiThreadedExecutor(num_threads=4)
    nodes = []

    def add(node):
        nodes.append(node)
        executor.add_node(node)
        return node

    died = []

    def spin():
        try:
            executor.spin()
        except Exception as exc:  # noqa: BLE001 - reported by the test, not lost in a thread
            died.append(exc)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield add
    finally:
        for node in nodes:
            executor.remove_node(node)
        executor.shutdown()
        thread.join(5.0)
        for node in nodes:
            node.destroy_node()
        rclpy.shutdown()
    # A node whose transitions kill the executor (e.g. entities destroyed behind rclpy's back) stops answering.
    assert not died, f"the executor thread died: {died[0]!r}"


class Helper:
    """Publishes TF and images; records what the node under test publishes."""

    def __init__(self, add, types):
        self.types = types
        self.node = add(rclpy.create_node("reloc_test_helper"))
        self.lock = threading.Lock()
        self.poses, self.tfs, self.diags, self.initialposes = [], [], [], []
        self.camera_poses, self.statuses = [], []
        t = types
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(t["geometry_msgs/msg/PoseWithCovarianceStamped"],
                                      f"{NS}/relocalization/pose", self._keep(self.poses), reliable)
        self.node.create_subscription(t["geometry_msgs/msg/PoseWithCovarianceStamped"],
                                      f"{NS}/relocalization/camera_pose", self._keep(self.camera_poses), reliable)
        self.node.create_subscription(t["diagnostic_msgs/msg/DiagnosticArray"], f"{NS}/relocalization/status",
                                      self._keep(self.statuses), reliable)
        self.node.create_subscription(t["tf2_msgs/msg/TFMessage"], "/tf", self._keep(self.tfs), reliable)
        self.node.create_subscription(t["diagnostic_msgs/msg/DiagnosticArray"], "/diagnostics",
                                      self._keep(self.diags), reliable)
        self.node.create_subscription(t["geometry_msgs/msg/PoseWithCovarianceStamped"], "/initialpose",
                                      self._keep(self.initialposes), reliable)
        self.images = self.node.create_publisher(t["sensor_msgs/msg/Image"], f"{NS}/image", reliable)
        self.static = tf2_ros.StaticTransformBroadcaster(self.node)
        # One message: a latched /tf_static keeps only the last one sent.
        self.static.sendTransform([
            conv.make_transform_stamped(t, T_BASE_CAM, 0, "base_link", "camera_optical_frame"),
            conv.make_transform_stamped(t, T_ODOM_BASE, 0, "odom", "base_link")])
        self.rng = np.random.default_rng(0)

    def _keep(self, store):
        def cb(msg):
            with self.lock:
                store.append(msg)
        return cb

    def publish_compressed(self, stamp_ns):
        if not hasattr(self, "compressed"):
            self.compressed = self.node.create_publisher(self.types["sensor_msgs/msg/CompressedImage"],
                                                         f"{NS}/image/compressed", 10)
        img = self.rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        self.compressed.publish(conv.make_compressed_image_msg(self.types, img, "jpeg", stamp_ns,
                                                               "camera_optical_frame"))

    def publish_camera_info(self, intrinsics, stamp_ns):
        if not hasattr(self, "camera_info"):
            self.camera_info = self.node.create_publisher(self.types["sensor_msgs/msg/CameraInfo"],
                                                          f"{NS}/camera_info", 10)
        self.camera_info.publish(conv.make_camera_info_msg(self.types, intrinsics, stamp_ns, "camera_optical_frame"))

    def frame_statuses(self, stamps):
        """{image stamp: DiagnosticStatus} of the ~/status messages received for ``stamps``."""
        return {conv.stamp_to_ns(a.header.stamp): st for a in self.statuses for st in a.status
                if conv.stamp_to_ns(a.header.stamp) in stamps}

    def publish_image(self, stamp_ns, encoding="rgb8"):
        if encoding == "rgb8":
            img = self.rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        else:
            img = self.rng.random((48, 64)).astype(np.float32)  # depth: no colour meaning
        self.images.publish(conv.make_image_msg(self.types, img, encoding, stamp_ns, "camera_optical_frame"))

    def wait_for(self, predicate, publish=None, timeout=60.0):
        """Publish images (stamps from `publish`) until predicate() holds."""
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            if publish is not None:
                publish()
            time.sleep(0.25)
            with self.lock:
                got = predicate()
            if got:
                return got
        raise AssertionError("timed out")


def _make_node(model, **params):
    from reloc_ros.nodes.relocalization_node import RelocalizationNode

    # The tiny model has no feature map: its poses are unverified, so TF / /initialpose from them need
    # allow_unverified (test_unverified_poses_do_not_move_the_belief_by_default checks the default).
    # TF stamped at the image stamp, no re-broadcast (test_tf_is_future_dated_and_rebroadcast checks those).
    values = {"model_path": str(model), "device": "cpu", "mc_samples": 4, "min_confidence": 0.0,
              "autostart": False, "diagnostic_updater.period": 0.2, "oneshot.frames": 2, "allow_unverified": True,
              "transform_tolerance_s": 0.0, "tf_rebroadcast_hz": 0.0, **params}
    return RelocalizationNode(namespace=NS, parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])


def test_node_publishes_pose_tf_and_survives_bad_images(ros, tiny_model):
    from std_srvs.srv import Trigger

    types = conv.ros_message_types()
    node = ros(_make_node(tiny_model))
    helper = Helper(ros, types)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS

    stamps = []

    def publish(encoding="rgb8"):
        stamp = (100 + len(stamps)) * S + 123
        stamps.append(stamp)
        helper.publish_image(stamp, encoding)

    def pose_for_published():
        return [p for p in helper.poses if conv.stamp_to_ns(p.header.stamp) in stamps]

    poses = helper.wait_for(pose_for_published, publish)
    pose = poses[0]
    assert pose.header.frame_id == "map"
    cov = np.asarray(pose.pose.covariance, dtype=float).reshape(6, 6)
    assert np.all(np.diag(cov) > 0) and np.allclose(cov, cov.T)

    # map -> odom at an image stamp, consistent with the published base pose: map->odom->base == ~/pose.
    def correction():
        by_stamp = {conv.stamp_to_ns(p.header.stamp): p for p in helper.poses}
        for msg in helper.tfs:
            for tr in msg.transforms:
                s = conv.stamp_to_ns(tr.header.stamp)
                if tr.header.frame_id == "map" and tr.child_frame_id == "odom" and s in by_stamp:
                    return tr, by_stamp[s]
        return None

    tr, pose = helper.wait_for(correction, publish)
    T_map_odom = conv.transform_to_matrix(tr.transform)
    T_map_base = conv.pose_to_matrix(pose.pose.pose)
    np.testing.assert_allclose(T_map_odom @ T_ODOM_BASE, T_map_base, atol=1e-6)

    # An image the engine cannot decode (depth, no colour) is counted and logged; the node carries on.
    stats = node.worker_stats
    failed_before = stats.failed
    publish("32FC1")
    helper.wait_for(lambda: node.worker_stats.failed > failed_before, timeout=30.0)
    n_before = len(stamps)
    helper.wait_for(lambda: [p for p in helper.poses if conv.stamp_to_ns(p.header.stamp) in stamps[n_before:]],
                    publish)

    # Diagnostics of this node arrive.
    def diag():
        return [st for a in helper.diags for st in a.status if st.name == "relocalization: relocalization"]

    status = helper.wait_for(diag)[-1]
    keys = {kv.key for kv in status.values}
    assert {"input rate (Hz)", "processed rate (Hz)", "failed", "last confidence", "model", "verifying",
            "frames verified (%)", "frames unverified (%)", "frames failed verification (%)",
            "median inliers (verified)", "latency verification median (ms)", "camera_info"} <= keys
    # Every relocalized frame has a ~/status: learned only (no feature map in the tiny model).
    st = helper.frame_statuses(set(stamps))
    assert st and all(_level(s) == 1 and s.message.startswith("unverified") for s in st.values())

    # One-shot relocalization through the Trigger service: success and a pose on /initialpose.
    client = helper.node.create_client(Trigger, f"{NS}/relocalization/relocalize")
    assert client.wait_for_service(timeout_sec=10.0)
    future = client.call_async(Trigger.Request())
    helper.wait_for(lambda: future.done(), publish)
    assert future.result().success, future.result().message
    helper.wait_for(lambda: helper.initialposes)

    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS


def test_configure_fails_cleanly_without_a_model(ros):
    from reloc_ros.nodes.relocalization_node import RelocalizationNode

    helper = Helper(ros, conv.ros_message_types())
    overrides = [Parameter("autostart", value=False), Parameter("diagnostic_updater.period", value=0.2)]
    node = ros(RelocalizationNode(namespace=NS, parameter_overrides=overrides))
    helper.wait_for(lambda: helper.node.count_subscribers("/diagnostics") and
                    helper.node.count_publishers("/diagnostics") >= 1, timeout=10.0)
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE  # not ERROR: a clear, logged failure
    # Still alive and configurable once the parameter is fixed.
    assert node.get_parameter("model_path").value == ""

    # /diagnostics says why (diagnostic_updater's status of this node), and keeps saying it while unconfigured.
    def errors():
        return [st for a in helper.diags for st in a.status
                if st.name == "relocalization: relocalization" and _level(st) == 2]

    status = helper.wait_for(lambda: len(errors()) >= 2 and errors())[-1]
    assert status.message.startswith("configure failed: parameter 'model_path' is empty")
    assert status.hardware_id == f"{NS}/image"
    assert {kv.key: kv.value for kv in status.values}["state"] == "unconfigured"


def test_diagnostic_updater_statuses_of_an_active_node(ros, tiny_model):
    """The node's status and the relocalized frames' rate and image-stamp delay, named by the image topic (sim time)."""
    from rosgraph_msgs.msg import Clock

    types = conv.ros_message_types()
    node = ros(_make_node(tiny_model, use_sim_time=True, **{"diagnostics.min_rate_hz": 1000.0}))
    helper = Helper(ros, types)
    clock_pub = helper.node.create_publisher(Clock, "/clock", 10)
    sim_ns = [5000 * S]

    def tick_clock():
        sim_ns[0] += S // 4
        clock_pub.publish(Clock(clock=conv.stamp_from_ns(types, sim_ns[0])))

    assert node.get_parameter("diagnostic_updater.period").value == 0.2
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    stamps = []

    def publish():
        # Images stamped with the simulated time, as from `ros2 bag play --clock`: decades behind the wall clock.
        tick_clock()
        stamps.append(sim_ns[0])
        helper.publish_image(stamps[-1])

    def frames_statuses():
        return [st for a in helper.diags for st in a.status if st.name == "relocalization: relocalized frames"
                and int({kv.key: kv.value for kv in st.values}.get("Events in window", "0")) > 0]

    status = helper.wait_for(frames_statuses, publish)[-1]
    values = {kv.key: kv.value for kv in status.values}
    assert status.hardware_id == f"{NS}/image"
    # FrequencyStatus: a CPU cannot relocalize 1000 frames a second, so the rate is too low (WARN).
    assert _level(status) == 1 and "Frequency too low" in status.message, status.message
    assert float(values["Actual frequency (Hz)"]) > 0 and float(values["Minimum acceptable frequency (Hz)"]) == 900
    # TimeStampStatus on the node's (simulated) clock: the stamps were a few clock ticks old when relocalized, not
    # decades (diagnostic_updater's own TimeStampStatus measures against the wall clock).
    assert 0.0 <= float(values["Earliest timestamp delay:"]) <= float(values["Latest timestamp delay:"]) < 5.0
    assert "Timestamps too far" not in status.message
    main = [st for a in helper.diags for st in a.status if st.name == "relocalization: relocalization"][-1]
    assert main.hardware_id == f"{NS}/image"
    # Deactivated: no more frame checks (they would report "no events" as an error), the status says why.
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    n_before = len(helper.diags)

    def inactive():
        return [st for a in helper.diags[n_before:] for st in a.status
                if st.name == "relocalization: relocalization" and "lifecycle state inactive" in st.message]

    helper.wait_for(inactive, tick_clock)
    for _ in range(3):
        tick_clock()
        time.sleep(0.2)
    with helper.lock:
        arrays = helper.diags[n_before:]
    # After the first report of the inactive state (an update may have been under way while deactivating):
    first = next(i for i, a in enumerate(arrays) if any("lifecycle state inactive" in st.message for st in a.status))
    later = [st.name for a in arrays[first + 1:] for st in a.status]
    assert "relocalization: relocalized frames" not in later and "relocalization: relocalization" in later


def test_bad_parameter_override_does_not_crash_the_constructor(ros, tiny_model):
    # An integer for a double parameter (a classic YAML mistake): configure fails naming it.
    node = ros(_make_node(tiny_model, max_rate_hz=5))
    assert "max_rate_hz" in node._param_errors
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    node.set_parameters([Parameter("max_rate_hz", value=5.0)])
    assert not node._param_errors
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS


def test_tf_is_future_dated_and_rebroadcast(ros, tiny_model):
    """As AMCL: map -> odom stamped transform_tolerance_s after its image, then re-sent stamped now + tolerance."""
    types = conv.ros_message_types()
    node = ros(_make_node(tiny_model, transform_tolerance_s=0.25, tf_rebroadcast_hz=20.0))
    helper = Helper(ros, types)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    stamps = []

    def publish():
        stamps.append((300 + len(stamps)) * S)
        helper.publish_image(stamps[-1])

    def map_odom_stamps():
        return [conv.stamp_to_ns(tr.header.stamp) for m in helper.tfs for tr in m.transforms
                if tr.header.frame_id == "map" and tr.child_frame_id == "odom"]

    helper.wait_for(lambda: set(map_odom_stamps()) & {s + S // 4 for s in stamps}, publish)
    n_images = len(stamps)
    # Without new images the correction keeps coming, stamped ahead of the node's clock.
    helper.wait_for(lambda: len([s for s in map_odom_stamps() if s - S // 4 not in stamps]) >= 3, timeout=10.0)
    now = node.get_clock().now().nanoseconds
    rebroadcast = [s for s in map_odom_stamps() if s - S // 4 not in stamps]
    assert len(stamps) == n_images and max(rebroadcast) <= now + S // 4 and max(rebroadcast) > now - S
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS


def test_node_works_again_after_deactivate_and_activate(ros, tiny_model):
    """Deactivate, cleanup, configure, activate: the node (and the executor it shares) relocalizes again.

    Deactivate breaks the bond with a lifecycle manager (bondpy is installed) and closes the input, as under
    nav2_lifecycle_manager's reset; startup brings it back.
    """
    types = conv.ros_message_types()
    node = ros(_make_node(tiny_model))
    helper = Helper(ros, types)
    stamps = []

    def publish():
        stamps.append((800 + len(stamps)) * S)
        helper.publish_image(stamps[-1])

    for _ in range(2):
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert node._bond is not None and node._bond.formed
        n_before = len(stamps)
        helper.wait_for(lambda: [p for p in helper.poses if conv.stamp_to_ns(p.header.stamp) in stamps[n_before:]],
                        publish)
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node._bond is None
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS


def test_compressed_input_no_odom_frame_and_recovery(ros, tiny_model):
    """image/compressed in; map -> base_link without an odom frame; /initialpose from the kidnap detector."""
    types = conv.ros_message_types()
    node = ros(_make_node(tiny_model, image_transport="compressed", odom_frame="",
                          **{"initialpose.enabled": True, "initialpose.consecutive": 2,
                             "initialpose.min_interval_s": 0.0}))
    helper = Helper(ros, types)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    stamps = []

    def publish():
        stamps.append((200 + len(stamps)) * S)
        helper.publish_compressed(stamps[-1])

    def map_base():
        by_stamp = {conv.stamp_to_ns(p.header.stamp): p for p in helper.poses}
        return [(tr, by_stamp[conv.stamp_to_ns(tr.header.stamp)]) for m in helper.tfs for tr in m.transforms
                if tr.header.frame_id == "map" and tr.child_frame_id == "base_link"
                and conv.stamp_to_ns(tr.header.stamp) in by_stamp]

    tr, pose = helper.wait_for(map_base, publish)[0]
    np.testing.assert_allclose(conv.transform_to_matrix(tr.transform), conv.pose_to_matrix(pose.pose.pose),
                               atol=1e-6)
    # publish_tf true: the node owns map -> base, so there is no belief; every 2 confident frames re-initialise.
    init = helper.wait_for(lambda: helper.initialposes, publish)[0]
    assert conv.stamp_to_ns(init.header.stamp) in stamps and init.header.frame_id == "map"


def test_missing_camera_extrinsics_publish_only_the_camera_pose(ros, tiny_model):
    types = conv.ros_message_types()
    node = ros(_make_node(tiny_model, camera_frame="unknown_camera", tf_timeout_s=0.0))
    helper = Helper(ros, types)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    stamps = []

    def publish():
        stamps.append((300 + len(stamps)) * S)
        helper.publish_image(stamps[-1])

    helper.wait_for(lambda: [p for p in helper.camera_poses if conv.stamp_to_ns(p.header.stamp) in stamps],
                    publish)
    assert node.worker_stats.failed == 0
    # A camera pose is never passed off as the robot's: no ~/pose, no TF correction.
    assert not [p for p in helper.poses if conv.stamp_to_ns(p.header.stamp) in stamps]
    assert not [tr for m in helper.tfs for tr in m.transforms if tr.header.frame_id == "map"]


def test_max_rate_drops_frames_before_decoding(ros, tiny_model):
    types = conv.ros_message_types()
    node = ros(_make_node(tiny_model, max_rate_hz=2.0))
    helper = Helper(ros, types)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    helper.wait_for(lambda: helper.node.count_subscribers(f"{NS}/image") > 0, timeout=10.0)
    stamps = [(400 * S) + k * S // 10 for k in range(30)]  # 10 Hz of image time
    for s in stamps:
        helper.publish_image(s)
        time.sleep(0.3)   # slower than inference: drops come from max_rate_hz only
    helper.wait_for(lambda: len(helper.poses) >= 5, timeout=30.0)
    time.sleep(1.0)
    got = sorted(conv.stamp_to_ns(p.header.stamp) for p in helper.poses)
    assert got and all(b - a >= S // 2 for a, b in zip(got, got[1:])), got   # at most 2 Hz of image time
    assert len(got) >= 5


def test_unverified_poses_do_not_move_the_belief_by_default(ros, tiny_model):
    """allow_unverified false: learned-only poses on ~/pose, but no TF, /initialpose or ~/relocalize answer."""
    from std_srvs.srv import Trigger

    types = conv.ros_message_types()
    node = ros(_make_node(tiny_model, allow_unverified=False, odom_frame="", tf_timeout_s=0.5,
                          **{"initialpose.enabled": True, "initialpose.consecutive": 1,
                             "initialpose.min_interval_s": 0.0, "oneshot.timeout_s": 1.0}))
    helper = Helper(ros, types)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert not node._reloc.verifying
    stamps = []

    def publish():
        stamps.append((600 + len(stamps)) * S)
        helper.publish_image(stamps[-1])

    helper.wait_for(lambda: [p for p in helper.poses if conv.stamp_to_ns(p.header.stamp) in stamps], publish)
    statuses = helper.wait_for(lambda: helper.frame_statuses(set(stamps)), publish)
    assert all(_level(st) == 1 and st.message.startswith("unverified") for st in statuses.values())
    client = helper.node.create_client(Trigger, f"{NS}/relocalization/relocalize")
    assert client.wait_for_service(timeout_sec=10.0)
    future = client.call_async(Trigger.Request())
    helper.wait_for(lambda: future.done(), publish)
    assert not future.result().success
    assert "unverified frame(s) not used" in future.result().message, future.result().message
    for _ in range(4):
        publish()
        time.sleep(0.25)
    with helper.lock:
        assert not [tr for m in helper.tfs for tr in m.transforms if tr.header.frame_id == "map"]
        assert not helper.initialposes


def test_failed_frames_publish_a_status_but_no_pose(ros, tmp_path, monkeypatch):
    """Oracle engine: verified frames publish everything, failed ones only their ~/status (ERROR)."""
    from reloc_ros.nodes import relocalization_node as rn

    model = tmp_path / "oracle.pt"
    model.write_bytes(b"read by the oracle only")
    monkeypatch.setattr(rn, "Relocalizer", OracleRelocalizer)
    types = conv.ros_message_types()
    node = ros(_make_node(model, allow_unverified=False, min_confidence=0.5))
    helper = Helper(ros, types)
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    oracle = node._reloc
    assert isinstance(oracle, OracleRelocalizer) and oracle.kwargs["verify"] == "auto"
    stamps = []

    def publish():
        stamp = (700 + len(stamps)) * S + 5
        stamps.append(stamp)
        helper.publish_camera_info(INTRINSICS, stamp)
        helper.publish_image(stamp)

    def both_kinds():
        st = helper.frame_statuses(set(stamps))
        return st if {_level(s) for s in st.values()} >= {0, 2} else None

    helper.wait_for(both_kinds, publish)
    # The verified frames' poses and TF arrive (other topics: no ordering with ~/status).
    helper.wait_for(lambda: [tr for m in helper.tfs for tr in m.transforms if tr.header.frame_id == "map"],
                    publish)
    time.sleep(1.0)
    with helper.lock:
        statuses = helper.frame_statuses(set(stamps))
        pose_stamps = {conv.stamp_to_ns(p.header.stamp) for p in helper.poses}
        camera_stamps = {conv.stamp_to_ns(p.header.stamp) for p in helper.camera_poses}
        tf_stamps = {conv.stamp_to_ns(tr.header.stamp) for m in helper.tfs for tr in m.transforms
                     if tr.header.frame_id == "map"}
    failed = {s for s, st in statuses.items() if _level(st) == 2}
    verified = {s for s, st in statuses.items() if _level(st) == 0}
    assert failed and verified and all((s // S) % 2 == 1 for s in failed) and all((s // S) % 2 == 0 for s in verified)
    for s in failed:
        st = statuses[s]
        values = {kv.key: kv.value for kv in st.values}
        assert st.name == "relocalization: frame" and st.message == "failed: 3 inliers < 20"
        assert st.hardware_id == str(model) and values["status"] == "failed" and values["inliers"] == "3"
    # A failed frame publishes no pose of any kind, and no TF.
    assert not failed & (pose_stamps | camera_stamps | tf_stamps)
    assert verified & pose_stamps and verified & camera_stamps
    st = statuses[min(verified)]
    values = {kv.key: kv.value for kv in st.values}
    assert st.message == "verified: 80 inliers of 120 matches" and values["inliers"] == "80"
    assert float(values["learned_to_verified_m"]) == pytest.approx(0.1, rel=1e-3)
    # The published camera pose is the verified one.
    cam = next(p for p in helper.camera_poses if conv.stamp_to_ns(p.header.stamp) in verified)
    np.testing.assert_allclose(conv.pose_to_matrix(cam.pose.pose), OracleRelocalizer.T_VERIFIED, atol=1e-9)
    # camera_info reached the engine.
    with oracle.lock:
        assert INTRINSICS in oracle.intrinsics

    def verification_diag():
        for a in helper.diags:
            for d in a.status:
                values = {kv.key: kv.value for kv in d.values}
                if d.name == "relocalization: relocalization" and values.get("frames verified (%)", "n/a") != "n/a":
                    return values
        return None

    values = helper.wait_for(verification_diag, publish)
    assert values["verifying"] == "yes" and values["median inliers (verified)"] == "80"
    assert float(values["latency verification median (ms)"]) == pytest.approx(1.0)
    assert values["camera_info"].startswith("64x48 from ")
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
