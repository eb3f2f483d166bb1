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

"""The synthetic rosbag2: topics, metadata, a TF chain reproducing ground truth, atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from reloc_ros.data import synth
from reloc_ros.geometry import compose, interpolate_pose, rotation_error_deg, translation_error


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


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_has_topics_metadata_and_a_tf_chain_reproducing_ground_truth(tmp_path, storage):
    from reloc_ros.conversions import camera_info_to_intrinsics, depth_to_metres, image_to_rgb8, stamp_to_ns

    frames, seed = 12, 4
    kwargs = {"route": "test", "frames": frames, "seed": seed, "size": (64, 48), "rate_hz": 2.0}
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
