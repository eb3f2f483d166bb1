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

"""CamNet frame by frame: sequence hypotheses, covariance from the inlier spread. ROS-free.

The same code runs in the trainer (to fit the consensus thresholds and the
covariance calibration on the validation frames) and in the runtime engine,
so what was calibrated is what runs.

**Sequence hypotheses** (section 3.4): the PRP features and estimated poses
of the :data:`SEQUENCE_FRAMES` (2) previous frames are extra references. They
are used only while the stream is continuous: a frame older than
:data:`SEQUENCE_MAX_GAP_S` or a stamp going backwards (a bag replayed again,
a reboot) clears them, so a kidnapped robot is not pulled back to where it
was by stale frames for more than the consensus lets them.

**Covariance**: the second moment of the consensus inliers about the fused
pose (:func:`reloc_ros.runtime.uncertainty.sample_covariance`). With fewer
than two inliers (no two hypotheses agree) it is the spread of *all*
hypotheses, which is large exactly when they disagree, so the answer comes
with a low confidence instead of a confident wrong pose. The raw spread is
then calibrated on the validation frames like the MC-dropout one (a scale and
a floor per axis group, :func:`reloc_ros.runtime.uncertainty.fit_calibration`):
the floor is learned from the data, not a constant made up here.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from reloc_ros.geometry import make_pose, matrix_to_quat, quat_angle_deg
from reloc_ros.runtime import uncertainty as U

logger = logging.getLogger(__name__)

SEQUENCE_FRAMES = 2
"""Previous frames used as extra references (section 3.4: two)."""
SEQUENCE_MAX_GAP_S = 1.0
"""A previous frame older than this is not used."""


class SequenceState:
    """The previous frames' PRP features and estimated poses, reset on gaps and stamps going backwards."""

    def __init__(self, frames: int = SEQUENCE_FRAMES, max_gap_s: float = SEQUENCE_MAX_GAP_S) -> None:
        self.max_gap_ns = int(max_gap_s * 1e9)
        self._frames: deque = deque(maxlen=max(0, int(frames)))

    def references(self, stamp_ns: int, feature_dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(f (P, C), t (P, 3), q (P, 4))`` of the usable previous frames (``P`` may be 0)."""
        if self._frames and (stamp_ns <= self._frames[-1][0] or stamp_ns - self._frames[-1][0] > self.max_gap_ns):
            self._frames.clear()
        use = [f for f in self._frames if 0 < stamp_ns - f[0] <= self.max_gap_ns]
        if not use:
            return torch.zeros(0, feature_dim), torch.zeros(0, 3), torch.zeros(0, 4)
        return (torch.stack([f[1] for f in use]), torch.stack([f[2] for f in use]), torch.stack([f[3] for f in use]))

    def push(self, stamp_ns: int, f_f: torch.Tensor, t_3: torch.Tensor, q_4: torch.Tensor) -> None:
        self._frames.append((int(stamp_ns), f_f.detach().float().cpu(), t_3.detach().float().cpu(),
                             q_4.detach().float().cpu()))

    def clear(self) -> None:
        self._frames.clear()


@dataclass
class FrameResult:
    """One CamNet frame: fused pose, hypotheses (``(H, 4, 4)``), inlier mask and raw covariance."""

    T_map_cam: np.ndarray
    hypotheses: np.ndarray
    inliers: np.ndarray
    raw_covariance: np.ndarray


def raw_covariance(t_3: np.ndarray, q_4: np.ndarray, hyp_t_h3: np.ndarray, hyp_q_h4: np.ndarray,
                   inliers_h: np.ndarray) -> np.ndarray:
    """Second moment about the fused pose of the inliers, or of all hypotheses without two inliers; ``(6, 6)``."""
    use = inliers_h if inliers_h.sum() >= 2 else np.ones_like(inliers_h)
    if use.sum() < 2:
        return np.zeros((6, 6))
    return U.sample_covariance(t_3[None], q_4[None], hyp_t_h3[use][None], hyp_q_h4[use][None])[0]


def run_frame(module: Any, x_1hw3: torch.Tensor, stamp_ns: int, state: SequenceState | None) -> FrameResult:
    """Relocalize one preprocessed uint8 image ``(1, H, W, 3)`` with ``module`` (eager or TorchScript)."""
    feature_dim = int(module.feature_dim)
    prev = state.references(stamp_ns, feature_dim) if state is not None else (
        torch.zeros(0, feature_dim), torch.zeros(0, 3), torch.zeros(0, 4))
    device = module.db_t.device
    with torch.no_grad():
        t, q, hyp_t, hyp_q, inliers, f_f = module.hypotheses(x_1hw3.to(device).permute(0, 3, 1, 2),
                                                             *(p.to(device) for p in prev))
    if state is not None and bool(torch.isfinite(t).all()):
        state.push(stamp_ns, f_f[0], t[0], q[0])
    t3, q4 = t[0].double().cpu().numpy(), q[0].double().cpu().numpy()
    ht, hq = hyp_t[0].double().cpu().numpy(), hyp_q[0].double().cpu().numpy()
    inl = inliers[0].cpu().numpy().astype(bool)
    if not (np.isfinite(t3).all() and np.isfinite(q4).all()):  # the engine turns this into a NoEstimate
        return FrameResult(np.full((4, 4), np.nan), np.zeros((0, 4, 4)), inl, np.full((6, 6), np.nan))
    ok = np.isfinite(ht).all(axis=1) & np.isfinite(hq).all(axis=1)  # fuse() already ignored the others
    ht, hq, inl = ht[ok], hq[ok], inl[ok]
    q4 = q4 / np.linalg.norm(q4)
    hq = hq / np.linalg.norm(hq, axis=1, keepdims=True)
    poses = make_pose(np.concatenate([t3[None], ht]), np.concatenate([q4[None], hq]))
    return FrameResult(poses[0], poses[1:], inl, raw_covariance(t3, q4, ht, hq, inl))


@dataclass
class SequenceRun:
    poses_n44: np.ndarray
    raw_covariances: np.ndarray
    inlier_counts: np.ndarray


def run_sequence(module: Any, images_nhw3: torch.Tensor, stamps_ns: np.ndarray) -> SequenceRun:
    """Run frames in stamp order as the runtime does (sequence hypotheses on continuous stretches)."""
    state = SequenceState()
    poses, covs, counts = [], [], []
    for i in range(len(images_nhw3)):
        r = run_frame(module, images_nhw3[i:i + 1], int(stamps_ns[i]), state)
        poses.append(r.T_map_cam)
        covs.append(r.raw_covariance)
        counts.append(int(r.inliers.sum()))
    return SequenceRun(np.stack(poses), np.stack(covs), np.asarray(counts))


def fit_fusion_thresholds(module: Any, images_nhw3: torch.Tensor, poses_n44: np.ndarray,
                          floor: tuple[float, float]) -> tuple[float, float]:
    """Consensus thresholds (metres, radians): twice the median error of single precise hypotheses, floored."""
    errs_t, errs_r = [], []
    with torch.no_grad():
        for i in range(0, len(images_nhw3), 64):
            x = images_nhw3[i:i + 64].permute(0, 3, 1, 2)
            f_r, f_c, f_f = module.encode(x)
            t_c, q_c = module.coarse(f_c, module.retrieve(f_r))
            t_h, q_h = module.refine_keyframes(f_f, module.nearest(t_c, q_c))
            gt = poses_n44[i:i + 64]
            errs_t.append(np.linalg.norm(t_h.double().numpy() - gt[:, None, :3, 3], axis=2).ravel())
            q_gt = matrix_to_quat(gt[:, :3, :3])
            q_np = q_h.double().numpy()
            errs_r.append(quat_angle_deg(q_np / np.linalg.norm(q_np, axis=2, keepdims=True),
                                         np.repeat(q_gt[:, None], q_np.shape[1], axis=1)).ravel())
    tau_t = max(2.0 * float(np.median(np.concatenate(errs_t))), floor[0])
    tau_r = max(math.radians(2.0 * float(np.median(np.concatenate(errs_r)))), floor[1])
    logger.info("CamNet consensus thresholds from %d validation frames: %.3f m, %.2f deg", len(images_nhw3), tau_t,
                math.degrees(tau_r))
    return tau_t, tau_r


def fit_calibration(seq: SequenceRun, poses_n44: np.ndarray) -> dict:
    """Return the metadata ``uncertainty`` entry: the inlier-spread covariance calibrated on validation frames."""
    entry: dict[str, Any] = {"method": "hypothesis_spread"}
    if len(poses_n44) < U.MIN_CALIBRATION_FRAMES:
        logger.warning("only %d validation frames: too few to calibrate the CamNet covariance (needs %d); the "
                       "raw hypothesis spread is published, usually over-confident", len(poses_n44),
                       U.MIN_CALIBRATION_FRAMES)
        return entry
    cal = U.fit_calibration(U.error_vectors(seq.poses_n44, poses_n44), seq.raw_covariances)
    v = cal.validation
    logger.info("CamNet covariance calibrated on %d validation frames: within 1/2 sigma translation %.0f%%/%.0f%%, "
                "rotation %.0f%%/%.0f%%", cal.frames, 100 * v["translation"]["within_1sigma"],
                100 * v["translation"]["within_2sigma"], 100 * v["rotation"]["within_1sigma"],
                100 * v["rotation"]["within_2sigma"])
    return {**entry, "calibration": cal.to_dict()}
