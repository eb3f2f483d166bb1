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
"""

from __future__ import annotations

import array
import dataclasses
import importlib
import re
import sys
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from reloc_ros.data.types import Intrinsics
from reloc_ros.geometry import covariance_from_msg, covariance_to_msg, is_rigid, make_pose, pose_to_tq, quat_normalize

__all__ = [
    "IMAGE_ENCODINGS", "POSE_MSGTYPES", "BUILDER_MSGTYPES", "UNKNOWN_VARIANCE",
    "ros_message_types",
    "stamp_from_ns", "stamp_to_ns", "make_header", "make_image_msg", "make_compressed_image_msg",
    "make_camera_info_msg", "make_transform_stamped", "make_tf_message", "make_pose_stamped",
    "make_pose_with_covariance_stamped", "make_odometry", "make_pose_array", "make_diagnostic_array",
    "image_to_numpy", "image_to_rgb8", "depth_to_metres", "compressed_to_rgb8", "camera_info_to_intrinsics",
    "pose_to_matrix", "transform_to_matrix", "stamped_pose_from_msg", "pose_covariance_from_msg",
]

_NS_PER_S = 1_000_000_000
_HOST_BIGENDIAN = sys.byteorder == "big"

# The four message types that carry a stamped pose, as stamped_pose_from_msg reads them.
POSE_MSGTYPES: tuple[str, ...] = (
    "geometry_msgs/msg/PoseStamped",
    "geometry_msgs/msg/PoseWithCovarianceStamped",
    "nav_msgs/msg/Odometry",
    "geometry_msgs/msg/TransformStamped",
)

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

# Variance written where a message has a covariance we did not measure (e.g. the twist of an
# Odometry built from poses only). Zero would tell an EKF "perfectly known"; a huge diagonal is
# the usual way to say "ignore this" (robot_localization, Nav2 documentation).
UNKNOWN_VARIANCE = 1e6


# --------------------------------------------------------------------------
# Message classes and field values for both rosbags and rclpy
# --------------------------------------------------------------------------

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


def _cls(types: Mapping[str, Any], name: str) -> Any:
    try:
        return types[name]
    except KeyError:
        raise ValueError(f"message type '{name}' is missing from the types mapping; it needs every type in "
                         f"reloc_ros.conversions.BUILDER_MSGTYPES (a rosbags typestore.types has them)") from None


def _is_rosbags(cls: Any) -> bool:
    # rosbags message classes are dataclasses holding numpy arrays; rclpy classes are not dataclasses
    # and their setters want array.array / lists of Python floats.
    return dataclasses.is_dataclass(cls)


def _float_seq(cls: Any, values: Any) -> Any:
    """Return a float64 array field value in the form the message class expects."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if _is_rosbags(cls):
        return arr.copy()
    # rclpy asserts every element is a Python float; a list passes for fixed and unbounded arrays.
    return [float(v) for v in arr]


def _bytes_field(cls: Any, buf: np.ndarray) -> Any:
    """Return a uint8[] field value (image data) holding a copy of ``buf``'s bytes, as the class expects it."""
    flat = np.ascontiguousarray(buf).reshape(-1).view(np.uint8)
    if _is_rosbags(cls):
        # Copied: the message must not alias the caller's array.
        return flat.copy()
    # rclpy's uint8[] setter takes an array.array('B') as is; any other sequence is checked element by
    # element in Python, which is slow for images.
    out = array.array("B")
    out.frombytes(flat.data)
    return out


def _check_pose_matrix(T_44: np.ndarray, what: str) -> np.ndarray:
    """Return ``T_44`` (4x4, or (K, 4, 4) for several) as float64; ``ValueError`` unless rigid."""
    T = np.asarray(T_44, dtype=np.float64)
    if T.shape[-2:] != (4, 4) or T.ndim not in (2, 3):
        raise ValueError(f"{what} must be a 4x4 matrix, got shape {T.shape}")
    # pose_to_tq would silently project a non-rotation onto the nearest rotation; a bad matrix here
    # is a bug upstream and must not reach a bag or a topic.
    if not is_rigid(T, tol=1e-4):
        raise ValueError(f"{what} is not a finite rigid transform (orthonormal R, det +1, last row 0 0 0 1): "
                         f"{T.tolist()}")
    return T


# --------------------------------------------------------------------------
# Builders: numpy / core types -> messages
# --------------------------------------------------------------------------

def stamp_from_ns(types: Mapping[str, Any], stamp_ns: int) -> Any:
    """``builtin_interfaces/msg/Time`` from integer nanoseconds (>= 0)."""
    ns = int(stamp_ns)
    if ns < 0:
        raise ValueError(f"stamp must be >= 0 ns (ROS 2 Time has an unsigned nanosec field), got {ns}")
    sec, nanosec = divmod(ns, _NS_PER_S)
    if sec > 2**31 - 1:
        raise ValueError(f"stamp {ns} ns does not fit builtin_interfaces/Time (int32 seconds)")
    return _cls(types, "builtin_interfaces/msg/Time")(sec=sec, nanosec=nanosec)


def stamp_to_ns(stamp: Any) -> int:
    """Integer nanoseconds of a stamp with ``sec``/``nanosec`` (ROS 2) or ``secs``/``nsecs`` (rospy)."""
    if hasattr(stamp, "sec") and hasattr(stamp, "nanosec"):
        return int(stamp.sec) * _NS_PER_S + int(stamp.nanosec)
    if hasattr(stamp, "secs") and hasattr(stamp, "nsecs"):
        return int(stamp.secs) * _NS_PER_S + int(stamp.nsecs)
    raise ValueError(f"not a stamp (needs sec/nanosec or secs/nsecs attributes): {type(stamp).__name__}")


def make_header(types: Mapping[str, Any], stamp_ns: int, frame_id: str) -> Any:
    """``std_msgs/msg/Header`` with the given stamp and frame."""
    return _cls(types, "std_msgs/msg/Header")(stamp=stamp_from_ns(types, stamp_ns), frame_id=str(frame_id))


def make_image_msg(types: Mapping[str, Any], array: np.ndarray, encoding: str, stamp_ns: int,
                   frame_id: str) -> Any:
    """``sensor_msgs/msg/Image`` holding ``array`` (a copy) under ``encoding``.

    The array must already have the encoding's dtype and channel count (e.g.
    uint16 ``(H, W)`` for ``mono16``/``16UC1``, float32 for ``32FC1``, uint8
    ``(H, W, 2)`` for ``yuv422``); nothing is cast silently. Rows are packed
    (``step = width * bytes per pixel``) in the host byte order.
    """
    dtype, channels = _encoding_layout(encoding)
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] != channels:
        raise ValueError(f"encoding '{encoding}' needs {channels} channel(s), i.e. shape (H, W)"
                         f"{'' if channels == 1 else f' x {channels}'}, got shape {np.shape(array)}")
    if arr.dtype.newbyteorder("=") != dtype.newbyteorder("="):
        raise ValueError(f"encoding '{encoding}' needs dtype {dtype.name}, got {arr.dtype.name}; convert explicitly")
    height, width = int(arr.shape[0]), int(arr.shape[1])
    if height == 0 or width == 0:
        raise ValueError(f"image must not be empty, got {height}x{width}")
    if encoding in _YUV422_CODES and width % 2:
        raise ValueError(f"encoding '{encoding}' packs pixel pairs and needs an even width, got {width}")
    # Native byte order, C-contiguous: what is_bigendian below describes.
    packed = np.ascontiguousarray(arr, dtype=dtype.newbyteorder("="))
    cls = _cls(types, "sensor_msgs/msg/Image")
    return cls(header=make_header(types, stamp_ns, frame_id), height=height, width=width, encoding=str(encoding),
               is_bigendian=int(_HOST_BIGENDIAN), step=width * channels * dtype.itemsize,
               data=_bytes_field(cls, packed))


def make_compressed_image_msg(types: Mapping[str, Any], rgb_u8: np.ndarray, fmt: str, stamp_ns: int,
                              frame_id: str, quality: int = 90) -> Any:
    """``sensor_msgs/msg/CompressedImage`` of an RGB (or mono ``(H, W)``) uint8 image.

    ``fmt`` is ``'jpeg'`` or ``'png'``; the format field is written the way
    ROS 2 ``compressed_image_transport`` does (``'rgb8; jpeg compressed bgr8'``,
    ``'mono8; png compressed '``). ``quality`` is the JPEG quality (1-100).
    """
    fmt = str(fmt).lower()
    if fmt not in ("jpeg", "png"):
        raise ValueError(f"compressed format must be 'jpeg' or 'png', got '{fmt}'")
    img = np.asarray(rgb_u8)
    if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(f"need a uint8 (H, W, 3) RGB or (H, W) mono image, got {img.dtype} {img.shape}")
    if img.size == 0:
        raise ValueError(f"image must not be empty, got shape {img.shape}")
    if img.ndim == 3:
        # Image files hold RGB; OpenCV's encoder expects BGR, as image_transport's bgr8 target says.
        to_encode = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR)
        format_str = f"rgb8; {fmt} compressed bgr8"
    else:
        to_encode = np.ascontiguousarray(img)
        format_str = f"mono8; {fmt} compressed "
    if fmt == "jpeg":
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"jpeg quality must be in 1..100, got {quality}")
        ok, buf = cv2.imencode(".jpg", to_encode, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    else:
        ok, buf = cv2.imencode(".png", to_encode)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {img.shape} image as {fmt}")
    cls = _cls(types, "sensor_msgs/msg/CompressedImage")
    return cls(header=make_header(types, stamp_ns, frame_id), format=format_str, data=_bytes_field(cls, buf))


def make_camera_info_msg(types: Mapping[str, Any], intrinsics: Intrinsics, stamp_ns: int, frame_id: str) -> Any:
    """``sensor_msgs/msg/CameraInfo`` for an undistorted pinhole camera.

    plumb_bob with zero distortion, ``K`` from the intrinsics, ``R = I``,
    ``P = [K | 0]``, no binning, no ROI: the camera model of a rectified or
    synthetic image.
    """
    fx, fy, cx, cy = (float(v) for v in (intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy))
    K_33 = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    P_34 = np.hstack([K_33, np.zeros((3, 1))])
    cls = _cls(types, "sensor_msgs/msg/CameraInfo")
    roi = _cls(types, "sensor_msgs/msg/RegionOfInterest")(x_offset=0, y_offset=0, height=0, width=0,
                                                          do_rectify=False)
    return cls(header=make_header(types, stamp_ns, frame_id), height=int(intrinsics.height),
               width=int(intrinsics.width), distortion_model="plumb_bob", d=_float_seq(cls, np.zeros(5)),
               k=_float_seq(cls, K_33), r=_float_seq(cls, np.eye(3)), p=_float_seq(cls, P_34),
               binning_x=0, binning_y=0, roi=roi)


def _make_pose_fields(types: Mapping[str, Any], T_44: np.ndarray, what: str) -> tuple[Any, Any]:
    """(position-like xyz, Quaternion) of a 4x4 pose; position class chosen by the caller."""
    t, q = pose_to_tq(_check_pose_matrix(T_44, what))
    quat = _cls(types, "geometry_msgs/msg/Quaternion")(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))
    return t, quat


def _make_pose(types: Mapping[str, Any], T_44: np.ndarray) -> Any:
    t, quat = _make_pose_fields(types, T_44, "pose")
    point = _cls(types, "geometry_msgs/msg/Point")(x=float(t[0]), y=float(t[1]), z=float(t[2]))
    return _cls(types, "geometry_msgs/msg/Pose")(position=point, orientation=quat)


def _make_pose_with_covariance(types: Mapping[str, Any], T_44: np.ndarray, cov_66: np.ndarray) -> Any:
    cls = _cls(types, "geometry_msgs/msg/PoseWithCovariance")
    # covariance_to_msg validates: finite, symmetric, positive definite.
    return cls(pose=_make_pose(types, T_44), covariance=_float_seq(cls, covariance_to_msg(cov_66)))


def make_transform_stamped(types: Mapping[str, Any], T_44: np.ndarray, stamp_ns: int, parent_frame: str,
                           child_frame: str) -> Any:
    """``geometry_msgs/msg/TransformStamped`` of ``T_parent_child`` (TF's ``parent -> child``)."""
    t, quat = _make_pose_fields(types, T_44, f"transform {parent_frame} -> {child_frame}")
    vec = _cls(types, "geometry_msgs/msg/Vector3")(x=float(t[0]), y=float(t[1]), z=float(t[2]))
    transform = _cls(types, "geometry_msgs/msg/Transform")(translation=vec, rotation=quat)
    return _cls(types, "geometry_msgs/msg/TransformStamped")(
        header=make_header(types, stamp_ns, parent_frame), child_frame_id=str(child_frame), transform=transform)


def make_tf_message(types: Mapping[str, Any], transforms: Sequence[Any]) -> Any:
    """``tf2_msgs/msg/TFMessage`` (what ``/tf`` and ``/tf_static`` carry) of TransformStamped messages."""
    return _cls(types, "tf2_msgs/msg/TFMessage")(transforms=list(transforms))


def make_pose_stamped(types: Mapping[str, Any], T_44: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
    """``geometry_msgs/msg/PoseStamped``: pose ``T_frame_body`` expressed in ``frame_id``."""
    return _cls(types, "geometry_msgs/msg/PoseStamped")(header=make_header(types, stamp_ns, frame_id),
                                                        pose=_make_pose(types, T_44))


def make_pose_with_covariance_stamped(types: Mapping[str, Any], T_44: np.ndarray, cov_66: np.ndarray,
                                      stamp_ns: int, frame_id: str) -> Any:
    """``geometry_msgs/msg/PoseWithCovarianceStamped`` (e.g. ``/initialpose``, a relocalizer's output).

    ``cov_66`` must be finite, symmetric and positive definite: zeros would
    read as "perfectly known" to an EKF.
    """
    return _cls(types, "geometry_msgs/msg/PoseWithCovarianceStamped")(
        header=make_header(types, stamp_ns, frame_id), pose=_make_pose_with_covariance(types, T_44, cov_66))


def make_pose_array(types: Mapping[str, Any], poses_k44: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
    """``geometry_msgs/msg/PoseArray`` of ``K`` poses in ``frame_id`` (hypotheses, for RViz); ``K`` may be 0."""
    poses = np.asarray(poses_k44, dtype=np.float64).reshape(-1, 4, 4)
    msgs = []
    if len(poses):
        # One check and one quaternion conversion for all poses: this runs for every published frame.
        t_k3, q_k4 = pose_to_tq(_check_pose_matrix(poses, "pose array"))
        point, quat, pose = (_cls(types, f"geometry_msgs/msg/{n}") for n in ("Point", "Quaternion", "Pose"))
        msgs = [pose(position=point(x=float(t[0]), y=float(t[1]), z=float(t[2])),
                     orientation=quat(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])))
                for t, q in zip(t_k3.tolist(), q_k4.tolist())]
    return _cls(types, "geometry_msgs/msg/PoseArray")(header=make_header(types, stamp_ns, frame_id), poses=msgs)


DIAGNOSTIC_LEVELS = {"OK": 0, "WARN": 1, "ERROR": 2, "STALE": 3}
"""``diagnostic_msgs/DiagnosticStatus`` levels by name."""


def make_diagnostic_array(types: Mapping[str, Any], stamp_ns: int, name: str, level: str, message: str,
                          values: Mapping[str, Any], hardware_id: str = "") -> Any:
    """``diagnostic_msgs/msg/DiagnosticArray`` with one status (what ``/diagnostics`` carries).

    ``level`` is one of OK, WARN, ERROR, STALE; ``values`` become KeyValue
    pairs (floats with 4 significant digits).
    """
    if level not in DIAGNOSTIC_LEVELS:
        raise ValueError(f"diagnostic level must be one of {', '.join(DIAGNOSTIC_LEVELS)}, got {level!r}")
    kv_cls = _cls(types, "diagnostic_msgs/msg/KeyValue")
    kvs = [kv_cls(key=str(k), value=f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in values.items()]
    status_cls = _cls(types, "diagnostic_msgs/msg/DiagnosticStatus")
    level_value = DIAGNOSTIC_LEVELS[level]
    # rclpy's `level` is a byte field (bytes of length 1); rosbags keeps it as an int.
    status = status_cls(level=level_value if _is_rosbags(status_cls) else bytes([level_value]), name=str(name),
                        message=str(message), hardware_id=str(hardware_id), values=kvs)
    return _cls(types, "diagnostic_msgs/msg/DiagnosticArray")(header=make_header(types, stamp_ns, ""),
                                                              status=[status])


def make_odometry(types: Mapping[str, Any], T_44: np.ndarray, stamp_ns: int, frame_id: str, child_frame_id: str,
                  cov_66: np.ndarray | None = None) -> Any:
    """``nav_msgs/msg/Odometry`` with pose ``T_frame_child`` and a zero twist.

    ``cov_66=None`` writes :data:`UNKNOWN_VARIANCE` on the pose diagonal
    ("not measured"), never zeros. The twist is not estimated here, so it is
    zero with :data:`UNKNOWN_VARIANCE` on its diagonal.
    """
    unknown_66 = np.eye(6) * UNKNOWN_VARIANCE
    pose_cov = unknown_66 if cov_66 is None else cov_66
    zero = _cls(types, "geometry_msgs/msg/Vector3")
    twist = _cls(types, "geometry_msgs/msg/Twist")(linear=zero(x=0.0, y=0.0, z=0.0),
                                                   angular=zero(x=0.0, y=0.0, z=0.0))
    twist_cls = _cls(types, "geometry_msgs/msg/TwistWithCovariance")
    twist_wc = twist_cls(twist=twist, covariance=_float_seq(twist_cls, unknown_66))
    return _cls(types, "nav_msgs/msg/Odometry")(
        header=make_header(types, stamp_ns, frame_id), child_frame_id=str(child_frame_id),
        pose=_make_pose_with_covariance(types, T_44, pose_cov), twist=twist_wc)


# --------------------------------------------------------------------------
# Image encodings (names as in sensor_msgs/image_encodings.hpp)
# --------------------------------------------------------------------------

_U8, _U16 = np.dtype(np.uint8), np.dtype(np.uint16)
_BAYER_PATTERNS = ("rggb", "bggr", "gbrg", "grbg")
_YUV422_CODES = {
    # UYVY byte order (U0 Y0 V0 Y1); ROS 2 Rolling also names it "uyvy".
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    # YUYV byte order (Y0 U0 Y1 V0); "yuyv" is its newer alias.
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2,
    "yuyv": cv2.COLOR_YUV2RGB_YUY2,
}
# OpenCV names a Bayer pattern after the 2x2 block starting at pixel (1, 1), ROS after the one at
# (0, 0), so ROS 'rggb' is OpenCV 'BG' (the mapping cv_bridge uses). The old names exist in every
# OpenCV 4.x, unlike the newer COLOR_BayerRGGB2RGB aliases.
_BAYER_CODES = {
    "rggb": cv2.COLOR_BayerBG2RGB,
    "bggr": cv2.COLOR_BayerRG2RGB,
    "gbrg": cv2.COLOR_BayerGR2RGB,
    "grbg": cv2.COLOR_BayerGB2RGB,
}

_NAMED_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (_U8, 3), "bgr8": (_U8, 3), "rgba8": (_U8, 4), "bgra8": (_U8, 4),
    "rgb16": (_U16, 3), "bgr16": (_U16, 3), "rgba16": (_U16, 4), "bgra16": (_U16, 4),
    "mono8": (_U8, 1), "mono16": (_U16, 1),
    **{f"bayer_{p}8": (_U8, 1) for p in _BAYER_PATTERNS},
    **{f"bayer_{p}16": (_U16, 1) for p in _BAYER_PATTERNS},
    **{name: (_U8, 2) for name in _YUV422_CODES},
}
_DEPTHS = {"8U": np.uint8, "8S": np.int8, "16U": np.uint16, "16S": np.int16, "32S": np.int32,
           "32F": np.float32, "64F": np.float64}
# OpenCV-style "<depth>C<channels>", channels optional (1); cv_bridge accepts the same family.
_GENERIC_RE = re.compile(r"^(8U|8S|16U|16S|32S|32F|64F)(?:C([1-9][0-9]{0,2}))?$")
_CV_CN_MAX = 512

# Every supported encoding by name; the generic family is listed for 1-4 channels but any
# "<depth>C<n>" with n <= 512 decodes.
IMAGE_ENCODINGS: tuple[str, ...] = tuple(_NAMED_ENCODINGS) + tuple(
    f"{d}C{n}" for d in _DEPTHS for n in range(1, 5))


def _encoding_layout(encoding: str) -> tuple[np.dtype, int]:
    """(dtype, channels) of an encoding, or ValueError listing the supported ones."""
    if encoding in _NAMED_ENCODINGS:
        return _NAMED_ENCODINGS[encoding]
    m = _GENERIC_RE.match(encoding or "")
    if m and int(m.group(2) or 1) <= _CV_CN_MAX:
        return np.dtype(_DEPTHS[m.group(1)]), int(m.group(2) or 1)
    raise ValueError(f"unsupported image encoding '{encoding}'; supported: {', '.join(_NAMED_ENCODINGS)} and "
                     f"<8U|8S|16U|16S|32S|32F|64F>C<n> (e.g. 16UC1, 32FC1, 8UC3)")


def _data_buffer(data: Any) -> np.ndarray:
    """Return the bytes of a uint8[] field as a 1-D uint8 array, a view wherever the field allows."""
    if isinstance(data, np.ndarray):
        if data.dtype == np.uint8:
            return data.reshape(-1) if data.flags.c_contiguous else np.ascontiguousarray(data).reshape(-1)
        return np.asarray(data, dtype=np.uint8).reshape(-1)
    if isinstance(data, (bytes, bytearray, memoryview, array.array)):
        # rclpy's array.array('B') and bytes expose the buffer protocol: no copy.
        return np.frombuffer(data, dtype=np.uint8)
    if isinstance(data, (list, tuple)):
        if data and isinstance(data[0], bytes):
            # A ROS 2 byte[] field arrives in rclpy as a list of 1-byte bytes objects.
            return np.frombuffer(b"".join(data), dtype=np.uint8)
        return np.asarray(data, dtype=np.uint8)
    raise ValueError(f"cannot read message data of type {type(data).__name__}; expected bytes, array.array, "
                     f"a numpy uint8 array or a list of ints")


def image_to_numpy(msg: Any) -> np.ndarray:
    """Pixels of a ``sensor_msgs/Image`` as a numpy array, with cv_bridge's semantics.

    Returns ``(H, W)`` for one channel, ``(H, W, C)`` otherwise, in the
    encoding's dtype (``yuv422`` is ``(H, W, 2)`` uint8, Bayer ``(H, W)``).
    Zero-copy wherever possible: the result is a view of the message buffer
    (row ``step`` padding skipped through strides), so it may be read-only and
    changes with the message; ``.copy()`` it to keep or modify. A copy is made
    only when the message's byte order (``is_bigendian``) differs from the
    host's, so the result always has a native-order dtype that OpenCV and
    torch accept, or when ``data`` is a Python list.

    Raises ``ValueError`` for an unknown encoding, an empty image, a ``step``
    shorter than a row, or ``data`` whose length is not ``height * step``.
    """
    encoding = str(msg.encoding)
    dtype, channels = _encoding_layout(encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ValueError(f"image '{encoding}' has zero size ({width}x{height}); a valid image has width, height > 0")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ValueError(f"image step {step} is smaller than one row of {width} px x {channels * dtype.itemsize} "
                         f"bytes/px = {row_bytes} bytes for encoding '{encoding}'")
    buf = _data_buffer(msg.data)
    if buf.size != height * step:
        raise ValueError(f"image data has {buf.size} bytes but height x step = {height} x {step} = "
                         f"{height * step} (encoding '{encoding}', {width}x{height})")
    msg_big = bool(msg.is_bigendian)
    view_dtype = dtype.newbyteorder(">" if msg_big else "<") if dtype.itemsize > 1 else dtype
    # One strided view over the whole buffer: rows `step` bytes apart, pixels packed within a row.
    out = np.ndarray(shape=(height, width, channels), dtype=view_dtype, buffer=buf, offset=0,
                     strides=(step, channels * dtype.itemsize, dtype.itemsize))
    if dtype.itemsize > 1 and msg_big != _HOST_BIGENDIAN:
        out = out.astype(dtype.newbyteorder("="))
    return out[:, :, 0] if channels == 1 else out


def _u16_to_u8(img: np.ndarray) -> np.ndarray:
    # Full 16-bit range onto 8 bits (value / 256), as cv_bridge's 16 -> 8 bit conversion does.
    return (img >> 8).astype(np.uint8)


def image_to_rgb8(msg: Any) -> np.ndarray:
    """Decode a ``sensor_msgs/Image`` as ``(H, W, 3)`` uint8 RGB, the input of every model.

    * ``rgb8`` is returned as the zero-copy view of :func:`image_to_numpy`
      (possibly read-only; copy before writing); everything else is a new array.
    * ``bgr8``/``rgba8``/``bgra8`` (and their 16-bit forms) are reordered with OpenCV.
    * ``mono8``/``8UC1`` are replicated to three channels.
    * 16-bit data (``mono16``, ``16UC1``, ``rgb16``, ``bayer_*16``, ...) is
      scaled by a fixed 1/256 (the full 16-bit range maps onto 0-255), not
      stretched per image, so training and inference see the same mapping;
      10/12-bit sensors therefore look dark.
    * ``bayer_*`` is demosaiced with OpenCV's bilinear ``COLOR_Bayer*``.
    * ``yuv422``/``uyvy`` and ``yuv422_yuy2``/``yuyv`` go through OpenCV's BT.601 YUV -> RGB.

    Float images (``32FC1`` ...) are depth or other measurements, not colour:
    refused (use :func:`depth_to_metres`), as are multi-channel ``8UC3``-style
    encodings whose channel order is not defined.
    """
    encoding = str(msg.encoding)
    img = image_to_numpy(msg)
    dtype, channels = _encoding_layout(encoding)
    if dtype.kind == "f":
        raise ValueError(f"image encoding '{encoding}' is a depth/float image, not colour; "
                         f"use reloc_ros.conversions.depth_to_metres for depth")
    img8 = _u16_to_u8(img) if dtype == _U16 else img
    if encoding == "rgb8":
        return img
    if encoding in ("rgb16",):
        return img8
    if encoding in ("bgr8", "bgr16"):
        return cv2.cvtColor(img8, cv2.COLOR_BGR2RGB)
    if encoding in ("rgba8", "rgba16"):
        return cv2.cvtColor(img8, cv2.COLOR_RGBA2RGB)
    if encoding in ("bgra8", "bgra16"):
        return cv2.cvtColor(img8, cv2.COLOR_BGRA2RGB)
    if encoding.startswith("bayer_"):
        code = _BAYER_CODES[encoding[len("bayer_"):len("bayer_") + 4]]
        # Demosaic at full depth, then reduce: interpolation on 16-bit data keeps its precision.
        rgb = cv2.cvtColor(np.ascontiguousarray(img), code)
        return _u16_to_u8(rgb) if rgb.dtype == np.uint16 else rgb
    if encoding in _YUV422_CODES:
        return cv2.cvtColor(np.ascontiguousarray(img), _YUV422_CODES[encoding])
    if channels == 1 and dtype in (_U8, _U16):
        # mono8, mono16, 8UC1, 16UC1: grey replicated.
        return cv2.cvtColor(img8, cv2.COLOR_GRAY2RGB)
    raise ValueError(f"image encoding '{encoding}' has no defined colour meaning; image_to_rgb8 supports "
                     f"rgb8/bgr8/rgba8/bgra8 (and 16-bit forms), mono8/mono16/8UC1/16UC1, bayer_*8/16, "
                     f"{'/'.join(_YUV422_CODES)}")


def depth_to_metres(msg: Any) -> np.ndarray:
    """Decode a depth ``sensor_msgs/Image`` as ``(H, W)`` float32 metres (a new array).

    REP-118: ``16UC1`` holds millimetres, ``32FC1`` metres. Invalid
    measurements become NaN: 0 (the "no return" value of both), NaN, +-inf
    (REP-118's "out of range"; no usable depth) and negative values.
    """
    encoding = str(msg.encoding)
    if encoding not in ("16UC1", "32FC1"):
        raise ValueError(f"depth image encoding must be 16UC1 (millimetres) or 32FC1 (metres) per REP-118, "
                         f"got '{encoding}'")
    img = image_to_numpy(msg)
    if encoding == "16UC1":
        depth = img.astype(np.float32) * np.float32(1e-3)
    else:
        depth = img.astype(np.float32, copy=True)
    with np.errstate(invalid="ignore"):
        depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
    return depth


def compressed_to_rgb8(msg: Any) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (jpeg or png) as ``(H, W, 3)`` uint8 RGB.

    Decoded with ``cv2.imdecode``; grey images are replicated to three
    channels and 16-bit PNGs reduced to 8 bits. ``compressedDepth`` (the
    depth transport, with its own header) is refused.
    """
    fmt = str(getattr(msg, "format", ""))
    if "compresseddepth" in fmt.lower():
        raise ValueError(f"CompressedImage format '{fmt}' is compressedDepth (depth transport), not a colour "
                         f"jpeg/png image")
    buf = _data_buffer(msg.data)
    if buf.size == 0:
        raise ValueError(f"CompressedImage (format '{fmt}') has no data")
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if decoded is None:
        raise ValueError(f"CompressedImage data ({buf.size} bytes) could not be decoded as jpeg or png "
                         f"(format field '{fmt}')")
    # image_transport writes "<encoding>; <fmt> compressed <target>". The target is bgr8 for colour
    # (the file holds true colours). A producer that encoded rgb8 bytes as if BGR says so with an
    # rgb target, and then OpenCV's "BGR" output is already RGB.
    target = fmt.split("compressed", 1)[1].strip().lower() if "compressed" in fmt else ""
    if target.startswith("rgb"):
        return decoded
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


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


# --------------------------------------------------------------------------
# Poses: messages -> 4x4
# --------------------------------------------------------------------------

def _xyz(v: Any) -> list[float]:
    return [float(v.x), float(v.y), float(v.z)]


def _xyzw(q: Any) -> list[float]:
    return [float(q.x), float(q.y), float(q.z), float(q.w)]


def pose_to_matrix(pose_msg: Any) -> np.ndarray:
    """4x4 from ``geometry_msgs/Pose`` (position + orientation in (x, y, z, w) order).

    The quaternion is normalised; NaN/inf or zero-norm ones raise
    ``ValueError`` (such a pose carries no rotation and must not become identity).
    """
    return make_pose(_xyz(pose_msg.position), quat_normalize(_xyzw(pose_msg.orientation), "pose orientation"))


def transform_to_matrix(transform_msg: Any) -> np.ndarray:
    """4x4 ``T_parent_child`` from ``geometry_msgs/Transform`` (translation + rotation (x, y, z, w))."""
    return make_pose(_xyz(transform_msg.translation),
                     quat_normalize(_xyzw(transform_msg.rotation), "transform rotation"))


def _normalise_msgtype(msgtype: str) -> str:
    # Accept ROS 1 style 'pkg/Type' as well as 'pkg/msg/Type'.
    parts = msgtype.split("/")
    return f"{parts[0]}/msg/{parts[1]}" if len(parts) == 2 else msgtype


def _pose_msgtype(msg: Any, msgtype: str | None) -> str:
    name = msgtype or getattr(type(msg), "__msgtype__", None)
    if name:
        name = _normalise_msgtype(str(name))
        if name not in POSE_MSGTYPES:
            raise ValueError(f"message type '{name}' carries no stamped pose; supported: {', '.join(POSE_MSGTYPES)}")
        return name
    # rclpy messages have no type-name attribute: recognise them by their fields.
    if hasattr(msg, "transform") and hasattr(msg, "child_frame_id"):
        return "geometry_msgs/msg/TransformStamped"
    pose = getattr(msg, "pose", None)
    if pose is not None and hasattr(msg, "twist") and hasattr(msg, "child_frame_id"):
        return "nav_msgs/msg/Odometry"
    if pose is not None and hasattr(pose, "covariance") and hasattr(pose, "pose"):
        return "geometry_msgs/msg/PoseWithCovarianceStamped"
    if pose is not None and hasattr(pose, "position") and hasattr(pose, "orientation"):
        return "geometry_msgs/msg/PoseStamped"
    raise ValueError(f"{type(msg).__name__} is not a stamped pose message; supported: {', '.join(POSE_MSGTYPES)}")


def stamped_pose_from_msg(msg: Any, msgtype: str | None = None) -> tuple[int, str, str, np.ndarray]:
    """``(stamp_ns, frame_id, child_frame_id, T_frame_child)`` of a stamped pose message.

    Supports :data:`POSE_MSGTYPES`. The type is taken from ``msgtype``, else
    the class' ``__msgtype__`` (rosbags), else recognised by attributes
    (rclpy). ``child_frame_id`` is ``''`` for PoseStamped and
    PoseWithCovarianceStamped, which do not name the body frame.
    """
    kind = _pose_msgtype(msg, msgtype)
    header = msg.header
    stamp_ns = stamp_to_ns(header.stamp)
    frame_id = str(header.frame_id)
    if kind == "geometry_msgs/msg/TransformStamped":
        return stamp_ns, frame_id, str(msg.child_frame_id), transform_to_matrix(msg.transform)
    if kind == "nav_msgs/msg/Odometry":
        return stamp_ns, frame_id, str(msg.child_frame_id), pose_to_matrix(msg.pose.pose)
    if kind == "geometry_msgs/msg/PoseWithCovarianceStamped":
        return stamp_ns, frame_id, "", pose_to_matrix(msg.pose.pose)
    return stamp_ns, frame_id, "", pose_to_matrix(msg.pose)


def pose_covariance_from_msg(msg: Any, msgtype: str | None = None) -> np.ndarray | None:
    """6x6 pose covariance of a PoseWithCovarianceStamped or Odometry; ``None`` for types without one."""
    kind = _pose_msgtype(msg, msgtype)
    if kind in ("nav_msgs/msg/Odometry", "geometry_msgs/msg/PoseWithCovarianceStamped"):
        return covariance_from_msg(msg.pose.covariance)
    return None
