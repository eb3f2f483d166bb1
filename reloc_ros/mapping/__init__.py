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


"""The 3-D feature map the runtime verifier checks a learned pose against.

* :mod:`~reloc_ros.mapping.features`: local features (SIFT / ORB) and ratio-test matching.
* :mod:`~reloc_ros.mapping.featuremap`: :class:`FeatureMap` (keyframes, points, observations) and its storage.
* :mod:`~reloc_ros.mapping.build`: build a map from posed images, triangulated from the known poses or from depth.
"""

from reloc_ros.mapping.build import MapConfig, build_map, extract_features, select_keyframes
from reloc_ros.mapping.featuremap import FeatureMap, MAP_FORMAT, MAP_FORMAT_VERSION, digest, thumbnail_descriptor
from reloc_ros.mapping.features import detect, FEATURE_TYPES, match

__all__ = ["FEATURE_TYPES", "FeatureMap", "MAP_FORMAT", "MAP_FORMAT_VERSION", "MapConfig", "build_map", "detect",
           "digest", "extract_features", "match", "select_keyframes", "thumbnail_descriptor"]
