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

"""Ground-truth labels of CamNet's image pairs (Ding et al., ICCV 2019).

CamNet trains on pairs of images. Every pair gets, from ground truth only:

* the bilateral frustum overlap ``(theta_1, theta_2)`` (section 3.1.1, eq. 2)
  and the frustum distances ``d = 1 - theta`` that ICR regresses (eq. 4);
* the ORB similarity ``theta'`` used instead where there is no depth (eq. 3);
* the normalised rotation angle ``alpha`` in [0, 1] (eq. 5, target of eq. 6);
* an easy / moderate / hard category for the hard-triplet loss (eq. 7);
* the relative-pose targets ``(delta_t, delta_q)`` of PFR (section 3.2, eq. 8),
  the anchor pose rebuilt from a relative pose, and the pose distance
  ``zeta`` of Algorithm 1 used to retrieve the PRP partner.

Image 1 is the anchor and image 2 the other image of the pair throughout.
Poses are ``T_map_cam`` of the optical frame (``reloc_ros.geometry``), so
``R`` and ``t`` below are the camera-to-map rotation and the camera position.

Where the paper is open or misprinted, this module reads it as follows.

1. Eq. 2 as printed, ``X'_2 = K (R_2^T R_1 K^-1 X_1 D_1 + t_1 - t_2)``, omits
   ``R_2^T`` on ``(t_1 - t_2)``; that is not a rigid transform. We implement
   the correct one, ``X_c2 = R_2^T (R_1 K_1^-1 x D_1(x) + t_1 - t_2)``
   (camera 1 -> map -> camera 2).
2. Eq. 2 has one ``K`` for both images; we back-project with ``K1`` and
   project with ``K2``, so pairs from different cameras or resolutions work.
3. Eq. 2 leaves ``X'_2`` homogeneous; we divide by its third coordinate and
   count a point only if it lies in front of camera 2 (``z > 0``). Without
   that test, a camera turned 180 degrees would "see" every point.
4. ``D_1(p_y, p_x)`` reuses the principal-point symbols; we read it as the
   depth at the sampled pixel of ``X_1``, and as z-depth (``K^-1 x`` has
   ``z = 1``), which is the project's depth convention.
5. "A uniform grid of 10 x 10 pixels": the centres of a ``grid`` x ``grid``
   tiling of the image, pixel column ``floor((j + 0.5) * width / grid)``
   (rows likewise); see :func:`grid_pixels`. Grid pixels without valid depth
   (0, negative, NaN, inf) are skipped and the ratio is taken over the valid
   ones; with none valid the overlap is 0.0.
6. "Inside area of the second image": the projection falls on an existing
   pixel of image 2. With the project's pixel-centre convention (pixel
   centres at integer coordinates, ``cx = width / 2 - 0.5`` for a centred
   camera) that is ``-0.5 <= u < width - 0.5`` and ``-0.5 <= v < height - 0.5``,
   half a pixel off ``0 <= u < width``.
7. Occlusion is ignored (the paper does not test it): a point hidden behind
   another surface in image 2 still counts as overlap.
8. Eq. 3 thresholds Hamming distances with ``> xi``; since ``theta'`` is a
   similarity (``d = 1 - theta'``) we count matches *closer* than ``xi``
   (``distance < xi``), with ``xi = 50`` as in the paper. Matching uses
   ``cv2.BFMatcher(NORM_HAMMING, crossCheck=True)``; mutual matches form a
   symmetric set, so the reverse similarity ``theta'_2`` equals ``theta'_1``.
   The paper's "ORB similarity" is computed on grayscale images.
9. Eq. 5 as printed, ``arccos(trace(R_1^T R_2 - 1) / 2) / pi``, puts the
   ``- 1`` inside the trace; we use the rotation angle
   ``arccos((trace(R_1^T R_2) - 1) / 2) / pi``, clipped to [-1, 1] inside.
10. Section 3.2: ``delta_t = t_2 - t_1`` is kept as printed, a map-frame
    difference of camera positions (not expressed in camera 1's frame), so
    the anchor position is ``t_2 - delta_t``; ``delta_R = R_1^T R_2`` and the
    anchor orientation is ``R_2 delta_R^-1 = R_1``. ``delta_q`` is the
    ``(x, y, z, w)`` quaternion of ``delta_R`` with ``w >= 0`` (one target per
    rotation). A predicted ``delta_q`` is normalised first, as eq. 8 does.
11. Algorithm 1 step 3, ``norm(||t_hat, t||_2) + 2 arccos(abs(q_hat . q)) / pi``:
    ``norm(.)`` is read as the plain Euclidean distance in metres, and the
    second term is the rotation angle divided by pi, in [0, 1]. The two are
    summed as printed, so 1 m weighs as much as 180 degrees.
12. Section 3.1.3 divides pairs into easy / moderate / hard "according to
    their camera frustum overlap as well as their relative rotations and
    translations" but gives no numbers. We use overlap and rotation only:
    the bilateral overlap already falls with translation. The defaults are
    in :class:`PairThresholds`, with the reasons.
13. Deviation: the hardest available partners. The paper's scenes (7-Scenes,
    Cambridge) give every anchor easy, moderate and hard partners. An
    ordinary mapping run of one room does not: on a real 700-frame indoor
    sequence without depth the ORB labels gave 26581 easy, 1978 moderate and
    1 hard pair, and only one anchor could enter the triplet loss. An anchor
    that lacks a category under the thresholds has its candidates ranked by
    difficulty, ``(1 - min(theta_1, theta_2)) + angle / 180``, and split in
    thirds: the easiest third easy, the hardest third hard
    (:func:`rank_categories`). Anchors with all three keep the paper's
    categories. :attr:`PairPools.ranked` marks the ranked anchors.
"""

from dataclasses import dataclass
import math

import cv2
import numpy as np

from reloc_ros.data.types import Intrinsics
from reloc_ros.geometry import is_rigid, matrix_to_quat, quat_normalize, quat_to_matrix

GRID = 10
PAIR_CATEGORIES = ("easy", "moderate", "hard")


# --------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------

def _check_pose(T_44: np.ndarray, what: str) -> np.ndarray:
    T = np.asarray(T_44, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"{what} must be a 4x4 pose, got shape {T.shape}")
    if not is_rigid(T):
        raise ValueError(f"{what} is not a finite rigid transform (orthonormal R, det +1, "
                         f"last row 0 0 0 1): {T.tolist()}")
    return T


def _check_intrinsics(K: Intrinsics, what: str) -> Intrinsics:
    if not isinstance(K, Intrinsics):
        raise ValueError(f"{what} must be reloc_ros.data.types.Intrinsics, got {type(K).__name__}")
    return K


def _check_depth(depth_hw: np.ndarray, K: Intrinsics, what: str) -> np.ndarray:
    depth = np.asarray(depth_hw)
    if depth.ndim != 2 or depth.shape != (K.height, K.width):
        raise ValueError(f"{what} must have shape (height, width) = ({K.height}, {K.width}) "
                         f"to match its intrinsics, got {depth.shape}")
    if not np.issubdtype(depth.dtype, np.floating):
        raise ValueError(f"{what} must hold float metres, got dtype {depth.dtype}")
    return depth


def _check_grid(grid: int) -> int:
    if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 1:
        raise ValueError(f"grid must be an integer >= 1, got {grid!r}")
    return int(grid)


def _check_unit(value: float, what: str) -> float:
    v = float(value)
    if not math.isfinite(v) or not 0.0 <= v <= 1.0:
        raise ValueError(f"{what} must be in [0, 1], got {value!r}")
    return v


# --------------------------------------------------------------------------
# Frustum overlap (eq. 2) and distances (eq. 4)
# --------------------------------------------------------------------------

def grid_pixels(width: int, height: int, grid: int = GRID) -> tuple[np.ndarray, np.ndarray]:
    """Integer (rows, cols) of the grid x grid sample pixels: centres of a uniform tiling."""
    grid = _check_grid(grid)
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    cols = np.floor((np.arange(grid) + 0.5) * width / grid).astype(np.int64)
    rows = np.floor((np.arange(grid) + 0.5) * height / grid).astype(np.int64)
    return rows, cols


def frustum_overlap(depth1_hw: np.ndarray, K1: Intrinsics, T_map_cam1: np.ndarray,
                    K2: Intrinsics, T_map_cam2: np.ndarray, grid: int = GRID) -> float:
    """One-way overlap theta_1 of eq. 2: share of image 1's valid grid pixels seen by camera 2.

    Grid pixels of image 1 with valid depth are back-projected with ``K1`` and
    their depth, moved into camera 2 (``X_c2 = R2^T (R1 X_c1 + t1 - t2)``) and
    projected with ``K2``; a pixel counts when its point is in front of
    camera 2 and lands on a pixel of image 2. Returns 0.0 without valid depth.
    """
    K1 = _check_intrinsics(K1, "K1")
    K2 = _check_intrinsics(K2, "K2")
    depth = _check_depth(depth1_hw, K1, "depth1")
    T1 = _check_pose(T_map_cam1, "T_map_cam1")
    T2 = _check_pose(T_map_cam2, "T_map_cam2")
    rows, cols = grid_pixels(K1.width, K1.height, grid)
    vv, uu = np.meshgrid(rows, cols, indexing="ij")
    d = depth[vv, uu].astype(np.float64).ravel()
    valid = np.isfinite(d) & (d > 0)
    if not np.any(valid):
        return 0.0
    u1 = uu.ravel()[valid].astype(np.float64)
    v1 = vv.ravel()[valid].astype(np.float64)
    d = d[valid]
    X_c1 = np.stack([(u1 - K1.cx) / K1.fx * d, (v1 - K1.cy) / K1.fy * d, d], axis=1)
    R1, t1 = T1[:3, :3], T1[:3, 3]
    R2, t2 = T2[:3, :3], T2[:3, 3]
    # Row-vector form of X_c2 = R2^T (R1 X_c1 + t1 - t2).
    X_c2 = (X_c1 @ R1.T + (t1 - t2)) @ R2
    z = X_c2[:, 2]
    in_front = z > 0
    z_safe = np.where(in_front, z, 1.0)
    u2 = K2.fx * X_c2[:, 0] / z_safe + K2.cx
    v2 = K2.fy * X_c2[:, 1] / z_safe + K2.cy
    inside = (in_front & (u2 >= -0.5) & (u2 < K2.width - 0.5)
              & (v2 >= -0.5) & (v2 < K2.height - 0.5))
    return float(np.count_nonzero(inside)) / float(d.size)


def bilateral_overlap(depth1: np.ndarray, K1: Intrinsics, T1: np.ndarray, depth2: np.ndarray,
                      K2: Intrinsics, T2: np.ndarray, grid: int = GRID) -> tuple[float, float]:
    """(theta_1, theta_2): image 1 seen by camera 2, and image 2 seen by camera 1."""
    return (frustum_overlap(depth1, K1, T1, K2, T2, grid),
            frustum_overlap(depth2, K2, T2, K1, T1, grid))


def frustum_distances(depth1: np.ndarray, K1: Intrinsics, T1: np.ndarray, depth2: np.ndarray,
                      K2: Intrinsics, T2: np.ndarray, grid: int = GRID) -> tuple[float, float]:
    """(d1, d2) = (1 - theta_1, 1 - theta_2), the regression targets of eq. 4."""
    theta_1, theta_2 = bilateral_overlap(depth1, K1, T1, depth2, K2, T2, grid)
    return 1.0 - theta_1, 1.0 - theta_2


# --------------------------------------------------------------------------
# ORB similarity (eq. 3)
# --------------------------------------------------------------------------

def _to_gray(img: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8, got dtype {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 3:
        return cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2GRAY)
    if a.ndim == 2:
        return np.ascontiguousarray(a)
    raise ValueError(f"{what} must be RGB (H, W, 3) or grayscale (H, W), got shape {a.shape}")


def orb_similarity(img1: np.ndarray, img2: np.ndarray, xi: float = 50.0, n_features: int = 500) -> float:
    """ORB similarity theta' of eq. 3: share of mutual matches with Hamming distance < ``xi``.

    Returns 0.0 when either image has no ORB keypoints or nothing matches.
    """
    g1 = _to_gray(img1, "img1")
    g2 = _to_gray(img2, "img2")
    if not math.isfinite(float(xi)) or xi < 0:
        raise ValueError(f"xi must be a finite Hamming distance >= 0, got {xi!r}")
    if isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer)) or n_features < 1:
        raise ValueError(f"n_features must be an integer >= 1, got {n_features!r}")
    orb = cv2.ORB_create(nfeatures=int(n_features))
    _, desc1 = orb.detectAndCompute(g1, None)
    _, desc2 = orb.detectAndCompute(g2, None)
    if desc1 is None or desc2 is None or len(desc1) == 0 or len(desc2) == 0:
        return 0.0
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(desc1, desc2)
    if not matches:
        return 0.0
    close = sum(1 for m in matches if m.distance < xi)
    return close / len(matches)


# --------------------------------------------------------------------------
# Rotation angle (eq. 5), relative pose (section 3.2), pose distance (Alg. 1)
# --------------------------------------------------------------------------

def rotation_angle(T1: np.ndarray, T2: np.ndarray) -> float:
    """Alpha of eq. 5: the relative rotation angle divided by pi, in [0, 1]."""
    R1 = _check_pose(T1, "T1")[:3, :3]
    R2 = _check_pose(T2, "T2")[:3, :3]
    cos = (np.trace(R1.T @ R2) - 1.0) / 2.0
    return float(np.arccos(np.clip(cos, -1.0, 1.0)) / np.pi)


def relative_pose_targets(T1: np.ndarray, T2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PFR targets of eq. 8: ``delta_t = t2 - t1`` (map frame, m), ``delta_q`` of ``R1^T R2``.

    ``delta_q`` is ``(x, y, z, w)`` with ``w >= 0``.
    """
    T1 = _check_pose(T1, "T1")
    T2 = _check_pose(T2, "T2")
    delta_t = T2[:3, 3] - T1[:3, 3]
    delta_q = matrix_to_quat(T1[:3, :3].T @ T2[:3, :3])
    return delta_t, delta_q


def anchor_from_relative(T2: np.ndarray, delta_t: np.ndarray, delta_q: np.ndarray) -> np.ndarray:
    """Anchor pose from image 2's pose and a relative pose (section 3.2), 4x4.

    Position ``t2 - delta_t``, orientation ``R2 delta_R^-1``; ``delta_q`` is
    normalised first, so raw network outputs are accepted.
    """
    T2 = _check_pose(T2, "T2")
    dt = np.asarray(delta_t, dtype=np.float64)
    if dt.shape != (3,) or not np.all(np.isfinite(dt)):
        raise ValueError(f"delta_t must be 3 finite numbers, got {np.asarray(delta_t).tolist()} "
                         f"of shape {dt.shape}")
    dq = np.asarray(delta_q, dtype=np.float64)
    if dq.shape != (4,):
        raise ValueError(f"delta_q must be a quaternion (x, y, z, w) of shape (4,), got shape {dq.shape}")
    dR = quat_to_matrix(quat_normalize(dq, "delta_q"))
    T = np.eye(4)
    T[:3, :3] = T2[:3, :3] @ dR.T
    T[:3, 3] = T2[:3, 3] - dt
    return T


def pose_distance(T_est: np.ndarray, T_db_n44: np.ndarray) -> np.ndarray:
    """Zeta of Algorithm 1 step 3 against every database pose, shape (n,).

    ``||t_est - t||_2 + 2 arccos(|q_est . q|) / pi``: metres plus the rotation
    angle over pi (0 for the same orientation, 1 for 180 degrees apart).
    """
    T_est = _check_pose(T_est, "T_est")
    T_db = np.asarray(T_db_n44, dtype=np.float64)
    if T_db.ndim != 3 or T_db.shape[1:] != (4, 4):
        raise ValueError(f"T_db_n44 must have shape (n, 4, 4), got {T_db.shape}")
    if T_db.shape[0] == 0:
        raise ValueError("T_db_n44 is empty: the database needs at least one pose")
    if not is_rigid(T_db):
        raise ValueError("T_db_n44 holds a pose that is not a finite rigid transform")
    dist_t = np.linalg.norm(T_db[:, :3, 3] - T_est[:3, 3], axis=1)
    q_est = matrix_to_quat(T_est[:3, :3])
    q_db = matrix_to_quat(T_db[:, :3, :3])
    dot = np.clip(np.abs(q_db @ q_est), 0.0, 1.0)
    return dist_t + 2.0 * np.arccos(dot) / np.pi


# --------------------------------------------------------------------------
# Easy / moderate / hard pairs (section 3.1.3)
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class PairThresholds:
    """Where easy, moderate and hard pairs split; the paper gives no numbers.

    * easy: ``min(theta_1, theta_2) >= easy_min_overlap`` and relative
      rotation ``<= easy_max_angle_deg``. With half of each view seen by the
      other camera and at most 30 degrees of turn, the pair shares most of
      its content under a mild change of viewpoint: the pairs that relative
      pose regression handles best, which the triplet loss should pull
      closest. Taking the *minimum* keeps out pairs where one camera, far
      behind, sees all of the other's view but not the reverse.
    * hard: ``max(theta_1, theta_2) < hard_max_overlap`` or rotation
      ``>= hard_min_angle_deg``. Under a fifth of either view in common leaves
      little to match; at 90 degrees or more the views are across or opposite,
      the case section 3.1 names as hard despite large frustum overlap.
    * moderate: everything else.

    ``hard_max_overlap <= easy_min_overlap`` and
    ``easy_max_angle_deg < hard_min_angle_deg`` keep the classes disjoint.
    With ORB similarity in place of overlap (no depth), other overlap
    thresholds may suit: the values are configurable for that.
    """

    easy_min_overlap: float = 0.5
    easy_max_angle_deg: float = 30.0
    hard_max_overlap: float = 0.2
    hard_min_angle_deg: float = 90.0

    def __post_init__(self) -> None:
        for name in ("easy_min_overlap", "hard_max_overlap"):
            _check_unit(getattr(self, name), name)
        for name in ("easy_max_angle_deg", "hard_min_angle_deg"):
            v = float(getattr(self, name))
            if not math.isfinite(v) or not 0.0 <= v <= 180.0:
                raise ValueError(f"{name} must be in [0, 180] degrees, got {getattr(self, name)!r}")
        if self.hard_max_overlap > self.easy_min_overlap:
            raise ValueError(f"hard_max_overlap ({self.hard_max_overlap}) must not exceed "
                             f"easy_min_overlap ({self.easy_min_overlap})")
        if self.easy_max_angle_deg >= self.hard_min_angle_deg:
            raise ValueError(f"easy_max_angle_deg ({self.easy_max_angle_deg}) must be below "
                             f"hard_min_angle_deg ({self.hard_min_angle_deg})")


def categorize_pair(theta_1: float, theta_2: float, angle_deg: float,
                    thresholds: PairThresholds = PairThresholds()) -> str:
    """Category of a pair, one of ``PAIR_CATEGORIES``.

    ``angle_deg`` is the relative rotation in degrees, ``180 * rotation_angle(T1, T2)``.
    """
    t1 = _check_unit(theta_1, "theta_1")
    t2 = _check_unit(theta_2, "theta_2")
    angle = float(angle_deg)
    if not math.isfinite(angle) or not 0.0 <= angle <= 180.0:
        raise ValueError(f"angle_deg must be in [0, 180], got {angle_deg!r}")
    if min(t1, t2) >= thresholds.easy_min_overlap and angle <= thresholds.easy_max_angle_deg:
        return "easy"
    if max(t1, t2) < thresholds.hard_max_overlap or angle >= thresholds.hard_min_angle_deg:
        return "hard"
    return "moderate"


# --------------------------------------------------------------------------
# Pair pools for training: every anchor's candidate partners, labelled
# --------------------------------------------------------------------------

@dataclass
class PairPools:
    """Labelled candidate pairs of a training set (frame indices into it).

    Row ``e`` is the pair (``anchor[e]``, ``partner[e]``) with overlaps
    ``theta1`` (anchor seen by partner), ``theta2``, rotation ``alpha``
    (eq. 5, in [0, 1]) and ``category`` (index into :data:`PAIR_CATEGORIES`).
    ``by_anchor[i][c]`` lists the rows of anchor ``i`` in category ``c``.
    ``similarity`` is ``'frustum'`` (depth, eq. 2) or ``'orb'`` (eq. 3).
    """

    anchor: np.ndarray
    partner: np.ndarray
    theta1: np.ndarray
    theta2: np.ndarray
    alpha: np.ndarray
    category: np.ndarray
    by_anchor: list[list[np.ndarray]]
    similarity: str
    ranked: np.ndarray | None = None  # (n,) bool: the anchor's categories are ranked thirds (reading 13)

    def ranked_anchors(self) -> int:
        """How many anchors have ranked categories (the hardest available partners)."""
        return 0 if self.ranked is None else int(np.count_nonzero(self.ranked))

    def eligible(self) -> np.ndarray:
        """Anchors with at least one partner in every category (those the triplet loss can use)."""
        return np.array([i for i, cats in enumerate(self.by_anchor) if all(len(c) for c in cats)], dtype=np.int64)

    def counts(self) -> dict[str, int]:
        return {name: int(np.count_nonzero(self.category == k)) for k, name in enumerate(PAIR_CATEGORIES)}


def rank_categories(theta_1: np.ndarray, theta_2: np.ndarray, angle_deg: np.ndarray) -> np.ndarray:
    """Categories (indices into :data:`PAIR_CATEGORIES`) of one anchor's candidates by ranked difficulty.

    Difficulty is ``(1 - min(theta_1, theta_2)) + angle_deg / 180``; the
    easiest third is easy, the hardest third hard, the rest moderate (module
    doc, reading 13). Needs at least 3 candidates for all three categories.
    """
    difficulty = (1.0 - np.minimum(theta_1, theta_2)) + np.asarray(angle_deg, np.float64) / 180.0
    rank = np.empty(len(difficulty), dtype=np.int64)
    rank[np.argsort(difficulty, kind="stable")] = np.arange(len(difficulty))
    return np.minimum(3 * rank // max(len(difficulty), 1), 2)


def _world_grid_points(depth_hw: np.ndarray, K: Intrinsics, T: np.ndarray, grid: int) -> np.ndarray:
    rows, cols = grid_pixels(K.width, K.height, grid)
    vv, uu = np.meshgrid(rows, cols, indexing="ij")
    d = depth_hw[vv, uu].astype(np.float64).ravel()
    ok = np.isfinite(d) & (d > 0)
    u, v, d = uu.ravel()[ok], vv.ravel()[ok], d[ok]
    X_c = np.stack([(u - K.cx) / K.fx * d, (v - K.cy) / K.fy * d, d], axis=1)
    return X_c @ T[:3, :3].T + T[:3, 3]


def _seen_share(X_map_p3: np.ndarray, K: Intrinsics, T_c44: np.ndarray) -> np.ndarray:
    """Share of the points each camera ``T_c44[j]`` sees inside its image (eq. 2's ratio), shape (c,)."""
    if len(X_map_p3) == 0:
        return np.zeros(len(T_c44))
    # X_c = R^T (X - t) for every camera at once: (c, p, 3).
    X_c = np.einsum("pk,ckj->cpj", X_map_p3, T_c44[:, :3, :3]) - np.einsum("ck,ckj->cj", T_c44[:, :3, 3],
                                                                           T_c44[:, :3, :3])[:, None, :]
    z = X_c[..., 2]
    front = z > 0
    z = np.where(front, z, 1.0)
    u = K.fx * X_c[..., 0] / z + K.cx
    v = K.fy * X_c[..., 1] / z + K.cy
    inside = front & (u >= -0.5) & (u < K.width - 0.5) & (v >= -0.5) & (v < K.height - 0.5)
    return inside.mean(axis=1)


def orb_descriptors(img: np.ndarray, n_features: int = 500) -> np.ndarray | None:
    """ORB descriptors of an image (RGB or grey uint8), None without keypoints.

    OpenCV's default 31-pixel patch finds nothing in the small images networks
    take (64x48 has no pixel 31 px from every border), so the patch shrinks
    with the image: a quarter of its shorter side, between 7 and 31 pixels.
    """
    gray = _to_gray(img, "image")
    patch = int(max(7, min(31, min(gray.shape) // 4)))
    orb = cv2.ORB_create(nfeatures=int(n_features), edgeThreshold=patch, patchSize=patch)
    _, desc = orb.detectAndCompute(gray, None)
    return desc if desc is not None and len(desc) else None


def orb_similarity_of(desc1: np.ndarray | None, desc2: np.ndarray | None, xi: float = 50.0) -> float:
    """Eq. 3 on precomputed descriptors (see :func:`orb_similarity`)."""
    if desc1 is None or desc2 is None:
        return 0.0
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(desc1, desc2)
    return sum(1 for m in matches if m.distance < xi) / len(matches) if matches else 0.0


def build_pair_pools(poses_n44: np.ndarray, depths_nhw: np.ndarray | None = None, K: Intrinsics | None = None,
                     images_nhw3: np.ndarray | None = None, thresholds: PairThresholds = PairThresholds(),
                     max_candidates: int = 512, neighbours: int = 8, grid: int = GRID, xi: float = 50.0,
                     seed: int = 0, progress: bool = False) -> PairPools:
    """Label candidate pairs of every frame: frustum overlap with depth, else ORB similarity.

    Anchors that lack a category under ``thresholds`` get ranked categories
    (:func:`rank_categories`, module doc reading 13).

    Each anchor's candidates are its ``neighbours`` nearest frames in time on
    either side plus random others, ``max_candidates`` in all (every other
    frame when there are fewer). ORB matching is much slower than the
    overlap, so pass a smaller ``max_candidates`` for it.
    """
    poses = np.asarray(poses_n44, dtype=np.float64)
    n = len(poses)
    if n < 2:
        raise ValueError(f"pairs need at least 2 frames, got {n}")
    use_depth = depths_nhw is not None
    if use_depth and K is None:
        raise ValueError("frustum overlap needs the intrinsics of the depth images")
    if not use_depth and images_nhw3 is None:
        raise ValueError("pairs need depth (frustum overlap, eq. 2) or images (ORB similarity, eq. 3)")
    rng = np.random.default_rng(seed)
    from tqdm import tqdm

    q = matrix_to_quat(poses[:, :3, :3])
    desc = [orb_descriptors(im) for im in images_nhw3] if not use_depth else None
    pts = [_world_grid_points(np.asarray(depths_nhw[i]), K, poses[i], grid) for i in range(n)] if use_depth else None
    rows: list[tuple[np.ndarray, ...]] = []
    ranked = np.zeros(n, dtype=bool)
    for i in tqdm(range(n), desc="labelling CamNet pairs", unit="frame", disable=not progress):
        near = np.arange(max(0, i - neighbours), min(n, i + neighbours + 1))
        near = near[near != i]
        near = near[np.argsort(np.abs(near - i), kind="stable")][:max_candidates]  # nearest in time first
        others = np.setdiff1d(np.arange(n), np.append(near, i))
        extra = max_candidates - len(near)
        cand = np.concatenate([near, rng.choice(others, min(extra, len(others)), replace=False)])
        if use_depth:
            th1 = _seen_share(pts[i], K, poses[cand])
            th2 = np.array([_seen_share(pts[j], K, poses[i:i + 1])[0] for j in cand])
        else:
            th1 = np.array([orb_similarity_of(desc[i], desc[j], xi) for j in cand])
            th2 = th1  # mutual matches are symmetric (camnet_pairs reading 8)
        ang = 2.0 * np.degrees(np.arccos(np.clip(np.abs(q[cand] @ q[i]), 0.0, 1.0)))
        cat = np.array([PAIR_CATEGORIES.index(categorize_pair(a, b, min(c, 180.0), thresholds))
                        for a, b, c in zip(th1, th2, ang)], dtype=np.int64)
        if len(np.unique(cat)) < len(PAIR_CATEGORIES) and len(cand) >= len(PAIR_CATEGORIES):
            cat = rank_categories(th1, th2, np.minimum(ang, 180.0))
            ranked[i] = True
        rows.append((np.full(len(cand), i), cand, th1, th2, ang / 180.0, cat))
    anchor, partner, th1, th2, alpha, cat = (np.concatenate(c) for c in zip(*rows))
    by_anchor: list[list[np.ndarray]] = [[] for _ in range(n)]
    start = 0
    for i, r in enumerate(rows):
        e = np.arange(start, start + len(r[0]))
        by_anchor[i] = [e[r[5] == k] for k in range(len(PAIR_CATEGORIES))]
        start += len(r[0])
    return PairPools(anchor, partner, th1.astype(np.float32), th2.astype(np.float32), alpha.astype(np.float32),
                     cat, by_anchor, "frustum" if use_depth else "orb", ranked)
