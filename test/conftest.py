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

"""Shared test helpers: small real bags written with rosbags, and tiny exported model files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from reloc_ros import modelfile as MF
from reloc_ros.training import export as E

S = 1_000_000_000
OPTICAL_Q = [-0.5, 0.5, -0.5, 0.5]  # camera_link -> camera_optical_frame (REP-103)


def yaw(deg: float) -> list[float]:
    a = np.radians(deg) / 2
    return [0.0, 0.0, float(np.sin(a)), float(np.cos(a))]


@pytest.fixture(scope="session")
def typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE)


def write_rosbag2(path: Path, typestore, messages: list[tuple[str, str, int, object]],
                  storage: str = "mcap") -> Path:
    """messages: (topic, msgtype, log time ns, message), written in the order given."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    with Writer(path, version=8, storage_plugin=plugin) as w:
        conns = {}
        for topic, msgtype, t, msg in messages:
            if topic not in conns:
                conns[topic] = w.add_connection(topic, msgtype, typestore=typestore)
            w.write(conns[topic], t, typestore.serialize_cdr(msg, msgtype))
    return path


def set_metadata_message_count(bag: Path, topic: str, count: int) -> None:
    """Make a rosbag2's metadata.yaml claim ``count`` messages on ``topic`` (as an edited or cut bag may)."""
    import yaml

    meta_path = bag / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    for entry in meta["rosbag2_bagfile_information"]["topics_with_message_count"]:
        if entry["topic_metadata"]["name"] == topic:
            entry["message_count"] = count
    meta_path.write_text(yaml.safe_dump(meta, sort_keys=False))


def write_empty_rosbag2(path: Path, typestore, topics: list[tuple[str, str]]) -> Path:
    """Write a rosbag2 with the given (topic, msgtype) connections and no message at all."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as w:
        for topic, msgtype in topics:
            w.add_connection(topic, msgtype, typestore=typestore)
    return path


def robot_messages(types, n_images: int = 20, size=(32, 24), first_image_s: float = 0.05,
                   image_period_s: float = 0.1, tf_period_s: float = 0.04, tf_end_s: float | None = None,
                   image_topic: str = "/camera/image_raw", encoding: str = "rgb8"):
    """Images + CameraInfo + /tf (map->odom->base_link) + /tf_static, and the true T_map_cam per stamp."""
    from reloc_ros import conversions as c
    from reloc_ros.data.types import Intrinsics
    from reloc_ros.geometry import make_pose

    def map_odom(t):
        return make_pose([0.0, 0.02 * t, 0.0], yaw(1.0 * t))

    def odom_base(t):
        return make_pose([0.3 * t, 0.1 * np.sin(t), 0.0], yaw(20.0 * t))

    T_base_link = make_pose([0.2, 0.0, 0.8], yaw(0))
    T_link_opt = make_pose([0, 0, 0], OPTICAL_Q)
    msgs = []
    tf_end = tf_end_s if tf_end_s is not None else first_image_s + n_images * image_period_s + 0.2
    static = c.make_tf_message(types, [
        c.make_transform_stamped(types, T_base_link, 0, "base_link", "camera_link"),
        c.make_transform_stamped(types, T_link_opt, 0, "camera_link", "camera_optical_frame")])
    msgs.append(("/tf_static", "tf2_msgs/msg/TFMessage", 0, static))
    for k in range(int(round(tf_end / tf_period_s)) + 1):
        t = k * tf_period_s
        t_ns = int(round(t * S))
        msg = c.make_tf_message(types, [
            c.make_transform_stamped(types, map_odom(t), t_ns, "map", "odom"),
            c.make_transform_stamped(types, odom_base(t), t_ns, "odom", "base_link")])
        msgs.append(("/tf", "tf2_msgs/msg/TFMessage", t_ns, msg))
    K = Intrinsics(fx=30.0, fy=30.0, cx=15.5, cy=11.5, width=size[0], height=size[1])
    truth = {}
    rng = np.random.default_rng(0)
    for k in range(n_images):
        t = first_image_s + k * image_period_s
        t_ns = int(round(t * S))
        img = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
        img[0, 0] = [k, 0, 0]  # frame index readable from the image
        arr = img if encoding == "rgb8" else img[..., ::-1].copy()
        msgs.append((image_topic, "sensor_msgs/msg/Image", t_ns,
                     c.make_image_msg(types, arr, encoding, t_ns, "camera_optical_frame")))
        msgs.append(("/camera/camera_info", "sensor_msgs/msg/CameraInfo", t_ns,
                     c.make_camera_info_msg(types, K, t_ns, "camera_optical_frame")))
        truth[t_ns] = map_odom(t) @ odom_base(t) @ T_base_link @ T_link_opt
    msgs.sort(key=lambda m: m[2])
    return msgs, truth


@pytest.fixture
def robot_bag(tmp_path, typestore):
    """Write a small mcap bag of a robot with TF ground truth, and its true camera poses."""
    msgs, truth = robot_messages(typestore.types)
    return write_rosbag2(tmp_path / "robot", typestore, msgs), truth


# --------------------------------------------------------------------------
# Tiny exported models (export, model file and ONNX tests)
# --------------------------------------------------------------------------

W, H = 32, 24
POS_MEAN = [10.0, -4.0, 1.5]
POS_SCALE = [2.0, 3.0, 0.5]


class TinyAPR(nn.Module):
    """Stand-in for APRNet: same forward contract, a few ops a real backbone has (BN, dropout, view)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.5)
        self.fc_t = nn.Linear(8, 3)
        self.fc_q = nn.Linear(8, 4)
        with torch.no_grad():  # non-trivial eval statistics, so eval vs train mode shows
            self.bn.running_mean.uniform_(-0.2, 0.2)
            self.bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        f = self.pool(torch.relu(self.bn(self.conv(x))))
        f = self.drop(f.view(f.size(0), -1))
        return self.fc_t(f), self.fc_q(f)


def trainer_metadata(**overrides):
    meta = {
        "model": "tiny-apr",
        "preprocessing": "crop",
        "frames": {"map_frame": "map", "camera_frame": "camera_optical_frame"},
        "training_data": {"bags": ["run1", "run2"], "n_images": np.int64(700), "image_topic": "/camera/image_raw"},
        "metrics": {"median_t_m": np.float32(0.25), "median_rot_deg": 3.5, "mean_pose_baseline_m": 1.9},
    }
    meta.update(overrides)
    return meta


def export(net, path, **kw):
    args = {"metadata": trainer_metadata(), "pos_mean": POS_MEAN, "pos_scale": POS_SCALE, "input_size": (W, H)}
    args.update(kw)
    return E.export_torchscript(net, path, **args)


def images_b3hw(batch, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (batch, 3, H, W), dtype=np.uint8))


def eager_reference(net, images, pos_scale=POS_SCALE):
    wrapper = E.ExportedPoseModel(copy.deepcopy(net).eval(), POS_MEAN, pos_scale, (W, H)).eval()
    with torch.no_grad():
        return [a.numpy() for a in wrapper(images)]


def resave(src: Path, dst: Path, edit) -> Path:
    """Copy a model with its metadata edited by ``edit(meta)`` (as a future/broken writer would)."""
    extra = {MF.METADATA_FILE: ""}
    module = torch.jit.load(str(src), _extra_files=extra)
    meta = json.loads(extra[MF.METADATA_FILE])
    edit(meta)
    torch.jit.save(module, str(dst), _extra_files={MF.METADATA_FILE: json.dumps(meta)})
    return dst


@pytest.fixture
def tiny_net():
    torch.manual_seed(0)
    return TinyAPR()


@pytest.fixture
def model_file(tmp_path, tiny_net):
    return export(tiny_net, tmp_path / "model.pt")


@pytest.fixture(scope="module")
def apr_file(tmp_path_factory):
    from reloc_ros.nets.apr import APRConfig, build_apr

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("apr") / "apr.pt"
    meta = {"model": "posenet", "preprocessing": "resize", "training_data": {}, "metrics": {},
            "frames": {"map_frame": "map", "camera_frame": "cam"}}
    return E.export_torchscript(build_apr(APRConfig(head="lstm")), path, meta, POS_MEAN, POS_SCALE, (W, H))


# --------------------------------------------------------------------------
# Message round trips (conversions tests)
# --------------------------------------------------------------------------

STAMP_NS = 1_700_000_123_456_789_012  # 1700000123.456789012 s: needs both sec and nanosec, fits int32 seconds


@pytest.fixture(scope="session")
def ts(typestore):
    """Return the ROS 2 Humble typestore of rosbags (short name for the conversions tests)."""
    return typestore


@pytest.fixture(scope="session")
def T(typestore):
    """Return its message classes by type name."""
    return typestore.types


def cdr_round_trip(ts, msg):
    """Serialize with the rosbags typestore and read back: what a bag would hold."""
    raw = ts.serialize_cdr(msg, msg.__msgtype__)
    return ts.deserialize_cdr(raw, msg.__msgtype__)


# --------------------------------------------------------------------------
# NeRF-P (nerfp tests)
# --------------------------------------------------------------------------

def nerfp_tiny_config():
    """Small enough for a CPU test, big enough to learn the room: 64 cells on the box's longest side."""
    from reloc_ros.nets.nerfp import NerfPConfig

    return NerfPConfig(levels=6, base_resolution=4, max_resolution=64, hidden_dim=32, samples_per_ray=32,
                       pose_feature_dim=8, posemap_stride=4, posemap_pool=(2, 2), decoder_hidden=(64,))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tests on one torch thread, then restore the count.

    Two threads on a 2-core machine that also runs other work oversubscribe it
    (10x slower here), and one thread keeps the CPU fit bit-reproducible.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
