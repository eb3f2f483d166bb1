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

"""The synthetic scene: furniture is placed where no route passes."""

from __future__ import annotations

import pytest

from reloc_ros.data import synth


@pytest.mark.parametrize("scene", ["room", "two_rooms"])
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_no_camera_inside_furniture(scene, seed):
    cfg = synth.scene_config(scene)
    for route in synth.ROUTES:
        run = synth.make_run(route, frames=600, seed=seed, scene=scene)
        assert len(run.scene.box_kinds) >= cfg.furniture  # furniture was actually placed
        cams = run.T_map_cam()[:, :3, 3]
        assert not run.scene.inside_box(cams, margin=0.2).any()
        assert run.scene.inside_room(cams, margin=0.5).all()
        base = run.T_map_base(run.image_stamps_ns)[:, :3, 3]
        assert not run.scene.inside_box(base, margin=0.3).any()
