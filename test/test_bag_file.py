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

"""Opening bags and choosing topics: errors say which bag, which topic, and why."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import robot_messages, set_metadata_message_count, write_empty_rosbag2, write_rosbag2

from reloc_ros import conversions as c
from reloc_ros.data.bag import BagSource, read_bag_dataset
from reloc_ros.errors import RelocError

IMAGE = "sensor_msgs/msg/Image"


def test_a_topic_the_metadata_counts_as_empty_is_read(tmp_path, typestore):
    msgs, _ = robot_messages(typestore.types, n_images=4)
    path = write_rosbag2(tmp_path / "b", typestore, msgs)
    set_metadata_message_count(path, "/camera/image_raw", 0)
    assert len(read_bag_dataset(path, load_images=False)) == 4  # chosen automatically, then read
    assert len(read_bag_dataset(path, BagSource(image_topic="/camera/image_raw"))) == 4


def test_a_bag_of_no_messages_says_so(tmp_path, typestore):
    path = write_empty_rosbag2(tmp_path / "b", typestore, [("/camera/image_raw", IMAGE),
                                                           ("/tf", "tf2_msgs/msg/TFMessage")])
    with pytest.raises(ValueError, match="bag .* holds no messages at all \\(topics declared: /camera/image_raw"):
        read_bag_dataset(path)
    with pytest.raises(RelocError, match="image topic '/camera/image_raw' in bag .* holds no messages"):
        read_bag_dataset(path, BagSource(image_topic="/camera/image_raw"))


def test_an_empty_image_topic_among_others_says_it_holds_no_messages(tmp_path, typestore):
    msgs, _ = robot_messages(typestore.types, n_images=2)
    msgs = [m for m in msgs if m[0] != "/camera/image_raw"]
    path = write_rosbag2(tmp_path / "b", typestore, msgs)
    # write_rosbag2 only declares topics that have messages: declare the image topic in an empty bag beside it.
    empty = write_empty_rosbag2(tmp_path / "e", typestore, [("/camera/image_raw", IMAGE)])
    with pytest.raises(ValueError, match="no colour image topic: /camera/image_raw holds no messages"):
        read_bag_dataset([path, empty])


def test_depth_encoded_topics_are_named_as_the_reason(tmp_path, typestore):
    msgs, _ = robot_messages(typestore.types, n_images=2)
    depth = [("/camera/depth", IMAGE, t,
              c.make_image_msg(typestore.types, np.ones((24, 32), np.float32), "32FC1", t, "camera_optical_frame"))
             for topic, _, t, _ in msgs if topic == "/camera/image_raw"]
    mono16 = [("/camera/ir", IMAGE, t,
               c.make_image_msg(typestore.types, np.ones((24, 32), np.uint16), "16UC1", t, "camera_optical_frame"))
              for topic, _, t, _ in msgs if topic == "/camera/image_raw"]
    others = [m for m in msgs if m[0] != "/camera/image_raw"]
    path = write_rosbag2(tmp_path / "b", typestore, sorted(others + depth + mono16, key=lambda m: m[2]))
    with pytest.raises(ValueError, match="no colour image topic: /camera/depth \\(32FC1\\), /camera/ir \\(16UC1\\) "
                                         "are depth-encoded.*choose a topic with --image-topic"):
        read_bag_dataset(path)


def test_of_two_bags_only_the_corrupt_one_is_named(tmp_path, typestore):
    msgs, _ = robot_messages(typestore.types, n_images=3)
    good = write_rosbag2(tmp_path / "good", typestore, msgs)
    bad = write_rosbag2(tmp_path / "bad", typestore, msgs)
    mcap = next(bad.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[:len(mcap.read_bytes()) // 2])
    with pytest.raises(RelocError, match="truncated or corrupt") as err:
        read_bag_dataset([good, bad])
    assert str(bad) in str(err.value) and f"{good}," not in str(err.value) and f"{good}:" not in str(err.value)


def test_of_two_bags_a_broken_metadata_names_its_bag(tmp_path, typestore):
    msgs, _ = robot_messages(typestore.types, n_images=3)
    good = write_rosbag2(tmp_path / "good", typestore, msgs)
    bad = write_rosbag2(tmp_path / "bad", typestore, msgs)
    (bad / "metadata.yaml").write_text("rosbag2_bagfile_information: [not, a, mapping\n")
    with pytest.raises(RelocError, match="cannot open bag .*bad") as err:
        read_bag_dataset([good, bad])
    assert str(good) not in str(err.value)


def test_an_error_while_reading_two_bags_names_the_one_it_comes_from(tmp_path, typestore):
    msgs, _ = robot_messages(typestore.types, n_images=30)
    good = write_rosbag2(tmp_path / "good", typestore, msgs)
    bad = write_rosbag2(tmp_path / "bad", typestore, msgs)
    mcap = next(bad.glob("*.mcap"))
    data = bytearray(mcap.read_bytes())
    data[len(data) // 2:len(data) // 2 + 200] = b"\xff" * 200  # a damaged chunk: the bag opens, reading fails
    mcap.write_bytes(bytes(data))
    with pytest.raises(RelocError, match=f"from bag {bad}: .*truncated or corrupt") as err:
        read_bag_dataset([good, bad])
    assert str(good) not in str(err.value)
