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

"""Poses: 4x4 ``T_parent_child`` <-> Pose, PoseStamped, PoseWithCovarianceStamped, PoseArray, Odometry, TF.

Quaternions in messages are ``(x, y, z, w)``; covariances 6x6 row-major over
``(x, y, z, rotX, rotY, rotZ)`` (see :mod:`reloc_ros.geometry`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from reloc_ros.conversions.messages import float_seq, message_class
from reloc_ros.conversions.stamps import make_header, stamp_to_ns
from reloc_ros.geometry import covariance_from_msg, covariance_to_msg, is_rigid, make_pose, pose_to_tq

# The four message types that carry a stamped pose, as stamped_pose_from_msg reads them.
POSE_MSGTYPES: tuple[str, ...] = (
    "geometry_msgs/msg/PoseStamped",
    "geometry_msgs/msg/PoseWithCovarianceStamped",
    "nav_msgs/msg/Odometry",
    "geometry_msgs/msg/TransformStamped",
)

# Variance written where a message has a covariance we did not measure (e.g. the twist of an
# Odometry built from poses only). Zero would tell an EKF "perfectly known"; a huge diagonal is
# the usual way to say "ignore this" (robot_localization, Nav2 documentation).
UNKNOWN_VARIANCE = 1e6

# tf2 ignores a transform whose quaternion's squared norm is 1 +- this or further off
# (TF_DENORMALIZED_QUATERNION in tf2/src/buffer_core.cpp of ros2/geometry2, as in ROS 1:
# ``static double QUATERNION_NORMALIZATION_TOLERANCE = 10e-3;`` checked as
# ``std::abs(w * w + x * x + y * y + z * z - 1.0f) < QUATERNION_NORMALIZATION_TOLERANCE``).
# Quaternions within it are normalised; the rest are refused, as tf2 does.
QUATERNION_NORMALIZATION_TOLERANCE = 10e-3

# Why a pose or transform sample is unusable (InvalidPose.reason), as readers count them.
BAD_NON_FINITE = "NaN or inf"
BAD_ZERO_QUATERNION = "zero quaternion"
BAD_NON_UNIT_QUATERNION = "non-unit quaternion"
_ZERO_NORM2 = 1e-18  # squared norm below which a quaternion is all zeros (an uninitialised message)


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

def _make_pose_fields(types: Mapping[str, Any], T_44: np.ndarray, what: str) -> tuple[Any, Any]:
    """(position-like xyz, Quaternion) of a 4x4 pose; position class chosen by the caller."""
    t, q = pose_to_tq(_check_pose_matrix(T_44, what))
    quat = message_class(types, "geometry_msgs/msg/Quaternion")(x=float(q[0]), y=float(q[1]), z=float(q[2]),
                                                                w=float(q[3]))
    return t, quat


def _make_pose(types: Mapping[str, Any], T_44: np.ndarray) -> Any:
    t, quat = _make_pose_fields(types, T_44, "pose")
    point = message_class(types, "geometry_msgs/msg/Point")(x=float(t[0]), y=float(t[1]), z=float(t[2]))
    return message_class(types, "geometry_msgs/msg/Pose")(position=point, orientation=quat)


def _make_pose_with_covariance(types: Mapping[str, Any], T_44: np.ndarray, cov_66: np.ndarray) -> Any:
    cls = message_class(types, "geometry_msgs/msg/PoseWithCovariance")
    # covariance_to_msg validates: finite, symmetric, positive definite.
    return cls(pose=_make_pose(types, T_44), covariance=float_seq(cls, covariance_to_msg(cov_66)))


def make_transform_stamped(types: Mapping[str, Any], T_44: np.ndarray, stamp_ns: int, parent_frame: str,
                           child_frame: str) -> Any:
    """``geometry_msgs/msg/TransformStamped`` of ``T_parent_child`` (TF's ``parent -> child``)."""
    t, quat = _make_pose_fields(types, T_44, f"transform {parent_frame} -> {child_frame}")
    vec = message_class(types, "geometry_msgs/msg/Vector3")(x=float(t[0]), y=float(t[1]), z=float(t[2]))
    transform = message_class(types, "geometry_msgs/msg/Transform")(translation=vec, rotation=quat)
    return message_class(types, "geometry_msgs/msg/TransformStamped")(
        header=make_header(types, stamp_ns, parent_frame), child_frame_id=str(child_frame), transform=transform)


def make_tf_message(types: Mapping[str, Any], transforms: Sequence[Any]) -> Any:
    """``tf2_msgs/msg/TFMessage`` (what ``/tf`` and ``/tf_static`` carry) of TransformStamped messages."""
    return message_class(types, "tf2_msgs/msg/TFMessage")(transforms=list(transforms))


def make_pose_stamped(types: Mapping[str, Any], T_44: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
    """``geometry_msgs/msg/PoseStamped``: pose ``T_frame_body`` expressed in ``frame_id``."""
    return message_class(types, "geometry_msgs/msg/PoseStamped")(header=make_header(types, stamp_ns, frame_id),
                                                                 pose=_make_pose(types, T_44))


def make_pose_with_covariance_stamped(types: Mapping[str, Any], T_44: np.ndarray, cov_66: np.ndarray,
                                      stamp_ns: int, frame_id: str) -> Any:
    """``geometry_msgs/msg/PoseWithCovarianceStamped`` (e.g. ``/initialpose``, a relocalizer's output).

    ``cov_66`` must be finite, symmetric and positive definite: zeros would
    read as "perfectly known" to an EKF.
    """
    return message_class(types, "geometry_msgs/msg/PoseWithCovarianceStamped")(
        header=make_header(types, stamp_ns, frame_id), pose=_make_pose_with_covariance(types, T_44, cov_66))


def make_pose_array(types: Mapping[str, Any], poses_k44: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
    """``geometry_msgs/msg/PoseArray`` of ``K`` poses in ``frame_id`` (hypotheses, for RViz); ``K`` may be 0."""
    poses = np.asarray(poses_k44, dtype=np.float64).reshape(-1, 4, 4)
    msgs = []
    if len(poses):
        # One check and one quaternion conversion for all poses: this runs for every published frame.
        t_k3, q_k4 = pose_to_tq(_check_pose_matrix(poses, "pose array"))
        point, quat, pose = (message_class(types, f"geometry_msgs/msg/{n}") for n in ("Point", "Quaternion", "Pose"))
        msgs = [pose(position=point(x=float(t[0]), y=float(t[1]), z=float(t[2])),
                     orientation=quat(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])))
                for t, q in zip(t_k3.tolist(), q_k4.tolist())]
    return message_class(types, "geometry_msgs/msg/PoseArray")(header=make_header(types, stamp_ns, frame_id),
                                                               poses=msgs)


def make_odometry(types: Mapping[str, Any], T_44: np.ndarray, stamp_ns: int, frame_id: str, child_frame_id: str,
                  cov_66: np.ndarray | None = None) -> Any:
    """``nav_msgs/msg/Odometry`` with pose ``T_frame_child`` and a zero twist.

    ``cov_66=None`` writes :data:`UNKNOWN_VARIANCE` on the pose diagonal
    ("not measured"), never zeros. The twist is not estimated here, so it is
    zero with :data:`UNKNOWN_VARIANCE` on its diagonal.
    """
    unknown_66 = np.eye(6) * UNKNOWN_VARIANCE
    pose_cov = unknown_66 if cov_66 is None else cov_66
    zero = message_class(types, "geometry_msgs/msg/Vector3")
    twist = message_class(types, "geometry_msgs/msg/Twist")(linear=zero(x=0.0, y=0.0, z=0.0),
                                                            angular=zero(x=0.0, y=0.0, z=0.0))
    twist_cls = message_class(types, "geometry_msgs/msg/TwistWithCovariance")
    twist_wc = twist_cls(twist=twist, covariance=float_seq(twist_cls, unknown_66))
    return message_class(types, "nav_msgs/msg/Odometry")(
        header=make_header(types, stamp_ns, frame_id), child_frame_id=str(child_frame_id),
        pose=_make_pose_with_covariance(types, T_44, pose_cov), twist=twist_wc)


# --------------------------------------------------------------------------
# Poses: messages -> 4x4
# --------------------------------------------------------------------------

def _xyz(v: Any) -> list[float]:
    return [float(v.x), float(v.y), float(v.z)]


def _xyzw(q: Any) -> list[float]:
    return [float(q.x), float(q.y), float(q.z), float(q.w)]


class InvalidPose(ValueError):
    """A pose or transform with NaN/inf, a zero or a non-unit quaternion; ``reason`` says which (one of BAD_*)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def pose_sample_problems(t_n3: np.ndarray, q_n4: np.ndarray) -> list[str | None]:
    """Per sample (translation, quaternion (x, y, z, w)): why tf2 would ignore it (a BAD_* reason), or None.

    The vectorised form of the checks of :func:`unit_quaternion`, for the
    thousands of transforms of a bag.
    """
    t = np.asarray(t_n3, dtype=np.float64).reshape(-1, 3)
    q = np.asarray(q_n4, dtype=np.float64).reshape(-1, 4)
    finite = np.isfinite(t).all(1) & np.isfinite(q).all(1)
    with np.errstate(invalid="ignore", over="ignore"):
        norm2 = np.where(finite, (q * q).sum(1), 1.0)
    out: list[str | None] = [None] * len(q)
    for i in np.flatnonzero(~finite | (np.abs(norm2 - 1.0) >= QUATERNION_NORMALIZATION_TOLERANCE)):
        out[i] = (BAD_NON_FINITE if not finite[i] else
                  BAD_ZERO_QUATERNION if norm2[i] < _ZERO_NORM2 else BAD_NON_UNIT_QUATERNION)
    return out


def unit_quaternion(q_xyzw: Any, what: str = "quaternion") -> np.ndarray:
    """Return the quaternion ``(x, y, z, w)`` normalised, if tf2 would accept it; :class:`InvalidPose` otherwise.

    tf2 accepts ``|x^2 + y^2 + z^2 + w^2 - 1| < QUATERNION_NORMALIZATION_TOLERANCE``
    (0.01); NaN/inf, all-zero (an uninitialised message, never a silent
    identity) and other non-unit quaternions are refused with the value.
    """
    q = np.asarray(q_xyzw, dtype=np.float64)
    if q.shape != (4,):
        raise ValueError(f"{what} must have 4 components (x, y, z, w), got shape {q.shape}")
    if not np.all(np.isfinite(q)):
        raise InvalidPose(f"{what} contains NaN or inf: {q.tolist()}", BAD_NON_FINITE)
    norm2 = float(q @ q)
    if norm2 < _ZERO_NORM2:
        raise InvalidPose(f"{what} has zero norm (valid: a unit quaternion (x, y, z, w)): {q.tolist()}",
                          BAD_ZERO_QUATERNION)
    if abs(norm2 - 1.0) >= QUATERNION_NORMALIZATION_TOLERANCE:
        raise InvalidPose(f"{what} {q.tolist()} is not a unit quaternion: x^2 + y^2 + z^2 + w^2 = {norm2:.6g}; "
                          f"tf2 accepts 1 +- {QUATERNION_NORMALIZATION_TOLERANCE:g} (TF_DENORMALIZED_QUATERNION)",
                          BAD_NON_UNIT_QUATERNION)
    return q / np.sqrt(norm2)


def _finite_xyz(v: Any, what: str) -> list[float]:
    xyz = _xyz(v)
    if not np.all(np.isfinite(xyz)):
        raise InvalidPose(f"{what} contains NaN or inf: {xyz}", BAD_NON_FINITE)
    return xyz


def pose_to_matrix(pose_msg: Any) -> np.ndarray:
    """4x4 from ``geometry_msgs/Pose`` (position + orientation in (x, y, z, w) order).

    The quaternion is normalised if tf2 would accept it (:func:`unit_quaternion`);
    NaN/inf, zero-norm and other non-unit ones raise :class:`InvalidPose` (a
    ``ValueError``): such a pose carries no rotation and must not become identity.
    """
    return make_pose(_finite_xyz(pose_msg.position, "pose position"),
                     unit_quaternion(_xyzw(pose_msg.orientation), "pose orientation"))


def transform_to_matrix(transform_msg: Any) -> np.ndarray:
    """4x4 ``T_parent_child`` from ``geometry_msgs/Transform`` (translation + rotation (x, y, z, w)).

    The rotation is checked as in :func:`pose_to_matrix` (tf2's rule).
    """
    return make_pose(_finite_xyz(transform_msg.translation, "transform translation"),
                     unit_quaternion(_xyzw(transform_msg.rotation), "transform rotation"))


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
