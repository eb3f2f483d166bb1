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

"""Tests of reloc_ros.conversions.messages: the types mapping, ros_message_types, rclpy-like classes."""

from __future__ import annotations

import array
import sys
import types as pytypes

import numpy as np
import pytest

from conftest import STAMP_NS
from reloc_ros import conversions as conv
from reloc_ros.data.types import Intrinsics
from reloc_ros.geometry import make_pose


def _smooth_rgb(height=32, width=48):
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 255 // (width - 1), yy * 255 // (height - 1), np.full_like(xx, 90)],
                    axis=2).astype(np.uint8)


def _yaw(deg: float, t=(1.0, -2.0, 0.5)) -> np.ndarray:
    half = np.radians(deg) / 2
    return make_pose(np.array(t), np.array([0.0, 0.0, np.sin(half), np.cos(half)]))


def test_missing_type_in_mapping_is_named(T):
    partial = {k: v for k, v in T.items() if k != "std_msgs/msg/Header"}
    with pytest.raises(ValueError, match="'std_msgs/msg/Header' is missing"):
        conv.make_header(partial, 0, "map")


# --------------------------------------------------------------------------
# rclpy-like message classes: builders must give them what their setters accept
# --------------------------------------------------------------------------

def _strict_rclpy_like_types(names):
    """Stand-ins for rclpy classes: not dataclasses, reject numpy values as rclpy's setters do."""
    classes = {}

    def check(field, value):
        if isinstance(value, np.ndarray):
            raise TypeError(f"{field}: numpy array where rclpy wants a list/array.array")
        if isinstance(value, np.generic):
            raise TypeError(f"{field}: numpy scalar {type(value)} where rclpy wants a Python number")
        if isinstance(value, array.array) and value.typecode != "B":
            raise TypeError(f"{field}: array.array typecode {value.typecode}")
        if isinstance(value, list):
            for v in value:
                if not isinstance(v, (float, Fake)):
                    raise TypeError(f"{field}: list element {v!r} is not a float or message")

    class Fake:

        def __init__(self, **kwargs):
            for key, value in kwargs.items():
                check(key, value)
                setattr(self, key, value)

    for name in names:
        classes[name] = type(name.split("/")[-1], (Fake,), {})
    return classes


def test_builders_and_readers_work_on_rclpy_like_classes():
    R = _strict_rclpy_like_types(conv.BUILDER_MSGTYPES)
    rgb = _smooth_rgb(6, 8)
    img = conv.make_image_msg(R, rgb, "rgb8", STAMP_NS, "cam")
    assert isinstance(img.data, array.array)
    np.testing.assert_array_equal(conv.image_to_rgb8(img), rgb)
    comp = conv.make_compressed_image_msg(R, rgb, "png", 0, "cam")
    np.testing.assert_array_equal(conv.compressed_to_rgb8(comp), rgb)
    intr = Intrinsics(50.0, 51.0, 4.0, 3.0, 8, 6)
    assert conv.camera_info_to_intrinsics(conv.make_camera_info_msg(R, intr, 0, "cam")) == intr
    pose = _yaw(45.0)
    odom = conv.make_odometry(R, pose, STAMP_NS, "odom", "base", np.eye(6) * 0.5)
    stamp, frame, child, M = conv.stamped_pose_from_msg(odom)
    assert (stamp, frame, child) == (STAMP_NS, "odom", "base")
    np.testing.assert_allclose(M, pose, atol=1e-12)
    np.testing.assert_array_equal(conv.pose_covariance_from_msg(odom), np.eye(6) * 0.5)
    tf = conv.make_tf_message(R, [conv.make_transform_stamped(R, pose, 0, "map", "odom")])
    np.testing.assert_allclose(conv.stamped_pose_from_msg(tf.transforms[0])[3], pose, atol=1e-12)


def test_ros_message_types_imports_msg_modules(monkeypatch):
    fake_pkg = pytypes.ModuleType("fake_msgs")
    fake_msg = pytypes.ModuleType("fake_msgs.msg")

    class Thing:
        pass

    fake_msg.Thing = Thing
    monkeypatch.setitem(sys.modules, "fake_msgs", fake_pkg)
    monkeypatch.setitem(sys.modules, "fake_msgs.msg", fake_msg)
    assert conv.ros_message_types(["fake_msgs/msg/Thing"]) == {"fake_msgs/msg/Thing": Thing}
    with pytest.raises(ImportError, match="has no message 'Other'"):
        conv.ros_message_types(["fake_msgs/msg/Other"])
    with pytest.raises(ImportError, match="'surely_absent_msgs' is not importable"):
        conv.ros_message_types(["surely_absent_msgs/msg/X"])
    with pytest.raises(ValueError, match="pkg/msg/Type"):
        conv.ros_message_types(["not_a_type"])
