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

"""Read the dataset layouts relocalization research uses into :class:`PoseDataset`.

Three layouts are supported, each read into the same type (camera pose
``T_map_cam`` in the dataset's world frame, camera *optical* frame z forward,
x right, y down; stamps in ns; intrinsics; names; a lazy RGB image loader):

* **7-Scenes** (:func:`read_7scenes`): ``seq-XX/frame-XXXXXX.color.png`` with
  ``frame-XXXXXX.pose.txt`` (4x4 camera-to-world) and ``TrainSplit.txt`` /
  ``TestSplit.txt``.
* **Cambridge Landmarks** (:func:`read_cambridge`): ``dataset_train.txt`` /
  ``dataset_test.txt`` (image, camera centre, quaternion) and optionally
  ``reconstruction.nvm`` for the focal length.
* **TUM RGB-D** (:func:`read_tum_rgbd`): ``rgb.txt`` + ``groundtruth.txt``,
  ground truth interpolated at each image stamp.

:func:`read_layout` detects which of them a directory holds.
:func:`read_tum_trajectory` reads any TUM trajectory file (the format
:func:`reloc_ros.data.types.write_tum` writes).

One module per layout (:mod:`~reloc_ros.data.layouts.seven_scenes`,
:mod:`~reloc_ros.data.layouts.cambridge`, :mod:`~reloc_ros.data.layouts.tum`),
what they share in :mod:`~reloc_ros.data.layouts.common` and the detection in
:mod:`~reloc_ros.data.layouts.detect`; everything public is re-exported here.

Parsing is line by line in Python rather than one ``np.loadtxt`` call so that
every malformed line is reported as ``file:line`` with the expected format;
the files are small (thousands of lines), so this costs nothing noticeable.
"""

from reloc_ros.data.layouts.cambridge import CAMBRIDGE_RATE_HZ, read_cambridge
from reloc_ros.data.layouts.common import ImageLoader
from reloc_ros.data.layouts.detect import LAYOUTS, detect_layout, read_layout
from reloc_ros.data.layouts.seven_scenes import SEVEN_SCENES_INTRINSICS, SEVEN_SCENES_RATE_HZ, read_7scenes
from reloc_ros.data.layouts.tum import (TUM_FR1_INTRINSICS, TUM_FR2_INTRINSICS, TUM_FR3_INTRINSICS, read_tum_rgbd,
                                        read_tum_trajectory)

__all__ = [
    "SEVEN_SCENES_INTRINSICS", "SEVEN_SCENES_RATE_HZ", "CAMBRIDGE_RATE_HZ", "TUM_FR1_INTRINSICS",
    "TUM_FR2_INTRINSICS", "TUM_FR3_INTRINSICS", "LAYOUTS", "ImageLoader", "read_tum_trajectory",
    "read_7scenes", "read_cambridge", "read_tum_rgbd", "detect_layout", "read_layout",
]
