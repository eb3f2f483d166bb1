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

"""TF math for a relocalizer: camera pose -> base_link pose -> map->odom, with covariance.

Conventions (see :mod:`reloc_ros.geometry`): poses are 4x4 ``T_parent_child``;
6x6 covariances are over ``(x, y, z, rotX, rotY, rotZ)`` as in
``geometry_msgs/PoseWithCovariance``, with the rotation part a small rotation
about the fixed axes of the parent frame (left perturbation)::

    R' = exp([dtheta]x) R,    p' = p + dp

:func:`pose_difference` uses the same convention, so a difference and a
covariance can be compared directly (Mahalanobis distance).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.transform import Rotation

from reloc_ros.geometry import compose, invert_pose, is_rigid

#: (x, y, yaw) inside a 6-vector / 6x6 covariance over (x, y, z, rotX, rotY, rotZ).
PLANAR_INDICES: tuple[int, int, int] = (0, 1, 5)

# Relative tolerance on symmetry / negative eigenvalues of an input covariance:
# covariances that went through float32 or a message round trip are not exactly
# symmetric or PSD.
_COV_TOL = 1e-9


def skew(v_3: np.ndarray) -> np.ndarray:
    """Cross-product matrix [v]x of a 3-vector: ``[a]x b`` equals ``np.cross(a, b)``."""
    x, y, z = np.asarray(v_3, dtype=np.float64).reshape(3)
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def check_pose(T_44: np.ndarray, name: str = "pose") -> np.ndarray:
    """Return ``T_44`` as a float64 4x4 array; ``ValueError`` unless it is a finite rigid transform."""
    T = np.asarray(T_44, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"{name} must be a 4x4 homogeneous transform, got shape {T.shape}")
    if not is_rigid(T):
        raise ValueError(
            f"{name} is not a finite rigid transform (orthonormal rotation with det +1, "
            f"last row 0 0 0 1): {np.array2string(T, precision=4)}")
    return T


def check_covariance(cov_66: np.ndarray, name: str = "covariance", tol: float = _COV_TOL) -> np.ndarray:
    """Return ``cov_66`` as float64 6x6; ``ValueError`` unless finite, symmetric and PSD within ``tol``.

    Unlike :func:`reloc_ros.geometry.validate_covariance` (for what we
    *publish*, which must be positive definite), inputs may be singular: a
    pure-rotation or planar covariance is a legitimate thing to propagate.
    """
    cov = np.asarray(cov_66, dtype=np.float64)
    if cov.shape != (6, 6):
        raise ValueError(f"{name} must be 6x6 over (x, y, z, rotX, rotY, rotZ), got shape {cov.shape}")
    if not np.all(np.isfinite(cov)):
        raise ValueError(f"{name} contains NaN or inf")
    scale = max(1.0, float(np.abs(cov).max()))
    asym = float(np.abs(cov - cov.T).max())
    if asym > tol * scale:
        raise ValueError(f"{name} is not symmetric (largest |C - C^T| = {asym:.3g})")
    eig_min = float(np.linalg.eigvalsh(0.5 * (cov + cov.T)).min())
    if eig_min < -tol * scale:
        raise ValueError(
            f"{name} is not positive semi-definite (smallest eigenvalue {eig_min:.3g}, "
            "a covariance has eigenvalues >= 0)")
    return cov


def base_pose_from_camera(T_map_cam: np.ndarray, cov_cam_66: np.ndarray,
                          T_base_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """map->base_link pose and covariance from a map->camera estimate and the base->camera extrinsics.

    ``T_map_base = T_map_cam @ inv(T_base_cam)``. The covariance is propagated to
    first order: the base position is ``p_cam + R_map_cam @ t_cam_base``, so a
    small rotation ``dtheta`` of the camera swings the base around the camera by
    ``dtheta x r`` with ``r = R_map_cam @ t_cam_base`` (lever arm, map frame),
    while the rotation perturbation passes unchanged::

        J = [[I, -[r]x],
             [0,  I   ]],   cov_base = J cov_cam J^T

    This is why a camera mounted far from base_link turns small heading
    uncertainty into large position uncertainty of the robot.
    """
    T_mc = check_pose(T_map_cam, "T_map_cam")
    T_bc = check_pose(T_base_cam, "T_base_cam")
    cov = check_covariance(cov_cam_66, "cov_cam_66")
    T_cam_base = invert_pose(T_bc)
    T_map_base = compose(T_mc, T_cam_base)
    r_3 = T_mc[:3, :3] @ T_cam_base[:3, 3]
    J_66 = np.eye(6)
    J_66[:3, 3:] = -skew(r_3)
    cov_base = J_66 @ cov @ J_66.T
    return T_map_base, 0.5 * (cov_base + cov_base.T)


def map_to_odom(T_map_base: np.ndarray, T_odom_base: np.ndarray) -> np.ndarray:
    """map->odom such that map->odom->base_link gives ``T_map_base`` (REP-105).

    A relocalizer never gives base_link a second parent: it publishes the
    correction map->odom, computed with odom->base_link looked up at the image
    stamp.
    """
    T_mb = check_pose(T_map_base, "T_map_base")
    T_ob = check_pose(T_odom_base, "T_odom_base")
    return compose(T_mb, invert_pose(T_ob))


def pose_difference(T_a: np.ndarray, T_b: np.ndarray) -> np.ndarray:
    """6-vector ``[p_a - p_b, rotvec(R_a R_b^T)]`` in the parent frame.

    The left-perturbation convention of the covariances: if ``T_a`` is ``T_b``
    perturbed by ``(dp, dtheta)``, the difference is ``(dp, dtheta)``.
    """
    A = check_pose(T_a, "T_a")
    B = check_pose(T_b, "T_b")
    d_6 = np.empty(6)
    d_6[:3] = A[:3, 3] - B[:3, 3]
    d_6[3:] = Rotation.from_matrix(A[:3, :3] @ B[:3, :3].T).as_rotvec()
    return d_6


def yaw_of(T_44: np.ndarray) -> float:
    """Heading (rad, in (-pi, pi]) of a pose about the parent's z axis: where its x axis points."""
    T = np.asarray(T_44, dtype=np.float64)
    return math.atan2(T[1, 0], T[0, 0])


def wrap_angle(a_rad: float) -> float:
    """Wrap an angle into [-pi, pi)."""
    return (a_rad + math.pi) % (2.0 * math.pi) - math.pi


def planar_difference(T_a: np.ndarray, T_b: np.ndarray) -> np.ndarray:
    """``(dx, dy, dyaw)`` of ``T_a`` relative to ``T_b`` in the parent frame, dyaw wrapped to [-pi, pi).

    What a ground robot's 2-D localizer (AMCL) can be compared on: z, roll
    and pitch are ignored, and 179 deg vs -179 deg is a 2 deg difference.
    """
    A = check_pose(T_a, "T_a")
    B = check_pose(T_b, "T_b")
    return np.array([A[0, 3] - B[0, 3], A[1, 3] - B[1, 3], wrap_angle(yaw_of(A) - yaw_of(B))])


def planar_indices() -> tuple[int, int, int]:
    """Return the indices of (x, y, yaw) in a 6-vector / 6x6 covariance over (x, y, z, rotX, rotY, rotZ)."""
    return PLANAR_INDICES


def select_planar(x: np.ndarray) -> np.ndarray:
    """(x, y, yaw) part of a 6-vector (-> 3) or of a 6x6 covariance (-> 3x3)."""
    a = np.asarray(x, dtype=np.float64)
    idx = list(PLANAR_INDICES)
    if a.shape == (6,):
        return a[idx].copy()
    if a.shape == (6, 6):
        return a[np.ix_(idx, idx)].copy()
    raise ValueError(f"expected a 6-vector or a 6x6 covariance over (x, y, z, rotX, rotY, rotZ), got shape {a.shape}")
