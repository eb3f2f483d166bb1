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

"""Tests of reloc_ros.conversions.stamps: stamps and headers, on rosbags' ROS 2 message classes."""

from __future__ import annotations

import types as pytypes

import pytest

from conftest import STAMP_NS, cdr_round_trip
from reloc_ros import conversions as conv


def test_stamp_round_trip_splits_seconds_and_nanoseconds(T):
    stamp = conv.stamp_from_ns(T, 1_500_000_001)
    assert (stamp.sec, stamp.nanosec) == (1, 500_000_001)
    assert conv.stamp_to_ns(stamp) == 1_500_000_001
    assert conv.stamp_to_ns(conv.stamp_from_ns(T, STAMP_NS)) == STAMP_NS
    # rospy-style stamps (secs/nsecs) read the same.
    assert conv.stamp_to_ns(pytypes.SimpleNamespace(secs=2, nsecs=3)) == 2_000_000_003


def test_stamp_rejects_negative_and_non_stamps(T):
    with pytest.raises(ValueError, match="stamp must be >= 0"):
        conv.stamp_from_ns(T, -1)
    with pytest.raises(ValueError, match="not a stamp"):
        conv.stamp_to_ns(object())


def test_header_carries_stamp_and_frame(T, ts):
    header = cdr_round_trip(ts, conv.make_header(T, STAMP_NS, "camera_optical_frame"))
    assert header.frame_id == "camera_optical_frame"
    assert conv.stamp_to_ns(header.stamp) == STAMP_NS
