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

"""Fitting a NeRF-P to posed images in the paper's two stages (:func:`fit_nerfp`).

Stage 1 trains the grids, density and colour on random rays (plus an L1 depth
loss when depth maps are given); stage 2 freezes them and trains the pose
branch and decoder on whole PoseMaps (see :mod:`reloc_ros.nets.nerfp`).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from reloc_ros.data.types import Intrinsics
from reloc_ros.errors import RelocError
from reloc_ros.nets.nerfp.config import is_int, is_real, NerfPConfig
from reloc_ros.nets.nerfp.field import NerfP
from reloc_ros.nets.nerfp.metrics import is_oom, mean_colour_psnr, psnr, psnr_from_mse
from reloc_ros.nets.nerfp.rays import camera_rays, pixel_rays, scene_bounds

log = logging.getLogger(__name__)

MIN_FRAMES = 8
"""Fewest training frames :func:`fit_nerfp` accepts: fewer cannot constrain a radiance field."""


def _check_inputs(images: np.ndarray, poses: np.ndarray, K: Intrinsics, depths: np.ndarray | None,
                  steps_rgb: int, steps_pose: int, batch_rays: int, lr: float, lr_pose: float,
                  depth_weight: float) -> None:
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be N x H x W x 3 uint8 RGB, got {images.dtype} {images.shape}")
    if images.shape[1:3] != (K.height, K.width):
        raise ValueError(f"images are {images.shape[2]}x{images.shape[1]} but the intrinsics are for "
                         f"{K.width}x{K.height}")
    if poses.shape != (len(images), 4, 4) or not np.all(np.isfinite(poses)):
        raise ValueError(f"poses must be {len(images)} finite 4x4 T_map_cam matrices (one per image), got "
                         f"{poses.shape}")
    if depths is not None and depths.shape != images.shape[:3]:
        raise ValueError(f"depths must be {images.shape[:3]} (one z-depth map in metres per image), got "
                         f"{depths.shape}")
    for name, v in (("steps_rgb", steps_rgb), ("steps_pose", steps_pose)):
        if not is_int(v) or v < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
    if not is_int(batch_rays) or batch_rays < 1:
        raise ValueError(f"batch_rays must be a positive integer, got {batch_rays!r}")
    for name, v in (("lr", lr), ("lr_pose", lr_pose)):
        if not is_real(v) or v <= 0:
            raise ValueError(f"{name} must be a positive learning rate, got {v!r}")
    if not is_real(depth_weight) or depth_weight < 0:
        raise ValueError(f"depth_weight must be >= 0, got {depth_weight!r}")


def _summary(losses: list[float], seconds: float) -> dict[str, Any]:
    n = len(losses)
    tenth = max(1, n // 10)
    return {"steps": n, "losses": losses, "seconds": seconds,
            "loss_start": float(np.mean(losses[:tenth])) if n else None,
            "loss_end": float(np.mean(losses[-tenth:])) if n else None}


def _adam(params: list[nn.Parameter], lr: float, steps: int) -> tuple[torch.optim.Optimizer, Any]:
    # Instant-NGP's Adam (betas 0.9/0.99, tiny eps: grid features get rare, small gradients) and an
    # exponential decay to lr/10 over the stage, which settles the grid without a hand-tuned schedule.
    opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.99), eps=1e-15)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.1 ** (i / max(steps, 1)))
    return opt, sched


def _step(opt: torch.optim.Optimizer, sched: Any, loss: torch.Tensor, losses: list[float], bar: Any,
          error: str) -> None:
    """One optimiser and schedule step; RelocError (``error`` with the value) on a non-finite loss."""
    if not torch.isfinite(loss):
        raise RelocError(error.format(loss.item()))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    losses.append(float(loss.detach()))
    if len(losses) % 10 == 1:
        bar.set_postfix(loss=f"{losses[-1]:.4f}")


def _train_radiance(model: NerfP, images_nhw3: torch.Tensor, poses_n44: torch.Tensor, depths_nhw: torch.Tensor | None,
                    K: Intrinsics, steps: int, batch_rays: int, lr: float, depth_weight: float,
                    gen: torch.Generator, progress: bool) -> list[float]:
    from tqdm import tqdm

    model.freeze_radiance(False)
    opt, sched = _adam(model.radiance_parameters(), lr, steps)
    n, h, w = images_nhw3.shape[:3]
    dev = images_nhw3.device
    losses: list[float] = []
    every = max(1, steps // 10)
    bar = tqdm(range(steps), desc="NeRF-P stage 1 (colour, density)", unit="step", leave=False,
               disable=not progress)
    for step in bar:
        cam_r = torch.randint(n, (batch_rays,), generator=gen).to(dev)
        v_r = torch.randint(h, (batch_rays,), generator=gen).to(dev)
        u_r = torch.randint(w, (batch_rays,), generator=gen).to(dev)
        o_r3, d_r3 = pixel_rays(poses_n44, K, u_r.float(), v_r.float(), cam_r)
        out = model.render_rays(o_r3, d_r3, generator=gen, with_pose=False)
        gt_r3 = images_nhw3[cam_r, v_r, u_r].float() / 255.0
        loss_rgb = F.mse_loss(out["rgb_r3"], gt_r3)
        loss = loss_rgb
        depth_err = float("nan")
        if depths_nhw is not None and depth_weight > 0:
            gt_r = depths_nhw[cam_r, v_r, u_r]
            ok_r = torch.isfinite(gt_r) & (gt_r > 0)
            if bool(ok_r.any()):
                err_r = (out["depth_r"][ok_r] - gt_r[ok_r]).abs()
                depth_err = float(err_r.mean().detach())
                # L1 in box units (metres / half the box), so one weight suits a desk and a hall alike.
                loss = loss + depth_weight * err_r.mean() / model.pose_scale
        _step(opt, sched, loss, losses, bar, f"NeRF-P stage 1 loss became {{}} at step {step}; lower lr (now {lr})")
        if (step + 1) % every == 0 or step + 1 == steps:
            depth_txt = "" if math.isnan(depth_err) else f" depth L1 {depth_err:.3f} m"
            log.info("nerfp stage 1 step %d/%d loss %.4f batch psnr %.2f dB%s", step + 1, steps, losses[-1],
                     psnr_from_mse(float(loss_rgb.detach())), depth_txt)
    return losses


def _train_pose(model: NerfP, poses_n44: torch.Tensor, K: Intrinsics, steps: int, batch_rays: int, lr: float,
                gen: torch.Generator, progress: bool) -> list[float]:
    from tqdm import tqdm

    cfg = model.cfg
    model.freeze_radiance(True)  # the paper's stage 2: "the learned weights of the network are frozen"
    opt, sched = _adam(model.pose_parameters(), lr, steps)
    n = poses_n44.shape[0]
    dev = poses_n44.device
    s = cfg.posemap_stride
    hp, wp = K.height // s, K.width // s
    if hp < 1 or wp < 1:
        raise ValueError(f"posemap_stride {s} leaves no PoseMap pixel of a {K.width}x{K.height} image; use "
                         f"posemap_stride <= {min(K.width, K.height)}")
    # One PoseMap per frame in the batch: as many frames as batch_rays allows, at least one.
    frames = max(1, min(n, batch_rays // (hp * wp)))
    _, d0_hw3 = camera_rays(torch.eye(4, device=dev), K, s)  # camera-frame rays, moved per frame below
    target_n12 = model.pose_vector(poses_n44)
    losses: list[float] = []
    every = max(1, steps // 10)
    bar = tqdm(range(steps), desc="NeRF-P stage 2 (pose branch)", unit="step", leave=False, disable=not progress)
    for step in bar:
        idx_b = torch.randperm(n, generator=gen)[:frames].to(dev)
        T_b44 = poses_n44[idx_b]
        d_bp3 = torch.einsum("bij,pj->bpi", T_b44[:, :3, :3], d0_hw3.reshape(-1, 3))
        o_bp3 = T_b44[:, None, :3, 3].expand_as(d_bp3)
        out = model.render_rays(o_bp3.reshape(-1, 3), d_bp3.reshape(-1, 3), generator=gen, with_pose=True)
        pred_b12 = model.decode_pose(out["posemap_rk"].reshape(len(idx_b), hp, wp, -1))
        loss = F.mse_loss(pred_b12, target_n12[idx_b])  # L2 on the flattened 3 x 4 pose, as DFNet
        _step(opt, sched, loss, losses, bar,
              f"NeRF-P stage 2 loss became {{}} at step {step}; lower lr_pose (now {lr})")
        if (step + 1) % every == 0 or step + 1 == steps:
            log.info("nerfp stage 2 step %d/%d pose loss %.5f", step + 1, steps, losses[-1])
    return losses


def fit_nerfp(images_nhw3: np.ndarray, poses_n44: np.ndarray, K: Intrinsics, depths_nhw: np.ndarray | None = None,
              cfg: NerfPConfig | None = None, steps_rgb: int = 2000, steps_pose: int = 500, batch_rays: int = 4096,
              lr: float = 1e-2, seed: int = 0, device: str | torch.device = "cpu", progress: bool = True,
              holdout: Sequence[int] | None = None, lr_pose: float = 3e-3, depth_weight: float = 0.1,
              model: NerfP | None = None) -> tuple[NerfP, dict[str, Any]]:
    """Fit a NeRF-P to posed images in the paper's two stages; return ``(model, report)``.

    Args:
        images_nhw3: ``N x H x W x 3`` uint8 RGB.
        poses_n44: ``T_map_cam`` of the optical frame of each image.
        K: intrinsics of the images.
        depths_nhw: z-depth in metres (NaN or 0 where invalid), or ``None``;
            when given, an L1 loss on rendered depth (``depth_weight``, in
            units of half the scene box) joins stage 1, and the scene box is
            fitted to the back-projected depth.
        cfg: architecture (default :class:`NerfPConfig`).
        steps_rgb: stage-1 steps (density and colour).
        steps_pose: stage-2 steps (pose branch and decoder, radiance frozen);
            skipped without a pose branch.
        batch_rays: rays per step (stage 2: as many whole PoseMaps as fit).
        lr: stage-1 learning rate; ``lr_pose``: stage 2's.
        seed: seeds the initial weights and every random draw (one
            ``torch.Generator``); the same call gives the same model on a CPU.
        device: torch device to train on.
        progress: show tqdm bars.
        holdout: frame indices left out of training; the report gives their
            PSNR and that of the mean-colour image.
        model: continue training this model (its box and config win)
            instead of building one; e.g. ``steps_rgb=0`` reruns stage 2 only.

    Returns:
        The model (stage-1 weights frozen when stage 2 ran) and a report:
        ``stage_rgb`` / ``stage_pose`` (``losses`` per step, ``loss_start`` /
        ``loss_end`` over the first / last tenth, ``seconds``),
        ``holdout_psnr``, ``holdout_psnr_mean_colour``, frame counts, the
        scene box and the config.

    Raises:
        RelocError: fewer than ``MIN_FRAMES`` training frames, a loss that
            became non-finite, or memory ran out (lower ``batch_rays`` or the
            image resolution).
        ValueError: malformed inputs.

    """
    images = np.asarray(images_nhw3)
    poses = np.asarray(poses_n44, dtype=np.float64)
    depths = None if depths_nhw is None else np.asarray(depths_nhw, dtype=np.float32)
    _check_inputs(images, poses, K, depths, steps_rgb, steps_pose, batch_rays, lr, lr_pose, depth_weight)
    cfg = model.cfg if model is not None else (cfg or NerfPConfig())
    n_all = len(images)
    hold = np.unique(np.asarray([] if holdout is None else list(holdout), dtype=np.int64))
    if hold.size and (hold.min() < 0 or hold.max() >= n_all):
        raise ValueError(f"holdout indices must lie in [0, {n_all - 1}], got {hold.min()}..{hold.max()}")
    train = np.setdiff1d(np.arange(n_all), hold)
    if len(train) < MIN_FRAMES:
        raise RelocError(f"NeRF-P needs at least {MIN_FRAMES} training frames to fit a scene, got {len(train)} "
                         f"({n_all} given, {hold.size} held out)")
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(int(seed))
    if model is None:
        depth_train = None if depths is None else depths[train]
        lo, hi = scene_bounds(poses[train], K, depth_train, max_depth=cfg.far)
        # Initial weights from the seed without touching the caller's global RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = NerfP(cfg, lo, hi)
        model.encoding.reset_parameters(gen)
    model = model.to(dev)
    log.info("fitting NeRF-P on %d frames (%d held out), %dx%d, box %s .. %s m, %d + %d steps on %s",
             len(train), hold.size, K.width, K.height, np.round(model.bounds_min_3.tolist(), 2).tolist(),
             np.round(model.bounds_max_3.tolist(), 2).tolist(), steps_rgb, steps_pose, dev)
    report: dict[str, Any] = {"frames_train": int(len(train)), "frames_holdout": int(hold.size),
                              "bounds_min": model.bounds_min_3.tolist(), "bounds_max": model.bounds_max_3.tolist(),
                              "config": cfg.to_dict(), "device": str(dev), "seed": int(seed)}
    try:
        img_t = torch.as_tensor(images[train]).to(dev)
        pose_t = torch.as_tensor(poses[train], dtype=torch.float32).to(dev)
        depth_t = None if depths is None else torch.as_tensor(depths[train]).to(dev)
        model.train()
        t0 = time.perf_counter()
        losses = _train_radiance(model, img_t, pose_t, depth_t, K, steps_rgb, batch_rays, lr, depth_weight, gen,
                                 progress) if steps_rgb else []
        report["stage_rgb"] = _summary(losses, time.perf_counter() - t0)
        t0 = time.perf_counter()
        losses = []
        if model.has_pose_branch and steps_pose:
            losses = _train_pose(model, pose_t, K, steps_pose, batch_rays, lr_pose, gen, progress)
        report["stage_pose"] = _summary(losses, time.perf_counter() - t0)
        model.eval()
        report["holdout_psnr"] = report["holdout_psnr_mean_colour"] = None
        if hold.size:
            report["holdout_psnr"] = psnr(model, images[hold], poses[hold], K, chunk=batch_rays)
            report["holdout_psnr_mean_colour"] = mean_colour_psnr(images[train], images[hold])
            log.info("NeRF-P held-out PSNR %.2f dB (mean-colour image %.2f dB) on %d frames",
                     report["holdout_psnr"], report["holdout_psnr_mean_colour"], hold.size)
    except RuntimeError as e:
        if isinstance(e, RelocError) or not is_oom(e):
            raise
        raise RelocError(f"NeRF-P ran out of memory on {dev} fitting {K.width}x{K.height} images with "
                         f"batch_rays={batch_rays} ({e}); lower batch_rays or the image resolution") from e
    return model, report
