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

"""PMNet (Lin et al.): APRNet's losses, training through the bag trainer, export, and PMNet_ud alignment."""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from reloc_ros.cli import main as cli_main
from reloc_ros.data.bag import BagSource
from reloc_ros.data.synth import DEPTH_TOPIC, write_synthetic_bag
from reloc_ros.errors import RelocError
from reloc_ros.geometry import quat_to_matrix
from reloc_ros.nets import pmnet as P
from reloc_ros.training import pmnet_align as PA
from reloc_ros.training import pmnet_trainer as PT
from reloc_ros.modelfile import read_metadata
from reloc_ros.training.trainer import TrainConfig, train

SIZE = (32, 24)
# Small enough for CI, large enough that NeRF-P clearly beats a constant image on held-out frames.
TINY = {"model": "pmnet", "input_size": SIZE, "epochs": 2, "batch_size": 8, "lr": 1e-3, "nerf_steps": 200,
        "nerf_pose_steps": 80, "nerf_rays": 512, "nerf_resolution": 64, "min_frames": 8}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # reproducible CPU fits, and no oversubscription on 2 cores
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp("pmnet_bags")
    write_synthetic_bag(root / "map", frames=60, size=SIZE, depth=True, progress=False)
    write_synthetic_bag(root / "query", route="test", frames=16, size=SIZE, progress=False)
    write_synthetic_bag(root / "elsewhere", route="test", frames=8, size=SIZE, seed=7, scene="two_rooms",
                        progress=False)
    return root


@pytest.fixture(scope="module")
def trained(bags, tmp_path_factory):
    out = tmp_path_factory.mktemp("pmnet_model") / "pm.pt"
    result = train([bags / "map"], BagSource(depth_topic=DEPTH_TOPIC), TrainConfig(**TINY), out, progress=False,
                   cache_dir=bags / "cache")
    return out, result


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------
# Pieces
# ---------------------------------------------------------------------------

def test_quaternion_to_matrix_matches_numpy():
    q = torch.randn(16, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    got = P.quat_to_matrix_t(q).numpy()
    want = np.stack([quat_to_matrix(v / np.linalg.norm(v)) for v in q.numpy()])
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_rvs_perturbations_stay_within_the_paper_bounds():
    T = torch.eye(4, dtype=torch.float64).repeat(500, 1, 1)
    T[:, :3, 3] = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    out = P.perturb_poses(T, 0.2, 10.0, torch.Generator().manual_seed(1))
    dt = out[:, :3, 3] - T[:, :3, 3]
    assert dt.abs().max() <= 0.2 and dt.abs().max() > 0.15  # uniform in [-0.2, 0.2] per axis
    R = out[:, :3, :3]
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(500, 3, 3), atol=1e-9)
    angle = torch.rad2deg(torch.arccos(((R.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1)))
    assert angle.max() <= 10.0 * math.sqrt(3) + 1e-6 and angle.max() > 10.0
    again = P.perturb_poses(T, 0.2, 10.0, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)


def test_losses_are_zero_when_they_should_be_and_positive_otherwise():
    f = torch.eye(4).reshape(4, 2, 2)  # four orthogonal unit features: negatives sqrt(2) away
    assert P.image_triplet_loss(f, f).item() == 0.0
    assert P.image_triplet_loss(f, torch.roll(f, 1, 0)).item() > 0.9
    pm = torch.randn(2, 3, 3, 8, generator=torch.Generator().manual_seed(0))
    assert P.posemap_cosine_loss(pm, pm * 2.5).item() == pytest.approx(0.0, abs=1e-6)
    assert P.posemap_cosine_loss(pm, -pm).item() == pytest.approx(2.0)
    m = torch.randn(3, 3, 4)
    assert P.rvs_loss(m, m, pm, pm).item() == 0.0
    assert P.rvs_loss(m, m + 1, pm, pm).item() == pytest.approx(1.0)


def test_loss_names_are_checked():
    assert P.parse_losses("rvs, pose") == ("pose", "rvs")
    with pytest.raises(ValueError, match=r"unknown PMNet loss 'nerfmap'; valid: pose, image, posemap, rvs"):
        P.parse_losses("pose,nerfmap")
    with pytest.raises(ValueError, match="no supervised term"):
        TrainConfig(model="pmnet", pmnet_losses="image,posemap").resolved()
    with pytest.raises(ValueError, match="rvs_translation must be >= 0"):
        TrainConfig(model="pmnet", rvs_translation=-1.0).resolved()
    with pytest.raises(ValueError, match="does not fit model 'pmnet'"):
        TrainConfig(model="pmnet", head="lstm").resolved()


# ---------------------------------------------------------------------------
# Training through the bag trainer (acceptance)
# ---------------------------------------------------------------------------

def test_nerfp_from_the_bag_beats_a_constant_image_and_diagnostics_are_written(trained):
    out, _ = trained
    meta = read_metadata(out)["pmnet"]
    nerf = meta["nerfp"]
    assert nerf["frames_holdout"] > 0
    assert nerf["holdout_psnr"] > nerf["holdout_psnr_mean_colour"] + 3.0, nerf
    for name in ("renders", "posemap"):
        png = out.parent / meta["diagnostics"][name]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert meta["losses"] == ["pose", "image", "posemap", "rvs"]
    assert PT.sidecar_path_for(out).exists()


def test_a_pmnet_step_reduces_the_pose_loss(bags, trained):
    out, _ = trained
    side = PT.load_sidecar(out)
    nerf = PT.NerfP.from_checkpoint(side["nerfp"]).eval()
    for p in nerf.parameters():
        p.requires_grad_(False)
    K = PT.Intrinsics(**side["intrinsics"])
    from reloc_ros.data.bag import read_bag_dataset
    from reloc_ros.training.data import PoseNormaliser

    ds = read_bag_dataset(bags / "map", BagSource(), image_size=SIZE)
    norm = PoseNormaliser.fit(ds.poses_n44)
    idx = np.arange(0, 48, 6)
    synth, pm_gt = PT.render_set(nerf, ds.poses_n44[idx], K, torch.device("cpu"), False, "")
    rvs_T = P.perturb_poses(torch.as_tensor(ds.poses_n44[idx]), 0.2, 10.0, torch.Generator().manual_seed(0)).numpy()
    rvs, pm_rvs = PT.render_set(nerf, rvs_T, K, torch.device("cpu"), False, "")
    tg = PT._Targets(PT._matrices(ds.poses_n44[idx], norm), synth, pm_gt, rvs, PT._matrices(rvs_T, norm), pm_rvs)
    torch.manual_seed(0)
    net = P.build_pmnet(P.PMNetConfig(dropout=0.0))
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    b = torch.arange(len(idx))
    real = torch.from_numpy(ds.images[idx])
    mean = torch.tensor(norm.mean, dtype=torch.float32)
    first = None
    for _ in range(8):
        parts = PT._losses(net, nerf, K, P.LOSS_NAMES, real, tg, b, mean, norm.scale, torch.device("cpu"))
        assert set(parts) == set(P.LOSS_NAMES) and all(torch.isfinite(v) for v in parts.values())
        first = parts["pose"].item() if first is None else first
        opt.zero_grad()
        sum(parts.values()).backward()
        opt.step()
    assert parts["pose"].item() < 0.7 * first, (first, parts["pose"].item())


def test_posemap_loss_alone_reaches_the_pose_regressor_through_the_renderer(trained):
    out, _ = trained
    side = PT.load_sidecar(out)
    nerf = PT.NerfP.from_checkpoint(side["nerfp"]).eval()
    K = PT.Intrinsics(**side["intrinsics"])
    net = P.build_pmnet(P.PMNetConfig(dropout=0.0)).eval()
    x = torch.randn(2, 3, SIZE[1], SIZE[0])
    t, q, _ = net(x)
    mean = torch.tensor(side["normaliser"]["mean"], dtype=torch.float32)
    T = P.to_map_poses(P.pose_matrix_t(t, q), mean, side["normaliser"]["scale"])
    with torch.no_grad():
        target = P.render_posemaps(nerf, T + 0.3 * torch.eye(4)[None].roll(3, dims=2), K)
    P.posemap_cosine_loss(P.render_posemaps(nerf, T, K), target).backward()
    assert net.pose_net.fc_t.weight.grad is not None and net.pose_net.fc_t.weight.grad.abs().sum() > 0


def test_the_export_is_an_apr_that_eval_reads(bags, trained):
    from reloc_ros.evaluation import evaluate_model_on_bags

    out, result = trained
    meta = read_metadata(out)
    assert meta["model"] == "pmnet" and meta["model_kind"] == "apr" and "mc_dropout" in meta
    pred, ds, report, _ = evaluate_model_on_bags(out, [bags / "query"])
    assert len(pred) == len(ds) == 16 and np.isfinite(pred).all()
    assert report["covariance"]["translation"]["within_2sigma"] >= 0.0
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert all(k in result.history[0] for k in ("pose", "image", "posemap", "rvs"))


def test_a_second_run_with_other_losses_reuses_the_nerf(bags, trained, tmp_path, caplog):
    cfg = TrainConfig(**{**TINY, "epochs": 1, "pmnet_losses": "pose,rvs"})
    with caplog.at_level(logging.INFO, logger="reloc_ros.training.pmnet_trainer"):
        train([bags / "map"], BagSource(depth_topic=DEPTH_TOPIC), cfg, tmp_path / "b.pt", progress=False,
              cache_dir=bags / "cache")
    assert "reusing the NeRF-P" in caplog.text
    assert read_metadata(tmp_path / "b.pt")["pmnet"]["losses"] == ["pose", "rvs"]


# ---------------------------------------------------------------------------
# PMNet_ud
# ---------------------------------------------------------------------------

def test_alignment_reads_no_poses_keeps_the_original_and_reports_the_shift(bags, trained, tmp_path, monkeypatch):
    import reloc_ros.data.bag as bag_mod
    import reloc_ros.data.ground_truth as gt_mod

    out, _ = trained
    before = _sha(out)

    def no_ground_truth(*a, **k):
        raise AssertionError("alignment read ground truth")

    monkeypatch.setattr(bag_mod, "read_tf", no_ground_truth)
    monkeypatch.setattr(gt_mod, "read_tf", no_ground_truth)
    monkeypatch.setattr(gt_mod, "read_pose_topic", no_ground_truth)
    res = PA.align_unlabelled(out, [bags / "query"], out=tmp_path / "ud.pt", epochs=1, lr=1e-4, progress=False)
    assert _sha(out) == before
    r = res.report
    assert r["ground_truth_read"] is False and r["images"] == 16
    assert r["moved_median_m"] > 0 and np.isfinite([r["render_match_db_before"], r["render_match_db_after"]]).all()
    meta = read_metadata(tmp_path / "ud.pt")
    assert meta["pmnet"]["aligned"]["moved_median_m"] == pytest.approx(r["moved_median_m"])
    assert PT.sidecar_path_for(tmp_path / "ud.pt").exists()


def test_alignment_on_another_scene_warns_and_writes_beside(bags, trained, tmp_path, caplog):
    out, _ = trained
    with caplog.at_level(logging.WARNING):
        res = PA.align_unlabelled(out, [bags / "elsewhere"], out=tmp_path / "x.pt", epochs=1, progress=False)
    assert "barely match the images" in caplog.text
    assert res.model_path == tmp_path / "x.pt" and res.model_path.exists()


def test_alignment_refuses_bad_targets(bags, trained, tmp_path):
    out, _ = trained
    with pytest.raises(ValueError, match="is the model being aligned"):
        PA.align_unlabelled(out, [bags / "query"], out=out, progress=False)
    with pytest.raises(ValueError, match="unknown PMNet loss 'pose'; valid: image, posemap"):
        PA.align_unlabelled(out, [bags / "query"], losses="pose", progress=False)
    plain = tmp_path / "plain.pt"
    plain.write_bytes(out.read_bytes())
    with pytest.raises(RelocError, match="no 'plain.pt.pmnet' beside it"):
        PA.align_unlabelled(plain, [bags / "query"], progress=False)


def test_align_command_says_no_ground_truth_is_read(bags, trained, tmp_path, capsys):
    out, _ = trained
    code = cli_main(["-q", "align", str(out), "--unlabelled", str(bags / "query"), "--out", str(tmp_path / "c.pt"),
                     "--epochs", "1", "--json", str(tmp_path / "r.json")])
    text = capsys.readouterr().out
    assert code == 0 and "no ground truth is read" in text and "moved by median" in text
    assert (tmp_path / "r.json").exists()


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------

def test_a_nerf_that_cannot_fit_the_bag_stops_with_the_psnr_reached(bags, tmp_path):
    cfg = TrainConfig(**{**TINY, "nerf_steps": 1, "nerf_pose_steps": 1})
    with pytest.raises(RelocError, match=r"NeRF-P reached only -?\d+\.\d+ dB PSNR on \d+ held-out mapping frames.*"
                                         r"too small or too sparse"):
        train([bags / "map"], BagSource(), cfg, tmp_path / "m.pt", progress=False)


def test_out_of_memory_names_the_options_to_lower(bags, tmp_path, monkeypatch):
    def oom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(P, "render_views", oom)
    with pytest.raises(RelocError, match=r"out of memory rendering 32x24 views.*--nerf-rays.*--nerf-resolution"):
        train([bags / "map"], BagSource(depth_topic=DEPTH_TOPIC), TrainConfig(**TINY), tmp_path / "m.pt",
              progress=False, cache_dir=bags / "cache")


def test_train_command_rejects_a_bad_loss_name(bags, tmp_path, capsys):
    code = cli_main(["-q", "train", str(bags / "map"), "--map", "none", "--model", "pmnet",
                     "--out", str(tmp_path / "m.pt"), "--pmnet-losses", "pose,nerfmap"])
    assert code == 2 and "unknown PMNet loss 'nerfmap'" in capsys.readouterr().err


def test_pmnet_under_torchrun_two_processes_on_cpu(bags, trained, tmp_path):
    """Two gloo ranks: rank 0 provides the NeRF-P (here from the cache), DDP averages APRNet's gradients."""
    import os
    import subprocess
    import sys

    from reloc_ros.training.trainer import checkpoint_path_for, load_checkpoint

    out = tmp_path / "ddp.pt"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
         "reloc_ros.cli", "train", str(bags / "map"), "--map", "none", "--model", "pmnet", "--out", str(out),
         "--epochs", "1", "--input-size", "32x24", "--batch-size", "4", "--depth-topic", DEPTH_TOPIC,
         "--nerf-steps", "200", "--nerf-pose-steps", "80", "--nerf-rays", "512", "--nerf-resolution", "64",
         "--cache-dir", str(bags / "cache"), "--device", "cpu", "--allow-weak"],
        capture_output=True, text=True, timeout=600, env=env, cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    assert "reusing the NeRF-P" in res.stderr
    state = load_checkpoint(checkpoint_path_for(out))
    assert state["world_size"] == 2 and state["epoch"] == 1
    assert read_metadata(out)["model"] == "pmnet"


def test_a_non_finite_loss_stops_training_with_the_hint():
    from reloc_ros.training.loop import take_step

    w = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.Adam([w], lr=0.1)
    sums: dict = {}
    take_step(opt, (w ** 2).sum(), {"pose": w.sum()}, sums, 4, "")
    assert sums == {"loss": pytest.approx(8.0), "pose": pytest.approx(8.0)} and w.grad is not None
    with pytest.raises(RelocError, match=r"loss became nan at epoch 3; lower the learning rate \(now 0.1\)"):
        take_step(opt, w.sum() * float("nan"), {}, sums, 4, "at epoch 3; lower the learning rate (now 0.1)")


def test_an_interrupted_run_resumes_to_the_same_result(bags, trained, tmp_path, monkeypatch):
    _, uninterrupted = trained
    from reloc_ros.training.trainer import checkpoint_path_for

    out = tmp_path / "r.pt"
    real_losses = PT._losses

    def interrupt_in_epoch_two(*a, **k):
        if checkpoint_path_for(out).exists():  # epoch 1 is saved: Ctrl-C in the first batch of epoch 2
            raise KeyboardInterrupt
        return real_losses(*a, **k)

    source = BagSource(depth_topic=DEPTH_TOPIC)
    monkeypatch.setattr(PT, "_losses", interrupt_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train([bags / "map"], source, TrainConfig(**TINY), out, progress=False, cache_dir=bags / "cache")
    monkeypatch.setattr(PT, "_losses", real_losses)
    assert not out.exists()
    resumed = train([bags / "map"], source, TrainConfig(**TINY), out, resume=True, progress=False,
                    cache_dir=bags / "cache")
    keys = ("loss", "pose", "image", "posemap", "rvs", "median_translation_m")
    assert [[r[k] for k in keys] for r in resumed.history] == [[r[k] for k in keys] for r in uninterrupted.history]
