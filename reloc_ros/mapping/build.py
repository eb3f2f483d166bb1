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


"""Build a :class:`~reloc_ros.mapping.featuremap.FeatureMap` from a mapping run's posed images.

Two ways to get 3-D points:

* **Triangulated** (the main path; most robots have no depth camera): keyframes
  are matched with nearby keyframes that look the same way, matches must agree
  with the epipolar geometry of the *known* relative pose (Sampson distance, no
  RANSAC), matches are chained into multi-view tracks (connected components of
  the match graph) and each track is triangulated by an iteratively reweighted
  linear (DLT) least-squares fit in all its views. Only points in front of
  every observing camera, within ``max_reprojection_px`` in every kept view and
  seen under at least ``min_triangulation_angle_deg`` are kept.
* **From depth** (when an aligned depth image exists): each keypoint with a
  valid depth that is not on a depth edge is back-projected; one point per
  observation.

Poses are the ground truth of the mapping run (``T_map_cam``, camera optical
frame); the map is only as good as they are, so nothing here moves them.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from tqdm import tqdm

from reloc_ros.data.types import Intrinsics
from reloc_ros.errors import RelocError
from reloc_ros.geometry import invert_pose
from reloc_ros.mapping.featuremap import FeatureMap, thumbnail_descriptor
from reloc_ros.mapping.features import DESCRIPTOR_SHAPE, FEATURE_TYPES, detect, match

log = logging.getLogger(__name__)

# A keypoint whose 3x3 depth neighbourhood spans more than this fraction of its depth sits on an
# occlusion edge: its depth may belong to the foreground or the background.
_DEPTH_EDGE_REL = 0.05
# Below these a map is probably too thin for the verifier; it still returns, with a warning.
_WARN_MIN_POINTS = 100
_WARN_MIN_POINTS_PER_KF = 20
# Tracks triangulated per batch (bounds the memory of the batched 4x4 systems).
_TRI_BATCH = 50_000


@dataclass(frozen=True)
class MapConfig:
    """How :func:`build_map` builds a feature map.

    * ``feature``: local feature, one of FEATURE_TYPES ('sift' or 'orb');
      ``max_features``: at most this many per keyframe (the strongest).
    * ``keyframe_translation_m`` / ``keyframe_rotation_deg``: a frame becomes a
      keyframe when it is at least this far in translation OR rotation from the
      previous keyframe (consecutive 30 Hz frames are millimetres apart).
    * ``neighbours``: partner keyframes each keyframe is matched with, nearest
      first among those at least ``min_baseline_m`` away (closer pairs cannot
      triangulate) whose optical axes are within ``max_view_angle_deg`` (they
      must look at the same thing).
    * ``ratio``: Lowe's ratio for matching.
    * ``max_epipolar_px``: matches of a pair must lie within this Sampson
      distance (px) of the epipolar geometry of the known relative pose.
    * ``max_reprojection_px``: every kept observation of a point reprojects
      within this (px); ``min_triangulation_angle_deg``: the largest angle
      between a point's observing rays must reach this (smaller means an
      unreliable depth); ``min_track_length``: observations a point needs.
    """

    feature: str = "sift"
    max_features: int = 2048
    keyframe_translation_m: float = 0.05
    keyframe_rotation_deg: float = 5.0
    neighbours: int = 6
    min_baseline_m: float = 0.05
    max_view_angle_deg: float = 40.0
    ratio: float = 0.8
    max_epipolar_px: float = 2.0
    max_reprojection_px: float = 2.0
    min_triangulation_angle_deg: float = 2.0
    min_track_length: int = 2

    def __post_init__(self) -> None:
        if self.feature not in FEATURE_TYPES:
            raise ValueError(f"feature '{self.feature}' unknown; valid features: {', '.join(FEATURE_TYPES)}")
        ints = {"max_features": (self.max_features, 1), "neighbours": (self.neighbours, 1),
                "min_track_length": (self.min_track_length, 2)}
        for name, (val, lo) in ints.items():
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {val!r}")
        ranges = {"keyframe_translation_m": (self.keyframe_translation_m, 0.0, math.inf, "m"),
                  "keyframe_rotation_deg": (self.keyframe_rotation_deg, 0.0, 180.0, "deg"),
                  "min_baseline_m": (self.min_baseline_m, 0.0, math.inf, "m"),
                  "max_view_angle_deg": (self.max_view_angle_deg, 0.0, 180.0, "deg"),
                  "ratio": (self.ratio, 0.0, 1.0, ""),
                  "max_epipolar_px": (self.max_epipolar_px, 0.0, math.inf, "px"),
                  "max_reprojection_px": (self.max_reprojection_px, 0.0, math.inf, "px"),
                  "min_triangulation_angle_deg": (self.min_triangulation_angle_deg, 0.0, 180.0, "deg")}
        for name, (val, lo, hi, unit) in ranges.items():
            ok = isinstance(val, (int, float, np.floating, np.integer)) and not isinstance(val, bool) \
                and np.isfinite(val) and lo <= float(val) <= hi
            # Thresholds that must be strictly positive to mean anything.
            if ok and name in ("ratio", "max_epipolar_px", "max_reprojection_px", "max_view_angle_deg"):
                ok = float(val) > 0.0
            if not ok:
                lo_br = "(" if name in ("ratio", "max_epipolar_px", "max_reprojection_px", "max_view_angle_deg") \
                    else "["
                hi_s = "inf)" if hi == math.inf else f"{hi:g}]"
                raise ValueError(f"{name} must be a number in {lo_br}{lo:g}, {hi_s} {unit}, got {val!r}".rstrip())


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------

def _check_poses(poses_n44: np.ndarray, n: int | None = None) -> np.ndarray:
    arr = np.asarray(poses_n44, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (4, 4) or (n is not None and arr.shape[0] != n):
        want = f"({n}, 4, 4), one pose per image" if n is not None else "(n, 4, 4)"
        raise ValueError(f"poses must have shape {want}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=(1, 2)))
        raise ValueError(f"poses must be finite; non-finite poses at indices {bad[:10].tolist()}")
    return arr


def _rotation_deg(R_a33: np.ndarray, R_b33: np.ndarray) -> float:
    c = (np.trace(R_a33.T @ R_b33) - 1.0) / 2.0
    return math.degrees(math.acos(min(1.0, max(-1.0, c))))


def select_keyframes(poses_n44: np.ndarray, config: MapConfig = MapConfig()) -> np.ndarray:
    """Return the indices (int64, increasing) of the keyframes of a run; frame 0 always is one.

    A frame becomes a keyframe when it is at least ``keyframe_translation_m``
    away from, or rotated at least ``keyframe_rotation_deg`` from, the previous
    keyframe.
    """
    poses = _check_poses(poses_n44)
    if poses.shape[0] == 0:
        return np.zeros(0, np.int64)
    keep = [0]
    for i in range(1, poses.shape[0]):
        last = poses[keep[-1]]
        if np.linalg.norm(poses[i, :3, 3] - last[:3, 3]) >= config.keyframe_translation_m or \
                _rotation_deg(last[:3, :3], poses[i, :3, :3]) >= config.keyframe_rotation_deg:
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def _check_image(image: np.ndarray, size_wh: tuple[int, int] | None, i: int) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image {i} must be uint8 RGB (H, W, 3), got shape {img.shape} dtype {img.dtype}")
    if size_wh is not None and (img.shape[1], img.shape[0]) != size_wh:
        raise ValueError(f"image {i} is {img.shape[1]}x{img.shape[0]} but the intrinsics are for "
                         f"{size_wh[0]}x{size_wh[1]} images; use intrinsics.scaled({img.shape[1]}, {img.shape[0]}) "
                         "if the images were resized")
    return img


def extract_features(images: np.ndarray | Sequence[np.ndarray], config: MapConfig = MapConfig(),
                     progress: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """Local features ``(xy_n2, desc_nd)`` of each image (see :func:`reloc_ros.mapping.features.detect`).

    ``images`` is an (n, H, W, 3) uint8 array or a sequence of (H, W, 3) images.
    """
    out = []
    for i in tqdm(range(len(images)), desc=f"{config.feature} features", unit="img", disable=not progress):
        img = _check_image(images[i], None, i)
        out.append(detect(img, config.feature, config.max_features))
    return out


# ---------------------------------------------------------------------------
# Geometry helpers
# ---------------------------------------------------------------------------

def _skew(v_3: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -v_3[2], v_3[1]], [v_3[2], 0.0, -v_3[0]], [-v_3[1], v_3[0], 0.0]])


def _sampson_px(F_33: np.ndarray, xy_a_n2: np.ndarray, xy_b_n2: np.ndarray) -> np.ndarray:
    """Sampson distance (px) of correspondences a <-> b to the epipolar geometry x_b^T F x_a = 0."""
    xa = np.column_stack([xy_a_n2, np.ones(len(xy_a_n2))])
    xb = np.column_stack([xy_b_n2, np.ones(len(xy_b_n2))])
    Fxa = xa @ F_33.T
    Ftxb = xb @ F_33
    num = np.einsum("ij,ij->i", xb, Fxa)
    den = Fxa[:, 0] ** 2 + Fxa[:, 1] ** 2 + Ftxb[:, 0] ** 2 + Ftxb[:, 1] ** 2
    return np.abs(num) / np.sqrt(np.maximum(den, 1e-300))


def _segment_starts(sorted_ids_m: np.ndarray) -> np.ndarray:
    """Start offsets of the runs of equal values in a sorted id array (for ``np.*.reduceat``)."""
    if sorted_ids_m.size == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.r_[True, sorted_ids_m[1:] != sorted_ids_m[:-1]])


def _triangulate_tracks(track_m: np.ndarray, n_tracks: int, xn_m2: np.ndarray, P_m34: np.ndarray,
                        iterations: int = 3) -> np.ndarray:
    """Multi-view points (T, 3) from observations sorted by track: normalised coords and camera matrices.

    Linear DLT on the stacked rows ``x P3 - P1``, ``y P3 - P2`` of every view,
    solved as the smallest eigenvector of the 4x4 normal matrix; then
    reweighted by 1/depth per view (Hartley & Sturm's iterative linear method),
    so the residual approximates the reprojection error rather than an
    algebraic one. NaN rows for tracks at infinity. Written in numpy because it
    batches all tracks at once; pycolmap triangulates one point per call.
    """
    r1 = xn_m2[:, 0:1] * P_m34[:, 2] - P_m34[:, 0]
    r2 = xn_m2[:, 1:2] * P_m34[:, 2] - P_m34[:, 1]
    starts = _segment_starts(track_m)
    w_m = np.ones(len(track_m))
    X_t4 = np.full((n_tracks, 4), np.nan)
    for _ in range(iterations):
        w2 = (w_m ** 2)[:, None, None]
        A_m44 = w2 * (r1[:, :, None] * r1[:, None, :] + r2[:, :, None] * r2[:, None, :])
        N_t44 = np.add.reduceat(A_m44, starts, axis=0)
        # Scale each system to unit trace: eigh's accuracy is relative to the largest eigenvalue.
        N_t44 /= np.maximum(np.trace(N_t44, axis1=1, axis2=2), 1e-300)[:, None, None]
        _, vec = np.linalg.eigh(N_t44)
        X_t4 = vec[:, :, 0]
        depth_m = np.einsum("mj,mj->m", P_m34[:, 2], X_t4[track_m])
        # Depth of the homogeneous point: X4 may have either sign, so divide it out.
        with np.errstate(divide="ignore", invalid="ignore"):
            z_m = depth_m / X_t4[track_m, 3]
        w_m = np.where(np.isfinite(z_m) & (np.abs(z_m) > 1e-9), 1.0 / np.abs(z_m), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        X_t3 = X_t4[:, :3] / X_t4[:, 3:4]
    X_t3[~np.isfinite(X_t3).all(axis=1) | (np.abs(X_t4[:, 3]) < 1e-12)] = np.nan
    return X_t3


# ---------------------------------------------------------------------------
# The two ways to get points
# ---------------------------------------------------------------------------

@dataclass
class _Obs:
    """Observations of the map being built: keyframe (map index), point, feature index."""

    kf_m: np.ndarray
    point_m: np.ndarray
    feat_m: np.ndarray
    points_p3: np.ndarray
    stats: dict


def _points_from_depth(kf_depths: list[np.ndarray], feats: list[tuple[np.ndarray, np.ndarray]],
                       kf_poses_k44: np.ndarray, intr: Intrinsics) -> _Obs:
    kf_l, feat_l, pts_l = [], [], []
    offs = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    n_kp = n_no_depth = n_edge = 0
    for k, (depth_hw, (xy_n2, _)) in enumerate(zip(kf_depths, feats)):
        h, w = depth_hw.shape
        xy = xy_n2.astype(np.float64)
        n_kp += len(xy)
        u = np.rint(xy[:, 0]).astype(np.int64)
        v = np.rint(xy[:, 1]).astype(np.int64)
        inside = (u >= 1) & (u < w - 1) & (v >= 1) & (v < h - 1)
        idx = np.flatnonzero(inside)
        nb_n9 = depth_hw[v[idx, None] + offs[:, 0], u[idx, None] + offs[:, 1]].astype(np.float64)
        centre = nb_n9[:, 4]
        valid = np.isfinite(nb_n9).all(axis=1) & (nb_n9 > 0).all(axis=1)
        with np.errstate(invalid="ignore"):
            flat = (nb_n9.max(axis=1) - nb_n9.min(axis=1)) < _DEPTH_EDGE_REL * centre
        n_no_depth += int(len(xy) - np.count_nonzero(valid))
        n_edge += int(np.count_nonzero(valid & ~flat))
        sel = idx[valid & flat]
        z = centre[valid & flat]
        # The keypoint's own (sub-pixel) ray at the depth of its pixel: it reprojects exactly onto itself.
        p_cam = np.column_stack([(xy[sel, 0] - intr.cx) / intr.fx * z, (xy[sel, 1] - intr.cy) / intr.fy * z, z])
        pts_l.append(p_cam @ kf_poses_k44[k, :3, :3].T + kf_poses_k44[k, :3, 3])
        kf_l.append(np.full(len(sel), k, np.int64))
        feat_l.append(sel)
    pts = np.concatenate(pts_l) if pts_l else np.zeros((0, 3))
    if len(pts) == 0:
        raise RelocError(f"no keypoint of the {len(feats)} keyframes has a valid depth off depth edges "
                         f"({n_kp} keypoints, {n_no_depth} without depth, {n_edge} on depth edges)")
    stats = {"keypoints": n_kp, "keypoints_without_depth": n_no_depth, "keypoints_on_depth_edges": n_edge,
             "reprojection_px_median": 0.0, "reprojection_px_p90": 0.0, "track_length_median": 1.0,
             "triangulation_angle_deg_median": None,
             "note": "one point per observation, back-projected from depth (reprojects exactly by construction)"}
    return _Obs(np.concatenate(kf_l), np.arange(len(pts), dtype=np.int64), np.concatenate(feat_l), pts, stats)


def _select_pairs(kf_poses_k44: np.ndarray, config: MapConfig) -> np.ndarray:
    """Keyframe pairs (i < j) to match: for each keyframe its ``neighbours`` nearest valid partners."""
    C_k3 = kf_poses_k44[:, :3, 3]
    z_k3 = kf_poses_k44[:, :3, 2]
    cos_max = math.cos(math.radians(config.max_view_angle_deg))
    pairs = set()
    for i in range(len(C_k3)):
        d = np.linalg.norm(C_k3 - C_k3[i], axis=1)
        ok = np.flatnonzero((d >= config.min_baseline_m) & (z_k3 @ z_k3[i] >= cos_max))
        ok = ok[ok != i]
        for j in ok[np.argsort(d[ok], kind="stable")][:config.neighbours]:
            pairs.add((min(i, int(j)), max(i, int(j))))
    return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)


def _points_by_triangulation(feats: list[tuple[np.ndarray, np.ndarray]], kf_poses_k44: np.ndarray,
                             intr: Intrinsics, config: MapConfig, progress: bool) -> _Obs:
    K_33 = intr.K_33
    K_inv = np.linalg.inv(K_33)
    n_kf = len(feats)
    pairs = _select_pairs(kf_poses_k44, config)
    if len(pairs) == 0:
        span = np.ptp(kf_poses_k44[:, :3, 3], axis=0) if n_kf else np.zeros(3)
        raise RelocError(f"cannot triangulate: the mapping poses never move more than min_baseline_m "
                         f"({config.min_baseline_m} m) between keyframes whose optical axes are within "
                         f"max_view_angle_deg ({config.max_view_angle_deg} deg) of each other ({n_kf} keyframes, "
                         f"camera positions span {span[0]:.3f} x {span[1]:.3f} x {span[2]:.3f} m); drive the "
                         "camera around, or give depth images")
    T_cam_map = invert_pose(kf_poses_k44)
    offset = np.r_[0, np.cumsum([len(f[0]) for f in feats])].astype(np.int64)
    edges_a, edges_b = [], []
    n_raw = 0
    for i, j in tqdm(pairs, desc="matching keyframe pairs", unit="pair", disable=not progress):
        (xy_i, d_i), (xy_j, d_j) = feats[i], feats[j]
        ia, ib = match(d_i, d_j, config.feature, config.ratio)
        n_raw += len(ia)
        if len(ia) == 0:
            continue
        T_j_i = T_cam_map[j] @ kf_poses_k44[i]  # camera i -> camera j
        F = K_inv.T @ _skew(T_j_i[:3, 3]) @ T_j_i[:3, :3] @ K_inv
        good = _sampson_px(F, xy_i[ia].astype(np.float64), xy_j[ib].astype(np.float64)) <= config.max_epipolar_px
        edges_a.append(offset[i] + ia[good])
        edges_b.append(offset[j] + ib[good])
    ea = np.concatenate(edges_a) if edges_a else np.zeros(0, np.int64)
    eb = np.concatenate(edges_b) if edges_b else np.zeros(0, np.int64)
    stats = {"pairs": int(len(pairs)), "matches": int(n_raw), "matches_epipolar": int(len(ea))}
    if len(ea) == 0:
        raise RelocError(f"cannot triangulate: no feature matches of the {len(pairs)} keyframe pairs agree with "
                         f"the known poses ({n_raw} ratio-test matches, none within max_epipolar_px "
                         f"{config.max_epipolar_px} px of its epipolar line); are poses and intrinsics right?")

    # Tracks: connected components of the match graph over (keyframe, feature) nodes (a union-find).
    n_nodes = int(offset[-1])
    graph = coo_matrix((np.ones(len(ea), np.int8), (ea, eb)), shape=(n_nodes, n_nodes)).tocsr()
    _, label_n = connected_components(graph, directed=False)
    nodes = np.unique(np.concatenate([ea, eb]))
    kf_of_node = np.searchsorted(offset, nodes, side="right") - 1
    # Number the tracks that have matched nodes 0..T-1; sort observations by track, then keyframe.
    _, track = np.unique(label_n[nodes], return_inverse=True)
    order = np.lexsort((kf_of_node, track))
    track, nodes, kf_m = track[order], nodes[order], kf_of_node[order]
    # A track holding two features of one keyframe joined things that are not one point: drop it.
    dup = np.r_[False, (track[1:] == track[:-1]) & (kf_m[1:] == kf_m[:-1])]
    bad_tracks = np.unique(track[dup])
    keep = ~np.isin(track, bad_tracks)
    n_tracks_all = int(track.max()) + 1 if track.size else 0
    track, nodes, kf_m = track[keep], nodes[keep], kf_m[keep]
    _, track = np.unique(track, return_inverse=True)
    feat_m = nodes - offset[kf_m]
    xy_m2 = _gather_xy(feats, kf_m, feat_m)
    stats.update(tracks=n_tracks_all, tracks_conflicting=int(len(bad_tracks)))

    # Triangulate, drop bad observations, re-triangulate, until nothing changes (at most 3 rounds).
    P_k34 = T_cam_map[:, :3, :]
    # Work relative to the mean camera centre: better conditioned normal matrices far from the origin.
    c0 = kf_poses_k44[:, :3, 3].mean(axis=0)
    P_k34 = P_k34.copy()
    P_k34[:, :, 3] += np.einsum("kij,j->ki", P_k34[:, :, :3], c0)
    xn_m2 = (xy_m2 @ K_inv[:2, :2].T) + K_inv[:2, 2]
    obs_ok = np.ones(len(track), bool)
    X_t3 = np.zeros((0, 3))
    err_m = np.zeros(len(track))
    rounds = tqdm(range(3), desc="triangulating", unit="round", disable=not progress)
    for _ in rounds:
        counts = np.bincount(track[obs_ok], minlength=int(track.max()) + 1 if track.size else 0)
        obs_ok &= counts[track] >= config.min_track_length
        sel = np.flatnonzero(obs_ok)
        X_t3 = np.full((len(counts), 3), np.nan)
        t_sel = track[sel]  # sorted, as the observations are
        for lo in range(0, len(counts), _TRI_BATCH):
            a, b = np.searchsorted(t_sel, [lo, lo + _TRI_BATCH])
            part = sel[a:b]
            if part.size == 0:
                continue
            uniq, t_local = np.unique(track[part], return_inverse=True)
            X_t3[uniq] = _triangulate_tracks(t_local, len(uniq), xn_m2[part], P_k34[kf_m[part]])
        p_cam = np.einsum("mij,mj->mi", P_k34[kf_m, :, :3], X_t3[track]) + P_k34[kf_m, :, 3]
        with np.errstate(divide="ignore", invalid="ignore"):
            proj = p_cam[:, :2] / p_cam[:, 2:3] @ K_33[:2, :2].T + K_33[:2, 2]
            err_m = np.linalg.norm(proj - xy_m2, axis=1)
        good = np.isfinite(err_m) & (p_cam[:, 2] > 1e-9) & (err_m <= config.max_reprojection_px)
        new_ok = obs_ok & good
        if np.array_equal(new_ok, obs_ok):
            break
        obs_ok = new_ok
    rounds.close()
    counts = np.bincount(track[obs_ok], minlength=len(X_t3))
    valid_t = (counts >= config.min_track_length) & np.isfinite(X_t3).all(axis=1)
    obs_ok &= valid_t[track]

    # Largest angle between observing rays: the ray farthest from the track's mean ray, against all others.
    centres = kf_poses_k44[:, :3, 3] - c0
    sel = np.flatnonzero(obs_ok)
    ray = X_t3[track[sel]] - centres[kf_m[sel]]
    ray /= np.maximum(np.linalg.norm(ray, axis=1, keepdims=True), 1e-300)
    t_sel = track[sel]
    starts = _segment_starts(t_sel)
    mean = np.add.reduceat(ray, starts, axis=0) if len(sel) else np.zeros((0, 3))
    mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-300)
    seg = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(sel)]))
    cos_mean = np.einsum("ij,ij->i", ray, mean[seg]) if len(sel) else np.zeros(0)
    far = np.lexsort((cos_mean, seg))[starts] if len(sel) else np.zeros(0, np.int64)
    cos_far = np.einsum("ij,ij->i", ray, ray[far][seg]) if len(sel) else np.zeros(0)
    min_cos = np.minimum.reduceat(cos_far, starts) if len(sel) else np.zeros(0)
    angle_s = np.degrees(np.arccos(np.clip(min_cos, -1.0, 1.0)))
    keep_seg = angle_s >= config.min_triangulation_angle_deg
    sel = sel[keep_seg[seg]]
    # Renumber the surviving tracks as points 0..P-1.
    kept_tracks, point_m = np.unique(track[sel], return_inverse=True)
    n_points = len(kept_tracks)
    stats.update(tracks_consistent=int(np.count_nonzero(valid_t)), points_low_angle=int(np.count_nonzero(~keep_seg)))
    if n_points == 0:
        raise RelocError(f"cannot triangulate: {len(ea)} epipolar-consistent matches in {len(pairs)} keyframe pairs "
                         f"gave {n_tracks_all} tracks, of which {int(np.count_nonzero(valid_t))} reproject within "
                         f"{config.max_reprojection_px} px and none is seen under >= "
                         f"{config.min_triangulation_angle_deg} deg; the baselines may be too short for the scene "
                         "depth (lower min_triangulation_angle_deg or drive further)")
    track_len = np.bincount(point_m)
    err = err_m[sel]
    stats.update(reprojection_px_median=float(np.median(err)), reprojection_px_p90=float(np.percentile(err, 90)),
                 track_length_median=float(np.median(track_len)),
                 triangulation_angle_deg_median=float(np.median(angle_s[keep_seg])))
    return _Obs(kf_m[sel], point_m.astype(np.int64), feat_m[sel], X_t3[kept_tracks] + c0, stats)


def _gather_xy(feats: list[tuple[np.ndarray, np.ndarray]], kf_m: np.ndarray, feat_m: np.ndarray) -> np.ndarray:
    """Keypoint pixels (M, 2) float64 of observations given by keyframe and feature index."""
    all_xy = np.concatenate([f[0] for f in feats]).astype(np.float64) if feats else np.zeros((0, 2))
    offset = np.r_[0, np.cumsum([len(f[0]) for f in feats])].astype(np.int64)
    return all_xy[offset[kf_m] + feat_m]


# ---------------------------------------------------------------------------
# The map
# ---------------------------------------------------------------------------

def _check_features(features: Sequence, n_frames: int, kf: np.ndarray, feature: str) -> list:
    """Return the keyframes' entries of ``features`` (one per frame, or one per keyframe), checked."""
    if len(features) == n_frames:
        chosen = [features[int(i)] for i in kf]
    elif len(features) == len(kf):
        chosen = list(features)
    else:
        raise ValueError(f"features must hold one entry per frame ({n_frames}) or per keyframe ({len(kf)}), "
                         f"got {len(features)}")
    width, dtype = DESCRIPTOR_SHAPE[feature]
    out = []
    for i, entry in zip(kf, chosen):
        if entry is None or len(entry) != 2:
            raise ValueError(f"features of frame {int(i)} must be a pair (xy_n2, desc), got {type(entry).__name__}")
        xy, desc = np.asarray(entry[0], np.float32), np.asarray(entry[1])
        if xy.ndim != 2 or xy.shape[1] != 2 or desc.shape != (len(xy), width) or desc.dtype != dtype:
            raise ValueError(f"features of frame {int(i)} must be xy (n, 2) and {feature} descriptors (n, {width}) "
                             f"{np.dtype(dtype).name}, got xy {xy.shape} and desc {desc.shape} {desc.dtype}")
        out.append((xy, desc))
    return out


def build_map(images: np.ndarray | Sequence[np.ndarray], poses_n44: np.ndarray, intrinsics: Intrinsics,
              depths: np.ndarray | Sequence[np.ndarray] | None = None, config: MapConfig = MapConfig(),
              stamps_ns: np.ndarray | None = None,
              features: Sequence[tuple[np.ndarray, np.ndarray] | None] | None = None,
              progress: bool = False) -> FeatureMap:
    """Build a feature map from a mapping run: posed RGB images and, optionally, aligned depth.

    ``images``: (n, H, W, 3) uint8 RGB (an array, memmap or sequence);
    ``poses_n44``: their ground-truth ``T_map_cam``; ``intrinsics``: of those
    images. Keyframes are selected (:func:`select_keyframes`) and features
    extracted for them, unless ``features`` gives them (one ``(xy, desc)`` per
    frame, None allowed for non-keyframes, or one per keyframe), e.g. to build
    a depth and a triangulated map from one extraction. With ``depths`` (float
    z-depth in metres, 0 or NaN = none) points come from depth, else they are
    triangulated (see the module docstring). ``stamps_ns`` become the keyframe
    stamps (default: frame indices, noted in ``info['stamps']``).

    Raises ValueError on bad inputs (mismatched lengths, non-finite poses,
    images not of the intrinsics' size) and RelocError when no point at all can
    be made, saying why. A thin map (fewer than 100 points, or most keyframes
    seeing fewer than 20) is returned with a warning logged.
    """
    t0 = time.perf_counter()
    if not isinstance(config, MapConfig):
        raise ValueError(f"config must be a MapConfig, got {type(config).__name__}")
    if not isinstance(intrinsics, Intrinsics):
        raise ValueError(f"intrinsics must be a reloc_ros.data.types.Intrinsics, got {type(intrinsics).__name__}")
    n = len(images)
    if n < 1:
        raise ValueError("build_map needs at least one image")
    poses = _check_poses(poses_n44)
    if poses.shape[0] != n:
        raise ValueError(f"{n} images but {poses.shape[0]} poses; give one pose per image")
    size_wh = (intrinsics.width, intrinsics.height)
    if isinstance(images, np.ndarray) and (images.ndim != 4 or (images.shape[2], images.shape[1]) != size_wh):
        _check_image(images[0], size_wh, 0)  # names the size (or shape) that is wrong
        raise ValueError(f"images must be (n, H, W, 3) of the intrinsics' size {size_wh[0]}x{size_wh[1]}, "
                         f"got shape {images.shape}")
    if stamps_ns is not None:
        stamps = np.asarray(stamps_ns)
        if stamps.shape != (n,) or not np.issubdtype(stamps.dtype, np.integer):
            raise ValueError(f"stamps_ns must be {n} integer nanosecond stamps, got shape {stamps.shape} "
                             f"dtype {stamps.dtype}")
    if depths is not None and len(depths) != n:
        raise ValueError(f"{n} images but {len(depths)} depth images; give one per image (or none)")
    rigid = np.abs(poses[:, :3, :3] @ np.swapaxes(poses[:, :3, :3], 1, 2) - np.eye(3)).max(axis=(1, 2)) < 1e-4
    if not rigid.all():
        raise ValueError(f"poses must be rigid transforms; not at indices {np.flatnonzero(~rigid)[:10].tolist()}")

    kf = select_keyframes(poses, config)
    kf_images = [_check_image(images[int(i)], size_wh, int(i)) for i in kf]
    if features is None:
        feats = extract_features(kf_images, config, progress=progress)
    else:
        feats = _check_features(features, n, kf, config.feature)
    kf_poses = poses[kf]
    log.info("mapping %d frames: %d keyframes, %d %s features (median %d per keyframe)", n, len(kf),
             sum(len(f[0]) for f in feats), config.feature, int(np.median([len(f[0]) for f in feats])))

    if depths is not None:
        kf_depths = []
        for i in kf:
            d = np.asarray(depths[int(i)])
            if d.shape != (size_wh[1], size_wh[0]) or not np.issubdtype(d.dtype, np.floating):
                raise ValueError(f"depth {int(i)} must be float metres of shape ({size_wh[1]}, {size_wh[0]}) "
                                 f"aligned with the images, got shape {d.shape} dtype {d.dtype} "
                                 "(convert millimetre uint16 depth to metres)")
            kf_depths.append(d)
        obs = _points_from_depth(kf_depths, feats, kf_poses, intrinsics)
        source = "depth"
    else:
        obs = _points_by_triangulation(feats, kf_poses, intrinsics, config, progress)
        source = "triangulated"

    all_xy = np.concatenate([f[0] for f in feats]).astype(np.float32)
    all_desc = np.concatenate([f[1] for f in feats])
    offset = np.r_[0, np.cumsum([len(f[0]) for f in feats])].astype(np.int64)
    flat = offset[obs.kf_m] + obs.feat_m
    per_kf = np.bincount(obs.kf_m, minlength=len(kf))
    seconds = time.perf_counter() - t0
    info = {"point_source": source, "feature": config.feature, "frames": int(n), "keyframes": int(len(kf)),
            "points": int(len(obs.points_p3)), "observations": int(len(obs.kf_m)),
            "features_total": int(offset[-1]), "points_per_keyframe_median": float(np.median(per_kf)),
            "keyframes_under_20_points": int(np.count_nonzero(per_kf < _WARN_MIN_POINTS_PER_KF)),
            "keyframe_frame_indices": kf.tolist(), "stamps": "stamps_ns" if stamps_ns is not None else "frame indices",
            "build_seconds": round(seconds, 3), "config": asdict(config), **obs.stats}
    fmap = FeatureMap(
        feature=config.feature, intrinsics=intrinsics, kf_poses_k44=kf_poses,
        kf_stamps_ns=(np.asarray(stamps_ns, np.int64)[kf] if stamps_ns is not None else kf.astype(np.int64)),
        kf_thumbs_kd=np.stack([thumbnail_descriptor(img) for img in kf_images]), points_p3=obs.points_p3,
        obs_kf_m=obs.kf_m, obs_point_m=obs.point_m, obs_xy_m2=all_xy[flat], obs_desc_md=all_desc[flat], info=info)
    med = info.get("reprojection_px_median")
    log.info("%s map: %d keyframes, %d points, %d observations, median reprojection %.2f px, %.1f s", source,
             fmap.n_keyframes, fmap.n_points, fmap.n_observations, med if med is not None else float("nan"), seconds)
    if fmap.n_points < _WARN_MIN_POINTS or info["keyframes_under_20_points"] > len(kf) / 2:
        log.warning("thin %s map: %d points; %d of %d keyframes see fewer than %d points (median %.0f per "
                    "keyframe); the verifier may often fail", source, fmap.n_points,
                    info["keyframes_under_20_points"], len(kf), _WARN_MIN_POINTS_PER_KF,
                    info["points_per_keyframe_median"])
    return fmap


__all__ = ["MapConfig", "build_map", "extract_features", "select_keyframes"]
