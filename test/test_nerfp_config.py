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

"""NeRF-P configuration (reloc_ros.nets.nerfp.config): validation by field name, dict round trip."""

from __future__ import annotations

import pytest

from reloc_ros.nets.nerfp import NerfPConfig


@pytest.mark.parametrize("field, value", [
    ("levels", 0), ("features_per_level", 1.5), ("max_resolution", 1024), ("base_resolution", 1),
    ("samples_per_ray", -3), ("far", 0.01), ("near", float("nan")), ("pose_feature_dim", -1),
    ("posemap_pool", (0, 2)), ("decoder_hidden", (64, 0)), ("view_dependent", "yes"), ("posemap_stride", 0),
])
def test_config_rejects_bad_values_by_name(field, value):
    with pytest.raises(ValueError) as err:
        NerfPConfig(**{field: value})
    assert field in str(err.value) and repr(value) in str(err.value)


def test_config_round_trip_and_unknown_keys():
    cfg = NerfPConfig(pose_feature_dim=16, posemap_pool=(3, 5), decoder_hidden=(128, 64))
    # Lists are what a JSON round trip gives back.
    as_json = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.to_dict().items()}
    assert NerfPConfig.from_dict(as_json) == cfg
    with pytest.raises(ValueError, match="unknown NeRF-P config keys \\['width'\\]"):
        NerfPConfig.from_dict({"width": 3})
    assert NerfPConfig().grid_resolutions()[0] == 8 and NerfPConfig().grid_resolutions()[-1] == 128
