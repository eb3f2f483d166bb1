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

"""Camera models: ``sensor_msgs/CameraInfo`` <-> :class:`~reloc_ros.data.types.Intrinsics`."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from reloc_ros.conversions.messages import float_seq, message_class
from reloc_ros.conversions.stamps import make_header
from reloc_ros.data.types import Intrinsics


def make_camera_info_msg(types: Mapping[str, Any], intrinsics: Intrinsics, stamp_ns: int, frame_id: str) -> Any:
    """``sensor_msgs/msg/CameraInfo`` for an undistorted pinhole camera.

    plumb_bob with zero distortion, ``K`` from the intrinsics, ``R = I``,
    ``P = [K | 0]``, no binning, no ROI: the camera model of a rectified or
    synthetic image.
    """
    fx, fy, cx, cy = (float(v) for v in (intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy))
    K_33 = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    P_34 = np.hstack([K_33, np.zeros((3, 1))])
    cls = message_class(types, "sensor_msgs/msg/CameraInfo")
    roi = message_class(types, "sensor_msgs/msg/RegionOfInterest")(x_offset=0, y_offset=0, height=0, width=0,
                                                                   do_rectify=False)
    return cls(header=make_header(types, stamp_ns, frame_id), height=int(intrinsics.height),
               width=int(intrinsics.width), distortion_model="plumb_bob", d=float_seq(cls, np.zeros(5)),
               k=float_seq(cls, K_33), r=float_seq(cls, np.eye(3)), p=float_seq(cls, P_34),
               binning_x=0, binning_y=0, roi=roi)


def _field(msg: Any, *names: str) -> Any:
    # ROS 2 lower-case (k, p), ROS 1 upper-case (K, P) as rosbags deserialises ROS 1 bags.
    for name in names:
        if hasattr(msg, name):
            return getattr(msg, name)
    raise ValueError(f"message {type(msg).__name__} has none of the fields {names}")


def camera_info_to_intrinsics(msg: Any, rectified: bool = False) -> Intrinsics:
    """:class:`Intrinsics` of the images a ``sensor_msgs/CameraInfo`` describes.

    Reads ``K`` (row-major 3x3) for raw images, or the left 3x3 of ``P`` with
    ``rectified=True`` (images from image_proc's rectify). Distortion is not
    applied: callers of raw images with strong distortion should rectify
    first. Binning and ROI are applied as ``image_geometry`` does: the
    principal point is shifted by the ROI offset, then focal lengths and
    principal point are divided by ``binning_x``/``binning_y`` (0 and 1 both
    mean no binning), and the size becomes ROI size / binning.
    """
    name, count = ("P", 12) if rectified else ("K", 9)
    vals = np.asarray(_field(msg, name.lower(), name), dtype=np.float64).reshape(-1)
    if vals.size != count:
        raise ValueError(f"CameraInfo {name} must have {count} values, got {vals.size}")
    if rectified:
        fx, cx, fy, cy = vals[0], vals[2], vals[5], vals[6]
    else:
        fx, cx, fy, cy = vals[0], vals[2], vals[4], vals[5]
    if not np.all(np.isfinite(vals)) or fx <= 0 or fy <= 0:
        raise ValueError(f"CameraInfo {name} has no valid focal lengths (need finite fx, fy > 0; an uncalibrated "
                         f"camera publishes zeros): fx={fx}, fy={fy}, cx={cx}, cy={cy}, {name}={vals.tolist()}")
    width, height = int(msg.width), int(msg.height)
    roi = getattr(msg, "roi", None)
    if roi is not None and int(roi.width) > 0 and int(roi.height) > 0:
        cx -= float(roi.x_offset)
        cy -= float(roi.y_offset)
        width, height = int(roi.width), int(roi.height)
    bin_x = max(int(getattr(msg, "binning_x", 0)), 1)
    bin_y = max(int(getattr(msg, "binning_y", 0)), 1)
    fx, cx, width = fx / bin_x, cx / bin_x, width // bin_x
    fy, cy, height = fy / bin_y, cy / bin_y, height // bin_y
    if width <= 0 or height <= 0:
        raise ValueError(f"CameraInfo gives an image size of {width}x{height} (width {msg.width}, height "
                         f"{msg.height}, binning {bin_x}x{bin_y}); a valid camera info has width, height > 0")
    return Intrinsics(fx=float(fx), fy=float(fy), cx=float(cx), cy=float(cy), width=width, height=height)
