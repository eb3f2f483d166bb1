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


def _new_figure(figsize: tuple[float, float]):
    """Create a Figure on an Agg canvas, bypassing pyplot.

    pyplot keeps global state and picks a GUI backend if one is around; a bare
    Figure is headless and safe to draw from a trainer's worker thread.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig, path: str | Path, dpi: int = 110) -> None:
    """Write a figure as PNG atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)


def plot_error_cdf(path: str | Path, trans_err_m: np.ndarray, rot_err_deg: np.ndarray,
                   title: str = "") -> None:
    """Plot the cumulative distributions of translation (m) and rotation (deg) errors side by side.

    Each panel marks its median with a dashed line. Written atomically as PNG.
    """
    t = np.sort(np.asarray(trans_err_m, dtype=np.float64).reshape(-1))
    r = np.sort(np.asarray(rot_err_deg, dtype=np.float64).reshape(-1))
    if len(t) == 0 or len(t) != len(r):
        raise ValueError(f"need the same non-zero number of translation and rotation errors, "
                         f"got {len(t)} and {len(r)}")
    fig = _new_figure((10, 4.2))
    axes = fig.subplots(1, 2)
    share = np.arange(1, len(t) + 1) / len(t)
    for ax, err, unit, name, colour in ((axes[0], t, "m", "translation", "tab:blue"),
                                        (axes[1], r, "deg", "rotation", "tab:orange")):
        # Start the staircase at (0, 0) so a single frame still draws a visible step.
        ax.step(np.concatenate([[0.0], err]), np.concatenate([[0.0], share]), where="post",
                color=colour, lw=1.6)
        med = float(np.median(err))
        ax.axvline(med, color="k", ls="--", lw=1.0)
        ax.axhline(0.5, color="0.6", ls=":", lw=0.8)
        ax.annotate(f"median {med:.3g} {unit}", xy=(med, 0.5), xytext=(6, -14),
                    textcoords="offset points", fontsize=9)
        ax.set_xlabel(f"{name} error ({unit})")
        ax.set_ylabel("share of frames")
        ax.set_ylim(0.0, 1.02)
        ax.set_xlim(left=0.0, right=max(float(err[-1]) * 1.05, 1e-9))
        ax.grid(alpha=0.3)
    fig.suptitle(f"{title + ': ' if title else ''}error CDF over {len(t)} frames")
    fig.tight_layout()
    _save_png(fig, path)


def plot_predictions_topdown(path: str | Path, gt_n44: np.ndarray, pred_n44: np.ndarray,
                             title: str = "") -> None:
    """Top-down (x-y in the map frame) view of ground truth vs predicted camera positions.

    Ground truth is drawn as a line, predictions as dots, and a thin grey line
    joins each prediction to its ground truth so the size and direction of
    every error is visible. Written atomically as PNG.
    """
    from matplotlib.collections import LineCollection

    gt = np.asarray(gt_n44, dtype=np.float64).reshape(-1, 4, 4)[:, :2, 3]
    pred = np.asarray(pred_n44, dtype=np.float64).reshape(-1, 4, 4)[:, :2, 3]
    if len(gt) == 0 or len(gt) != len(pred):
        raise ValueError(f"need the same non-zero number of ground-truth and predicted poses, "
                         f"got {len(gt)} and {len(pred)}")
    fig = _new_figure((7, 6))
    ax = fig.subplots()
    links = LineCollection(np.stack([gt, pred], axis=1), colors="0.55", linewidths=0.6,
                           alpha=0.8, label="error", zorder=1)
    ax.add_collection(links)
    ax.plot(gt[:, 0], gt[:, 1], "-", color="tab:green", lw=1.4, label=f"ground truth ({len(gt)} frames)",
            zorder=2)
    ax.plot(pred[:, 0], pred[:, 1], ".", color="tab:red", ms=4, label="prediction", zorder=3)
    ax.set_xlabel("x (m, map)")
    ax.set_ylabel("y (m, map)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.autoscale_view()
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    _save_png(fig, path)
