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


"""The 3-D feature map: features, matching, building (triangulated and from depth), storage, queries.

Built on the synthetic room (exact renders, depth and poses): the 'train' route,
120 frames at 320x240 (about 0.18 m between frames, every frame a keyframe).
Figures measured on this data are in the comments beside each threshold.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import replace

import numpy as np
import pytest

from reloc_ros.data.synth import synthetic_dataset
from reloc_ros.data.types import PoseDataset
from reloc_ros.errors import RelocError
from reloc_ros.geometry import invert_pose, make_pose
from reloc_ros.mapping import (FeatureMap, MAP_FORMAT_VERSION, MapConfig, build_map, detect, digest,
                               extract_features, match, select_keyframes, thumbnail_descriptor)

SIZE = (320, 240)
FRAMES = 120


@pytest.fixture(scope="module")
def run() -> PoseDataset:
    return synthetic_dataset(route="train", frames=FRAMES, seed=0, size=SIZE, depth=True)


@pytest.fixture(scope="module")
def sift_features(run: PoseDataset) -> list:
    kf = select_keyframes(run.poses_n44, MapConfig())
    return extract_features(run.images[kf], MapConfig())


@pytest.fixture(scope="module")
def sift_map(run: PoseDataset, sift_features: list) -> FeatureMap:
    return build_map(run.images, run.poses_n44, run.intrinsics, stamps_ns=run.stamps_ns, features=sift_features)


def _obs_depth_errors(fmap: FeatureMap, run: PoseDataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per observation: relative error of the point's depth against the rendered depth, reprojection (px), z."""
    frames = np.asarray(fmap.info["keyframe_frame_indices"])
    T_cam_map = invert_pose(fmap.kf_poses_k44[fmap.obs_kf_m])
    p_cam = np.einsum("mij,mj->mi", T_cam_map[:, :3, :3], fmap.points_p3[fmap.obs_point_m]) + T_cam_map[:, :3, 3]
    uv = np.rint(fmap.obs_xy_m2).astype(np.int64)
    true_z = run.depths[frames[fmap.obs_kf_m], uv[:, 1], uv[:, 0]].astype(np.float64)
    K = run.intrinsics
    proj = np.column_stack([K.fx * p_cam[:, 0] / p_cam[:, 2] + K.cx, K.fy * p_cam[:, 1] / p_cam[:, 2] + K.cy])
    return np.abs(p_cam[:, 2] - true_z) / true_z, np.linalg.norm(proj - fmap.obs_xy_m2, axis=1), p_cam[:, 2]


# ---------------------------------------------------------------------------
# Features and matching
# ---------------------------------------------------------------------------

def test_detect_gives_rootsift_and_orb_in_image_coordinates(run: PoseDataset) -> None:
    xy, desc = detect(run.images[0], "sift", max_features=50)
    assert 0 < len(xy) <= 50 and xy.dtype == np.float32 and desc.shape == (len(xy), 128)
    assert desc.dtype == np.float32 and np.allclose(np.linalg.norm(desc, axis=1), 1.0, atol=1e-5)
    # ORB detects on a 2x upsampled 320x240 image; its keypoints must still be pixels of the given image.
    xy_o, desc_o = detect(run.images[0], "orb")
    assert desc_o.dtype == np.uint8 and desc_o.shape == (len(xy_o), 32) and len(xy_o) > 20
    assert xy_o.min() >= -0.5 and xy_o[:, 0].max() < SIZE[0] and xy_o[:, 1].max() < SIZE[1]
    with pytest.raises(ValueError, match="surf.*sift, orb"):
        detect(run.images[0], "surf")
    with pytest.raises(ValueError, match="float32"):
        detect(run.images[0].astype(np.float32), "sift")
    with pytest.raises(ValueError, match=r"\(240, 320\)"):
        detect(run.images[0][..., 0], "sift")


def test_match_ratio_test_and_one_match_per_b() -> None:
    rng = np.random.default_rng(0)
    b = rng.random((300, 128)).astype(np.float32)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    perm = rng.permutation(300)[:100]
    a = b[perm] + 0.001 * rng.standard_normal((100, 128)).astype(np.float32)
    ia, ib = match(a, b, "sift")
    assert ia.dtype == np.int64 and ib.dtype == np.int64
    assert np.array_equal(ia, np.arange(100)) and np.array_equal(ib, perm)
    # Two identical queries for one map descriptor: only one match survives.
    ia2, ib2 = match(np.concatenate([a[:1], a[:1]]), b, "sift")
    assert len(ib2) == 1 and ib2[0] == perm[0]
    # An ambiguous query (two equally near map descriptors) fails the ratio test.
    b_amb = np.concatenate([b, b[perm[:1]]])
    assert match(a[:1], b_amb, "sift")[0].size == 0
    # ORB: Hamming distance on uint8.
    bo = rng.integers(0, 256, (200, 32), dtype=np.uint8)
    ia_o, ib_o = match(bo[50:80], bo, "orb")
    assert np.array_equal(ib_o, np.arange(50, 80))
    for args in ((a[:0], b), (a, b[:0]), (np.zeros((0, 128), np.float32), np.zeros((0, 128), np.float32))):
        ea, eb = match(*args, "sift")
        assert ea.size == 0 and eb.size == 0 and ea.dtype == np.int64
    with pytest.raises(ValueError, match="uint8"):
        match(bo.astype(np.float32), bo, "orb")
    with pytest.raises(ValueError, match="brief"):
        match(bo, bo, "brief")


def test_select_keyframes_thins_by_translation_or_rotation() -> None:
    # 1.01 cm per frame along x (not 1 cm: 5 steps must not round to just below 5 cm): every 5th frame.
    poses = np.stack([make_pose([0.0101 * i, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]) for i in range(21)])
    assert select_keyframes(poses, MapConfig()).tolist() == [0, 5, 10, 15, 20]
    # Turning in place by 1.01 deg per frame: a keyframe every 5 frames.
    turn = np.stack([make_pose([0.0, 0.0, 0.0], [0.0, np.sin(np.radians(1.01 * i) / 2), 0.0,
                                                 np.cos(np.radians(1.01 * i) / 2)])
                     for i in range(11)])
    assert select_keyframes(turn, MapConfig()).tolist() == [0, 5, 10]


def test_map_config_names_bad_values() -> None:
    with pytest.raises(ValueError, match="ratio.*1"):
        MapConfig(ratio=1.5)
    with pytest.raises(ValueError, match="min_track_length.*2"):
        MapConfig(min_track_length=1)
    with pytest.raises(ValueError, match="feature 'akaze'"):
        MapConfig(feature="akaze")
    with pytest.raises(ValueError, match="max_reprojection_px"):
        MapConfig(max_reprojection_px=float("nan"))


# ---------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------

def test_triangulated_points_lie_on_the_rendered_surfaces(sift_map: FeatureMap, run: PoseDataset) -> None:
    fmap = sift_map
    assert fmap.info["point_source"] == "triangulated" and fmap.feature == "sift"
    # Measured: 513 points, 2705 observations, 120 keyframes; median track length 4.
    assert fmap.n_points >= 300 and fmap.n_observations >= 3 * fmap.n_points
    rel, reproj, z = _obs_depth_errors(fmap, run)
    assert np.all(z > 0)
    # Measured: median 2.5 % (the camera drives forwards, so most points are seen under a few degrees:
    # 0.4 px of keypoint noise at f = 228 px is 2-5 % in depth there); 82 % within 10 %.
    assert np.median(rel) < 0.035
    assert np.mean(rel < 0.10) > 0.7
    # Every kept observation reprojects within max_reprojection_px (2 px); measured median 0.40 px.
    assert np.median(reproj) < 1.0 and reproj.max() <= MapConfig().max_reprojection_px + 1e-6
    assert abs(fmap.info["reprojection_px_median"] - np.median(reproj)) < 1e-3
    # Stamps are the given ones, keyframes in order; every point has at least min_track_length views.
    assert np.array_equal(fmap.kf_stamps_ns, run.stamps_ns[fmap.info["keyframe_frame_indices"]])
    assert np.bincount(fmap.obs_point_m).min() >= 2


def test_larger_triangulation_angle_keeps_fewer_better_points(sift_map: FeatureMap, run: PoseDataset,
                                                              sift_features: list) -> None:
    strict = build_map(run.images, run.poses_n44, run.intrinsics, config=MapConfig(min_triangulation_angle_deg=8.0),
                       features=sift_features)
    rel, _, _ = _obs_depth_errors(strict, run)
    # Measured: 8 deg keeps 144 of the 513 points, at a median depth error of 1.0 % (2 deg: 2.5 %).
    assert strict.n_points < sift_map.n_points
    assert np.median(rel) < 0.02


def test_depth_points_lie_on_the_surfaces_and_skip_missing_depth(run: PoseDataset, sift_features: list) -> None:
    depths = run.depths.copy()
    depths[:, :, : SIZE[0] // 2] = 0.0  # no depth in the left half
    depths[:, :40, :] = np.nan  # nor at the top
    fmap = build_map(run.images, run.poses_n44, run.intrinsics, depths=depths, features=sift_features)
    assert fmap.info["point_source"] == "depth"
    assert fmap.n_points == fmap.n_observations > 200
    assert fmap.obs_xy_m2[:, 0].min() >= SIZE[0] // 2 - 0.5 and fmap.obs_xy_m2[:, 1].min() >= 40 - 0.5
    rel, reproj, _ = _obs_depth_errors(fmap, run)
    assert np.max(rel) < 1e-5 and np.max(reproj) < 1e-3
    # No point on an occlusion edge: the rendered 3x3 neighbourhood spans less than 5 % of the depth.
    frames = np.asarray(fmap.info["keyframe_frame_indices"])[fmap.obs_kf_m]
    uv = np.rint(fmap.obs_xy_m2).astype(np.int64)
    nb = np.stack([run.depths[frames, uv[:, 1] + dy, uv[:, 0] + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)], 1)
    assert np.all(nb.max(axis=1) - nb.min(axis=1) < 0.05 * nb[:, 4])


def test_orb_map(run: PoseDataset) -> None:
    fmap = build_map(run.images[:60], run.poses_n44[:60], run.intrinsics, config=MapConfig(feature="orb"))
    assert fmap.feature == "orb" and fmap.obs_desc_md.dtype == np.uint8 and fmap.obs_desc_md.shape[1] == 32
    rel, reproj, _ = _obs_depth_errors(fmap, run)
    # Measured on these 60 frames: 270 points, median depth error 3.2 %, reprojection 0.5 px.
    assert fmap.n_points >= 100
    assert np.median(rel) < 0.05 and np.median(reproj) < 1.0
    back = FeatureMap.from_bytes(fmap.to_bytes())
    assert np.array_equal(back.obs_desc_md, fmap.obs_desc_md)


def test_bad_inputs_are_named(run: PoseDataset) -> None:
    small = run.intrinsics.scaled(160, 120)
    with pytest.raises(ValueError, match="320x240.*160x120"):
        build_map(run.images[:10], run.poses_n44[:10], small)
    with pytest.raises(ValueError, match="10 images but 9 poses"):
        build_map(run.images[:10], run.poses_n44[:9], run.intrinsics)
    poses = run.poses_n44[:10].copy()
    poses[3, 0, 3] = np.nan
    with pytest.raises(ValueError, match=r"non-finite poses at indices \[3\]"):
        build_map(run.images[:10], poses, run.intrinsics)
    with pytest.raises(ValueError, match="depth images"):
        build_map(run.images[:10], run.poses_n44[:10], run.intrinsics, depths=run.depths[:5])


def test_a_run_that_never_moves_cannot_triangulate(run: PoseDataset) -> None:
    still = np.repeat(run.poses_n44[:1], 20, axis=0)
    with pytest.raises(RelocError, match="min_baseline_m"):
        build_map(np.repeat(run.images[:1], 20, axis=0), still, run.intrinsics)


# ---------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------

_ARRAYS = ("kf_poses_k44", "kf_stamps_ns", "kf_thumbs_kd", "points_p3", "obs_kf_m", "obs_point_m", "obs_xy_m2",
           "obs_desc_md")


def _edit(blob: bytes, header_edit=None, **arrays: np.ndarray) -> bytes:
    """Rewrite a stored map with some arrays or header entries changed (as an attacker could)."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        content = {name: npz[name] for name in npz.files}
    header = json.loads(content["header"].tobytes().decode("utf-8"))
    if header_edit:
        header_edit(header)
    content.update(arrays)
    content["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **content)
    return buf.getvalue()


def test_map_round_trips_exactly_but_for_sift_quantisation(sift_map: FeatureMap) -> None:
    blob = sift_map.to_bytes()
    back = FeatureMap.from_bytes(blob)
    for name in _ARRAYS:
        a, b = getattr(sift_map, name), getattr(back, name)
        if name == "obs_desc_md":  # stored as uint8 (x 512): within half a step, and matching is unchanged
            assert a.dtype == b.dtype and np.abs(a - b).max() < 2.0 / 512, name
            continue
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    query = sift_map.obs_desc_md[::3]
    ia, ib = match(query, sift_map.obs_desc_md, "sift")
    ja, jb = match(query, back.obs_desc_md, "sift")
    same = len(set(zip(ia.tolist(), ib.tolist())) & set(zip(ja.tolist(), jb.tolist())))
    assert same >= 0.98 * len(ia)
    assert len(blob) < 0.5 * sift_map.obs_desc_md.nbytes  # four times smaller descriptors, then compressed
    assert back.intrinsics == sift_map.intrinsics and back.feature == "sift"
    assert back.info == json.loads(json.dumps(sift_map.info))
    assert digest(blob) == digest(bytes(blob)) and len(digest(blob)) == 64
    summary = back.summary()
    json.dumps(summary, allow_nan=False)
    assert summary["points"] == sift_map.n_points and summary["format_version"] == MAP_FORMAT_VERSION
    assert summary["point_source"] == "triangulated" and summary["intrinsics"]["width"] == SIZE[0]


class _Payload:
    """Unpickling this makes a directory: proof that code ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_from_bytes_refuses_broken_and_crafted_files(sift_map: FeatureMap, tmp_path) -> None:
    blob = sift_map.to_bytes()
    rng = np.random.default_rng(0)
    with pytest.raises(RelocError, match="my map.*not a zip"):
        FeatureMap.from_bytes(rng.integers(0, 256, 1000, dtype=np.uint8).tobytes(), what="my map")
    with pytest.raises(RelocError, match="my map"):
        FeatureMap.from_bytes(blob[: len(blob) // 2], what="my map")
    # A pickled object array where the points should be, in an otherwise valid map: refused without running it.
    marker = tmp_path / "pwned"
    evil = np.empty(1, dtype=object)
    evil[0] = _Payload(str(marker))
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        content = {name: npz[name] for name in npz.files}
    content["points_p3"] = evil
    buf = io.BytesIO()
    np.savez(buf, **content)
    with pytest.raises(RelocError, match="unreadable or corrupt"):
        FeatureMap.from_bytes(buf.getvalue())
    assert not marker.exists()
    # The payload is live: loading it with pickle allowed does run it (so the check above can fail).
    live = tmp_path / "live"
    buf2 = io.BytesIO()
    evil[0] = _Payload(str(live))
    np.savez(buf2, points_p3=evil)
    with np.load(io.BytesIO(buf2.getvalue()), allow_pickle=True) as npz:
        npz["points_p3"]
    assert live.exists()

    bad_point = sift_map.obs_point_m.copy()
    bad_point[5] = sift_map.n_points
    with pytest.raises(RelocError, match="obs_point_m indices"):
        FeatureMap.from_bytes(_edit(blob, obs_point_m=bad_point))

    def newer(h: dict) -> None:
        h["format_version"] = MAP_FORMAT_VERSION + 1

    with pytest.raises(RelocError, match="upgrade reloc_ros"):
        FeatureMap.from_bytes(_edit(blob, newer))

    def other(h: dict) -> None:
        h["format"] = "something_else"

    with pytest.raises(RelocError, match="not a reloc_ros feature map"):
        FeatureMap.from_bytes(_edit(blob, other))
    points = sift_map.points_p3.copy()
    points[0, 0] = np.inf
    with pytest.raises(RelocError, match="points_p3.*non-finite"):
        FeatureMap.from_bytes(_edit(blob, points_p3=points))
    # Descriptors of the wrong width for the feature (header kept consistent with the array).
    desc = np.zeros((sift_map.n_observations, 64), np.float32)

    def shape64(h: dict) -> None:
        h["arrays"]["obs_desc_md"]["shape"] = list(desc.shape)

    with pytest.raises(RelocError, match="obs_desc_md"):
        FeatureMap.from_bytes(_edit(blob, shape64, obs_desc_md=desc))
    with pytest.raises(RelocError, match="declares"):
        FeatureMap.from_bytes(_edit(blob, obs_desc_md=desc))
    buf3 = io.BytesIO()
    np.savez(buf3, header=np.frombuffer(b"{}", np.uint8))
    with pytest.raises(RelocError, match="missing"):
        FeatureMap.from_bytes(buf3.getvalue())


# ---------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------

def test_observations_are_those_of_the_keyframes(sift_map: FeatureMap) -> None:
    kfs = [7, 2, 7 + 1]
    desc, pts, kf = sift_map.observations(kfs)
    want = np.concatenate([np.flatnonzero(sift_map.obs_kf_m == k) for k in kfs])
    assert np.array_equal(kf, sift_map.obs_kf_m[want]) and np.array_equal(pts, sift_map.obs_point_m[want])
    assert np.array_equal(desc, sift_map.obs_desc_md[want])
    assert sift_map.observations([])[0].shape == (0, 128)
    with pytest.raises(ValueError, match="keyframe indices"):
        sift_map.observations([sift_map.n_keyframes])


def test_observations_sorted_at_construction(sift_map: FeatureMap) -> None:
    perm = np.random.default_rng(1).permutation(sift_map.n_observations)
    shuffled = replace(sift_map, obs_kf_m=sift_map.obs_kf_m[perm], obs_point_m=sift_map.obs_point_m[perm],
                       obs_xy_m2=sift_map.obs_xy_m2[perm], obs_desc_md=sift_map.obs_desc_md[perm])
    d1, p1, _ = shuffled.observations([3])
    d0, p0, _ = sift_map.observations([3])
    assert sorted(p1.tolist()) == sorted(p0.tolist()) and len(d1) == len(d0)


def test_retrieve_finds_the_keyframe_itself(sift_map: FeatureMap, run: PoseDataset) -> None:
    frames = sift_map.info["keyframe_frame_indices"]
    for k in range(0, sift_map.n_keyframes, 10):
        assert sift_map.retrieve(run.images[frames[k]], 3)[0] == k
    assert not thumbnail_descriptor(np.full((10, 10, 3), 7, np.uint8)).any()  # constant image: no structure


def test_nearest_keyframes_respect_viewing_direction(sift_map: FeatureMap) -> None:
    T = sift_map.kf_poses_k44[40]
    assert sift_map.nearest_keyframes(T, 3)[0] == 40
    # The same place, looking back: only keyframes facing that way qualify.
    back = T.copy()
    back[:3, :3] = T[:3, :3] @ np.diag([-1.0, 1.0, -1.0])  # 180 deg about the camera's y axis
    idx = sift_map.nearest_keyframes(back, 5)
    assert 40 not in idx.tolist() and len(idx) >= 1
    axes = sift_map.kf_poses_k44[idx, :3, 2]
    assert np.all(axes @ back[:3, 2] >= np.cos(np.radians(60.0)) - 1e-9)
    # Nothing within 1 deg: falls back to position and direction, still k results.
    assert len(sift_map.nearest_keyframes(back, 4, max_angle_deg=0.0)) == 4
