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

"""TF math: camera -> base_link pose and covariance, map->odom (REP-105), pose differences."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from reloc_ros.geometry import compose, covariance_from_std, invert_pose, make_pose
from reloc_ros.runtime import tf_math as tm

OPTICAL_Q = [-0.5, 0.5, -0.5, 0.5]  # camera_link -> camera_optical_frame (REP-103)


def yaw_quat(deg):
    a = np.radians(deg) / 2
    return np.array([0.0, 0.0, np.sin(a), np.cos(a)])


def rpy_pose(t, roll=0.0, pitch=0.0, yaw=0.0):
    q = Rotation.from_euler("xyz", [roll, pitch, yaw], degrees=True).as_quat()
    return make_pose(t, q)


# A camera mounted 0.3 m forward, 0.1 m left and 0.8 m up on the robot, optical frame.
T_BASE_CAM = make_pose([0.3, 0.1, 0.8], OPTICAL_Q)


def test_base_pose_round_trip_gives_camera_pose_back():
    T_map_base_true = rpy_pose([4.0, -2.0, 0.1], 2.0, -3.0, 130.0)
    T_map_cam = compose(T_map_base_true, T_BASE_CAM)
    T_map_base, cov = tm.base_pose_from_camera(T_map_cam, covariance_from_std(0.1, 0.05), T_BASE_CAM)
    assert np.allclose(T_map_base, T_map_base_true, atol=1e-12)
    assert np.allclose(compose(T_map_base, T_BASE_CAM), T_map_cam, atol=1e-12)
    assert cov.shape == (6, 6) and np.allclose(cov, cov.T)


def test_covariance_propagation_matches_monte_carlo():
    rng = np.random.default_rng(0)
    T_map_cam = compose(rpy_pose([1.0, 2.0, 0.0], 0, 0, 60.0), T_BASE_CAM)
    # A full (correlated) covariance with small rotations, where first order holds.
    A = rng.normal(size=(6, 6)) * np.array([0.05, 0.05, 0.05, 0.02, 0.02, 0.02])[:, None]
    cov_cam = A @ A.T + np.diag([0.01, 0.02, 0.005, 0.03, 0.02, 0.04]) ** 2
    T_map_base, cov_formula = tm.base_pose_from_camera(T_map_cam, cov_cam, T_BASE_CAM)

    n = 20000
    d_n6 = rng.multivariate_normal(np.zeros(6), cov_cam, size=n)
    R_n33 = Rotation.from_rotvec(d_n6[:, 3:]).as_matrix() @ T_map_cam[:3, :3]  # left perturbation
    T_cams = np.tile(np.eye(4), (n, 1, 1))
    T_cams[:, :3, :3] = R_n33
    T_cams[:, :3, 3] = T_map_cam[:3, 3] + d_n6[:, :3]
    T_bases = T_cams @ invert_pose(T_BASE_CAM)
    diffs = np.stack([tm.pose_difference(T, T_map_base) for T in T_bases[:200]])
    # pose_difference is the convention; check it on a subset, vectorise for the rest.
    dp = T_bases[:, :3, 3] - T_map_base[:3, 3]
    dth = Rotation.from_matrix(T_bases[:, :3, :3] @ T_map_base[:3, :3].T).as_rotvec()
    d_base = np.concatenate([dp, dth], axis=1)
    assert np.allclose(diffs, d_base[:200])
    cov_mc = np.cov(d_base.T)
    # Compare in units of the standard deviations (a correlation-style error).
    s = np.sqrt(np.diag(cov_formula))
    rel = np.abs(cov_mc - cov_formula) / np.outer(s, s)
    assert rel.max() < 0.05, rel.max()
    # ... and the test can tell: copying the camera covariance (no lever arm) is far off.
    rel_naive = np.abs(cov_mc - cov_cam) / np.outer(s, s)
    assert rel_naive.max() > 0.3, rel_naive.max()


def test_heading_uncertainty_becomes_lateral_position_uncertainty_through_the_lever_arm():
    # Camera 1 m in front of base_link; only yaw is uncertain (sigma 0.05 rad).
    T_base_cam = make_pose([1.0, 0.0, 0.0], OPTICAL_Q)
    sigma_yaw = 0.05
    cov_cam = np.zeros((6, 6))
    cov_cam[5, 5] = sigma_yaw ** 2
    for yaw in (0.0, 90.0):
        T_map_base_true = rpy_pose([3.0, 1.0, 0.0], 0, 0, yaw)
        _, cov = tm.base_pose_from_camera(compose(T_map_base_true, T_base_cam), cov_cam, T_base_cam)
        lateral = T_map_base_true[:3, 1]  # base_link's y axis in the map
        forward = T_map_base_true[:3, 0]
        assert lateral @ cov[:3, :3] @ lateral == pytest.approx((1.0 * sigma_yaw) ** 2, rel=1e-9)
        assert forward @ cov[:3, :3] @ forward == pytest.approx(0.0, abs=1e-15)
        assert cov[5, 5] == pytest.approx(sigma_yaw ** 2)
        # Position and yaw are correlated: the base swings as the heading errs.
        assert abs(lateral @ cov[:3, 5]) == pytest.approx(sigma_yaw ** 2)


def test_camera_at_base_link_keeps_covariance():
    cov = covariance_from_std([0.1, 0.2, 0.3], [0.01, 0.02, 0.03])
    T_base_cam = make_pose([0, 0, 0], OPTICAL_Q)
    _, out = tm.base_pose_from_camera(rpy_pose([1, 2, 3], 5, 6, 7), cov, T_base_cam)
    assert np.allclose(out, cov)


def test_map_to_odom_composes_to_the_estimate():
    T_map_base = rpy_pose([5.0, 3.0, 0.0], 0, 0, 75.0)
    T_odom_base = rpy_pose([1.2, -0.4, 0.0], 0, 0, -20.0)
    T_map_odom = tm.map_to_odom(T_map_base, T_odom_base)
    assert np.allclose(compose(T_map_odom, T_odom_base), T_map_base, atol=1e-12)
    assert np.allclose(tm.map_to_odom(T_map_base, np.eye(4)), T_map_base)


def test_pose_difference_is_the_left_perturbation():
    T_b = rpy_pose([1.0, 2.0, 3.0], 10, 20, 30)
    dp, dth = np.array([0.1, -0.2, 0.3]), np.array([0.05, -0.1, 0.2])
    T_a = T_b.copy()
    T_a[:3, :3] = Rotation.from_rotvec(dth).as_matrix() @ T_b[:3, :3]
    T_a[:3, 3] += dp
    assert np.allclose(tm.pose_difference(T_a, T_b), np.concatenate([dp, dth]))
    assert np.allclose(tm.pose_difference(T_b, T_b), 0.0)


def test_planar_difference_wraps_yaw_and_ignores_z_roll_pitch():
    a = rpy_pose([1.0, 2.0, 0.5], 10, -5, 179.0)
    b = rpy_pose([0.5, 2.5, 0.0], 0, 0, -179.0)
    d = tm.planar_difference(a, b)
    assert np.allclose(d[:2], [0.5, -0.5])
    assert np.degrees(d[2]) == pytest.approx(-2.0, abs=1e-6)


def test_planar_selection():
    assert tm.planar_indices() == (0, 1, 5)
    v = np.arange(6.0)
    assert tm.select_planar(v).tolist() == [0.0, 1.0, 5.0]
    C = np.arange(36.0).reshape(6, 6)
    assert tm.select_planar(C).tolist() == [[0, 1, 5], [6, 7, 11], [30, 31, 35]]
    with pytest.raises(ValueError, match="6-vector or a 6x6"):
        tm.select_planar(np.zeros(3))


@pytest.mark.parametrize("bad, match", [
    (np.eye(3), "T_map_cam must be a 4x4"),
    (np.diag([1.0, 1.0, -1.0, 1.0]), "T_map_cam is not a finite rigid"),
    (np.full((4, 4), np.nan), "T_map_cam is not a finite rigid"),
    (2.0 * np.eye(4), "T_map_cam is not a finite rigid"),
])
def test_bad_poses_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        tm.base_pose_from_camera(bad, np.eye(6), T_BASE_CAM)


def test_bad_covariances_and_extrinsics_raise():
    T = rpy_pose([0, 0, 0])
    asym = np.eye(6)
    asym[0, 1] = 0.5
    with pytest.raises(ValueError, match="cov_cam_66 must be 6x6"):
        tm.base_pose_from_camera(T, np.eye(3), T_BASE_CAM)
    with pytest.raises(ValueError, match="cov_cam_66 is not symmetric"):
        tm.base_pose_from_camera(T, asym, T_BASE_CAM)
    with pytest.raises(ValueError, match="cov_cam_66 is not positive semi-definite"):
        tm.base_pose_from_camera(T, np.diag([1.0, 1, 1, 1, 1, -0.1]), T_BASE_CAM)
    with pytest.raises(ValueError, match="cov_cam_66 contains NaN"):
        tm.base_pose_from_camera(T, np.full((6, 6), np.inf), T_BASE_CAM)
    with pytest.raises(ValueError, match="T_base_cam"):
        tm.base_pose_from_camera(T, np.eye(6), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="T_odom_base"):
        tm.map_to_odom(T, np.ones((4, 4)))
