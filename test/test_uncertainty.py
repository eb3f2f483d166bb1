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

"""MC-dropout covariance: sample covariance, calibration, coverage and confidence."""

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from scipy.stats import chi2

from reloc_ros.geometry import covariance_from_std, make_pose
from reloc_ros.runtime import uncertainty as U


def _quat(rotvec):
    return Rotation.from_rotvec(rotvec).as_quat()  # (x, y, z, w)


def test_sample_covariance_recovers_the_spread_of_samples():
    rng = np.random.default_rng(0)
    n = 20000
    std = np.array([0.3, 0.1, 0.05, 0.02, 0.04, 0.1])
    t_ref, rv_ref = np.array([1.0, 2.0, 0.5]), np.array([0.1, -0.2, 1.0])
    d = rng.normal(size=(n, 6)) * std
    t_s = t_ref + d[:, :3]
    # Left perturbation: R_s = exp(d) R_ref, the convention of the ROS covariance used everywhere.
    q_s = (Rotation.from_rotvec(d[:, 3:]) * Rotation.from_rotvec(rv_ref)).as_quat()
    cov = U.sample_covariance(t_ref[None], _quat(rv_ref)[None], t_s[None], q_s[None])[0]
    assert np.allclose(np.sqrt(np.diag(cov)), std, rtol=0.03)
    assert np.allclose(cov, cov.T)


def test_sample_covariance_counts_the_bias_from_the_prediction():
    # Samples tightly around a point 1 m away from the published prediction: that 1 m is uncertainty too.
    t_s = np.tile([1.0, 0.0, 0.0], (1, 10, 1)) + np.random.default_rng(1).normal(size=(1, 10, 3)) * 1e-3
    q = np.tile([0.0, 0.0, 0.0, 1.0], (1, 10, 1))
    cov = U.sample_covariance(np.zeros((1, 3)), np.array([[0.0, 0, 0, 1]]), t_s, q)[0]
    assert cov[0, 0] == pytest.approx(1.0, rel=0.01)
    with pytest.raises(ValueError, match="at least 2 MC samples"):
        U.sample_covariance(np.zeros((1, 3)), np.array([[0.0, 0, 0, 1]]), t_s[:, :1], q[:, :1])


def test_error_vectors_use_the_same_convention_as_sample_deviations():
    pred = make_pose(np.array([1.0, 0, 0]), _quat([0, 0, 0.3]))
    gt = make_pose(np.array([1.5, -1, 0]), _quat([0, 0, 0.5]))
    e = U.error_vectors(pred[None], gt[None])[0]
    assert np.allclose(e[:3], [0.5, -1.0, 0.0])
    assert np.allclose(e[3:], [0, 0, 0.2])  # about the map's z axis
    assert np.allclose(U.rotation_deviation(_quat([0, 0, 0.3])[None], _quat([0, 0, 0.5])[None])[0], e[3:])


def _gaussian_set(rng, n, raw_std_t, true_scale, floor=0.0):
    """Errors drawn with sigma = sqrt((true_scale * raw)^2 + floor^2); raw covariances diag(raw^2)."""
    raw = rng.uniform(0.5, 2.0, size=(n, 1)) * np.array([raw_std_t] * 3 + [raw_std_t / 10] * 3)
    sigma = np.sqrt((true_scale * raw) ** 2 + floor ** 2)
    errors = rng.normal(size=(n, 6)) * sigma
    cov = np.stack([np.diag(r ** 2) for r in raw])
    return errors, cov


def test_calibration_fitted_on_validation_holds_on_held_out_data():
    rng = np.random.default_rng(2)
    val_e, val_c = _gaussian_set(rng, 300, 0.05, true_scale=3.0)
    test_e, test_c = _gaussian_set(rng, 3000, 0.05, true_scale=3.0)
    raw = U.coverage(test_e, test_c)
    assert raw["translation"]["within_1sigma"] < 0.35  # raw MC spread is 3x over-confident
    cal = U.fit_calibration(val_e, val_c)
    assert cal.scale_t == pytest.approx(3.0, rel=0.2) and cal.scale_r == pytest.approx(3.0, rel=0.2)
    held = U.coverage(test_e, cal.apply(test_c))
    for g in ("translation", "rotation"):
        assert abs(held[g]["within_1sigma"] - 0.683) < 0.04
        assert abs(held[g]["within_2sigma"] - 0.954) < 0.03
    assert cal.validation["translation"]["within_1sigma"] == pytest.approx(0.683, abs=0.02)
    assert U.Calibration.from_dict(cal.to_dict()) == cal


def test_calibration_learns_a_floor_when_the_mc_spread_misses_a_constant_error():
    rng = np.random.default_rng(3)
    val_e, val_c = _gaussian_set(rng, 400, 0.01, true_scale=1.0, floor=0.2)
    test_e, test_c = _gaussian_set(rng, 3000, 0.01, true_scale=1.0, floor=0.2)
    cal = U.fit_calibration(val_e, val_c)
    assert cal.floor_t > 0.05  # learned from the data, well above the numerical floor
    held = U.coverage(test_e, cal.apply(test_c))
    assert abs(held["translation"]["within_2sigma"] - 0.954) < 0.04


def test_calibrated_covariances_are_never_zero_and_bad_input_is_refused():
    cal = U.Calibration(scale_t=0.0, floor_t=0.0, scale_r=0.0, floor_r=0.0)
    cov = cal.apply(np.zeros((6, 6)))
    assert np.all(np.diag(cov) >= min(U.MIN_STD) ** 2)
    with pytest.raises(ValueError, match="at least 5 validation frames"):
        U.fit_calibration(np.zeros((3, 6)), np.zeros((3, 6, 6)))
    with pytest.raises(ValueError, match=r"errors \(n, 6\)"):
        U.fit_calibration(np.zeros((10, 3)), np.zeros((10, 6, 6)))
    with pytest.raises(ValueError, match="unknown calibration keys"):
        U.Calibration.from_dict({"scale": 1.0})
    with pytest.raises(ValueError, match="scale_t"):
        U.Calibration.from_dict({"scale_t": -1.0})


def test_chi2_cdf_and_confidence():
    x = np.array([0.0, 0.5, 3.0, 7.8, 20.0])
    assert np.allclose(U.chi2_3_cdf(x), chi2.cdf(x, 3), atol=1e-12)
    tight = np.diag([0.01 ** 2] * 3 + [math.radians(0.5) ** 2] * 3)
    loose = np.diag([2.0 ** 2] * 3 + [math.radians(60) ** 2] * 3)
    assert U.confidence(tight) > 0.999
    assert U.confidence(loose) < 0.01
    # Exactly the chi-square probability of being within the tolerance (position part only binding).
    mid = np.diag([0.25 ** 2] * 3 + [math.radians(0.01) ** 2] * 3)
    assert U.confidence(mid, (0.5, 10.0)) == pytest.approx(chi2.cdf((0.5 / 0.25) ** 2, 3), rel=1e-6)
    assert U.confidence(mid, (1.0, 10.0)) > U.confidence(mid, (0.5, 10.0))


def test_chi2_cdf_stays_a_probability_for_any_input():
    x = np.array([0.0, 1e-300, 2.5e-17, 1e-12, 1e-6, 1e-3, 0.5, 0.999, 1.0, 1.001, 7.81, 50.0, 1e6, np.inf])
    p = U.chi2_3_cdf(x)
    assert np.all((p >= 0.0) & (p <= 1.0))
    np.testing.assert_allclose(p, chi2.cdf(x, 3), rtol=1e-12, atol=0)  # accurate where the closed form cancels
    assert U.chi2_3_cdf(2.5e-17) > 0.0  # the closed form gave -8e-25 here
    assert U.chi2_3_cdf(-1.0) == 0.0 and U.chi2_3_cdf(np.nan) == 0.0 and U.chi2_3_cdf(np.inf) == 1.0
    # A diverged model's covariance (sigma 1e8 m): confidence 0, not a tiny negative probability.
    conf = U.confidence(covariance_from_std(1e8, np.radians(1.0)))
    assert 0.0 <= conf < 1e-20


@pytest.mark.parametrize("tolerance", [(-0.5, 10.0), (0.5, 0.0), (float("nan"), 10.0), (0.5, float("inf"))])
def test_confidence_refuses_a_tolerance_that_is_not_one(tolerance):
    with pytest.raises(ValueError, match=r"tolerance must be \(metres, degrees\), both finite and > 0"):
        U.confidence(np.eye(6) * 0.01, tolerance)
