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

"""Train PMNet (Lin et al., *Learning Neural Volumetric Pose Features for Camera Localization*) from a mapping bag.

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

``reloc-ros align MODEL --unlabelled BAG`` (PMNet_ud, section 3.3) is
:mod:`reloc_ros.training.pmnet_align`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from reloc_ros import __version__
from reloc_ros.data.bag import BagSource
from reloc_ros.data.types import Intrinsics, PoseDataset
from reloc_ros.errors import RelocError
from reloc_ros.io_utils import atomic_path
from reloc_ros.nets import pmnet as P
from reloc_ros.nets.nerfp import NerfP, NerfPConfig, fit_nerfp, is_oom, psnr_from_mse
from reloc_ros.training.data import PoseNormaliser, augment, to_network_input
from reloc_ros.training.apr_trainer import export_apr, validate_poses
from reloc_ros.training.config import TrainConfig, TrainResult
from reloc_ros.training.loop import Run, barrier, hold_out, mean_terms, progress_bar, rank_batches, take_step, wrap_ddp

log = logging.getLogger(__name__)

MIN_PSNR_GAIN_DB = 1.0
"""NeRF-P must beat a constant mean-colour image by this much on held-out mapping frames."""
SIDECAR_FORMAT = "reloc_ros.pmnet"
RENDER_BATCH = 4


def sidecar_path_for(model_path: Path) -> Path:
    """Return the file beside a PMNet model that keeps NeRF-P and APRNet for alignment: ``<model>.pmnet``."""
    return model_path.with_name(model_path.name + ".pmnet")


def _oom_hint(cfg: TrainConfig) -> str:
    return (f"lower --nerf-rays (now {cfg.nerf_rays}), --nerf-resolution (now {cfg.nerf_resolution}), "
            f"--batch-size (now {cfg.batch_size}) or --input-size (now {cfg.input_size[0]}x{cfg.input_size[1]})")


# ---------------------------------------------------------------------------
# NeRF-P (stages 1 and 2)
# ---------------------------------------------------------------------------

NERF_FIELDS = ("input_size", "preprocessing", "val_fraction", "val_split", "seed", "nerf_steps", "nerf_pose_steps",
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
    barrier(run.dist)
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


def render_set(nerf: NerfP, poses_n44: np.ndarray, K: Intrinsics, dev: torch.device, progress: bool,
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


class PMNetMethod:
    """NeRF-P fitted first, then APRNet trained with PoseMap (eq. 2); the pose estimator is exported."""

    @staticmethod
    def check_options(cfg: TrainConfig, onnx: bool) -> None:
        """Refuse the APR loss options, before any work (the PMNet options are checked by ``resolved``)."""
        if cfg.loss != "beta" or cfg.beta is not None:
            raise ValueError(f"--loss/--beta are PoseNet options; PMNet trains with eq. 2 (L2 pose loss, choose "
                             f"terms with --pmnet-losses), got loss '{cfg.loss}'")

    def __init__(self, run: Run, ds: PoseDataset, cfg: TrainConfig, source: BagSource, onnx: bool = False,
                 cache_dir: str | Path | None = None, progress: bool = True, **_: object) -> None:
        from reloc_ros.evaluation import mean_pose_baseline

        self.run, self.ds, self.cfg, self.source, self.onnx = run, ds, cfg, source, onnx
        dev, d = run.dev, run.dist
        self.losses = P.parse_losses(cfg.pmnet_losses)
        K = self.K = ds.intrinsics
        if K is None:
            raise RelocError(f"PMNet renders views of the scene and needs the camera's intrinsics, but {ds.source} "
                             "has no CameraInfo for its image topic")
        self.train_idx, self.val_idx = hold_out(ds, cfg, d.main)
        self.normaliser = PoseNormaliser.fit(ds.poses_n44[self.train_idx])
        self.images = torch.from_numpy(np.array(ds.images))  # a writable copy: cached frames are read-only memmaps
        self.val_images, self.val_poses = self.images[self.val_idx], ds.poses_n44[self.val_idx]
        self.baseline = mean_pose_baseline(ds.poses_n44[self.train_idx], self.val_poses)
        self.seconds: dict[str, float] = {}

        self.nerf, self.nerf_report = _fit_or_load_nerf(ds, self.train_idx, self.val_idx, cfg, run, cache_dir,
                                                        progress and d.main)
        self.seconds["nerfp"] = self.nerf_report["stage_rgb"]["seconds"] + self.nerf_report["stage_pose"]["seconds"]
        if d.main:
            log.info("NeRF-P: %.2f dB PSNR on %d held-out mapping frames (mean-colour image %.2f dB)",
                     self.nerf_report["holdout_psnr"], self.nerf_report["frames_holdout"],
                     self.nerf_report["holdout_psnr_mean_colour"])

        t0 = time.perf_counter()
        train_poses = ds.poses_n44[self.train_idx]
        gen_rvs = torch.Generator().manual_seed(cfg.seed * 7919 + 1)
        rvs_poses = P.perturb_poses(torch.as_tensor(train_poses), cfg.rvs_translation, cfg.rvs_rotation,
                                    gen_rvs).numpy()
        try:
            synth, pm_gt = render_set(self.nerf, train_poses, K, dev, progress and d.main,
                                      "rendering training views")
            rvs = pm_rvs = None
            if "rvs" in self.losses:
                rvs, pm_rvs = render_set(self.nerf, rvs_poses, K, dev, progress and d.main, "rendering RVS views")
        except RuntimeError as e:
            if is_oom(e):
                raise RelocError(f"out of memory rendering {K.width}x{K.height} views on {dev}: "
                                 f"{_oom_hint(cfg)}") from e
            raise
        self.rvs_views = 0 if rvs is None else len(rvs)
        self.targets = _Targets(_matrices(train_poses, self.normaliser), synth, pm_gt, rvs,
                                _matrices(rvs_poses, self.normaliser) if rvs is not None else None, pm_rvs)
        self.seconds["render"] = time.perf_counter() - t0

        torch.manual_seed(cfg.seed)
        self.pm_cfg = P.PMNetConfig(backbone=cfg.backbone, dropout=cfg.dropout)
        self.model_args = self.pm_cfg.to_dict()
        self.net = P.build_pmnet(self.pm_cfg, backbone_weights=cfg.backbone_weights).to(dev)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, betas=(0.9, 0.999),
                                    weight_decay=cfg.weight_decay)
        self.ddp_net = wrap_ddp(self.net, run)
        self.mean_3 = torch.tensor(self.normaliser.mean, dtype=torch.float32, device=dev)
        if d.main:
            log.info("training pmnet (%s, losses %s, %dx%d) on %d frames, validating on %d; %s, world size %d",
                     cfg.backbone, "+".join(self.losses), *cfg.input_size, len(self.train_idx), len(self.val_idx),
                     dev, d.world)
        self.t_aprnet = time.perf_counter()

    def train_epoch(self, epoch: int, gen: torch.Generator, show_progress: bool) -> dict[str, float]:
        """One pass of APRNet over this rank's share of the training frames (eq. 2's chosen terms)."""
        cfg, dev = self.cfg, self.run.dev
        batches = rank_batches(len(self.train_idx), cfg.batch_size, gen, self.run.dist)
        self.ddp_net.train()
        sums: dict[str, float] = {}
        bar = progress_bar(batches, f"APRNet epoch {epoch}/{cfg.epochs}", show_progress)
        try:
            for b in bar:
                real = self.images[torch.as_tensor(self.train_idx)[b]]
                if cfg.augment:
                    real = augment(real, gen)
                parts = _losses(self.ddp_net, self.nerf, self.K, self.losses, real, self.targets, b, self.mean_3,
                                self.normaliser.scale, dev)
                loss = sum(parts.values())
                take_step(self.opt, loss, parts, sums, len(b),
                          f"at epoch {epoch}; lower the learning rate (now {cfg.lr})")
                bar.set_postfix(loss=f"{loss.item():.4f}")
        except RuntimeError as e:
            if is_oom(e) and not isinstance(e, RelocError):
                raise RelocError(f"out of memory training APRNet on {dev}: {_oom_hint(cfg)}") from e
            raise
        return mean_terms(sums, batches)

    def validate(self) -> dict:
        """Median validation errors of the pose estimator."""
        val = validate_poses(self.net.pose_net, self.val_images, self.val_poses, self.normaliser, self.run.dev)
        return {k: v for k, v in val.items() if k != "pred_n44"}

    def describe_epoch(self, row: dict) -> str:
        """Return the terms of eq. 2."""
        return "(" + " ".join(f"{k} {row[k]:.4f}" for k in self.losses) + ")"

    def state(self) -> dict:
        """Return the optimiser and position normalisation."""
        return {"normaliser": asdict(self.normaliser), "optimizer": self.opt.state_dict()}

    def restore(self, state: dict) -> None:
        """Load the optimiser of a checkpoint."""
        self.opt.load_state_dict(state["optimizer"])

    def finish(self, best: dict, result: TrainResult) -> None:
        """Export the pose estimator and write the sidecar (NeRF-P, APRNet) and the diagnostics."""
        from reloc_ros.evaluation import accuracy_report

        cfg, out = self.cfg, self.run.out
        self.seconds["aprnet"] = time.perf_counter() - self.t_aprnet
        val = validate_poses(self.net.pose_net, self.val_images, self.val_poses, self.normaliser, self.run.dev)
        result.val_metrics = accuracy_report(val["pred_n44"], self.val_poses, epoch=best["epoch"],
                                             spread=val["spread"])
        diagnostics = _diagnostics(self.nerf, self.K, self.ds.images[self.val_idx], self.val_poses, out)
        extra = {"pmnet": {
            "losses": list(self.losses),
            "rvs": {"translation_m": cfg.rvs_translation, "rotation_deg": cfg.rvs_rotation,
                    "views": self.rvs_views, "online": False},
            "nerfp": self.nerf_report, "sidecar": sidecar_path_for(out).name, "diagnostics": diagnostics,
            "seconds": self.seconds, "aligned": None}}
        export_apr(self.net.pose_net, out, cfg, self.pm_cfg.apr_config(), self.normaliser, self.ds, self.source,
                   self.train_idx, self.val_idx, result, self.onnx, self.val_images, self.val_poses, extra=extra)
        save_sidecar(sidecar_path_for(out), self.net, self.pm_cfg, self.nerf, self.normaliser, self.K, cfg,
                     self.nerf_report)
        log.info("best epoch %d: val median %.3f m, %.2f deg (mean-pose baseline %.3f m, %.2f deg); wrote %s and %s",
                 best["epoch"], result.val_metrics["median_translation_m"], result.val_metrics["median_rotation_deg"],
                 self.baseline["median_translation_m"], self.baseline["median_rotation_deg"], out,
                 sidecar_path_for(out).name)


def save_sidecar(path: Path, net: P.PMNet, pm_cfg: P.PMNetConfig, nerf: NerfP, normaliser: PoseNormaliser,
                 K: Intrinsics, cfg: TrainConfig, nerf_report: dict) -> None:
    """Write what alignment needs beside the model (NeRF-P, APRNet, normalisation, camera), atomically."""
    with atomic_path(path) as tmp:
        torch.save({"format": SIDECAR_FORMAT, "reloc_ros_version": __version__, "pmnet_config": pm_cfg.to_dict(),
                    "state": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                    "nerfp": nerf.to_checkpoint(), "normaliser": asdict(normaliser), "intrinsics": asdict(K),
                    "train_config": cfg.to_dict(), "nerf_report": nerf_report}, tmp)


def _diagnostics(nerf: NerfP, K: Intrinsics, images_nhw3: np.ndarray, poses_n44: np.ndarray, out: Path) -> dict:
    """Write real-vs-rendered and PoseMap-PCA pictures of up to 6 validation views; return names and PSNRs."""
    from reloc_ros.plots import plot_posemap_pca, plot_render_grid

    pick = np.unique(np.linspace(0, len(poses_n44) - 1, min(6, len(poses_n44))).round().astype(int))
    views, maps = render_set(nerf, poses_n44[pick], K, nerf.bounds_min_3.device, False, "")
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


def load_sidecar(model_path: Path) -> dict:
    """Read the ``.pmnet`` file beside a PMNet model; RelocError naming what is wrong for anything else."""
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
