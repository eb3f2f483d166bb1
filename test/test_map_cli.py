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

"""`reloc-ros map`, `train --map`, and eval / replay with verification, as a user runs them."""

import json

import numpy as np
import pytest
import torch
from conftest import robot_messages, write_rosbag2

from reloc_ros import modelfile as MF
from reloc_ros.cli import main
from reloc_ros.data.synth import make_run, write_synthetic_bag
from reloc_ros.errors import RelocError
from reloc_ros.nets.apr import APRConfig, build_apr
from reloc_ros.training import export as E

SIZE = (160, 120)


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp("mapbags")
    # 200 frames: 15 % held out for the calibration is 30 frames, enough to calibrate (20 must verify).
    lap = make_run(route="train", frames=200, size=SIZE, scene="textured_room").curve.length_m
    write_synthetic_bag(root / "map", route="train", frames=200, size=SIZE, scene="textured_room", progress=False,
                        speed_mps=2 * lap * 10.0 / 200)
    write_synthetic_bag(root / "query", route="test", frames=20, size=SIZE, scene="textured_room", progress=False)
    torch.manual_seed(0)
    meta = {"model": "posenet", "preprocessing": "resize", "training_data": {}, "metrics": {},
            "frames": {"map_frame": "map", "camera_frame": "camera_optical_frame"},
            "uncertainty": {"method": "mc_dropout", "samples": 8}}
    model = E.export_torchscript(build_apr(APRConfig()), root / "model.pt", meta, pos_mean=(0.0, 0.0, 0.8),
                                 pos_scale=2.0, input_size=(48, 36))
    return root, model


def test_map_builds_calibrates_and_stores_the_map_then_eval_and_replay_verify(bags, tmp_path, capsys):
    root, model = bags
    assert main(["-q", "map", str(model), str(root / "map")]) == 0
    out = capsys.readouterr().out
    assert "feature map stored in" in out and "sift features" in out and "calibrated on" in out
    entry = MF.read_metadata(model)["feature_map"]
    assert entry["point_source"] == "triangulated" and entry["points"] > 500 and entry["calibration_frames"] >= 20
    assert entry["map_frame"] == "map" and len(entry["sha256"]) == 64

    assert main(["-q", "eval", str(model), str(root / "query"), "--json", str(tmp_path / "e.json"),
                 "--tum", str(tmp_path / "p.tum")]) == 0
    text = capsys.readouterr().out
    assert "status:" in text and "verified" in text and "learned only" in text
    rep = json.loads((tmp_path / "e.json").read_text())
    st = rep["status"]
    assert st["frames"] == 20 and st["counts"]["unverified"] == 0
    assert st["shares"]["verified"] >= 0.9 and st.get("verified_wrong_share", 0.0) == 0.0
    assert rep["frames"] == st["counts"]["verified"]  # published = verified here; failed frames are left out
    assert rep["median_translation_m"] < 0.05 and st["learned"]["median_translation_m"] > 0.3
    tum = [line for line in (tmp_path / "p.tum").read_text().splitlines() if not line.startswith("#")]
    assert len(tum) == rep["frames"]

    # The same frames through replay: same figures, and the learned poses alone with --verify off.
    assert main(["-q", "replay", str(model), str(root / "query"), str(tmp_path / "out_bag"),
                 "--json", str(tmp_path / "r.json")]) == 0
    again = json.loads((tmp_path / "r.json").read_text())
    for key in ("frames", "median_translation_m", "median_rotation_deg"):
        assert again[key] == rep[key], key
    assert again["status"]["counts"] == st["counts"]
    assert main(["-q", "eval", str(model), str(root / "query"), "--verify", "off", "--json",
                 str(tmp_path / "off.json")]) == 0
    off = json.loads((tmp_path / "off.json").read_text())
    assert off["status"]["counts"]["unverified"] == 20
    assert off["median_translation_m"] == pytest.approx(st["learned"]["median_translation_m"])


def test_no_camera_info_is_said_before_training_with_the_way_out(tmp_path, typestore, capsys):
    msgs, _ = robot_messages(typestore.types)
    bag = write_rosbag2(tmp_path / "robot", typestore, [m for m in msgs if "camera_info" not in m[0]])
    assert main(["-q", "train", str(bag), "--out", str(tmp_path / "m.pt"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "no sensor_msgs/CameraInfo for '/camera/image_raw'" in err and "--map none" in err
    assert not (tmp_path / "m.pt.ckpt").exists()  # refused before any training


def test_a_sparse_map_is_said_with_its_numbers(bags, tmp_path, caplog):
    from reloc_ros.data.bag import BagSource
    from reloc_ros.mapping.mapper import build_model_map

    root, model = bags
    write_synthetic_bag(tmp_path / "bare", route="train", frames=40, size=(64, 48), scene="room", progress=False)
    small = E.export_torchscript(build_apr(APRConfig()), tmp_path / "small.pt", MF.read_metadata(model),
                                 pos_mean=np.zeros(3), pos_scale=1.0, input_size=(48, 36))
    try:
        entry = build_model_map(small, [tmp_path / "bare"], BagSource(), progress=False)
    except RelocError as e:  # no point at all: the error says why
        assert "point" in str(e)
        return
    assert entry["sparse"] and "sparse" in caplog.text and "points" in caplog.text


def test_map_checks_that_the_model_can_be_rewritten_before_reading_the_bags(
        model_file, tmp_path, capsys, monkeypatch):
    import os

    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode & os.W_OK else real_access(p, mode))
    before = model_file.read_bytes()
    assert main(["-q", "map", str(model_file), str(tmp_path / "no_such_bag")]) == 2
    err = capsys.readouterr().err
    assert f"cannot write the model '{model_file}': directory '{model_file.parent}' is not writable" in err, err
    assert model_file.read_bytes() == before
