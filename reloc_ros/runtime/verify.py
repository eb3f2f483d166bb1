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

"""Geometric verification: the learned model proposes, the 3-D feature map confirms and refines. ROS-free.

:class:`Verifier` takes a query image, its intrinsics and candidate camera
poses (the model's pose and hypotheses, the last verified pose of a stream)
and answers with a :class:`Verification`:

1. local features of the query (:func:`reloc_ros.mapping.features.detect`, the
   map's feature type), on the image brought to the map's resolution when the
   camera is the same one at another resolution (an exact rescale);
2. the key frames of the map nearest each candidate (position, and viewing
   direction within 60 deg) give the 3-D points to match against;
3. robust absolute pose (pycolmap's LO-RANSAC P3P), then non-linear
   refinement on the inliers;
4. the covariance of the refined pose from the refinement's Jacobian and
   residuals, written directly in the ROS layout of ``T_map_cam`` (position,
   then rotation about the map axes; see :func:`pnp_covariance`), and
   calibrated on mapping frames held out of the map (:func:`calibrate`);
5. the verdict: ``verified``, or ``failed`` with the reason: too few
   matches or inliers, degenerate geometry (the covariance says the pose is
   not determined, e.g. all inliers on one far plane, or the inliers cover a
   sliver of the image), or a refined pose far from every candidate.

When the model's candidates fail, a cheap global fallback (thumbnail
retrieval over the map's key frames, :meth:`FeatureMap.retrieve`) proposes
other key frames and the same steps run once more with the same query
features. A confident wrong pose is the worst outcome, so every threshold
errs on the side of ``failed``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from reloc_ros.data.types import Intrinsics
from reloc_ros.errors import RelocError
from reloc_ros.geometry import invert_pose
from reloc_ros.runtime import uncertainty as U

logger = logging.getLogger(__name__)

VERIFY_STAGES = ("features", "matching", "ransac", "refinement")
"""Timed sub-stages of a verification (milliseconds in :attr:`Verification.timings_ms`)."""


class CameraMismatch(ValueError):
    """The query image does not come from the map's camera (at any resolution); the message names both."""


# Fewer verified held-out frames than this cannot calibrate the covariance: 5 (the MC-dropout minimum) left a
# thin map's verified poses over-confident (69 % of position errors within 2 sigma on the benchmark's bare room).
MIN_CALIBRATION_FRAMES = 20
# Relative tolerance on focal lengths and principal points when a query camera is compared with the map's.
_INTRINSICS_RTOL = 0.01


@dataclass(frozen=True)
class VerifyConfig:
    """Thresholds of :class:`Verifier`; every one errs towards ``failed``.

    Attributes:
        keyframes_per_candidate: map key frames matched per candidate pose.
        max_keyframes: most key frames matched per attempt (candidates' union).
        ratio: Lowe's ratio test for query-to-map matching.
        ransac_px: RANSAC inlier threshold in pixels at the map's resolution.
        min_inliers: fewer PnP inliers than this: ``failed``.
        min_inlier_ratio: fewer inliers than this share of the matches: ``failed``.
        min_inlier_spread: the inliers' bounding box must cover at least this share of the image.
        max_sigma_m, max_sigma_deg: a refined pose whose (raw) standard deviation exceeds either is
            degenerate: ``failed``.
        max_candidate_m, max_candidate_deg: a refined pose farther than both from every candidate: ``failed``.
        retrieval_fallback: try the map's thumbnail retrieval when the model's candidates fail.
        retrieval_k: key frames the fallback proposes.
        seed: RANSAC's random seed (answers are reproducible).
    """

    keyframes_per_candidate: int = 3
    max_keyframes: int = 8
    ratio: float = 0.8
    ransac_px: float = 4.0
    min_inliers: int = 30
    min_inlier_ratio: float = 0.15
    min_inlier_spread: float = 0.04
    max_sigma_m: float = 0.25
    max_sigma_deg: float = 5.0
    max_candidate_m: float = 1.5
    max_candidate_deg: float = 45.0
    retrieval_fallback: bool = True
    retrieval_k: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("keyframes_per_candidate", "max_keyframes", "min_inliers", "retrieval_k"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if self.min_inliers < 6:
            raise ValueError(f"min_inliers must be >= 6 (a 6-DoF pose with redundancy), got {self.min_inliers}")
        for name, lo, hi in (("ratio", 0.0, 1.0), ("min_inlier_ratio", 0.0, 1.0), ("min_inlier_spread", 0.0, 1.0)):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and lo <= v <= hi):
                raise ValueError(f"{name} must be in [{lo}, {hi}], got {v!r}")
        for name in ("ransac_px", "max_sigma_m", "max_sigma_deg", "max_candidate_m", "max_candidate_deg"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")


@dataclass
class Verification:
    """The verdict on one frame.

    Attributes:
        status: ``verified`` or ``failed``.
        detail: why, in words.
        T_map_cam: the refined camera pose (verified; for a failed frame the rejected pose, if PnP found one).
        raw_covariance: ``(6, 6)`` ROS-layout covariance of the refined pose before calibration, or None.
        inliers, matches: PnP inliers and 2-D/3-D matches of the deciding attempt.
        source: what proposed the key frames that decided: ``model``, ``retrieval``.
        timings_ms: milliseconds per :data:`VERIFY_STAGES` (summed over attempts).
    """

    status: str
    detail: str
    T_map_cam: np.ndarray | None = None
    raw_covariance: np.ndarray | None = None
    inliers: int = 0
    matches: int = 0
    source: str = "model"
    timings_ms: dict[str, float] = field(default_factory=lambda: dict.fromkeys(VERIFY_STAGES, 0.0))


def query_intrinsics(map_K: Intrinsics, width: int, height: int, intrinsics: Intrinsics | None) -> Intrinsics:
    """Check that a query image of ``width`` x ``height`` comes from the map's camera; return its intrinsics.

    The query may be the map's camera at another resolution (a whole-image
    resize: the intrinsics scale exactly). Without intrinsics (no CameraInfo)
    the map's camera is assumed when the aspect ratio agrees. Anything else
    raises ``ValueError`` naming both cameras: features of another camera
    would be matched against the wrong geometry (:class:`CameraMismatch`).
    """
    expected = map_K.scaled(width, height)
    if intrinsics is None:
        if abs(width / height - map_K.width / map_K.height) > 1e-3:
            raise CameraMismatch(f"query image {width}x{height} has another aspect ratio than the map's camera "
                                 f"({map_K.width}x{map_K.height}) and no CameraInfo says what camera it is")
        return expected
    if (intrinsics.width, intrinsics.height) != (width, height):
        raise CameraMismatch(f"CameraInfo is for {intrinsics.width}x{intrinsics.height} images but the image is "
                             f"{width}x{height}")
    got = np.array([intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy])
    want = np.array([expected.fx, expected.fy, expected.cx, expected.cy])
    scale = np.array([expected.fx, expected.fy, width, height])
    if np.any(np.abs(got - want) > _INTRINSICS_RTOL * scale):
        raise CameraMismatch(
            f"query camera (fx {got[0]:.1f}, fy {got[1]:.1f}, cx {got[2]:.1f}, cy {got[3]:.1f} at {width}x{height}) "
            f"is not the map's camera ({map_K.fx:.1f}, {map_K.fy:.1f}, {map_K.cx:.1f}, {map_K.cy:.1f} at "
            f"{map_K.width}x{map_K.height}, i.e. {want[0]:.1f}, {want[1]:.1f}, {want[2]:.1f}, {want[3]:.1f} at "
            f"{width}x{height}): rebuild the map with this camera ('reloc-ros map')")
    return intrinsics


def project(T_map_cam: np.ndarray, K: Intrinsics, X_n3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return pixel coordinates ``(n, 2)`` and depths ``(n,)`` of map points seen from ``T_map_cam``."""
    R, t = T_map_cam[:3, :3], T_map_cam[:3, 3]
    Xc = (X_n3 - t) @ R  # R^T (X - t), row-wise
    z = Xc[:, 2]
    zs = np.where(np.abs(z) < 1e-12, 1e-12, z)
    uv = np.stack([K.fx * Xc[:, 0] / zs + K.cx, K.fy * Xc[:, 1] / zs + K.cy], axis=1)
    return uv, z


def perturbed(T_map_cam: np.ndarray, d_6: np.ndarray) -> np.ndarray:
    """Apply a ROS-layout error ``(dx, dy, dz, rotX, rotY, rotZ)`` to a pose (rotation about the map axes)."""
    out = T_map_cam.copy()
    out[:3, :3] = Rotation.from_rotvec(d_6[3:]).as_matrix() @ T_map_cam[:3, :3]
    out[:3, 3] = T_map_cam[:3, 3] + d_6[:3]
    return out


def pnp_covariance(T_map_cam: np.ndarray, K: Intrinsics, uv_n2: np.ndarray, X_n3: np.ndarray) -> np.ndarray:
    """Return the ``(6, 6)`` covariance of a refined camera pose, ROS layout, from its inliers.

    Gauss-Newton's ``sigma^2 (J^T J)^-1``, with ``J`` the Jacobian of the
    reprojection residuals with respect to the pose error as it is published
    (position in metres, rotation vector about the map axes: the error
    convention of :func:`reloc_ros.runtime.uncertainty.error_vectors`) and
    ``sigma^2`` the residuals' variance (``sum r^2 / (2n - 6)``). Written by
    hand rather than converting pycolmap's covariance, which is over its own
    ``cam_from_world`` tangent space: here the layout is the published one by
    construction, and the tests check it against Monte Carlo.
    """
    n = len(X_n3)
    if n < 4:
        raise ValueError(f"a pose covariance needs at least 4 inliers, got {n}")
    r0 = (project(T_map_cam, K, X_n3)[0] - uv_n2).ravel()
    J = np.zeros((2 * n, 6))
    for i in range(6):
        eps = 1e-6
        d = np.zeros(6)
        d[i] = eps
        plus = project(perturbed(T_map_cam, d), K, X_n3)[0].ravel()
        minus = project(perturbed(T_map_cam, -d), K, X_n3)[0].ravel()
        J[:, i] = (plus - minus) / (2 * eps)
    sigma2 = float(r0 @ r0) / max(2 * n - 6, 1)
    sigma2 = max(sigma2, 1e-4)  # sub-pixel noise floor: a perfect fit is not a perfectly known pose
    JtJ = J.T @ J
    try:
        cov = sigma2 * np.linalg.inv(JtJ)
    except np.linalg.LinAlgError:
        cov = np.diag([1e6] * 6)
    if not np.all(np.isfinite(cov)):
        cov = np.diag([1e6] * 6)
    return 0.5 * (cov + cov.T)


def pose_distance(T_a: np.ndarray, T_b_k44: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (metres, degrees) between one pose and each of ``K`` poses."""
    T_b = np.asarray(T_b_k44).reshape(-1, 4, 4)
    dt = np.linalg.norm(T_b[:, :3, 3] - T_a[:3, 3], axis=1)
    R_rel = np.einsum("ij,kjl->kil", T_a[:3, :3].T, T_b[:, :3, :3])
    cos = np.clip((np.trace(R_rel, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
    return dt, np.degrees(np.arccos(cos))


def _sigmas(cov_66: np.ndarray) -> tuple[float, float]:
    """(metres, degrees): the largest standard deviation of position and of rotation."""
    ev_t = np.linalg.eigvalsh(cov_66[:3, :3])
    ev_r = np.linalg.eigvalsh(cov_66[3:, 3:])
    return math.sqrt(max(float(ev_t[-1]), 0.0)), math.degrees(math.sqrt(max(float(ev_r[-1]), 0.0)))


class Verifier:
    """Verify and refine candidate camera poses against a :class:`~reloc_ros.mapping.featuremap.FeatureMap`.

    Args:
        feature_map: the map (key frames, 3-D points, their descriptors).
        config: thresholds (:class:`VerifyConfig`).
        calibration: scale and floor of the PnP covariance (fitted by :func:`calibrate`); identity if None.
    """

    def __init__(self, feature_map: Any, config: VerifyConfig | None = None,
                 calibration: U.Calibration | None = None) -> None:
        import pycolmap

        self.map = feature_map
        self.config = config or VerifyConfig()
        self.calibration = calibration if calibration is not None else U.Calibration()
        self.max_features = int((feature_map.info.get("config") or {}).get("max_features", 2048))
        self._pycolmap = pycolmap
        K = feature_map.intrinsics
        self._camera = pycolmap.Camera(model="PINHOLE", width=K.width, height=K.height,
                                       params=[K.fx, K.fy, K.cx, K.cy])
        self._est = pycolmap.AbsolutePoseEstimationOptions()
        self._est.ransac.max_error = float(self.config.ransac_px)
        self._est.ransac.random_seed = int(self.config.seed)
        self._ref = pycolmap.AbsolutePoseRefinementOptions()

    def to_map_resolution(self, rgb_hw3: np.ndarray, intrinsics: Intrinsics | None) -> np.ndarray:
        """Return the query image at the map's resolution (``ValueError`` if it is not the map's camera)."""
        h, w = rgb_hw3.shape[:2]
        K = self.map.intrinsics
        query_intrinsics(K, w, h, intrinsics)
        if (w, h) == (K.width, K.height):
            return rgb_hw3
        interp = cv2.INTER_AREA if w > K.width else cv2.INTER_LINEAR
        return cv2.resize(rgb_hw3, (K.width, K.height), interpolation=interp)

    def verify(self, rgb_hw3: np.ndarray, candidates_k44: np.ndarray, intrinsics: Intrinsics | None = None
               ) -> Verification:
        """Verify the candidates (``(K, 4, 4)`` camera poses, best first) on one RGB image; see the module doc."""
        from reloc_ros.mapping.features import detect

        timings = dict.fromkeys(VERIFY_STAGES, 0.0)
        t0 = time.perf_counter()
        img = self.to_map_resolution(np.asarray(rgb_hw3), intrinsics)
        xy_n2, desc = detect(img, self.map.feature, self.max_features)
        timings["features"] = (time.perf_counter() - t0) * 1e3
        cands = np.asarray(candidates_k44, np.float64).reshape(-1, 4, 4)
        cands = cands[np.all(np.isfinite(cands), axis=(1, 2))]
        attempts: list[tuple[str, np.ndarray, np.ndarray]] = []
        if len(cands):
            attempts.append(("model", self._keyframes_near(cands), cands))
        if self.config.retrieval_fallback or not len(cands):
            kfs = np.asarray(self.map.retrieve(img, self.config.retrieval_k), np.int64)
            attempts.append(("retrieval", kfs, self.map.kf_poses_k44[kfs]))
        result = Verification("failed", "no candidate pose and no retrieval", timings_ms=timings)
        for source, kfs, cand_poses in attempts:
            result = self._attempt(xy_n2, desc, kfs, cand_poses, timings)
            result.source = source
            if result.status == "verified":
                break
        result.timings_ms = timings
        return result

    def _keyframes_near(self, cands_k44: np.ndarray) -> np.ndarray:
        chosen: list[int] = []
        for T in cands_k44:
            for k in self.map.nearest_keyframes(T, self.config.keyframes_per_candidate):
                if int(k) not in chosen:
                    chosen.append(int(k))
        return np.asarray(chosen[:self.config.max_keyframes], np.int64)

    def _attempt(self, xy_n2: np.ndarray, desc: np.ndarray, kfs: np.ndarray, cand_poses: np.ndarray,
                 timings: dict[str, float]) -> Verification:
        from reloc_ros.mapping.features import match

        cfg = self.config
        t0 = time.perf_counter()
        map_desc, point_ids, _ = self.map.observations(kfs)
        iq, io = match(desc, map_desc, self.map.feature, cfg.ratio)
        pids = point_ids[io]
        _, first = np.unique(pids, return_index=True)  # one query keypoint per map point
        first = np.sort(first)
        uv, X = xy_n2[iq[first]].astype(np.float64), self.map.points_p3[pids[first]].astype(np.float64)
        timings["matching"] += (time.perf_counter() - t0) * 1e3
        n = len(uv)
        if n < cfg.min_inliers:
            return Verification("failed", f"too few matches: {n} < {cfg.min_inliers} (key frames {kfs.tolist()})",
                                matches=n)
        t1 = time.perf_counter()
        est = self._pycolmap.estimate_absolute_pose(uv, X, self._camera, self._est)
        timings["ransac"] += (time.perf_counter() - t1) * 1e3
        if est is None:
            return Verification("failed", f"PnP-RANSAC found no pose from {n} matches", matches=n)
        mask = np.asarray(est["inlier_mask"], bool).reshape(-1)
        t2 = time.perf_counter()
        ref = self._pycolmap.refine_absolute_pose(est["cam_from_world"], uv, X, mask, self._camera, self._ref)
        cam_from_world = (ref or est)["cam_from_world"]
        T_cam_map = np.eye(4)
        T_cam_map[:3, :4] = np.asarray(cam_from_world.matrix())
        T = invert_pose(T_cam_map)
        # Inliers of the refined pose (the refinement moved it): the same pixel threshold.
        uv_hat, z = project(T, self.map.intrinsics, X)
        mask = (z > 0) & (np.linalg.norm(uv_hat - uv, axis=1) <= cfg.ransac_px)
        inl = int(mask.sum())
        raw = pnp_covariance(T, self.map.intrinsics, uv[mask], X[mask]) if inl >= 4 else np.diag([1e6] * 6)
        timings["refinement"] += (time.perf_counter() - t2) * 1e3
        out = Verification("failed", "", T, raw, inl, n)
        K = self.map.intrinsics
        if inl < cfg.min_inliers or inl < cfg.min_inlier_ratio * n:
            out.detail = f"too few inliers: {inl} of {n} matches (need {cfg.min_inliers} and " \
                         f"{100 * cfg.min_inlier_ratio:.0f} %)"
            return out
        box = uv[mask].max(axis=0) - uv[mask].min(axis=0)
        spread = float(box[0] * box[1]) / (K.width * K.height)
        if spread < cfg.min_inlier_spread:
            out.detail = f"degenerate geometry: {inl} inliers cover {100 * spread:.1f} % of the image"
            return out
        s_m, s_deg = _sigmas(raw)
        if s_m > cfg.max_sigma_m or s_deg > cfg.max_sigma_deg:
            out.detail = (f"degenerate geometry: {inl} inliers leave the pose undetermined (sigma {s_m:.3f} m, "
                          f"{s_deg:.2f} deg)")
            return out
        dt, dr = pose_distance(T, cand_poses)
        near = (dt <= cfg.max_candidate_m) & (dr <= cfg.max_candidate_deg)
        if not near.any():
            k = int(np.argmin(dt))
            out.detail = (f"refined pose is {dt[k]:.2f} m / {dr[k]:.1f} deg from the nearest candidate "
                          f"(at most {cfg.max_candidate_m} m / {cfg.max_candidate_deg} deg)")
            return out
        out.status = "verified"
        out.detail = f"{inl} inliers of {n} matches"
        return out


def calibrate(verifier: Verifier, images: Sequence[np.ndarray], gt_poses_n44: np.ndarray,
              intrinsics: Intrinsics | None = None, progress: bool = False) -> U.Calibration:
    """Fit the PnP covariance's scale and floor on held-out mapping frames; return the calibration.

    ``verifier`` must use a map that does not contain these frames (they are
    held out, so the calibration sees new viewpoints). Candidates come from
    the map's own thumbnail retrieval, never from the ground truth, which is
    used only to measure the errors. Fewer than :data:`MIN_CALIBRATION_FRAMES`
    verified frames raise :class:`RelocError` with the numbers.
    """
    from tqdm import tqdm

    errors, raws = [], []
    statuses: dict[str, int] = {}
    for img, T_gt in tqdm(list(zip(images, np.asarray(gt_poses_n44))), desc="calibrating verification",
                          unit="frame", disable=not progress):
        v = verifier.verify(img, np.zeros((0, 4, 4)), intrinsics)
        statuses[v.status] = statuses.get(v.status, 0) + 1
        if v.status == "verified":
            errors.append(U.error_vectors(v.T_map_cam[None], T_gt[None])[0])
            raws.append(v.raw_covariance)
    if len(errors) < MIN_CALIBRATION_FRAMES:
        raise RelocError(f"only {len(errors)} of {len(gt_poses_n44)} held-out mapping frames verified "
                         f"({statuses}); the covariance of verified poses needs at least "
                         f"{MIN_CALIBRATION_FRAMES} to be calibrated: record a longer or more textured mapping run")
    cal = U.fit_calibration(np.stack(errors), np.stack(raws))
    logger.info("verification covariance calibrated on %d held-out frames (%s): scale %.2f / %.2f, floor %.3f m / "
                "%.2f deg", len(errors), statuses, cal.scale_t, cal.scale_r, cal.floor_t, math.degrees(cal.floor_r))
    return cal


def load_verifier(model_path: Path, metadata: Mapping[str, Any], backend: str, mode: str,
                  config: VerifyConfig | None = None) -> tuple[Verifier | None, str]:
    """Return the :class:`Verifier` of a model file's feature map (or None) and a line saying what verifies.

    ``mode`` is the engine's (``auto``, ``on``, ``off``). An ONNX model cannot
    hold the map: it is read from the TorchScript file of the same name beside
    it (``train --onnx`` writes both), when that file is the same model.
    Raises :class:`RelocError` for ``on`` without a map, a map in another
    frame than the model's poses, or a map that does not belong to the file.
    """
    from reloc_ros.mapping.storage import load_map

    if mode == "off":
        return None, "off"
    model_path = Path(model_path)
    map_file, map_meta = model_path, metadata
    why = "the model file carries no feature map (build one with 'reloc-ros map MODEL BAG')"
    if backend == "onnx":
        map_file, map_meta = _torchscript_sibling(model_path, metadata)
        why = (f"an ONNX file carries no feature map and the TorchScript file beside it ('{map_file}') "
               f"{'is another model' if map_meta is None and map_file.is_file() else 'does not exist'}")
    loaded = None if map_meta is None else load_map(map_file, map_meta)
    if map_meta is not None and loaded is None and backend == "onnx":
        why = f"the TorchScript file beside it ('{map_file}') carries no feature map"
    if loaded is None:
        if mode == "on":
            raise RelocError(f"verification is on but {why}; or run with verification off")
        logger.warning("model '%s': %s; poses are the model's alone (status 'unverified'), and by default they "
                       "do not move map -> odom or /initialpose", model_path, why)
        return None, f"none: {why}"
    fmap, cal = loaded
    entry = map_meta["feature_map"]
    map_frame = metadata["frames"]["map_frame"]
    if entry.get("map_frame", map_frame) != map_frame:
        raise RelocError(f"the feature map of '{model_path}' is in frame '{entry.get('map_frame')}' but the "
                         f"model's poses are in '{map_frame}'; rebuild it with 'reloc-ros map'")
    calibration = U.Calibration.from_dict(cal) if cal else None
    if calibration is None:
        logger.warning("model '%s': the feature map's covariance is not calibrated (built outside the trainer "
                       "or with too few held-out frames): verified poses carry the raw PnP covariance", model_path)
    described = (f"{fmap.feature} feature map, {len(fmap.kf_poses_k44)} key frames, {len(fmap.points_p3)} points "
                 f"({fmap.info.get('point_source', '?')})" + ("" if calibration else ", uncalibrated"))
    return Verifier(fmap, config, calibration), described


def _torchscript_sibling(model_path: Path, metadata: Mapping[str, Any]) -> tuple[Path, dict[str, Any] | None]:
    """Return the ``.pt`` beside an ONNX model and its metadata (None when it is missing or another model)."""
    from reloc_ros.mapping.storage import read_stored_metadata

    sibling = model_path.with_suffix(".pt")
    if not sibling.is_file():
        return sibling, None
    meta = read_stored_metadata(sibling)
    if meta is None:
        return sibling, None

    def strip(m: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in m.items() if k != "feature_map"}
    return sibling, (meta if strip(meta) == strip(metadata) else None)
