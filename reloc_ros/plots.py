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


def plot_calibration(path: str | Path, errors_n6: np.ndarray, cov_n66: np.ndarray, title: str = "") -> None:
    """Plot covariance calibration: share of per-axis errors within k sigma against the Gaussian expectation.

    One curve per axis group (translation, rotation); a calibrated covariance
    follows the dashed Gaussian curve (68 % at 1 sigma, 95 % at 2 sigma);
    curves below it mean over-confidence. Written atomically as PNG.
    """
    from math import erf, sqrt

    e = np.abs(np.asarray(errors_n6, dtype=np.float64))
    cov = np.asarray(cov_n66, dtype=np.float64)
    if e.ndim != 2 or e.shape[1] != 6 or cov.shape != (len(e), 6, 6) or len(e) == 0:
        raise ValueError(f"need errors (n, 6) and covariances (n, 6, 6) with n > 0, got {e.shape} and {cov.shape}")
    sigma = np.sqrt(np.maximum(np.diagonal(cov, axis1=1, axis2=2), 1e-300))
    k = np.linspace(0.0, 3.5, 141)
    fig = _new_figure((6.2, 4.4))
    ax = fig.subplots(1, 1)
    ax.plot(k, [erf(v / sqrt(2.0)) for v in k], "k--", lw=1.2, label="Gaussian (calibrated)")
    for sl, name, colour in ((slice(0, 3), "translation", "tab:blue"), (slice(3, 6), "rotation", "tab:orange")):
        z = (e[:, sl] / sigma[:, sl]).ravel()
        share = (z[None, :] <= k[:, None]).mean(axis=1)
        at1, at2 = float((z <= 1).mean()), float((z <= 2).mean())
        ax.plot(k, share, color=colour, lw=1.8, label=f"{name}: {100 * at1:.0f} % in 1σ, {100 * at2:.0f} % in 2σ")
    for v in (1.0, 2.0):
        ax.axvline(v, color="0.7", lw=0.8, ls=":")
    ax.set_xlabel("k (error within k σ, per axis)")
    ax.set_ylabel("share of per-axis errors")
    ax.set_ylim(0.0, 1.02)
    ax.set_xlim(0.0, k[-1])
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"{title + ': ' if title else ''}covariance calibration, {len(e)} frames", fontsize=10)
    fig.tight_layout()
    _save_png(fig, path)
