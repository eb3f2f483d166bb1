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

"""PMNet_ud (Lin et al., section 3.3, eq. 5): align a trained PMNet model to unlabelled images of its scene.

``reloc-ros align MODEL --unlabelled BAG`` reads only the images of BAG (no
TF, no pose topic), predicts each pose, renders the view and PoseMap there
with the NeRF-P kept beside the model (``MODEL.pmnet``, written by
:mod:`reloc_ros.training.pmnet_trainer`), and minimises
``L_image + L_posemap`` between the real image and the render. The original
model is never touched: the aligned one is written beside it, and the report
says how far the predictions moved and how well renders at the predicted
poses match the images before and after (a bag of another scene shows up as
a low match, and is warned about).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from reloc_ros.data.types import Intrinsics
from reloc_ros.errors import RelocError
from reloc_ros.geometry import make_pose, rotation_error_deg, translation_error
from reloc_ros.nets import pmnet as P
from reloc_ros.nets.nerfp import NerfP, psnr_from_mse
from reloc_ros.training.config import TrainConfig
from reloc_ros.training.data import PoseNormaliser, normalise_input, to_network_input
from reloc_ros.training.loop import take_step
from reloc_ros.training.pmnet_trainer import MIN_PSNR_GAIN_DB, load_sidecar, render_set, save_sidecar, sidecar_path_for

log = logging.getLogger(__name__)


@dataclass
class AlignResult:
    model_path: Path
    report: dict = field(default_factory=dict)


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
    views, _ = render_set(nerf, poses_n44, K, nerf.bounds_min_3.device, False, "")
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
    from reloc_ros.modelfile import pick_device, read_metadata
    from reloc_ros.training.export import export_torchscript

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
    save_sidecar(sidecar_path_for(out), net, P.PMNetConfig.from_dict(side["pmnet_config"]), nerf, normaliser, K,
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
