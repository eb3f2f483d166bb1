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

"""Pose regression losses: PoseNet's beta loss, learned weighting, Ward et al.'s geometric loss.

Every loss is an ``nn.Module`` called as ``loss(t_pred_b3, q_pred_b4, t_gt_b3,
q_gt_b4)`` and returns ``(loss, parts)``:

* ``t_*``: positions ``(B, 3)`` in the trainer's *normalised* units
  (``(p - mean) / scale``, ``scale`` the RMS distance of the training positions
  from their mean, see ``reloc_ros.training.data.PoseNormaliser``).
* ``q_pred``: the network's raw ``(B, 4)`` quaternion output, ``(x, y, z, w)``,
  not normalised. ``q_gt``: unit quaternions on the canonical ``w >= 0``
  hemisphere (each loss re-normalises and flips ``w < 0`` targets anyway: it
  costs nothing and ``q`` / ``-q`` are the same rotation).
* ``loss``: a scalar, the mean over the batch.
* ``parts``: detached 0-d tensors for logging; at least ``'trans'`` and
  ``'rot'``, each the loss's own unweighted position / rotation term averaged
  over the batch (so they are in that loss's units; compare methods with the
  metric errors of :mod:`reloc_ros.geometry`, not with these).

The q / -q ambiguity is handled as in the papers: the targets are kept on one
hemisphere (PoseNet, Kendall & Cipolla 2017 and Ward et al. all do this) and
the network learns to stay there; no loss takes ``min(|q - q'|, |q + q'|)``.

**beta and normalised positions.** The papers weight metres against quaternion
units. With positions divided by ``scale`` metres, a metre-based weight
``beta_m`` corresponds to ``beta_n = beta_m / scale`` for a loss linear in the
position error (PoseNet, and eq. 10's ``||d||`` term): PoseNet's indoor
120-750 becomes 120-750 again for a 1 m RMS spread, 60-375 for 2 m.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import nn

LOSS_KINDS: tuple[str, ...] = ("beta", "learned", "geometric")
"""Kinds accepted by :func:`build_loss`."""

DEFAULT_BETA = 10.0
"""PoseNet beta for positions in normalised units (see :class:`BetaLoss`)."""

GEOMETRIC_BETA = 500.0
"""Ward et al.'s beta for the final regressor (eq. 10, beta_3 = 500): :class:`GeometricLoss`'s
default, and ``--beta 500`` in the trainer (whose default is :func:`balanced_geometric_beta`)."""


def balanced_geometric_beta(position_scale: float, rot_weight: float = 1.5) -> float:
    """Return the trainer's default beta of the geometric loss: PoseNet's rule for beta, as :data:`DEFAULT_BETA`.

    Deviation from Ward et al. (beta = 500). eq. 10 weighs rotation by
    ``1.5 beta`` against metres. With 500, a room-sized scene trained from
    random weights learns rotation and leaves position at the mean: on the
    held-out benchmark's room (RMS spread 2.2 m, 12 epochs) the query error
    was 2.13 m, no better than the mean pose (2.21 m). Weighting rotation as
    the beta loss does in metres (``DEFAULT_BETA * position_scale``, i.e.
    ``1.5 beta = 10 x spread``, beta = 15 there) gave 0.53 m on the same
    run, better than the beta loss's 1.01 m.
    """
    return DEFAULT_BETA * float(position_scale) / float(rot_weight)


_EPS = 1e-8

Parts = dict[str, torch.Tensor]


def _check_shapes(t_pred_b3: torch.Tensor, q_pred_b4: torch.Tensor, t_gt_b3: torch.Tensor,
                  q_gt_b4: torch.Tensor) -> None:
    n = t_pred_b3.shape[0] if t_pred_b3.dim() == 2 else -1
    want = {"t_pred": (t_pred_b3, 3), "q_pred": (q_pred_b4, 4), "t_gt": (t_gt_b3, 3), "q_gt": (q_gt_b4, 4)}
    for name, (x, k) in want.items():
        if x.dim() != 2 or x.shape[1] != k or x.shape[0] != n or n < 1:
            shapes = ", ".join(f"{nm} {tuple(v.shape)}" for nm, (v, _) in want.items())
            raise ValueError(f"pose loss needs t_pred (B, 3), q_pred (B, 4), t_gt (B, 3), q_gt (B, 4) with the "
                             f"same B >= 1; got {shapes} ({name} is wrong)")


def _unit(q_b4: torch.Tensor) -> torch.Tensor:
    return q_b4 / torch.linalg.vector_norm(q_b4, dim=1, keepdim=True).clamp_min(_EPS)


def _canonical_unit(q_b4: torch.Tensor) -> torch.Tensor:
    """Return unit quaternions on the w >= 0 hemisphere (for targets)."""
    q = _unit(q_b4)
    return torch.where(q[:, 3:4] < 0, -q, q)


def _rotate(q_b4: torch.Tensor, v_b3: torch.Tensor) -> torch.Tensor:
    """Rotate vectors ``v`` by unit quaternions ``q`` (x, y, z, w): ``v + 2w (u x v) + 2 u x (u x v)``."""
    u = q_b4[:, :3]
    uv = torch.cross(u, v_b3, dim=1)
    return v_b3 + 2.0 * q_b4[:, 3:4] * uv + 2.0 * torch.cross(u, uv, dim=1)


def _check_weight(name: str, value: float, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


class BetaLoss(nn.Module):
    """PoseNet's loss (Kendall et al. 2015): ``||t^ - t||_2 + beta ||q^ - q / ||q|| ||_2``, batch mean.

    As in PoseNet, the target quaternion is normalised and the predicted one is
    *not* (the network is pushed towards unit norm by the loss itself; it is
    normalised at test time / export).

    ``beta`` weighs rotation against position. PoseNet's indoor values
    (120-750) are for metres; our positions are normalised (RMS spread 1), where
    they correspond to ``beta_m / scale`` (module docstring). The default,
    :data:`DEFAULT_BETA` = 10, follows PoseNet's own rule for choosing beta -
    keep the expected position and orientation terms about equal - in
    normalised units: a good indoor regressor reaches ~0.1-0.3 of the spread
    and a few degrees, i.e. ``||dq|| ~ 0.02-0.05``, a ratio of about 5-10; the
    upper end still favours rotation, as PoseNet's choices do. Paper-sized betas
    (hundreds) with random initialisation are what lets the network give up on
    position and collapse to a constant one (GUIDE, section 5).

    Parts: ``trans`` = mean ``||t^ - t||``, ``rot`` = mean ``||q^ - q||`` (unweighted).
    """

    def __init__(self, beta: float = DEFAULT_BETA) -> None:
        super().__init__()
        self.beta = _check_weight("beta", beta)

    def forward(self, t_pred_b3: torch.Tensor, q_pred_b4: torch.Tensor, t_gt_b3: torch.Tensor,
                q_gt_b4: torch.Tensor) -> tuple[torch.Tensor, Parts]:
        """Return ``(loss, {'trans', 'rot'})``."""
        _check_shapes(t_pred_b3, q_pred_b4, t_gt_b3, q_gt_b4)
        trans_b = torch.linalg.vector_norm(t_pred_b3 - t_gt_b3, dim=1)
        rot_b = torch.linalg.vector_norm(q_pred_b4 - _canonical_unit(q_gt_b4), dim=1)
        trans, rot = trans_b.mean(), rot_b.mean()
        return trans + self.beta * rot, {"trans": trans.detach(), "rot": rot.detach()}

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


class LearnedWeightingLoss(nn.Module):
    """Kendall & Cipolla 2017 learned (homoscedastic) weighting of position and rotation.

    ``L = L_t exp(-s_x) + s_x + L_q exp(-s_q) + s_q`` with ``s_x``, ``s_q``
    learnable log-variances (``nn.Parameter``; pass ``loss.parameters()`` to
    the optimiser with the network's). Following that paper, ``L_t = ||t^ -
    t||_1`` and ``L_q = ||q - q^ / ||q^|| ||_1``: the L1 norm, which they found
    better than L2, and - unlike PoseNet - the *predicted* quaternion is
    normalised; the target is unit and canonical. Both are averaged over the
    batch. The paper's initial values are ``s_x = 0`` and ``s_q = -3``.

    With normalised positions the learnt ``s_x`` simply adapts to the new
    units (that is the point of learning it); the initial values stay sensible
    because the normalised position error starts O(1), as in metres indoors.

    Parts: ``trans``, ``rot`` (the L1 terms, unweighted), ``sx``, ``sq``.
    """

    def __init__(self, sx_init: float = 0.0, sq_init: float = -3.0) -> None:
        super().__init__()
        for name, v in (("sx_init", sx_init), ("sq_init", sq_init)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
        self.sx = nn.Parameter(torch.tensor(float(sx_init)))
        self.sq = nn.Parameter(torch.tensor(float(sq_init)))

    def forward(self, t_pred_b3: torch.Tensor, q_pred_b4: torch.Tensor, t_gt_b3: torch.Tensor,
                q_gt_b4: torch.Tensor) -> tuple[torch.Tensor, Parts]:
        """Return ``(loss, {'trans', 'rot', 'sx', 'sq'})``."""
        _check_shapes(t_pred_b3, q_pred_b4, t_gt_b3, q_gt_b4)
        trans = (t_pred_b3 - t_gt_b3).abs().sum(dim=1).mean()
        rot = (_unit(q_pred_b4) - _canonical_unit(q_gt_b4)).abs().sum(dim=1).mean()
        loss = trans * torch.exp(-self.sx) + self.sx + rot * torch.exp(-self.sq) + self.sq
        return loss, {"trans": trans.detach(), "rot": rot.detach(), "sx": self.sx.detach().clone(),
                      "sq": self.sq.detach().clone()}


class GeometricLoss(nn.Module):
    """Ward et al.'s loss: ``1.5 beta ||q^ - q|| + ||d|| + ||d||^2 s_bar`` (eq. 10), batch mean.

    How the paper is read (section 3, eq. 4-7 and 10):

    * **p and p^ are "pose vectors", not bare positions.** Eq. 4 defines
      ``p = [R | t]^-1 [0 0 -1]^T``: the camera-to-world transform applied to a
      point one unit along the viewing axis, i.e. the world point
      ``c + R_wc f`` a fixed distance in front of the camera centre ``c``. The
      text says this vector is computed from both rotation and translation so
      that the delta vector "combines both translational and rotational error"
      - which only holds for this reading (a bare position, or a bare viewing
      direction, would ignore one of the two). Here ``p = t + a R(q) f`` and
      ``p^ = t^ + a R(q^ / ||q^||) f`` with ``a = look_ahead`` (1, the unit of
      eq. 4) and ``f = forward_axis``: ``(0, 0, 1)``, because reloc_ros poses
      are of the *optical* frame (z forward, REP-103) where eq. 4 assumes the
      OpenGL camera looking along -z. ``R(q^)`` uses the normalised prediction
      (the rotation a quaternion stands for), so this term is blind to the
      sign of ``q^``. With ``look_ahead=0`` it reduces to the bare-position reading.
    * **d = p - p^** (eq. 5), ``||d||`` replaces PoseNet's position term in
      eq. 10 ("the magnitude of the delta vector, which still represents the
      positional error").
    * **s_bar = 1 - cos(p^, d)** (eq. 6 as printed: the *predicted* vector).
      The prose twice says the cosine is taken with the *ground-truth* vector;
      ``cosine_with='gt'`` gives that reading. Either way the cosine is taken
      about the world origin, so the term depends on where the origin is (the
      paper notes a dependence on scene geometry, section 6); here the origin
      is the training-set mean position (positions are normalised), not the
      map origin as in the paper.
    * **L_geo = ||d||^2 s_bar** (eq. 7), computed as ``||d||^2 - ||d|| (v . d) /
      ||v||`` (v the reference vector), which is equal and stays finite at
      ``d = 0``. The ``s_bar`` of eq. 10 is that of eq. 6 (the paper's "dissimilarity").
    * **Rotation term** ``1.5 beta ||q^ - q||`` with ``beta = 500`` (the paper's
      final regressor, beta_3; PoseNet's auxiliary regressors with beta 150
      belong to GoogLeNet and do not exist here). As in PoseNet and eq. 9-10,
      the predicted quaternion is *not* normalised in this term; the target is
      unit and canonical.

    **Units.** beta = 500 and the unit look-ahead are for metres; our positions
    are normalised (divided by ``scale`` metres). ``position_scale`` converts
    them back before the loss: pass the trainer's scale and the loss equals the
    paper's on metric positions (up to the origin noted above), so beta = 500
    keeps its meaning. With the default ``position_scale = 1`` normalised units
    are treated as metres, which is exact only for a 1 m RMS spread: for a
    larger scene the rotation term then weighs more, ``L_geo`` (quadratic)
    less, and the look-ahead is ``scale`` metres. Beta = 500 makes rotation
    dominate; from random initialisation watch for the constant-pose collapse
    (GUIDE, section 5).

    Parts: ``trans`` = mean ``||d||``, ``rot`` = mean ``||q^ - q||``
    (unweighted), ``geo`` = mean ``L_geo``; the first and last are in
    ``position_scale`` units (metres when it is given).
    """

    def __init__(self, beta: float = GEOMETRIC_BETA, rot_weight: float = 1.5, look_ahead: float = 1.0,
                 position_scale: float = 1.0, forward_axis: Sequence[float] = (0.0, 0.0, 1.0),
                 cosine_with: str = "pred") -> None:
        super().__init__()
        self.beta = _check_weight("beta", beta)
        self.rot_weight = _check_weight("rot_weight", rot_weight)
        self.look_ahead = _check_weight("look_ahead", look_ahead, allow_zero=True)
        self.position_scale = _check_weight("position_scale", position_scale)
        axis = [float(v) for v in forward_axis]
        if len(axis) != 3 or not all(math.isfinite(v) for v in axis) or math.hypot(*axis) < 1e-6:
            raise ValueError(f"forward_axis must be a non-zero 3-vector, got {tuple(forward_axis)}")
        if cosine_with not in ("pred", "gt"):
            raise ValueError(f"cosine_with must be 'pred' (eq. 6) or 'gt' (the text), got '{cosine_with}'")
        self.cosine_with = cosine_with
        norm = math.hypot(*axis)
        self.register_buffer("forward_axis", torch.tensor([v / norm for v in axis]), persistent=False)

    def pose_vectors(self, t_b3: torch.Tensor, q_unit_b4: torch.Tensor) -> torch.Tensor:
        """Return eq. 4's pose vectors ``position_scale * t + look_ahead * R(q) f`` (unit ``q``)."""
        f_b3 = self.forward_axis.to(t_b3.dtype).expand_as(t_b3)
        return self.position_scale * t_b3 + self.look_ahead * _rotate(q_unit_b4, f_b3)

    def forward(self, t_pred_b3: torch.Tensor, q_pred_b4: torch.Tensor, t_gt_b3: torch.Tensor,
                q_gt_b4: torch.Tensor) -> tuple[torch.Tensor, Parts]:
        """Return ``(loss, {'trans', 'rot', 'geo'})``."""
        _check_shapes(t_pred_b3, q_pred_b4, t_gt_b3, q_gt_b4)
        q_gt = _canonical_unit(q_gt_b4)
        p_b3 = self.pose_vectors(t_gt_b3, q_gt)
        p_hat_b3 = self.pose_vectors(t_pred_b3, _unit(q_pred_b4))
        d_b3 = p_b3 - p_hat_b3  # eq. 5
        d_norm_b = torch.linalg.vector_norm(d_b3, dim=1)
        ref_b3 = p_hat_b3 if self.cosine_with == "pred" else p_b3
        ref_norm_b = torch.linalg.vector_norm(ref_b3, dim=1).clamp_min(_EPS)
        # ||d||^2 (1 - cos(ref, d)) (eq. 6-7), without dividing by ||d||.
        geo_b = d_norm_b * d_norm_b - d_norm_b * (ref_b3 * d_b3).sum(dim=1) / ref_norm_b
        rot_b = torch.linalg.vector_norm(q_pred_b4 - q_gt, dim=1)
        trans, rot, geo = d_norm_b.mean(), rot_b.mean(), geo_b.mean()
        loss = self.rot_weight * self.beta * rot + trans + geo  # eq. 10
        return loss, {"trans": trans.detach(), "rot": rot.detach(), "geo": geo.detach()}

    def extra_repr(self) -> str:
        return (f"beta={self.beta}, rot_weight={self.rot_weight}, look_ahead={self.look_ahead}, "
                f"position_scale={self.position_scale}, cosine_with='{self.cosine_with}'")


def build_loss(kind: str, beta: float | None = None, **options: Any) -> nn.Module:
    """Build a pose loss by name, with the papers' defaults.

    Args:
        kind: ``'beta'`` (:class:`BetaLoss`, PoseNet), ``'learned'``
            (:class:`LearnedWeightingLoss`, Kendall & Cipolla 2017) or
            ``'geometric'`` (:class:`GeometricLoss`, Ward et al.).
        beta: rotation weight. ``None`` takes the default: :data:`DEFAULT_BETA`
            (10, for normalised positions) for ``'beta'``,
            :func:`balanced_geometric_beta` of ``position_scale`` (a deviation:
            the paper's :data:`GEOMETRIC_BETA` = 500 is ``beta=500``) for
            ``'geometric'``. ``'learned'`` has no beta (it learns the
            weighting) and rejects one.
        **options: further keyword arguments of the loss class, e.g.
            ``sx_init`` / ``sq_init`` (learned), ``position_scale`` /
            ``look_ahead`` / ``cosine_with`` (geometric).

    Raises:
        ValueError: unknown ``kind``, a beta for ``'learned'``, or invalid values.

    """
    if kind == "beta":
        return BetaLoss(DEFAULT_BETA if beta is None else beta, **options)
    if kind == "learned":
        if beta is not None:
            raise ValueError(f"loss 'learned' learns its weighting and takes no beta (got beta={beta}); "
                             "pass beta=None, or use loss 'beta' or 'geometric'")
        return LearnedWeightingLoss(**options)
    if kind == "geometric":
        if beta is None:
            beta = balanced_geometric_beta(options.get("position_scale", 1.0), options.get("rot_weight", 1.5))
        return GeometricLoss(beta, **options)
    raise ValueError(f"unknown loss kind '{kind}'; valid kinds: {', '.join(LOSS_KINDS)}")
