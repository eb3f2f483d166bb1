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

"""Geometric verification: covariance in the published layout, camera checks, verdicts on synthetic maps."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from reloc_ros.data.types import Intrinsics
from reloc_ros.runtime import uncertainty as U
from reloc_ros.runtime.verify import (CameraMismatch, VerifyConfig, perturbed, pnp_covariance, pose_distance,
                                      project, query_intrinsics)

K = Intrinsics(fx=400.0, fy=400.0, cx=319.5, cy=239.5, width=640, height=480)


def _camera(seed=0):
    rng = np.random.default_rng(seed)
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rng.normal(0, 0.3, 3)).as_matrix()
    T[:3, 3] = rng.normal(0, 1.0, 3)
    return T


def _points_in_view(T, n, rng, depth=(2.0, 6.0), box=(0.0, 0.0, 1.0, 1.0)):
    """``n`` map points seen by camera ``T`` at the given depths, in the image box (fractions x0, y0, x1, y1)."""
    uv = rng.uniform([box[0] * K.width, box[1] * K.height], [box[2] * K.width, box[3] * K.height], (n, 2))
    z = rng.uniform(*depth, n)
    Xc = np.stack([(uv[:, 0] - K.cx) / K.fx * z, (uv[:, 1] - K.cy) / K.fy * z, z], axis=1)
    return Xc @ T[:3, :3].T + T[:3, 3]


def test_perturbation_is_the_error_convention_of_the_reports():
    T = _camera(1)
    d = np.array([0.1, -0.2, 0.05, 0.02, -0.01, 0.03])
    # error_vectors(pred, gt) = [p_gt - p_pred, rotvec(R_gt R_pred^T)]: the perturbation that moves pred onto gt.
    assert np.allclose(U.error_vectors(T[None], perturbed(T, d)[None])[0], d, atol=1e-12)


def test_pnp_covariance_matches_monte_carlo_refits():
    """Refit the pose by least squares on noisy pixels many times: the spread is what the covariance says."""
    from scipy.optimize import least_squares

    rng = np.random.default_rng(0)
    T = _camera(2)
    X = _points_in_view(T, 60, rng)
    uv_true, _ = project(T, K, X)
    sigma_px = 1.5
    errs = []
    for _ in range(150):
        uv = uv_true + rng.normal(0, sigma_px, uv_true.shape)
        fit = least_squares(lambda d: (project(perturbed(T, d), K, X)[0] - uv).ravel(), np.zeros(6))
        errs.append(-fit.x)  # error of the fit against the truth, in the published convention
    errs = np.array(errs)
    uv = uv_true + rng.normal(0, sigma_px, uv_true.shape)
    cov = pnp_covariance(T, K, uv, X)
    mc = np.cov(errs.T)
    ratio = np.sqrt(np.diag(cov) / np.diag(mc))
    assert np.all((ratio > 0.7) & (ratio < 1.4)), ratio
    # Correlations too (position and rotation are strongly coupled in PnP).
    corr = lambda c: c / np.sqrt(np.outer(np.diag(c), np.diag(c)))  # noqa: E731
    assert np.abs(corr(cov) - corr(mc)).max() < 0.25


def test_a_far_patch_is_degenerate_and_near_depth_is_not():
    rng = np.random.default_rng(3)
    T = _camera(4)
    cfg = VerifyConfig()

    def sigma_m(X):
        uv = project(T, K, X)[0] + rng.normal(0, 1.0, (len(X), 2))
        return np.sqrt(np.linalg.eigvalsh(pnp_covariance(T, K, uv, X)[:3, :3])[-1])

    near = _points_in_view(T, 80, rng, (1.0, 4.0))
    far = _points_in_view(T, 80, rng, (30.0, 30.0), box=(0.4, 0.4, 0.6, 0.6))  # a far wall in the image centre
    assert sigma_m(near) < 0.02
    assert sigma_m(far) > cfg.max_sigma_m


def test_query_camera_must_be_the_maps_camera():
    assert query_intrinsics(K, 640, 480, None) == K
    half = query_intrinsics(K, 320, 240, None)
    assert half.fx == pytest.approx(200.0) and half.cx == pytest.approx(159.5)
    assert query_intrinsics(K, 320, 240, K.scaled(320, 240)) == K.scaled(320, 240)
    with pytest.raises(CameraMismatch, match="aspect ratio"):
        query_intrinsics(K, 640, 360, None)
    other = Intrinsics(fx=600.0, fy=600.0, cx=319.5, cy=239.5, width=640, height=480)
    with pytest.raises(CameraMismatch, match="not the map's camera.*reloc-ros map"):
        query_intrinsics(K, 640, 480, other)
    with pytest.raises(CameraMismatch, match="CameraInfo is for 640x480"):
        query_intrinsics(K, 320, 240, K)


def test_pose_distance():
    T = _camera(5)
    d = np.array([0.3, 0.4, 0.0, 0.0, 0.0, np.radians(20)])
    dt, dr = pose_distance(T, perturbed(T, d)[None])
    assert dt[0] == pytest.approx(0.5) and dr[0] == pytest.approx(20.0)


@pytest.mark.parametrize("bad", [{"min_inliers": 3}, {"ratio": 1.5}, {"max_sigma_m": 0.0},
                                 {"keyframes_per_candidate": 0}, {"max_candidate_deg": float("nan")}])
def test_config_names_the_bad_value(bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        VerifyConfig(**bad)
