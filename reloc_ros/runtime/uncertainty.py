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

"""Pose uncertainty of absolute pose regressors: MC dropout, calibration, coverage and confidence.

**Why MC dropout.** The issue offers three sources of model uncertainty: MC
dropout, an ensemble, or a learned variance head. reloc_ros uses MC dropout
(Kendall & Cipolla 2016, "Modelling uncertainty in deep learning for camera
relocalization", the Bayesian PoseNet):

* every APR here is trained with PoseNet's dropout (p = 0.5) in front of its
  pose regressors, so sampling that dropout at inference needs no change to
  training, no extra model and works on every model already trained;
* the samples share one backbone pass (the dropout sits after it), so 32
  samples cost about as much as one prediction; an ensemble of M nets costs M
  times the training and the inference;
* a variance head needs a different loss (a Gaussian likelihood) and is known
  to be over-confident far from the training data, exactly where a kidnapped
  robot needs honesty.

Raw MC-dropout spread is not a calibrated standard deviation (it measures how
unstable the regressor is, in its own units). It is turned into one on the
validation split (frames held out of training) by :func:`fit_calibration`:
per axis group (translation, rotation), a scale ``s`` and a floor ``f`` with
``sigma^2 = s^2 * sigma_mc^2 + f^2`` such that 68.27 % of the per-axis
validation errors fall within 1 sigma, choosing among floors the one whose
2-sigma coverage comes closest to 95.45 %. The floor keeps a model that is
sure of itself from claiming millimetres; it is learned from the data (a
quantile of the validation errors), never a constant made up here.
:func:`coverage` reports the same shares on any other data (``reloc-ros
eval``), which is the honest check: calibrated on validation, measured on the
query route.

Conventions (ROS ``PoseWithCovariance``): 6x6 over (x, y, z, rotation about X,
Y, Z); a rotation deviation is the rotation vector of ``R_a R_b^T``, a small
rotation about the fixed axes of the map frame.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np
from scipy.spatial.transform import Rotation


GROUPS = ("translation", "rotation")
"""Axis groups of a pose covariance: (x, y, z) and (rot X, rot Y, rot Z)."""
_SLICES = {"translation": slice(0, 3), "rotation": slice(3, 6)}
ONE_SIGMA = math.erf(1 / math.sqrt(2))  # 0.6827: share of a Gaussian within 1 sigma
TWO_SIGMA = math.erf(2 / math.sqrt(2))  # 0.9545
MIN_STD = (1e-3, 1e-3)
"""Numerical floor (1 mm, 1 mrad) under every published standard deviation, so no variance is ever zero."""
DEFAULT_SAMPLES = 32
"""MC-dropout samples per image (one backbone pass; the regressors run this often)."""
MIN_CALIBRATION_FRAMES = 5
"""Fewest validation frames :func:`fit_calibration` accepts: a calibration from fewer is noise."""
DEFAULT_TOLERANCE = (0.5, 10.0)
"""(metres, degrees) within which a pose counts as right for :func:`confidence`."""


def rotation_deviation(q_ref_n4: np.ndarray, q_n4: np.ndarray) -> np.ndarray:
    """Return rotation vectors ``(n, 3)`` of ``R R_ref^T`` (left perturbation in the map frame), radians.

    Quaternions ``(x, y, z, w)``, unit length. Plain numpy quaternion algebra
    (``q * conj(q_ref)``, then its rotation vector) rather than SciPy objects:
    this runs for every sample of every frame on the robot.
    """
    q = np.asarray(q_n4, np.float64).reshape(-1, 4)
    r = np.asarray(q_ref_n4, np.float64).reshape(-1, 4)
    v_a, w_a, v_b, w_b = q[:, :3], q[:, 3:], -r[:, :3], r[:, 3:]  # b = conj(q_ref)
    w = w_a * w_b - np.sum(v_a * v_b, axis=1, keepdims=True)
    v = w_a * v_b + w_b * v_a + np.cross(v_a, v_b)
    sign = np.where(w < 0, -1.0, 1.0)  # the shorter way round: angle in [0, pi]
    w, v = w * sign, v * sign
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    angle = 2.0 * np.arctan2(norm, w)
    # angle / sin(angle / 2) -> 2 as the angle -> 0
    scale = np.where(norm > 1e-12, angle / np.maximum(norm, 1e-300), 2.0 / np.maximum(w, 1e-300))
    return v * scale


def error_vectors(pred_n44: np.ndarray, gt_n44: np.ndarray) -> np.ndarray:
    """Return ``(n, 6)`` errors of predictions against ground truth: ``[p_gt - p_pred, rotvec(R_gt R_pred^T)]``."""
    pred_n44, gt_n44 = np.asarray(pred_n44, np.float64), np.asarray(gt_n44, np.float64)
    dt = gt_n44[:, :3, 3] - pred_n44[:, :3, 3]
    dr = Rotation.from_matrix(gt_n44[:, :3, :3] @ np.swapaxes(pred_n44[:, :3, :3], 1, 2)).as_rotvec()
    return np.concatenate([dt, dr], axis=1)


def sample_covariance(t_b3: np.ndarray, q_b4: np.ndarray, t_bn3: np.ndarray, q_bn4: np.ndarray) -> np.ndarray:
    """Return raw ``(b, 6, 6)`` covariances of MC samples about the deterministic predictions.

    The second moment is taken about the prediction that is published (not
    the sample mean), so a bias between the two counts as uncertainty too.
    """
    t_bn3, q_bn4 = np.asarray(t_bn3, np.float64), np.asarray(q_bn4, np.float64)
    b, n = t_bn3.shape[:2]
    if n < 2:
        raise ValueError(f"a sample covariance needs at least 2 MC samples per image, got {n}")
    dt = t_bn3 - np.asarray(t_b3, np.float64)[:, None, :]
    q_ref = np.repeat(np.asarray(q_b4, np.float64), n, axis=0)
    dr = rotation_deviation(q_ref, q_bn4.reshape(b * n, 4)).reshape(b, n, 3)
    d_bn6 = np.concatenate([dt, dr], axis=2)
    return np.einsum("bni,bnj->bij", d_bn6, d_bn6) / n


@dataclass(frozen=True)
class Calibration:
    """``sigma^2 = scale^2 * sigma_mc^2 + floor^2`` per axis group; fitted by :func:`fit_calibration`.

    Attributes:
        scale_t, floor_t: translation scale (unitless) and floor (metres).
        scale_r, floor_r: rotation scale and floor (radians).
        frames: validation frames it was fitted on.
        validation: the coverage it reached there (:func:`coverage`).
    """

    scale_t: float = 1.0
    floor_t: float = MIN_STD[0]
    scale_r: float = 1.0
    floor_r: float = MIN_STD[1]
    frames: int = 0
    validation: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (the model metadata's ``uncertainty.calibration``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Calibration":
        """Rebuild from :meth:`to_dict`; ``ValueError`` on unknown keys or non-positive values."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown calibration keys {unknown}; valid: {', '.join(sorted(known))}")
        cal = cls(**dict(d))
        for k in ("scale_t", "floor_t", "scale_r", "floor_r"):
            v = getattr(cal, k)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"calibration {k} must be a finite number >= 0, got {v!r}")
        return cal

    def apply(self, cov_b66: np.ndarray) -> np.ndarray:
        """Return calibrated covariances for raw MC covariances ``(6, 6)`` or ``(b, 6, 6)``."""
        cov = np.asarray(cov_b66, np.float64)
        s = np.array([self.scale_t] * 3 + [self.scale_r] * 3)
        floor = np.array([max(self.floor_t, MIN_STD[0])] * 3 + [max(self.floor_r, MIN_STD[1])] * 3)
        out = cov * s[:, None] * s[None, :] + np.diag(floor ** 2)
        return 0.5 * (out + np.swapaxes(out, -1, -2))


def _normalised_errors(errors_n6: np.ndarray, cov_n66: np.ndarray, group: str) -> np.ndarray:
    sl = _SLICES[group]
    var = np.diagonal(cov_n66, axis1=1, axis2=2)[:, sl]
    return np.abs(errors_n6[:, sl]) / np.sqrt(np.maximum(var, 1e-300))


def coverage(errors_n6: np.ndarray, cov_n66: np.ndarray, ks: tuple[float, ...] = (1.0, 2.0, 3.0)
             ) -> dict[str, Any]:
    """Return, per axis group, the share of per-axis errors within k sigma, beside the Gaussian expectation.

    ``{"translation": {"within_1sigma": 0.70, ..., "expected_1sigma": 0.6827, ...},
    "rotation": {...}, "frames": n}``: the figure ``reloc-ros eval`` reports.
    """
    errors_n6, cov_n66 = np.asarray(errors_n6, np.float64), np.asarray(cov_n66, np.float64)
    if errors_n6.ndim != 2 or errors_n6.shape[1] != 6 or cov_n66.shape != (len(errors_n6), 6, 6):
        raise ValueError(f"coverage needs errors (n, 6) and covariances (n, 6, 6), got {errors_n6.shape} "
                         f"and {cov_n66.shape}")
    out: dict[str, Any] = {"frames": int(len(errors_n6))}
    for g in GROUPS:
        z = _normalised_errors(errors_n6, cov_n66, g)
        row = {}
        for k in ks:
            row[f"within_{k:g}sigma"] = float(np.mean(z <= k)) if z.size else float("nan")
            row[f"expected_{k:g}sigma"] = math.erf(k / math.sqrt(2))
        row["median_sigma"] = float(np.median(np.sqrt(np.diagonal(cov_n66, axis1=1, axis2=2)[:, _SLICES[g]]))) \
            if z.size else float("nan")
        out[g] = row
    return out


def _fit_group(e: np.ndarray, sigma: np.ndarray) -> tuple[float, float]:
    """Return (scale, floor) for absolute errors ``e`` and raw sigmas of one axis group."""
    def cover(s: float, f: float, k: float) -> float:
        return float(np.mean(e <= k * np.sqrt((s * sigma) ** 2 + f ** 2)))

    best: tuple[float, float, float] | None = None
    for f in [0.0, *np.quantile(e, [0.05, 0.1, 0.2, 0.3, 0.4, 0.5])]:
        if cover(0.0, f, 1.0) > ONE_SIGMA:
            continue  # this floor alone already covers too much: the MC spread would carry no information
        lo, hi = 0.0, 1.0
        while cover(hi, f, 1.0) < ONE_SIGMA and hi < 1e9:
            hi *= 2.0
        for _ in range(60):  # bisection on the 1-sigma coverage, which grows with the scale
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if cover(mid, f, 1.0) < ONE_SIGMA else (lo, mid)
        miss = abs(cover(hi, f, 2.0) - TWO_SIGMA)
        if best is None or miss < best[0] - 1e-9:
            best = (miss, hi, f)
    if best is None:  # (nearly) all errors are exactly zero: nothing to scale, keep the numerical floor
        return 1.0, 0.0
    return best[1], best[2]


def fit_calibration(errors_n6: np.ndarray, raw_cov_n66: np.ndarray) -> Calibration:
    """Fit scale and floor per axis group on validation errors and raw MC covariances (see the module doc).

    Raises ``ValueError`` for fewer than :data:`MIN_CALIBRATION_FRAMES` frames.
    """
    errors_n6, raw = np.asarray(errors_n6, np.float64), np.asarray(raw_cov_n66, np.float64)
    if errors_n6.ndim != 2 or errors_n6.shape[1] != 6 or raw.shape != (len(errors_n6), 6, 6):
        raise ValueError(f"fit_calibration needs errors (n, 6) and covariances (n, 6, 6), got {errors_n6.shape} "
                         f"and {raw.shape}")
    if len(errors_n6) < MIN_CALIBRATION_FRAMES:
        raise ValueError(f"calibrating the covariance needs at least {MIN_CALIBRATION_FRAMES} validation frames, "
                         f"got {len(errors_n6)}")
    fitted = {}
    for g, min_std in zip(GROUPS, MIN_STD):
        sl = _SLICES[g]
        e = np.abs(errors_n6[:, sl]).ravel()
        sigma = np.sqrt(np.maximum(np.diagonal(raw, axis1=1, axis2=2)[:, sl], 0.0)).ravel()
        s, f = _fit_group(e, sigma)
        fitted[g] = (s, max(f, min_std))
    cal = Calibration(scale_t=fitted["translation"][0], floor_t=fitted["translation"][1],
                      scale_r=fitted["rotation"][0], floor_r=fitted["rotation"][1], frames=len(errors_n6))
    return Calibration(**{**asdict(cal), "validation": coverage(errors_n6, cal.apply(raw))})


def chi2_3_cdf(x: np.ndarray | float) -> np.ndarray:
    """Return P(chi^2 with 3 degrees of freedom <= x), always in [0, 1].

    The closed form ``erf(r / sqrt 2) - sqrt(2 / pi) r exp(-x / 2)`` (``r = sqrt x``) cancels
    catastrophically for small ``x`` (a huge variance: a diverged model's sigma of 1e8 m gave
    -8e-25); there the regularised incomplete gamma function ``P(3/2, x/2)`` is used, which is the
    same function computed without cancellation. Negative ``x`` counts as 0, ``inf`` gives 1 and
    NaN gives 0 (no evidence that the pose is within anything).
    """
    from scipy.special import gammainc

    x = np.asarray(x, np.float64)
    x = np.where(np.isnan(x), 0.0, np.maximum(x, 0.0))
    r = np.sqrt(x)
    erf = np.vectorize(math.erf)(r / math.sqrt(2)) if np.ndim(r) else math.erf(float(r) / math.sqrt(2))
    with np.errstate(invalid="ignore"):  # inf * exp(-inf) is NaN: that branch is not taken
        closed = erf - np.sqrt(2.0 / math.pi) * r * np.exp(-x / 2.0)
    out = np.where(x < 1.0, gammainc(1.5, x / 2.0), np.where(np.isinf(x), 1.0, closed))
    return np.clip(out, 0.0, 1.0)


def confidence(cov_66: np.ndarray, tolerance: tuple[float, float] = DEFAULT_TOLERANCE) -> float:
    """Return the probability, under the (calibrated) covariance, that the pose is within ``tolerance``.

    ``tolerance`` is (metres, degrees). The covariance of each group is
    approximated as isotropic (its mean variance), which makes the
    probability a chi-square(3) CDF; the two groups are taken as independent.
    0.9 means "90 % likely within 0.5 m and 10 deg" with the default.
    """
    cov = np.asarray(cov_66, np.float64)
    tol_t, tol_r = float(tolerance[0]), math.radians(float(tolerance[1]))
    if not (math.isfinite(tol_t) and math.isfinite(tol_r) and tol_t > 0 and tol_r > 0):
        raise ValueError(f"tolerance must be (metres, degrees), both finite and > 0, got {tuple(tolerance)!r}")
    var_t = max(float(np.trace(cov[:3, :3])) / 3.0, 1e-300)
    var_r = max(float(np.trace(cov[3:, 3:])) / 3.0, 1e-300)
    return float(chi2_3_cdf(tol_t ** 2 / var_t) * chi2_3_cdf(tol_r ** 2 / var_r))
