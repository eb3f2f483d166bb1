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

"""Offline replay: a bag through the relocalizer into a rosbag2 of what the node would publish.

Most tests use an "oracle" engine that answers the ground-truth camera pose,
so what replay publishes can be checked exactly against the input bag's TF
(base_link pose, REP-105 map -> odom correction, /initialpose on a kidnap).
One test runs a real exported model through ``reloc-ros replay``.
"""

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
import tempfile

from conftest import robot_messages, write_rosbag2
import numpy as np
import pytest
import yaml

from reloc_ros import conversions as conv
from reloc_ros.data.bag import Bag, BagSource, read_bag_dataset, read_tf
from reloc_ros.data.synth import write_synthetic_bag
from reloc_ros.errors import RelocError
from reloc_ros.geometry import covariance_from_msg, covariance_from_std, invert_pose, make_pose
from reloc_ros.runtime import uncertainty as U
from reloc_ros.runtime.engine import STAGES, Estimate, decode_image
from reloc_ros.runtime.recovery import RecoveryConfig
from reloc_ros.runtime.replay import replay
from reloc_ros.runtime.tf_math import base_pose_from_camera

POSE, HYPS, TF, INIT = "/relocalization/pose", "/relocalization/hypotheses", "/tf", "/initialpose"
CAM = "/relocalization/camera_pose"
PWCS = "geometry_msgs/msg/PoseWithCovarianceStamped"
OUT_TYPES = {POSE: PWCS, CAM: PWCS, HYPS: "geometry_msgs/msg/PoseArray", TF: "tf2_msgs/msg/TFMessage", INIT: PWCS,
             "/relocalization/status": "diagnostic_msgs/msg/DiagnosticArray"}
ORACLE_COV = covariance_from_std(0.02, np.radians(1.0))
# Two alternative camera poses per frame, relative to the answer (camera frame).
HYP_OFFSETS = np.stack([make_pose([0.05, 0.0, 0.0], [0, 0, 0, 1]), make_pose([0.0, -0.04, 0.1], [0, 0, 0, 1])])


class Oracle:
    """Answers the true camera pose of each image, confidently; the attributes replay uses of a Relocalizer.

    Images are decoded with the engine's own decoder, so an undecodable image
    fails as it would in the real engine.
    """

    def __init__(self, truth, fail_at=None, error=None):
        self.metadata = {"model": "oracle"}
        self.map_frame = "map"
        self.camera_frame = "camera_optical_frame"
        self.model_path = Path("oracle.pt")
        self.uncertainty = "oracle (2 cm, 1 deg)"
        self.truth = truth
        self.fail_at = fail_at
        self.error = RuntimeError("oracle crashed") if error is None else error
        self.calls = 0

    def relocalize_msg(self, msg, intrinsics=None):
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise self.error
        decode_image(msg)
        stamp = conv.stamp_to_ns(msg.header.stamp)
        T = self.truth[stamp]
        timings = dict.fromkeys((*STAGES, "total"), 0.0)
        return Estimate(stamp, T.copy(), ORACLE_COV.copy(), 0.99, T @ HYP_OFFSETS, timings, "map",
                        "camera_optical_frame", status="verified", status_detail="oracle", inliers=100)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def read_out(path):
    """(topic -> msgtype, topic -> [(log time, message)]) of a bag, read with rosbags directly."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    msgs = {}
    with AnyReader([Path(path)], default_typestore=get_typestore(Stores.ROS2_HUMBLE)) as r:
        types = {c.topic: c.msgtype for c in r.connections}
        for c, t, raw in r.messages():
            msgs.setdefault(c.topic, []).append((t, r.deserialize(raw, c.msgtype)))
    return types, msgs


def image_stamps(path):
    """(log times, header stamps) of the images of a bag."""
    with Bag(path) as bag:
        rows = [(t, conv.stamp_to_ns(m.header.stamp)) for _, t, m in bag.messages(["/camera/image_raw"])]
    return [r[0] for r in rows], [r[1] for r in rows]


def input_tf(path):
    with Bag(path) as bag:
        return read_tf(bag)


def pose_of(msg):
    return conv.pose_to_matrix(msg.pose.pose)


def assert_same_pose(A, B, atol=1e-6):
    np.testing.assert_allclose(A[:3, 3], B[:3, 3], atol=atol)
    np.testing.assert_allclose(A[:3, :3], B[:3, :3], atol=atol)


def snapshot(path):
    """Every file under ``path`` with its size, mtime and content hash."""
    root = Path(path)
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns,
                                       hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file()}


def truth_of(path):
    ds = read_bag_dataset(path, BagSource(), load_images=False)
    return {int(s): T for s, T in zip(ds.stamps_ns, ds.poses_n44)}


# ---------------------------------------------------------------------------
# a. The oracle through replay: what is published equals the input bag's truth
# ---------------------------------------------------------------------------

N_FRAMES = 20


@pytest.fixture(scope="module")
def synth_bag(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth")
    write_synthetic_bag(d / "in", route="test", frames=N_FRAMES, seed=0, size=(64, 48), depth=False, progress=False)
    return d / "in"


@pytest.fixture(scope="module")
def truth(synth_bag):
    return truth_of(synth_bag)


@pytest.fixture(scope="module")
def oracle_run(synth_bag, truth, tmp_path_factory):
    out = tmp_path_factory.mktemp("oracle") / "out"
    result = replay(Oracle(truth), [synth_bag], out, progress=False)
    types, msgs = read_out(out)
    return result, out, types, msgs


def test_output_bag_is_rosbag2_v8_mcap_with_the_six_topics(oracle_run):
    result, out, types, _ = oracle_run
    assert result.out_bag == out
    info = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["version"] == 8  # what Humble's ros2 bag reads
    assert info["storage_identifier"] == "mcap"
    assert types == OUT_TYPES
    # Also readable by reloc_ros's own reader.
    with Bag(out) as bag:
        assert bag.message_count(POSE) == N_FRAMES


def test_one_pose_per_image_stamped_with_the_image_stamp(oracle_run, synth_bag):
    result, _, _, msgs = oracle_run
    log_times, stamps = image_stamps(synth_bag)
    assert len(stamps) == N_FRAMES and log_times == stamps
    assert (result.frames, result.published, result.skipped.total) == (N_FRAMES, N_FRAMES, 0)
    assert result.stamps_ns.tolist() == stamps
    for topic in (POSE, CAM, HYPS, TF):
        assert [t for t, _ in msgs[topic]] == stamps, topic
        assert [conv.stamp_to_ns(m.header.stamp) if topic != TF else conv.stamp_to_ns(m.transforms[0].header.stamp)
                for _, m in msgs[topic]] == stamps, topic
    assert all(m.header.frame_id == "map" for _, m in msgs[POSE])
    assert result.notes == {}


def test_published_poses_are_the_true_base_link_poses(oracle_run, synth_bag):
    _, _, _, msgs = oracle_run
    tf = input_tf(synth_bag)
    for t, m in msgs[POSE]:
        assert_same_pose(pose_of(m), tf.lookup("map", "base_link", t))


def test_map_to_odom_reproduces_the_true_correction(oracle_run, synth_bag):
    """REP-105: map -> odom from the relocalized base pose and odom -> base_link equals the true map -> odom."""
    _, _, _, msgs = oracle_run
    tf = input_tf(synth_bag)
    for t, m in msgs[TF]:
        (tr,) = m.transforms
        assert (tr.header.frame_id, tr.child_frame_id) == ("map", "odom")
        assert_same_pose(conv.transform_to_matrix(tr.transform), tf.lookup("map", "odom", t))


def test_hypotheses_are_base_link_poses(oracle_run, synth_bag, truth):
    _, _, _, msgs = oracle_run
    T_base_cam = input_tf(synth_bag).lookup("base_link", "camera_optical_frame", msgs[HYPS][0][0])
    for t, m in msgs[HYPS]:
        assert m.header.frame_id == "map"
        got = [conv.pose_to_matrix(p) for p in m.poses]
        want = truth[t] @ HYP_OFFSETS @ invert_pose(T_base_cam)
        assert len(got) == 2
        for g, w in zip(got, want):
            assert_same_pose(g, w)


def test_covariance_is_the_propagated_one(oracle_run, synth_bag, truth):
    _, _, _, msgs = oracle_run
    T_base_cam = input_tf(synth_bag).lookup("base_link", "camera_optical_frame", msgs[POSE][0][0])
    for t, m in msgs[POSE]:
        cov = covariance_from_msg(m.pose.covariance)
        assert np.all(np.linalg.eigvalsh(cov) > 0)
        np.testing.assert_allclose(cov, cov.T, atol=1e-15)
        _, want = base_pose_from_camera(truth[t], ORACLE_COV, T_base_cam)
        np.testing.assert_allclose(cov, want, rtol=1e-9, atol=1e-15)
        # The camera sits ~0.8 m above base_link: its 1 deg rotation sigma widens the base position sigma.
        assert np.trace(cov[:3, :3]) > 1.1 * np.trace(ORACLE_COV[:3, :3])
        np.testing.assert_allclose(cov[3:, 3:], ORACLE_COV[3:, 3:], rtol=1e-9)


def test_report_against_ground_truth(oracle_run):
    result, _, _, _ = oracle_run
    report = result.report
    assert report is not None
    assert report["frames"] == N_FRAMES
    assert report["median_translation_m"] < 1e-6
    assert report["median_rotation_deg"] < 1e-4
    assert report["model_name"] == "oracle"
    cov = report["covariance"]
    assert cov["method"] == "oracle (2 cm, 1 deg)"
    assert cov["frames"] == N_FRAMES
    for group in ("translation", "rotation"):
        assert cov[group]["within_1sigma"] == 1.0  # exact poses lie within any sigma
    assert result.pred_n44.shape == result.gt_n44.shape == (N_FRAMES, 4, 4)
    assert result.cov_n66.shape == (N_FRAMES, 6, 6)


def test_no_initialpose_when_the_belief_agrees(oracle_run):
    result, _, _, msgs = oracle_run
    assert INIT not in msgs
    assert result.reinitialisations == []


class StatusOracle(Oracle):
    """The oracle, with the verification status of each frame in turn: verified, unverified, failed, ..."""

    def relocalize_msg(self, msg, intrinsics=None):
        est = super().relocalize_msg(msg, intrinsics)
        status = ("verified", "unverified", "failed")[(self.calls - 1) % 3]
        return dataclasses.replace(est, status=status, status_detail=f"scripted {status}")


@pytest.mark.parametrize("allow_unverified", [False, True])
def test_failed_frames_publish_nothing_and_only_verified_ones_move_tf(synth_bag, truth, tmp_path, allow_unverified):
    result = replay(StatusOracle(truth), [synth_bag], tmp_path / "out", progress=False,
                    allow_unverified=allow_unverified)
    names = ("verified", "unverified", "failed")
    counts = {s: sum(1 for k in range(N_FRAMES) if k % 3 == i) for i, s in enumerate(names)}
    n_failed = counts["failed"]
    assert result.statuses == counts
    assert result.published == N_FRAMES - n_failed and result.skipped.counts["failed verification"] == n_failed
    _, msgs = read_out(tmp_path / "out")
    _, stamps = image_stamps(synth_bag)
    failed = {s for k, s in enumerate(stamps) if k % 3 == 2}
    unverified = {s for k, s in enumerate(stamps) if k % 3 == 1}
    published = [conv.stamp_to_ns(m.header.stamp) for _, m in msgs["/relocalization/camera_pose"]]
    assert len(published) == N_FRAMES - n_failed and not failed & set(published)
    tf = [conv.stamp_to_ns(m.transforms[0].header.stamp) for _, m in msgs["/tf"]]
    assert not failed & set(tf)
    # Every frame has its status, as the node's ~/status: ERROR for a failed one, with the reason.
    status = {conv.stamp_to_ns(m.header.stamp): m.status[0] for _, m in msgs["/relocalization/status"]}
    assert len(status) == N_FRAMES
    assert all(status[s].message == "failed: scripted failed" and status[s].level == 2 for s in failed)
    assert all(status[s].level == 1 for s in unverified)
    assert bool(unverified & set(tf)) == allow_unverified
    # The report says it per status, over every frame with ground truth.
    st = result.report["status"]
    assert st["counts"] == result.statuses and st["posed_share"] == pytest.approx(1 - n_failed / N_FRAMES)


def test_out_bag_is_never_overwritten(oracle_run, truth, synth_bag):
    _, out, _, _ = oracle_run
    before = snapshot(out)
    with pytest.raises(ValueError, match="already exists"):
        replay(Oracle(truth), [synth_bag], out, progress=False)
    assert snapshot(out) == before


def test_a_crash_midway_leaves_nothing_behind(truth, synth_bag, tmp_path):
    # An interruption (Ctrl-C) ends the run; one frame's error does not (see the per-frame tests below).
    with pytest.raises(KeyboardInterrupt):
        replay(Oracle(truth, fail_at=5, error=KeyboardInterrupt()), [synth_bag], tmp_path / "out", progress=False)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------
# b. Kidnapped robot: the robot's belief (its own map -> odom) is 5 m off
# ---------------------------------------------------------------------------

SHIFT_M = 5.0


@pytest.fixture(scope="module")
def kidnap_bag(synth_bag, tmp_path_factory, typestore):
    """Copy the synthetic bag with map -> odom shifted 5 m along map x: the belief is wrong."""
    out = tmp_path_factory.mktemp("kidnap") / "in"
    messages = []
    with Bag(synth_bag) as bag:
        topics = bag.topics
        for topic, t, msg in bag.messages(list(topics)):
            if topic == "/tf":
                for tr in msg.transforms:
                    if (tr.header.frame_id, tr.child_frame_id) == ("map", "odom"):
                        tr.transform.translation.x += SHIFT_M
            messages.append((topic, topics[topic], t, msg))
    return write_rosbag2(out, typestore, messages)


@pytest.fixture(scope="module")
def kidnap_runs(kidnap_bag, truth, tmp_path_factory):
    d = tmp_path_factory.mktemp("kidnap_out")
    on = replay(Oracle(truth), [kidnap_bag], d / "on", progress=False)
    off = replay(Oracle(truth), [kidnap_bag], d / "off", recovery=RecoveryConfig(enabled=False), progress=False)
    return (on, read_out(d / "on")[1]), (off, read_out(d / "off")[1])


def test_kidnap_bag_belief_is_5m_off(kidnap_bag, synth_bag):
    t = image_stamps(synth_bag)[1][0]
    belief = input_tf(kidnap_bag).lookup("map", "base_link", t)
    true = input_tf(synth_bag).lookup("map", "base_link", t)
    np.testing.assert_allclose(belief[:3, 3] - true[:3, 3], [SHIFT_M, 0, 0], atol=1e-9)


def test_kidnap_sends_one_initialpose_with_the_visual_base_pose(kidnap_runs, synth_bag):
    (result, msgs), _ = kidnap_runs
    stamps = image_stamps(synth_bag)[1]
    n = RecoveryConfig().consecutive
    assert len(msgs.get(INIT, [])) == 1  # min_interval_s 10 s > this 2 s bag: one re-initialisation
    t, m = msgs[INIT][0]
    assert t == conv.stamp_to_ns(m.header.stamp) == stamps[n - 1]  # after `consecutive` frames
    assert m.header.frame_id == "map"
    assert_same_pose(pose_of(m), input_tf(synth_bag).lookup("map", "base_link", t))
    # The same pose and covariance as the relocalization published at that stamp.
    (pose_msg,) = [pm for tp, pm in msgs[POSE] if tp == t]
    assert_same_pose(pose_of(m), pose_of(pose_msg), atol=0)
    np.testing.assert_array_equal(np.asarray(m.pose.covariance), np.asarray(pose_msg.pose.covariance))
    assert [s for s, _ in result.reinitialisations] == [t]


def test_kidnap_correction_restores_the_true_map_to_odom(kidnap_runs, synth_bag):
    (_, msgs), _ = kidnap_runs
    tf = input_tf(synth_bag)
    assert len(msgs[TF]) == N_FRAMES
    for t, m in msgs[TF]:
        assert_same_pose(conv.transform_to_matrix(m.transforms[0].transform), tf.lookup("map", "odom", t))


def test_kidnap_with_recovery_disabled_sends_nothing(kidnap_runs):
    _, (result, msgs) = kidnap_runs
    assert INIT not in msgs
    assert result.reinitialisations == []
    assert result.published == N_FRAMES


# ---------------------------------------------------------------------------
# d. No ground truth, no TF; e. undecodable images
# ---------------------------------------------------------------------------

def images_only_bag(path, typestore, n=5):
    rng = np.random.default_rng(1)
    msgs, truth = [], {}
    for k in range(n):
        t = 2_000_000_000 + k * 100_000_000
        img = rng.integers(0, 255, size=(24, 32, 3), dtype=np.uint8)
        msgs.append(("/camera/image_raw", "sensor_msgs/msg/Image", t,
                     conv.make_image_msg(typestore.types, img, "rgb8", t, "camera_optical_frame")))
        truth[t] = make_pose([1.0 + 0.1 * k, 2.0, 0.8], [-0.5, 0.5, -0.5, 0.5])
    return write_rosbag2(path, typestore, msgs), truth


def check_camera_fallback(result, out, truth):
    """No base_link -> camera transform: only camera poses are published (never as the robot pose), and that is said."""
    n = len(truth)
    assert result.report is None and result.pred_n44 is None
    assert result.published == n
    _, msgs = read_out(out)
    assert [t for t, _ in msgs[CAM]] == sorted(truth)
    for t, m in msgs[CAM]:
        assert_same_pose(pose_of(m), truth[t], atol=1e-12)
        np.testing.assert_allclose(covariance_from_msg(m.pose.covariance), ORACLE_COV, atol=1e-15)
    # No robot pose, no TF correction, no recovery from a camera pose.
    assert POSE not in msgs and TF not in msgs and INIT not in msgs
    ((note, count),) = result.notes.items()
    assert count == n
    assert "base_link -> camera_optical_frame" in note


def test_bag_without_extrinsics_or_ground_truth_publishes_camera_poses(tmp_path, typestore):
    # map -> odom -> base_link but no /tf_static: the camera is connected to nothing.
    messages, truth = robot_messages(typestore.types, n_images=5)
    bag = write_rosbag2(tmp_path / "in", typestore, [m for m in messages if m[0] != "/tf_static"])
    result = replay(Oracle(truth), [bag], tmp_path / "out", progress=False)
    check_camera_fallback(result, tmp_path / "out", truth)


def test_bag_without_any_tf_publishes_camera_poses(tmp_path, typestore):
    bag, truth = images_only_bag(tmp_path / "in", typestore)
    result = replay(Oracle(truth), [bag], tmp_path / "out", progress=False)
    check_camera_fallback(result, tmp_path / "out", truth)


def test_undecodable_images_are_skipped_and_counted(tmp_path, typestore):
    messages, truth = robot_messages(typestore.types, n_images=8)
    images = [i for i, m in enumerate(messages) if m[0] == "/camera/image_raw"]
    bad = {images[2], images[5]}
    topic, msgtype, t, msg = messages[images[2]]
    messages[images[2]] = (topic, msgtype, t, dataclasses.replace(msg, data=msg.data[:-7]))  # wrong length
    topic, msgtype, t, msg = messages[images[5]]
    messages[images[5]] = (topic, msgtype, t, dataclasses.replace(msg, encoding="bayer_xyz8"))  # unknown encoding
    bag = write_rosbag2(tmp_path / "in", typestore, messages)
    result = replay(Oracle(truth), [bag], tmp_path / "out", progress=False)
    assert result.frames == 8
    assert dict(result.skipped.counts) == {"undecodable image": 2}
    assert result.published == 6
    good = sorted(messages[i][2] for i in images if i not in bad)
    _, msgs = read_out(tmp_path / "out")
    assert [t for t, _ in msgs[POSE]] == good
    assert result.report is not None and result.report["frames"] == 6


def test_a_run_with_no_usable_frame_leaves_no_output(tmp_path, typestore):
    messages, truth = robot_messages(typestore.types, n_images=3)
    messages = [(tp, mt, t, dataclasses.replace(m, encoding="bayer_xyz8") if tp == "/camera/image_raw" else m)
                for tp, mt, t, m in messages]
    bag = write_rosbag2(tmp_path / "in", typestore, messages)
    with pytest.raises(RelocError, match="could be relocalized"):
        replay(Oracle(truth), [bag], tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------
# c. A real (untrained) exported model end to end through the CLI
# ---------------------------------------------------------------------------

CLI_FRAMES = 8


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Export an untrained PoseNet at 64x48 as outside the trainer, plus a copy with the bag options.

    The copy's metadata records the bag options, as the trainer's exports do.
    """
    import torch

    from reloc_ros.nets.apr import APRConfig, build_apr
    from reloc_ros.modelfile import METADATA_FILE
    from reloc_ros.training.export import export_torchscript

    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    plain = export_torchscript(
        build_apr(APRConfig(backbone="resnet18")), d / "plain.pt",
        {"model": "posenet", "preprocessing": "resize",
         "frames": {"map_frame": "map", "camera_frame": "camera_optical_frame"}, "training_data": {}, "metrics": {}},
        pos_mean=(0, 0, 0), pos_scale=1.0, input_size=(64, 48))
    extra = {METADATA_FILE: ""}
    module = torch.jit.load(str(plain), map_location="cpu", _extra_files=extra)
    meta = json.loads(extra[METADATA_FILE])
    meta["bag_source"] = dataclasses.asdict(BagSource())
    trained = d / "trained.pt"
    torch.jit.save(module, str(trained), _extra_files={METADATA_FILE: json.dumps(meta)})
    return plain, trained


@pytest.fixture(scope="module")
def cli_bag(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_bag")
    write_synthetic_bag(d / "in", route="test", frames=CLI_FRAMES, seed=1, size=(64, 48), progress=False)
    return d / "in"


def test_cli_replay_end_to_end(models, cli_bag, tmp_path, capsys):
    from reloc_ros.cli import main

    _, model = models
    out, j, plots, j2 = tmp_path / "out", tmp_path / "replay.json", tmp_path / "plots", tmp_path / "eval.json"
    assert main(["-q", "replay", str(model), str(cli_bag), str(out), "--json", str(j), "--plots", str(plots)]) == 0
    types, msgs = read_out(out)
    assert types == OUT_TYPES
    assert [t for t, _ in msgs[POSE]] == image_stamps(cli_bag)[1]
    for _, m in msgs[POSE]:  # an MC-dropout covariance, never zeros
        assert np.all(np.linalg.eigvalsh(covariance_from_msg(m.pose.covariance)) > 0)
    report = json.loads(j.read_text())
    assert report["frames"] == CLI_FRAMES
    assert {"translation", "rotation", "method"} <= set(report["covariance"])
    assert {"calibration.png", "error_cdf.png", "trajectory.png"} <= {p.name for p in plots.iterdir()}
    assert all(p.stat().st_size > 1000 for p in plots.iterdir())

    # eval runs the same per-frame engine on the same frames: the same figures, exactly.
    assert main(["-q", "eval", str(model), str(cli_bag), "--json", str(j2)]) == 0
    ev = json.loads(j2.read_text())
    for key in ("frames", "median_translation_m", "median_rotation_deg", "mean_translation_m"):
        assert report[key] == ev[key], key
    assert report["covariance"] == ev["covariance"]

    # Replaying onto an existing bag fails cleanly and leaves it untouched.
    before, siblings = snapshot(out), sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    assert main(["-q", "replay", str(model), str(cli_bag), str(out)]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and str(out) in err
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == siblings


def test_cli_replay_missing_model(cli_bag, tmp_path, capsys):
    from reloc_ros.cli import main

    missing = tmp_path / "no_such_model.pt"
    assert main(["-q", "replay", str(missing), str(cli_bag), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(missing) in err
    assert not (tmp_path / "out").exists()


def test_cli_replay_model_exported_outside_the_trainer(models, cli_bag, tmp_path):
    from reloc_ros.cli import main

    plain, _ = models
    assert main(["-q", "replay", str(plain), str(cli_bag), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "metadata.yaml").exists()


def test_cli_replay_tum_with_partial_ground_truth(models, tmp_path, typestore):
    from reloc_ros.cli import main

    _, model = models
    # TF (hence ground truth) ends after the second of four images.
    messages, _ = robot_messages(typestore.types, n_images=4, tf_end_s=0.16)
    bag = write_rosbag2(tmp_path / "in", typestore, messages)
    tum = tmp_path / "pred.tum"
    assert main(["-q", "replay", str(model), str(bag), str(tmp_path / "out"), "--tum", str(tum)]) == 0
    rows = [r for r in tum.read_text().splitlines() if not r.startswith("#")]
    assert len(rows) == 4


# ---------------------------------------------------------------------------
# f. Bad input: one frame's failure, duplicate stamps, options, output paths
# ---------------------------------------------------------------------------

FRAME_ERROR = "error in the frame's processing"


def test_one_frames_error_costs_that_frame_only_and_stays_visible(truth, synth_bag, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="reloc_ros"):
        result = replay(Oracle(truth, fail_at=5), [synth_bag], tmp_path / "out", progress=False)
    reason = f"{FRAME_ERROR} (RuntimeError)"
    assert (result.frames, result.published) == (N_FRAMES, N_FRAMES - 1)
    assert dict(result.skipped.counts) == {reason: 1}
    assert f"1 frames skipped: 1 {reason}" in result.summary()
    _, stamps = image_stamps(synth_bag)
    # Not a data problem but a bug: logged at ERROR with its traceback and the frame's stamp.
    (rec,) = [r for r in caplog.records if "oracle crashed" in r.getMessage() and r.levelno == logging.ERROR]
    assert rec.exc_info and rec.exc_info[0] is RuntimeError and f"{stamps[4] * 1e-9:.3f} s" in rec.getMessage()
    _, msgs = read_out(tmp_path / "out")
    assert [t for t, _ in msgs[POSE]] == stamps[:4] + stamps[5:]
    assert result.report["frames"] == N_FRAMES - 1 and result.report["frame_errors"] == {reason: 1}


class ScriptedOracle(Oracle):
    """The oracle, with frame ``at``'s estimate changed by ``edit(est)``."""

    def __init__(self, truth, at, edit):
        super().__init__(truth)
        self.at, self.edit = at, edit

    def relocalize_msg(self, msg, intrinsics=None):
        est = super().relocalize_msg(msg, intrinsics)
        return self.edit(est) if self.calls == self.at else est


def test_an_absurd_model_output_costs_that_frame_only(truth, synth_bag, tmp_path, caplog):
    """A diverged model (sigma 1e8 m) once: its confidence was -8e-25, which the recovery refused, ending the run.

    Its confidence is now 0; the frame still cannot be published (its base_link covariance is not positive
    definite in floating point), so it is skipped, counted and said, and every other frame is published.
    """
    cov = covariance_from_std(1e8, np.radians(1.0))

    def diverged(est):
        return dataclasses.replace(est, covariance=cov, confidence=U.confidence(cov))

    with caplog.at_level(logging.WARNING, logger="reloc_ros"):
        result = replay(ScriptedOracle(truth, 3, diverged), [synth_bag], tmp_path / "out", progress=False)
    assert result.published == N_FRAMES - 1
    assert dict(result.skipped.counts) == {f"{FRAME_ERROR} (ValueError)": 1}
    assert any("positive definite" in r.getMessage() for r in caplog.records)
    _, msgs = read_out(tmp_path / "out")
    assert len(msgs[POSE]) == len(msgs[TF]) == N_FRAMES - 1


def test_an_error_in_the_tf_math_costs_that_frame_only(truth, synth_bag, tmp_path, caplog):
    def asymmetric(est):
        bad = est.covariance.copy()
        bad[0, 1] += 1e-3
        return dataclasses.replace(est, covariance=bad)

    with caplog.at_level(logging.WARNING, logger="reloc_ros"):
        result = replay(ScriptedOracle(truth, 7, asymmetric), [synth_bag], tmp_path / "out", progress=False)
    assert result.published == N_FRAMES - 1
    assert dict(result.skipped.counts) == {f"{FRAME_ERROR} (ValueError)": 1}
    # A data problem: a warning that says why, without a traceback.
    (rec,) = [r for r in caplog.records if "not symmetric" in r.getMessage() and "failed and is skipped" in
              r.getMessage()]
    assert rec.levelno == logging.WARNING and not rec.exc_info
    # As in the node: the frame's status is published, nothing else of it.
    _, msgs = read_out(tmp_path / "out")
    assert len(msgs["/relocalization/status"]) == N_FRAMES and len(msgs[CAM]) == N_FRAMES - 1


def duplicate_images(src, dst, typestore):
    """Copy a bag with every image sent twice under the same stamp, the second copy inverted (another image)."""
    messages = []
    with Bag(src) as bag:
        topics = bag.topics
        for topic, t, msg in bag.messages(list(topics)):
            messages.append((topic, topics[topic], t, msg))
            if topic == "/camera/image_raw":
                messages.append((topic, topics[topic], t + 1, dataclasses.replace(msg, data=255 - msg.data)))
    return write_rosbag2(dst, typestore, messages)


@pytest.fixture(scope="module")
def dup_bag(synth_bag, tmp_path_factory, typestore):
    return duplicate_images(synth_bag, tmp_path_factory.mktemp("dup") / "in", typestore)


def test_duplicate_image_stamps_are_skipped_and_counted_as_eval_counts_them(dup_bag, truth, tmp_path):
    oracle = Oracle(truth)
    result = replay(oracle, [dup_bag], tmp_path / "out", progress=False, min_confidence=0.0)
    assert (result.frames, result.published, oracle.calls) == (2 * N_FRAMES, N_FRAMES, N_FRAMES)
    assert dict(result.skipped.counts) == {"duplicate image stamp": N_FRAMES}
    assert "no frames skipped" not in result.summary()
    # The reader eval uses skips the same frames for the same reason.
    assert read_bag_dataset(dup_bag, BagSource(), load_images=False).skipped.counts["duplicate image stamp"] == N_FRAMES
    _, msgs = read_out(tmp_path / "out")
    for topic in (POSE, CAM, TF, "/relocalization/status"):  # one of each per stamp, never two
        assert len(msgs[topic]) == len({t for t, _ in msgs[topic]}) == N_FRAMES, topic
    assert result.report["frames"] == N_FRAMES


@pytest.mark.parametrize("kwargs, match", [
    ({"min_confidence": 2}, r"min_confidence must be a probability in \[0, 1\], got 2"),
    ({"min_confidence": -0.1}, r"min_confidence must be a probability in \[0, 1\], got -0.1"),
    ({"min_confidence": float("nan")}, r"min_confidence must be a probability in \[0, 1\], got nan"),
    ({"belief_std": (0.5, -0.2)}, r"belief_std must be two standard deviations .* > 0, got \(0.5, -0.2\)"),
    ({"belief_std": (float("inf"), 0.2)}, r"belief_std must be .* finite"),
    ({"base_frame": ""}, r"base_frame must be a frame id"),
])
def test_bad_options_are_refused_before_any_work(truth, synth_bag, tmp_path, kwargs, match):
    oracle = Oracle(truth)
    with pytest.raises(ValueError, match=match):
        replay(oracle, [synth_bag], tmp_path / "out", progress=False, **kwargs)
    assert oracle.calls == 0 and list(tmp_path.iterdir()) == []


@pytest.fixture
def read_only_dir(tmp_path, monkeypatch):
    """Yield a directory in which nothing can be created (for root too, whom permission bits do not stop)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:  # as on a read-only file system: creating anything there fails
        real = tempfile.mkdtemp

        def mkdtemp(*args, **kwargs):
            where = kwargs.get("dir")
            if where is not None and Path(where).resolve() == ro.resolve():
                raise PermissionError(13, "Permission denied", str(where))
            return real(*args, **kwargs)

        monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    yield ro
    ro.chmod(0o755)


def test_output_in_a_read_only_directory_is_refused_before_any_work(truth, synth_bag, read_only_dir):
    oracle = Oracle(truth)
    with pytest.raises(ValueError, match=rf"cannot write the output bag '{read_only_dir / 'out'}'.*directory "
                                         rf"'{read_only_dir}'.*(not writable|Permission denied)"):
        replay(oracle, [synth_bag], read_only_dir / "out", progress=False)
    assert oracle.calls == 0 and list(read_only_dir.iterdir()) == []


def test_output_in_a_missing_directory_is_refused(truth, synth_bag, tmp_path):
    with pytest.raises(ValueError, match=rf"directory '{tmp_path / 'missing'}' does not exist"):
        replay(Oracle(truth), [synth_bag], tmp_path / "missing" / "out", progress=False)


@pytest.mark.parametrize("where", ["out_bag", "--json", "--tum"])
def test_cli_checks_every_output_before_reading_the_model(cli_bag, tmp_path, read_only_dir, capsys, where):
    from reloc_ros.cli import main

    missing_model = tmp_path / "no_such_model.pt"  # so any work before the check would fail on the model
    out = read_only_dir / "out" if where == "out_bag" else tmp_path / "out"
    extra = [] if where == "out_bag" else [where, str(read_only_dir / "r.txt")]
    assert main(["-q", "replay", str(missing_model), str(cli_bag), str(out), *extra]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert str(read_only_dir) in err and "no_such_model" not in err
    if where != "out_bag":
        assert where in err
    assert not out.exists()


def test_cli_eval_checks_its_outputs_before_any_work(cli_bag, tmp_path, read_only_dir, capsys):
    from reloc_ros.cli import main

    missing_model = tmp_path / "no_such_model.pt"
    assert main(["-q", "eval", str(missing_model), str(cli_bag), "--json", str(read_only_dir / "e.json")]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert "--json" in err and str(read_only_dir / "e.json") in err and "no_such_model" not in err
    plots = tmp_path / "plots.png"
    plots.write_bytes(b"a file")
    assert main(["-q", "eval", str(missing_model), str(cli_bag), "--plots", str(plots)]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert "--plots" in err and "is a file, not a directory" in err


@pytest.mark.parametrize("value", ["2", "-0.5", "nan", "inf", "high"])
def test_cli_min_confidence_must_be_a_probability(cli_bag, tmp_path, capsys, value):
    from reloc_ros.cli import main

    with pytest.raises(SystemExit) as e:
        main(["-q", "replay", str(tmp_path / "model.pt"), str(cli_bag), str(tmp_path / "out"),
              "--min-confidence", value])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--min-confidence" in err and f"must be a probability in [0, 1], got '{value}'" in err


def test_cli_replay_and_eval_agree_on_a_bag_with_duplicate_stamps(models, cli_bag, tmp_path, typestore):
    """The second image of a stamp is another image: eval drops it, and so must replay, for the same figures."""
    from reloc_ros.cli import main

    _, model = models
    bag = duplicate_images(cli_bag, tmp_path / "dup", typestore)
    j_rep, j_ev, tum = tmp_path / "replay.json", tmp_path / "eval.json", tmp_path / "nested" / "dir" / "pred.tum"
    assert main(["-q", "replay", str(model), str(bag), str(tmp_path / "out"), "--json", str(j_rep),
                 "--min-confidence", "0", "--allow-unverified", "--tum", str(tum)]) == 0
    assert main(["-q", "eval", str(model), str(bag), "--json", str(j_ev)]) == 0
    rep, ev = json.loads(j_rep.read_text()), json.loads(j_ev.read_text())
    assert rep["frames"] == ev["frames"] == CLI_FRAMES
    for key in ("median_translation_m", "median_rotation_deg", "mean_translation_m", "max_translation_m",
                "covariance"):
        assert rep[key] == ev[key], key
    # --tum's missing directories are created, as --json's and --plots' are.
    assert len([r for r in tum.read_text().splitlines() if not r.startswith("#")]) == CLI_FRAMES
    _, msgs = read_out(tmp_path / "out")
    assert len(msgs[TF]) == len({t for t, _ in msgs[TF]}) == CLI_FRAMES


def test_eval_skips_and_counts_a_frame_that_fails_as_replay_does(models, cli_bag, monkeypatch):
    from reloc_ros.evaluation import evaluate_model_on_bags
    from reloc_ros.runtime.engine import Relocalizer

    _, model = models
    stamps = image_stamps(cli_bag)[1]
    real = Relocalizer.relocalize_preprocessed

    def flaky(self, x, stamps_ns, timings_ms=None):
        if int(stamps_ns[0]) == stamps[3]:
            raise RuntimeError("engine bug")
        return real(self, x, stamps_ns, timings_ms)

    monkeypatch.setattr(Relocalizer, "relocalize_preprocessed", flaky)
    pred, ds, report, _ = evaluate_model_on_bags(model, [cli_bag])
    assert report["frames"] == len(pred) == CLI_FRAMES - 1 and stamps[3] not in ds.stamps_ns.tolist()
    assert report["frame_errors"] == {f"{FRAME_ERROR} (RuntimeError)": 1} and report["no_estimate"] == 0
