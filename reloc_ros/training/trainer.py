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

"""Train an absolute pose regressor (PoseNet, LRF-PoseNet) from bags and export it.

One loop for one process or many: under ``torchrun`` it uses
torch.distributed (gloo on CPU, nccl on CUDA) with DistributedDataParallel,
each rank taking its share of every epoch's permutation; rank 0 logs,
validates, checkpoints and exports.

Reproducible and resumable: every epoch's shuffling, augmentation and dropout
draw from generators seeded by (seed, epoch), and a checkpoint is written
atomically after every epoch, so ``resume=True`` continues an interrupted run
to the same result it would have reached uninterrupted.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from reloc_ros import __version__
from reloc_ros.data.bag import BagSource, read_bag_dataset
from reloc_ros.data.types import PoseDataset
from reloc_ros.errors import RelocError
from reloc_ros.geometry import make_pose, rotation_error_deg, translation_error
from reloc_ros.io_utils import atomic_path
from reloc_ros.training.data import (PoseNormaliser, augment, pose_targets, split_time_blocks,
                                     to_network_input)
from reloc_ros.training.export import pick_device

log = logging.getLogger(__name__)

# Each model's defaults. For the APRs, head and preprocessing stay overridable
# so their effects can be measured separately (the LRF-PoseNet ablation).
# CamNet (seed 001, section 4.2): ResNet-34, images resized to the input,
# SGD with momentum 0.9, weight decay 1e-4 and the 'poly' schedule from 0.01.
MODELS = {
    "posenet": {"head": "fc", "preprocessing": "crop", "backbone": "resnet18", "lr": 5e-4, "weight_decay": 0.0,
                "optimizer": "adam"},
    "lrf-posenet": {"head": "lstm", "preprocessing": "resize", "backbone": "resnet18", "lr": 5e-4,
                    "weight_decay": 0.0, "optimizer": "adam"},
    "camnet": {"head": "camnet", "preprocessing": "resize", "backbone": "resnet34", "lr": 0.01,
               "weight_decay": 1e-4, "optimizer": "sgd"},
    # PMNet (seed 003, section 4.1): Adam at 1e-4, whole image (its NeRF-P renders the whole view).
    "pmnet": {"head": "fc", "preprocessing": "resize", "backbone": "resnet18", "lr": 1e-4, "weight_decay": 0.0,
              "optimizer": "adam"},
}
OPTIMIZERS = ("adam", "sgd")
"""adam: Adam (beta 0.9, 0.999), constant rate; sgd: momentum 0.9 with the 'poly' schedule (power 0.9)."""
SIMILARITIES = ("auto", "frustum", "orb")
"""CamNet's pair overlap: frustum from depth (eq. 2), ORB similarity (eq. 3), or auto (frustum with depth)."""
LOSSES = ("beta", "learned", "geometric")
CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run's result (checkpoints carry it)."""

    model: str = "posenet"
    backbone: str | None = None  # default: the model's
    head: str | None = None  # default: the model's
    preprocessing: str | None = None  # default: the model's
    input_size: tuple[int, int] = (224, 224)
    loss: str = "beta"  # APRs only
    beta: float | None = None  # default: the loss's own
    epochs: int = 30
    batch_size: int = 32  # CamNet: anchors per batch (each brings 3 partners and up to 3 PRP references)
    lr: float | None = None  # default: the model's (seed 000: Adam 5e-4; seed 001: SGD 0.01)
    weight_decay: float | None = None  # default: the model's
    dropout: float = 0.5  # APRs only
    val_fraction: float = 0.15
    augment: bool = True
    seed: int = 0
    backbone_weights: str | None = None
    min_frames: int = 20
    similarity: str = "auto"  # CamNet only: SIMILARITIES
    keyframe_distance: float = 0.05  # CamNet only: database key frames at least this zeta apart (m + angle/pi)
    retrieval_k: int = 3  # CamNet only: K of section 3.4
    optimizer: str | None = None  # default: the model's (OPTIMIZERS)
    pmnet_losses: str = "pose,image,posemap,rvs"  # PMNet only: terms of eq. 2 (Table 5 ablation)
    rvs_translation: float = 0.2  # PMNet only: random view synthesis, metres per axis (paper, indoors)
    rvs_rotation: float = 10.0  # PMNet only: degrees per axis (paper, indoors)
    nerf_steps: int = 2000  # PMNet only: NeRF-P rendering-branch steps (stage 1)
    nerf_pose_steps: int = 500  # PMNet only: pose-branch steps (stage 2, rendering frozen)
    nerf_resolution: int = 128  # PMNet only: finest grid cells along the scene's longest side
    nerf_rays: int = 4096  # PMNet only: rays per NeRF-P step

    def resolved(self) -> "TrainConfig":
        """Fill the model's defaults in and check every value."""
        if self.model not in MODELS:
            raise ValueError(f"model '{self.model}' is not one of {', '.join(MODELS)}")
        d = MODELS[self.model]
        cfg = replace(self, head=self.head or d["head"], preprocessing=self.preprocessing or d["preprocessing"],
                      backbone=self.backbone or d["backbone"], lr=d["lr"] if self.lr is None else self.lr,
                      weight_decay=d["weight_decay"] if self.weight_decay is None else self.weight_decay,
                      optimizer=self.optimizer or d["optimizer"],
                      input_size=tuple(int(v) for v in self.input_size))
        if (cfg.head == "camnet") != (cfg.model == "camnet"):
            valid = "camnet" if cfg.model == "camnet" else "fc, lstm"
            raise ValueError(f"head '{cfg.head}' does not fit model '{cfg.model}'; valid: {valid}")
        if cfg.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer '{cfg.optimizer}' is not one of {', '.join(OPTIMIZERS)}")
        if cfg.model == "pmnet":
            _check_pmnet(cfg)
        if cfg.optimizer != "adam" and cfg.model != "camnet":
            raise ValueError(f"the APR trainer uses Adam (seed 000); optimizer '{cfg.optimizer}' is for camnet")
        if cfg.similarity not in SIMILARITIES:
            raise ValueError(f"similarity '{cfg.similarity}' is not one of {', '.join(SIMILARITIES)}")
        if not (math.isfinite(cfg.keyframe_distance) and cfg.keyframe_distance >= 0):
            raise ValueError(f"keyframe_distance must be >= 0 (metres + angle/pi), got {cfg.keyframe_distance}")
        if cfg.retrieval_k < 1:
            raise ValueError(f"retrieval_k must be >= 1, got {cfg.retrieval_k}")
        if cfg.weight_decay < 0:
            raise ValueError(f"weight decay must be >= 0, got {cfg.weight_decay}")
        if cfg.loss not in LOSSES:
            raise ValueError(f"loss '{cfg.loss}' is not one of {', '.join(LOSSES)}")
        for name in ("epochs", "batch_size", "min_frames"):
            if getattr(cfg, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
        if not cfg.lr > 0:
            raise ValueError(f"learning rate must be > 0, got {cfg.lr}")
        if cfg.batch_size < 2:
            raise ValueError("batch size must be >= 2 (batch normalisation needs more than one image)")
        return cfg

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown training options: {', '.join(sorted(unknown))}; valid: "
                             f"{', '.join(sorted(known))}")
        d = dict(d)
        if "input_size" in d:
            d["input_size"] = tuple(d["input_size"])
        return cls(**d)


def _check_pmnet(cfg: "TrainConfig") -> None:
    from reloc_ros.nets.nerfp import MAX_GRID_RESOLUTION
    from reloc_ros.nets.pmnet import parse_losses

    if cfg.head != "fc":
        raise ValueError(f"head '{cfg.head}' does not fit model 'pmnet': its pose estimator is PoseNet's fc head")
    losses = parse_losses(cfg.pmnet_losses)
    if "pose" not in losses and "rvs" not in losses:
        raise ValueError(f"pmnet_losses '{cfg.pmnet_losses}' has no supervised term: keep 'pose' or 'rvs' (image "
                         "and posemap alone are the unlabelled alignment of 'reloc-ros align')")
    for name in ("rvs_translation", "rvs_rotation"):
        v = getattr(cfg, name)
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be >= 0, got {v}")
    for name in ("nerf_steps", "nerf_pose_steps", "nerf_rays"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if not 8 <= cfg.nerf_resolution <= MAX_GRID_RESOLUTION:
        raise ValueError(f"nerf_resolution must be in [8, {MAX_GRID_RESOLUTION}] cells, got {cfg.nerf_resolution}")


@dataclass
class TrainResult:
    model_path: Path
    checkpoint_path: Path
    history: list[dict] = field(default_factory=list)
    val_metrics: dict = field(default_factory=dict)
    baseline: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------
# torch.distributed
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device: torch.device) -> _Dist:
    """Join the process group torchrun describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _barrier(d: _Dist) -> None:
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier()


# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------

def checkpoint_path_for(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + ".ckpt")


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict:
    """Read a reloc_ros training checkpoint; RelocError for anything else."""
    if not path.exists():
        raise ValueError(f"no checkpoint to resume at '{path}'")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RelocError(f"'{path}' is not a readable checkpoint (corrupt or foreign): {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != "reloc_ros.checkpoint":
        raise RelocError(f"'{path}' is not a reloc_ros training checkpoint")
    if state.get("format_version", 0) > CHECKPOINT_FORMAT:
        raise RelocError(f"checkpoint '{path}' has format {state['format_version']}, newer than this "
                         f"reloc_ros ({__version__}) reads ({CHECKPOINT_FORMAT}); update reloc_ros")
    return state


def _differences(a: dict, b: dict) -> list[str]:
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------

def _predict(net: torch.nn.Module, images: torch.Tensor, device: torch.device, batch: int = 64) -> tuple:
    """Run the net in eval mode; return normalised positions and raw quaternions (numpy)."""
    net.eval()
    ts, qs = [], []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            t, q = net(to_network_input(images[i:i + batch].to(device)))
            ts.append(t.float().cpu())
            qs.append(q.float().cpu())
    return torch.cat(ts).numpy(), torch.cat(qs).numpy()


def _validate(net, images, poses_gt, normaliser, device) -> dict:
    t, q = _predict(net, images, device)
    pred = make_pose(normaliser.denormalise(t), q)
    te, re = translation_error(pred, poses_gt), rotation_error_deg(pred, poses_gt)
    # Spread of predictions vs ground truth: near 0 means the net collapsed to a constant pose.
    spread = float(pred[:, :3, 3].std(0).sum() / max(poses_gt[:, :3, 3].std(0).sum(), 1e-9))
    return {"median_translation_m": float(np.median(te)), "median_rotation_deg": float(np.median(re)),
            "spread": spread, "pred_n44": pred}


def _load_data(bags: Sequence[str | Path], source: BagSource, cfg: TrainConfig, cache_dir: str | Path | None,
               d: _Dist, progress: bool) -> PoseDataset:
    # Rank 0 decodes (and fills the cache); the others then read the cache.
    if not d.main:
        _barrier(d)
    ds = read_bag_dataset(bags, source, image_size=cfg.input_size, preprocessing=cfg.preprocessing,
                          cache_dir=cache_dir, progress=progress and d.main)
    if d.main:
        _barrier(d)
    if len(ds) < cfg.min_frames:
        raise RelocError(f"only {len(ds)} posed frames in {ds.source}; training needs at least {cfg.min_frames} "
                         f"({ds.skipped})")
    return ds


@dataclass
class _Run:
    out: Path
    ckpt_path: Path
    dev: torch.device
    dist: _Dist
    data_id: dict
    state: dict | None


def start_run(bags: Sequence[str | Path], source: BagSource, cfg: TrainConfig, out: str | Path, resume: bool,
              device: str) -> _Run:
    """Check the target, join torch.distributed, and load the checkpoint to resume (every model's trainer)."""
    out = Path(out)
    if not out.parent.is_dir() or not os.access(out.parent, os.W_OK):
        raise ValueError(f"cannot write the model to '{out}': directory '{out.parent}' is missing or not writable")
    ckpt_path = checkpoint_path_for(out)
    if ckpt_path.exists() and not resume:
        raise ValueError(f"a checkpoint of an earlier run exists at '{ckpt_path}': pass --resume (trainer_node: "
                         "resume:=true) to continue it, or delete it to start over")
    dev = pick_device(device, int(os.environ.get("LOCAL_RANK", "0")))
    d = _init_distributed(dev)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    data_id = {"bags": [str(Path(b).resolve()) for b in bags], "source": asdict(source)}
    state = None
    if resume:  # check before the (slow) data loading that the run really is the same
        state = load_checkpoint(ckpt_path)
        diffs = _differences(state["config"], cfg.to_dict()) + _differences(state["data"], data_id)
        if diffs:
            raise ValueError(f"--resume with a different configuration than checkpoint '{ckpt_path}': "
                             + "; ".join(diffs))
    return _Run(out, ckpt_path, dev, d, data_id, state)


def take_step(opt: torch.optim.Optimizer, loss: torch.Tensor, parts: dict, sums: dict, n: int, hint: str) -> None:
    """Check the loss is finite (else RelocError with ``hint``), step, and add the terms times ``n`` to ``sums``."""
    if not torch.isfinite(loss):
        raise RelocError(f"loss became {loss.item()} {hint}")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    for k, v in {"loss": loss, **parts}.items():
        sums[k] = sums.get(k, 0.0) + float(v.detach()) * n


def train(bags: Sequence[str | Path], source: BagSource, cfg: TrainConfig, out: str | Path,
          resume: bool = False, cache_dir: str | Path | None = None, device: str = "auto",
          progress: bool = True, onnx: bool = False) -> TrainResult:
    """Train on the bags' posed frames and export the best epoch to ``out`` (TorchScript)."""
    from reloc_ros.nets.apr import APRConfig, build_apr
    from reloc_ros.nets.losses import build_loss
    from reloc_ros.training.evaluate import accuracy_report, mean_pose_baseline

    cfg = cfg.resolved()
    if cfg.model == "camnet":
        from reloc_ros.training.camnet_trainer import train_camnet

        return train_camnet(bags, source, cfg, out, resume=resume, cache_dir=cache_dir, device=device,
                            progress=progress, onnx=onnx)
    if cfg.model == "pmnet":
        from reloc_ros.training.pmnet_trainer import train_pmnet

        return train_pmnet(bags, source, cfg, out, resume=resume, cache_dir=cache_dir, device=device,
                           progress=progress, onnx=onnx)
    run = start_run(bags, source, cfg, out, resume, device)
    out, ckpt_path, dev, d, data_id, state = run.out, run.ckpt_path, run.dev, run.dist, run.data_id, run.state

    ds = _load_data(bags, source, cfg, cache_dir, d, progress)
    train_idx, val_idx = split_time_blocks(len(ds), cfg.val_fraction)
    normaliser = PoseNormaliser.fit(ds.poses_n44[train_idx])
    t_all, q_all = pose_targets(ds.poses_n44, normaliser)
    images = torch.from_numpy(np.ascontiguousarray(ds.images))  # uint8 (N, H, W, 3), resident
    val_images, val_poses = images[val_idx], ds.poses_n44[val_idx]
    baseline = mean_pose_baseline(ds.poses_n44[train_idx], val_poses)

    torch.manual_seed(cfg.seed)
    model_cfg = APRConfig(backbone=cfg.backbone, head=cfg.head, dropout=cfg.dropout)
    net = build_apr(model_cfg, backbone_weights=cfg.backbone_weights).to(dev)
    # The geometric loss works in the paper's metres (its beta = 500 and look-ahead are metric).
    loss_fn = build_loss(cfg.loss, cfg.beta,
                         **({"position_scale": normaliser.scale} if cfg.loss == "geometric" else {})).to(dev)
    # Learned loss weights (sx, sq) get no weight decay: it would pull them to 0 and bias the weighting.
    opt = torch.optim.Adam(
        [{"params": [p for p in net.parameters() if p.requires_grad], "weight_decay": cfg.weight_decay},
         {"params": list(loss_fn.parameters()), "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.999))

    start_epoch, history, best = 1, [], {"median_translation_m": math.inf}
    best_state = None
    if state is not None:
        net.load_state_dict(state["model"])
        loss_fn.load_state_dict(state["loss"])
        opt.load_state_dict(state["optimizer"])
        start_epoch, history, best = state["epoch"] + 1, state["history"], state["best"]
        best_state = state["best_model"]
        if d.main:
            log.info("resuming %s after epoch %d of %d", ckpt_path, state["epoch"], cfg.epochs)

    ddp_net = net
    if d.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ddp_net = DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None)
    amp = dev.type == "cuda"
    n_train = len(train_idx)
    per_rank = n_train // d.world
    if d.main:
        log.info("training %s (%s, head %s, %s %dx%d, loss %s) on %d frames, validating on %d; %s, world size %d",
                 cfg.model, cfg.backbone, cfg.head, cfg.preprocessing, *cfg.input_size, cfg.loss, n_train,
                 len(val_idx), dev, d.world)
        log.info("validation mean-pose baseline: %.3f m, %.2f deg", baseline["median_translation_m"],
                 baseline["median_rotation_deg"])
    from tqdm import tqdm

    epoch = start_epoch - 1
    try:
        for epoch in range(start_epoch, cfg.epochs + 1):
            t0 = time.perf_counter()
            torch.manual_seed(cfg.seed * 100_003 + epoch)  # dropout
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
            perm = torch.randperm(n_train, generator=gen)[d.rank::d.world][:per_rank]
            batches = [perm[i:i + cfg.batch_size] for i in range(0, per_rank, cfg.batch_size)]
            batches = [b for b in batches if len(b) >= 2]  # batch norm needs two images
            ddp_net.train()
            sums: dict[str, float] = {}
            bar = tqdm(batches, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", leave=False,
                       disable=not (progress and d.main))
            for b in bar:
                idx = torch.as_tensor(train_idx)[b]
                imgs = images[idx]
                if cfg.augment:
                    imgs = augment(imgs, gen)
                x = to_network_input(imgs.to(dev))
                with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
                    t_pred, q_pred = ddp_net(x)
                loss, parts = loss_fn(t_pred.float(), q_pred.float(), t_all[idx].to(dev), q_all[idx].to(dev))
                take_step(opt, loss, parts, sums, len(b), f"at epoch {epoch}; lower the learning rate (now {cfg.lr})")
                bar.set_postfix(loss=f"{loss.item():.4f}")
            n_seen = sum(len(b) for b in batches)
            row = {"epoch": epoch, **{k: v / max(n_seen, 1) for k, v in sums.items()}}
            val = _validate(net, val_images, val_poses, normaliser, dev)
            row.update({k: v for k, v in val.items() if k != "pred_n44"}, seconds=time.perf_counter() - t0)
            history.append(row)
            if val["median_translation_m"] < best["median_translation_m"]:
                best = {k: v for k, v in row.items()}
                best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
            if d.main:
                log.info("epoch %d/%d loss %.4f val %.3f m %.2f deg spread %.2f (%.1f s)", epoch, cfg.epochs,
                         row["loss"], row["median_translation_m"], row["median_rotation_deg"], row["spread"],
                         row["seconds"])
                if val["spread"] < 0.1:
                    log.warning("predictions barely move (spread %.2f): the net may have collapsed to a constant "
                                "pose; try a smaller beta or learning rate", val["spread"])
                _save_checkpoint(ckpt_path, {
                    "format": "reloc_ros.checkpoint", "format_version": CHECKPOINT_FORMAT,
                    "reloc_ros_version": __version__, "config": cfg.to_dict(), "data": data_id,
                    "world_size": d.world,
                    "model_args": model_cfg.to_dict(), "normaliser": asdict(normaliser), "epoch": epoch,
                    "model": net.state_dict(), "loss": loss_fn.state_dict(), "optimizer": opt.state_dict(),
                    "history": history, "best": best, "best_model": best_state})
    except KeyboardInterrupt:
        if d.main:
            log.warning("interrupted during epoch %d; the checkpoint after epoch %d is at %s: continue with "
                        "--resume", epoch, epoch - 1, ckpt_path)
        raise

    result = TrainResult(out, ckpt_path, history, baseline=baseline)
    if d.main:
        net.load_state_dict(best_state)
        val = _validate(net, val_images, val_poses, normaliser, dev)
        result.val_metrics = accuracy_report(val["pred_n44"], val_poses, epoch=best["epoch"], spread=val["spread"])
        _export(net, out, cfg, model_cfg, normaliser, ds, source, train_idx, val_idx, result, onnx,
                val_images, val_poses)
        log.info("best epoch %d: val median %.3f m, %.2f deg (mean-pose baseline %.3f m, %.2f deg); wrote %s",
                 best["epoch"], result.val_metrics["median_translation_m"], result.val_metrics["median_rotation_deg"],
                 baseline["median_translation_m"], baseline["median_rotation_deg"], out)
    _barrier(d)
    return result


def _export(net, out: Path, cfg: TrainConfig, model_cfg, normaliser: PoseNormaliser, ds: PoseDataset,
            source: BagSource, train_idx: np.ndarray, val_idx: np.ndarray, result: TrainResult,
            onnx: bool, val_images: torch.Tensor, val_poses: np.ndarray, extra: dict | None = None) -> None:
    from reloc_ros.training.export import export_onnx, export_torchscript

    pos = ds.poses_n44[:, :3, 3]
    metadata = {
        "model_kind": "apr", "model": cfg.model, "model_args": model_cfg.to_dict(),
        "train_config": cfg.to_dict(),
        "input_size": list(cfg.input_size), "preprocessing": cfg.preprocessing,
        "frames": {"map_frame": ds.map_frame, "camera_frame": ds.camera_frame},
        "bag_source": asdict(source),
        "training_data": {"source": ds.source, "frames_train": int(len(train_idx)), "frames_val": int(len(val_idx)),
                          "skipped": dict(ds.skipped.counts), "extent_m": (pos.max(0) - pos.min(0)).tolist()},
        "metrics": {"validation": result.val_metrics, "validation_mean_pose_baseline": result.baseline},
        **(extra or {}),
    }
    net_cpu = copy.deepcopy(net).cpu().eval()
    metadata["uncertainty"] = _calibrate(net_cpu, normaliser, cfg, val_images, val_poses)
    export_torchscript(net_cpu, out, metadata, pos_mean=normaliser.mean, pos_scale=normaliser.scale,
                       input_size=cfg.input_size)
    if onnx:
        export_onnx(out, out.with_suffix(".onnx"))


def _calibrate(net_cpu, normaliser: PoseNormaliser, cfg: TrainConfig, val_images: torch.Tensor,
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
