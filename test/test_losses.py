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

"""Pose losses: PoseNet beta loss, Kendall 2017 learned weighting, Ward et al. geometric loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reloc_ros.geometry import quat_canonical
from reloc_ros.nets.losses import (
    DEFAULT_BETA,
    GEOMETRIC_BETA,
    LOSS_KINDS,
    BetaLoss,
    GeometricLoss,
    LearnedWeightingLoss,
    build_loss,
)

S45 = math.sqrt(0.5)


def _targets(n: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(n, 3))
    q = rng.normal(size=(n, 4))
    q = quat_canonical(q / np.linalg.norm(q, axis=1, keepdims=True))
    return torch.tensor(t, dtype=torch.float32), torch.tensor(q, dtype=torch.float32)


def _rot_about_x(deg: float, n: int) -> torch.Tensor:
    a = math.radians(deg) / 2
    return torch.tensor([[math.sin(a), 0.0, 0.0, math.cos(a)]] * n)


def _quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product of (x, y, z, w) quaternions, rows of (n, 4)."""
    ax, ay, az, aw = a.unbind(1)
    bx, by, bz, bw = b.unbind(1)
    return torch.stack([aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx,
                        aw * bz + ax * by - ay * bx + az * bw,
                        aw * bw - ax * bx - ay * by - az * bz], dim=1)


ALL = [("beta", lambda: BetaLoss(5.0)), ("learned", LearnedWeightingLoss),
       ("geometric", lambda: GeometricLoss(beta=5.0))]


@pytest.mark.parametrize("name, make", ALL)
def test_zero_error_parts_at_a_perfect_prediction(name, make):
    t, q = _targets()
    loss, parts = make()(t, q, t, q)
    assert float(parts["trans"]) == pytest.approx(0.0, abs=1e-6)
    assert float(parts["rot"]) == pytest.approx(0.0, abs=1e-6)
    if name == "learned":
        assert loss.item() == pytest.approx(0.0 + (-3.0), abs=1e-6)  # only s_x + s_q remain
    else:
        assert loss.item() == pytest.approx(0.0, abs=1e-5)
    assert all(p.dim() == 0 and not p.requires_grad for p in parts.values())


@pytest.mark.parametrize("name, make", ALL)
def test_loss_increases_with_translation_error(name, make):
    t, q = _targets()
    loss_fn = make()
    direction = torch.nn.functional.normalize(torch.randn(t.shape, generator=torch.Generator().manual_seed(1)), dim=1)
    values = [loss_fn(t + e * direction, q, t, q)[0].item() for e in (0.0, 0.05, 0.2, 1.0, 3.0)]
    assert all(b > a for a, b in zip(values, values[1:])), values


@pytest.mark.parametrize("name, make", ALL)
def test_loss_increases_with_rotation_error(name, make):
    t, q = _targets()
    loss_fn = make()
    values = []
    for deg in (0.0, 2.0, 10.0, 45.0, 120.0):
        q_pred = _quat_mul(q, _rot_about_x(deg, len(q)))
        values.append(loss_fn(t, q_pred, t, q)[0].item())
    assert all(b > a for a, b in zip(values, values[1:])), values


def test_beta_loss_value_and_beta_scales_rotation_only():
    t = torch.zeros(2, 3)
    q = torch.tensor([[0.0, 0.0, 0.0, 1.0]] * 2)
    t_pred = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]])  # errors 5 and 1 -> mean 3
    q_pred = torch.tensor([[0.0, 0.0, 0.6, 1.0], [0.0, 0.0, 0.0, 1.0]])  # errors 0.6 and 0 -> mean 0.3
    loss1, parts = BetaLoss(1.0)(t_pred, q_pred, t, q)
    loss2, _ = BetaLoss(2.0)(t_pred, q_pred, t, q)
    assert float(parts["trans"]) == pytest.approx(3.0)
    assert float(parts["rot"]) == pytest.approx(0.3)
    assert loss1.item() == pytest.approx(3.3)
    assert float(loss2 - loss1) == pytest.approx(0.3)  # one more beta times the rotation term
    # Translation-only error: beta plays no role.
    assert float(BetaLoss(1.0)(t_pred, q, t, q)[0]) == pytest.approx(float(BetaLoss(100.0)(t_pred, q, t, q)[0]))


def test_beta_loss_normalises_the_target_but_not_the_prediction():
    # PoseNet: ||q^ - q / ||q|| ||. A scaled target is the same target; a
    # scaled prediction is an error (the prediction is not normalised).
    t, q = _targets()
    loss_fn = BetaLoss(10.0)
    assert loss_fn(t, q, t, 3.0 * q)[0].item() == pytest.approx(0.0, abs=1e-5)
    assert float(loss_fn(t, 2.0 * q, t, q)[1]["rot"]) == pytest.approx(1.0, abs=1e-5)


def test_targets_on_the_wrong_hemisphere_are_flipped():
    t, q = _targets()
    for loss_fn in (BetaLoss(), LearnedWeightingLoss(), GeometricLoss()):
        a = loss_fn(t, q, t, q)[0]
        b = loss_fn(t, q, t, -q)[0]
        torch.testing.assert_close(a, b)


def test_learned_weighting_value_l1_and_normalised_prediction():
    loss_fn = LearnedWeightingLoss(sx_init=0.5, sq_init=-2.0)
    t = torch.zeros(1, 3)
    q = torch.tensor([[0.0, 0.0, 0.0, 1.0]])
    t_pred = torch.tensor([[1.0, -2.0, 0.5]])  # L1 3.5 (L2 would be 2.29)
    q_pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])  # normalised (0, 0, .707, .707): L1 = .707 + (1 - .707) = 1
    loss, parts = loss_fn(t_pred, q_pred, t, q)
    assert float(parts["trans"]) == pytest.approx(3.5)
    assert float(parts["rot"]) == pytest.approx(1.0, abs=1e-6)
    assert float(parts["sx"]) == 0.5 and float(parts["sq"]) == -2.0
    expected = 3.5 * math.exp(-0.5) + 0.5 + 1.0 * math.exp(2.0) - 2.0
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_learned_weighting_has_two_trainable_parameters_that_get_gradients():
    loss_fn = LearnedWeightingLoss()
    params = list(loss_fn.parameters())
    assert len(params) == 2 and all(p.requires_grad and p.numel() == 1 for p in params)
    assert loss_fn.sx.item() == 0.0 and loss_fn.sq.item() == -3.0  # Kendall & Cipolla 2017's initial values
    t, q = _targets()
    t_pred = (t + 0.3).requires_grad_()
    loss, _ = loss_fn(t_pred, _quat_mul(q, _rot_about_x(20.0, len(q))), t, q)
    loss.backward()
    assert loss_fn.sx.grad is not None and loss_fn.sq.grad is not None
    assert float(loss_fn.sx.grad) != 0.0 and float(loss_fn.sq.grad) != 0.0
    # dL/ds_x = 1 - L_t exp(-s_x): at s_x = 0 with L_t = 0.9 (L1 of 0.3 per axis) it is 0.1.
    assert float(loss_fn.sx.grad) == pytest.approx(1.0 - 0.9, abs=1e-5)
    # One optimiser step moves them (the trainer hands loss.parameters() to Adam).
    opt = torch.optim.Adam(loss_fn.parameters(), lr=0.1)
    opt.step()
    assert loss_fn.sx.item() != 0.0 and loss_fn.sq.item() != -3.0


def test_geometric_loss_hand_computed_translation_only():
    # Identity rotations, camera looking along +z (optical frame), look-ahead 1:
    # p = (1, 0, 0) + (0, 0, 1) = (1, 0, 1), p^ = (0, 1, 0) + (0, 0, 1) = (0, 1, 1).
    # d = p - p^ = (1, -1, 0), ||d|| = sqrt(2).
    # eq. 6 (as printed): cos(p^, d) = -1 / (sqrt(2) sqrt(2)) = -1/2, s_bar = 3/2, L_geo = 2 * 3/2 = 3.
    # Prose reading: cos(p, d) = 1/2, s_bar = 1/2, L_geo = 1.
    t, t_pred = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0]])
    q = torch.tensor([[0.0, 0.0, 0.0, 1.0]])
    loss, parts = GeometricLoss(beta=2.0)(t_pred, q, t, q)
    assert float(parts["trans"]) == pytest.approx(math.sqrt(2.0))
    assert float(parts["geo"]) == pytest.approx(3.0)
    assert float(parts["rot"]) == pytest.approx(0.0)
    assert loss.item() == pytest.approx(math.sqrt(2.0) + 3.0)
    loss_gt, parts_gt = GeometricLoss(beta=2.0, cosine_with="gt")(t_pred, q, t, q)
    assert float(parts_gt["geo"]) == pytest.approx(1.0)
    assert loss_gt.item() == pytest.approx(math.sqrt(2.0) + 1.0)


def test_geometric_loss_hand_computed_rotation_only():
    # Same position (origin); prediction rotated +90 deg about y, which turns
    # the optical axis z into x: p = (0, 0, 1), p^ = (1, 0, 0), d = (-1, 0, 1),
    # ||d|| = sqrt(2), cos(p^, d) = -1/sqrt(2), L_geo = 2 (1 + 1/sqrt(2)).
    # ||q^ - q|| = ||(0, .707, 0, .707 - 1)|| = sqrt(2 - sqrt(2)).
    # eq. 10 with beta = 500: 1.5 * 500 * sqrt(2 - sqrt(2)) + sqrt(2) + 2 + sqrt(2).
    zero = torch.zeros(1, 3)
    q = torch.tensor([[0.0, 0.0, 0.0, 1.0]])
    q_pred = torch.tensor([[0.0, S45, 0.0, S45]])
    loss, parts = GeometricLoss()(zero, q_pred, zero, q)
    rot = math.sqrt(2.0 - math.sqrt(2.0))
    assert float(parts["rot"]) == pytest.approx(rot, rel=1e-5)
    assert float(parts["trans"]) == pytest.approx(math.sqrt(2.0), rel=1e-5)
    assert float(parts["geo"]) == pytest.approx(2.0 + math.sqrt(2.0), rel=1e-5)
    assert loss.item() == pytest.approx(750.0 * rot + 2.0 + 2.0 * math.sqrt(2.0), rel=1e-5)


def test_geometric_pose_vector_ignores_quaternion_sign_and_scale_but_rot_term_does_not():
    t, q = _targets()
    t_pred = t + 0.2
    loss_fn = GeometricLoss(beta=1.0)
    q_pred = _quat_mul(q, _rot_about_x(15.0, len(q)))
    _, a = loss_fn(t_pred, q_pred, t, q)
    _, b = loss_fn(t_pred, -2.0 * q_pred, t, q)
    torch.testing.assert_close(a["trans"], b["trans"])  # R(q^) is that of q^ / ||q^||, sign-free
    torch.testing.assert_close(a["geo"], b["geo"])
    assert float(b["rot"]) > float(a["rot"]) + 1.0  # eq. 10's ||q^ - q|| is on the raw prediction


def test_geometric_position_scale_and_look_ahead_are_in_metres():
    t, q = _targets()
    q_pred = _quat_mul(q, _rot_about_x(10.0, len(q)))
    t_pred = t + 0.1
    # Normalised positions with a 2 m scale == positions in metres with scale 1.
    a = GeometricLoss(position_scale=2.0)(t_pred, q_pred, t, q)
    b = GeometricLoss(position_scale=1.0)(2.0 * t_pred, q_pred, 2.0 * t, q)
    torch.testing.assert_close(a[0], b[0])
    # look_ahead = 0 is the bare-position reading: rotation leaves ||d|| alone.
    bare = GeometricLoss(look_ahead=0.0)
    _, parts = bare(t, q_pred, t, q)
    assert float(parts["trans"]) == pytest.approx(0.0, abs=1e-6)
    _, parts = GeometricLoss()(t, q_pred, t, q)
    assert float(parts["trans"]) > 0.1  # the default pose vector sees the 10 deg rotation


def test_geometric_gradients_finite_at_and_near_a_perfect_prediction():
    t, q = _targets()
    for offset in (0.0, 1e-4):
        t_pred = (t + offset).requires_grad_()
        q_pred = q.clone().requires_grad_()
        loss, _ = GeometricLoss()(t_pred, q_pred, t, q)
        loss.backward()
        assert torch.isfinite(t_pred.grad).all() and torch.isfinite(q_pred.grad).all()


def test_geometric_loss_default_beta_and_rot_weight():
    t, q = _targets()
    q_pred = _quat_mul(q, _rot_about_x(5.0, len(q)))
    loss, parts = GeometricLoss(look_ahead=0.0)(t, q_pred, t, q)
    assert loss.item() == pytest.approx(1.5 * 500.0 * float(parts["rot"]), rel=1e-5)


def test_shape_errors_name_the_tensors():
    t, q = _targets()
    for loss_fn in (BetaLoss(), LearnedWeightingLoss(), GeometricLoss()):
        with pytest.raises(ValueError, match="t_pred \\(B, 3\\).*q_pred is wrong"):
            loss_fn(t, q[:, :3], t, q)
        with pytest.raises(ValueError, match="t_gt is wrong"):
            loss_fn(t, q, t[:-1], q)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan"), True])
def test_invalid_betas_are_rejected(bad):
    with pytest.raises(ValueError, match="beta must be a finite number > 0"):
        BetaLoss(bad)
    with pytest.raises(ValueError, match="beta must be a finite number > 0"):
        GeometricLoss(beta=bad)


def test_geometric_option_validation():
    with pytest.raises(ValueError, match="cosine_with must be 'pred' \\(eq. 6\\) or 'gt'"):
        GeometricLoss(cosine_with="both")
    with pytest.raises(ValueError, match="forward_axis"):
        GeometricLoss(forward_axis=(0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="position_scale"):
        GeometricLoss(position_scale=0.0)
    with pytest.raises(ValueError, match="sq_init"):
        LearnedWeightingLoss(sq_init=float("nan"))


def test_build_loss_kinds_and_defaults():
    assert LOSS_KINDS == ("beta", "learned", "geometric")
    beta = build_loss("beta", None)
    assert isinstance(beta, BetaLoss) and beta.beta == DEFAULT_BETA
    assert build_loss("beta", 250.0).beta == 250.0
    geo = build_loss("geometric", None, position_scale=1.7)
    # The trainer's default weighs rotation as the beta loss does in metres: 1.5 beta = 10 x 1.7 (a deviation);
    # the paper's 500 is the class default and an explicit beta.
    assert isinstance(geo, GeometricLoss) and geo.beta == pytest.approx(DEFAULT_BETA * 1.7 / 1.5)
    assert geo.position_scale == 1.7 and GeometricLoss().beta == GEOMETRIC_BETA == 500.0
    assert build_loss("geometric", 500.0, position_scale=1.7).beta == 500.0
    learned = build_loss("learned", None, sq_init=-2.0)
    assert isinstance(learned, LearnedWeightingLoss) and learned.sq.item() == -2.0
    with pytest.raises(ValueError, match="unknown loss kind 'l2'; valid kinds: beta, learned, geometric"):
        build_loss("l2", None)
    with pytest.raises(ValueError, match="takes no beta"):
        build_loss("learned", 100.0)
