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

"""NeRF-P (seed 003, section 3.2): rays, eq. 3-4, the two training stages, and learned renders.

One small fit (32 x 24 synthetic room, 40 frames, every fifth held out) is
shared by the tests that need a trained model; it takes about 15 s on one
CPU thread.
"""

from __future__ import annotations

import copy
import io
import math

import numpy as np
import pytest
import torch

from reloc_ros.data.synth import synthetic_dataset
from reloc_ros.data.types import Intrinsics
from reloc_ros.errors import RelocError
from reloc_ros.nets.nerfp import (
    MIN_FRAMES,
    camera_rays,
    fit_nerfp,
    mean_colour_psnr,
    NerfP,
    NerfPConfig,
    pixel_rays,
    psnr,
    scene_bounds,
    volume_weights,
)

# Small enough for a CPU test, big enough to learn the room: 64 cells on the box's longest side.
TINY = NerfPConfig(levels=6, base_resolution=4, max_resolution=64, hidden_dim=32, samples_per_ray=32,
                   pose_feature_dim=8, posemap_stride=4, posemap_pool=(2, 2), decoder_hidden=(64,))
FRAMES = 40
HOLDOUT = list(range(2, FRAMES, 5))
TRAIN = [i for i in range(FRAMES) if i not in HOLDOUT]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Two threads on a 2-core machine that also runs other work oversubscribe it (10x slower
    # here), and one thread keeps the CPU fit bit-reproducible.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def room():
    return synthetic_dataset(route="train", frames=FRAMES, seed=0, size=(32, 24), depth=True)


@pytest.fixture(scope="module")
def fitted(room):
    return fit_nerfp(room.images, room.poses_n44, room.intrinsics, room.depths, TINY, steps_rgb=300,
                     steps_pose=300, batch_rays=512, seed=0, progress=False, holdout=HOLDOUT)


def _rz(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])


# ---------------------------------------------------------------------------
# Rays and eq. 3-4
# ---------------------------------------------------------------------------

def test_ray_through_a_pixel_matches_hand_computation():
    K = Intrinsics(fx=30.0, fy=30.0, cx=15.5, cy=11.5, width=32, height=24)
    T = np.eye(4)
    T[:3, :3] = _rz(90.0)
    T[:3, 3] = [1.0, 2.0, 3.0]
    o_hw3, d_hw3 = camera_rays(torch.tensor(T), K)
    assert o_hw3.shape == d_hw3.shape == (24, 32, 3)
    # Pixel (u=3, v=2): K^-1 [3, 2, 1] = ((3 - 15.5) / 30, (2 - 11.5) / 30, 1) = (-0.41667, -0.31667, 1);
    # Rz(90) maps (x, y, z) -> (-y, x, z).
    np.testing.assert_allclose(d_hw3[2, 3].numpy(), [0.316667, -0.416667, 1.0], atol=1e-5)
    np.testing.assert_allclose(o_hw3[2, 3].numpy(), [1.0, 2.0, 3.0])
    # The principal point looks straight down the optical axis (map z here).
    o_r3, d_r3 = pixel_rays(torch.tensor(T, dtype=torch.float32), K, torch.tensor([15.5]), torch.tensor([11.5]))
    np.testing.assert_allclose(d_r3[0].numpy(), [0.0, 0.0, 1.0], atol=1e-6)
    # Stride 2: one ray per 2 x 2 block, through the block's centre (u = 2 j + 0.5).
    _, d2_hw3 = camera_rays(torch.tensor(T), K, stride=2)
    assert d2_hw3.shape == (12, 16, 3)
    np.testing.assert_allclose(d2_hw3[1, 1].numpy(), [-(2.5 - 11.5) / 30, (2.5 - 15.5) / 30, 1.0], atol=1e-5)
    with pytest.raises(ValueError, match="stride 25"):
        camera_rays(torch.tensor(T), K, stride=25)


def test_volume_weights_are_eq4():
    sigma = torch.tensor([[1.0, 2.0, 3.0]])
    delta = torch.tensor([[0.5, 0.5, 0.5]])
    e = math.exp
    expected = [1.0 - e(-0.5), e(-0.5) * (1.0 - e(-1.0)), e(-1.5) * (1.0 - e(-1.5))]
    np.testing.assert_allclose(volume_weights(sigma, delta)[0].numpy(), expected, rtol=1e-6)


def test_posemap_is_rendered_with_the_colour_weights():
    torch.manual_seed(0)
    model = NerfP(TINY, [-1.0, -1.0, -1.0], [1.0, 1.0, 1.0])
    with torch.no_grad():
        for g in model.encoding.grids:
            g.normal_(0.0, 1.0)  # a field with structure, so weights vary along and across rays
        # Every sample gets the same pose feature c and the same colour sigmoid(b): then eq. 3 gives
        # F = (sum_i w_i) c and the colour sum_i w_i sigmoid(b), with the weights of eq. 4.
        c = torch.arange(1.0, TINY.pose_feature_dim + 1)
        model.pose_head[-1].weight.zero_()
        model.pose_head[-1].bias.copy_(c)
        model.colour_net[-1].weight.zero_()
        model.colour_net[-1].bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
        o_r3 = torch.zeros(50, 3)
        d_r3 = torch.nn.functional.normalize(torch.randn(50, 3), dim=1)
        out = model.render_rays(o_r3, d_r3, near=0.0, far=5.0)
    acc_r = out["weights_rs"].sum(1)
    assert float(acc_r.min()) > 0.01 and float(acc_r.max()) < 1.0  # partly transparent rays: a real check
    np.testing.assert_allclose(out["posemap_rk"].numpy(), (acc_r[:, None] * c).numpy(), rtol=1e-5)
    np.testing.assert_allclose(out["rgb_r3"].numpy(),
                               (acc_r[:, None] * torch.sigmoid(torch.tensor([0.0, 1.0, -1.0]))).numpy(), rtol=1e-5)
    # Samples lie inside the box, between near and the exit point, in order.
    assert bool((out["t_rs"].diff(dim=1) > 0).all())
    assert float(out["t_rs"].max()) <= math.sqrt(3.0) + 1e-5


# ---------------------------------------------------------------------------
# The fitted room
# ---------------------------------------------------------------------------

def test_held_out_renders_beat_the_mean_colour_image(fitted, room):
    model, report = fitted
    K = room.intrinsics
    baseline = mean_colour_psnr(room.images[TRAIN], room.images[HOLDOUT])
    measured = psnr(model, room.images[HOLDOUT], room.poses_n44[HOLDOUT], K)
    assert report["holdout_psnr"] == pytest.approx(measured)
    assert report["holdout_psnr_mean_colour"] == pytest.approx(baseline)
    # Measured: about 24.9 dB against 18.7 dB for the best constant image.
    assert measured > baseline + 3.0, (measured, baseline)
    with torch.no_grad():
        out = model.render_image(room.poses_n44[HOLDOUT[0]], K)
    assert out["rgb_hw3"].shape == (24, 32, 3) and out["depth_hw"].shape == (24, 32)
    assert float(out["rgb_hw3"].min()) >= 0.0 and float(out["rgb_hw3"].max()) <= 1.0
    assert out["posemap_hwk"].shape == (24, 32, TINY.pose_feature_dim)
    assert report["frames_train"] == len(TRAIN) and report["frames_holdout"] == len(HOLDOUT)
    assert report["stage_rgb"]["loss_end"] < 0.5 * report["stage_rgb"]["loss_start"]


def test_rendered_depth_follows_true_depth(fitted, room):
    model, _ = fitted
    with torch.no_grad():
        pred = np.stack([model.render_image(room.poses_n44[i], room.intrinsics, with_pose=False)["depth_hw"].numpy()
                         for i in HOLDOUT]).ravel()
    true = room.depths[HOLDOUT].ravel()
    corr = np.corrcoef(pred, true)[0, 1]
    mae = np.abs(pred - true).mean()
    mae_constant = np.abs(true - np.median(room.depths[TRAIN])).mean()
    assert corr > 0.9, corr  # measured 0.985
    assert mae < 0.3 * mae_constant, (mae, mae_constant)


def test_posemap_decodes_to_poses_better_than_the_mean_pose(fitted, room):
    model, report = fitted
    assert report["stage_pose"]["loss_end"] < 0.5 * report["stage_pose"]["loss_start"]
    T_b44 = torch.tensor(room.poses_n44[HOLDOUT], dtype=torch.float32)
    with torch.no_grad():
        pm_bhwk = torch.stack([model.render_image(T, room.intrinsics, stride=TINY.posemap_stride)["posemap_hwk"]
                               for T in T_b44])
        pred_b44 = model.pose_matrix(model.decode_pose(pm_bhwk))
    err = (pred_b44[:, :3, 3] - T_b44[:, :3, 3]).norm(dim=1).median()
    mean_t = torch.tensor(room.poses_n44[TRAIN, :3, 3].mean(0), dtype=torch.float32)
    err_mean = (T_b44[:, :3, 3] - mean_t).norm(dim=1).median()
    assert float(err) < 0.8 * float(err_mean), (float(err), float(err_mean))  # measured 0.65 m vs 1.75 m
    R = pred_b44[:, :3, :3]
    np.testing.assert_allclose((R @ R.transpose(1, 2)).numpy(), np.broadcast_to(np.eye(3), R.shape), atol=1e-4)


def test_stage2_trains_only_the_pose_branch(fitted, room):
    model = copy.deepcopy(fitted[0])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    radiance = {id(p) for p in model.radiance_parameters()}
    names_radiance = [n for n, p in model.named_parameters() if id(p) in radiance]
    names_pose = [n for n, p in model.named_parameters() if id(p) not in radiance]
    assert names_radiance and names_pose
    model, report = fit_nerfp(room.images[TRAIN], room.poses_n44[TRAIN], room.intrinsics, None, steps_rgb=0,
                              steps_pose=20, batch_rays=512, seed=1, progress=False, model=model)
    after = model.state_dict()
    for n in names_radiance:
        assert torch.equal(before[n], after[n]), f"stage 2 changed the frozen weight {n}"
        assert not dict(model.named_parameters())[n].requires_grad
    assert all(not torch.equal(before[n], after[n]) for n in names_pose)
    assert report["stage_rgb"]["steps"] == 0 and report["stage_pose"]["steps"] == 20
    assert report["bounds_min"] == fitted[0].bounds_min_3.tolist()  # the given model's box, not a new one


def test_stage1_leaves_the_pose_branch_alone_and_fits_are_seeded(room):
    args = (room.images[:10], room.poses_n44[:10], room.intrinsics, room.depths[:10], TINY)
    kw = dict(steps_pose=0, batch_rays=64, progress=False)
    torch.manual_seed(123)
    rng_before = torch.random.get_rng_state()
    a, _ = fit_nerfp(*args, steps_rgb=4, seed=5, **kw)
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # the caller's RNG is left alone
    b, _ = fit_nerfp(*args, steps_rgb=4, seed=5, **kw)
    c, _ = fit_nerfp(*args, steps_rgb=4, seed=6, **kw)
    untrained, _ = fit_nerfp(*args, steps_rgb=0, seed=5, **kw)
    sa, sb, sc, s0 = (m.state_dict() for m in (a, b, c, untrained))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    pose_keys = [k for k in sa if k.startswith(("pose_head", "pose_decoder"))]
    assert pose_keys and all(torch.equal(sa[k], s0[k]) for k in pose_keys)
    assert not torch.equal(sa["density_net.0.weight"], s0["density_net.0.weight"])


def test_checkpoint_rebuilds_the_same_model(fitted, room):
    model = fitted[0]
    buf = io.BytesIO()
    torch.save(model.to_checkpoint(), buf)
    buf.seek(0)
    again = NerfP.from_checkpoint(torch.load(buf, weights_only=True))
    assert again.cfg == model.cfg
    with torch.no_grad():
        a = model.render_image(room.poses_n44[0], room.intrinsics)
        b = again.render_image(room.poses_n44[0], room.intrinsics)
    for key in ("rgb_hw3", "depth_hw", "posemap_hwk"):
        assert torch.equal(a[key], b[key])
    with pytest.raises(ValueError, match="not a NeRF-P checkpoint"):
        NerfP.from_checkpoint({"kind": "apr"})


def test_pose_vector_round_trip_and_no_pose_branch():
    model = NerfP(TINY, [-3.0, -2.0, 0.0], [5.0, 2.0, 3.0])
    T = np.eye(4)
    T[:3, :3] = _rz(30.0) @ np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])
    T[:3, 3] = [4.0, -1.0, 0.5]
    T_t = torch.tensor(T, dtype=torch.float32)[None]
    v = model.pose_vector(T_t)
    assert v.shape == (1, 12)
    np.testing.assert_allclose(v[0, [3, 7, 11]].numpy(), [(4.0 - 1.0) / 4.0, -1.0 / 4.0, (0.5 - 1.5) / 4.0])
    np.testing.assert_allclose(model.pose_matrix(v).numpy(), T_t.numpy(), atol=1e-5)
    bare = NerfP(NerfPConfig(pose_feature_dim=0, max_resolution=16, levels=2), [0, 0, 0], [1, 1, 1])
    assert not bare.has_pose_branch and bare.pose_parameters() == []
    with torch.no_grad():
        out = bare.render_image(np.eye(4), Intrinsics(4.0, 4.0, 1.5, 1.5, 4, 4))
    assert "posemap_hwk" not in out
    with pytest.raises(RelocError, match="no pose branch"):
        bare.decode_pose(torch.zeros(1, 2, 2, 8))


# ---------------------------------------------------------------------------
# Bounds, validation, errors
# ---------------------------------------------------------------------------

def test_scene_bounds_hold_cameras_and_seen_surfaces(room):
    lo, hi = scene_bounds(room.poses_n44, room.intrinsics, room.depths)
    # The synthetic room is 8 x 6 x 2.8 m, centred on the map origin, floor at z = 0.
    assert np.all(lo <= [-3.9, -2.9, 0.0]) and np.all(hi >= [3.9, 2.9, 2.7]), (lo, hi)
    assert np.all(lo > [-5.0, -4.0, -1.0]) and np.all(hi < [5.0, 4.0, 3.8]), (lo, hi)
    cams = room.poses_n44[:, :3, 3]
    assert np.all(cams > lo) and np.all(cams < hi)
    # Without depth the frusta cut at max_depth bound the box; they reach further than the walls.
    lo2, hi2 = scene_bounds(room.poses_n44, room.intrinsics, None, max_depth=10.0)
    assert np.all(lo2 < lo) and np.all(hi2 > hi)
    with pytest.raises(ValueError, match="max_depth"):
        scene_bounds(room.poses_n44, room.intrinsics, None)


@pytest.mark.parametrize("field, value", [
    ("levels", 0), ("features_per_level", 1.5), ("max_resolution", 1024), ("base_resolution", 1),
    ("samples_per_ray", -3), ("far", 0.01), ("near", float("nan")), ("pose_feature_dim", -1),
    ("posemap_pool", (0, 2)), ("decoder_hidden", (64, 0)), ("view_dependent", "yes"), ("posemap_stride", 0),
])
def test_config_rejects_bad_values_by_name(field, value):
    with pytest.raises(ValueError) as err:
        NerfPConfig(**{field: value})
    assert field in str(err.value) and repr(value) in str(err.value)


def test_config_round_trip_and_unknown_keys():
    cfg = NerfPConfig(pose_feature_dim=16, posemap_pool=(3, 5), decoder_hidden=(128, 64))
    # Lists are what a JSON round trip gives back.
    as_json = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.to_dict().items()}
    assert NerfPConfig.from_dict(as_json) == cfg
    with pytest.raises(ValueError, match="unknown NeRF-P config keys \\['width'\\]"):
        NerfPConfig.from_dict({"width": 3})
    assert NerfPConfig().grid_resolutions()[0] == 8 and NerfPConfig().grid_resolutions()[-1] == 128


def test_too_few_frames_is_a_reloc_error(room):
    n = MIN_FRAMES - 1
    with pytest.raises(RelocError, match=f"at least {MIN_FRAMES} training frames.*got {n}"):
        fit_nerfp(room.images[:n], room.poses_n44[:n], room.intrinsics, cfg=TINY, progress=False)
    # Held-out frames do not count: 10 frames with 3 held out leave 7.
    with pytest.raises(RelocError, match=f"got {n} \\(10 given, 3 held out\\)"):
        fit_nerfp(room.images[:10], room.poses_n44[:10], room.intrinsics, cfg=TINY, progress=False,
                  holdout=[0, 1, 2])


def test_bad_inputs_are_value_errors(room):
    imgs, poses, K = room.images[:10], room.poses_n44[:10], room.intrinsics
    with pytest.raises(ValueError, match="uint8"):
        fit_nerfp(imgs.astype(np.float32), poses, K, cfg=TINY, progress=False)
    with pytest.raises(ValueError, match="holdout"):
        fit_nerfp(imgs, poses, K, cfg=TINY, progress=False, holdout=[10])
    with pytest.raises(ValueError, match="batch_rays"):
        fit_nerfp(imgs, poses, K, cfg=TINY, progress=False, batch_rays=0)
    with pytest.raises(ValueError, match="depths"):
        fit_nerfp(imgs, poses, K, room.depths[:9], cfg=TINY, progress=False)


def test_out_of_memory_names_the_options_to_lower(room, monkeypatch):
    def oom(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(NerfP, "render_rays", oom)
    with pytest.raises(RelocError, match="lower batch_rays or the image resolution"):
        fit_nerfp(room.images[:10], room.poses_n44[:10], room.intrinsics, cfg=TINY, steps_rgb=2, steps_pose=0,
                  batch_rays=64, progress=False)
