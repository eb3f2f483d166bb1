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

"""Absolute pose regression (PoseNet, LRF-PoseNet, Ward et al.'s geometric loss) as a method of the training loop.

The net (:mod:`reloc_ros.nets.apr`) regresses the camera pose from one image:
PoseNet's fc head on a centre crop, or LRF-PoseNet's (Qin et al.) whole image
and directional LSTMs; trained with PoseNet's beta loss, the learned
weighting, or Ward et al.'s geometric loss (:mod:`reloc_ros.nets.losses`) and
Adam. Positions are normalised by the training split's mean and scale
(:class:`~reloc_ros.training.data.PoseNormaliser`), undone inside the
exported model. Validation is on held-out time blocks; the covariance is
MC dropout calibrated on them (:func:`calibrate_mc_dropout`).
"""

from __future__ import annotations

import copy
from dataclasses import asdict
import logging
from pathlib import Path

import numpy as np
import torch

from reloc_ros.data.bag import BagSource
from reloc_ros.data.types import PoseDataset
from reloc_ros.geometry import make_pose, rotation_error_deg, translation_error
from reloc_ros.training.config import TrainConfig, TrainResult
from reloc_ros.training.data import PoseNormaliser, augment, pose_targets, to_network_input
from reloc_ros.training.loop import (Run, assess_model, hold_out, mean_terms, progress_bar, rank_batches, take_step,
                                     training_data_summary, wrap_ddp)

log = logging.getLogger(__name__)


def predict_normalised(net: torch.nn.Module, images: torch.Tensor, device: torch.device,
                       batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Run the net in eval mode on uint8 images; return normalised positions and raw quaternions (numpy)."""
    net.eval()
    ts, qs = [], []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            t, q = net(to_network_input(images[i:i + batch].to(device)))
            ts.append(t.float().cpu())
            qs.append(q.float().cpu())
    return torch.cat(ts).numpy(), torch.cat(qs).numpy()


def validate_poses(net, images, poses_gt, normaliser, device) -> dict:
    """Median errors of an APR net on validation images, the prediction spread and the predicted poses."""
    t, q = predict_normalised(net, images, device)
    pred = make_pose(normaliser.denormalise(t), q)
    te, re = translation_error(pred, poses_gt), rotation_error_deg(pred, poses_gt)
    # Spread of predictions vs ground truth: near 0 means the net collapsed to a constant pose.
    spread = float(pred[:, :3, 3].std(0).sum() / max(poses_gt[:, :3, 3].std(0).sum(), 1e-9))
    return {"median_translation_m": float(np.median(te)), "median_rotation_deg": float(np.median(re)),
            "spread": spread, "pred_n44": pred}


class APRMethod:
    """PoseNet / LRF-PoseNet with the chosen loss, trained with Adam on the posed frames (see the module doc)."""

    @staticmethod
    def check_options(cfg: TrainConfig, onnx: bool) -> None:
        """Nothing beyond :meth:`TrainConfig.resolved`: every APR option is checked there."""

    def __init__(self, run: Run, ds: PoseDataset, cfg: TrainConfig, source: BagSource, onnx: bool = False,
                 **_: object) -> None:
        from reloc_ros.evaluation import mean_pose_baseline
        from reloc_ros.nets.apr import APRConfig, build_apr
        from reloc_ros.nets.losses import build_loss

        self.run, self.ds, self.cfg, self.source, self.onnx = run, ds, cfg, source, onnx
        dev = run.dev
        self.train_idx, self.val_idx = hold_out(ds, cfg, run.dist.main)
        self.normaliser = PoseNormaliser.fit(ds.poses_n44[self.train_idx])
        self.t_all, self.q_all = pose_targets(ds.poses_n44, self.normaliser)
        self.images = torch.from_numpy(np.ascontiguousarray(ds.images))  # uint8 (N, H, W, 3), resident
        self.val_images, self.val_poses = self.images[self.val_idx], ds.poses_n44[self.val_idx]
        self.baseline = mean_pose_baseline(ds.poses_n44[self.train_idx], self.val_poses)

        torch.manual_seed(cfg.seed)
        self.model_cfg = APRConfig(backbone=cfg.backbone, head=cfg.head, dropout=cfg.dropout)
        self.model_args = self.model_cfg.to_dict()
        self.net = build_apr(self.model_cfg, backbone_weights=cfg.backbone_weights).to(dev)
        # The geometric loss works in the paper's metres (its beta = 500 and look-ahead are metric).
        self.loss_fn = build_loss(cfg.loss, cfg.beta, **({"position_scale": self.normaliser.scale}
                                                         if cfg.loss == "geometric" else {})).to(dev)
        # Learned loss weights (sx, sq) get no weight decay: it would pull them to 0 and bias the weighting.
        self.opt = torch.optim.Adam(
            [{"params": [p for p in self.net.parameters() if p.requires_grad], "weight_decay": cfg.weight_decay},
             {"params": list(self.loss_fn.parameters()), "weight_decay": 0.0}],
            lr=cfg.lr, betas=(0.9, 0.999))
        self.ddp_net = wrap_ddp(self.net, run)
        if run.dist.main:
            log.info("training %s (%s, head %s, %s %dx%d, loss %s) on %d frames, validating on %d; %s, world "
                     "size %d", cfg.model, cfg.backbone, cfg.head, cfg.preprocessing, *cfg.input_size, cfg.loss,
                     len(self.train_idx), len(self.val_idx), dev, run.dist.world)
            log.info("validation mean-pose baseline: %.3f m, %.2f deg", self.baseline["median_translation_m"],
                     self.baseline["median_rotation_deg"])

    def train_epoch(self, epoch: int, gen: torch.Generator, show_progress: bool) -> dict[str, float]:
        """One pass over this rank's share of the training frames."""
        cfg, dev = self.cfg, self.run.dev
        batches = rank_batches(len(self.train_idx), cfg.batch_size, gen, self.run.dist)
        self.ddp_net.train()
        sums: dict[str, float] = {}
        amp = dev.type == "cuda"
        bar = progress_bar(batches, f"epoch {epoch}/{cfg.epochs}", show_progress)
        for b in bar:
            idx = torch.as_tensor(self.train_idx)[b]
            imgs = self.images[idx]
            if cfg.augment:
                imgs = augment(imgs, gen)
            x = to_network_input(imgs.to(dev))
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
                t_pred, q_pred = self.ddp_net(x)
            loss, parts = self.loss_fn(t_pred.float(), q_pred.float(), self.t_all[idx].to(dev),
                                       self.q_all[idx].to(dev))
            take_step(self.opt, loss, parts, sums, len(b), f"at epoch {epoch}; lower the learning rate (now {cfg.lr})")
            bar.set_postfix(loss=f"{loss.item():.4f}")
        return mean_terms(sums, batches)

    def validate(self) -> dict:
        """Median validation errors and the prediction spread (warns when the net collapsed to one pose)."""
        val = validate_poses(self.net, self.val_images, self.val_poses, self.normaliser, self.run.dev)
        if val["spread"] < 0.1:
            log.warning("predictions barely move (spread %.2f): the net may have collapsed to a constant "
                        "pose; try a smaller beta or learning rate", val["spread"])
        return {k: v for k, v in val.items() if k != "pred_n44"}

    def describe_epoch(self, row: dict) -> str:
        """Return the prediction spread."""
        return f"spread {row['spread']:.2f}"

    def state(self) -> dict:
        """Return the optimiser, loss parameters and position normalisation."""
        return {"normaliser": asdict(self.normaliser), "loss": self.loss_fn.state_dict(),
                "optimizer": self.opt.state_dict()}

    def restore(self, state: dict) -> None:
        """Load the optimiser and loss parameters of a checkpoint."""
        self.loss_fn.load_state_dict(state["loss"])
        self.opt.load_state_dict(state["optimizer"])

    def finish(self, best: dict, result: TrainResult) -> None:
        """Validate the best epoch again (for its predictions) and export it."""
        from reloc_ros.evaluation import accuracy_report

        val = validate_poses(self.net, self.val_images, self.val_poses, self.normaliser, self.run.dev)
        result.val_metrics = accuracy_report(val["pred_n44"], self.val_poses, epoch=best["epoch"],
                                             spread=val["spread"])
        export_apr(self.net, self.run.out, self.cfg, self.model_cfg, self.normaliser, self.ds, self.source,
                   self.train_idx, self.val_idx, result, self.onnx, self.val_images, self.val_poses)
        log.info("best epoch %d: val median %.3f m, %.2f deg (mean-pose baseline %.3f m, %.2f deg); wrote %s",
                 best["epoch"], result.val_metrics["median_translation_m"], result.val_metrics["median_rotation_deg"],
                 self.baseline["median_translation_m"], self.baseline["median_rotation_deg"], self.run.out)


def export_apr(net, out: Path, cfg: TrainConfig, model_cfg, normaliser: PoseNormaliser, ds: PoseDataset,
               source: BagSource, train_idx: np.ndarray, val_idx: np.ndarray, result: TrainResult,
               onnx: bool, val_images: torch.Tensor, val_poses: np.ndarray, extra: dict | None = None) -> None:
    """Export the APR ``net`` (and its ONNX twin with ``onnx``) with its metadata and covariance calibration."""
    from reloc_ros.training.export import export_torchscript
    from reloc_ros.training.onnx_export import export_onnx

    quality = assess_model(result, cfg, ds.images[train_idx], ds.poses_n44[train_idx], val_images, val_poses)
    metadata = {
        "model_kind": "apr", "model": cfg.model, "model_args": model_cfg.to_dict(),
        "train_config": cfg.to_dict(),
        "input_size": list(cfg.input_size), "preprocessing": cfg.preprocessing,
        "frames": {"map_frame": ds.map_frame, "camera_frame": ds.camera_frame},
        "bag_source": asdict(source),
        "training_data": training_data_summary(ds, train_idx, val_idx, cfg),
        "metrics": {"validation": result.val_metrics, "validation_mean_pose_baseline": result.baseline},
        "quality": quality,
        **(extra or {}),
    }
    net_cpu = copy.deepcopy(net).cpu().eval()
    metadata["uncertainty"] = calibrate_mc_dropout(net_cpu, normaliser, cfg, val_images, val_poses)
    export_torchscript(net_cpu, out, metadata, pos_mean=normaliser.mean, pos_scale=normaliser.scale,
                       input_size=cfg.input_size)
    if onnx:
        export_onnx(out, out.with_suffix(".onnx"))


def calibrate_mc_dropout(net_cpu, normaliser: PoseNormaliser, cfg: TrainConfig, val_images: torch.Tensor,
                         val_poses: np.ndarray) -> dict:
    """Fit the MC-dropout covariance calibration on the validation split (metadata ``uncertainty``)."""
    from reloc_ros.runtime import uncertainty as U
    from reloc_ros.training.export import ExportedMCPoseModel, mc_predict, wrap_for_export

    wrapper = wrap_for_export(net_cpu, normaliser.mean, normaliser.scale, cfg.input_size)
    if not isinstance(wrapper, ExportedMCPoseModel):
        log.warning("model has no dropout in front of its regressors: no MC-dropout uncertainty; the runtime "
                    "will publish the validation error as a constant covariance")
        return {"method": "validation_error"}
    meta = {"input_size": list(cfg.input_size), "mc_dropout": {"dropout": wrapper.dropout,
                                                               "feature_dim": wrapper.feature_dim}}
    t, q, ts, qs = [], [], [], []
    for i in range(0, len(val_images), 64):
        out = mc_predict(wrapper, meta, val_images[i:i + 64], U.DEFAULT_SAMPLES, seed=cfg.seed + i)
        for acc, v in zip((t, q, ts, qs), out):
            acc.append(v)
    t, q, ts, qs = (np.concatenate(a) for a in (t, q, ts, qs))
    raw = U.sample_covariance(t, q, ts, qs)
    if len(val_poses) < U.MIN_CALIBRATION_FRAMES:
        log.warning("only %d validation frames: too few to calibrate the covariance (needs %d); the model "
                    "publishes the raw MC-dropout spread, which is usually over-confident: train on more frames",
                    len(val_poses), U.MIN_CALIBRATION_FRAMES)
        return {"method": "mc_dropout", "samples": U.DEFAULT_SAMPLES}
    cal = U.fit_calibration(U.error_vectors(make_pose(t, q), val_poses), raw)
    v = cal.validation
    log.info("covariance calibrated on %d validation frames: within 1/2 sigma translation %.0f%%/%.0f%%, "
             "rotation %.0f%%/%.0f%% (Gaussian: 68%%/95%%)", cal.frames,
             100 * v["translation"]["within_1sigma"], 100 * v["translation"]["within_2sigma"],
             100 * v["rotation"]["within_1sigma"], 100 * v["rotation"]["within_2sigma"])
    return {"method": "mc_dropout", "samples": U.DEFAULT_SAMPLES, "calibration": cal.to_dict()}
