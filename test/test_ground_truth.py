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

"""Ground truth from bags with bad samples: skipped and counted as tf2 would, never the end of the read."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import S, robot_messages, write_rosbag2

from reloc_ros import conversions as c
from reloc_ros.data.bag import Bag, BagSource, read_bag_dataset, read_tf
from reloc_ros.data.types import BAD_POSE_SAMPLE, BAD_TF_SAMPLE, SKIP_BAD_POSE, SKIP_BAD_TF, with_detail
from reloc_ros.errors import RelocError
from reloc_ros.geometry import rotation_error_deg, translation_error


def assert_poses_match(ds, truth, atol_m=1e-3):
    expected = np.stack([truth[int(s)] for s in ds.stamps_ns])
    assert translation_error(ds.poses_n44, expected).max() < atol_m
    assert rotation_error_deg(ds.poses_n44, expected).max() < 0.05


def _tf_at(msgs, t_s):
    """Return the /tf message at ``t_s`` seconds (transforms: map -> odom, odom -> base_link)."""
    return next(m for topic, _, t, m in msgs if topic == "/tf" and t == int(round(t_s * S)))


def _set_q(rotation, xyzw):
    rotation.x, rotation.y, rotation.z, rotation.w = (float(v) for v in xyzw)


@pytest.mark.parametrize("edit, problem", [
    (lambda tr: setattr(tr.transform.translation, "x", float("inf")), "NaN or inf"),
    (lambda tr: _set_q(tr.transform.rotation, [0, 0, 0, 0]), "zero quaternion"),
    (lambda tr: _set_q(tr.transform.rotation, [0, 0, 0, 1.2]), "non-unit quaternion"),
])
def test_one_bad_tf_sample_skips_only_the_frames_it_touches(tmp_path, typestore, edit, problem):
    # Images every 0.1 s from 0.05 s, TF every 0.04 s: map -> odom at 0.44 s is bad; its good neighbours are at
    # 0.40 and 0.48 s, and the one image between them (0.45 s) would have been interpolated from it.
    msgs, truth = robot_messages(typestore.types, n_images=10)
    edit(_tf_at(msgs, 0.44).transforms[0])
    ds = read_bag_dataset(write_rosbag2(tmp_path / "b", typestore, msgs))
    assert ds.skipped.counts == {with_detail(SKIP_BAD_TF, problem): 1}
    assert ds.skipped.ignored_samples == {with_detail(BAD_TF_SAMPLE, problem): 1}
    assert sorted(set(truth) - set(ds.stamps_ns.tolist())) == [int(round(0.45 * S))]
    assert_poses_match(ds, truth)


def test_consecutive_bad_samples_skip_the_frames_between_their_good_neighbours(tmp_path, typestore):
    # Bad odom -> base_link at 0.44 and 0.48 s: no pose between the good samples at 0.40 and 0.52 s (image 0.45 s).
    msgs, truth = robot_messages(typestore.types, n_images=10)
    for t in (0.44, 0.48):
        _set_q(_tf_at(msgs, t).transforms[1].transform.rotation, [float("nan"), 0, 0, 1])
    ds = read_bag_dataset(write_rosbag2(tmp_path / "b", typestore, msgs))
    assert sorted(set(truth) - set(ds.stamps_ns.tolist())) == [int(round(0.45 * S))]
    assert ds.skipped.counts == {with_detail(SKIP_BAD_TF, "NaN or inf"): 1}
    assert ds.skipped.ignored_samples == {with_detail(BAD_TF_SAMPLE, "NaN or inf"): 2}
    assert_poses_match(ds, truth)


def test_a_near_unit_quaternion_is_accepted_and_normalised_as_tf2_does(tmp_path, typestore):
    msgs, truth = robot_messages(typestore.types, n_images=10)
    for topic, _, t, m in msgs:
        if topic == "/tf":
            for tr in m.transforms:  # squared norm 1.004^2 = 1.008: within tf2's 0.01
                q = tr.transform.rotation
                _set_q(q, np.array([q.x, q.y, q.z, q.w]) * 1.004)
    ds = read_bag_dataset(write_rosbag2(tmp_path / "b", typestore, msgs))
    assert len(ds) == 10 and ds.skipped.total == 0 and not ds.skipped.ignored_samples
    assert_poses_match(ds, truth)
    assert np.allclose(np.linalg.det(ds.poses_n44[:, :3, :3]), 1.0)


def test_a_bad_static_transform_skips_every_frame_through_it_and_says_why(tmp_path, typestore):
    msgs, _ = robot_messages(typestore.types, n_images=3)
    static = next(m for topic, _, _, m in msgs if topic == "/tf_static")
    _set_q(static.transforms[1].transform.rotation, [0, 0, 0, 0])  # camera_link -> camera_optical_frame
    path = write_rosbag2(tmp_path / "b", typestore, msgs)
    with pytest.raises(RelocError, match="no posed frames.*3 frames skipped: 3 ground truth from a bad TF sample "
                                         "\\(zero quaternion\\); 1 ground-truth sample ignored"):
        read_bag_dataset(path)
    # Lookups that do not pass through the bad edge still work (replay looks up map -> base_link).
    with Bag(path) as bag:
        tf = read_tf(bag)
    assert tf.lookup("map", "base_link", int(0.2 * S)).shape == (4, 4)
    with pytest.raises(ValueError, match="bad TF sample \\(zero quaternion\\)"):
        tf.lookup("map", "camera_optical_frame", int(0.2 * S))


def test_transforms_tf2_ignores_for_their_frame_ids_are_counted(tmp_path, typestore):
    msgs, truth = robot_messages(typestore.types, n_images=5)
    m = _tf_at(msgs, 0.2)
    T = np.eye(4)
    m.transforms.append(c.make_transform_stamped(typestore.types, T, int(0.2 * S), "", "odom"))
    m.transforms.append(c.make_transform_stamped(typestore.types, T, int(0.2 * S), "odom", "odom"))
    ds = read_bag_dataset(write_rosbag2(tmp_path / "b", typestore, msgs))
    assert len(ds) == 5 and ds.skipped.total == 0
    assert ds.skipped.ignored_samples == {"bad TF sample (empty frame id)": 1,
                                          "bad TF sample (transform of a frame to itself)": 1}
    assert_poses_match(ds, truth)


def test_a_bad_pose_topic_sample_skips_the_frames_it_touches(tmp_path, typestore):
    msgs, truth = robot_messages(typestore.types, n_images=6)
    msgs = [m for m in msgs if m[0] != "/tf"]
    for t_ns, T in truth.items():
        msgs.append(("/gt", "geometry_msgs/msg/PoseStamped", t_ns,
                     c.make_pose_stamped(typestore.types, T, t_ns, "map")))
    msgs.sort(key=lambda m: m[2])
    gt = [m[3] for m in msgs if m[0] == "/gt"]
    _set_q(gt[2].pose.orientation, [0, 0, 0.5, 0.5])  # squared norm 0.5
    ds = read_bag_dataset(write_rosbag2(tmp_path / "b", typestore, msgs), BagSource(pose_topic="/gt"))
    assert len(ds) == 5 and int(round(0.25 * S)) not in ds.stamps_ns.tolist()
    assert ds.skipped.counts == {with_detail(SKIP_BAD_POSE, "non-unit quaternion"): 1}
    assert ds.skipped.ignored_samples == {with_detail(BAD_POSE_SAMPLE, "non-unit quaternion"): 1}
    assert_poses_match(ds, truth, atol_m=1e-9)
