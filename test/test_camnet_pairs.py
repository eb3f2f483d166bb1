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

"""CamNet pair labels on exact synthetic geometry: a fronto-parallel plane at z = 2 m."""

import cv2
import numpy as np
import pytest

from reloc_ros.data.types import Intrinsics
from reloc_ros.geometry import make_pose, quat_to_matrix
from reloc_ros.training import camnet_pairs as cp

# 64 x 48 image, centred principal point in the pixel-centre convention.
W, H, F = 64, 48, 50.0
K = Intrinsics(fx=F, fy=F, cx=W / 2 - 0.5, cy=H / 2 - 0.5, width=W, height=H)
PLANE_Z = 2.0
I4 = np.eye(4)


def plane_depth(dist=PLANE_Z, shape=(H, W)):
    return np.full(shape, dist, dtype=np.float32)


def axis_quat(axis, deg):
    a = np.radians(deg) / 2
    v = np.asarray(axis, dtype=np.float64)
    return np.append(np.sin(a) * v / np.linalg.norm(v), np.cos(a))


def pose(t=(0.0, 0.0, 0.0), axis=(0.0, 1.0, 0.0), deg=0.0):
    return make_pose(np.array(t, dtype=np.float64), axis_quat(axis, deg))


def random_pose(rng):
    q = rng.normal(size=4)
    return make_pose(rng.normal(size=3), q / np.linalg.norm(q))


def textured_image(seed=0, h=120, w=160):
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 128, np.uint8)
    for _ in range(40):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.rectangle(img, (x, y), (x + int(rng.integers(5, 30)), y + int(rng.integers(5, 30))), colour, -1)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(img, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(3, 15)), colour, -1)
    return img


def grid_1d(n, grid=cp.GRID):
    # The documented sample positions, written out independently.
    return [int(np.floor((j + 0.5) * n / grid)) for j in range(grid)]


# --------------------------------------------------------------------------
# Frustum overlap
# --------------------------------------------------------------------------

def test_grid_pixels_are_cell_centres():
    rows, cols = cp.grid_pixels(W, H)
    assert cols.tolist() == [3, 9, 16, 22, 28, 35, 41, 48, 54, 60]
    assert rows.tolist() == [2, 7, 12, 16, 21, 26, 31, 36, 40, 45]


def test_identical_poses_overlap_fully_both_ways():
    T = random_pose(np.random.default_rng(1))
    assert cp.bilateral_overlap(plane_depth(), K, T, plane_depth(), K, T) == (1.0, 1.0)
    assert cp.frustum_distances(plane_depth(), K, T, plane_depth(), K, T) == (0.0, 0.0)


def test_camera_turned_around_sees_nothing():
    # Without the z > 0 test every point would project inside image 2 (x/z keeps its sign).
    T2 = pose(deg=180.0)
    assert cp.bilateral_overlap(plane_depth(), K, I4, plane_depth(), K, T2) == (0.0, 0.0)
    assert cp.frustum_distances(plane_depth(), K, I4, plane_depth(), K, T2) == (1.0, 1.0)


def test_half_width_shift_gives_half_overlap():
    # Visible width of the plane at 2 m is W / F * 2; shift camera 2 right by half of it:
    # a pixel u1 of image 1 lands at u2 = u1 - W / 2, inside iff u1 >= W / 2 - 0.5.
    shift = PLANE_Z * W / F / 2
    T2 = pose(t=(shift, 0.0, 0.0))
    theta_1, theta_2 = cp.bilateral_overlap(plane_depth(), K, I4, plane_depth(), K, T2)
    expected_1 = sum(u >= W / 2 - 0.5 for u in grid_1d(W)) / cp.GRID
    expected_2 = sum(u < W / 2 - 0.5 for u in grid_1d(W)) / cp.GRID
    assert expected_1 == 0.5 and expected_2 == 0.5
    assert theta_1 == pytest.approx(expected_1, abs=1e-12)
    assert theta_2 == pytest.approx(expected_2, abs=1e-12)


def test_image_area_is_the_pixel_footprint():
    # Pixel centres sit at integer coordinates, so image 2 spans [-0.5, W - 0.5). A shift of
    # 35.25 px puts grid column 35 at u2 = -0.25: on pixel 0 of image 2, so it counts.
    T2 = pose(t=(35.25 * PLANE_Z / F, 0.0, 0.0))
    assert cp.frustum_overlap(plane_depth(), K, I4, K, T2) == pytest.approx(0.5)
    # 0.5 px further and column 35 falls off the left edge.
    T2 = pose(t=(35.75 * PLANE_Z / F, 0.0, 0.0))
    assert cp.frustum_overlap(plane_depth(), K, I4, K, T2) == pytest.approx(0.4)


def test_directions_differ_when_one_camera_is_further_back():
    # Camera 2 is 4 m from the plane: it sees all of image 1's area (theta_1 = 1), while
    # camera 1 sees only the central half of image 2 in each direction.
    T2 = pose(t=(0.0, 0.0, -PLANE_Z))
    theta_1, theta_2 = cp.bilateral_overlap(plane_depth(), K, I4, plane_depth(2 * PLANE_Z), K, T2)
    assert theta_1 == 1.0
    # u1 = 2 (u2 - cx) + cx is inside image 1 iff |u2 - cx| in [-W / 4, W / 4).
    in_u = sum(-W / 4 <= u - K.cx < W / 4 for u in grid_1d(W))
    in_v = sum(-H / 4 <= v - K.cy < H / 4 for v in grid_1d(H))
    assert theta_2 == pytest.approx(in_u * in_v / cp.GRID ** 2, abs=1e-12)
    assert theta_2 == pytest.approx(0.25)
    d1, d2 = cp.frustum_distances(plane_depth(), K, I4, plane_depth(2 * PLANE_Z), K, T2)
    assert (d1, d2) == pytest.approx((0.0, 0.75))


def test_rotated_and_shifted_camera_matches_opencv_projection():
    # The full rigid transform R2^T (R1 X + t1 - t2): eq. 2 as printed (no R2^T on t1 - t2) fails here.
    T1 = pose(t=(0.3, -0.1, 0.2), axis=(0.2, 1.0, 0.1), deg=15.0)
    T2 = pose(t=(1.2, 0.2, 0.4), axis=(0.0, 1.0, 0.0), deg=-30.0)
    depth = np.linspace(1.0, 3.0, W * H, dtype=np.float32).reshape(H, W)
    rows, cols = grid_1d(H), grid_1d(W)
    uu, vv = np.meshgrid(cols, rows)
    d = depth[vv, uu].astype(np.float64)
    X_c1 = np.stack([(uu - K.cx) / F * d, (vv - K.cy) / F * d, d], axis=-1).reshape(-1, 3)
    X_map = X_c1 @ T1[:3, :3].T + T1[:3, 3]
    T_cam2_map = np.linalg.inv(T2)
    rvec, _ = cv2.Rodrigues(T_cam2_map[:3, :3])
    uv, _ = cv2.projectPoints(X_map, rvec, T_cam2_map[:3, 3], K.K_33, None)
    uv = uv.reshape(-1, 2)
    z = (X_map @ T_cam2_map[:3, :3].T + T_cam2_map[:3, 3])[:, 2]
    inside = (z > 0) & (uv[:, 0] >= -0.5) & (uv[:, 0] < W - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] < H - 0.5)
    expected = inside.mean()
    assert 0.0 < expected < 1.0
    assert cp.frustum_overlap(depth, K, T1, K, T2) == pytest.approx(expected, abs=1e-12)


def test_invalid_depth_is_skipped_and_none_valid_gives_zero():
    T2 = pose(t=(PLANE_Z * W / F / 2, 0.0, 0.0))
    depth = plane_depth()
    depth[:, : W // 2] = np.nan  # only the right half has depth, and camera 2 sees all of it
    assert cp.frustum_overlap(depth, K, I4, K, T2) == 1.0
    assert cp.frustum_overlap(np.zeros((H, W), np.float32), K, I4, K, I4) == 0.0
    assert cp.frustum_overlap(np.full((H, W), np.nan, np.float32), K, I4, K, I4) == 0.0


def test_different_intrinsics_for_the_two_cameras():
    # Camera 2 has half the resolution and focal length: same field of view, same overlap.
    K2 = K.scaled(W // 2, H // 2)
    shift = PLANE_Z * W / F / 2
    T2 = pose(t=(shift, 0.0, 0.0))
    theta_1, theta_2 = cp.bilateral_overlap(plane_depth(), K, I4, plane_depth(shape=(H // 2, W // 2)), K2, T2)
    assert theta_1 == pytest.approx(0.5)
    assert theta_2 == pytest.approx(0.5)


# --------------------------------------------------------------------------
# ORB similarity
# --------------------------------------------------------------------------

def test_orb_similarity_self_high_noise_low():
    img = textured_image()
    assert cp.orb_similarity(img, img) > 0.9
    shifted = np.roll(img, (3, 5), axis=(0, 1))
    assert cp.orb_similarity(img, shifted) > 0.5
    noise = np.random.default_rng(2).integers(0, 256, img.shape, dtype=np.uint8)
    assert cp.orb_similarity(img, noise) < 0.2
    assert cp.orb_similarity(img, noise) < cp.orb_similarity(img, shifted)


def test_orb_similarity_without_keypoints_is_zero():
    blank = np.zeros((120, 160, 3), np.uint8)
    assert cp.orb_similarity(blank, textured_image()) == 0.0
    # Grayscale input works too; xi = 0 admits no match (distance < 0 never holds).
    gray = cv2.cvtColor(textured_image(), cv2.COLOR_RGB2GRAY)
    assert cp.orb_similarity(gray, gray) > 0.9
    assert cp.orb_similarity(gray, gray, xi=0.0) == 0.0


# --------------------------------------------------------------------------
# Rotation angle, relative targets, pose distance
# --------------------------------------------------------------------------

def test_rotation_angle():
    assert cp.rotation_angle(I4, I4) == pytest.approx(0.0, abs=1e-7)
    assert cp.rotation_angle(I4, pose(t=(5.0, 1.0, 2.0))) == pytest.approx(0.0, abs=1e-7)
    assert cp.rotation_angle(I4, pose(axis=(1.0, 2.0, 3.0), deg=90.0)) == pytest.approx(0.5)
    assert cp.rotation_angle(I4, pose(axis=(0.0, 0.0, 1.0), deg=180.0)) == pytest.approx(1.0)
    T1 = pose(axis=(1.0, 0.0, 0.0), deg=40.0)
    T2 = T1 @ pose(axis=(0.0, 1.0, 1.0), deg=45.0)
    assert cp.rotation_angle(T1, T2) == pytest.approx(0.25)
    assert cp.rotation_angle(T2, T1) == pytest.approx(0.25)


def test_relative_targets_round_trip():
    rng = np.random.default_rng(3)
    for _ in range(20):
        T1, T2 = random_pose(rng), random_pose(rng)
        delta_t, delta_q = cp.relative_pose_targets(T1, T2)
        np.testing.assert_allclose(delta_t, T2[:3, 3] - T1[:3, 3], atol=1e-12)
        assert delta_q[3] >= 0 and np.linalg.norm(delta_q) == pytest.approx(1.0)
        np.testing.assert_allclose(quat_to_matrix(delta_q), T1[:3, :3].T @ T2[:3, :3], atol=1e-12)
        np.testing.assert_allclose(cp.anchor_from_relative(T2, delta_t, delta_q), T1, atol=1e-12)
        # A raw, unnormalised (and sign-flipped) network quaternion gives the same anchor.
        np.testing.assert_allclose(cp.anchor_from_relative(T2, delta_t, -3.0 * delta_q), T1, atol=1e-12)


def test_pose_distance_zero_for_same_and_picks_nearest():
    rng = np.random.default_rng(4)
    db = np.stack([random_pose(rng) for _ in range(8)])
    for i in range(len(db)):
        dist = cp.pose_distance(db[i], db)
        assert dist.shape == (8,)
        assert dist[i] == pytest.approx(0.0, abs=1e-6)
        assert int(np.argmin(dist)) == i
    # 0.1 m away and 10 deg turned from pose 5 -> pose 5 is nearest, zeta = 0.1 + 10 / 180.
    T_est = db[5] @ pose(t=(0.1, 0.0, 0.0), axis=(0.0, 0.0, 1.0), deg=10.0)
    dist = cp.pose_distance(T_est, db)
    assert int(np.argmin(dist)) == 5
    assert dist[5] == pytest.approx(0.1 + 10.0 / 180.0)
    # Rotation term is 1 for 180 deg apart.
    assert cp.pose_distance(I4, pose(deg=180.0)[None])[0] == pytest.approx(1.0)


# --------------------------------------------------------------------------
# Pair categories
# --------------------------------------------------------------------------

def test_categorize_pair_boundaries():
    th = cp.PairThresholds()
    assert cp.categorize_pair(1.0, 1.0, 0.0) == "easy"
    assert cp.categorize_pair(0.5, 0.9, 30.0) == "easy"          # both easy bounds inclusive
    assert cp.categorize_pair(0.499, 0.9, 10.0) == "moderate"    # one direction below 0.5
    assert cp.categorize_pair(0.9, 0.9, 30.01) == "moderate"
    assert cp.categorize_pair(0.9, 0.9, 89.99) == "moderate"
    assert cp.categorize_pair(0.9, 0.9, 90.0) == "hard"          # opposite-ish views despite overlap
    assert cp.categorize_pair(0.19, 0.19, 0.0) == "hard"
    assert cp.categorize_pair(0.19, 0.2, 0.0) == "moderate"      # max reaches 0.2
    assert cp.categorize_pair(0.0, 0.0, 180.0) == "hard"
    custom = cp.PairThresholds(easy_min_overlap=0.8, easy_max_angle_deg=10.0,
                               hard_max_overlap=0.4, hard_min_angle_deg=45.0)
    assert cp.categorize_pair(0.7, 0.7, 5.0, custom) == "moderate"
    assert cp.categorize_pair(0.7, 0.7, 50.0, custom) == "hard"
    assert set(cp.PAIR_CATEGORIES) == {"easy", "moderate", "hard"}
    assert th.easy_min_overlap == 0.5 and th.hard_min_angle_deg == 90.0


def test_pair_labels_from_geometry():
    # Half-width shift, no rotation: overlap 0.5 both ways -> easy; same with a 120 deg turn -> hard.
    T2 = pose(t=(PLANE_Z * W / F / 2, 0.0, 0.0))
    thetas = cp.bilateral_overlap(plane_depth(), K, I4, plane_depth(), K, T2)
    assert cp.categorize_pair(*thetas, 180.0 * cp.rotation_angle(I4, T2)) == "easy"
    T3 = pose(axis=(0.0, 0.0, 1.0), deg=120.0)  # roll about the optical axis keeps overlap high
    thetas = cp.bilateral_overlap(plane_depth(), K, I4, plane_depth(), K, T3)
    assert min(thetas) > 0.3
    assert cp.categorize_pair(*thetas, 180.0 * cp.rotation_angle(I4, T3)) == "hard"


# --------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------

def test_bad_inputs_raise_naming_the_problem():
    with pytest.raises(ValueError, match=r"\(48, 64\).*\(64, 48\)"):
        cp.frustum_overlap(np.ones((W, H), np.float32), K, I4, K, I4)
    with pytest.raises(ValueError, match="float"):
        cp.frustum_overlap(np.ones((H, W), np.uint16), K, I4, K, I4)
    with pytest.raises(ValueError, match=r"T_map_cam2 must be a 4x4 pose.*\(3, 4\)"):
        cp.frustum_overlap(plane_depth(), K, I4, K, I4[:3])
    with pytest.raises(ValueError, match="T_map_cam1 is not a finite rigid"):
        cp.frustum_overlap(plane_depth(), K, 2.0 * I4, K, I4)
    with pytest.raises(ValueError, match="grid"):
        cp.frustum_overlap(plane_depth(), K, I4, K, I4, grid=0)
    with pytest.raises(ValueError, match="K2 must be"):
        cp.frustum_overlap(plane_depth(), K, I4, K.K_33, I4)
    with pytest.raises(ValueError, match="uint8"):
        cp.orb_similarity(np.zeros((48, 64, 3), np.float32), np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(ValueError, match=r"img2 must be RGB.*\(48, 64, 4\)"):
        cp.orb_similarity(np.zeros((48, 64, 3), np.uint8), np.zeros((48, 64, 4), np.uint8))
    with pytest.raises(ValueError, match="xi"):
        cp.orb_similarity(textured_image(), textured_image(), xi=-1.0)
    with pytest.raises(ValueError, match=r"\(n, 4, 4\)"):
        cp.pose_distance(I4, I4)
    with pytest.raises(ValueError, match="empty"):
        cp.pose_distance(I4, np.zeros((0, 4, 4)))
    with pytest.raises(ValueError, match="delta_q"):
        cp.anchor_from_relative(I4, np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="delta_t"):
        cp.anchor_from_relative(I4, np.zeros(2), np.array([0.0, 0.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="theta_2"):
        cp.categorize_pair(0.5, 1.5, 0.0)
    with pytest.raises(ValueError, match="angle_deg"):
        cp.categorize_pair(0.5, 0.5, 200.0)
    with pytest.raises(ValueError, match="hard_max_overlap"):
        cp.PairThresholds(easy_min_overlap=0.3, hard_max_overlap=0.4)
    with pytest.raises(ValueError, match="easy_max_angle_deg"):
        cp.PairThresholds(easy_max_angle_deg=90.0, hard_min_angle_deg=90.0)


def test_ranked_categories_split_candidates_in_thirds_by_difficulty():
    # Nine candidates of one anchor: overlap falls and the turn grows from the first to the last.
    theta = np.linspace(0.9, 0.3, 9)
    angle = np.linspace(0.0, 40.0, 9)
    cats = cp.rank_categories(theta, theta, angle)
    assert cats.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # Under the paper's thresholds none of them is hard (all overlap >= 0.2, turn < 90 deg): the ranked
    # thirds give the anchor its hardest available partners instead.
    assert "hard" not in {cp.categorize_pair(t, t, a) for t, a in zip(theta, angle)}
    shuffled = np.array([4, 0, 8, 2, 6, 1, 7, 3, 5])
    assert np.array_equal(cp.rank_categories(theta[shuffled], theta[shuffled], angle[shuffled]), cats[shuffled])
    # The smaller overlap of the two directions counts.
    assert cp.rank_categories(np.array([0.9, 0.9, 0.9]), np.array([0.9, 0.1, 0.5]), np.zeros(3)).tolist() == [0, 2, 1]
