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

"""Geometry in ROS conventions: the (x, y, z, w) boundary, SE(3), errors, covariance."""

import numpy as np
import pytest

from reloc_ros import geometry as g


def yaw_quat(deg):
    a = np.radians(deg) / 2
    return np.array([0.0, 0.0, np.sin(a), np.cos(a)])  # ROS order (x, y, z, w)


def random_poses(n, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4))
    return g.make_pose(rng.normal(size=(n, 3)), q)


def test_quaternion_order_boundary():
    q_xyzw = np.array([0.1, 0.2, 0.3, 0.9])
    q_wxyz = g.quat_xyzw_to_wxyz(q_xyzw)
    assert q_wxyz.tolist() == [0.9, 0.1, 0.2, 0.3]
    assert g.quat_wxyz_to_xyzw(q_wxyz).tolist() == q_xyzw.tolist()
    batch = np.stack([q_xyzw, -q_xyzw])
    assert np.array_equal(g.quat_wxyz_to_xyzw(g.quat_xyzw_to_wxyz(batch)), batch)


def test_yaw_quaternion_gives_rep103_rotation():
    # +90 deg about z (REP-103: counter-clockwise seen from above) maps x onto y.
    R = g.quat_to_matrix(yaw_quat(90))
    assert np.allclose(R @ [1, 0, 0], [0, 1, 0])
    assert np.allclose(g.matrix_to_quat(R), yaw_quat(90))


@pytest.mark.parametrize("bad", [[np.nan, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 1e-12], [np.inf, 0, 0, 1]])
def test_bad_quaternions_raise(bad):
    with pytest.raises(ValueError, match="NaN|zero norm"):
        g.make_pose([0, 0, 0], bad)


def test_canonical_hemisphere():
    q = np.array([[0.1, 0.2, 0.3, -0.9], [0.5, 0.5, 0.5, 0.5], [-1.0, 0, 0, 0]])
    c = g.quat_canonical(q)
    assert np.allclose(c[0], -q[0]) and np.allclose(c[1], q[1]) and np.allclose(c[2], [1, 0, 0, 0])
    assert np.all(c[:, 3] >= 0)


def test_compose_invert_roundtrip():
    T = random_poses(5)
    eye = g.compose(T, g.invert_pose(T))
    assert np.allclose(eye, np.eye(4), atol=1e-12)
    p_b = np.array([0.3, -1.0, 2.0, 1.0])
    T_ab, T_bc = T[0], T[1]
    assert np.allclose(g.compose(T_ab, T_bc) @ p_b, T_ab @ (T_bc @ p_b))
    assert g.is_rigid(T) and not g.is_rigid(np.diag([1, 1, 2, 1.0]))


def test_slerp_midpoint_and_endpoints_and_short_arc():
    q0, q1 = yaw_quat(0), yaw_quat(90)
    assert np.allclose(g.slerp(q0, q1, 0.0), q0) and np.allclose(g.slerp(q0, q1, 1.0), q1)
    assert np.allclose(g.slerp(q0, q1, 0.5), yaw_quat(45))
    # -q1 is the same rotation: slerp must take the short arc, not spin 270 deg.
    assert g.quat_angle_deg(g.slerp(q0, -q1, 0.5), yaw_quat(45)) < 1e-6
    assert np.allclose(g.slerp(q0, q0, 0.3), q0)


def test_interpolate_pose():
    T0 = g.make_pose([0, 0, 0], yaw_quat(0))
    T1 = g.make_pose([2, 0, 0], yaw_quat(60))
    T = g.interpolate_pose(T0, T1, 0.25)
    assert np.allclose(T[:3, 3], [0.5, 0, 0])
    assert np.isclose(g.rotation_error_deg(T, T0), 15.0)


def test_errors():
    T0 = g.make_pose([0, 0, 0], yaw_quat(0))
    T1 = g.make_pose([3, 4, 0], yaw_quat(-30))
    assert np.isclose(g.translation_error(T0, T1), 5.0)
    assert np.isclose(g.rotation_error_deg(T0, T1), 30.0)
    assert np.isclose(g.quat_angle_deg(yaw_quat(10), -yaw_quat(40)), 30.0)
    # Batched.
    assert g.rotation_error_deg(np.stack([T0, T1]), np.stack([T1, T1])).shape == (2,)


def test_covariance_layout_and_validation():
    cov = g.covariance_from_std([0.1, 0.2, 0.3], [0.01, 0.02, 0.03])
    flat = g.covariance_to_msg(cov)
    assert len(flat) == 36
    # Row-major over (x, y, z, rotX, rotY, rotZ): element [i*6+i] is variance i.
    assert np.isclose(flat[0], 0.01) and np.isclose(flat[7], 0.04) and np.isclose(flat[35], 0.0009)
    assert np.array_equal(g.covariance_from_msg(flat), cov)
    with pytest.raises(ValueError, match="> 0"):
        g.covariance_from_std(0.0, 0.1)
    with pytest.raises(ValueError, match="positive definite"):
        g.covariance_to_msg(np.zeros((6, 6)))
    with pytest.raises(ValueError, match="36 values"):
        g.covariance_from_msg([0.0] * 35)
    R = g.quat_to_matrix(yaw_quat(90))
    rot = g.rotate_covariance(g.covariance_from_std([1.0, 0.1, 0.1], 0.1), R)
    assert np.isclose(rot[1, 1], 1.0) and np.isclose(rot[0, 0], 0.01)  # x-uncertainty became y
