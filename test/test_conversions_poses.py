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

"""Tests of reloc_ros.conversions.poses (and the diagnostics builder): poses, TF, odometry, covariances."""

from __future__ import annotations

import types as pytypes

import numpy as np
import pytest

from conftest import STAMP_NS, cdr_round_trip
from reloc_ros import conversions as conv
from reloc_ros.conversions import poses as cp
from reloc_ros.geometry import covariance_from_std, make_pose


def _yaw(deg: float, t=(1.0, -2.0, 0.5)) -> np.ndarray:
    half = np.radians(deg) / 2
    return make_pose(np.array(t), np.array([0.0, 0.0, np.sin(half), np.cos(half)]))


def test_quaternion_order_is_xyzw(T):
    pose = T["geometry_msgs/msg/Pose"](
        position=T["geometry_msgs/msg/Point"](x=1.0, y=2.0, z=3.0),
        orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=np.sqrt(0.5), w=np.sqrt(0.5)))
    M = conv.pose_to_matrix(pose)
    # A 90 degree yaw maps x onto y.
    np.testing.assert_allclose(M[:3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(M[:3, 3], [1, 2, 3])
    # Builders write (x, y, z, w): a 60 degree yaw is z = sin 30, w = cos 30.
    msg = conv.make_pose_stamped(T, _yaw(60.0), 0, "map")
    q = msg.pose.orientation
    np.testing.assert_allclose([q.x, q.y, q.z, q.w], [0, 0, 0.5, np.cos(np.radians(30))], atol=1e-12)


def test_pose_messages_round_trip(T, ts):
    pose = _yaw(-135.0, t=(3.0, 4.0, -1.0)) @ make_pose(np.zeros(3), np.array([0.3, 0.0, 0.0, 0.954]))
    cov = covariance_from_std([0.1, 0.2, 0.3], [0.01, 0.02, 0.03])
    cov[0, 1] = cov[1, 0] = 0.001
    msgs = {
        "geometry_msgs/msg/PoseStamped": conv.make_pose_stamped(T, pose, STAMP_NS, "map"),
        "geometry_msgs/msg/PoseWithCovarianceStamped": conv.make_pose_with_covariance_stamped(
            T, pose, cov, STAMP_NS, "map"),
        "nav_msgs/msg/Odometry": conv.make_odometry(T, pose, STAMP_NS, "odom", "base_link", cov),
        "geometry_msgs/msg/TransformStamped": conv.make_transform_stamped(T, pose, STAMP_NS, "map", "cam"),
    }
    assert set(msgs) == set(conv.POSE_MSGTYPES)
    children = {"nav_msgs/msg/Odometry": "base_link", "geometry_msgs/msg/TransformStamped": "cam"}
    for name, msg in msgs.items():
        back = cdr_round_trip(ts, msg)
        stamp, frame, child, M = conv.stamped_pose_from_msg(back)
        assert stamp == STAMP_NS
        assert frame == ("odom" if name == "nav_msgs/msg/Odometry" else "map")
        assert child == children.get(name, "")
        np.testing.assert_allclose(M, pose, atol=1e-12)
        cov_back = conv.pose_covariance_from_msg(back)
        if name in ("nav_msgs/msg/Odometry", "geometry_msgs/msg/PoseWithCovarianceStamped"):
            np.testing.assert_array_equal(cov_back, cov)
        else:
            assert cov_back is None


def test_transform_to_matrix_and_tf_message(T, ts):
    a = _yaw(30.0)
    b = _yaw(-90.0, t=(0, 0, 1))
    tf = cdr_round_trip(ts, conv.make_tf_message(T, [conv.make_transform_stamped(T, a, 1, "map", "odom"),
                                                     conv.make_transform_stamped(T, b, 2, "odom", "base")]))
    assert [t.child_frame_id for t in tf.transforms] == ["odom", "base"]
    np.testing.assert_allclose(conv.transform_to_matrix(tf.transforms[0].transform), a, atol=1e-12)
    np.testing.assert_allclose(conv.transform_to_matrix(tf.transforms[1].transform), b, atol=1e-12)


def test_odometry_without_covariance_is_not_zero(T):
    odom = conv.make_odometry(T, _yaw(10.0), 0, "odom", "base_link")
    cov = conv.pose_covariance_from_msg(odom)
    np.testing.assert_array_equal(cov, np.eye(6) * conv.UNKNOWN_VARIANCE)
    np.testing.assert_array_equal(np.asarray(odom.twist.covariance).reshape(6, 6), np.eye(6) * conv.UNKNOWN_VARIANCE)


def test_pose_type_detection_without_msgtype():
    """Recognise the kind of rclpy messages (no __msgtype__) from their fields."""
    ns = pytypes.SimpleNamespace
    stamp = ns(sec=3, nanosec=4)
    pose = ns(position=ns(x=1.0, y=2.0, z=3.0), orientation=ns(x=0.0, y=0.0, z=0.0, w=1.0))
    tr = ns(translation=ns(x=1.0, y=2.0, z=3.0), rotation=ns(x=0.0, y=0.0, z=0.0, w=1.0))
    cov = list(np.eye(6).reshape(-1))
    cases = [
        (ns(header=ns(stamp=stamp, frame_id="map"), pose=pose), ""),
        (ns(header=ns(stamp=stamp, frame_id="map"), pose=ns(pose=pose, covariance=cov)), ""),
        (ns(header=ns(stamp=stamp, frame_id="map"), child_frame_id="base", pose=ns(pose=pose, covariance=cov),
            twist=ns()), "base"),
        (ns(header=ns(stamp=stamp, frame_id="map"), child_frame_id="cam", transform=tr), "cam"),
    ]
    for msg, child in cases:
        stamp_ns, frame, child_out, M = conv.stamped_pose_from_msg(msg)
        assert (stamp_ns, frame, child_out) == (3_000_000_004, "map", child)
        np.testing.assert_array_equal(M[:3, 3], [1, 2, 3])
    with pytest.raises(ValueError, match="not a stamped pose message"):
        conv.stamped_pose_from_msg(ns(header=ns(stamp=stamp, frame_id="map")))
    with pytest.raises(ValueError, match="'sensor_msgs/msg/Image' carries no stamped pose"):
        conv.stamped_pose_from_msg(cases[0][0], msgtype="sensor_msgs/Image")


def test_bad_quaternions_raise(T):
    Q, P = T["geometry_msgs/msg/Quaternion"], T["geometry_msgs/msg/Point"]
    nan_pose = T["geometry_msgs/msg/Pose"](position=P(x=0.0, y=0.0, z=0.0),
                                           orientation=Q(x=0.0, y=0.0, z=float("nan"), w=1.0))
    with pytest.raises(ValueError, match="pose orientation contains NaN"):
        conv.pose_to_matrix(nan_pose)
    zero_tf = T["geometry_msgs/msg/Transform"](translation=T["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0),
                                               rotation=Q(x=0.0, y=0.0, z=0.0, w=0.0))
    with pytest.raises(ValueError, match="transform rotation has zero norm"):
        conv.transform_to_matrix(zero_tf)
    # An uninitialised (all-zero) TransformStamped must not read as identity.
    msg = T["geometry_msgs/msg/TransformStamped"](header=conv.make_header(T, 0, "map"), child_frame_id="odom",
                                                  transform=zero_tf)
    with pytest.raises(ValueError, match="zero norm"):
        conv.stamped_pose_from_msg(msg)


def _pose(T, xyzw, xyz=(0.0, 0.0, 0.0)):
    Q, P = T["geometry_msgs/msg/Quaternion"], T["geometry_msgs/msg/Point"]
    return T["geometry_msgs/msg/Pose"](position=P(x=xyz[0], y=xyz[1], z=xyz[2]),
                                       orientation=Q(**{k: float(v) for k, v in zip("xyzw", xyzw)}))


def test_quaternions_are_accepted_within_tf2s_tolerance_only(T):
    """tf2 ignores |x^2 + y^2 + z^2 + w^2 - 1| >= 0.01 (TF_DENORMALIZED_QUATERNION); so do we, and we say so."""
    assert cp.QUATERNION_NORMALIZATION_TOLERANCE == 10e-3
    q = np.array([0.0, 0.0, np.sin(0.3), np.cos(0.3)])
    near = conv.pose_to_matrix(_pose(T, q * 1.004))  # squared norm 1.008: accepted and normalised
    np.testing.assert_allclose(near, make_pose([0, 0, 0], q), atol=1e-12)
    with pytest.raises(cp.InvalidPose, match=r"pose orientation \[.*\] is not a unit quaternion: "
                                             r"x\^2 \+ y\^2 \+ z\^2 \+ w\^2 = 1.0201.*tf2 accepts 1 \+- 0.01") as err:
        conv.pose_to_matrix(_pose(T, q * 1.01))
    assert err.value.reason == cp.BAD_NON_UNIT_QUATERNION
    Tr, V = T["geometry_msgs/msg/Transform"], T["geometry_msgs/msg/Vector3"]
    Q = T["geometry_msgs/msg/Quaternion"]
    half = Tr(translation=V(x=0.0, y=0.0, z=0.0), rotation=Q(x=0.0, y=0.0, z=0.0, w=0.5))
    with pytest.raises(cp.InvalidPose, match="transform rotation .* is not a unit quaternion"):
        conv.transform_to_matrix(half)
    with pytest.raises(cp.InvalidPose, match=r"pose position contains NaN or inf: \[inf, 0.0, 0.0\]") as err:
        conv.pose_to_matrix(_pose(T, q, (float("inf"), 0.0, 0.0)))
    assert err.value.reason == cp.BAD_NON_FINITE


def test_pose_sample_problems_classify_like_the_scalar_checks():
    q = np.array([[0, 0, 0, 1], [0, 0, 0, 1.004], [0, 0, 0, 1.2], [0, 0, 0, 0], [0, 0, np.nan, 1], [0, 0, 0, 1]])
    t = np.zeros((6, 3))
    t[5, 0] = np.inf
    assert cp.pose_sample_problems(t, q) == [None, None, cp.BAD_NON_UNIT_QUATERNION, cp.BAD_ZERO_QUATERNION,
                                             cp.BAD_NON_FINITE, cp.BAD_NON_FINITE]


def test_builders_refuse_non_rigid_and_bad_covariance(T):
    bad = np.eye(4)
    bad[0, 0] = 2.0
    with pytest.raises(ValueError, match="not a finite rigid transform"):
        conv.make_pose_stamped(T, bad, 0, "map")
    with pytest.raises(ValueError, match="not positive definite"):
        conv.make_pose_with_covariance_stamped(T, np.eye(4), np.zeros((6, 6)), 0, "map")


def test_pose_array_and_diagnostics_round_trip_through_cdr(T, ts):
    poses = np.stack([make_pose([1.0, 2.0, 0.5], [0.0, 0.0, 0.38268343, 0.92387953]),
                      make_pose([-1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0])])
    msg = conv.make_pose_array(T, poses, 7_000_000_001, "map")
    back = ts.deserialize_cdr(ts.serialize_cdr(msg, "geometry_msgs/msg/PoseArray"), "geometry_msgs/msg/PoseArray")
    assert back.header.frame_id == "map" and conv.stamp_to_ns(back.header.stamp) == 7_000_000_001
    assert np.allclose(np.stack([conv.pose_to_matrix(p) for p in back.poses]), poses, atol=1e-9)
    assert conv.make_pose_array(T, np.zeros((0, 4, 4)), 1, "map").poses == []
    bad = poses.copy()
    bad[1, :3, :3] *= 2.0  # not a rotation: must never reach a topic
    with pytest.raises(ValueError, match="not a finite rigid transform"):
        conv.make_pose_array(T, bad, 1, "map")

    diag = conv.make_diagnostic_array(T, 5, "relocalization: /relocalization", "WARN", "no frames",
                                      {"rate (Hz)": 3.14159, "model": "lab.pt", "dropped": 4})
    typ = "diagnostic_msgs/msg/DiagnosticArray"
    (status,) = ts.deserialize_cdr(ts.serialize_cdr(diag, typ), typ).status
    assert status.level == 1 and status.name == "relocalization: /relocalization" and status.message == "no frames"
    assert [(kv.key, kv.value) for kv in status.values] == [("rate (Hz)", "3.142"), ("model", "lab.pt"),
                                                            ("dropped", "4")]
    with pytest.raises(ValueError, match="level must be one of OK, WARN, ERROR, STALE"):
        conv.make_diagnostic_array(T, 5, "x", "FINE", "", {})
