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

"""CamNet: losses, batched geometry, the exported module with its database, sequence state, training."""

import math

import numpy as np
import pytest
import torch

from reloc_ros.geometry import make_pose, pose_to_tq, rotation_error_deg, translation_error
from reloc_ros.nets import camnet as C
from reloc_ros.runtime import camnet_runtime as R
from reloc_ros.training import camnet_export as E
from reloc_ros.training import camnet_pairs as P
from reloc_ros.training.camnet_trainer import _prp_references, _relative_targets

SIZE = (48, 48)


def random_poses(n, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4))
    return make_pose(rng.uniform(-3, 3, size=(n, 3)), q / np.linalg.norm(q, axis=1, keepdims=True))


@pytest.fixture(scope="module")
def small():
    from reloc_ros.data.synth import synthetic_dataset

    torch.manual_seed(0)
    ds = synthetic_dataset("train", 40, 0, SIZE)
    net = C.build_camnet(C.CamNetConfig("resnet18", hidden=64)).eval()
    return ds, net


# --------------------------------------------------------------------------
# Losses and geometry
# --------------------------------------------------------------------------

def test_hard_triplet_loss_eq7():
    a = torch.zeros(2, 2)
    near, mid, far = torch.tensor([[0.1, 0.0]] * 2), torch.tensor([[0.5, 0.0]] * 2), torch.tensor([[1.0, 0.0]] * 2)
    assert float(C.hard_triplet_loss(a, near, mid, far)) == 0.0  # 0.1 + 0.1 < 0.5 and 0.5 + 0.1 < 1.0
    # The farthest easy pair (0.45) against the nearest moderate one (0.5): 0.45 - 0.5 + 0.1.
    easy = torch.tensor([[0.1, 0.0], [0.45, 0.0]])
    assert float(C.hard_triplet_loss(a, easy, mid, far)) == pytest.approx(0.05)
    # Hard nearer than moderate: the second term is 0.5 - 0.2 + 0.1.
    assert float(C.hard_triplet_loss(a, near, mid, torch.tensor([[0.2, 0.0]] * 2))) == pytest.approx(0.4)


def test_relative_pose_loss_is_l1_and_normalises_the_predicted_quaternion():
    dt, dq = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[0.0, 0.0, 0.0, 1.0]])
    assert float(C.relative_pose_loss(dt, 5 * dq, dt, dq)) == 0.0
    assert float(C.relative_pose_loss(dt + torch.tensor([[0.5, -0.5, 0.0]]), dq, dt, dq)) == pytest.approx(1.0)


def test_targets_and_anchor_reconstruction_agree_with_the_pair_labels():
    T1, T2 = random_poses(6, 1), random_poses(6, 2)
    dt, dq = _relative_targets(T1, T2)
    for i in range(6):
        ref_t, ref_q = P.relative_pose_targets(T1[i], T2[i])
        assert np.allclose(dt[i].numpy(), ref_t, atol=1e-6)
        assert np.allclose(dq[i].numpy(), ref_q, atol=1e-6)
    t2, q2 = (torch.as_tensor(a, dtype=torch.float64) for a in pose_to_tq(T2))
    t1_hat, q1_hat = C.anchor_from_relative_t(t2, q2, dt.double(), dq.double())
    back = make_pose(t1_hat.numpy(), q1_hat.numpy())
    assert np.max(translation_error(back, T1)) < 1e-5 and np.max(rotation_error_deg(back, T1)) < 1e-3
    assert np.allclose(back[0], P.anchor_from_relative(T2[0], dt[0].numpy(), dq[0].numpy()), atol=1e-5)


def test_encoder_branches_are_separate_copies_and_descriptors_are_unit_vectors(small):
    ds, net = small
    enc = net.encoder
    assert enc.layer4_icr[0].conv1.weight is not enc.layer4_pfr[0].conv1.weight
    assert torch.equal(enc.layer4_icr[0].conv1.weight, enc.layer4_prp[0].conv1.weight)  # same start (section 4.2)
    f_r, f_c, f_f = E.encode_images(net, ds.images[:4])
    assert f_r.shape == f_c.shape == f_f.shape == (4, 512)
    assert torch.allclose(f_r.norm(dim=1), torch.ones(4), atol=1e-5)


def test_prp_references_exclude_the_anchor_and_its_neighbours():
    poses = random_poses(30, 3)
    t, q = pose_to_tq(poses)
    anchors = np.array([10, 20])
    refs = _prp_references(t[anchors], q[anchors], anchors, t, q, exclude=2)
    assert all(abs(r - a) > 2 for r, a in zip(refs, anchors))
    z = P.pose_distance(poses[10], poses)
    z[8:13] = np.inf
    assert refs[0] == int(np.argmin(z))


# --------------------------------------------------------------------------
# Database and the exported module
# --------------------------------------------------------------------------

def test_select_keyframes_is_a_greedy_cover():
    poses = random_poses(80, 4)
    poses[:, :3, 3] *= 0.3
    assert np.array_equal(E.select_keyframes(poses, 0.0), np.arange(80))
    keep = E.select_keyframes(poses, 0.8)
    assert 1 < len(keep) < 80
    zeta = np.stack([P.pose_distance(poses[k], poses) for k in keep])  # (kept, all)
    assert np.all(zeta[:, keep][~np.eye(len(keep), dtype=bool)] >= 0.8)  # key frames far apart
    assert np.all(zeta.min(axis=0) < 0.8)  # every frame near a key frame
    with pytest.raises(ValueError, match="keyframe_distance must be"):
        E.select_keyframes(poses, -1.0)


def test_database_mismatches_are_clear_errors(small):
    ds, net = small
    db = E.build_database(net, ds.images, ds.poses_n44, SIZE)
    with pytest.raises(ValueError, match="built with backbone 'resnet18' but the model uses 'resnet34'"):
        E.ExportedCamNet(net.encoder, net.icr_head, net.pfr_head, net.prp_head, db, SIZE, "resnet34")
    with pytest.raises(ValueError, match="built at input size 48x48 but the model takes 64x64"):
        E.wrap_camnet(net, db, (64, 64))
    empty = E.Database(db.desc_mc[:0], db.feat_c_mc[:0], db.feat_f_mc[:0], db.t_m3[:0], db.q_m4[:0], "resnet18",
                       SIZE, np.zeros(0, int))
    with pytest.raises(ValueError, match="database is empty"):
        E.wrap_camnet(net, empty, SIZE)
    with pytest.raises(ValueError, match="network input is 64x64"):
        E.build_database(net, ds.images, ds.poses_n44, (64, 64))


def test_stages_retrieve_themselves_and_match_algorithm_1(small):
    ds, net = small
    db = E.build_database(net, ds.images, ds.poses_n44, SIZE)
    m = E.wrap_camnet(net, db, SIZE)
    x = torch.from_numpy(ds.images[[3, 17, 30]]).permute(0, 3, 1, 2)
    with torch.no_grad():
        f_r, f_c, f_f = m.encode(x)
        idx = m.retrieve(f_r)
        assert idx.shape == (3, 3) and idx[:, 0].tolist() == [3, 17, 30]  # a database image finds itself
        t_c, q_c = m.coarse(f_c, idx)
        near = m.nearest(t_c, q_c)
    for b in range(3):
        for k in range(3):
            T = make_pose(t_c[b, k].double().numpy(), q_c[b, k].double().numpy())
            z = P.pose_distance(T, ds.poses_n44)
            assert z[int(near[b, k])] <= z.min() + 1e-4


def test_fuse_takes_the_consensus_and_its_inlier_average(small):
    ds, net = small
    m = E.wrap_camnet(net, E.build_database(net, ds.images[:5], ds.poses_n44[:5], SIZE), SIZE,
                      fusion=(0.3, math.radians(10)))
    q_id = [0.0, 0.0, 0.0, 1.0]
    t = torch.tensor([[[1.0, 0, 0], [1.1, 0, 0], [1.2, 0, 0], [5.0, 0, 0], [-4.0, 0, 0]]])
    q = torch.tensor([[q_id] * 5])
    q[0, 1] = -q[0, 1]  # the same rotation on the other hemisphere is still an inlier
    t_f, q_f, inl = m.fuse(t, q)
    assert inl[0].tolist() == [True, True, True, False, False]
    assert torch.allclose(t_f[0], torch.tensor([1.1, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(q_f[0], torch.tensor(q_id), atol=1e-6)
    # Hypotheses that all disagree: one inlier, and the covariance is the (large) spread of them all.
    far = torch.tensor([[[0.0, 0, 0], [2.0, 0, 0], [4.0, 0, 0]]])
    t_f, q_f, inl = m.fuse(far, torch.tensor([[q_id] * 3]))
    assert int(inl.sum()) == 1
    cov = R.raw_covariance(t_f[0].double().numpy(), q_f[0].double().numpy(), far[0].double().numpy(),
                           np.array([q_id] * 3), inl[0].numpy())
    agree = R.raw_covariance(np.array([1.1, 0, 0]), np.array(q_id), t[0, :3].double().numpy(),
                             np.array([q_id] * 3), np.ones(3, bool))
    assert np.trace(cov[:3, :3]) > 100 * np.trace(agree[:3, :3])


def test_sequence_state_uses_recent_frames_only():
    s = R.SequenceState(frames=2, max_gap_s=1.0)
    f, t, q = torch.ones(8), torch.zeros(3), torch.tensor([0.0, 0, 0, 1])
    assert s.references(10, 8)[0].shape == (0, 8)
    s.push(1_000_000_000, f, t, q)
    s.push(1_500_000_000, f, t, q)
    s.push(1_800_000_000, f, t, q)  # keeps the last two
    assert s.references(2_000_000_000, 8)[0].shape == (2, 8)
    assert s.references(2_600_000_000, 8)[0].shape == (1, 8)  # 1.5 s is older than the gap
    assert s.references(1_700_000_000, 8)[0].shape == (0, 8)  # going backwards: a new sequence
    assert s.references(2_000_000_000, 8)[0].shape == (0, 8)  # and the old frames are gone


def test_exported_file_runs_through_the_engine(small, tmp_path):
    from reloc_ros.runtime.engine import Relocalizer
    from reloc_ros.modelfile import load_model
    from reloc_ros.training.onnx_export import export_onnx

    ds, net = small
    db = E.build_database(net, ds.images, ds.poses_n44, SIZE, keyframe_distance=0.1)
    eager = E.wrap_camnet(net, db, SIZE)
    meta = {"model": "camnet", "preprocessing": "resize", "frames": {"map_frame": "map", "camera_frame": "cam"},
            "training_data": {}, "metrics": {}}
    path = E.export_camnet(eager, tmp_path / "c.pt", meta)
    module, read = load_model(path)
    assert read["model_kind"] == "camnet"
    x = torch.from_numpy(ds.images[:4]).permute(0, 3, 1, 2)
    with torch.no_grad():
        for a, b in zip(eager(x), module(x)):
            assert torch.allclose(a, b, atol=1e-5)
    with pytest.raises(ValueError, match="TorchScript only"):
        export_onnx(path, tmp_path / "c.onnx")
    reloc = Relocalizer(path, device="cpu", warmup=1)
    ests = reloc.relocalize_preprocessed(ds.images[:3], [int(s) for s in ds.stamps_ns[:3]])
    assert all(np.all(np.linalg.eigvalsh(e.covariance) > 0) for e in ests)
    assert len(ests[0].hypotheses) == 3 and len(ests[2].hypotheses) == 5  # K, then K + 2 previous frames
    assert np.allclose(ests[0].T_map_cam[:3, 3], module(x[:1])[0][0].numpy(), atol=1e-5)


# --------------------------------------------------------------------------
# Training, end to end
# --------------------------------------------------------------------------

def test_pair_pools_label_every_candidate_like_the_single_pair_functions():
    from reloc_ros.data.synth import synthetic_dataset

    ds = synthetic_dataset("train", 30, 0, (40, 30), depth=True)
    pools = P.build_pair_pools(ds.poses_n44, ds.depths, ds.intrinsics, max_candidates=12, seed=1)
    assert pools.similarity == "frustum" and sum(pools.counts().values()) == 30 * 12
    for e in range(0, len(pools.anchor), 37):
        i, j = pools.anchor[e], pools.partner[e]
        th = P.bilateral_overlap(ds.depths[i], ds.intrinsics, ds.poses_n44[i], ds.depths[j], ds.intrinsics,
                                 ds.poses_n44[j])
        assert (pools.theta1[e], pools.theta2[e]) == pytest.approx(th, abs=1e-6)
        assert pools.alpha[e] == pytest.approx(P.rotation_angle(ds.poses_n44[i], ds.poses_n44[j]), abs=1e-6)
        if not pools.ranked[i]:  # the paper's thresholds; ranked anchors are checked below
            assert P.PAIR_CATEGORIES[pools.category[e]] == P.categorize_pair(*th, 180 * pools.alpha[e])
    for i in range(30):
        rows = pools.anchor == i
        by_threshold = [P.PAIR_CATEGORIES.index(P.categorize_pair(a, b, 180 * c))
                        for a, b, c in zip(pools.theta1[rows], pools.theta2[rows], pools.alpha[rows])]
        assert pools.ranked[i] == (len(set(by_threshold)) < 3)
        expected = (P.rank_categories(pools.theta1[rows], pools.theta2[rows], 180 * pools.alpha[rows])
                    if pools.ranked[i] else by_threshold)
        assert np.array_equal(pools.category[rows], expected)
    assert len(pools.eligible()) == 30  # every anchor can enter the triplet loss
    orb = P.build_pair_pools(ds.poses_n44, images_nhw3=ds.images, max_candidates=6)
    assert orb.similarity == "orb" and np.array_equal(orb.theta1, orb.theta2)
    with pytest.raises(ValueError, match="need depth"):
        P.build_pair_pools(ds.poses_n44)


@pytest.fixture(scope="module")
def depth_bags(tmp_path_factory):
    from reloc_ros.data.synth import make_run, write_synthetic_bag

    root = tmp_path_factory.mktemp("camnet_bags")
    lap_m = make_run(route="train", frames=160, size=(80, 60)).curve.length_m
    write_synthetic_bag(root / "map", route="train", frames=160, size=(80, 60), depth=True, progress=False,
                        speed_mps=2 * lap_m / 16.0)
    write_synthetic_bag(root / "query", route="test", frames=60, size=(80, 60), progress=False)
    write_synthetic_bag(root / "tiny", route="train", frames=40, size=(48, 36), depth=True, progress=False)
    return root


BUDGET = {"backbone": "resnet18", "input_size": (64, 48), "epochs": 3, "batch_size": 8, "seed": 0}


def test_camnet_beats_the_mean_pose_and_an_apr_with_the_same_budget(depth_bags, tmp_path):
    """Acceptance: bag with depth -> train -> export -> engine on a different route."""
    from reloc_ros.cli import main
    from reloc_ros.data.bag import BagSource
    from reloc_ros.data.synth import DEPTH_TOPIC
    from reloc_ros.evaluation import evaluate_model_on_bags, mean_pose_baseline
    from reloc_ros.modelfile import read_metadata
    from reloc_ros.training.trainer import TrainConfig, train

    cam = tmp_path / "camnet.pt"
    assert main(["-q", "train", str(depth_bags / "map"), "--map", "none", "--model", "camnet", "--backbone", "resnet18",
                 "--input-size", "64x48", "--epochs", "3", "--batch-size", "8", "--depth-topic", DEPTH_TOPIC,
                 "--out", str(cam), "--cache-dir", str(tmp_path / "cache")]) == 0
    apr = tmp_path / "posenet.pt"
    train([depth_bags / "map"], BagSource(), TrainConfig(model="posenet", lr=1e-3, **BUDGET), apr,
          cache_dir=tmp_path / "cache", progress=False)
    pred_c, ds, rep_c, cov = evaluate_model_on_bags(cam, [depth_bags / "query"])
    pred_a, _, rep_a, _ = evaluate_model_on_bags(apr, [depth_bags / "query"])
    from reloc_ros.data.bag import read_bag_dataset

    mapping = read_bag_dataset(depth_bags / "map", load_images=False)
    base = mean_pose_baseline(mapping.poses_n44, ds.poses_n44)["median_translation_m"]
    cam_m, apr_m = rep_c["median_translation_m"], rep_a["median_translation_m"]
    print(f"query route: camnet {cam_m:.3f} m, posenet {apr_m:.3f} m, mean pose {base:.3f} m")
    assert cam_m < 0.35 * base and cam_m < 0.7 * apr_m
    meta = read_metadata(cam)
    assert meta["model_kind"] == "camnet" and meta["training_data"]["pairs"]["similarity"] == "frustum"
    assert meta["uncertainty"]["method"] == "hypothesis_spread" and "calibration" in meta["uncertainty"]
    assert 0 < meta["camnet"]["database"]["keyframes"] <= meta["training_data"]["frames_train"]
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    # The covariance says something: errors within 2 sigma far more often than chance would give.
    assert rep_c["covariance"]["translation"]["within_2sigma"] > 0.5


def test_camnet_interrupted_and_resumed_reaches_the_same_weights(depth_bags, tmp_path, monkeypatch):
    from reloc_ros.data.bag import BagSource
    from reloc_ros.data.synth import DEPTH_TOPIC
    from reloc_ros.training import camnet_trainer
    from reloc_ros.training.trainer import TrainConfig, checkpoint_path_for, load_checkpoint, train

    cfg = TrainConfig(model="camnet", backbone="resnet18", input_size=(32, 32), epochs=2, batch_size=4,
                      min_frames=10)
    source = BagSource(depth_topic=DEPTH_TOPIC)
    straight = tmp_path / "a.pt"
    train([depth_bags / "tiny"], source, cfg, straight, progress=False)
    real = camnet_trainer._evaluate
    calls = {"n": 0}

    def interrupt_in_epoch_two(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    out = tmp_path / "b.pt"
    monkeypatch.setattr(camnet_trainer, "_evaluate", interrupt_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train([depth_bags / "tiny"], source, cfg, out, progress=False)
    monkeypatch.setattr(camnet_trainer, "_evaluate", real)
    assert not out.exists() and load_checkpoint(checkpoint_path_for(out))["epoch"] == 1
    train([depth_bags / "tiny"], source, cfg, out, resume=True, progress=False)
    a, b = load_checkpoint(checkpoint_path_for(straight)), load_checkpoint(checkpoint_path_for(out))
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_camnet_bad_options(depth_bags, tmp_path):
    from reloc_ros.data.bag import BagSource
    from reloc_ros.training.trainer import TrainConfig, train

    cfg = TrainConfig(model="camnet", backbone="resnet18", input_size=(32, 32), epochs=1, batch_size=4,
                      min_frames=10)
    with pytest.raises(ValueError, match="similarity 'frustum' needs an aligned depth topic"):
        train([depth_bags / "tiny"], BagSource(), TrainConfig(**{**cfg.__dict__, "similarity": "frustum"}),
              tmp_path / "m.pt", progress=False)
    with pytest.raises(ValueError, match="CamNet exports to TorchScript only"):
        train([depth_bags / "tiny"], BagSource(), cfg, tmp_path / "m.pt", progress=False, onnx=True)
    with pytest.raises(ValueError, match="head 'fc' does not fit model 'camnet'"):
        TrainConfig(model="camnet", head="fc").resolved()
    with pytest.raises(ValueError, match="optimizer 'sgd' is for camnet"):
        TrainConfig(model="posenet", optimizer="sgd").resolved()
    with pytest.raises(ValueError, match="retrieval_k must be >= 1"):
        TrainConfig(model="camnet", retrieval_k=0).resolved()


def test_camnet_under_torchrun_two_processes_on_cpu(depth_bags, tmp_path):
    """Two gloo ranks share the anchors, average gradients, and rank 0 writes one model."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from reloc_ros.data.synth import DEPTH_TOPIC
    from reloc_ros.modelfile import read_metadata
    from reloc_ros.training.trainer import checkpoint_path_for, load_checkpoint

    out = tmp_path / "ddp.pt"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
         "reloc_ros.cli", "-q", "train", str(depth_bags / "tiny"), "--map", "none", "--model", "camnet",
         "--backbone", "resnet18", "--out", str(out), "--epochs", "1", "--input-size", "32x32", "--batch-size", "4",
         "--depth-topic", DEPTH_TOPIC, "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "--allow-weak"],
        capture_output=True, text=True, timeout=600, env=env, cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    state = load_checkpoint(checkpoint_path_for(out))
    assert state["world_size"] == 2 and state["epoch"] == 1
    assert read_metadata(out)["model_kind"] == "camnet"


def test_non_finite_outputs_give_no_estimate(small, tmp_path):
    from reloc_ros.runtime.engine import NoEstimate, Relocalizer

    ds, net = small
    db = E.build_database(net, ds.images[:10], ds.poses_n44[:10], SIZE)
    db.t_m3[:] = float("nan")  # every reference pose broken: every hypothesis is NaN
    meta = {"model": "camnet", "preprocessing": "resize", "frames": {"map_frame": "map", "camera_frame": "cam"},
            "training_data": {}, "metrics": {}}
    path = E.export_camnet(E.wrap_camnet(net, db, SIZE), tmp_path / "nan.pt", meta)
    reloc = Relocalizer(path, device="cpu", warmup=0)
    (est,) = reloc.relocalize_preprocessed(ds.images[:1], [1])
    assert isinstance(est, NoEstimate) and "not finite" in str(est)
