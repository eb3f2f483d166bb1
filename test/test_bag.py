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

"""Reading (image, pose) pairs from real bags: TF and pose-topic ground truth, errors, cache."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import S, robot_messages, write_rosbag2, yaw

from reloc_ros import conversions as c
from reloc_ros.conversions import images as ci
from reloc_ros.data import bag as bagmod
from reloc_ros.data.bag import BagSource, read_bag_dataset
from reloc_ros.data.types import (BAD_TF_SAMPLE, SKIP_BAD_TF, SKIP_DUPLICATE_STAMP, SKIP_NO_TF_YET, SKIP_UNDECODABLE,
                                  with_detail)
from reloc_ros.errors import RelocError
from reloc_ros.geometry import make_pose, rotation_error_deg, translation_error


def assert_poses_match(ds, truth, atol_m=1e-3):
    expected = np.stack([truth[int(s)] for s in ds.stamps_ns])
    assert translation_error(ds.poses_n44, expected).max() < atol_m
    assert rotation_error_deg(ds.poses_n44, expected).max() < 0.05


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_tf_ground_truth_through_the_whole_chain(tmp_path, typestore, storage):
    msgs, truth = robot_messages(typestore.types)
    path = write_rosbag2(tmp_path / "b", typestore, msgs, storage=storage)
    ds = read_bag_dataset(path)
    assert len(ds) == 20 and ds.skipped.total == 0
    assert ds.camera_frame == "camera_optical_frame" and ds.map_frame == "map"
    assert_poses_match(ds, truth)
    # Images come back as recorded, in stamp order (pixel (0,0) holds the frame index).
    assert ds.images.shape == (20, 24, 32, 3)
    assert ds.images[:, 0, 0, 0].tolist() == list(range(20))
    assert ds.intrinsics.fx == 30.0 and ds.intrinsics.width == 32


def test_resize_scales_intrinsics_and_storage_file_path_works(robot_bag):
    path, _ = robot_bag
    mcap = next(path.glob("*.mcap"))
    ds = read_bag_dataset(mcap, image_size=(16, 12))
    assert ds.images.shape == (20, 12, 16, 3)
    assert ds.intrinsics.fx == pytest.approx(15.0) and ds.intrinsics.width == 16
    assert ds.intrinsics.cx == pytest.approx((15.5 + 0.5) / 2 - 0.5)


def test_images_before_first_tf_are_skipped_and_counted(tmp_path, typestore):
    msgs, truth = robot_messages(typestore.types)
    late = [m for m in msgs if m[0] != "/tf" or m[2] >= int(0.44 * S)]  # TF from 0.44 s
    ds = read_bag_dataset(write_rosbag2(tmp_path / "b", typestore, late))
    assert ds.skipped.counts[SKIP_NO_TF_YET] == 4  # images at 0.05, 0.15, 0.25, 0.35 s
    assert len(ds) == 16 and ds.stamps_ns.min() >= int(0.45 * S)
    assert_poses_match(ds, truth)
    assert "4 no TF yet" in str(ds.skipped)


def test_bgr8_is_returned_as_rgb(tmp_path, typestore):
    msgs, _ = robot_messages(typestore.types, encoding="bgr8")
    ds = read_bag_dataset(write_rosbag2(tmp_path / "b", typestore, msgs))
    assert ds.images[:, 0, 0, 0].tolist() == list(range(20))


def test_pose_topic_of_camera_frame(tmp_path, typestore):
    msgs, truth = robot_messages(typestore.types)
    msgs = [m for m in msgs if m[0] != "/tf"]
    for t_ns, T in list(truth.items())[::2]:  # every other image has a pose: the rest interpolate
        msgs.append(("/gt", "geometry_msgs/msg/PoseStamped", t_ns,
                     c.make_pose_stamped(typestore.types, T, t_ns, "map")))
    msgs.sort(key=lambda m: m[2])
    ds = read_bag_dataset(write_rosbag2(tmp_path / "b", typestore, msgs), BagSource(pose_topic="/gt"))
    assert len(ds) == 19  # the last image is 0.1 s after the last pose: beyond tolerance
    # Interpolated frames are close to the truth (the trajectory curves a little).
    expected = np.stack([truth[int(s)] for s in ds.stamps_ns])
    assert translation_error(ds.poses_n44, expected).max() < 0.01
    assert np.allclose(ds.poses_n44[::2], expected[::2])


def test_odometry_of_base_link_gets_camera_extrinsics_from_tf(tmp_path, typestore):
    msgs, truth = robot_messages(typestore.types)
    T_base_opt = make_pose([0.2, 0, 0.8], yaw(0)) @ make_pose([0, 0, 0], [-0.5, 0.5, -0.5, 0.5])
    msgs = [m for m in msgs if m[0] != "/tf"]
    for t_ns, T in truth.items():
        msgs.append(("/odom_gt", "nav_msgs/msg/Odometry", t_ns,
                     c.make_odometry(typestore.types, T @ np.linalg.inv(T_base_opt), t_ns, "map", "base_link")))
    msgs.sort(key=lambda m: m[2])
    ds = read_bag_dataset(write_rosbag2(tmp_path / "b", typestore, msgs), BagSource(pose_topic="/odom_gt"))
    assert len(ds) == 20
    assert_poses_match(ds, truth, atol_m=1e-9)


def test_pose_topic_in_other_frame_is_refused(tmp_path, typestore):
    msgs, truth = robot_messages(typestore.types, n_images=3)
    for t_ns, T in truth.items():
        msgs.append(("/gt", "geometry_msgs/msg/PoseStamped", t_ns, c.make_pose_stamped(typestore.types, T, t_ns,
                                                                                       "world")))
    path = write_rosbag2(tmp_path / "b", typestore, sorted(msgs, key=lambda m: m[2]))
    with pytest.raises(ValueError, match="in frame\\(s\\) world.*--map-frame world"):
        read_bag_dataset(path, BagSource(pose_topic="/gt"))
    with pytest.raises(ValueError, match="pose topic '/nope' not in bag.*/gt"):
        read_bag_dataset(path, BagSource(pose_topic="/nope"))


def test_topic_choice_and_errors(tmp_path, typestore):
    msgs, _ = robot_messages(typestore.types, n_images=3)
    depth = np.ones((24, 32), np.float32)
    extra = [("/camera/depth/image_raw", "sensor_msgs/msg/Image", m[2],
              c.make_image_msg(typestore.types, depth, "32FC1", m[2], "camera_optical_frame"))
             for m in msgs if m[0] == "/camera/image_raw"]
    path = write_rosbag2(tmp_path / "one", typestore, sorted(msgs + extra, key=lambda m: m[2]))
    # A depth topic is not a colour topic: the only colour topic is chosen.
    assert len(read_bag_dataset(path)) == 3
    with pytest.raises(ValueError, match="image topic '/cam' not in bag.*/camera/depth/image_raw.*/camera/image_raw"):
        read_bag_dataset(path, BagSource(image_topic="/cam"))
    with pytest.raises(ValueError, match="has type tf2_msgs/msg/TFMessage, not an image"):
        read_bag_dataset(path, BagSource(image_topic="/tf"))
    second = [(t.replace("image_raw", "image_color"), *rest) for t, *rest in msgs if t == "/camera/image_raw"]
    path2 = write_rosbag2(tmp_path / "two", typestore, sorted(msgs + second, key=lambda m: m[2]))
    with pytest.raises(ValueError, match="several colour image topics: /camera/image_color, /camera/image_raw"):
        read_bag_dataset(path2)


def test_unconnected_frames_error_names_connected_frames(robot_bag):
    path, _ = robot_bag
    with pytest.raises(ValueError, match="'world' does not exist in TF; frames present: base_link"):
        read_bag_dataset(path, BagSource(map_frame="world"))


def test_duplicate_and_undecodable_frames_are_counted(tmp_path, typestore):
    msgs, truth = robot_messages(typestore.types, n_images=5)
    images = [m for m in msgs if m[0] == "/camera/image_raw"]
    msgs.append(("/camera/image_raw", "sensor_msgs/msg/Image", images[2][2] + 1, images[2][3]))  # same stamp
    bad = c.make_image_msg(typestore.types, np.zeros((24, 32, 3), np.uint8), "rgb8", images[4][2] + 2,
                           "camera_optical_frame")
    bad.data = bad.data[:-10]  # truncated pixel data: height x step disagrees
    msgs.append(("/camera/image_raw", "sensor_msgs/msg/Image", images[4][2] + 2, bad))
    ds = read_bag_dataset(write_rosbag2(tmp_path / "b", typestore, sorted(msgs, key=lambda m: m[2])))
    assert ds.skipped.counts[SKIP_DUPLICATE_STAMP] == 1
    assert ds.skipped.counts[with_detail(SKIP_UNDECODABLE, ci.DATA_LENGTH)] == 1
    assert len(ds) == 5
    assert_poses_match(ds, truth)


def test_compressed_images(tmp_path, typestore):
    msgs, truth = robot_messages(typestore.types, n_images=4)
    comp = []
    for topic, mt, t, m in msgs:
        if topic == "/camera/image_raw":
            comp.append(("/camera/image_raw/compressed", "sensor_msgs/msg/CompressedImage", t,
                         c.make_compressed_image_msg(typestore.types, c.image_to_rgb8(m), "png", t,
                                                     "camera_optical_frame")))
    path = write_rosbag2(tmp_path / "b", typestore,
                         sorted([m for m in msgs if m[0] != "/camera/image_raw"] + comp, key=lambda m: m[2]))
    ds = read_bag_dataset(path)
    assert len(ds) == 4 and ds.images[:, 0, 0, 0].tolist() == [0, 1, 2, 3]
    assert ds.intrinsics is not None  # camera_info found beside image_raw/compressed
    assert_poses_match(ds, truth)


def test_aligned_depth_and_misaligned_depth(tmp_path, typestore):
    msgs, _ = robot_messages(typestore.types, n_images=3)
    imgs = [m for m in msgs if m[0] == "/camera/image_raw"]
    good = [("/depth", "sensor_msgs/msg/Image", t,
             c.make_image_msg(typestore.types, np.full((24, 32), 2.5, np.float32), "32FC1", t, "camera_optical_frame"))
            for _, _, t, _ in imgs[:2]]
    path = write_rosbag2(tmp_path / "b", typestore, sorted(msgs + good, key=lambda m: m[2]))
    ds = read_bag_dataset(path, BagSource(depth_topic="/depth"), image_size=(16, 12))
    assert len(ds) == 2 and ds.skipped.counts[bagmod.SKIP_NO_DEPTH] == 1
    assert ds.depths.shape == (2, 12, 16) and np.allclose(ds.depths, 2.5)
    wrong = [("/depth", "sensor_msgs/msg/Image", t,
              c.make_image_msg(typestore.types, np.ones((12, 16), np.float32), "32FC1", t, "camera_optical_frame"))
             for _, _, t, _ in imgs]
    path2 = write_rosbag2(tmp_path / "b2", typestore, sorted(msgs + wrong, key=lambda m: m[2]))
    with pytest.raises(ValueError, match="depth on '/depth' is 16x12 but the colour images are 32x24"):
        read_bag_dataset(path2, BagSource(depth_topic="/depth"))
    # Same size, but in the depth sensor's own frame: not registered to colour.
    other = [("/depth", "sensor_msgs/msg/Image", t,
              c.make_image_msg(typestore.types, np.ones((24, 32), np.float32), "32FC1", t, "depth_optical_frame"))
             for _, _, t, _ in imgs]
    path3 = write_rosbag2(tmp_path / "b3", typestore, sorted(msgs + other, key=lambda m: m[2]))
    with pytest.raises(ValueError, match="depth on '/depth' is in frame 'depth_optical_frame' but the colour "
                                         "images are in 'camera_optical_frame'"):
        read_bag_dataset(path3, BagSource(depth_topic="/depth"))


def test_corrupt_and_missing_bags(tmp_path, robot_bag):
    path, _ = robot_bag
    mcap = next(path.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])  # truncated recording
    with pytest.raises(RelocError, match="truncated or corrupt"):
        read_bag_dataset(path)
    with pytest.raises(ValueError, match="does not exist"):
        read_bag_dataset(tmp_path / "nothing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="without metadata.yaml"):
        read_bag_dataset(tmp_path / "plain")


def test_ros1_bag(tmp_path):
    """ROS 1 bags (rosbag record on Noetic) read the same way."""
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    from rosbags.typesys import get_types_from_msg

    ts = get_typestore(Stores.ROS1_NOETIC)
    # Noetic's store lacks tf2_msgs; a real ROS 1 bag embeds this definition.
    ts.register(get_types_from_msg("geometry_msgs/TransformStamped[] transforms", "tf2_msgs/msg/TFMessage"))
    T = ts.types
    Header, Time = T["std_msgs/msg/Header"], T["builtin_interfaces/msg/Time"]

    def header(t_ns, frame):
        return Header(seq=0, stamp=Time(sec=t_ns // S, nanosec=t_ns % S), frame_id=frame)

    def tfs(t_ns, parent, child, xyz):
        tr = T["geometry_msgs/msg/Transform"](
            translation=T["geometry_msgs/msg/Vector3"](x=xyz[0], y=xyz[1], z=xyz[2]),
            rotation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0))
        return T["geometry_msgs/msg/TransformStamped"](
            header=header(t_ns, parent), child_frame_id=child, transform=tr)

    path = tmp_path / "r1.bag"
    with Writer(path) as w:
        ctf = w.add_connection("/tf", "tf2_msgs/msg/TFMessage", typestore=ts)
        cim = w.add_connection("/cam/image", "sensor_msgs/msg/Image", typestore=ts)
        for k in range(6):
            t_ns = S + k * S // 10
            w.write(ctf, t_ns, ts.serialize_ros1(T["tf2_msgs/msg/TFMessage"](
                transforms=[tfs(t_ns, "map", "cam", (0.1 * k, 0.0, 0.0))]), "tf2_msgs/msg/TFMessage"))
            if k % 2:
                img = T["sensor_msgs/msg/Image"](header=header(t_ns + S // 20, "cam"), height=2, width=3,
                                                 encoding="mono8", is_bigendian=0, step=3,
                                                 data=np.arange(6, dtype=np.uint8))
                w.write(cim, t_ns + S // 20, ts.serialize_ros1(img, "sensor_msgs/msg/Image"))
    ds = read_bag_dataset(path)
    assert len(ds) == 3
    # Interpolated halfway; the last image is 50 ms after the last sample: held, not extrapolated.
    assert np.allclose(ds.poses_n44[:, 0, 3], [0.15, 0.35, 0.5])
    assert ds.images.shape == (3, 2, 3, 3) and ds.images[0, 1, 2].tolist() == [5, 5, 5]


def test_cache_skips_decoding_on_second_read(robot_bag, tmp_path, monkeypatch):
    path, truth = robot_bag
    cache = tmp_path / "cache"
    first = read_bag_dataset(path, image_size=(16, 12), cache_dir=cache)
    monkeypatch.setattr(bagmod, "Bag", None)  # any attempt to open the bag now fails
    second = read_bag_dataset(path, image_size=(16, 12), cache_dir=cache)
    assert isinstance(second.images, np.memmap)
    assert np.array_equal(first.images, second.images) and np.array_equal(first.poses_n44, second.poses_n44)
    assert second.intrinsics == first.intrinsics and second.camera_frame == first.camera_frame
    monkeypatch.undo()
    # Another size is another entry.
    assert read_bag_dataset(path, image_size=(8, 6), cache_dir=cache).images.shape[1:3] == (6, 8)


def test_extract_cli_writes_tum(robot_bag, tmp_path, capsys):
    from reloc_ros.cli import main
    from reloc_ros.data.layouts import read_tum_trajectory

    path, truth = robot_bag
    out = tmp_path / "gt.tum"
    assert main(["-q", "extract", str(path), "--tum", str(out)]) == 0  # image topic chosen automatically
    stamps, poses = read_tum_trajectory(out)
    assert len(stamps) == 20 and "wrote 20 poses of 'camera_optical_frame' in 'map'" in capsys.readouterr().out
    expected = np.stack([truth[int(s)] for s in stamps])
    assert translation_error(poses, expected).max() < 1e-3
    first = out.read_text().splitlines()[1].split()
    assert len(first) == 8 and first[0] == "0.050000000"


def test_extract_cli_reports_bad_topic_without_traceback(robot_bag, tmp_path, capsys):
    from reloc_ros.cli import main

    path, _ = robot_bag
    assert main(["-q", "extract", str(path), "--image-topic", "/x", "--tum", str(tmp_path / "o.tum")]) == 2
    err = capsys.readouterr().err
    assert "image topic '/x' not in bag" in err and "/camera/image_raw" in err and "Traceback" not in err
    assert not (tmp_path / "o.tum").exists()


def test_nan_quaternion_in_tf_is_skipped_and_counted_not_a_pose(tmp_path, typestore):
    msgs, truth = robot_messages(typestore.types, n_images=3)
    for topic, _, t, m in msgs:
        if topic == "/tf" and t > 0:
            m.transforms[1].transform.rotation.w = float("nan")  # odom -> base_link at 0.04 s
            break
    ds = read_bag_dataset(write_rosbag2(tmp_path / "b", typestore, msgs))
    # The image at 0.05 s lies between the good samples at 0 and 0.08 s around the bad one: skipped, not interpolated.
    assert ds.skipped.counts == {with_detail(SKIP_BAD_TF, "NaN or inf"): 1}
    assert ds.skipped.ignored_samples == {with_detail(BAD_TF_SAMPLE, "NaN or inf"): 1}
    assert len(ds) == 2 and ds.stamps_ns.min() > int(0.08 * S)
    assert_poses_match(ds, truth)
    assert "1 ground-truth sample ignored: 1 bad TF sample (NaN or inf)" in str(ds.skipped)


def test_non_monotonic_image_stamps_are_ordered_by_stamp(tmp_path, typestore):
    msgs, truth = robot_messages(typestore.types, n_images=6)
    imgs = [i for i, m in enumerate(msgs) if m[0] == "/camera/image_raw"]
    # Swap the header stamps of two images (log order stays): a driver publishing out of order.
    a, b = msgs[imgs[1]][3], msgs[imgs[3]][3]
    a.header.stamp, b.header.stamp = b.header.stamp, a.header.stamp
    ds = read_bag_dataset(write_rosbag2(tmp_path / "b", typestore, msgs))
    assert np.all(np.diff(ds.stamps_ns) > 0)
    assert ds.images[:, 0, 0, 0].tolist() == [0, 3, 2, 1, 4, 5]  # pixels follow their stamps
    assert_poses_match(ds, truth)


def test_crop_preprocessing_is_cached_apart_from_resize(robot_bag, tmp_path):
    path, _ = robot_bag
    cache = tmp_path / "cache"
    resized = read_bag_dataset(path, image_size=(12, 12), cache_dir=cache, preprocessing="resize")
    cropped = read_bag_dataset(path, image_size=(12, 12), cache_dir=cache, preprocessing="crop")
    assert not np.array_equal(resized.images, cropped.images)
    # Crop keeps the 24x24 centre of the 32x24 image (scaled by 0.5): the centred principal point stays centred.
    assert cropped.intrinsics.fx == pytest.approx(15.0) and cropped.intrinsics.cx == pytest.approx(5.5)
    assert resized.intrinsics.fx == pytest.approx(30.0 * 12 / 32)


def test_a_rosbag2_directory_named_like_a_ros1_bag_is_read_as_rosbag2(tmp_path):
    """'reloc-ros synth map.bag' and 'ros2 bag record -o map.bag' write a rosbag2 directory called map.bag."""
    from reloc_ros.data.synth import write_synthetic_bag

    write_synthetic_bag(tmp_path / "map.bag", route="test", frames=5, size=(32, 24), progress=False)
    ds = read_bag_dataset(tmp_path / "map.bag", BagSource(), load_images=False)
    assert len(ds) == 5


# ---------------------------------------------------------------------------
# Metadata counts are never trusted
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("claimed", [10, 0, 100])
def test_metadata_message_count_neither_sizes_nor_limits_the_read(tmp_path, typestore, claimed):
    """metadata.yaml says 10 (or 0, or 100) images; the file holds 40: all 40 are read, with and without pixels."""
    from conftest import set_metadata_message_count

    msgs, truth = robot_messages(typestore.types, n_images=40)
    path = write_rosbag2(tmp_path / "b", typestore, msgs)
    set_metadata_message_count(path, "/camera/image_raw", claimed)
    ds = read_bag_dataset(path)
    assert len(ds) == 40 and ds.skipped.total == 0 and ds.images.shape[0] == 40
    assert_poses_match(ds, truth)
    assert len(read_bag_dataset(path, load_images=False)) == 40
    stamps, images = bagmod.read_bag_images(path)
    assert len(stamps) == len(images) == 40


# ---------------------------------------------------------------------------
# Unusable images are counted by reason, with or without decoding them
# ---------------------------------------------------------------------------

def _bad_image_bag(tmp_path, typestore):
    """Eight frames: five good, then an unknown encoding, a zero-size image and a truncated one."""
    msgs, truth = robot_messages(typestore.types, n_images=8)
    imgs = [m[3] for m in msgs if m[0] == "/camera/image_raw"]
    imgs[5].encoding = "rgb9"
    imgs[6].height, imgs[6].width, imgs[6].step, imgs[6].data = 0, 0, 0, np.zeros(0, np.uint8)
    imgs[7].data = imgs[7].data[:-10]
    return write_rosbag2(tmp_path / "b", typestore, msgs), truth


@pytest.mark.parametrize("load_images", [True, False])
def test_undecodable_images_are_skipped_and_counted_by_reason(tmp_path, typestore, load_images):
    path, truth = _bad_image_bag(tmp_path, typestore)
    ds = read_bag_dataset(path, load_images=load_images)
    assert len(ds) == 5
    assert ds.skipped.counts == {with_detail(SKIP_UNDECODABLE, ci.UNKNOWN_ENCODING): 1,
                                 with_detail(SKIP_UNDECODABLE, ci.ZERO_SIZE): 1,
                                 with_detail(SKIP_UNDECODABLE, ci.DATA_LENGTH): 1}
    assert_poses_match(ds, truth)
    assert "3 frames skipped" in str(ds.skipped) and "image undecodable (unknown encoding)" in str(ds.skipped)


@pytest.mark.parametrize("load_images", [True, False])
def test_undecodable_compressed_images_are_skipped_and_counted(tmp_path, typestore, load_images):
    msgs, truth = robot_messages(typestore.types, n_images=5)
    out = []
    for topic, mt, t, m in msgs:
        if topic == "/camera/image_raw":
            m = c.make_compressed_image_msg(typestore.types, c.image_to_rgb8(m), "png", t, "camera_optical_frame")
            topic, mt = "/camera/image_raw/compressed", "sensor_msgs/msg/CompressedImage"
        out.append((topic, mt, t, m))
    comp = [m[3] for m in out if m[0] == "/camera/image_raw/compressed"]
    comp[3].data = np.zeros(0, np.uint8)
    comp[4].data = np.frombuffer(b"\x89PNG\r\n\x1a\n but the rest is gone", np.uint8).copy()
    ds = read_bag_dataset(write_rosbag2(tmp_path / "b", typestore, out), load_images=load_images)
    assert len(ds) == 3
    assert ds.skipped.counts == {with_detail(SKIP_UNDECODABLE, ci.COMPRESSED_EMPTY): 1,
                                 with_detail(SKIP_UNDECODABLE, ci.COMPRESSED_UNREADABLE): 1}
    assert_poses_match(ds, truth)


def test_frames_of_another_size_are_skipped_and_counted(tmp_path, typestore):
    msgs, truth = robot_messages(typestore.types, n_images=4)
    imgs = [i for i, m in enumerate(msgs) if m[0] == "/camera/image_raw"]
    _, mt, t, m = msgs[imgs[2]]
    msgs[imgs[2]] = ("/camera/image_raw", mt, t, c.make_image_msg(typestore.types, np.zeros((12, 16, 3), np.uint8),
                                                                  "rgb8", t, "camera_optical_frame"))
    path = write_rosbag2(tmp_path / "b", typestore, msgs)
    for load_images in (True, False):
        ds = read_bag_dataset(path, load_images=load_images)
        assert len(ds) == 3 and ds.skipped.counts == {"image size differs from the topic's first image": 1}
        assert_poses_match(ds, truth)


def test_undecodable_depth_is_skipped_and_counted(tmp_path, typestore):
    msgs, _ = robot_messages(typestore.types, n_images=3)
    imgs = [m for m in msgs if m[0] == "/camera/image_raw"]
    depth = [("/depth", "sensor_msgs/msg/Image", t,
              c.make_image_msg(typestore.types, np.full((24, 32), 2.5, np.float32), "32FC1", t, "camera_optical_frame"))
             for _, _, t, _ in imgs]
    depth[1][3].data = depth[1][3].data[:-4]
    ds = read_bag_dataset(write_rosbag2(tmp_path / "b", typestore, sorted(msgs + depth, key=lambda m: m[2])),
                          BagSource(depth_topic="/depth"))
    assert len(ds) == 2 and ds.skipped.counts == {"depth image undecodable (data length is not height x step)": 1}


def test_only_undecodable_images_say_so(tmp_path, typestore):
    msgs, _ = robot_messages(typestore.types, n_images=2)
    for m in msgs:
        if m[0] == "/camera/image_raw":
            m[3].encoding = "rgb9"
    with pytest.raises(RelocError, match="no usable image on '/camera/image_raw'.*2 image undecodable "
                                         "\\(unknown encoding\\)"):
        read_bag_dataset(write_rosbag2(tmp_path / "b", typestore, msgs), load_images=False)


def test_a_bad_camera_info_message_is_passed_over(tmp_path, typestore):
    msgs, _ = robot_messages(typestore.types, n_images=3)
    infos = [m[3] for m in msgs if m[0] == "/camera/camera_info"]
    infos[0].k = np.zeros(9)  # an uncalibrated first message
    ds = read_bag_dataset(write_rosbag2(tmp_path / "b", typestore, msgs))
    assert ds.intrinsics.fx == 30.0
    for info in infos:
        info.k = np.zeros(9)
    with pytest.raises(ValueError, match="CameraInfo on '/camera/camera_info'.*none of its 3 messages is valid"):
        read_bag_dataset(write_rosbag2(tmp_path / "b2", typestore, msgs))


def test_cache_dir_is_checked_before_any_work(robot_bag, tmp_path, monkeypatch):
    path, _ = robot_bag
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(bagmod, "Bag", None)  # any attempt to open the bag fails
    with pytest.raises(ValueError, match="cache directory '.*file' exists and is not a directory"):
        read_bag_dataset(path, cache_dir=tmp_path / "file")
    with pytest.raises(ValueError, match="cannot create cache directory '.*file/sub': '.*file' is not a directory"):
        read_bag_dataset(path, cache_dir=tmp_path / "file" / "sub")
