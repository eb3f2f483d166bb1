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

"""Stamps and headers: ``builtin_interfaces/Time`` <-> integer nanoseconds, ``std_msgs/Header``."""

from __future__ import annotations

from typing import Any, Mapping

from reloc_ros.conversions.messages import message_class

_NS_PER_S = 1_000_000_000


def stamp_from_ns(types: Mapping[str, Any], stamp_ns: int) -> Any:
    """``builtin_interfaces/msg/Time`` from integer nanoseconds (>= 0)."""
    ns = int(stamp_ns)
    if ns < 0:
        raise ValueError(f"stamp must be >= 0 ns (ROS 2 Time has an unsigned nanosec field), got {ns}")
    sec, nanosec = divmod(ns, _NS_PER_S)
    if sec > 2**31 - 1:
        raise ValueError(f"stamp {ns} ns does not fit builtin_interfaces/Time (int32 seconds)")
    return message_class(types, "builtin_interfaces/msg/Time")(sec=sec, nanosec=nanosec)


def stamp_to_ns(stamp: Any) -> int:
    """Integer nanoseconds of a stamp with ``sec``/``nanosec`` (ROS 2) or ``secs``/``nsecs`` (rospy)."""
    if hasattr(stamp, "sec") and hasattr(stamp, "nanosec"):
        return int(stamp.sec) * _NS_PER_S + int(stamp.nanosec)
    if hasattr(stamp, "secs") and hasattr(stamp, "nsecs"):
        return int(stamp.secs) * _NS_PER_S + int(stamp.nsecs)
    raise ValueError(f"not a stamp (needs sec/nanosec or secs/nsecs attributes): {type(stamp).__name__}")


def make_header(types: Mapping[str, Any], stamp_ns: int, frame_id: str) -> Any:
    """``std_msgs/msg/Header`` with the given stamp and frame."""
    return message_class(types, "std_msgs/msg/Header")(stamp=stamp_from_ns(types, stamp_ns),
                                                       frame_id=str(frame_id))
