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

"""Two non-learned references for the benchmark table, on the same data as the learned models.

* :class:`RetrievalBaseline` (trivial): the pose of the most similar mapping
  image, by cosine similarity of tiny grayscale thumbnails. A learned
  relocalizer that does not beat it has learned nothing beyond "which mapping
  frame does this look like".
* :class:`OrbPnPReference` (classical geometry): ORB features of the query
  matched against the nearest mapping frames, whose keypoints carry 3-D map
  points from the mapping depth; OpenCV PnP + RANSAC then solves the pose. With
  known depth this is what geometry reaches, the ceiling learned absolute pose
  regression is compared against.

Conventions are those of :mod:`reloc_ros.geometry`: poses are 4x4 float64
``T_map_cam`` of the camera optical frame (z forward, x right, y down). Images
are ``(n, H, W, 3)`` uint8 RGB; depth is ``(n, H, W)`` float z-depth in metres,
aligned with the colour images (0 or NaN = no depth). Pixel centres are at
integer coordinates, as OpenCV's keypoints and the intrinsics use them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from reloc_ros.data.types import Intrinsics

log = logging.getLogger(__name__)

# A keypoint whose 3x3 depth neighbourhood spans more than this fraction of its
# depth sits on an occlusion edge: its depth may belong to the foreground or the
# background, and a 3-D point tens of centimetres off only poisons RANSAC.
_DEPTH_EDGE_REL = 0.05
# Fewer correspondences than this cannot give a 6-DoF pose with any redundancy
# (the DLT that initialises SOLVEPNP_ITERATIVE on non-planar points needs 6).
_MIN_PNP_POINTS = 6
# ORB detects on images upsampled until their shorter side is at least this (see OrbPnPReference).
_DETECT_MIN_SIDE_PX = 240


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------

def _check_images(images_bhw3: np.ndarray, what: str) -> np.ndarray:
    """Return ``images`` as an array, or raise ValueError unless it is (n, H, W, 3) uint8 RGB with n >= 1."""
    arr = np.asarray(images_bhw3)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1 or arr.shape[2] < 1:
        raise ValueError(f"{what} must be uint8 RGB images of shape (n, H, W, 3) with n >= 1, "
                         f"got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 RGB images (n, H, W, 3), got dtype {arr.dtype} "
                         f"(shape {arr.shape})")
    return arr


def _check_poses(poses_n44: np.ndarray, n: int, what: str) -> np.ndarray:
    """Return ``poses`` as finite float64 (n, 4, 4), or raise ValueError naming the bad shape."""
    arr = np.asarray(poses_n44, dtype=np.float64)
    if arr.shape != (n, 4, 4):
        raise ValueError(f"{what} must have shape ({n}, 4, 4), one pose per image, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=(1, 2)))
        raise ValueError(f"{what} must be finite; non-finite poses at indices {bad[:10].tolist()}")
    return arr


def _gray(image_hw3: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(image_hw3), cv2.COLOR_RGB2GRAY)


# ---------------------------------------------------------------------------
# Retrieval
# ---------------------------------------------------------------------------

def thumbnail_descriptors(images_bhw3: np.ndarray, size: tuple[int, int] = (32, 24)) -> np.ndarray:
    """Global image descriptors (n, d) float32, d = width * height of ``size``.

    Each image is converted to grayscale, shrunk to ``size`` = (width, height)
    with ``cv2.INTER_AREA`` (area averaging: no aliasing, so small shifts give
    small changes), made zero-mean (invariant to overall brightness) and
    scaled to unit L2 norm, so a dot product is the cosine similarity. A
    constant image has no structure to compare: its row is all zeros (similarity
    0 to everything), never NaN.
    """
    arr = _check_images(images_bhw3, "images")
    if len(size) != 2 or int(size[0]) < 1 or int(size[1]) < 1:
        raise ValueError(f"thumbnail size must be (width, height) with both >= 1, got {size}")
    w, h = int(size[0]), int(size[1])
    out = np.empty((arr.shape[0], w * h), dtype=np.float32)
    for i, img in enumerate(arr):
        small = cv2.resize(_gray(img), (w, h), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
        small -= small.mean()
        norm = float(np.linalg.norm(small))
        # Constant images leave only rounding noise after the mean is removed: call that zero.
        out[i] = small / norm if norm > 1e-3 else 0.0
    return out


class RetrievalBaseline:
    """Nearest neighbour by cosine similarity of thumbnail descriptors; predicts the neighbour's pose."""

    def __init__(self, map_images_bhw3: np.ndarray, map_poses_n44: np.ndarray,
                 size: tuple[int, int] = (32, 24)) -> None:
        images = _check_images(map_images_bhw3, "map images")
        self.map_poses_n44 = _check_poses(map_poses_n44, images.shape[0], "map poses")
        self.map_desc_nd = thumbnail_descriptors(images, size)
        self.size = (int(size[0]), int(size[1]))

    @property
    def n_map(self) -> int:
        return int(self.map_desc_nd.shape[0])

    def nearest(self, query_images_bhw3: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Return the indices (n, k) of the k most similar mapping images and their similarities (n, k).

        Best first; similarities are cosines in [-1, 1].

        Query images may have any size: thumbnails are compared. Ties keep the
        lower mapping index first (stable sort), so results are deterministic.
        """
        if not 1 <= int(k) <= self.n_map:
            raise ValueError(f"k must be in [1, {self.n_map}] (the number of mapping images), got {k}")
        q_nd = thumbnail_descriptors(_check_images(query_images_bhw3, "query images"), self.size)
        sims_nm = q_nd @ self.map_desc_nd.T
        idx_nk = np.argsort(-sims_nm, axis=1, kind="stable")[:, :int(k)]
        return idx_nk, np.take_along_axis(sims_nm, idx_nk, axis=1)

    def predict(self, query_images_bhw3: np.ndarray) -> np.ndarray:
        """Pose (n, 4, 4) of the most similar mapping image for each query image."""
        idx_n1, _ = self.nearest(query_images_bhw3, k=1)
        return self.map_poses_n44[idx_n1[:, 0]].copy()


# ---------------------------------------------------------------------------
# ORB + PnP
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PnPResult:
    """Per-query outcome of :meth:`OrbPnPReference.predict`.

    ``poses_n44`` holds the PnP pose where ``success`` is True, else the pose of
    the best retrieval neighbour (so every query gets a pose, as a relocalizer
    must give one); ``inliers`` counts RANSAC inliers (0 on failure) and
    ``fallback_reason`` says why PnP was not used ('' on success).
    """

    poses_n44: np.ndarray
    success: np.ndarray
    inliers: np.ndarray
    fallback_reason: list[str]

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.success)) if self.success.size else 0.0


@dataclass
class _MapFrame:
    """ORB descriptors of one mapping image and the map-frame 3-D point of each keypoint kept."""

    desc_kd: np.ndarray  # (k, 32) uint8
    points_k3: np.ndarray  # (k, 3) float64, map frame


class OrbPnPReference:
    """Classical relocalization: ORB matches to the nearest mapping frames, 3-D from their depth, PnP + RANSAC.

    ORB is detected once per mapping image (grayscale); keypoints with valid,
    non-edge depth are back-projected with the intrinsics and the mapping pose
    into map-frame 3-D points. Per query, the ``top_k`` most similar mapping
    frames (thumbnail retrieval) are matched, the 2-D/3-D correspondences pooled
    and the pose solved with ``cv2.solvePnPRansac``. Where that fails, the
    retrieval pose is returned with the reason.

    ``ratio`` is Lowe's ratio; ``min_matches`` the correspondences needed to try
    PnP; ``reprojection_px`` the RANSAC inlier threshold in pixels of the given
    images; ``min_inliers`` the inliers (in front of the camera, after
    refinement) needed to accept the pose; ``seed`` seeds OpenCV's RNG before
    each RANSAC. ``fast_threshold`` and ``n_levels`` go to ORB (FAST corner
    threshold, pyramid levels); ORB runs on the images upsampled by
    ``detect_scale`` (None: until the shorter side is at least 240 px).

    On the synthetic room (exact renders and depth, 80 mapping and 20 query
    frames at 160x120) it solves 65-80 % of the queries, to 3-6 cm and about
    0.5-1 deg median, in 6-16 ms per query on one core of the 2-core dev machine.
    """

    def __init__(self, map_images_bhw3: np.ndarray, map_depths_bhw: np.ndarray, map_poses_n44: np.ndarray,
                 intrinsics: Intrinsics, top_k: int = 3, n_features: int = 1000, ratio: float = 0.8,
                 min_matches: int = 12, reprojection_px: float = 3.0, min_inliers: int = 12, seed: int = 0,
                 fast_threshold: int = 7, n_levels: int = 5, detect_scale: float | None = None) -> None:
        images = _check_images(map_images_bhw3, "map images")
        n, h, w = images.shape[:3]
        depths = np.asarray(map_depths_bhw)
        if depths.shape != (n, h, w):
            raise ValueError(f"map depths must have shape {(n, h, w)} to match the map images {images.shape} "
                             f"(aligned depth, one per image), got shape {depths.shape}")
        if not np.issubdtype(depths.dtype, np.floating):
            raise ValueError(f"map depths must be float metres, got dtype {depths.dtype}")
        poses = _check_poses(map_poses_n44, n, "map poses")
        if not isinstance(intrinsics, Intrinsics):
            raise ValueError(f"intrinsics must be a reloc_ros.data.types.Intrinsics, got {type(intrinsics).__name__}")
        if (intrinsics.width, intrinsics.height) != (w, h):
            raise ValueError(f"intrinsics are for {intrinsics.width}x{intrinsics.height} images but the map images "
                             f"are {w}x{h}; use intrinsics.scaled({w}, {h}) if the images were resized")
        if not 1 <= int(top_k) <= n:
            raise ValueError(f"top_k must be in [1, {n}] (the number of mapping images), got {top_k}")
        if int(n_features) < 1:
            raise ValueError(f"n_features must be >= 1, got {n_features}")
        if not 0.0 < float(ratio) <= 1.0:
            raise ValueError(f"ratio (Lowe's ratio test) must be in (0, 1], got {ratio}")
        if int(min_matches) < _MIN_PNP_POINTS:
            raise ValueError(f"min_matches must be >= {_MIN_PNP_POINTS} (PnP needs that many points), "
                             f"got {min_matches}")
        if not (np.isfinite(reprojection_px) and reprojection_px > 0):
            raise ValueError(f"reprojection_px must be a positive number of pixels, got {reprojection_px}")
        if int(min_inliers) < _MIN_PNP_POINTS:
            raise ValueError(f"min_inliers must be >= {_MIN_PNP_POINTS}, got {min_inliers}")
        if not 1 <= int(fast_threshold) <= 255:
            raise ValueError(f"fast_threshold must be in [1, 255] (grey levels), got {fast_threshold}")
        if int(n_levels) < 1:
            raise ValueError(f"n_levels must be >= 1, got {n_levels}")
        if detect_scale is None:
            # ORB's 31-px descriptor patch and border were designed for images of a few hundred pixels;
            # on a 160x120 image they leave a small centre strip to detect in and the corners are
            # located to a whole pixel. Upsampling so the shorter side is >= 240 px keeps the patch
            # at a sensible share of the view and gives half-pixel keypoints.
            detect_scale = max(1.0, _DETECT_MIN_SIDE_PX / min(h, w))
        if not (np.isfinite(detect_scale) and 0.25 <= detect_scale <= 8.0):
            raise ValueError(f"detect_scale must be in [0.25, 8], got {detect_scale}")
        self.intrinsics = intrinsics
        self.top_k = int(top_k)
        self.n_features = int(n_features)
        self.ratio = float(ratio)
        self.min_matches = int(min_matches)
        self.reprojection_px = float(reprojection_px)
        self.min_inliers = int(min_inliers)
        self.seed = int(seed)
        self.detect_scale = float(detect_scale)
        self.retrieval = RetrievalBaseline(images, poses)
        # The synthetic scene (and many indoor walls) has soft, low-contrast texture: OpenCV's default
        # FAST threshold of 20 finds almost no corners there. n_features still keeps the strongest.
        # Five pyramid levels rather than OpenCV's eight: on a 240-px-high detection image the coarser
        # levels are hardly larger than the descriptor patch plus its border and add nothing.
        self._orb = cv2.ORB_create(self.n_features, nlevels=int(n_levels), fastThreshold=int(fast_threshold))
        # Hamming distance is the metric of binary descriptors; crossCheck off because knnMatch's
        # two nearest neighbours are needed for the ratio test.
        self._matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=False)
        self._frames = [self._map_frame(images[i], depths[i], poses[i]) for i in range(n)]
        counts = [f.desc_kd.shape[0] for f in self._frames]
        log.info("ORB map: %d frames, %d keypoints with depth (median %d per frame)", n, sum(counts),
                 int(np.median(counts)))

    def _detect(self, image_hw3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ORB keypoints (k, 2) pixel coordinates and descriptors (k, 32) of one RGB image."""
        gray = _gray(image_hw3)
        s = self.detect_scale
        if s != 1.0:
            gray = cv2.resize(gray, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
        kps, desc = self._orb.detectAndCompute(gray, None)
        if desc is None or not kps:
            return np.zeros((0, 2)), np.zeros((0, 32), np.uint8)
        uv_k2 = np.array([kp.pt for kp in kps], dtype=np.float64)
        # Back to the original image, pixel centres at integers in both (as cv2.resize maps them).
        return (uv_k2 + 0.5) / s - 0.5, desc

    def _map_frame(self, image_hw3: np.ndarray, depth_hw: np.ndarray, T_map_cam: np.ndarray) -> _MapFrame:
        uv_k2, desc = self._detect(image_hw3)
        if uv_k2.shape[0] == 0:
            return _MapFrame(np.zeros((0, 32), np.uint8), np.zeros((0, 3)))
        K = self.intrinsics
        h, w = depth_hw.shape
        ui = np.clip(np.rint(uv_k2[:, 0]).astype(int), 0, w - 1)
        vi = np.clip(np.rint(uv_k2[:, 1]).astype(int), 0, h - 1)
        # 3x3 neighbourhood of each keypoint (clamped at the border) to find occlusion edges.
        d = np.nan_to_num(depth_hw.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        offs = (-1, 0, 1)
        nb_k9 = np.stack([d[np.clip(vi + dv, 0, h - 1), np.clip(ui + du, 0, w - 1)]
                          for dv in offs for du in offs], axis=1)
        z = nb_k9[:, 4]
        keep = (nb_k9 > 0).all(axis=1) & (nb_k9.max(axis=1) - nb_k9.min(axis=1) <= _DEPTH_EDGE_REL * z)
        uv = uv_k2[keep]
        # Bilinear depth at the sub-pixel keypoint (safe: no edge in the neighbourhood); the depth of
        # the rounded pixel is off by up to half a pixel's depth gradient, large on a floor seen
        # at a grazing angle.
        u0 = np.clip(np.floor(uv[:, 0]).astype(int), 0, w - 2)
        v0 = np.clip(np.floor(uv[:, 1]).astype(int), 0, h - 2)
        a = np.clip(uv[:, 0] - u0, 0.0, 1.0)
        b = np.clip(uv[:, 1] - v0, 0.0, 1.0)
        z = ((1 - a) * (1 - b) * d[v0, u0] + a * (1 - b) * d[v0, u0 + 1]
             + (1 - a) * b * d[v0 + 1, u0] + a * b * d[v0 + 1, u0 + 1])
        ok = z > 0
        uv, z, keep = uv[ok], z[ok], np.flatnonzero(keep)[ok]
        p_cam_k3 = np.stack([(uv[:, 0] - K.cx) / K.fx * z, (uv[:, 1] - K.cy) / K.fy * z, z], axis=1)
        p_map_k3 = p_cam_k3 @ T_map_cam[:3, :3].T + T_map_cam[:3, 3]
        return _MapFrame(desc[keep], p_map_k3)

    def _correspondences(self, uv_k2: np.ndarray, desc_kd: np.ndarray,
                         neighbours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pooled ratio-test matches of the query against ``neighbours``: (m, 2) pixels, (m, 3) map points.

        Each query pixel (rounded) and each map keypoint is used at most once,
        keeping the lowest Hamming distance. Without that, one corner detected
        at several pyramid levels, or matched in three overlapping frames, counts
        several times towards RANSAC's inliers, and a wrong pose backed by a
        handful of real points passes ``min_inliers``.
        """
        cand: list[tuple[float, int, int, int]] = []  # (distance, query index, frame, map keypoint)
        for j in neighbours:
            frame = self._frames[int(j)]
            if frame.desc_kd.shape[0] < 2:
                continue
            for pair in self._matcher.knnMatch(desc_kd, frame.desc_kd, k=2):
                if len(pair) < 2:
                    continue
                m, second = pair
                # Lowe's ratio test: a match much better than the runner-up is distinctive; repeated
                # texture (stripes, checkers) gives near-equal candidates, and those are mostly wrong.
                if m.distance < self.ratio * second.distance:
                    cand.append((float(m.distance), m.queryIdx, int(j), m.trainIdx))
        cand.sort(key=lambda c: c[0])
        used_px: set[tuple[int, int]] = set()
        used_map: set[tuple[int, int]] = set()
        uv_list, xyz_list = [], []
        for _, qi, j, ti in cand:
            px = (int(round(uv_k2[qi, 0])), int(round(uv_k2[qi, 1])))
            if px in used_px or (j, ti) in used_map:
                continue
            used_px.add(px)
            used_map.add((j, ti))
            uv_list.append(uv_k2[qi])
            xyz_list.append(self._frames[j].points_k3[ti])
        if not uv_list:
            return np.zeros((0, 2)), np.zeros((0, 3))
        return np.array(uv_list, dtype=np.float64), np.array(xyz_list, dtype=np.float64)

    def _solve(self, image_hw3: np.ndarray, neighbours: np.ndarray) -> tuple[np.ndarray | None, int, str]:
        """Solve one query: ``T_map_cam`` (or None), the inlier count, and '' or the reason it failed."""
        uv_k2, desc = self._detect(image_hw3)
        if uv_k2.shape[0] < 2:
            return None, 0, f"only {uv_k2.shape[0]} ORB keypoints in the query"
        uv, xyz = self._correspondences(uv_k2, desc, neighbours)
        if uv.shape[0] < self.min_matches:
            return None, 0, f"only {uv.shape[0]} matches with depth (need {self.min_matches})"
        K_33 = self.intrinsics.K_33
        # Reseed (OpenCV's global RNG) per query so a query's result does not depend on what was
        # solved before it, in this object or elsewhere in the process.
        cv2.setRNGSeed(self.seed)
        try:
            ok, rvec, tvec, inl = cv2.solvePnPRansac(
                xyz.reshape(-1, 1, 3), uv.reshape(-1, 1, 2), K_33, None, iterationsCount=1000,
                reprojectionError=self.reprojection_px, confidence=0.999, flags=cv2.SOLVEPNP_ITERATIVE)
        except cv2.error as exc:  # degenerate point sets (e.g. all collinear) raise instead of failing
            return None, 0, f"RANSAC failed ({str(exc).strip().splitlines()[-1]})"
        if not ok or inl is None or not (np.all(np.isfinite(rvec)) and np.all(np.isfinite(tvec))):
            return None, 0, "RANSAC failed"
        # OpenCV counts a point as an inlier by its reprojection alone, even when the pose puts it
        # behind the camera; recount with positive depth, refine (Levenberg-Marquardt) on those, recount.
        inl = self._inliers(xyz, uv, rvec, tvec)
        if inl.size >= _MIN_PNP_POINTS:
            rvec, tvec = cv2.solvePnPRefineLM(xyz[inl].reshape(-1, 1, 3), uv[inl].reshape(-1, 1, 2), K_33, None,
                                              rvec.copy(), tvec.copy())
            inl = self._inliers(xyz, uv, rvec, tvec)
        if inl.size < self.min_inliers:
            return None, int(inl.size), f"only {inl.size} RANSAC inliers (need {self.min_inliers})"
        R_cam_map, _ = cv2.Rodrigues(rvec)
        T = np.eye(4)
        # solvePnP gives the world -> camera transform (T_cam_map); invert it to T_map_cam.
        T[:3, :3] = R_cam_map.T
        T[:3, 3] = -R_cam_map.T @ tvec.ravel()
        if not np.all(np.isfinite(T)):
            return None, int(inl.size), "non-finite PnP pose"
        return T, int(inl.size), ""

    def _inliers(self, xyz_m3: np.ndarray, uv_m2: np.ndarray, rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
        """Return the correspondences in front of the camera and within ``reprojection_px`` of their pixel."""
        R, _ = cv2.Rodrigues(rvec)
        p_cam = xyz_m3 @ R.T + tvec.reshape(1, 3)
        z = p_cam[:, 2]
        K = self.intrinsics
        with np.errstate(divide="ignore", invalid="ignore"):
            proj = np.stack([K.fx * p_cam[:, 0] / z + K.cx, K.fy * p_cam[:, 1] / z + K.cy], axis=1)
            err = np.linalg.norm(proj - uv_m2, axis=1)
        return np.flatnonzero((z > 1e-6) & (err <= self.reprojection_px))

    def predict(self, query_images_bhw3: np.ndarray) -> PnPResult:
        """Pose of each query image by ORB + PnP, falling back to the retrieval pose where that fails."""
        queries = _check_images(query_images_bhw3, "query images")
        K = self.intrinsics
        if queries.shape[1:3] != (K.height, K.width):
            raise ValueError(f"query images are {queries.shape[2]}x{queries.shape[1]} (shape {queries.shape}) "
                             f"but the intrinsics and map images are {K.width}x{K.height}")
        # Pool over the top_k most similar frames rather than the best one: the nearest thumbnail is
        # often a frame at a slightly different place, and neighbours together see more of the query.
        idx_nk, _ = self.retrieval.nearest(queries, k=self.top_k)
        n = queries.shape[0]
        poses = self.retrieval.map_poses_n44[idx_nk[:, 0]].copy()
        success = np.zeros(n, dtype=bool)
        inliers = np.zeros(n, dtype=np.int64)
        reasons: list[str] = []
        for i in range(n):
            T, n_inl, why = self._solve(queries[i], idx_nk[i])
            if T is not None:
                poses[i], success[i], inliers[i] = T, True, n_inl
            reasons.append(why)
        return PnPResult(poses_n44=poses, success=success, inliers=inliers, fallback_reason=reasons)


__all__ = ["OrbPnPReference", "PnPResult", "RetrievalBaseline", "thumbnail_descriptors"]
