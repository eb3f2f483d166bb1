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

"""SE(3) geometry in ROS conventions (REP-103), with no ROS dependency.

Conventions used everywhere in reloc_ros:

* Quaternions are ``(x, y, z, w)``, the order of ``geometry_msgs/Quaternion``
  and of ``scipy.spatial.transform.Rotation``. Papers and much PyTorch code use
  ``(w, x, y, z)``; :func:`quat_xyzw_to_wxyz` / :func:`quat_wxyz_to_xyzw` are the
  one boundary between the two.
* A pose is a 4x4 homogeneous matrix ``T_a_b`` that maps points from frame
  ``b`` into frame ``a`` (so ``T_map_cam`` is the camera pose in the map frame,
  the transform TF calls ``map -> cam``). ``T_a_c = T_a_b @ T_b_c``.
* Covariances are 6x6 over ``(x, y, z, rotX, rotY, rotZ)``, row-major when
  flattened, exactly as ``geometry_msgs/PoseWithCovariance.covariance``.

Functions accept single items or leading batch dimensions where noted
(``q_n4``, ``T_n44``).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

_EPS_NORM = 1e-9


# --------------------------------------------------------------------------
# Quaternions
# --------------------------------------------------------------------------

def quat_xyzw_to_wxyz(q_xyzw: np.ndarray) -> np.ndarray:
    """ROS order (x, y, z, w) -> scalar-first (w, x, y, z). Works on (..., 4)."""
    q = np.asarray(q_xyzw)
    return np.concatenate([q[..., 3:4], q[..., 0:3]], axis=-1)


def quat_wxyz_to_xyzw(q_wxyz: np.ndarray) -> np.ndarray:
    """Scalar-first (w, x, y, z) -> ROS order (x, y, z, w). Works on (..., 4)."""
    q = np.asarray(q_wxyz)
    return np.concatenate([q[..., 1:4], q[..., 0:1]], axis=-1)


def quat_normalize(q_xyzw: np.ndarray, what: str = "quaternion") -> np.ndarray:
    """Unit-normalise quaternions (..., 4).

    Raises ``ValueError`` for NaN/inf or (near) zero-norm input: such a
    quaternion carries no rotation and must never become a silent identity.
    """
    q = np.asarray(q_xyzw, dtype=np.float64)
    if q.shape[-1] != 4:
        raise ValueError(f"{what} must have 4 components (x, y, z, w), got shape {q.shape}")
    if not np.all(np.isfinite(q)):
        raise ValueError(f"{what} contains NaN or inf: {q.tolist()}")
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(norm < _EPS_NORM):
        raise ValueError(f"{what} has zero norm (valid quaternions have norm > 0): {q.tolist()}")
    return q / norm


def quat_canonical(q_xyzw: np.ndarray) -> np.ndarray:
    """Pick the hemisphere with w >= 0 (q and -q are the same rotation).

    Regression targets need one representative per rotation. For w == 0 the
    first non-zero of (x, y, z) is made positive so the choice is unique.
    """
    q = np.array(q_xyzw, dtype=np.float64, copy=True)
    flat = q.reshape(-1, 4)
    for row in flat:
        # Order of tie-breakers: w, then x, y, z.
        for idx in (3, 0, 1, 2):
            if abs(row[idx]) > 1e-12:
                if row[idx] < 0:
                    row *= -1.0
                break
    return flat.reshape(q.shape)


def quat_to_matrix(q_xyzw: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) from quaternions (..., 4), normalising them."""
    q = quat_normalize(q_xyzw)
    # The closed form in numpy: several times cheaper than a SciPy Rotation for the few poses of a frame.
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    R = np.empty(q.shape[:-1] + (3, 3))
    R[..., 0, 0] = 1 - 2 * (y * y + z * z)
    R[..., 0, 1] = 2 * (x * y - z * w)
    R[..., 0, 2] = 2 * (x * z + y * w)
    R[..., 1, 0] = 2 * (x * y + z * w)
    R[..., 1, 1] = 1 - 2 * (x * x + z * z)
    R[..., 1, 2] = 2 * (y * z - x * w)
    R[..., 2, 0] = 2 * (x * z - y * w)
    R[..., 2, 1] = 2 * (y * z + x * w)
    R[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return R


def matrix_to_quat(R_33: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) in ROS order, canonical hemisphere, from (..., 3, 3)."""
    R = np.asarray(R_33, dtype=np.float64)
    q = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_quat()
    return quat_canonical(q).reshape(R.shape[:-2] + (4,))


def quat_multiply(q1_xyzw: np.ndarray, q2_xyzw: np.ndarray) -> np.ndarray:
    """Hamilton product q1 * q2 (rotation q2 applied first), ROS order."""
    x1, y1, z1, w1 = np.moveaxis(np.asarray(q1_xyzw, dtype=np.float64), -1, 0)
    x2, y2, z2, w2 = np.moveaxis(np.asarray(q2_xyzw, dtype=np.float64), -1, 0)
    return np.stack([
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
    ], axis=-1)


def slerp(q0_xyzw: np.ndarray, q1_xyzw: np.ndarray, alpha: float | np.ndarray) -> np.ndarray:
    """Spherical linear interpolation, alpha in [0, 1], along the shorter arc."""
    q0 = quat_normalize(q0_xyzw)
    q1 = quat_normalize(q1_xyzw)
    alpha = np.asarray(alpha, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)  # shorter arc
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_theta = np.sin(theta)
    small = sin_theta < 1e-6
    # Near-identical rotations: linear interpolation is exact to first order.
    w0 = np.where(small, 1.0 - alpha, np.sin((1.0 - alpha) * theta) / np.where(small, 1.0, sin_theta))
    w1 = np.where(small, alpha, np.sin(alpha * theta) / np.where(small, 1.0, sin_theta))
    return quat_normalize(w0 * q0 + w1 * q1)


# --------------------------------------------------------------------------
# SE(3) as 4x4 matrices
# --------------------------------------------------------------------------

def make_pose(t_3: np.ndarray, q_xyzw: np.ndarray) -> np.ndarray:
    """4x4 (or (..., 4, 4)) pose from translation (..., 3) and quaternion (..., 4)."""
    t = np.asarray(t_3, dtype=np.float64)
    if t.shape[-1] != 3:
        raise ValueError(f"translation must have 3 components, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"translation contains NaN or inf: {t.tolist()}")
    R = quat_to_matrix(q_xyzw)
    T = np.zeros(R.shape[:-2] + (4, 4))
    T[..., :3, :3] = R
    T[..., :3, 3] = t
    T[..., 3, 3] = 1.0
    return T


def pose_to_tq(T_44: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split (..., 4, 4) into translation (..., 3) and canonical quaternion (..., 4)."""
    T = np.asarray(T_44, dtype=np.float64)
    return T[..., :3, 3].copy(), matrix_to_quat(T[..., :3, :3])


def invert_pose(T_44: np.ndarray) -> np.ndarray:
    """Inverse of rigid transforms (..., 4, 4) using R^T (exact for rotations)."""
    T = np.asarray(T_44, dtype=np.float64)
    R_t = np.swapaxes(T[..., :3, :3], -1, -2)
    out = np.zeros_like(T)
    out[..., :3, :3] = R_t
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", R_t, T[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def compose(*poses: np.ndarray) -> np.ndarray:
    """Chain transforms left to right: T_a_b then T_b_c gives T_a_c."""
    if not poses:
        raise ValueError("compose needs at least one pose")
    out = np.asarray(poses[0], dtype=np.float64)
    for T in poses[1:]:
        out = out @ np.asarray(T, dtype=np.float64)
    return out


def interpolate_pose(T0_44: np.ndarray, T1_44: np.ndarray, alpha: float) -> np.ndarray:
    """Pose between T0 (alpha=0) and T1 (alpha=1): lerp on translation, slerp on rotation.

    This is what tf2 does between two samples of a transform.
    """
    t0, q0 = pose_to_tq(T0_44)
    t1, q1 = pose_to_tq(T1_44)
    return make_pose((1.0 - alpha) * t0 + alpha * t1, slerp(q0, q1, alpha))


def is_rigid(T_44: np.ndarray, tol: float = 1e-5) -> bool:
    """Tell whether T is a finite rigid transform (orthonormal R, det +1, last row 0 0 0 1)."""
    T = np.asarray(T_44, dtype=np.float64)
    if T.shape[-2:] != (4, 4) or not np.all(np.isfinite(T)):
        return False
    R = T[..., :3, :3]
    # Plain max-abs tests: np.allclose costs ~10x more, and this runs on every published pose.
    ok_r = np.abs(np.swapaxes(R, -1, -2) @ R - np.eye(3)).max(initial=0.0) <= tol
    ok_det = np.abs(np.linalg.det(R) - 1.0).max(initial=0.0) <= tol
    ok_row = np.abs(T[..., 3, :] - np.array([0.0, 0.0, 0.0, 1.0])).max(initial=0.0) <= tol
    return bool(ok_r and ok_det and ok_row)


# --------------------------------------------------------------------------
# Errors between poses
# --------------------------------------------------------------------------

def translation_error(T_est_44: np.ndarray, T_gt_44: np.ndarray) -> np.ndarray:
    """Euclidean distance (m) between the positions of two poses (...,)."""
    d = np.asarray(T_est_44)[..., :3, 3] - np.asarray(T_gt_44)[..., :3, 3]
    return np.linalg.norm(d, axis=-1)


def rotation_error_deg(T_est_44: np.ndarray, T_gt_44: np.ndarray) -> np.ndarray:
    """Angle (deg) of the relative rotation R_est^T R_gt, in [0, 180] (...,)."""
    R_a = np.asarray(T_est_44, dtype=np.float64)[..., :3, :3]
    R_b = np.asarray(T_gt_44, dtype=np.float64)[..., :3, :3]
    R_rel = np.swapaxes(R_a, -1, -2) @ R_b
    cos = (np.trace(R_rel, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def quat_angle_deg(q_a_xyzw: np.ndarray, q_b_xyzw: np.ndarray) -> np.ndarray:
    """Angle (deg) between two rotations given as quaternions, sign-invariant."""
    qa = quat_normalize(q_a_xyzw)
    qb = quat_normalize(q_b_xyzw)
    dot = np.abs(np.sum(qa * qb, axis=-1))
    return np.degrees(2.0 * np.arccos(np.clip(dot, -1.0, 1.0)))


# --------------------------------------------------------------------------
# 6x6 covariance in the ROS layout (x, y, z, rotX, rotY, rotZ)
# --------------------------------------------------------------------------

def covariance_from_std(sigma_xyz_m: np.ndarray | float, sigma_rot_rad: np.ndarray | float) -> np.ndarray:
    """Diagonal 6x6 covariance from position (m) and rotation (rad) standard deviations."""
    s_t = np.broadcast_to(np.asarray(sigma_xyz_m, dtype=np.float64), (3,))
    s_r = np.broadcast_to(np.asarray(sigma_rot_rad, dtype=np.float64), (3,))
    sig = np.concatenate([s_t, s_r])
    if not np.all(np.isfinite(sig)) or np.any(sig <= 0):
        raise ValueError(
            f"standard deviations must be finite and > 0 (a zero means 'perfectly known' "
            f"to an EKF), got position {s_t.tolist()} m, rotation {s_r.tolist()} rad")
    return np.diag(sig ** 2)


def covariance_to_msg(cov_66: np.ndarray) -> list[float]:
    """Flatten a 6x6 covariance row-major into the 36 floats of a ROS message."""
    cov = validate_covariance(cov_66)
    return [float(v) for v in cov.reshape(36)]


def covariance_from_msg(values: list[float] | np.ndarray) -> np.ndarray:
    """6x6 covariance from the 36 row-major floats of a ROS message."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size != 36:
        raise ValueError(f"a pose covariance has 36 values (6x6 row-major), got {arr.size}")
    return arr.reshape(6, 6)


def validate_covariance(cov_66: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Check a 6x6 covariance is finite, symmetric and positive definite; return it."""
    cov = np.asarray(cov_66, dtype=np.float64)
    if cov.shape != (6, 6):
        raise ValueError(f"covariance must be 6x6 over (x, y, z, rotX, rotY, rotZ), got shape {cov.shape}")
    if not np.all(np.isfinite(cov)):
        raise ValueError("covariance contains NaN or inf")
    if not np.allclose(cov, cov.T, atol=tol * max(1.0, float(np.abs(cov).max()))):
        raise ValueError("covariance is not symmetric")
    eig = np.linalg.eigvalsh(cov)
    if eig.min() <= 0:
        raise ValueError(
            f"covariance is not positive definite (smallest eigenvalue {eig.min():.3g}); "
            "an EKF reads zero variance as 'perfectly known'")
    return cov


def rotate_covariance(cov_66: np.ndarray, R_33: np.ndarray) -> np.ndarray:
    """Express a pose covariance in a frame rotated by R (new = R @ old), block-wise.

    Position and rotation-vector perturbations both rotate with R, so the
    6x6 Jacobian is blockdiag(R, R).
    """
    J = np.zeros((6, 6))
    J[:3, :3] = R_33
    J[3:, 3:] = R_33
    return J @ np.asarray(cov_66, dtype=np.float64) @ J.T
