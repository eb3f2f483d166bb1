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

"""Train CamNet (Ding et al., ICCV 2019) from bags, through ``reloc-ros train --model camnet``, and export it.

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
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from reloc_ros.data.bag import BagSource
from reloc_ros.data.types import PoseDataset
from reloc_ros.errors import RelocError
from reloc_ros.geometry import make_pose, matrix_to_quat, rotation_error_deg, translation_error
from reloc_ros.nets.camnet import (CamNetConfig, anchor_from_relative_t, build_camnet, frustum_angle_losses,
                                   hard_triplet_loss, relative_pose_loss)
from reloc_ros.training import camnet_pairs as P
from reloc_ros.training.camnet_export import (FUSION_FLOOR, ExportedCamNet, build_database, export_camnet,
                                              wrap_camnet)
from reloc_ros.training.config import TrainConfig, TrainResult
from reloc_ros.training.data import augment, to_network_input
from reloc_ros.training.loop import (Run, assess_model, hold_out, mean_terms, progress_bar, rank_batches, take_step,
                                     training_data_summary)

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


class CamNetMethod:
    """CamNet's three branches trained with eq. 1 on labelled pairs (see the module doc)."""

    @staticmethod
    def check_options(cfg: TrainConfig, onnx: bool) -> None:
        """Refuse the options CamNet does not have, before any work."""
        if onnx:
            raise ValueError("--onnx: CamNet exports to TorchScript only (its retrieval and fusion are not "
                             "exported to ONNX); drop --onnx")
        if cfg.loss != "beta" or cfg.beta is not None:
            raise ValueError(f"--loss/--beta are APR options; CamNet trains with its own losses (eq. 1), got loss "
                             f"'{cfg.loss}', beta {cfg.beta}")

    def __init__(self, run: Run, ds: PoseDataset, cfg: TrainConfig, source: BagSource, progress: bool = True,
                 **_: object) -> None:
        from reloc_ros.evaluation import mean_pose_baseline

        self.run, self.ds, self.cfg, self.source = run, ds, cfg, source
        d = run.dist
        similarity = cfg.similarity
        if similarity == "auto":
            similarity = "frustum" if ds.depths is not None else "orb"
        if similarity == "frustum" and (ds.depths is None or ds.intrinsics is None):
            raise ValueError("similarity 'frustum' needs an aligned depth topic (--depth-topic) and CameraInfo; "
                             "without depth use --similarity orb (or auto)")
        self.similarity = similarity
        self.train_idx, self.val_idx = hold_out(ds, cfg, d.main)
        poses = ds.poses_n44
        self.images = torch.from_numpy(np.array(ds.images))  # a writable copy: the cache is a read-only memmap
        self.train_poses = poses[self.train_idx]
        self.baseline = mean_pose_baseline(self.train_poses, poses[self.val_idx])

        self.pools = P.build_pair_pools(
            self.train_poses, ds.depths[self.train_idx] if similarity == "frustum" else None, ds.intrinsics,
            ds.images[self.train_idx] if similarity == "orb" else None,
            max_candidates=512 if similarity == "frustum" else 48, seed=cfg.seed, progress=progress and d.main)
        self.eligible = self.pools.eligible()
        if d.main:
            log.info("CamNet pairs (%s): %s; %d of %d anchors have all three categories (%d of them by ranked "
                     "difficulty: the hardest available partners)", similarity, self.pools.counts(),
                     len(self.eligible), len(self.train_idx), self.pools.ranked_anchors())
        if len(self.eligible) < 2:
            raise RelocError(f"only {len(self.eligible)} training frames have easy, moderate and hard partners "
                             f"({self.pools.counts()}): the route needs more varied views (or more frames) for "
                             "CamNet's triplet loss")

        torch.manual_seed(cfg.seed)
        self.model_cfg = CamNetConfig(backbone=cfg.backbone)
        self.model_args = self.model_cfg.to_dict()
        self.net = build_camnet(self.model_cfg, cfg.backbone_weights).to(run.dev)
        if cfg.optimizer == "sgd":
            self.opt = torch.optim.SGD(self.net.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
        else:
            self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, betas=(0.9, 0.999),
                                        weight_decay=cfg.weight_decay)
        self.t_db_np, self.q_db_np = self.train_poses[:, :3, 3], matrix_to_quat(self.train_poses[:, :3, :3])
        self.t_train, self.q_train = _pose_tq(self.train_poses)
        self.steps_per_epoch = max(1, math.ceil(len(self.eligible) // d.world / cfg.batch_size))
        if d.main:
            log.info("training camnet (%s, %dx%d) on %d frames (%d anchors), validating on %d; %s, world size %d",
                     cfg.backbone, *cfg.input_size, len(self.train_idx), len(self.eligible), len(self.val_idx),
                     run.dev, d.world)

    def train_epoch(self, epoch: int, gen: torch.Generator, show_progress: bool) -> dict[str, float]:
        """One pass over this rank's share of the anchors, with the 'poly' schedule under SGD."""
        cfg, dev, d = self.cfg, self.run.dev, self.run.dist
        rng = np.random.default_rng(cfg.seed * 1_000_003 + epoch)
        batches = [self.eligible[b.numpy()] for b in rank_batches(len(self.eligible), cfg.batch_size, gen, d)]
        total_steps = self.steps_per_epoch * cfg.epochs
        self.net.train()
        sums: dict[str, float] = {}
        bar = progress_bar(batches, f"epoch {epoch}/{cfg.epochs}", show_progress)
        for k, anchors in enumerate(bar):
            if cfg.optimizer == "sgd":
                step = (epoch - 1) * self.steps_per_epoch + k
                for g in self.opt.param_groups:
                    g["lr"] = _poly_lr(cfg.lr, step, total_steps)
            loss, parts = _step(self.net, anchors, self.pools, rng, gen, self.images, self.train_idx,
                                self.train_poses, self.t_train, self.q_train, self.t_db_np, self.q_db_np, cfg, dev,
                                dev.type == "cuda")
            take_step(self.opt, loss, parts, sums, len(anchors),
                      f"at epoch {epoch}; lower the learning rate (now {cfg.lr})",
                      before_step=lambda: _average_gradients(self.net, d.world))
            bar.set_postfix(loss=f"{loss.item():.3f}")
        return mean_terms(sums, batches)

    def validate(self) -> dict:
        """Section 3.4 single-image inference on the validation frames, with a database of the training split."""
        cfg = self.cfg
        db = build_database(self.net, self.images[self.train_idx], self.train_poses, cfg.input_size,
                            cfg.keyframe_distance, self.run.dev)
        val = _evaluate(wrap_camnet(self.net, db, cfg.input_size, cfg.retrieval_k), self.images[self.val_idx],
                        self.ds.poses_n44[self.val_idx])
        return {k: v for k, v in val.items() if k != "pred_n44"}

    def describe_epoch(self, row: dict) -> str:
        """Return the five loss terms of eq. 1."""
        return "(" + " ".join(f"{k} {row[k]:.3f}" for k in ("frustum", "angle", "triplet", "pfr", "prp")) + ")"

    def state(self) -> dict:
        """Return the optimiser's state."""
        return {"optimizer": self.opt.state_dict()}

    def restore(self, state: dict) -> None:
        """Load the optimiser of a checkpoint."""
        self.opt.load_state_dict(state["optimizer"])

    def finish(self, best: dict, result: TrainResult) -> None:
        """Export the best epoch with its database, fusion thresholds and calibration."""
        _export(self.net, self.run.out, self.cfg, self.model_cfg, self.ds, self.source, self.train_idx,
                self.val_idx, self.similarity, self.pools, result, best, self.run.dev)
        log.info("best epoch %d: val median %.3f m, %.2f deg with sequence hypotheses (mean-pose baseline %.3f m, "
                 "%.2f deg); wrote %s", best["epoch"], result.val_metrics["median_translation_m"],
                 result.val_metrics["median_rotation_deg"], self.baseline["median_translation_m"],
                 self.baseline["median_rotation_deg"], self.run.out)


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
    from reloc_ros.evaluation import accuracy_report

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
    quality = assess_model(result, cfg, images[train_idx], ds.poses_n44[train_idx], val_images, val_poses)
    metadata = {
        "model_kind": "camnet", "model": "camnet", "model_args": model_cfg.to_dict(), "train_config": cfg.to_dict(),
        "input_size": list(cfg.input_size), "preprocessing": cfg.preprocessing,
        "frames": {"map_frame": ds.map_frame, "camera_frame": ds.camera_frame}, "bag_source": asdict(source),
        "training_data": {**training_data_summary(ds, train_idx, val_idx, cfg),
                          "pairs": {"similarity": similarity, **pools.counts(),
                                    "ranked_anchors": pools.ranked_anchors()}},
        "metrics": {"validation": result.val_metrics, "validation_mean_pose_baseline": result.baseline},
        "quality": quality,
        "camnet": {"backbone": cfg.backbone, "feature_dim": eager.feature_dim, "retrieval_k": eager.k,
                   "fusion": {"translation_m": fusion[0], "rotation_deg": math.degrees(fusion[1])},
                   "database": {**db.describe(), "keyframe_distance": cfg.keyframe_distance,
                                "selection": "greedy: each key frame at least keyframe_distance (m + angle/pi) "
                                             "from the others"},
                   "sequence": {"frames": R.SEQUENCE_FRAMES, "max_gap_s": R.SEQUENCE_MAX_GAP_S}},
        "uncertainty": calibration,
    }
    export_camnet(eager, out, metadata, seed=cfg.seed)
