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

"""Which dataset layout a directory holds, and reading it with that layout's reader."""

from __future__ import annotations

from pathlib import Path

from reloc_ros.data.layouts.cambridge import read_cambridge
from reloc_ros.data.layouts.seven_scenes import read_7scenes
from reloc_ros.data.layouts.tum import read_tum_rgbd
from reloc_ros.data.types import PoseDataset

#: Layout name -> what a directory needs to be recognised as it (used in errors).
LAYOUTS: dict[str, str] = {
    "7scenes": "TrainSplit.txt or TestSplit.txt, or seq-XX/ folders holding frame-XXXXXX.color.png "
               "+ frame-XXXXXX.pose.txt",
    "cambridge": "dataset_train.txt or dataset_test.txt (3 header lines, then 'seqN/frameNNNNN.png X Y Z W P Q R')",
    "tum_rgbd": "rgb.txt ('timestamp filename') and groundtruth.txt ('timestamp tx ty tz qx qy qz qw')",
}


def _looks_like_7scenes(root: Path) -> bool:
    if (root / "TrainSplit.txt").is_file() or (root / "TestSplit.txt").is_file():
        return True
    for seq in root.glob("seq-*"):
        if seq.is_dir() and any(seq.glob("frame-*.pose.txt")):
            return True
    return False


def detect_layout(path: str | Path) -> str:
    """Name of the layout (a key of :data:`LAYOUTS`) the directory ``path`` holds.

    Raises ``ValueError`` listing the layouts and the files each needs when none
    (or more than one) matches.
    """
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"'{root}' is not a directory; dataset layouts are folders ({', '.join(LAYOUTS)})")
    found = []
    if _looks_like_7scenes(root):
        found.append("7scenes")
    if (root / "dataset_train.txt").is_file() or (root / "dataset_test.txt").is_file():
        found.append("cambridge")
    if (root / "rgb.txt").is_file() and (root / "groundtruth.txt").is_file():
        found.append("tum_rgbd")
    needs = "; ".join(f"{name}: {need}" for name, need in LAYOUTS.items())
    if not found:
        raise ValueError(f"'{root}' is not a known dataset layout. Known layouts and what they need: {needs}")
    if len(found) > 1:
        raise ValueError(f"'{root}' matches several layouts ({', '.join(found)}); call its reader directly")
    return found[0]


def read_layout(path: str | Path, **kwargs) -> PoseDataset:
    """Detect the layout of directory ``path`` and read it; ``kwargs`` go to that reader.

    7-Scenes -> :func:`read_7scenes`, Cambridge Landmarks -> :func:`read_cambridge`,
    TUM RGB-D -> :func:`read_tum_rgbd`.
    """
    readers = {"7scenes": read_7scenes, "cambridge": read_cambridge, "tum_rgbd": read_tum_rgbd}
    return readers[detect_layout(path)](path, **kwargs)
