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

"""NeRF-P network (reloc_ros.nets.nerfp.field): eq. 3 with the colour's weights, pose vectors, no pose branch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import nerfp_tiny_config
from reloc_ros.data.types import Intrinsics
from reloc_ros.errors import RelocError
from reloc_ros.nets.nerfp import NerfP, NerfPConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = nerfp_tiny_config()


def _rz(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])


def test_posemap_is_rendered_with_the_colour_weights():
    torch.manual_seed(0)
    model = NerfP(TINY, [-1.0, -1.0, -1.0], [1.0, 1.0, 1.0])
    with torch.no_grad():
        for g in model.encoding.grids:
            g.normal_(0.0, 1.0)  # a field with structure, so weights vary along and across rays
        # Every sample gets the same pose feature c and the same colour sigmoid(b): then eq. 3 gives
        # F = (sum_i w_i) c and the colour sum_i w_i sigmoid(b), with the weights of eq. 4.
        c = torch.arange(1.0, TINY.pose_feature_dim + 1)
        model.pose_head[-1].weight.zero_()
        model.pose_head[-1].bias.copy_(c)
        model.colour_net[-1].weight.zero_()
        model.colour_net[-1].bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
        o_r3 = torch.zeros(50, 3)
        d_r3 = torch.nn.functional.normalize(torch.randn(50, 3), dim=1)
        out = model.render_rays(o_r3, d_r3, near=0.0, far=5.0)
    acc_r = out["weights_rs"].sum(1)
    assert float(acc_r.min()) > 0.01 and float(acc_r.max()) < 1.0  # partly transparent rays: a real check
    np.testing.assert_allclose(out["posemap_rk"].numpy(), (acc_r[:, None] * c).numpy(), rtol=1e-5)
    np.testing.assert_allclose(out["rgb_r3"].numpy(),
                               (acc_r[:, None] * torch.sigmoid(torch.tensor([0.0, 1.0, -1.0]))).numpy(), rtol=1e-5)
    # Samples lie inside the box, between near and the exit point, in order.
    assert bool((out["t_rs"].diff(dim=1) > 0).all())
    assert float(out["t_rs"].max()) <= math.sqrt(3.0) + 1e-5


def test_pose_vector_round_trip_and_no_pose_branch():
    model = NerfP(TINY, [-3.0, -2.0, 0.0], [5.0, 2.0, 3.0])
    T = np.eye(4)
    T[:3, :3] = _rz(30.0) @ np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])
    T[:3, 3] = [4.0, -1.0, 0.5]
    T_t = torch.tensor(T, dtype=torch.float32)[None]
    v = model.pose_vector(T_t)
    assert v.shape == (1, 12)
    np.testing.assert_allclose(v[0, [3, 7, 11]].numpy(), [(4.0 - 1.0) / 4.0, -1.0 / 4.0, (0.5 - 1.5) / 4.0])
    np.testing.assert_allclose(model.pose_matrix(v).numpy(), T_t.numpy(), atol=1e-5)
    bare = NerfP(NerfPConfig(pose_feature_dim=0, max_resolution=16, levels=2), [0, 0, 0], [1, 1, 1])
    assert not bare.has_pose_branch and bare.pose_parameters() == []
    with torch.no_grad():
        out = bare.render_image(np.eye(4), Intrinsics(4.0, 4.0, 1.5, 1.5, 4, 4))
    assert "posemap_hwk" not in out
    with pytest.raises(RelocError, match="no pose branch"):
        bare.decode_pose(torch.zeros(1, 2, 2, 8))
