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

"""ROS-free evaluation: pose errors, accuracy reports, the mean-pose baseline, JSON and plots."""

import json

import numpy as np
import pytest

from reloc_ros import geometry as g
from reloc_ros import evaluation as ev
from reloc_ros.modelfile import describe_quality

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def yaw_quat(deg):
    a = np.radians(deg) / 2
    return np.array([0.0, 0.0, np.sin(a), np.cos(a)])  # ROS order (x, y, z, w)


def pose(t=(0.0, 0.0, 0.0), yaw_deg=0.0):
    return g.make_pose(np.asarray(t, dtype=float), yaw_quat(yaw_deg))


def stack(*poses):
    return np.stack(poses)


def crafted_pairs(errors):
    """Ground truth along a line with odd orientations, predictions offset by exact (m, deg) errors."""
    rng = np.random.default_rng(3)
    gts, preds = [], []
    for k, (dt, ddeg) in enumerate(errors):
        T_gt = g.make_pose([k * 1.0, 0.5 * k, 0.2], rng.normal(size=4))
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        half = np.radians(ddeg) / 2
        dq = np.concatenate([np.sin(half) * axis, [np.cos(half)]])
        T_pred = T_gt @ g.make_pose([0, 0, 0], dq)  # rotate in the camera frame
        T_pred[:3, 3] = T_gt[:3, 3] + dt * direction
        gts.append(T_gt)
        preds.append(T_pred)
    return np.stack(preds), np.stack(gts)


def test_threshold_labels():
    assert ev.THRESHOLDS == ((0.05, 5.0), (0.25, 2.0), (0.5, 5.0), (5.0, 10.0))
    assert ev.THRESHOLD_LABELS == ("5cm_5deg", "25cm_2deg", "50cm_5deg", "5m_10deg")
    assert ev.threshold_label(0.1, 1.0) == "10cm_1deg"
    assert ev.threshold_label(1.5, 2.5) == "1.5m_2.5deg"


def test_pose_errors_exact_on_handcrafted_poses():
    gt = stack(pose(), pose((1.0, 1.0, 1.0), 10.0))
    pred = stack(pose((3.0, 4.0, 0.0)), pose((1.0, 1.0, 1.0), 40.0))
    t, r = ev.pose_errors(pred, gt)
    assert t.shape == r.shape == (2,)
    np.testing.assert_allclose(t, [5.0, 0.0], atol=1e-12)  # 3-4-5
    np.testing.assert_allclose(r, [0.0, 30.0], atol=1e-6)  # 30 deg yaw
    # A single 4x4 pose is one frame.
    t1, r1 = ev.pose_errors(pose((0.0, 0.0, 2.0), -30.0), pose())
    np.testing.assert_allclose([t1[0], r1[0]], [2.0, 30.0], atol=1e-6)


def test_pose_errors_reject_bad_input():
    with pytest.raises(ValueError, match="empty"):
        ev.pose_errors(np.zeros((0, 4, 4)), np.zeros((0, 4, 4)))
    with pytest.raises(ValueError, match="2 predicted poses but 3"):
        ev.pose_errors(stack(pose(), pose()), stack(pose(), pose(), pose()))
    with pytest.raises(ValueError, match=r"shape \(N, 4, 4\)"):
        ev.pose_errors(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)))
    bad = stack(pose(), pose())
    bad[1, 0, 3] = np.nan
    with pytest.raises(ValueError, match="1 of 2 predicted poses contain NaN.*frame 1"):
        ev.pose_errors(bad, stack(pose(), pose()))


def test_report_median_vs_mean():
    gt = stack(*[pose() for _ in range(4)])
    pred = stack(pose((0.1, 0, 0), 1.0), pose((0.2, 0, 0), 2.0), pose((0.3, 0, 0), 3.0), pose((10.0, 0, 0), 90.0))
    rep = ev.accuracy_report(pred, gt)
    assert rep["frames"] == 4
    assert rep["median_translation_m"] == pytest.approx(0.25)
    assert rep["mean_translation_m"] == pytest.approx(2.65)
    assert rep["median_rotation_deg"] == pytest.approx(2.5)
    assert rep["mean_rotation_deg"] == pytest.approx(24.0)
    assert rep["max_translation_m"] == pytest.approx(10.0)
    assert rep["max_rotation_deg"] == pytest.approx(90.0)


def test_within_threshold_shares_need_both_errors():
    errors = [(0.03, 1.0), (0.03, 6.0), (0.2, 1.5), (1.0, 20.0)]
    pred, gt = crafted_pairs(errors)
    t, r = ev.pose_errors(pred, gt)
    np.testing.assert_allclose(t, [e[0] for e in errors], atol=1e-9)
    np.testing.assert_allclose(r, [e[1] for e in errors], atol=1e-6)
    within = ev.accuracy_report(pred, gt)["within"]
    assert set(within) == set(ev.THRESHOLD_LABELS)
    # 0.03/1 is the only 5cm_5deg frame: 0.03/6 fails on rotation alone.
    assert within["5cm_5deg"] == pytest.approx(1 / 4)
    assert within["25cm_2deg"] == pytest.approx(2 / 4)  # 0.03/1 and 0.2/1.5
    assert within["50cm_5deg"] == pytest.approx(2 / 4)
    assert within["5m_10deg"] == pytest.approx(3 / 4)  # 1.0/20 fails on rotation
    for one, expected in (((0.03, 1.0), [1, 1, 1, 1]), ((0.03, 6.0), [0, 0, 0, 1]), ((0.2, 1.5), [0, 1, 1, 1])):
        p1, g1 = crafted_pairs([one])
        got = ev.accuracy_report(p1, g1)["within"]
        assert [got[k] for k in ev.THRESHOLD_LABELS] == expected, one


def test_report_extra_keys_and_plain_json_types():
    rep = ev.accuracy_report(stack(pose((0.1, 0, 0))), stack(pose()), model="posenet",
                             epoch=np.int64(3), lr=np.float32(0.5), sizes=np.array([1, 2]))
    assert rep["model"] == "posenet"
    assert type(rep["epoch"]) is int and type(rep["lr"]) is float and rep["sizes"] == [1, 2]
    for key in ("median_translation_m", "median_rotation_deg", "mean_translation_m", "mean_rotation_deg"):
        assert type(rep[key]) is float, key
    assert all(type(v) is float and 0.0 <= v <= 1.0 for v in rep["within"].values())
    json.dumps(rep, allow_nan=False)
    with pytest.raises(ValueError, match="overwrite"):
        ev.accuracy_report(stack(pose()), stack(pose()), frames=10)


def test_empty_input_raises():
    empty = np.zeros((0, 4, 4))
    with pytest.raises(ValueError, match="empty"):
        ev.accuracy_report(empty, empty)
    with pytest.raises(ValueError, match="empty"):
        ev.mean_pose_baseline(stack(pose()), empty)
    with pytest.raises(ValueError, match="empty"):
        ev.mean_pose_baseline(empty, stack(pose()))
    with pytest.raises(ValueError):
        ev.save_eval_plots("/tmp/never-written-by-reloc-ros-tests", empty, empty)


def test_mean_pose_baseline_equal_rotations():
    R_q = np.array([0.3, -0.2, 0.5, 0.7])  # some non-trivial rotation, normalised by make_pose
    train = g.make_pose(np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 1.0], [4.0, 3.0, 2.0]]), np.tile(R_q, (3, 1)))
    T_mean = ev.mean_pose(train)
    np.testing.assert_allclose(T_mean[:3, 3], [2.0, 1.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(T_mean[:3, :3], train[0, :3, :3], atol=1e-12)
    assert g.is_rigid(T_mean)
    # The test frame sits exactly on the mean pose, the other 3-4-5 off it with a 30 deg yaw.
    test = np.stack([T_mean, T_mean @ pose((0.0, 0.0, 0.0), 30.0)])
    test[1, :3, 3] += [3.0, 4.0, 0.0]
    rep = ev.mean_pose_baseline(train, test)
    assert rep["model"] == "mean_pose_baseline" and rep["train_frames"] == 3 and rep["frames"] == 2
    np.testing.assert_allclose(rep["mean_position_m"], [2.0, 1.0, 1.0], atol=1e-12)
    assert g.quat_angle_deg(np.array(rep["mean_quat_xyzw"]), R_q) == pytest.approx(0.0, abs=1e-5)
    assert rep["max_translation_m"] == pytest.approx(5.0)
    assert rep["max_rotation_deg"] == pytest.approx(30.0)
    assert rep["within"]["5cm_5deg"] == pytest.approx(0.5)
    json.dumps(rep, allow_nan=False)


def test_mean_pose_of_symmetric_yaws():
    train = stack(pose((0, 0, 0), 20.0), pose((1, 0, 0), -20.0))
    T_mean = ev.mean_pose(train)
    np.testing.assert_allclose(T_mean[:3, :3], np.eye(3), atol=1e-12)  # yaw 0
    # The same about a tilted base orientation: the mean is the base, not the identity.
    base = g.make_pose([0, 0, 0], [-0.5, 0.5, -0.5, 0.5])  # camera optical frame
    tilted = base[None] @ train
    np.testing.assert_allclose(ev.mean_pose(tilted)[:3, :3], base[:3, :3], atol=1e-12)
    # Asymmetric: +10 and +30 average to +20.
    T = ev.mean_pose(stack(pose(yaw_deg=10.0), pose(yaw_deg=30.0)))
    assert g.rotation_error_deg(T, pose(yaw_deg=20.0)) == pytest.approx(0.0, abs=1e-6)
    # Quaternion sign does not matter (q and -q are one rotation).
    q = yaw_quat(170.0)
    flipped = np.stack([g.make_pose([0, 0, 0], q), g.make_pose([0, 0, 0], -yaw_quat(-170.0))])
    assert g.rotation_error_deg(ev.mean_pose(flipped), pose(yaw_deg=180.0)) == pytest.approx(0.0, abs=1e-6)


def test_format_report():
    pred, gt = crafted_pairs([(0.03, 1.0), (0.03, 6.0), (0.2, 1.5), (1.0, 20.0)])
    rep = ev.accuracy_report(pred, gt, model="posenet")
    text = ev.format_report(rep, title="val epoch 3")
    assert text.splitlines()[0] == "val epoch 3: 4 frames"
    assert f"median {rep['median_translation_m']:.3f} m" in text
    assert f"mean {rep['mean_rotation_deg']:.2f} deg" in text
    assert "within 5cm_5deg    25.0 %" in text
    assert "within 5m_10deg    75.0 %" in text
    assert ev.format_report(rep).startswith("posenet: 4 frames")
    with pytest.raises(ValueError, match="missing keys"):
        ev.format_report({"frames": 3})


def test_report_json_round_trip(tmp_path):
    pred, gt = crafted_pairs([(0.03, 1.0), (0.2, 1.5), (1.0, 20.0)])
    rep = ev.accuracy_report(pred, gt, model="posenet", checkpoint=tmp_path / "ckpt.pt")
    path = tmp_path / "new" / "dir" / "report.json"
    ev.write_report_json(path, rep)
    text = path.read_text()
    assert json.loads(text) == rep
    assert ev.read_report_json(path) == rep
    assert text.endswith("\n") and '\n  "frames": 3,' in text  # indent 2
    keys = list(json.loads(text))
    assert keys == sorted(keys)
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]  # no temporaries left
    with pytest.raises(ValueError):
        ev.write_report_json(tmp_path / "nan.json", {**rep, "loss": float("nan")})
    assert not (tmp_path / "nan.json").exists()


def _assert_real_png(path):
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200
    assert float(img[..., :3].var()) > 1e-3, f"{path.name} looks blank"
    return img


def test_save_eval_plots_writes_real_pngs(tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    s = np.linspace(0, 2 * np.pi, n)
    gt = g.make_pose(np.stack([3 * np.cos(s), 2 * np.sin(s), np.zeros(n)], 1),
                     np.stack([yaw_quat(d) for d in np.degrees(s)]))
    pred = gt.copy()
    pred[:, :3, 3] += rng.normal(scale=0.2, size=(n, 3))
    pred = pred @ g.make_pose(np.zeros((n, 3)), np.stack([yaw_quat(d) for d in rng.normal(scale=5, size=n)]))
    rep = ev.accuracy_report(pred, gt)
    out = tmp_path / "eval" / "run1"
    paths = ev.save_eval_plots(out, pred, gt, rep, title="posenet")
    assert [p.name for p in paths] == ["error_cdf.png", "trajectory.png"]
    assert sorted(p.name for p in out.iterdir()) == ["error_cdf.png", "trajectory.png"]
    cdf = _assert_real_png(paths[0])
    assert cdf.shape[1] > 1.5 * cdf.shape[0]  # two panels side by side
    _assert_real_png(paths[1])
    # A single frame still plots.
    one = ev.save_eval_plots(tmp_path / "one", pred[:1], gt[:1], None)
    for p in one:
        _assert_real_png(p)


def test_trajectory_plot_shows_the_errors(tmp_path):
    """A perfect prediction and a wrong one must not draw the same picture."""
    import matplotlib.image as mpimg

    n = 20
    gt = g.make_pose(np.stack([np.linspace(0, 4, n), np.zeros(n), np.zeros(n)], 1), np.tile(yaw_quat(0), (n, 1)))
    wrong = gt.copy()
    wrong[:, 1, 3] += 1.0
    a = ev.save_eval_plots(tmp_path / "a", gt, gt, None)[1]
    b = ev.save_eval_plots(tmp_path / "b", wrong, gt, None)[1]
    ia, ib = mpimg.imread(a), mpimg.imread(b)
    assert ia.shape != ib.shape or not np.allclose(ia, ib)


@pytest.mark.parametrize("batch", [0, -1, 1.5])
def test_evaluate_model_on_bags_refuses_a_bad_batch_before_any_work(tmp_path, batch):
    with pytest.raises(ValueError, match=rf"batch must be >= 1 \(an integer\), got {batch}"):
        ev.evaluate_model_on_bags(tmp_path / "no_model.pt", [tmp_path / "no_bag"], batch=batch)


def test_format_report_lists_frame_errors():
    rep = ev.accuracy_report(np.stack([np.eye(4)] * 2), np.stack([np.eye(4)] * 2),
                             frame_errors={"error in the frame's processing (RuntimeError)": 3})
    assert "skipped, error in the frame's processing (RuntimeError): 3 frames" in ev.format_report(rep)


def _route(n):
    """Poses along a line with yaw turning, and images whose content encodes where they were taken."""
    x = np.linspace(0.0, 8.0, n)
    yaw = 0.3 * x
    quats = np.stack([np.zeros(n), np.zeros(n), np.sin(yaw / 2), np.cos(yaw / 2)], 1)
    poses = g.make_pose(np.stack([x, np.zeros(n), np.zeros(n)], 1), quats)
    u = np.arange(32) / 32.0
    rows = [127 + 120 * np.sin(2 * np.pi * (u + xi / 10.0)) for xi in x]  # the pattern slides with the camera
    images = np.stack([np.broadcast_to(r[None, :, None], (24, 32, 3)) for r in rows]).astype(np.uint8)
    return poses, images


def test_model_quality_calls_a_model_no_better_than_the_mean_pose_weak():
    poses, images = _route(60)
    train, val = np.arange(60) % 4 != 0, np.arange(60) % 4 == 0
    mean = ev.mean_pose_baseline(poses[train], poses[val])
    as_good_as_mean = ev.accuracy_report(np.broadcast_to(ev.mean_pose(poses[train]), poses[val].shape), poses[val])
    q = ev.model_quality(as_good_as_mean, mean, images[train], poses[train], images[val], poses[val], "held out")
    assert q["weak"] and q["margin"] == ev.WEAK_MARGIN and q["frames"] == val.sum() and q["split"] == "held out"
    assert q["model_median_m"] == pytest.approx(q["mean_pose_median_m"])
    # Retrieval finds the neighbouring training frame (images encode position): far better than the mean pose.
    assert q["retrieval_median_m"] < 0.3 * q["mean_pose_median_m"] and not q["beats_retrieval"]
    assert describe_quality(q).startswith("WEAK MODEL") and "held out, 15 frames" in describe_quality(q)
    exact = ev.accuracy_report(poses[val], poses[val])
    good = ev.model_quality(exact, mean, images[train], poses[train], images[val], poses[val], "held out")
    assert not good["weak"] and good["beats_retrieval"]
    assert describe_quality(good).startswith("model beats the mean mapping pose;")
