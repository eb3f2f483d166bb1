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

"""TF buffer: chains, interpolation, tolerance, errors naming the frames."""

import numpy as np
import pytest

from reloc_ros.data.tf_buffer import PoseSeries, TfBuffer, TfLookupError
from reloc_ros.data.types import SKIP_AFTER_LAST_TF, SKIP_NO_TF_YET, SKIP_OUTSIDE_TOLERANCE
from reloc_ros.geometry import make_pose, rotation_error_deg

S = 1_000_000_000


def yaw(deg):
    a = np.radians(deg) / 2
    return [0.0, 0.0, np.sin(a), np.cos(a)]


def robot_buffer():
    tf = TfBuffer(tolerance_s=0.05, max_gap_s=0.5)
    for k in range(11):  # 10 Hz, 0..1 s: odom drifts along y, robot drives along x and turns
        t = k * S // 10
        tf.add("map", "odom", t, make_pose([0, 0.01 * k, 0], yaw(0.5 * k)))
        tf.add("odom", "base_link", t, make_pose([0.1 * k, 0, 0], yaw(3 * k)))
    tf.add("base_link", "camera_link", 0, make_pose([0.2, 0, 0.8], yaw(0)), static=True)
    tf.add("camera_link", "camera_optical_frame", 0,
           make_pose([0, 0, 0], [-0.5, 0.5, -0.5, 0.5]), static=True)
    return tf


def test_chain_through_odom_matches_manual_composition():
    tf = robot_buffer()
    t = 5 * S // 10
    T = tf.lookup("map", "camera_optical_frame", t)
    manual = (make_pose([0, 0.05, 0], yaw(2.5)) @ make_pose([0.5, 0, 0], yaw(15))
              @ make_pose([0.2, 0, 0.8], yaw(0)) @ make_pose([0, 0, 0], [-0.5, 0.5, -0.5, 0.5]))
    assert np.allclose(T, manual)
    # Optical frame: z forward equals base x forward when the camera looks straight ahead.
    assert np.allclose(T[:3, 2], manual[:3, :3] @ [0, 0, 1])
    # Inverse direction.
    assert np.allclose(tf.lookup("camera_optical_frame", "map", t), np.linalg.inv(manual))


def test_interpolation_between_samples():
    tf = robot_buffer()
    T = tf.lookup("odom", "base_link", 25 * S // 100)  # between 0.2 and 0.3 s
    assert np.allclose(T[:3, 3], [0.25, 0, 0])
    assert np.isclose(rotation_error_deg(T, make_pose([0, 0, 0], yaw(0))), 7.5)


def test_refuses_extrapolation_beyond_tolerance_but_holds_within():
    tf = robot_buffer()
    stamps = np.array([-S // 100, -S // 10, S + S // 100, S + S // 5])
    T, reasons = tf.lookup_many("map", "base_link", stamps)
    assert reasons == [None, SKIP_NO_TF_YET, None, SKIP_AFTER_LAST_TF]
    assert np.allclose(T[0][:3, 3], [0, 0, 0]) and np.allclose(T[2][:3, 3], tf.lookup("map", "base_link", S)[:3, 3])


def test_gap_is_not_interpolated():
    poses = np.stack([make_pose([0, 0, 0], yaw(0)), make_pose([2, 0, 0], yaw(0))])
    series = PoseSeries.from_samples(np.array([0, 2 * S]), poses)
    T, reasons = series.interpolate(np.array([S, S // 50]), tolerance_s=0.05, max_gap_s=0.5)
    assert reasons[0] == SKIP_OUTSIDE_TOLERANCE  # 1 s into a 2 s dropout
    assert reasons[1] is None and np.allclose(T[1][:3, 3], 0)  # 20 ms after a sample: held


def test_duplicate_and_unsorted_samples():
    series = PoseSeries.from_samples(np.array([2, 0, 1, 1]) * S // 10, np.stack(
        [make_pose([v, 0, 0], yaw(0)) for v in (2.0, 0.0, 1.0, 9.0)]))
    assert series.duplicates == 1
    assert series.stamps_ns.tolist() == [0, S // 10, 2 * S // 10]
    assert np.allclose(series.poses_n44[1][:3, 3], [1, 0, 0])  # first of the duplicates kept


def test_unconnected_frames_name_what_is_connected():
    tf = robot_buffer()
    tf.add("world", "marker", 0, np.eye(4), static=True)
    with pytest.raises(TfLookupError, match="no TF path between 'map' and 'marker'.*camera_link.*world"):
        tf.lookup("map", "marker", 0)
    with pytest.raises(TfLookupError, match="'nope' does not exist.*base_link"):
        tf.lookup("map", "nope", 0)


def test_second_parent_rejected():
    tf = robot_buffer()
    with pytest.raises(ValueError, match="two parents, 'odom' and 'map'"):
        tf.add("map", "base_link", 0, np.eye(4))


def test_static_chain_detection():
    tf = robot_buffer()
    assert tf.is_static("base_link", "camera_optical_frame")
    assert not tf.is_static("map", "camera_optical_frame")


BAD = "ground truth from a bad TF sample (NaN or inf)"


def test_a_bad_sample_refuses_the_lookups_it_would_have_served():
    tf = robot_buffer()
    tf.add_bad("odom", "base_link", 55 * S // 100, BAD)  # between the good samples at 0.5 and 0.6 s
    stamps = np.array([45, 52, 55, 58, 60, 65]) * S // 100
    T, reasons = tf.lookup_many("map", "base_link", stamps)
    assert reasons == [None, BAD, BAD, BAD, None, None]
    assert np.allclose(T[0][:3, 3], tf.lookup("map", "base_link", stamps[0])[:3, 3])
    with pytest.raises(TfLookupError, match="bad TF sample \\(NaN or inf\\)"):
        tf.lookup("map", "base_link", 55 * S // 100)
    assert "base_link" in tf.frames and tf.lookup("map", "odom", 55 * S // 100).shape == (4, 4)


def test_a_bad_sample_beyond_the_last_good_one_reaches_only_its_tolerance():
    tf = robot_buffer()
    tf.add_bad("odom", "base_link", 12 * S // 10, BAD)  # 0.2 s after the last good sample (1.0 s)
    stamps = np.array([100, 104, 110, 117, 125, 126]) * S // 100
    _, reasons = tf.lookup_many("odom", "base_link", stamps)
    # 1.00 s is the good sample; between it and the bad one (1.04 .. 1.17 s) would have been interpolated from the
    # bad one, and after it held up to 1.25 s (its tolerance); 1.26 s was out of reach anyway.
    assert reasons == [None, BAD, BAD, BAD, BAD, SKIP_AFTER_LAST_TF]


def test_a_good_sample_at_the_same_stamp_takes_the_bad_ones_place():
    tf = robot_buffer()
    tf.add_bad("odom", "base_link", 5 * S // 10, BAD)
    _, reasons = tf.lookup_many("odom", "base_link", np.array([48, 50, 52]) * S // 100)
    assert reasons == [None, None, None]


def test_an_edge_with_only_bad_samples_skips_with_their_reason():
    tf = robot_buffer()
    tf.add_bad("camera_optical_frame", "marker", 0, "why static", static=True)
    tf.add_bad("base_link", "wheel", 5 * S // 10, BAD)
    _, reasons = tf.lookup_many("map", "marker", np.array([0, S // 2]))
    assert reasons == ["why static", "why static"]
    _, reasons = tf.lookup_many("base_link", "wheel", np.array([S // 2, S]))
    assert reasons == [BAD, SKIP_NO_TF_YET]
    assert not tf.is_static("camera_optical_frame", "marker")


def test_pose_series_with_bad_samples_and_no_good_one():
    series = PoseSeries.from_samples(np.zeros(0), np.zeros((0, 4, 4)), np.array([S]), [BAD])
    _, reasons = series.interpolate(np.array([S - S // 100, 2 * S]), tolerance_s=0.05, max_gap_s=0.5)
    assert reasons == [BAD, SKIP_NO_TF_YET]
