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
from typing import Sequence

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


# At most this many frames per grid figure: wider grids shrink every panel to a thumbnail.
_MAX_GRID_COLUMNS = 8
# PCA components whose singular value is below this share of the first one are treated
# as degenerate (rank deficiency, or float32 rounding noise that the min/max stretch
# would otherwise blow up to full contrast) and drawn as flat grey.
_PCA_RTOL = 1e-6


def posemap_pca_rgb(posemaps_nhwk: np.ndarray) -> np.ndarray:
    """Map PoseMap feature vectors to RGB by a PCA shared over all pixels of all PoseMaps.

    One PCA is fit over the ``N * h * w`` pixel vectors (centred on their mean,
    axes from the SVD of the centred matrix, in float64), so colours are
    comparable across frames. Each pixel is projected on the first three
    principal axes and every component is stretched to 0..1 by its min/max
    over all pixels. Channels without a non-degenerate component (``k < 3``,
    rank-deficient features, constant input) are 0.5 grey. The sign of each
    axis is fixed by making its largest-magnitude entry positive, so the
    picture is the same between runs; negating all features therefore turns
    every channel ``c`` into ``1 - c``.

    Return float32 ``(N, h, w, 3)`` in [0, 1].
    """
    x = np.asarray(posemaps_nhwk, dtype=np.float64)
    if x.ndim != 4 or 0 in x.shape:
        raise ValueError(f"need PoseMaps shaped (N, h, w, k) with no empty axis, got shape {x.shape}")
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise ValueError(f"PoseMaps of shape {x.shape} contain {bad} non-finite values")
    n, h, w, k = x.shape
    pixels_mk = x.reshape(-1, k)
    centred_mk = pixels_mk - pixels_mk.mean(axis=0)
    _, sing, axes_kk = np.linalg.svd(centred_mk, full_matrices=False)
    rgb_m3 = np.full((len(pixels_mk), 3), 0.5)
    for c in range(min(3, len(sing))):
        if sing[0] <= 0.0 or sing[c] <= _PCA_RTOL * sing[0]:
            break
        axis_k = axes_kk[c] * np.sign(axes_kk[c][np.argmax(np.abs(axes_kk[c]))])
        comp_m = centred_mk @ axis_k
        lo, hi = float(comp_m.min()), float(comp_m.max())
        if hi > lo:
            rgb_m3[:, c] = (comp_m - lo) / (hi - lo)
    return rgb_m3.reshape(n, h, w, 3).astype(np.float32)


def _check_columns(n: int, what: str) -> None:
    """Raise unless ``n`` frames fit in one grid figure."""
    if n == 0 or n > _MAX_GRID_COLUMNS:
        raise ValueError(f"need 1 to {_MAX_GRID_COLUMNS} {what} per grid figure, got N = {n}")


def _rgb_for_display(images_nhw3: np.ndarray, name: str) -> np.ndarray:
    """Check ``(N, H, W, 3)`` images and return them as uint8, or float clipped to [0, 1]."""
    img = np.asarray(images_nhw3)
    if img.ndim != 4 or img.shape[-1] != 3:
        raise ValueError(f"need {name} shaped (N, H, W, 3), got shape {img.shape}")
    if img.dtype == np.uint8:
        return img
    if not np.issubdtype(img.dtype, np.floating):
        raise ValueError(f"need {name} as uint8 or float in [0, 1], got dtype {img.dtype}")
    return np.clip(np.nan_to_num(img.astype(np.float32), nan=0.0), 0.0, 1.0)


def _grid_figure(n: int, height: int, width: int, title: str):
    """Create a 2 x ``n`` grid figure sized for ``height`` x ``width`` panels; return it and its axes."""
    col_w = 2.4
    fig = _new_figure((max(col_w * n, 3.5), 2 * col_w * height / max(width, 1) + (0.9 if title else 0.5)))
    axes = fig.subplots(2, n, squeeze=False)
    for ax in axes.ravel():
        # Ticks off but the axes kept, so the row labels (y labels) still show.
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    return fig, axes


def plot_posemap_pca(path: str | Path, images_nhw3: np.ndarray, posemaps_nhwk: np.ndarray,
                     title: str = "") -> None:
    """Plot camera images above the PCA colouring of their PoseMaps (cf. Fig. 5 of the PMNet paper).

    Top row: the images (uint8 RGB); bottom row: :func:`posemap_pca_rgb` of the
    PoseMaps with one PCA shared by all frames, drawn with nearest-neighbour
    interpolation and stretched over the image's extent (PoseMaps are rendered
    at a lower resolution, e.g. 1/16). At most 8 frames. Written atomically as PNG.
    """
    img = _rgb_for_display(images_nhw3, "images")
    maps = np.asarray(posemaps_nhwk)
    _check_columns(len(img), "images")
    if maps.ndim < 1 or len(maps) != len(img):
        raise ValueError(f"need one PoseMap per image, got {len(img)} images and PoseMaps of shape {maps.shape}")
    rgb_nhw3 = posemap_pca_rgb(maps)
    n, height, width = img.shape[:3]
    extent = (-0.5, width - 0.5, height - 0.5, -0.5)
    fig, axes = _grid_figure(n, height, width, title)
    for j in range(n):
        axes[0, j].imshow(img[j], interpolation="nearest")
        axes[1, j].imshow(rgb_nhw3[j], interpolation="nearest", extent=extent)
    axes[0, 0].set_ylabel("image")
    axes[1, 0].set_ylabel("PoseMap (PCA)")
    fig.tight_layout()
    _save_png(fig, path)


def plot_render_grid(path: str | Path, real_nhw3: np.ndarray, rendered_nhw3: np.ndarray,
                     psnr_n: Sequence[float] | None = None, title: str = "") -> None:
    """Plot real camera images above the NeRF-P renderings of the same poses.

    Either input may be uint8 or float in [0, 1] (floats are clipped). When
    ``psnr_n`` is given each rendered panel is titled with its PSNR in dB.
    At most 8 frames. Written atomically as PNG.
    """
    real = _rgb_for_display(real_nhw3, "real images")
    rendered = _rgb_for_display(rendered_nhw3, "rendered images")
    if real.shape != rendered.shape:
        raise ValueError(f"need real and rendered images of the same shape, got {real.shape} and {rendered.shape}")
    _check_columns(len(real), "images")
    psnr = None if psnr_n is None else [float(p) for p in psnr_n]
    if psnr is not None and len(psnr) != len(real):
        raise ValueError(f"need one PSNR per image, got {len(psnr)} PSNRs for {len(real)} images")
    n, height, width = real.shape[:3]
    fig, axes = _grid_figure(n, height, width, title)
    for j in range(n):
        axes[0, j].imshow(real[j], interpolation="nearest")
        axes[1, j].imshow(rendered[j], interpolation="nearest")
        if psnr is not None:
            axes[1, j].set_title(f"{psnr[j]:.1f} dB", fontsize=9)
    axes[0, 0].set_ylabel("real")
    axes[1, 0].set_ylabel("rendered (NeRF-P)")
    fig.tight_layout()
    _save_png(fig, path)
