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

"""Train CamNet (seed 001) from bags, through ``reloc-ros train --model camnet``, and export it.

One training step, for ``N`` anchors of the batch (section 3, eq. 1):

1. every anchor draws one easy, one moderate and one hard partner from its
   labelled candidate pairs (:func:`~reloc_ros.training.camnet_pairs.build_pair_pools`:
   frustum overlap from depth when the bag has an aligned depth topic, else
   ORB similarity);
2. the encoder runs on the ``4N`` images; on the ``3N`` pairs ICR regresses
   the frustum distances and the rotation angle (``L_frustum + L_angle``,
   eq. 4, 6), its descriptors get the hard-triplet loss (eq. 7), and PFR
   regresses the relative poses (``L_PFR``, eq. 8);
3. Algorithm 1: each PFR estimate of the anchor's pose (from its partner's
   pose) picks the training frame closest in ``zeta``; the encoder runs on
   those references and PRP regresses the relative poses of the new pairs
   (``L_PRP``, eq. 9). The anchor itself and its ``exclude`` nearest frames
   in time are not candidates: they are near-copies of the anchor that a
   new query would never find in the database, and PRP would learn only
   zero motion from them;
4. ``L = L_frustum + L_angle + L_triplet + L_PFR + L_PRP``; SGD with momentum
   0.9, weight decay 1e-4 and the 'poly' schedule (power 0.9) from the base
   learning rate, as section 4.2.

Deviations from the paper, all forced or documented: no ImageNet weights
unless ``--backbone-weights`` gives them (the paper fine-tunes from ImageNet);
no horizontal flip (a flipped image has no proper camera pose); photometric
augmentation as the APR trainer's.

Validation after every epoch runs the whole section 3.4 inference with a
database of the training split on the held-out frames; the best epoch is
exported. The consensus thresholds and the covariance calibration are fitted
on the validation frames, run in time order with the sequence hypotheses
through the same code as the runtime (:mod:`reloc_ros.runtime.camnet_runtime`).

Under torchrun each rank takes its share of the anchors. A step runs the
encoder twice (the PRP references depend on the PFR output of the same
step), which DistributedDataParallel's one-forward-per-backward contract
does not allow, so gradients are averaged with ``torch.distributed.all_reduce``
after the backward pass: what DDP does, without overlapping it with compute.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from reloc_ros import __version__
from reloc_ros.data.bag import BagSource
from reloc_ros.errors import RelocError
from reloc_ros.geometry import make_pose, matrix_to_quat, rotation_error_deg, translation_error
from reloc_ros.nets.camnet import (CamNetConfig, anchor_from_relative_t, build_camnet, frustum_angle_losses,
                                   hard_triplet_loss, relative_pose_loss)
from reloc_ros.training import camnet_pairs as P
from reloc_ros.training.camnet_export import (FUSION_FLOOR, ExportedCamNet, build_database, export_camnet,
                                              wrap_camnet)
from reloc_ros.training.data import augment, split_time_blocks, to_network_input
from reloc_ros.training.trainer import (CHECKPOINT_FORMAT, TrainConfig, TrainResult, _barrier, _load_data,
                                        _save_checkpoint, start_run)

log = logging.getLogger(__name__)

EXCLUDE_NEIGHBOURS = 5
"""Frames on either side of an anchor that Algorithm 1 may not pick as its PRP reference."""
POLY_POWER = 0.9


def _relative_targets(T1_n44: np.ndarray, T2_n44: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 8 targets of pairs, batched: ``t2 - t1`` (map frame, m) and the quaternion of ``R1^T R2``."""
    dt = T2_n44[:, :3, 3] - T1_n44[:, :3, 3]
    dq = matrix_to_quat(np.swapaxes(T1_n44[:, :3, :3], 1, 2) @ T2_n44[:, :3, :3])
    return torch.as_tensor(dt, dtype=torch.float32), torch.as_tensor(dq, dtype=torch.float32)


def _pose_tq(poses_n44: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.as_tensor(poses_n44[:, :3, 3], dtype=torch.float32)
    return t, torch.as_tensor(matrix_to_quat(poses_n44[:, :3, :3]), dtype=torch.float32)


def _prp_references(t_est: np.ndarray, q_est: np.ndarray, anchors: np.ndarray, t_db: np.ndarray,
                    q_db: np.ndarray, exclude: int) -> np.ndarray:
    """Algorithm 1 steps 3-4: the training frame nearest in zeta to each estimate, not near its anchor."""
    zeta = (np.linalg.norm(t_est[:, None, :] - t_db[None], axis=2)
            + 2.0 * np.arccos(np.clip(np.abs(q_est @ q_db.T), 0.0, 1.0)) / np.pi)
    frames = np.arange(len(t_db))
    zeta[np.abs(frames[None, :] - anchors[:, None]) <= exclude] = np.inf
    return zeta.argmin(axis=1)


def _poly_lr(base: float, step: int, total: int) -> float:
    return base * (1.0 - min(step, total - 1) / total) ** POLY_POWER


def _evaluate(eager: ExportedCamNet, images: torch.Tensor, poses_n44: np.ndarray) -> dict:
    """Median errors of single-image inference (no sequence) on uint8 images ``(N, H, W, 3)``."""
    ts, qs = [], []
    with torch.no_grad():
        for i in range(0, len(images), 64):
            t, q = eager(images[i:i + 64].permute(0, 3, 1, 2))
            ts.append(t.double().numpy())
            qs.append(q.double().numpy())
    pred = make_pose(np.concatenate(ts), np.concatenate(qs))
    te, re = translation_error(pred, poses_n44), rotation_error_deg(pred, poses_n44)
    return {"median_translation_m": float(np.median(te)), "median_rotation_deg": float(np.median(re)),
            "pred_n44": pred}


def train_camnet(bags: Sequence[str | Path], source: BagSource, cfg: TrainConfig, out: str | Path,
                 resume: bool = False, cache_dir: str | Path | None = None, device: str = "auto",
                 progress: bool = True, onnx: bool = False) -> TrainResult:
    """Train CamNet on the bags' posed frames and export the best epoch with its database to ``out``."""
    from tqdm import tqdm

    from reloc_ros.training.evaluate import mean_pose_baseline

    if onnx:
        raise ValueError("--onnx: CamNet exports to TorchScript only (its retrieval and fusion are not exported "
                         "to ONNX); drop --onnx")
    if cfg.loss != "beta" or cfg.beta is not None:
        raise ValueError(f"--loss/--beta are APR options; CamNet trains with its own losses (eq. 1), got loss "
                         f"'{cfg.loss}', beta {cfg.beta}")
    run = start_run(bags, source, cfg, out, resume, device)
    dev, d = run.dev, run.dist
    ds = _load_data(bags, source, cfg, cache_dir, d, progress)
    similarity = cfg.similarity
    if similarity == "auto":
        similarity = "frustum" if ds.depths is not None else "orb"
    if similarity == "frustum" and (ds.depths is None or ds.intrinsics is None):
        raise ValueError("similarity 'frustum' needs an aligned depth topic (--depth-topic) and CameraInfo; "
                         "without depth use --similarity orb (or auto)")
    train_idx, val_idx = split_time_blocks(len(ds), cfg.val_fraction)
    poses = ds.poses_n44
    images = torch.from_numpy(np.array(ds.images))  # a writable copy: the cache is a read-only memmap
    train_poses = poses[train_idx]
    baseline = mean_pose_baseline(train_poses, poses[val_idx])

    pools = P.build_pair_pools(
        train_poses, ds.depths[train_idx] if similarity == "frustum" else None, ds.intrinsics,
        ds.images[train_idx] if similarity == "orb" else None,
        max_candidates=512 if similarity == "frustum" else 48, seed=cfg.seed, progress=progress and d.main)
    eligible = pools.eligible()
    if d.main:
        log.info("CamNet pairs (%s): %s; %d of %d anchors have all three categories", similarity,
                 pools.counts(), len(eligible), len(train_idx))
    if len(eligible) < 2:
        raise RelocError(f"only {len(eligible)} training frames have easy, moderate and hard partners "
                         f"({pools.counts()}): the route needs more varied views (or more frames) for CamNet's "
                         "triplet loss")

    torch.manual_seed(cfg.seed)
    model_cfg = CamNetConfig(backbone=cfg.backbone)
    net = build_camnet(model_cfg, cfg.backbone_weights).to(dev)
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.999), weight_decay=cfg.weight_decay)
    start_epoch, history, best, best_state = 1, [], {"median_translation_m": math.inf}, None
    if run.state is not None:
        net.load_state_dict(run.state["model"])
        opt.load_state_dict(run.state["optimizer"])
        start_epoch, history, best = run.state["epoch"] + 1, run.state["history"], run.state["best"]
        best_state = run.state["best_model"]
        if d.main:
            log.info("resuming %s after epoch %d of %d", run.ckpt_path, run.state["epoch"], cfg.epochs)

    t_db_np, q_db_np = train_poses[:, :3, 3], matrix_to_quat(train_poses[:, :3, :3])
    t_train, q_train = _pose_tq(train_poses)
    per_rank = len(eligible) // d.world
    steps_per_epoch = max(1, math.ceil(per_rank / cfg.batch_size))
    total_steps = steps_per_epoch * cfg.epochs
    amp = dev.type == "cuda"
    if d.main:
        log.info("training camnet (%s, %dx%d) on %d frames (%d anchors), validating on %d; %s, world size %d",
                 cfg.backbone, *cfg.input_size, len(train_idx), len(eligible), len(val_idx), dev, d.world)
    epoch = start_epoch - 1
    try:
        for epoch in range(start_epoch, cfg.epochs + 1):
            t0 = time.perf_counter()
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
            rng = np.random.default_rng(cfg.seed * 1_000_003 + epoch)
            perm = eligible[torch.randperm(len(eligible), generator=gen).numpy()][d.rank::d.world][:per_rank]
            batches = [perm[i:i + cfg.batch_size] for i in range(0, per_rank, cfg.batch_size)]
            batches = [b for b in batches if len(b) >= 2]
            net.train()
            sums: dict[str, float] = {}
            bar = tqdm(batches, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", leave=False,
                       disable=not (progress and d.main))
            for k, anchors in enumerate(bar):
                step = (epoch - 1) * steps_per_epoch + k
                if cfg.optimizer == "sgd":
                    for g in opt.param_groups:
                        g["lr"] = _poly_lr(cfg.lr, step, total_steps)
                loss, parts = _step(net, anchors, pools, rng, gen, images, train_idx, train_poses, t_train, q_train,
                                    t_db_np, q_db_np, cfg, dev, amp)
                if not torch.isfinite(loss):
                    raise RelocError(f"loss became {loss.item()} at epoch {epoch}; lower the learning rate "
                                     f"(now {cfg.lr})")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                _average_gradients(net, d.world)
                opt.step()
                for key, v in {"loss": loss, **parts}.items():
                    sums[key] = sums.get(key, 0.0) + float(v.detach()) * len(anchors)
                bar.set_postfix(loss=f"{loss.item():.3f}")
            n_seen = sum(len(b) for b in batches)
            row = {"epoch": epoch, **{key: v / max(n_seen, 1) for key, v in sums.items()}}
            if d.main:
                db = build_database(net, images[train_idx], train_poses, cfg.input_size, cfg.keyframe_distance, dev)
                val = _evaluate(wrap_camnet(net, db, cfg.input_size, cfg.retrieval_k), images[val_idx],
                                poses[val_idx])
                row.update({key: v for key, v in val.items() if key != "pred_n44"})
            row["seconds"] = time.perf_counter() - t0
            history.append(row)
            if d.main and row["median_translation_m"] < best["median_translation_m"]:
                best = dict(row)
                best_state = {key: v.detach().cpu().clone() for key, v in net.state_dict().items()}
            if d.main:
                log.info("epoch %d/%d loss %.4f (frustum %.3f angle %.3f triplet %.3f pfr %.3f prp %.3f) val %.3f m "
                         "%.2f deg (%.1f s)", epoch, cfg.epochs, row["loss"], row["frustum"], row["angle"],
                         row["triplet"], row["pfr"], row["prp"], row["median_translation_m"],
                         row["median_rotation_deg"], row["seconds"])
                _save_checkpoint(run.ckpt_path, {
                    "format": "reloc_ros.checkpoint", "format_version": CHECKPOINT_FORMAT,
                    "reloc_ros_version": __version__, "config": cfg.to_dict(), "data": run.data_id,
                    "world_size": d.world, "model_args": model_cfg.to_dict(), "epoch": epoch,
                    "model": net.state_dict(), "optimizer": opt.state_dict(), "history": history, "best": best,
                    "best_model": best_state})
            _barrier(d)
    except KeyboardInterrupt:
        if d.main:
            log.warning("interrupted during epoch %d; the checkpoint after epoch %d is at %s: continue with "
                        "--resume", epoch, epoch - 1, run.ckpt_path)
        raise

    result = TrainResult(run.out, run.ckpt_path, history, baseline=baseline)
    if d.main:
        net.load_state_dict(best_state)
        _export(net, run.out, cfg, model_cfg, ds, source, train_idx, val_idx, similarity, pools, result, best, dev)
        log.info("best epoch %d: val median %.3f m, %.2f deg with sequence hypotheses (mean-pose baseline %.3f m, "
                 "%.2f deg); wrote %s", best["epoch"], result.val_metrics["median_translation_m"],
                 result.val_metrics["median_rotation_deg"], baseline["median_translation_m"],
                 baseline["median_rotation_deg"], run.out)
    _barrier(d)
    return result


def _average_gradients(net: torch.nn.Module, world: int) -> None:
    if world <= 1:
        return
    import torch.distributed as dist

    for p in net.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= world


def _step(net, anchors: np.ndarray, pools: P.PairPools, rng: np.random.Generator, gen: torch.Generator,
          images: torch.Tensor, train_idx: np.ndarray, train_poses: np.ndarray, t_train: torch.Tensor,
          q_train: torch.Tensor, t_db: np.ndarray, q_db: np.ndarray, cfg: TrainConfig, dev: torch.device,
          amp: bool) -> tuple[torch.Tensor, dict]:
    """One training step of eq. 1 on a batch of anchors (indices into the training split)."""
    n = len(anchors)
    rows = np.array([[rng.choice(pools.by_anchor[a][c]) for c in range(3)] for a in anchors])  # (n, 3)
    partners = pools.partner[rows]  # (n, 3): easy, moderate, hard
    frames = np.concatenate([anchors, partners[:, 0], partners[:, 1], partners[:, 2]])
    imgs = images[torch.as_tensor(train_idx[frames])]
    if cfg.augment:
        imgs = augment(imgs, gen)
    with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
        f_r, f_c, f_f = (f.float() for f in net(to_network_input(imgs.to(dev))))
    f_r_a, f_c_a, f_f_a = f_r[:n].repeat(3, 1), f_c[:n].repeat(3, 1), f_f[:n]
    pair_rows = rows.T.reshape(-1)  # pairs ordered easy block, moderate block, hard block
    lab = {k: torch.as_tensor(getattr(pools, k)[pair_rows], device=dev) for k in ("theta1", "theta2", "alpha")}
    l_frustum, l_angle = frustum_angle_losses(net.icr(f_r_a, f_r[n:]), 1.0 - lab["theta1"], 1.0 - lab["theta2"],
                                              lab["alpha"])
    l_triplet = hard_triplet_loss(f_r[:n], f_r[n:2 * n], f_r[2 * n:3 * n], f_r[3 * n:])
    anchor_rep = np.tile(anchors, 3)
    partner_flat = partners.T.reshape(-1)
    dt, dq = _relative_targets(train_poses[anchor_rep], train_poses[partner_flat])
    dt_hat, dq_hat = net.pfr(f_c_a, f_c[n:])
    l_pfr = relative_pose_loss(dt_hat, dq_hat, dt.to(dev), dq.to(dev))

    # Algorithm 1: the anchor pose each PFR estimate implies picks the PRP reference.
    with torch.no_grad():
        t_est, q_est = anchor_from_relative_t(t_train[partner_flat].to(dev), q_train[partner_flat].to(dev),
                                              dt_hat.float(), dq_hat.float())
    refs = _prp_references(t_est.cpu().double().numpy(), q_est.cpu().double().numpy(), anchor_rep, t_db, q_db,
                           EXCLUDE_NEIGHBOURS)
    uniq, inverse = np.unique(refs, return_inverse=True)
    ref_imgs = images[torch.as_tensor(train_idx[uniq])]
    if cfg.augment:
        ref_imgs = augment(ref_imgs, gen)
    with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
        f_f_ref = net.encoder.branch("prp", net.encoder.shared(to_network_input(ref_imgs.to(dev)))).float()
    dt2, dq2 = _relative_targets(train_poses[anchor_rep], train_poses[refs])
    dt2_hat, dq2_hat = net.prp(f_f_a.repeat(3, 1), f_f_ref[torch.as_tensor(inverse, device=dev)])
    l_prp = relative_pose_loss(dt2_hat, dq2_hat, dt2.to(dev), dq2.to(dev))
    loss = l_frustum + l_angle + l_triplet + l_pfr + l_prp
    return loss, {"frustum": l_frustum, "angle": l_angle, "triplet": l_triplet, "pfr": l_pfr, "prp": l_prp}


def _export(net, out: Path, cfg: TrainConfig, model_cfg: CamNetConfig, ds, source: BagSource, train_idx: np.ndarray,
            val_idx: np.ndarray, similarity: str, pools: P.PairPools, result: TrainResult, best: dict,
            dev: torch.device) -> None:
    """Database from the training split; consensus thresholds and covariance calibration from validation."""
    from reloc_ros.runtime import camnet_runtime as R
    from reloc_ros.training.evaluate import accuracy_report

    images = torch.from_numpy(np.array(ds.images))  # a writable copy: the cache is a read-only memmap
    net_cpu = copy.deepcopy(net).cpu().eval()
    db = build_database(net_cpu, images[train_idx], ds.poses_n44[train_idx], cfg.input_size, cfg.keyframe_distance)
    val_images, val_poses = images[val_idx], ds.poses_n44[val_idx]
    eager = wrap_camnet(net_cpu, db, cfg.input_size, cfg.retrieval_k)
    fusion = R.fit_fusion_thresholds(eager, val_images, val_poses, FUSION_FLOOR)
    eager = wrap_camnet(net_cpu, db, cfg.input_size, cfg.retrieval_k, fusion)
    seq = R.run_sequence(eager, val_images, ds.stamps_ns[val_idx])
    calibration = R.fit_calibration(seq, val_poses)
    result.val_metrics = accuracy_report(seq.poses_n44, val_poses, epoch=best["epoch"])
    pos = ds.poses_n44[:, :3, 3]
    metadata = {
        "model_kind": "camnet", "model": "camnet", "model_args": model_cfg.to_dict(), "train_config": cfg.to_dict(),
        "input_size": list(cfg.input_size), "preprocessing": cfg.preprocessing,
        "frames": {"map_frame": ds.map_frame, "camera_frame": ds.camera_frame}, "bag_source": asdict(source),
        "training_data": {"source": ds.source, "frames_train": int(len(train_idx)), "frames_val": int(len(val_idx)),
                          "skipped": dict(ds.skipped.counts), "extent_m": (pos.max(0) - pos.min(0)).tolist(),
                          "pairs": {"similarity": similarity, **pools.counts()}},
        "metrics": {"validation": result.val_metrics, "validation_mean_pose_baseline": result.baseline},
        "camnet": {"backbone": cfg.backbone, "feature_dim": eager.feature_dim, "retrieval_k": eager.k,
                   "fusion": {"translation_m": fusion[0], "rotation_deg": math.degrees(fusion[1])},
                   "database": {**db.describe(), "keyframe_distance": cfg.keyframe_distance,
                                "selection": "greedy: each key frame at least keyframe_distance (m + angle/pi) "
                                             "from the others"},
                   "sequence": {"frames": R.SEQUENCE_FRAMES, "max_gap_s": R.SEQUENCE_MAX_GAP_S}},
        "uncertainty": calibration,
    }
    export_camnet(eager, out, metadata, seed=cfg.seed)
