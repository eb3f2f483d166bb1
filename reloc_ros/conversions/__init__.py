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

"""ROS messages <-> numpy and reloc_ros core types, with no ROS dependency.

This is the one module that knows message layouts. Everything here is
duck-typed on message attributes, so it works identically on

* rclpy messages (a node on a real ROS 2 system), whose array fields are
  ``array.array`` / lists / numpy arrays and whose setters type-check, and
* ``rosbags`` message classes (bags, tests), dataclasses whose
  array fields are numpy arrays.

Builders take a mapping ``types`` from ROS type name (``'sensor_msgs/msg/Image'``)
to message class: ``typestore.types`` of a rosbags typestore works as is, a node
passes :func:`ros_message_types` (or its own dict of rclpy classes). Every
message is constructed with all fields as keywords, which both kinds accept.
Builders write ROS 2 layouts; readers also accept ROS 1 messages as rosbags
deserialises them (``K`` instead of ``k``, ``secs``/``nsecs`` stamps).

Conventions (see :mod:`reloc_ros.geometry`): poses are 4x4 ``T_parent_child``,
quaternions in messages are ``(x, y, z, w)``, covariances 6x6 row-major over
``(x, y, z, rotX, rotY, rotZ)``.

The functions live in one module per message family, all re-exported here
(``conversions.image_to_rgb8``, ``from reloc_ros.conversions import stamp_to_ns``):

* :mod:`~reloc_ros.conversions.messages`: the ``types`` mapping, :func:`ros_message_types`;
* :mod:`~reloc_ros.conversions.stamps`: stamps and headers;
* :mod:`~reloc_ros.conversions.images`: ``Image`` / ``CompressedImage``, encodings, depth;
* :mod:`~reloc_ros.conversions.camera`: ``CameraInfo``;
* :mod:`~reloc_ros.conversions.poses`: poses, transforms, TF, odometry, covariances;
* :mod:`~reloc_ros.conversions.diagnostics`: ``DiagnosticArray``.
"""

from reloc_ros.conversions.camera import camera_info_to_intrinsics, make_camera_info_msg
# DIAGNOSTIC_LEVELS: a module attribute before the split, not in __all__ then either.
from reloc_ros.conversions.diagnostics import (  # noqa: F401
    DIAGNOSTIC_LEVELS,
    diagnostic_key_values,
    make_diagnostic_array,
)
from reloc_ros.conversions.images import (
    compressed_to_rgb8,
    depth_to_metres,
    IMAGE_ENCODINGS,
    image_to_numpy,
    image_to_rgb8,
    make_compressed_image_msg,
    make_image_msg,
)
from reloc_ros.conversions.messages import BUILDER_MSGTYPES, ros_message_types
from reloc_ros.conversions.poses import (
    make_odometry,
    make_pose_array,
    make_pose_stamped,
    make_pose_with_covariance_stamped,
    make_tf_message,
    make_transform_stamped,
    POSE_MSGTYPES,
    pose_covariance_from_msg,
    pose_to_matrix,
    stamped_pose_from_msg,
    transform_to_matrix,
    UNKNOWN_VARIANCE,
)
from reloc_ros.conversions.stamps import make_header, stamp_from_ns, stamp_to_ns

__all__ = [
    "IMAGE_ENCODINGS", "POSE_MSGTYPES", "BUILDER_MSGTYPES", "UNKNOWN_VARIANCE",
    "ros_message_types",
    "stamp_from_ns", "stamp_to_ns", "make_header", "make_image_msg", "make_compressed_image_msg",
    "make_camera_info_msg", "make_transform_stamped", "make_tf_message", "make_pose_stamped",
    "make_pose_with_covariance_stamped", "make_odometry", "make_pose_array", "make_diagnostic_array",
    "diagnostic_key_values",
    "image_to_numpy", "image_to_rgb8", "depth_to_metres", "compressed_to_rgb8", "camera_info_to_intrinsics",
    "pose_to_matrix", "transform_to_matrix", "stamped_pose_from_msg", "pose_covariance_from_msg",
]
