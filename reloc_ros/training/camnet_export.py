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

"""CamNet's inference (Ding et al., section 3.4) as one TorchScript file with its database inside.

:class:`ExportedCamNet` holds the encoder (traced), the three regressors and
the key-frame database as buffers: per key frame the ICR descriptor ``f_r``,
the PFR and PRP representations ``f_c`` and ``f_f`` and the absolute pose. Its
stages are separate exported methods, so the runtime and the benchmark can
run and time them one by one:

1. :meth:`~ExportedCamNet.encode`: the encoder, once per image (all branches).
2. :meth:`~ExportedCamNet.retrieve`: top ``K`` (3) nearest descriptors, exact search.
3. :meth:`~ExportedCamNet.coarse`: PFR on (query, each retrieved key frame) -> coarse poses.
4. :meth:`~ExportedCamNet.nearest`: for each coarse pose, the key frame closest
   in Algorithm 1's pose distance ``zeta``.
5. :meth:`~ExportedCamNet.refine`: PRP on (query, reference) -> precise poses;
   also used with the two previous frames of a sequence as references.
6. :meth:`~ExportedCamNet.fuse`: the consensus of the hypotheses and the
   average of its inliers.

``forward(images) -> (t_b3, q_b4)`` runs 1-6 for single images, so the file
answers like an APR file; :meth:`~ExportedCamNet.hypotheses` adds previous
frames and returns what the runtime needs for the covariance.

Readings of section 3.4 (it refers to NN-Net for the filtering):

* The "RANSAC-based" filtering is exhaustive consensus, which is what RANSAC
  amounts to with at most five hypotheses: every hypothesis is tried as the
  model; the others within ``fusion_t`` metres and ``fusion_r`` radians of it
  are its inliers; the hypothesis with most inliers wins (ties: the most
  compact set), and the answer is the mean position and the sign-aligned,
  normalised mean quaternion of its inliers.
* The thresholds are not given; the trainer sets them from validation
  (twice the median error of single precise hypotheses, with a floor of
  5 cm and 2 degrees) and stores them in the file.
* The database keeps key frames of the mapping run's training split; the
  selection (:func:`select_keyframes`) is greedy in ``zeta``: a frame becomes
  a key frame when it is at least ``keyframe_distance`` from every key frame
  chosen before it (0 keeps every frame).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, Tuple

import numpy as np
import torch
from torch import nn, Tensor

from reloc_ros.errors import RelocError
from reloc_ros.geometry import pose_to_tq
from reloc_ros.io_utils import atomic_path, check_output_file
from reloc_ros.modelfile import METADATA_FILE, metadata_json, quiet_torch_deprecations
from reloc_ros.nets.camnet import CamNet, anchor_from_relative_t, quat_unit_canonical, rotation_angle_t
from reloc_ros.training.export import ExportedPoseModel, build_metadata, frozen_cpu_copy, random_images

logger = logging.getLogger(__name__)

DEFAULT_K = 3
"""Retrieved key frames per query (section 3.4: K = 3 in all experiments)."""
FUSION_FLOOR = (0.05, float(np.radians(2.0)))
"""Smallest consensus thresholds (metres, radians) the trainer sets."""


@dataclass
class Database:
    """CamNet's key-frame database: descriptors, pose representations and poses.

    Attributes:
        desc_mc, feat_c_mc, feat_f_mc: ``(M, C)`` float32 ``f_r``, ``f_c``, ``f_f``.
        t_m3, q_m4: key-frame camera positions (map frame, metres) and unit
            quaternions (x, y, z, w).
        backbone, input_size: of the network that computed the features;
            a database only works with the same network.
        frame_indices: which frames of the mapping data the key frames are.
    """

    desc_mc: Tensor
    feat_c_mc: Tensor
    feat_f_mc: Tensor
    t_m3: Tensor
    q_m4: Tensor
    backbone: str
    input_size: tuple[int, int]
    frame_indices: np.ndarray

    def __len__(self) -> int:
        return int(self.desc_mc.shape[0])

    @property
    def nbytes(self) -> int:
        return sum(int(t.numel() * t.element_size()) for t in
                   (self.desc_mc, self.feat_c_mc, self.feat_f_mc, self.t_m3, self.q_m4))

    def describe(self) -> dict[str, Any]:
        return {"keyframes": len(self), "feature_dim": int(self.desc_mc.shape[1]), "memory_mb": self.nbytes / 1e6,
                "backbone": self.backbone, "input_size": list(self.input_size)}


def select_keyframes(poses_n44: np.ndarray, keyframe_distance: float) -> np.ndarray:
    """Return key-frame indices, chosen greedily at least ``keyframe_distance`` (Algorithm 1's zeta) apart.

    ``zeta`` = metres + rotation angle / pi. 0 keeps every frame.
    """
    if not np.isfinite(keyframe_distance) or keyframe_distance < 0:
        raise ValueError(f"keyframe_distance must be a finite number >= 0 (metres + angle/pi), "
                         f"got {keyframe_distance!r}")
    n = len(poses_n44)
    if keyframe_distance == 0 or n == 0:
        return np.arange(n)
    t, q = pose_to_tq(np.asarray(poses_n44))
    keep = [0]
    for i in range(1, n):
        kt, kq = t[keep], q[keep]
        zeta = np.linalg.norm(kt - t[i], axis=1) + 2.0 * np.arccos(np.clip(np.abs(kq @ q[i]), 0, 1)) / np.pi
        if zeta.min() >= keyframe_distance:
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def encode_images(net: CamNet, images_nhw3: np.ndarray | Tensor, device: torch.device | str = "cpu",
                  batch: int = 64) -> tuple[Tensor, Tensor, Tensor]:
    """``(f_r, f_c, f_f)`` float32 CPU tensors of uint8 RGB images ``(N, H, W, 3)``, net in eval mode."""
    from reloc_ros.training.data import to_network_input

    images = torch.as_tensor(np.ascontiguousarray(images_nhw3)) if not isinstance(images_nhw3, Tensor) \
        else images_nhw3
    was_training = net.training
    net.eval()
    out: list[list[Tensor]] = [[], [], []]
    with torch.no_grad():
        for i in range(0, len(images), batch):
            feats = net(to_network_input(images[i:i + batch].to(device)))
            for acc, f in zip(out, feats):
                acc.append(f.float().cpu())
    net.train(was_training)
    return tuple(torch.cat(o) if o else torch.zeros(0, net.feature_dim) for o in out)  # type: ignore[return-value]


def build_database(net: CamNet, images_nhw3: np.ndarray | Tensor, poses_n44: np.ndarray, input_size: Sequence[int],
                   keyframe_distance: float = 0.0, device: torch.device | str = "cpu") -> Database:
    """Encode the key frames of ``images`` (preprocessed to ``input_size``) into a :class:`Database`."""
    poses_n44 = np.asarray(poses_n44, dtype=np.float64)
    if len(images_nhw3) != len(poses_n44):
        raise ValueError(f"{len(images_nhw3)} images but {len(poses_n44)} poses for the database")
    w, h = (int(v) for v in input_size)
    if len(images_nhw3) and tuple(images_nhw3.shape[1:3]) != (h, w):
        raise ValueError(f"database images are {images_nhw3.shape[2]}x{images_nhw3.shape[1]} but the network input "
                         f"is {w}x{h}: preprocess them to the model's input size")
    idx = select_keyframes(poses_n44, keyframe_distance)
    if len(idx) == 0:
        raise RelocError("the CamNet database would be empty: no mapping frames to use as key frames")
    f_r, f_c, f_f = encode_images(net, images_nhw3[idx], device)
    t, q = pose_to_tq(poses_n44[idx])
    return Database(f_r, f_c, f_f, torch.as_tensor(t, dtype=torch.float32), torch.as_tensor(q, dtype=torch.float32),
                    net.config.backbone, (w, h), idx)


class ExportedCamNet(ExportedPoseModel):
    """CamNet's inference with its database; see the module docstring.

    Images as every reloc_ros model takes them: ``(B, 3, H, W)`` RGB in
    ``[0, 255]`` at the metadata's input size.
    """

    def __init__(self, encoder: nn.Module, icr_head: nn.Module, pfr_head: nn.Module, prp_head: nn.Module,
                 database: Database, input_size: Sequence[int], backbone: str, k: int = DEFAULT_K,
                 fusion: tuple[float, float] = (0.25, float(np.radians(10.0)))) -> None:
        super().__init__(encoder, 0.0, 1.0, input_size)
        w, h = (int(v) for v in input_size)
        if len(database) == 0:
            raise ValueError("the CamNet database is empty: it needs at least one key frame")
        if database.backbone != backbone:
            raise ValueError(f"the database was built with backbone '{database.backbone}' but the model uses "
                             f"'{backbone}': rebuild the database with this model")
        if tuple(database.input_size) != (w, h):
            raise ValueError(f"the database was built at input size {database.input_size[0]}x{database.input_size[1]}"
                             f" but the model takes {w}x{h}: rebuild the database with this model")
        feature_dim = int(pfr_head[0].in_features) // 2
        if database.desc_mc.shape[1] != feature_dim:
            raise ValueError(f"database features are {database.desc_mc.shape[1]}-D but the model's are "
                             f"{feature_dim}-D: rebuild the database with this model")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"retrieval k must be an integer >= 1, got {k!r}")
        if not all(np.isfinite(v) and v > 0 for v in fusion):
            raise ValueError(f"fusion thresholds must be (metres, radians) > 0, got {fusion!r}")
        self.icr_head = icr_head
        self.pfr_head = pfr_head
        self.prp_head = prp_head
        self.backbone_name = backbone
        self.k = int(min(k, len(database)))
        self.feature_dim = feature_dim
        self.register_buffer("db_desc", database.desc_mc.float().contiguous())
        self.register_buffer("db_fc", database.feat_c_mc.float().contiguous())
        self.register_buffer("db_ff", database.feat_f_mc.float().contiguous())
        self.register_buffer("db_t", database.t_m3.float().contiguous())
        self.register_buffer("db_q", database.q_m4.float().contiguous())
        self.register_buffer("fusion_t", torch.tensor(float(fusion[0])))
        self.register_buffer("fusion_r", torch.tensor(float(fusion[1])))

    @torch.jit.export
    def encode(self, images_b3hw: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """``(f_r, f_c, f_f)``, each ``(B, C)``: the encoder once, all three branches."""
        return self.net(self._normalise_images(images_b3hw))

    @torch.jit.export
    def retrieve(self, f_r_bc: Tensor) -> Tensor:
        """``(B, K)`` key-frame indices of the nearest descriptors, nearest first (exact search)."""
        # Descriptors are unit vectors, so the nearest has the largest dot product.
        sim = f_r_bc @ self.db_desc.t()
        return torch.topk(sim, self.k, dim=1).indices

    @torch.jit.export
    def coarse(self, f_c_bc: Tensor, idx_bk: Tensor) -> Tuple[Tensor, Tensor]:
        """Coarse query poses ``(t (B, K, 3), q (B, K, 4))`` by PFR from each retrieved key frame."""
        out = self.pfr_head(self._pairs(f_c_bc, self.db_fc[idx_bk]))
        return self._anchor_poses(out, self.db_t[idx_bk], self.db_q[idx_bk])

    @torch.jit.export
    def nearest(self, t_bk3: Tensor, q_bk4: Tensor) -> Tensor:
        """``(B, K)``: for each pose, the key frame with the smallest zeta (Algorithm 1, step 4)."""
        d_t = torch.cdist(t_bk3.reshape(-1, 3), self.db_t)  # (B K, M)
        dot = (q_bk4.reshape(-1, 4) @ self.db_q.t()).abs().clamp(max=1.0)
        zeta = d_t + 2.0 * torch.acos(dot) / 3.141592653589793
        return zeta.argmin(dim=1).reshape(t_bk3.shape[0], t_bk3.shape[1])

    @torch.jit.export
    def refine(self, f_f_bc: Tensor, ref_f_bpc: Tensor, ref_t_bp3: Tensor, ref_q_bp4: Tensor
               ) -> Tuple[Tensor, Tensor]:
        """Precise query poses ``(t (B, P, 3), q (B, P, 4))`` by PRP from ``P`` references with known poses."""
        return self._anchor_poses(self.prp_head(self._pairs(f_f_bc, ref_f_bpc)), ref_t_bp3, ref_q_bp4)

    @torch.jit.export
    def refine_keyframes(self, f_f_bc: Tensor, idx_bk: Tensor) -> Tuple[Tensor, Tensor]:
        """:meth:`refine` against key frames ``idx_bk``."""
        return self.refine(f_f_bc, self.db_ff[idx_bk], self.db_t[idx_bk], self.db_q[idx_bk])

    def _pairs(self, f_q_bc: Tensor, ref_f_bpc: Tensor) -> Tensor:
        """``(B P, 2 C)``: the query feature beside each reference's, the regressors' input."""
        b, p = ref_f_bpc.shape[0], ref_f_bpc.shape[1]
        return torch.cat([f_q_bc.unsqueeze(1).expand(b, p, f_q_bc.shape[1]), ref_f_bpc], dim=2).reshape(b * p, -1)

    def _anchor_poses(self, out_n7: Tensor, ref_t_bp3: Tensor, ref_q_bp4: Tensor) -> Tuple[Tensor, Tensor]:
        out = out_n7.reshape(ref_t_bp3.shape[0], ref_t_bp3.shape[1], 7)
        return anchor_from_relative_t(ref_t_bp3, ref_q_bp4, out[:, :, :3], out[:, :, 3:])

    @torch.jit.export
    def fuse(self, t_bh3: Tensor, q_bh4: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Consensus of ``H`` hypotheses per image: ``(t_b3, q_b4, inliers_bh bool)``."""
        valid = torch.isfinite(t_bh3).all(dim=2) & torch.isfinite(q_bh4).all(dim=2)
        t = torch.where(valid.unsqueeze(2), t_bh3, torch.zeros_like(t_bh3))
        q = torch.where(valid.unsqueeze(2), q_bh4, torch.zeros_like(q_bh4) + torch.tensor([0.0, 0.0, 0.0, 1.0]))
        d_t = torch.cdist(t, t)  # (B, H, H)
        d_r = rotation_angle_t(q.unsqueeze(2), q.unsqueeze(1))
        pair_ok = valid.unsqueeze(2) & valid.unsqueeze(1)
        inl = pair_ok & (d_t <= self.fusion_t) & (d_r <= self.fusion_r)
        h = t.shape[1]
        # Most inliers wins; among equals the most compact set (the residual term stays below 1).
        resid = ((d_t / self.fusion_t + d_r / self.fusion_r) * inl.float()).sum(dim=2)
        score = inl.float().sum(dim=2) - resid / (2.0 * h + 1.0)
        score = torch.where(valid, score, torch.full_like(score, -1.0))
        best = score.argmax(dim=1)
        inliers = inl[torch.arange(t.shape[0]), best]  # (B, H)
        w = inliers.float().unsqueeze(2)
        t_b3 = (t * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)
        q_best = q[torch.arange(t.shape[0]), best].unsqueeze(1)
        sign = torch.where((q * q_best).sum(dim=2, keepdim=True) < 0, -1.0, 1.0)
        q_b4 = quat_unit_canonical((q * sign * w).sum(dim=1))
        # No finite hypothesis at all: say so with NaN rather than a made-up pose at the origin.
        none = ~valid.any(dim=1, keepdim=True)
        t_b3 = torch.where(none, torch.full_like(t_b3, float("nan")), t_b3)
        q_b4 = torch.where(none, torch.full_like(q_b4, float("nan")), q_b4)
        return t_b3, q_b4, inliers

    @torch.jit.export
    def hypotheses(self, images_b3hw: Tensor, prev_f_pc: Tensor, prev_t_p3: Tensor, prev_q_p4: Tensor
                   ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Section 3.4 end to end: ``(t_b3, q_b4, hyp_t_bh3, hyp_q_bh4, inliers_bh, f_f_bc)``.

        ``prev_*`` are the PRP features and estimated poses of up to two
        previous frames of the sequence (``P = 0`` for a single image); each
        adds a hypothesis to every image of the batch. The hypotheses are
        the ``K`` precise poses first, then the sequence ones.
        """
        f_r, f_c, f_f = self.encode(images_b3hw)
        idx = self.retrieve(f_r)
        t_c, q_c = self.coarse(f_c, idx)
        t_h, q_h = self.refine_keyframes(f_f, self.nearest(t_c, q_c))
        b = f_f.shape[0]
        p = prev_f_pc.shape[0]
        if p > 0:
            prev_f = prev_f_pc.to(f_f.dtype).unsqueeze(0).expand(b, p, f_f.shape[1])
            prev_t = prev_t_p3.to(f_f.dtype).unsqueeze(0).expand(b, p, 3)
            prev_q = prev_q_p4.to(f_f.dtype).unsqueeze(0).expand(b, p, 4)
            t_s, q_s = self.refine(f_f, prev_f, prev_t, prev_q)
            t_h = torch.cat([t_h, t_s], dim=1)
            q_h = torch.cat([q_h, q_s], dim=1)
        t_b3, q_b4, inliers = self.fuse(t_h, q_h)
        return t_b3, q_b4, t_h, q_h, inliers, f_f

    def forward(self, images_b3hw: Tensor) -> Tuple[Tensor, Tensor]:
        """``(t_b3 metres, q_b4 unit (x, y, z, w))`` of single images (no sequence hypotheses)."""
        empty = torch.zeros(0, self.feature_dim, device=self.db_t.device)
        out = self.hypotheses(images_b3hw, empty, torch.zeros(0, 3, device=self.db_t.device),
                              torch.zeros(0, 4, device=self.db_t.device))
        return out[0], out[1]


def wrap_camnet(net: CamNet, database: Database, input_size: Sequence[int], k: int = DEFAULT_K,
                fusion: tuple[float, float] = (0.25, float(np.radians(10.0)))) -> ExportedCamNet:
    """Return an eager :class:`ExportedCamNet` of a frozen CPU copy of ``net`` and ``database``."""
    net = frozen_cpu_copy(net)
    return ExportedCamNet(net.encoder, net.icr_head, net.pfr_head, net.prp_head, database, input_size,
                          net.config.backbone, k, fusion).eval()


def compile_camnet(eager: ExportedCamNet, seed: int = 0) -> torch.jit.ScriptModule:
    """Trace the encoder and script the rest (retrieval, regressors, fusion)."""
    h, w = eager.input_height, eager.input_width
    x = (random_images(2, h, w, seed).float() / 255.0 - eager.img_mean) / eager.img_std
    with torch.no_grad(), quiet_torch_deprecations():
        try:
            traced = torch.jit.trace(eager.net, (x,), check_trace=False)
        except Exception as e:  # tracing fails in many ways; all mean "this net cannot be exported"
            raise RelocError(f"tracing the CamNet encoder for export failed: {e}") from e
        db = Database(eager.db_desc, eager.db_fc, eager.db_ff, eager.db_t, eager.db_q, eager.backbone_name,
                      (w, h), np.arange(len(eager.db_t)))
        inner = ExportedCamNet(traced, eager.icr_head, eager.pfr_head, eager.prp_head, db, (w, h), db.backbone,
                               eager.k, (float(eager.fusion_t), float(eager.fusion_r)))
        return torch.jit.script(inner.eval())


def export_camnet(eager: ExportedCamNet, path: str | Path, metadata: Mapping[str, Any], seed: int = 0,
                  atol: float = 1e-4) -> Path:
    """Write ``eager`` as one TorchScript file with ``metadata``; reloaded and checked before it replaces ``path``."""
    path = Path(path)
    check_output_file(path, "model")
    meta = build_metadata({**metadata, "model_kind": "camnet"}, eager)
    meta["outputs"] = {**meta["outputs"], "hypotheses": "module.hypotheses(images, prev_f, prev_t, prev_q) -> "
                       "(t_b3, q_b4, hyp_t_bh3, hyp_q_bh4, inliers_bh, f_f_bc); see reloc_ros.training.camnet_export"}
    scripted = compile_camnet(eager, seed)
    h, w = eager.input_height, eager.input_width
    with atomic_path(path) as tmp:
        with quiet_torch_deprecations():
            torch.jit.save(scripted, str(tmp), _extra_files={METADATA_FILE: metadata_json(meta)})
            reloaded = torch.jit.load(str(tmp), map_location="cpu").eval()
        with torch.no_grad():
            images = random_images(3, h, w, seed + 1)
            ref = eager.encode(images)
            got = reloaded.encode(images)
            diff = max(float((a - b).abs().max()) for a, b in zip(ref, got))
        if not diff <= atol:
            raise RelocError(f"the saved CamNet encoder differs from the eager one by {diff:.3g} (> {atol:.3g})")
    logger.info("exported CamNet to %s (%.1f MB, database of %d key frames; max |saved - eager| %.2g)", path,
                path.stat().st_size / 1e6, len(eager.db_t), diff)
    return path
