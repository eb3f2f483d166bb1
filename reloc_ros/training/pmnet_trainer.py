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

"""Train PMNet (seed 003) from a mapping bag, and align it on unlabelled images (PMNet_ud).

``reloc-ros train --model pmnet`` runs the paper's multi-stage schedule
(section 4.1), each stage with its own progress bar:

1. NeRF-P stage 1: density and colour from the training frames' posed
   images (and depth when the bag has a depth topic) -
   :func:`reloc_ros.nets.nerfp.fit_nerfp`. Its PSNR on the *validation*
   frames (mapping frames it never saw) is checked against a constant
   mean-colour image: a mapping bag too small or sparse for a NeRF stops the
   run here, with the PSNR it reached.
2. NeRF-P stage 2: the pose branch and decoder, rendering frozen.
3. Renders: the view at every training pose (L_image's positive) and its
   PoseMap (L_posemap's target), and one random-view-synthesis view per
   training frame (L_rvs), rendered once.
4. APRNet epochs with eq. 2, ``L_pose + L_image + L_posemap + L_rvs``, each
   term switchable (``pmnet_losses``) for the Table 5 ablation; validation,
   atomic checkpoints and ``--resume`` as the other APRs.

Deviation: the paper synthesises RVS views online in every batch; on a CPU
one full render per image per step costs more than the network step, so a
pool of one perturbed view per training frame is rendered once (re-drawn
with a new seed would be the online variant). The NeRF-P is fitted to the
images at the network's input size.

The export is the pose estimator alone (PoseNet's architecture: MC-dropout
covariance, ONNX, replay and the node all unchanged). Beside it,
``OUT.pmnet`` keeps what alignment needs (NeRF-P, the APRNet with its
fusion layers, the normalisation and camera) and two diagnostics:
``OUT_renders.png`` (real vs rendered validation views, PSNR per view) and
``OUT_posemap.png`` (PCA of the PoseMaps, the paper's Fig. 5).

``reloc-ros align MODEL --unlabelled BAG`` is PMNet_ud (section 3.3, eq. 5):
it reads only the images of BAG (no TF, no pose topic), predicts each pose,
renders the view and PoseMap there, and minimises ``L_image + L_posemap``
between the real image and the render (and their predicted poses). The
original model is never touched: the aligned one is written beside it, and
the report says how far the predictions moved and how well renders at the
predicted poses match the images before and after (a bag of another scene
shows up as a low match, and is warned about).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from reloc_ros import __version__
from reloc_ros.data.bag import BagSource
from reloc_ros.data.types import Intrinsics
from reloc_ros.errors import RelocError
from reloc_ros.geometry import make_pose, rotation_error_deg, translation_error
from reloc_ros.io_utils import atomic_path
from reloc_ros.nets import pmnet as P
from reloc_ros.nets.nerfp import NerfP, NerfPConfig, fit_nerfp, is_oom, psnr_from_mse
from reloc_ros.training.data import (PoseNormaliser, augment, normalise_input, split_time_blocks,
                                     to_network_input)
from reloc_ros.training.trainer import (CHECKPOINT_FORMAT, TrainConfig, TrainResult, _barrier, _export,
                                        _load_data, _save_checkpoint, _validate, start_run, take_step)

log = logging.getLogger(__name__)

MIN_PSNR_GAIN_DB = 1.0
"""NeRF-P must beat a constant mean-colour image by this much on held-out mapping frames."""
SIDECAR_FORMAT = "reloc_ros.pmnet"
RENDER_BATCH = 4


def sidecar_path_for(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + ".pmnet")


def _oom_hint(cfg: TrainConfig) -> str:
    return (f"lower --nerf-rays (now {cfg.nerf_rays}), --nerf-resolution (now {cfg.nerf_resolution}), "
            f"--batch-size (now {cfg.batch_size}) or --input-size (now {cfg.input_size[0]}x{cfg.input_size[1]})")


# ---------------------------------------------------------------------------
# NeRF-P (stages 1 and 2)
# ---------------------------------------------------------------------------

NERF_FIELDS = ("input_size", "preprocessing", "val_fraction", "seed", "nerf_steps", "nerf_pose_steps",
               "nerf_resolution", "nerf_rays")
"""The training options a NeRF-P depends on: runs that share them (and the data) share the NeRF-P."""


def _nerf_path(cfg: TrainConfig, run, cache_dir: str | Path | None) -> tuple[Path, dict]:
    """Return where the NeRF-P is kept (the cache, shared by runs of other APRNet options; or by the checkpoint)."""
    key = {"nerf_options": {k: v for k, v in cfg.to_dict().items() if k in NERF_FIELDS}, "data": run.data_id,
           "format": 1}
    if cache_dir is None:
        return run.ckpt_path.with_name(run.ckpt_path.name + ".nerfp"), key
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"nerfp-{digest}.pt", key


def _fit_or_load_nerf(ds, train_idx: np.ndarray, val_idx: np.ndarray, cfg: TrainConfig, run,
                      cache_dir: str | Path | None, progress: bool) -> tuple[NerfP, dict]:
    """Fit NeRF-P on the training frames (rank 0), or reload the one fitted earlier for the same data and options."""
    path, key = _nerf_path(cfg, run, cache_dir)
    saved = torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None
    if saved is not None and saved["key"] == key:
        if run.dist.main:
            log.info("reusing the NeRF-P fitted earlier for this data and these options (%s)", path)
    elif run.dist.main:
        images, poses = ds.images, ds.poses_n44
        idx = np.concatenate([train_idx, val_idx])  # NeRF-P sees only the training frames; the rest are held out
        depths = None if ds.depths is None else ds.depths[idx]
        if depths is not None:
            log.info("NeRF-P is also supervised by the bag's depth")
        try:
            nerf, report = fit_nerfp(images[idx], poses[idx], ds.intrinsics, depths,
                                     NerfPConfig(max_resolution=cfg.nerf_resolution), steps_rgb=cfg.nerf_steps,
                                     steps_pose=cfg.nerf_pose_steps, batch_rays=cfg.nerf_rays, seed=cfg.seed,
                                     device=run.dev, progress=progress,
                                     holdout=range(len(train_idx), len(idx)))
        except RelocError as e:
            if "memory" in str(e):
                raise RelocError(f"{e}; or {_oom_hint(cfg)}") from e
            raise
        report = {k: v for k, v in report.items() if k not in ("stage_rgb", "stage_pose")} | {
            stage: {k: v for k, v in report[stage].items() if k != "losses"} for stage in ("stage_rgb", "stage_pose")}
        path.parent.mkdir(parents=True, exist_ok=True)
        saved = {"key": key, "nerfp": nerf.to_checkpoint(), "report": report}
        with atomic_path(path) as tmp:
            torch.save(saved, tmp)
    _barrier(run.dist)
    if saved is None or saved["key"] != key:  # another rank fitted it
        saved = torch.load(path, map_location="cpu", weights_only=True)
    nerf = NerfP.from_checkpoint(saved["nerfp"]).to(run.dev).eval()
    for p in nerf.parameters():
        p.requires_grad_(False)
    report = saved["report"]
    gain = report["holdout_psnr"] - report["holdout_psnr_mean_colour"]
    if gain < MIN_PSNR_GAIN_DB:
        raise RelocError(
            f"NeRF-P reached only {report['holdout_psnr']:.2f} dB PSNR on {report['frames_holdout']} held-out "
            f"mapping frames, {gain:+.2f} dB against a constant mean-colour image (needs +{MIN_PSNR_GAIN_DB} dB): "
            f"the mapping bag ({report['frames_train']} training frames) is too small or too sparse to fit a NeRF "
            f"of the scene. Record more views of it, or raise --nerf-steps (now {cfg.nerf_steps})")
    return nerf, report


def _render_set(nerf: NerfP, poses_n44: np.ndarray, K: Intrinsics, dev: torch.device, progress: bool,
                desc: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Render views (uint8, N x H x W x 3) and PoseMaps (float, N x h x w x k) at poses, on the CPU."""
    from tqdm import tqdm

    views, maps = [], []
    T = torch.as_tensor(poses_n44, dtype=torch.float32)
    with torch.no_grad():
        for i in tqdm(range(0, len(T), RENDER_BATCH), desc=desc, unit="batch", leave=False, disable=not progress):
            T_b = T[i:i + RENDER_BATCH].to(dev)
            views.append((P.render_views(nerf, T_b, K) * 255).round().to(torch.uint8).cpu())
            maps.append(P.render_posemaps(nerf, T_b, K).cpu())
    return torch.cat(views), torch.cat(maps)


def _matrices(poses_n44: np.ndarray, normaliser: PoseNormaliser) -> torch.Tensor:
    """``[R | t_normalised]`` (N, 3, 4): L_pose's targets."""
    m = np.asarray(poses_n44, dtype=np.float64)[:, :3, :4].copy()
    m[:, :, 3] = normaliser.normalise(m[:, :, 3])
    return torch.as_tensor(m, dtype=torch.float32)


# ---------------------------------------------------------------------------
# APRNet (eq. 2)
# ---------------------------------------------------------------------------

@dataclass
class _Targets:
    m_gt: torch.Tensor  # (N, 3, 4) normalised
    synth: torch.Tensor | None  # (N, H, W, 3) uint8 renders at the true poses
    pm_gt: torch.Tensor | None  # (N, h, w, k) PoseMaps at the true poses
    rvs: torch.Tensor | None  # (N, H, W, 3) uint8 renders at perturbed poses
    m_rvs: torch.Tensor | None
    pm_rvs: torch.Tensor | None


def _losses(net, nerf: NerfP, K: Intrinsics, losses: Sequence[str], real_u8: torch.Tensor, tg: _Targets,
            b: torch.Tensor, mean_3: torch.Tensor, scale: float, dev: torch.device) -> dict[str, torch.Tensor]:
    """Eq. 2's selected terms for one batch; one forward pass over real, rendered and RVS images."""
    n = len(b)
    parts = [real_u8]
    if "image" in losses:
        parts.append(tg.synth[b])
    if "rvs" in losses:
        parts.append(tg.rvs[b])
    x = to_network_input(torch.cat(parts).to(dev))
    with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
        t, q, f = net(x)
    m = P.pose_matrix_t(t.float(), q.float())
    f = f.float()
    out: dict[str, torch.Tensor] = {}
    if "pose" in losses:
        out["pose"] = P.pose_loss(m[:n], tg.m_gt[b].to(dev))
    if "image" in losses:
        out["image"] = P.image_triplet_loss(f[:n], f[n:2 * n])
    if "posemap" in losses:
        pm = P.render_posemaps(nerf, P.to_map_poses(m[:n], mean_3, scale), K)
        out["posemap"] = P.posemap_cosine_loss(pm, tg.pm_gt[b].to(dev))
    if "rvs" in losses:
        m_r = m[-n:]
        pm_r = P.render_posemaps(nerf, P.to_map_poses(m_r, mean_3, scale), K)
        out["rvs"] = P.rvs_loss(m_r, tg.m_rvs[b].to(dev), pm_r, tg.pm_rvs[b].to(dev))
    return out


def train_pmnet(bags: Sequence[str | Path], source: BagSource, cfg: TrainConfig, out: str | Path,
                resume: bool = False, cache_dir: str | Path | None = None, device: str = "auto",
                progress: bool = True, onnx: bool = False) -> TrainResult:
    """Fit NeRF-P, train APRNet with PoseMap (eq. 2) and export the pose estimator to ``out``."""
    from tqdm import tqdm

    from reloc_ros.training.evaluate import accuracy_report, mean_pose_baseline

    cfg = cfg.resolved()
    if cfg.loss != "beta" or cfg.beta is not None:
        raise ValueError(f"--loss/--beta are PoseNet options; PMNet trains with eq. 2 (L2 pose loss, choose terms "
                         f"with --pmnet-losses), got loss '{cfg.loss}'")
    losses = P.parse_losses(cfg.pmnet_losses)
    run = start_run(bags, source, cfg, out, resume, device)
    out, ckpt_path, dev, d, state = run.out, run.ckpt_path, run.dev, run.dist, run.state
    ds = _load_data(bags, source, cfg, cache_dir, d, progress)
    K = ds.intrinsics
    if K is None:
        raise RelocError(f"PMNet renders views of the scene and needs the camera's intrinsics, but {ds.source} has "
                         "no CameraInfo for its image topic")
    train_idx, val_idx = split_time_blocks(len(ds), cfg.val_fraction)
    normaliser = PoseNormaliser.fit(ds.poses_n44[train_idx])
    images = torch.from_numpy(np.array(ds.images))  # a writable copy: cached frames are read-only memory maps
    val_images, val_poses = images[val_idx], ds.poses_n44[val_idx]
    baseline = mean_pose_baseline(ds.poses_n44[train_idx], val_poses)
    seconds: dict[str, float] = {}

    nerf, nerf_report = _fit_or_load_nerf(ds, train_idx, val_idx, cfg, run, cache_dir, progress and d.main)
    seconds["nerfp"] = nerf_report["stage_rgb"]["seconds"] + nerf_report["stage_pose"]["seconds"]
    if d.main:
        log.info("NeRF-P: %.2f dB PSNR on %d held-out mapping frames (mean-colour image %.2f dB)",
                 nerf_report["holdout_psnr"], nerf_report["frames_holdout"], nerf_report["holdout_psnr_mean_colour"])

    t0 = time.perf_counter()
    train_poses = ds.poses_n44[train_idx]
    gen_rvs = torch.Generator().manual_seed(cfg.seed * 7919 + 1)
    rvs_poses = P.perturb_poses(torch.as_tensor(train_poses), cfg.rvs_translation, cfg.rvs_rotation, gen_rvs).numpy()
    try:
        synth, pm_gt = _render_set(nerf, train_poses, K, dev, progress and d.main, "rendering training views")
        rvs = pm_rvs = None
        if "rvs" in losses:
            rvs, pm_rvs = _render_set(nerf, rvs_poses, K, dev, progress and d.main, "rendering RVS views")
    except RuntimeError as e:
        if is_oom(e):
            raise RelocError(f"out of memory rendering {K.width}x{K.height} views on {dev}: {_oom_hint(cfg)}") from e
        raise
    tg = _Targets(_matrices(train_poses, normaliser), synth, pm_gt, rvs,
                  _matrices(rvs_poses, normaliser) if rvs is not None else None, pm_rvs)
    seconds["render"] = time.perf_counter() - t0

    torch.manual_seed(cfg.seed)
    pm_cfg = P.PMNetConfig(backbone=cfg.backbone, dropout=cfg.dropout)
    net = P.build_pmnet(pm_cfg, backbone_weights=cfg.backbone_weights).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.999), weight_decay=cfg.weight_decay)
    start_epoch, history, best, best_state = 1, [], {"median_translation_m": math.inf}, None
    if state is not None:
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_epoch, history, best, best_state = state["epoch"] + 1, state["history"], state["best"], \
            state["best_model"]
        if d.main:
            log.info("resuming %s after epoch %d of %d", ckpt_path, state["epoch"], cfg.epochs)
    ddp_net = net
    if d.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ddp_net = DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None)
    mean_3 = torch.tensor(normaliser.mean, dtype=torch.float32, device=dev)
    n_train = len(train_idx)
    per_rank = n_train // d.world
    if d.main:
        log.info("training pmnet (%s, losses %s, %dx%d) on %d frames, validating on %d; %s, world size %d",
                 cfg.backbone, "+".join(losses), *cfg.input_size, n_train, len(val_idx), dev, d.world)
    t0 = time.perf_counter()
    epoch = start_epoch - 1
    try:
        for epoch in range(start_epoch, cfg.epochs + 1):
            t_epoch = time.perf_counter()
            torch.manual_seed(cfg.seed * 100_003 + epoch)
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
            perm = torch.randperm(n_train, generator=gen)[d.rank::d.world][:per_rank]
            batches = [b for b in (perm[i:i + cfg.batch_size] for i in range(0, per_rank, cfg.batch_size))
                       if len(b) >= 2]
            ddp_net.train()
            sums: dict[str, float] = {}
            bar = tqdm(batches, desc=f"APRNet epoch {epoch}/{cfg.epochs}", unit="batch", leave=False,
                       disable=not (progress and d.main))
            for b in bar:
                real = images[torch.as_tensor(train_idx)[b]]
                if cfg.augment:
                    real = augment(real, gen)
                parts = _losses(ddp_net, nerf, K, losses, real, tg, b, mean_3, normaliser.scale, dev)
                loss = sum(parts.values())
                take_step(opt, loss, parts, sums, len(b), f"at epoch {epoch}; lower the learning rate (now {cfg.lr})")
                bar.set_postfix(loss=f"{loss.item():.4f}")
            n_seen = sum(len(b) for b in batches)
            row = {"epoch": epoch, **{k: v / max(n_seen, 1) for k, v in sums.items()}}
            val = _validate(net.pose_net, val_images, val_poses, normaliser, dev)
            row.update({k: v for k, v in val.items() if k != "pred_n44"}, seconds=time.perf_counter() - t_epoch)
            history.append(row)
            if val["median_translation_m"] < best["median_translation_m"]:
                best = dict(row)
                best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
            if d.main:
                log.info("epoch %d/%d loss %.4f (%s) val %.3f m %.2f deg (%.1f s)", epoch, cfg.epochs, row["loss"],
                         " ".join(f"{k} {row[k]:.4f}" for k in losses), row["median_translation_m"],
                         row["median_rotation_deg"], row["seconds"])
                _save_checkpoint(ckpt_path, {
                    "format": "reloc_ros.checkpoint", "format_version": CHECKPOINT_FORMAT,
                    "reloc_ros_version": __version__, "config": cfg.to_dict(), "data": run.data_id,
                    "world_size": d.world, "model_args": pm_cfg.to_dict(), "normaliser": asdict(normaliser),
                    "epoch": epoch, "model": net.state_dict(), "optimizer": opt.state_dict(), "history": history,
                    "best": best, "best_model": best_state})
    except KeyboardInterrupt:
        if d.main:
            log.warning("interrupted during epoch %d; the checkpoint after epoch %d is at %s: continue with "
                        "--resume", epoch, epoch - 1, ckpt_path)
        raise
    except RuntimeError as e:
        if is_oom(e) and not isinstance(e, RelocError):
            raise RelocError(f"out of memory training APRNet on {dev}: {_oom_hint(cfg)}") from e
        raise
    seconds["aprnet"] = time.perf_counter() - t0

    result = TrainResult(out, ckpt_path, history, baseline=baseline)
    if d.main:
        net.load_state_dict(best_state)
        val = _validate(net.pose_net, val_images, val_poses, normaliser, dev)
        result.val_metrics = accuracy_report(val["pred_n44"], val_poses, epoch=best["epoch"], spread=val["spread"])
        diagnostics = _diagnostics(nerf, K, ds.images[val_idx], val_poses, out)
        extra = {"pmnet": {
            "losses": list(losses), "rvs": {"translation_m": cfg.rvs_translation, "rotation_deg": cfg.rvs_rotation,
                                            "views": 0 if rvs is None else len(rvs), "online": False},
            "nerfp": nerf_report, "sidecar": sidecar_path_for(out).name, "diagnostics": diagnostics,
            "seconds": seconds, "aligned": None}}
        _export(net.pose_net, out, cfg, pm_cfg.apr_config(), normaliser, ds, source, train_idx, val_idx, result,
                onnx, val_images, val_poses, extra=extra)
        _save_sidecar(sidecar_path_for(out), net, pm_cfg, nerf, normaliser, K, cfg, nerf_report)
        log.info("best epoch %d: val median %.3f m, %.2f deg (mean-pose baseline %.3f m, %.2f deg); wrote %s and %s",
                 best["epoch"], result.val_metrics["median_translation_m"], result.val_metrics["median_rotation_deg"],
                 baseline["median_translation_m"], baseline["median_rotation_deg"], out, sidecar_path_for(out).name)
    _barrier(d)
    return result


def _save_sidecar(path: Path, net: P.PMNet, pm_cfg: P.PMNetConfig, nerf: NerfP, normaliser: PoseNormaliser,
                  K: Intrinsics, cfg: TrainConfig, nerf_report: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save({"format": SIDECAR_FORMAT, "reloc_ros_version": __version__, "pmnet_config": pm_cfg.to_dict(),
                    "state": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                    "nerfp": nerf.to_checkpoint(), "normaliser": asdict(normaliser), "intrinsics": asdict(K),
                    "train_config": cfg.to_dict(), "nerf_report": nerf_report}, tmp)


def _diagnostics(nerf: NerfP, K: Intrinsics, images_nhw3: np.ndarray, poses_n44: np.ndarray, out: Path) -> dict:
    """Write real-vs-rendered and PoseMap-PCA pictures of up to 6 validation views; return names and PSNRs."""
    from reloc_ros.plots import plot_posemap_pca, plot_render_grid

    pick = np.unique(np.linspace(0, len(poses_n44) - 1, min(6, len(poses_n44))).round().astype(int))
    views, maps = _render_set(nerf, poses_n44[pick], K, nerf.bounds_min_3.device, False, "")
    real = images_nhw3[pick]
    mse = ((views.numpy().astype(np.float64) - real.astype(np.float64)) / 255.0) ** 2
    psnrs = [psnr_from_mse(float(m.mean())) for m in mse]
    renders = out.with_name(out.stem + "_renders.png")
    posemap = out.with_name(out.stem + "_posemap.png")
    plot_render_grid(renders, real, views.numpy(), psnrs, title="NeRF-P on held-out mapping frames")
    plot_posemap_pca(posemap, real, maps.numpy(), title="PoseMap (first three principal components)")
    return {"renders": renders.name, "posemap": posemap.name, "psnr_db": psnrs}


# ---------------------------------------------------------------------------
# PMNet_ud: self-supervised alignment on unlabelled images (eq. 5)
# ---------------------------------------------------------------------------

@dataclass
class AlignResult:
    model_path: Path
    report: dict = field(default_factory=dict)


def load_sidecar(model_path: Path) -> dict:
    path = sidecar_path_for(model_path)
    if not path.exists():
        raise RelocError(f"'{model_path}' has no '{path.name}' beside it: alignment on unlabelled images needs a "
                         "PMNet model (reloc-ros train --model pmnet), whose NeRF-P is kept in that file")
    try:
        side = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RelocError(f"'{path}' is not readable (corrupt or foreign): {exc}") from exc
    if not isinstance(side, dict) or side.get("format") != SIDECAR_FORMAT:
        raise RelocError(f"'{path}' is not a reloc_ros PMNet file")
    return side


def _predict_poses(net: P.PMNet, images_u8: torch.Tensor, normaliser: PoseNormaliser,
                   dev: torch.device) -> np.ndarray:
    net.eval()
    ts, qs = [], []
    with torch.no_grad():
        for i in range(0, len(images_u8), 32):
            t, q, _ = net(to_network_input(images_u8[i:i + 32].to(dev)))
            ts.append(t.cpu())
            qs.append(q.cpu())
    return make_pose(normaliser.denormalise(torch.cat(ts).numpy()), torch.cat(qs).numpy())


def _render_match(nerf: NerfP, images_u8: torch.Tensor, poses_n44: np.ndarray, K: Intrinsics) -> float:
    """Median PSNR between images and NeRF-P's renders at the given poses (how well the poses explain them)."""
    views, _ = _render_set(nerf, poses_n44, K, nerf.bounds_min_3.device, False, "")
    mse = (((views.float() - images_u8.float()) / 255.0) ** 2).flatten(1).mean(1)
    return float(np.median([psnr_from_mse(float(m)) for m in mse]))


def align_unlabelled(model_path: str | Path, bags: Sequence[str | Path], out: str | Path | None = None,
                     image_topic: str | None = None, losses: str = "image,posemap", epochs: int = 2,
                     lr: float = 1e-5, batch_size: int = 4, seed: int = 0, device: str = "auto",
                     progress: bool = True) -> AlignResult:
    """PMNet_ud: fine-tune a PMNet model on the images of ``bags`` (their poses are never read).

    Writes ``out`` (default: ``MODEL_ud.pt`` beside the model) and its
    ``.pmnet``; the original model is left as it is. Batch norm statistics
    are frozen (the paper aligns with batch size 1).
    """
    from tqdm import tqdm

    from reloc_ros.data.bag import read_bag_images
    from reloc_ros.training.export import export_torchscript, pick_device, read_metadata

    model_path = Path(model_path)
    meta = read_metadata(model_path)
    side = load_sidecar(model_path)
    terms = P.parse_losses(losses, P.ALIGN_LOSS_NAMES)
    for name, v, lo in (("epochs", epochs, 1), ("batch_size", batch_size, 2)):
        if not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"learning rate must be > 0, got {lr}")
    out = Path(out) if out is not None else model_path.with_name(model_path.stem + "_ud" + model_path.suffix)
    if out.resolve() == model_path.resolve():
        raise ValueError(f"--out '{out}' is the model being aligned; the original is kept, choose another file")
    dev = pick_device(device)
    K = Intrinsics(**side["intrinsics"])
    normaliser = PoseNormaliser(tuple(side["normaliser"]["mean"]), float(side["normaliser"]["scale"]))
    size = tuple(meta["input_size"])
    log.info("aligning %s on the images of %s: their poses (TF, pose topics) are not read", model_path,
             ", ".join(str(b) for b in bags))
    _, imgs = read_bag_images(bags, image_topic, size, meta.get("preprocessing", "resize"), progress)
    images = torch.from_numpy(np.ascontiguousarray(imgs))
    if len(images) < batch_size:
        raise RelocError(f"only {len(images)} images in {', '.join(map(str, bags))}; alignment needs at least "
                         f"batch_size = {batch_size}")
    nerf = NerfP.from_checkpoint(side["nerfp"]).to(dev).eval()
    for p in nerf.parameters():
        p.requires_grad_(False)
    net = P.build_pmnet(P.PMNetConfig.from_dict(side["pmnet_config"]))
    net.load_state_dict(side["state"])
    net = net.to(dev)
    before = _predict_poses(net, images, normaliser, dev)
    match_before = _render_match(nerf, images, before, K)
    mapping_psnr = side["nerf_report"]["holdout_psnr"]
    floor = side["nerf_report"]["holdout_psnr_mean_colour"]
    log.info("renders at the predicted poses match the images at %.2f dB (NeRF-P on held-out mapping frames: "
             "%.2f dB; a constant image: %.2f dB)", match_before, mapping_psnr, floor)
    if match_before < floor + MIN_PSNR_GAIN_DB:
        log.warning("NeRF-P's renders at the predicted poses barely match the images (%.2f dB; a constant image of "
                    "the mapping run gets %.2f dB): the model's poses for them are far off, or they are of another "
                    "scene or very different conditions; alignment starts from these poses, and its result is "
                    "written beside the original: compare both before using it",
                    match_before, floor)

    mean_3 = torch.tensor(normaliser.mean, dtype=torch.float32, device=dev)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    history = []
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        net.eval()  # BN statistics and dropout frozen; gradients still flow
        perm = torch.randperm(len(images), generator=gen)
        batches = [b for b in (perm[i:i + batch_size] for i in range(0, len(perm), batch_size)) if len(b) >= 2]
        sums: dict[str, float] = {}
        bar = tqdm(batches, desc=f"align epoch {epoch}/{epochs}", unit="batch", leave=False, disable=not progress)
        for b in bar:
            parts = _align_losses(net, nerf, K, terms, images[b], mean_3, normaliser.scale, dev)
            loss = sum(parts.values())
            take_step(opt, loss, parts, sums, len(b), f"at alignment epoch {epoch}; lower --lr (now {lr})")
            bar.set_postfix(loss=f"{loss.item():.4f}")
        n = sum(len(b) for b in batches)
        history.append({"epoch": epoch, **{k: v / n for k, v in sums.items()}})
        log.info("align epoch %d/%d loss %.4f", epoch, epochs, history[-1]["loss"])
    seconds = time.perf_counter() - t0
    after = _predict_poses(net, images, normaliser, dev)
    match_after = _render_match(nerf, images, after, K)
    moved_t, moved_r = translation_error(after, before), rotation_error_deg(after, before)
    report = {"unlabelled_bags": [str(Path(b).resolve()) for b in bags], "images": int(len(images)),
              "ground_truth_read": False, "losses": list(terms), "epochs": epochs, "lr": lr,
              "batch_size": batch_size, "seconds": seconds, "history": history, "original_model": str(model_path),
              "moved_median_m": float(np.median(moved_t)), "moved_max_m": float(moved_t.max()),
              "moved_median_deg": float(np.median(moved_r)), "moved_max_deg": float(moved_r.max()),
              "render_match_db_before": match_before, "render_match_db_after": match_after,
              "mapping_holdout_psnr_db": mapping_psnr}
    if match_after < match_before:
        log.warning("after alignment the renders at the predicted poses match the images worse (%.2f -> %.2f dB): "
                    "the alignment did not help on these images; keep using %s", match_before, match_after,
                    model_path)
    metadata = {k: v for k, v in meta.items() if k != "created"}  # the rest is rebuilt or carried over
    metadata["pmnet"] = dict(meta.get("pmnet", {}), aligned=report)
    export_torchscript(net.pose_net, out, metadata, pos_mean=normaliser.mean, pos_scale=normaliser.scale,
                       input_size=size)
    _save_sidecar(sidecar_path_for(out), net, P.PMNetConfig.from_dict(side["pmnet_config"]), nerf, normaliser, K,
                  TrainConfig.from_dict(side["train_config"]), side["nerf_report"])
    log.info("aligned model written to %s (the original %s is unchanged); predictions moved by median %.3f m, "
             "%.2f deg (max %.3f m, %.2f deg); render match %.2f -> %.2f dB", out, model_path,
             report["moved_median_m"], report["moved_median_deg"], report["moved_max_m"], report["moved_max_deg"],
             match_before, match_after)
    return AlignResult(out, report)


def _align_losses(net: P.PMNet, nerf: NerfP, K: Intrinsics, terms: Sequence[str], real_u8: torch.Tensor,
                  mean_3: torch.Tensor, scale: float, dev: torch.device) -> dict[str, torch.Tensor]:
    """Eq. 5 for one batch: predict p from I, render I' at p, predict p' from I'; align (I, I') and (F(p), F(p'))."""
    t, q, f = net(to_network_input(real_u8.to(dev)))
    T_pred = P.to_map_poses(P.pose_matrix_t(t, q), mean_3, scale)
    rendered = P.render_views(nerf, T_pred, K)  # gradients reach the predicted pose through the renderer
    t2, q2, f2 = net(normalise_input(rendered.permute(0, 3, 1, 2)))
    out = {}
    if "image" in terms:
        out["image"] = P.image_triplet_loss(f, f2)
    if "posemap" in terms:
        T_2 = P.to_map_poses(P.pose_matrix_t(t2, q2), mean_3, scale)
        out["posemap"] = P.posemap_cosine_loss(P.render_posemaps(nerf, T_2, K), P.render_posemaps(nerf, T_pred, K))
    return out
