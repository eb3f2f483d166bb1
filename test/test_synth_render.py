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

"""The synthetic scene's ray caster: exact geometry (photometric reprojection, z-depth, hits on surfaces)."""

from __future__ import annotations

import numpy as np
import pytest

from reloc_ros.data import synth
from reloc_ros.geometry import invert_pose, make_pose

SIZE = (160, 120)


def unproject(depth_hw: np.ndarray, K) -> np.ndarray:
    """(H, W, 3) points in the optical frame from z-depth."""
    h, w = depth_hw.shape
    uu, vv = np.meshgrid(np.arange(w), np.arange(h))
    return np.stack([(uu - K.cx) / K.fx * depth_hw, (vv - K.cy) / K.fy * depth_hw, depth_hw], axis=-1)


def reprojection_error(rgb_a, depth_a, rgb_b, depth_b, T_a_b, K) -> tuple[float, float]:
    """Mean |colour_B - colour_A(warped)| over B's pixels visible in A, and the visible fraction.

    B's pixels are lifted with B's depth, moved into A with ``T_a_b`` and
    projected; A's colour is sampled bilinearly there, where A's depth at the
    nearest pixel agrees with the point's z (not occluded in A).
    """
    p_b = unproject(depth_b, K).reshape(-1, 3)
    p_a = p_b @ T_a_b[:3, :3].T + T_a_b[:3, 3]
    z = p_a[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K.fx * p_a[:, 0] / z + K.cx
        v = K.fy * p_a[:, 1] / z + K.cy
    ok = (z > 0.05) & (u >= 0) & (u <= K.width - 1) & (v >= 0) & (v <= K.height - 1)
    u, v, z = u[ok], v[ok], z[ok]
    ui, vi = np.rint(u).astype(int), np.rint(v).astype(int)
    vis = np.abs(depth_a[vi, ui] - z) < 0.03 * z + 0.01
    u, v = u[vis], v[vis]
    u0 = np.minimum(np.floor(u).astype(int), K.width - 2)
    v0 = np.minimum(np.floor(v).astype(int), K.height - 2)
    fu, fv = (u - u0)[:, None], (v - v0)[:, None]
    A = rgb_a.astype(float)
    col_a = ((1 - fu) * (1 - fv) * A[v0, u0] + fu * (1 - fv) * A[v0, u0 + 1]
             + (1 - fu) * fv * A[v0 + 1, u0] + fu * fv * A[v0 + 1, u0 + 1])
    col_b = rgb_b.reshape(-1, 3)[ok][vis].astype(float)
    return float(np.abs(col_b - col_a).mean()), float(vis.sum() / len(p_b))


def test_photometric_reprojection_matches_ground_truth_pose():
    run = synth.make_run("train", frames=300, seed=0, size=SIZE, speed_mps=0.4)
    renderer = synth.Renderer(run.scene, run.intrinsics)
    K = run.intrinsics
    poses = run.T_map_cam()
    for a in (20, 120, 230):
        b = a + 3  # 12 cm further along the route, heading changed
        rgb_a, dep_a = renderer.render(poses[a])
        rgb_b, dep_b = renderer.render(poses[b])
        T_a_b = invert_pose(poses[a]) @ poses[b]
        err, frac = reprojection_error(rgb_a, dep_a, rgb_b, dep_b, T_a_b, K)
        assert frac > 0.5, f"pair {a}/{b}: only {frac:.0%} of B visible in A; test pair badly chosen"
        assert err < 2.0, f"pair {a}/{b}: mean colour error {err:.2f} of 255 with the true pose"
        # A wrong relative pose (5 cm sideways, or 2 degrees of yaw) must show clearly.
        shift = make_pose([0.05, 0.0, 0.0], [0, 0, 0, 1])
        half = np.radians(2.0) / 2
        turn = make_pose([0, 0, 0], [0.0, np.sin(half), 0.0, np.cos(half)])  # about the camera's y (down) axis
        for wrong in (T_a_b @ shift, T_a_b @ turn):
            err_wrong, _ = reprojection_error(rgb_a, dep_a, rgb_b, dep_b, wrong, K)
            assert err_wrong > 2.0 * err + 0.5, f"pair {a}/{b}: perturbed pose error {err_wrong:.2f} vs {err:.2f}"


def test_depth_is_z_depth_not_ray_length():
    scene = synth.build_scene(synth.SceneConfig(furniture=0), seed=0)
    K = synth.default_intrinsics(*SIZE)
    # Optical frame looking along +x of the map (z forward = map x, x right = map -y, y down = map -z),
    # 2 m from the wall at x = +4 m: a fronto-parallel wall fills the whole view.
    T = make_pose([2.0, 0.3, 1.4], synth.OPTICAL_Q_XYZW)
    rgb, depth = synth.Renderer(scene, K).render(T)
    assert depth.dtype == np.float32 and depth.shape == (SIZE[1], SIZE[0])
    assert rgb.dtype == np.uint8 and rgb.shape == (SIZE[1], SIZE[0], 3)
    np.testing.assert_allclose(depth, 2.0, atol=1e-5)
    ray_len = np.linalg.norm(unproject(depth, K), axis=-1)
    assert ray_len.max() > 2.4  # the corners' rays are much longer: the test tells the two apart


def test_unprojected_depth_lies_on_scene_surfaces():
    """Every pixel's depth puts its point on a wall, floor, ceiling or box face, from arbitrary views."""
    run = synth.make_run("test", frames=40, seed=3, size=SIZE)
    scene, K = run.scene, run.intrinsics
    renderer = synth.Renderer(scene, K)
    for T in run.T_map_cam()[::8]:
        _, depth = renderer.render(T)
        p = unproject(depth.astype(np.float64), K).reshape(-1, 3) @ T[:3, :3].T + T[:3, 3]
        tol = 1e-4 * (1 + depth.max())
        on_room = np.any((np.abs(p - scene.room_lo) < tol) | (np.abs(p - scene.room_hi) < tol), axis=1)
        in_box = np.all((p > scene.boxes_lo[:, None] - tol) & (p < scene.boxes_hi[:, None] + tol), axis=2)
        on_face = np.any((np.abs(p - scene.boxes_lo[:, None]) < tol) | (np.abs(p - scene.boxes_hi[:, None]) < tol),
                         axis=2)
        on_box = np.any(in_box & on_face, axis=0)
        assert np.all(on_room | on_box), f"{np.sum(~(on_room | on_box))} pixels hit nothing in the scene"
        assert np.all(scene.inside_room(p, margin=-tol))


def test_renderer_refuses_camera_inside_a_box():
    scene = synth.build_scene("room", 0)
    centre = (scene.boxes_lo[0] + scene.boxes_hi[0]) / 2
    with pytest.raises(ValueError, match="inside furniture"):
        synth.Renderer(scene, synth.default_intrinsics(32, 24)).render(make_pose(centre, synth.OPTICAL_Q_XYZW))
