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

"""Plots people would rather look at than read (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reloc_ros.io_utils import atomic_path


def plot_topdown(path: str | Path, trajectories: dict[str, np.ndarray], title: str = "",
                 arrows_every: int = 10) -> None:
    """Top-down (x-y in the map frame) view of camera trajectories ``{label: poses_n44}``.

    Arrows show the camera viewing direction (optical z axis) every
    ``arrows_every`` frames. Written atomically as PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6))
    for label, poses in trajectories.items():
        p = np.asarray(poses)
        line, = ax.plot(p[:, 0, 3], p[:, 1, 3], "-", lw=1.2, label=f"{label} ({len(p)} frames)")
        sel = p[::max(1, arrows_every)]
        ax.quiver(sel[:, 0, 3], sel[:, 1, 3], sel[:, 0, 2], sel[:, 1, 2], color=line.get_color(),
                  angles="xy", scale_units="xy", scale=4.0, width=0.003)
    ax.set_xlabel("x (m, map)")
    ax.set_ylabel("y (m, map)")
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
