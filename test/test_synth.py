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

"""The synthetic scene: exact geometry (photometric reprojection, z-depth), routes, and the bag it writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from reloc_ros.data import synth
from reloc_ros.geometry import (compose, interpolate_pose, invert_pose, make_pose, rotation_error_deg,
                                translation_error)

SIZE = (160, 120)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

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


def read_bag(path: Path) -> dict:
    """Return topic -> list of (log time, deserialized message), plus connection info."""
    from rosbags.highlevel import AnyReader

    out: dict = {"messages": {}, "types": {}, "raw": []}
    with AnyReader([path]) as reader:
        for c in reader.connections:
            out["types"][c.topic] = c.msgtype
        for conn, t, raw in reader.messages():
            out["messages"].setdefault(conn.topic, []).append((t, reader.deserialize(raw, conn.msgtype)))
            out["raw"].append((conn.topic, t, bytes(raw)))
    return out


def tf_series(tf_msgs) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """(parent, child) -> (stamps, poses) from TFMessages, sorted by stamp."""
    from reloc_ros.conversions import stamp_to_ns, transform_to_matrix

    acc: dict = {}
    for _, msg in tf_msgs:
        for tr in msg.transforms:
            key = (tr.header.frame_id, tr.child_frame_id)
            acc.setdefault(key, []).append((stamp_to_ns(tr.header.stamp), transform_to_matrix(tr.transform)))
    series = {}
    for key, items in acc.items():
        items.sort(key=lambda it: it[0])
        series[key] = (np.array([s for s, _ in items]), np.array([T for _, T in items]))
    return series


def lookup(series, key, stamp: int) -> np.ndarray:
    """Interpolate one edge at ``stamp`` (lerp + slerp between the bracketing samples), as tf2 does."""
    stamps, poses = series[key]
    i = int(np.searchsorted(stamps, stamp))
    assert 0 < i < len(stamps), f"{key} has no samples around {stamp}"
    alpha = (stamp - stamps[i - 1]) / (stamps[i] - stamps[i - 1])
    return interpolate_pose(poses[i - 1], poses[i], float(alpha))


# ---------------------------------------------------------------------------
# Geometry of the renderer
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Determinism, routes, furniture
# ---------------------------------------------------------------------------

def test_same_seed_is_bit_identical_and_seeds_and_routes_differ():
    a = synth.render_route("train", frames=6, seed=1, size=(64, 48))
    b = synth.render_route("train", frames=6, seed=1, size=(64, 48))
    for fa, fb in zip(a, b):
        assert fa.stamp_ns == fb.stamp_ns
        np.testing.assert_array_equal(fa.rgb, fb.rgb)
        np.testing.assert_array_equal(fa.depth, fb.depth)
        np.testing.assert_array_equal(fa.T_map_cam, fb.T_map_cam)
    other_seed = synth.render_route("train", frames=6, seed=2, size=(64, 48))
    assert not np.array_equal(np.stack([f.rgb for f in a]), np.stack([f.rgb for f in other_seed]))
    assert not np.allclose(np.stack([f.T_map_cam for f in a]), np.stack([f.T_map_cam for f in other_seed]))
    test_route = synth.render_route("test", frames=6, seed=1, size=(64, 48))
    assert not np.allclose(np.stack([f.T_map_cam for f in a]), np.stack([f.T_map_cam for f in test_route]))
    # Same seed, other route: same room (the relocalization set-up depends on it).
    s1, s2 = synth.build_scene("room", 1), synth.build_scene("room", 1)
    np.testing.assert_array_equal(s1.boxes_lo, s2.boxes_lo)
    assert not np.array_equal(s1.boxes_lo, synth.build_scene("room", 2).boxes_lo)


@pytest.mark.parametrize("scene", ["room", "two_rooms"])
def test_train_and_test_routes_cover_the_same_space_differently(scene):
    _, P_tr = synth.ground_truth("train", frames=300, seed=0, scene=scene)
    _, P_te = synth.ground_truth("test", frames=300, seed=0, scene=scene)
    a, b = P_tr[:, :2, 3], P_te[:, :2, 3]
    inter = np.prod(np.maximum(np.minimum(a.max(0), b.max(0)) - np.maximum(a.min(0), b.min(0)), 0))
    union = np.prod(np.maximum(a.max(0), b.max(0)) - np.minimum(a.min(0), b.min(0)))
    assert inter / union > 0.6
    nearest = np.linalg.norm(b[:, None] - a[None], axis=2).min(axis=1)
    assert np.quantile(nearest, 0.9) < 0.8  # test poses are near mapped places ...
    assert np.median(nearest) > 0.05  # ... but not on the same trajectory
    # The camera looks in all directions along each route, so every wall is seen.
    for P in (P_tr, P_te):
        # Quadrants of heading centred on +x, +y, -x, -y: which wall the camera faces.
        heading = np.mod(np.arctan2(P[:, 1, 2], P[:, 0, 2]) + np.pi / 4, 2 * np.pi)
        hist, _ = np.histogram(heading, bins=4, range=(0, 2 * np.pi))
        assert np.all(hist > 0.05 * len(P)), f"headings per wall: {hist}"


@pytest.mark.parametrize("scene", ["room", "two_rooms"])
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_no_camera_inside_furniture(scene, seed):
    cfg = synth.scene_config(scene)
    for route in synth.ROUTES:
        run = synth.make_run(route, frames=600, seed=seed, scene=scene)
        assert len(run.scene.box_kinds) >= cfg.furniture  # furniture was actually placed
        cams = run.T_map_cam()[:, :3, 3]
        assert not run.scene.inside_box(cams, margin=0.2).any()
        assert run.scene.inside_room(cams, margin=0.5).all()
        base = run.T_map_base(run.image_stamps_ns)[:, :3, 3]
        assert not run.scene.inside_box(base, margin=0.3).any()


def test_renderer_refuses_camera_inside_a_box():
    scene = synth.build_scene("room", 0)
    centre = (scene.boxes_lo[0] + scene.boxes_hi[0]) / 2
    with pytest.raises(ValueError, match="inside furniture"):
        synth.Renderer(scene, synth.default_intrinsics(32, 24)).render(make_pose(centre, synth.OPTICAL_Q_XYZW))


def test_bad_arguments_name_the_valid_choices():
    with pytest.raises(ValueError, match="train, test"):
        synth.make_run("query", frames=5)
    with pytest.raises(ValueError, match="presets: room, two_rooms"):
        synth.build_scene("garage")
    with pytest.raises(ValueError, match="mcap, sqlite3"):
        synth.write_synthetic_bag("/nonexistent/x", storage="rosbag")


# ---------------------------------------------------------------------------
# The bag
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_has_topics_metadata_and_a_tf_chain_reproducing_ground_truth(tmp_path, storage):
    from reloc_ros.conversions import camera_info_to_intrinsics, depth_to_metres, image_to_rgb8, stamp_to_ns

    frames, seed = 12, 4
    kwargs = dict(route="test", frames=frames, seed=seed, size=(64, 48), rate_hz=2.0)
    path = tmp_path / "synthetic"
    summary = synth.write_synthetic_bag(path, storage=storage, depth=True, progress=False, **kwargs)
    assert summary.frames == frames and summary.storage == storage

    meta = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 8 and meta["storage_identifier"] == storage
    qos = {t["topic_metadata"]["name"]: yaml.safe_load(t["topic_metadata"]["offered_qos_profiles"])
           for t in meta["topics_with_message_count"]}
    assert qos["/tf_static"][0]["durability"] == 1  # transient local, as a recorded /tf_static
    assert qos["/tf"][0]["durability"] == 2  # volatile

    bag = read_bag(path)
    msgs = bag["messages"]
    assert bag["types"] == {
        "/camera/image_raw": "sensor_msgs/msg/Image", "/camera/depth/image_raw": "sensor_msgs/msg/Image",
        "/camera/camera_info": "sensor_msgs/msg/CameraInfo", "/tf": "tf2_msgs/msg/TFMessage",
        "/tf_static": "tf2_msgs/msg/TFMessage"}
    for topic in ("/camera/image_raw", "/camera/depth/image_raw", "/camera/camera_info"):
        assert len(msgs[topic]) == frames
    assert len(msgs["/tf_static"]) == 1
    assert {m[0] for m in msgs["/tf_static"]} == {min(t for _, t, _ in bag["raw"])}  # first in the bag

    stamps_gt, poses_gt = synth.ground_truth(**{k: v for k, v in kwargs.items() if k != "size"})
    frames_gt = synth.render_route(depth=True, **kwargs)
    images = msgs["/camera/image_raw"]
    stamps = np.array([stamp_to_ns(m.header.stamp) for _, m in images])
    np.testing.assert_array_equal(stamps, stamps_gt)
    for (_, img), (_, dep), (_, info), fr in zip(images, msgs["/camera/depth/image_raw"],
                                                 msgs["/camera/camera_info"], frames_gt):
        assert img.encoding == "rgb8" and img.header.frame_id == "camera_optical_frame"
        assert dep.encoding == "32FC1" and dep.header.frame_id == "camera_optical_frame"
        assert stamp_to_ns(dep.header.stamp) == stamp_to_ns(img.header.stamp) == stamp_to_ns(info.header.stamp)
        np.testing.assert_array_equal(image_to_rgb8(img), fr.rgb)
        np.testing.assert_array_equal(depth_to_metres(dep), fr.depth)
    assert camera_info_to_intrinsics(msgs["/camera/camera_info"][0][1]) == synth.default_intrinsics(64, 48)

    # The TF chain, interpolated at each image stamp, is the exact camera pose.
    static = tf_series(msgs["/tf_static"])
    dynamic = tf_series(msgs["/tf"])
    assert set(dynamic) == {("map", "odom"), ("odom", "base_link")}
    assert set(static) == {("base_link", "camera_link"), ("camera_link", "camera_optical_frame")}
    all_tf_stamps = np.concatenate([s for s, _ in dynamic.values()])
    assert not np.isin(stamps, all_tf_stamps).any()  # readers must interpolate
    for stamp, T_gt in zip(stamps, poses_gt):
        T = compose(lookup(dynamic, ("map", "odom"), stamp), lookup(dynamic, ("odom", "base_link"), stamp),
                    static[("base_link", "camera_link")][1][0],
                    static[("camera_link", "camera_optical_frame")][1][0])
        # Ground truth is defined as tf2's interpolation of the samples, so only rounding remains.
        assert translation_error(T, T_gt) < 1e-6
        assert rotation_error_deg(T, T_gt) < 1e-3

    # map -> odom is not the identity, and it drifts over the run.
    map_odom = dynamic[("map", "odom")][1]
    assert np.linalg.norm(map_odom[0, :3, 3]) > 0.1 or rotation_error_deg(map_odom[0], np.eye(4)) > 1.0
    drift_m = translation_error(map_odom[0], map_odom[-1])
    drift_deg = rotation_error_deg(map_odom[0], map_odom[-1])
    assert 0.005 < drift_m < 0.2 and 0.1 < drift_deg < 5.0

    # Stamp order within the bag: log times never go backwards.
    times = [t for _, t, _ in bag["raw"]]
    assert times == sorted(times)


def test_bag_is_deterministic_refuses_overwrite_and_leaves_no_temporaries(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    synth.write_synthetic_bag(a, frames=4, seed=2, size=(32, 24), progress=False)
    synth.write_synthetic_bag(b, frames=4, seed=2, size=(32, 24), progress=False)
    assert read_bag(a)["raw"] == read_bag(b)["raw"]
    before = sorted(p.name for p in a.iterdir())
    with pytest.raises(ValueError, match="already exists"):
        synth.write_synthetic_bag(a, frames=4, seed=3, size=(32, 24), progress=False)
    assert sorted(p.name for p in a.iterdir()) == before
    assert read_bag(a)["raw"] == read_bag(b)["raw"]  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no temporary directories left


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synth.Renderer, "render", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        synth.write_synthetic_bag(tmp_path / "c", frames=3, size=(32, 24), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_synthetic_dataset_matches_render_route():
    ds = synth.synthetic_dataset("train", frames=5, seed=0, size=(48, 36), depth=True)
    frames = synth.render_route("train", frames=5, seed=0, size=(48, 36))
    assert len(ds) == 5 and ds.camera_frame == "camera_optical_frame" and ds.map_frame == "map"
    np.testing.assert_array_equal(ds.images, np.stack([f.rgb for f in frames]))
    np.testing.assert_array_equal(ds.depths, np.stack([f.depth for f in frames]))
    np.testing.assert_array_equal(ds.poses_n44, np.stack([f.T_map_cam for f in frames]))
