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

"""Tests of reloc_ros.conversions.camera: CameraInfo <-> Intrinsics (K, P, binning, ROI, ROS 1 names)."""

from __future__ import annotations

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from conftest import STAMP_NS, cdr_round_trip
from reloc_ros import conversions as conv
from reloc_ros.data.types import Intrinsics


def test_camera_info_round_trip(T, ts):
    intr = Intrinsics(fx=525.0, fy=520.5, cx=319.5, cy=239.25, width=640, height=480)
    msg = cdr_round_trip(ts, conv.make_camera_info_msg(T, intr, STAMP_NS, "cam_optical"))
    assert msg.distortion_model == "plumb_bob"
    np.testing.assert_array_equal(msg.d, np.zeros(5))
    np.testing.assert_array_equal(np.asarray(msg.r).reshape(3, 3), np.eye(3))
    np.testing.assert_array_equal(np.asarray(msg.p).reshape(3, 4)[:, :3], intr.K_33)
    np.testing.assert_array_equal(np.asarray(msg.k).reshape(3, 3), intr.K_33)
    assert conv.camera_info_to_intrinsics(msg) == intr
    assert conv.camera_info_to_intrinsics(msg, rectified=True) == intr


def test_camera_info_rectified_reads_p_and_binning_roi(T):
    intr = Intrinsics(fx=500.0, fy=500.0, cx=320.0, cy=240.0, width=640, height=480)
    msg = conv.make_camera_info_msg(T, intr, 0, "cam")
    msg.p = np.array([400.0, 0, 300.0, 0, 0, 410.0, 200.0, 0, 0, 0, 1, 0])
    rect = conv.camera_info_to_intrinsics(msg, rectified=True)
    assert (rect.fx, rect.fy, rect.cx, rect.cy) == (400.0, 410.0, 300.0, 200.0)
    msg.binning_x, msg.binning_y = 2, 4
    binned = conv.camera_info_to_intrinsics(msg)
    assert (binned.fx, binned.fy, binned.cx, binned.cy, binned.width, binned.height) == (
        250.0, 125.0, 160.0, 60.0, 320, 120)
    msg.binning_x = msg.binning_y = 0
    msg.roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=100, y_offset=40, height=200, width=300,
                                                    do_rectify=False)
    roi = conv.camera_info_to_intrinsics(msg)
    assert (roi.cx, roi.cy, roi.width, roi.height) == (220.0, 200.0, 300, 200)


def test_camera_info_uncalibrated_is_an_error(T):
    msg = conv.make_camera_info_msg(T, Intrinsics(1, 1, 1, 1, 4, 4), 0, "cam")
    msg.k = np.zeros(9)
    with pytest.raises(ValueError, match=r"fx=0\.0, fy=0\.0"):
        conv.camera_info_to_intrinsics(msg)


def test_camera_info_ros1_field_names():
    """ROS 1 bags (read by rosbags) spell the matrices K, P: readers accept both."""
    ros1_ts = get_typestore(Stores.ROS1_NOETIC)
    R1 = ros1_ts.types
    header = R1["std_msgs/msg/Header"](seq=7, stamp=R1["builtin_interfaces/msg/Time"](sec=5, nanosec=6),
                                       frame_id="cam")
    roi = R1["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    msg = R1["sensor_msgs/msg/CameraInfo"](
        header=header, height=12, width=10, distortion_model="plumb_bob", D=np.zeros(5),
        K=np.array([100.0, 0, 5, 0, 110.0, 6, 0, 0, 1]), R=np.eye(3).reshape(-1),
        P=np.array([90.0, 0, 4, 0, 0, 95.0, 3, 0, 0, 0, 1, 0]), binning_x=0, binning_y=0, roi=roi)
    msg = ros1_ts.deserialize_ros1(ros1_ts.serialize_ros1(msg, msg.__msgtype__), msg.__msgtype__)
    assert conv.camera_info_to_intrinsics(msg) == Intrinsics(100.0, 110.0, 5.0, 6.0, 10, 12)
    assert conv.camera_info_to_intrinsics(msg, rectified=True) == Intrinsics(90.0, 95.0, 4.0, 3.0, 10, 12)
    assert conv.stamp_to_ns(msg.header.stamp) == 5_000_000_006
