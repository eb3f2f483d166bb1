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

"""Message classes of rclpy and rosbags alike, and field values in the form each kind accepts.

The type list every builder draws from (:data:`BUILDER_MSGTYPES`), the
import of the installed rclpy classes (:func:`ros_message_types`), the
lookup of a class in a ``types`` mapping, and array fields written as a
rosbags dataclass (numpy) or an rclpy setter (lists, ``array.array``) wants
them. Imports no ROS module at import time.
"""

from __future__ import annotations

import array
import dataclasses
import importlib
from typing import Any, Mapping, Sequence

import numpy as np

# Every type a builder may construct (including nested ones): what a `types` mapping must hold.
BUILDER_MSGTYPES: tuple[str, ...] = (
    "builtin_interfaces/msg/Time",
    "std_msgs/msg/Header",
    "sensor_msgs/msg/Image",
    "sensor_msgs/msg/CompressedImage",
    "sensor_msgs/msg/CameraInfo",
    "sensor_msgs/msg/RegionOfInterest",
    "geometry_msgs/msg/Point",
    "geometry_msgs/msg/Quaternion",
    "geometry_msgs/msg/Vector3",
    "geometry_msgs/msg/Pose",
    "geometry_msgs/msg/PoseStamped",
    "geometry_msgs/msg/PoseWithCovariance",
    "geometry_msgs/msg/PoseWithCovarianceStamped",
    "geometry_msgs/msg/PoseArray",
    "geometry_msgs/msg/Transform",
    "geometry_msgs/msg/TransformStamped",
    "geometry_msgs/msg/Twist",
    "geometry_msgs/msg/TwistWithCovariance",
    "nav_msgs/msg/Odometry",
    "tf2_msgs/msg/TFMessage",
    "diagnostic_msgs/msg/KeyValue",
    "diagnostic_msgs/msg/DiagnosticStatus",
    "diagnostic_msgs/msg/DiagnosticArray",
)


def ros_message_types(names: Sequence[str] = BUILDER_MSGTYPES) -> dict[str, Any]:
    """Import the installed ROS 2 Python message classes, keyed by type name.

    For nodes: ``make_image_msg(ros_message_types(), ...)``. Imports
    ``<pkg>.msg`` modules lazily (never rclpy itself), so this module still
    imports where ROS is absent; calling it there raises ``ImportError``.
    """
    out: dict[str, Any] = {}
    for name in names:
        parts = name.split("/")
        if len(parts) != 3 or parts[1] != "msg":
            raise ValueError(f"message type name must look like 'pkg/msg/Type', got '{name}'")
        pkg, _, cls_name = parts
        try:
            module = importlib.import_module(f"{pkg}.msg")
        except ImportError as exc:
            raise ImportError(f"ROS message package '{pkg}' is not importable (is a ROS 2 environment "
                              f"sourced?) while looking up '{name}': {exc}") from exc
        try:
            out[name] = getattr(module, cls_name)
        except AttributeError:
            raise ImportError(f"module '{pkg}.msg' has no message '{cls_name}'") from None
    return out


def message_class(types: Mapping[str, Any], name: str) -> Any:
    """Return the class of message type ``name`` in ``types``; ``ValueError`` naming it when absent."""
    try:
        return types[name]
    except KeyError:
        raise ValueError(f"message type '{name}' is missing from the types mapping; it needs every type in "
                         f"reloc_ros.conversions.BUILDER_MSGTYPES (a rosbags typestore.types has them)") from None


def is_rosbags(cls: Any) -> bool:
    """Tell whether a message class is a rosbags one (else rclpy's)."""
    # rosbags message classes are dataclasses holding numpy arrays; rclpy classes are not dataclasses
    # and their setters want array.array / lists of Python floats.
    return dataclasses.is_dataclass(cls)


def float_seq(cls: Any, values: Any) -> Any:
    """Return a float64 array field value in the form the message class expects."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if is_rosbags(cls):
        return arr.copy()
    # rclpy asserts every element is a Python float; a list passes for fixed and unbounded arrays.
    return [float(v) for v in arr]


def bytes_field(cls: Any, buf: np.ndarray) -> Any:
    """Return a uint8[] field value (image data) holding a copy of ``buf``'s bytes, as the class expects it."""
    flat = np.ascontiguousarray(buf).reshape(-1).view(np.uint8)
    if is_rosbags(cls):
        # Copied: the message must not alias the caller's array.
        return flat.copy()
    # rclpy's uint8[] setter takes an array.array('B') as is; any other sequence is checked element by
    # element in Python, which is slow for images.
    out = array.array("B")
    out.frombytes(flat.data)
    return out
