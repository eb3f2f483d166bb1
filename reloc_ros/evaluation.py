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

"""ROS-free evaluation of pose predictions: errors, accuracy and status reports, baselines, plots.

Used by ``reloc-ros eval``, ``reloc-ros replay``, the trainer's validation, the demo and the
benchmarks. Poses are ``T_map_cam`` 4x4 matrices (see :mod:`reloc_ros.geometry`);
translation errors are in metres, rotation errors in degrees.

A report is a plain dict of JSON-serialisable values::

    {"frames": 120, "median_translation_m": 0.21, "median_rotation_deg": 3.4,
     "mean_translation_m": 0.3, "mean_rotation_deg": 4.1,
     "max_translation_m": 1.2, "max_rotation_deg": 17.0,
     "within": {"5cm_5deg": 0.1, "25cm_2deg": 0.3, "50cm_5deg": 0.7, "5m_10deg": 1.0},
     ...extra keys such as "model"}
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from reloc_ros import geometry
from reloc_ros.errors import RelocError
from reloc_ros.io_utils import atomic_write_text

logger = logging.getLogger(__name__)

# (metres, degrees): a frame is "within" a threshold when BOTH errors are <= it.
# 5cm/5deg and 25cm/2deg... are the customary 7-Scenes / Cambridge accuracy bins;
# 5m/10deg catches "roughly in the right place" on outdoor scenes.
THRESHOLDS: tuple[tuple[float, float], ...] = ((0.05, 5.0), (0.25, 2.0), (0.5, 5.0), (5.0, 10.0))

_REPORT_KEYS = ("frames", "median_translation_m", "median_rotation_deg", "mean_translation_m",
                "mean_rotation_deg", "max_translation_m", "max_rotation_deg", "within")


def threshold_label(metres: float, degrees: float) -> str:
    """Name a threshold like ``5cm_5deg`` (below 1 m in cm, else in m)."""
    if metres < 1.0:
        dist = f"{round(metres * 100.0, 6):g}cm"
    else:
        dist = f"{round(metres, 6):g}m"
    return f"{dist}_{round(degrees, 6):g}deg"


THRESHOLD_LABELS: tuple[str, ...] = tuple(threshold_label(m, d) for m, d in THRESHOLDS)


def _as_poses(poses: Any, what: str) -> np.ndarray:
    """Return poses as a float64 (N, 4, 4) array; a single (4, 4) pose becomes N = 1."""
    arr = np.asarray(poses, dtype=np.float64)
    if arr.shape == (4, 4):
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != (4, 4):
        raise ValueError(f"{what} must be 4x4 poses of shape (N, 4, 4), got shape {arr.shape}")
    return arr


def pose_errors(pred_n44: np.ndarray, gt_n44: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Compute per-frame translation error (m) and rotation error (deg) of predictions.

    Both inputs are ``(N, 4, 4)`` ``T_map_cam`` poses (a single ``(4, 4)`` is
    treated as N = 1). Returns two float64 arrays of shape ``(N,)``.
    Raises ``ValueError`` for mismatched shapes, an empty input, or poses
    containing NaN/inf (a diverged model must not look like a number).
    """
    pred = _as_poses(pred_n44, "predicted poses")
    gt = _as_poses(gt_n44, "ground-truth poses")
    if len(pred) != len(gt):
        raise ValueError(f"{len(pred)} predicted poses but {len(gt)} ground-truth poses; "
                         "evaluation needs one prediction per ground-truth frame")
    if len(gt) == 0:
        raise ValueError("no poses to evaluate (empty input)")
    for arr, what in ((pred, "predicted"), (gt, "ground-truth")):
        bad = ~np.all(np.isfinite(arr), axis=(1, 2))
        if np.any(bad):
            raise ValueError(f"{int(bad.sum())} of {len(arr)} {what} poses contain NaN or inf "
                             f"(first at frame {int(np.argmax(bad))})")
    return geometry.translation_error(pred, gt), geometry.rotation_error_deg(pred, gt)


def _plain(value: Any) -> Any:
    """Turn numpy scalars/arrays and paths into JSON-native values, recursively."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def report_from_errors(trans_err_m: np.ndarray, rot_err_deg: np.ndarray, **extra: Any) -> dict[str, Any]:
    """Summarise per-frame errors into a report dict (see the module docstring).

    ``extra`` keys (e.g. ``model="posenet"``) are merged in; they may not
    replace a computed key.
    """
    t = np.asarray(trans_err_m, dtype=np.float64).reshape(-1)
    r = np.asarray(rot_err_deg, dtype=np.float64).reshape(-1)
    if len(t) == 0:
        raise ValueError("no errors to summarise (empty input)")
    if len(t) != len(r):
        raise ValueError(f"{len(t)} translation errors but {len(r)} rotation errors")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(r))):
        raise ValueError("errors contain NaN or inf")
    clash = sorted(set(extra) & set(_REPORT_KEYS))
    if clash:
        raise ValueError(f"extra report keys {clash} would overwrite computed metrics; "
                         f"reserved keys are {list(_REPORT_KEYS)}")
    report: dict[str, Any] = {
        "frames": int(len(t)),
        "median_translation_m": float(np.median(t)),
        "median_rotation_deg": float(np.median(r)),
        "mean_translation_m": float(np.mean(t)),
        "mean_rotation_deg": float(np.mean(r)),
        "max_translation_m": float(np.max(t)),
        "max_rotation_deg": float(np.max(r)),
        "within": {label: float(np.mean((t <= m) & (r <= d)))
                   for label, (m, d) in zip(THRESHOLD_LABELS, THRESHOLDS)},
    }
    report.update(_plain(extra))
    return report


def accuracy_report(pred_n44: np.ndarray, gt_n44: np.ndarray, **extra: Any) -> dict[str, Any]:
    """Compare predicted with ground-truth poses and summarise the errors.

    Returns a JSON-serialisable dict with ``frames``, the median / mean / max
    translation (m) and rotation (deg) errors, and ``within``: for every
    label of :data:`THRESHOLDS` the share in [0, 1] of frames whose
    translation AND rotation errors are both within (<=) it. ``extra`` keys
    (e.g. ``model="posenet"``) are merged in. An empty input raises
    ``ValueError``.
    """
    t, r = pose_errors(pred_n44, gt_n44)
    return report_from_errors(t, r, **extra)


def mean_pose(poses_n44: np.ndarray) -> np.ndarray:
    """Return the mean pose (4, 4): mean position, chordal L2 mean rotation.

    The rotation is the SVD projection onto SO(3) of the element-wise mean of
    the rotation matrices, which minimises the sum of squared Frobenius
    (chordal) distances to them (Hartley et al., "Rotation Averaging", 2013).
    Unlike averaging quaternion components it needs no sign disambiguation.
    When the rotations are spread so evenly that the mean matrix is
    (near) singular, the mean rotation is not unique; one of them is returned.
    """
    poses = _as_poses(poses_n44, "poses")
    if len(poses) == 0:
        raise ValueError("cannot average an empty set of poses")
    if not np.all(np.isfinite(poses)):
        raise ValueError("poses contain NaN or inf")
    M_33 = poses[:, :3, :3].mean(axis=0)
    U, _, Vt = np.linalg.svd(M_33)
    # Flip the last singular direction if needed so the result is a rotation (det +1), not a reflection.
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt)) or 1.0])
    T = np.eye(4)
    T[:3, :3] = U @ D @ Vt
    T[:3, 3] = poses[:, :3, 3].mean(axis=0)
    return T


def mean_pose_baseline(train_poses_n44: np.ndarray, test_poses_n44: np.ndarray,
                       **extra: Any) -> dict[str, Any]:
    """Report the accuracy of predicting the training set's mean pose for every test frame.

    The mean pose is :func:`mean_pose` (mean position, chordal L2 mean
    rotation by SVD projection). Every learned model must beat this. The
    report carries ``model="mean_pose_baseline"`` (unless ``extra`` names
    another), ``mean_position_m`` and ``mean_quat_xyzw``.
    """
    train = _as_poses(train_poses_n44, "training poses")
    test = _as_poses(test_poses_n44, "test poses")
    if len(test) == 0:
        raise ValueError("no test poses to evaluate (empty input)")
    T_mean = mean_pose(train)
    t_3, q_4 = geometry.pose_to_tq(T_mean)
    info: dict[str, Any] = {"model": "mean_pose_baseline", "mean_position_m": t_3.tolist(),
                            "mean_quat_xyzw": q_4.tolist(), "train_frames": len(train)}
    info.update(extra)
    return accuracy_report(np.broadcast_to(T_mean, test.shape), test, **info)


def distance_from_path(query_n44: np.ndarray, path_n44: np.ndarray) -> dict[str, float]:
    """How far query frames lie from a path of frames: each query's nearest path frame by position.

    Returns the medians over the queries of the distance to that frame (m)
    and of the angle between the two optical axes (deg). Validation frames
    that sit on the training path (a few cm, a few degrees) measure
    interpolation; a query route of another day is usually much further off.
    """
    from scipy.spatial import cKDTree

    q, ref = _as_poses(query_n44, "query poses"), _as_poses(path_n44, "path poses")
    dist, nearest = cKDTree(ref[:, :3, 3]).query(q[:, :3, 3])
    cos = (q[:, :3, 2] * ref[nearest, :3, 2]).sum(1)
    angle = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return {"median_distance_m": float(np.median(dist)), "median_view_angle_deg": float(np.median(angle))}


WEAK_MARGIN = 0.75
"""A model is weak unless its validation median position error is at most this share of the mean pose's."""


def model_quality(val_metrics: dict[str, Any], mean_pose_report: dict[str, Any], train_images: Any,
                  train_poses_n44: np.ndarray, val_images: Any, val_poses_n44: np.ndarray,
                  split: str) -> dict[str, Any]:
    """Say what a trained model is worth: its validation error against two answers that need no learning.

    The references, on the same validation frames: always answering the mean
    mapping pose (``mean_pose_report``), and nearest-mapping-frame retrieval
    (the pose of the most similar training image by thumbnail,
    :class:`~reloc_ros.baselines.RetrievalBaseline`). The model is ``weak``
    unless its median position error is at most :data:`WEAK_MARGIN` times the
    mean pose's: a model no better than a constant must never look like a
    success. The result goes into the model's metadata (``quality``), which
    ``eval``, ``replay`` and the node print at load
    (:func:`reloc_ros.modelfile.describe_quality`).
    """
    from reloc_ros.baselines import RetrievalBaseline

    retrieval = accuracy_report(RetrievalBaseline(np.asarray(train_images), train_poses_n44)
                                .predict(np.asarray(val_images)), val_poses_n44)
    model_m, mean_m = float(val_metrics["median_translation_m"]), float(mean_pose_report["median_translation_m"])
    return {
        "weak": not model_m <= WEAK_MARGIN * mean_m, "margin": WEAK_MARGIN, "split": split,
        "frames": int(len(val_poses_n44)),
        "model_median_m": model_m, "model_median_deg": float(val_metrics["median_rotation_deg"]),
        "mean_pose_median_m": mean_m, "mean_pose_median_deg": float(mean_pose_report["median_rotation_deg"]),
        "retrieval_median_m": float(retrieval["median_translation_m"]),
        "retrieval_median_deg": float(retrieval["median_rotation_deg"]),
        "beats_retrieval": bool(model_m < float(retrieval["median_translation_m"])),
    }


def format_report(report: dict[str, Any], title: str = "") -> str:
    """Render a report as a short human-readable block of text (what the CLI prints)."""
    head = title or str(report.get("model", "")) or "accuracy"
    if report.get("frames") == 0 and "status" in report:  # every frame failed verification: nothing was posed
        return "\n".join([f"{head}: no frame posed", *format_status(report["status"])])
    missing = [k for k in ("frames", "median_translation_m", "median_rotation_deg", "mean_translation_m",
                           "mean_rotation_deg", "within") if k not in report]
    if missing:
        raise ValueError(f"not an accuracy report: missing keys {missing}")
    lines = [f"{head}: {report['frames']} frames",
             f"  translation error  median {report['median_translation_m']:.3f} m    "
             f"mean {report['mean_translation_m']:.3f} m",
             f"  rotation error     median {report['median_rotation_deg']:.2f} deg  "
             f"mean {report['mean_rotation_deg']:.2f} deg"]
    within = report["within"]
    width = max((len(k) for k in within), default=0)
    for label, share in within.items():
        lines.append(f"  within {label:<{width}}  {100.0 * float(share):5.1f} %")
    cov = report.get("covariance")
    if isinstance(cov, dict) and "translation" in cov:
        lines.append(f"  covariance ({cov.get('method', '?')}): share of per-axis errors within 1 / 2 sigma "
                     f"(Gaussian: 68 / 95 %)")
        for group in ("translation", "rotation"):
            g = cov[group]
            unit = "m" if group == "translation" else "rad"
            lines.append(f"    {group:<11}  {100.0 * g['within_1sigma']:5.1f} / {100.0 * g['within_2sigma']:5.1f} %"
                         f"   median sigma {g['median_sigma']:.3g} {unit}")
    if report.get("no_estimate"):
        lines.append(f"  no estimate (non-finite model output): {report['no_estimate']} frames")
    for reason, n in (report.get("frame_errors") or {}).items():
        lines.append(f"  skipped, {reason}: {n} frames")
    if isinstance(report.get("status"), dict):
        lines += format_status(report["status"])
    return "\n".join(lines)


def save_eval_plots(out_dir: str | Path, pred_n44: np.ndarray, gt_n44: np.ndarray,
                    report: dict[str, Any] | None = None, title: str = "",
                    covariances: np.ndarray | None = None) -> list[Path]:
    """Write ``error_cdf.png``, ``trajectory.png`` (and ``calibration.png``) into ``out_dir``.

    ``out_dir`` is created if missing. With ``covariances`` (n, 6, 6),
    ``calibration.png`` shows the share of per-axis errors within k sigma
    against the Gaussian expectation, for translation and rotation.

    ``error_cdf.png`` has two panels, the CDFs of translation (m) and rotation
    (deg) error with their medians marked; ``trajectory.png`` is a top-down
    view of ground truth vs predictions, each prediction joined to its ground
    truth by a thin line. ``report`` (optional) adds its 5cm/5deg-style share
    to the trajectory title. Files are written atomically. Returns their paths.
    """
    from reloc_ros.plots import plot_error_cdf, plot_predictions_topdown

    t, r = pose_errors(pred_n44, gt_n44)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cdf_path = out / "error_cdf.png"
    traj_path = out / "trajectory.png"
    plot_error_cdf(cdf_path, t, r, title=title)
    traj_title = title or "ground truth vs prediction"
    if report is not None and "median_translation_m" in report and "median_rotation_deg" in report:
        traj_title += (f" (median {report['median_translation_m']:.2f} m, "
                       f"{report['median_rotation_deg']:.1f} deg)")
    plot_predictions_topdown(traj_path, gt_n44, pred_n44, title=traj_title)
    paths = [cdf_path, traj_path]
    if covariances is not None:
        from reloc_ros.plots import plot_calibration
        from reloc_ros.runtime.uncertainty import error_vectors

        paths.append(out / "calibration.png")
        plot_calibration(paths[-1], error_vectors(pred_n44, gt_n44), covariances, title=title)
    logger.info("wrote evaluation plots %s", ", ".join(str(p) for p in paths))
    return paths


def write_report_json(path: str | Path, report: dict[str, Any]) -> None:
    """Write a report as JSON (indent 2, sorted keys) atomically, creating the parent directory.

    NaN/inf are refused (``ValueError``): they are not valid JSON.
    """
    text = json.dumps(_plain(report), indent=2, sort_keys=True, allow_nan=False)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, text + "\n")


def read_report_json(path: str | Path) -> dict[str, Any]:
    """Read a report written by :func:`write_report_json`."""
    report = json.loads(Path(path).read_text())
    if not isinstance(report, dict):
        raise ValueError(f"'{path}' does not hold a report (a JSON object), got {type(report).__name__}")
    return report


def evaluate_model_on_bags(model_path: str | Path, bags: Sequence[str | Path], source: Any = None,
                           progress: bool = False, device: str = "cpu", backend: str = "auto", batch: int = 1,
                           verify: str = "auto", **extra: Any) -> tuple[np.ndarray, Any, dict[str, Any], np.ndarray]:
    """Relocalize every posed frame of the bags with an exported model and report accuracy and calibration.

    The frames go through the runtime engine (:class:`~reloc_ros.runtime.engine.Relocalizer`),
    so poses, covariances and statuses are exactly what the node and
    ``reloc-ros replay`` publish. ``source`` (a :class:`~reloc_ros.data.bag.BagSource`) defaults
    to the one the model was trained with. With a feature map (``verify``
    ``auto`` or ``on``) each frame is verified on its full image with the
    bag's CameraInfo, one by one; otherwise frames are preprocessed as the
    model's metadata says and run in batches of ``batch`` (1, the default,
    is exactly the node's computation; larger batches are faster on a GPU
    but may differ in the last float digits).

    Returns (published camera poses (n, 4, 4), the dataset of those frames,
    the report, their covariances (n, 6, 6)). Published means what the node
    publishes on ``~/camera_pose``: verified and unverified frames, never
    failed ones. The report's top-level figures are over the published
    frames; its ``status`` entry (:func:`status_report`) has the figures per
    status, of the learned poses alone, and the share of verified poses that
    are far off. Frames whose output is not finite are counted in
    ``no_estimate``; a frame whose estimate or verification raised costs that
    frame only, as in ``reloc-ros replay``: it is logged (with its traceback
    when it is not a data problem) and counted by kind in ``frame_errors``
    (present only when there were some).
    """
    from reloc_ros.runtime.engine import Estimate, NoEstimate, Relocalizer, check_count
    from reloc_ros.runtime.pipeline import FrameErrors
    from reloc_ros.runtime.verify import CameraMismatch

    batch = check_count(batch, "batch", 1)
    reloc = Relocalizer(model_path, device=device, backend=backend, warmup=1, verify=verify)
    meta = reloc.metadata
    estimates: list = []
    errors = FrameErrors(logger)
    if reloc.verifying:
        from reloc_ros.data.bag import bag_source_from_metadata, read_bag_dataset

        source = bag_source_from_metadata(meta) if source is None else source
        ds = read_bag_dataset(bags, source, image_size=None, progress=progress)
        for i in range(len(ds)):
            try:
                estimates.append(reloc.relocalize(ds.image(i), int(ds.stamps_ns[i]), intrinsics=ds.intrinsics))
            except NoEstimate as e:
                estimates.append(e)
            except CameraMismatch:  # every frame would fail the same way: the error says it once
                raise
            except Exception as e:  # noqa: BLE001 - one frame's failure costs that frame only; logged, counted
                estimates.append(errors.record(e, int(ds.stamps_ns[i])))
    else:
        ds = read_model_dataset(meta, bags, source, progress)
        for i in range(0, len(ds), batch):
            stamps = ds.stamps_ns[i:i + batch]
            try:
                estimates += reloc.relocalize_preprocessed(np.asarray(ds.images[i:i + batch]), stamps)
            except Exception as e:  # noqa: BLE001 - as above, for every frame of the batch
                estimates += [errors.record(e, int(s)) for s in stamps]
    errors.log_summary()
    ok = np.array([isinstance(e, Estimate) for e in estimates], dtype=bool)
    no_estimate = int(sum(isinstance(e, NoEstimate) for e in estimates))
    if errors.counts:
        extra = {**extra, "frame_errors": dict(errors.counts)}
    if not ok.any():
        why = f"; {sum(errors.counts.values())} failed with an error (see the log)" if errors.counts else ""
        raise RelocError(f"the model gave no finite pose for any of the {len(ds)} frames of {ds.source}{why}")
    good = [e for e in estimates if isinstance(e, Estimate)]
    status = status_report(good, ds.poses_n44[ok])
    pub = np.flatnonzero(ok)[[e.publishable for e in good]]
    if len(pub) == 0:
        report = {"frames": 0, "model": str(reloc.model_path), "model_name": meta.get("model"), "data": ds.source,
                  "no_estimate": no_estimate, "status": status, **extra}
        return np.zeros((0, 4, 4)), ds.subset(pub), report, np.zeros((0, 6, 6))
    pred = np.stack([estimates[i].T_map_cam for i in pub])
    cov = np.stack([estimates[i].covariance for i in pub])
    ds = ds.subset(pub)
    report = relocalization_report(pred, ds.poses_n44, cov, reloc, ds.source, no_estimate, status=status, **extra)
    return pred, ds, report, cov


# A verified pose farther off than either of these is a confident wrong pose: the figure to keep near zero.
WRONG_VERIFIED = (0.25, 5.0)


def status_report(estimates: Sequence[Any], gt_n44: np.ndarray) -> dict[str, Any]:
    """Figures per verification status for estimates and their ground truth (same order).

    ``{"frames", "counts": {status: n}, "shares": {status: share}, "posed_share": share not failed,
    "verified_wrong_share": share of verified poses off by more than WRONG_VERIFIED (m, deg),
    "by_status": {status: accuracy report + covariance coverage}, "learned": the model's own poses on every
    frame (what ``--verify off`` publishes), with their coverage}``.
    """
    from reloc_ros.runtime import uncertainty as U
    from reloc_ros.runtime.engine import STATUSES

    gt = _as_poses(gt_n44, "ground-truth poses")
    statuses = np.array([e.status for e in estimates])
    pred = np.stack([e.T_map_cam for e in estimates])
    cov = np.stack([e.covariance for e in estimates])
    learned = np.stack([e.T_map_cam if e.learned_T_map_cam is None else e.learned_T_map_cam for e in estimates])
    learned_cov = np.stack([e.covariance if e.learned_covariance is None else e.learned_covariance
                            for e in estimates])
    n = len(statuses)
    out: dict[str, Any] = {"frames": n, "counts": {s: int((statuses == s).sum()) for s in STATUSES},
                           "shares": {s: float((statuses == s).mean()) for s in STATUSES},
                           "posed_share": float((statuses != "failed").mean()), "by_status": {}}
    for s in STATUSES:
        sel = statuses == s
        if sel.any():
            rep = accuracy_report(pred[sel], gt[sel])
            rep["covariance"] = U.coverage(U.error_vectors(pred[sel], gt[sel]), cov[sel])
            if s != "unverified":
                rep["inliers_median"] = float(np.median([e.inliers for e, k in zip(estimates, sel) if k]))
            out["by_status"][s] = rep
    ver = statuses == "verified"
    if ver.any():
        t, r = pose_errors(pred[ver], gt[ver])
        out["verified_wrong_share"] = float(np.mean((t > WRONG_VERIFIED[0]) | (r > WRONG_VERIFIED[1])))
    learned_rep = accuracy_report(learned, gt)
    learned_rep["covariance"] = U.coverage(U.error_vectors(learned, gt), learned_cov)
    out["learned"] = learned_rep
    return out


def format_status(status: dict[str, Any]) -> list[str]:
    """Lines for a :func:`status_report` (what eval and replay print under the accuracy)."""
    c, sh = status["counts"], status["shares"]
    lines = [f"  status: {c['verified']} verified ({100 * sh['verified']:.1f} %), {c['unverified']} unverified "
             f"({100 * sh['unverified']:.1f} %), {c['failed']} failed ({100 * sh['failed']:.1f} %) of "
             f"{status['frames']} frames; posed {100 * status['posed_share']:.1f} %"]
    for s, rep in status["by_status"].items():
        cov = rep["covariance"]
        what = "failed (the rejected learned poses, not published):" if s == "failed" else f"{s:<10}"
        lines.append(f"    {what} median {rep['median_translation_m']:.3f} m, {rep['median_rotation_deg']:.2f} deg; "
                     f"within 2 sigma {100 * cov['translation']['within_2sigma']:.0f} % / "
                     f"{100 * cov['rotation']['within_2sigma']:.0f} % (pos / rot)"
                     + (f"; median inliers {rep['inliers_median']:.0f}" if "inliers_median" in rep else ""))
    if "verified_wrong_share" in status:
        lines.append(f"    verified poses off by more than {WRONG_VERIFIED[0]} m or {WRONG_VERIFIED[1]:g} deg: "
                     f"{100 * status['verified_wrong_share']:.1f} %")
    lr = status["learned"]
    lines.append(f"    learned only (every frame, as --verify off): median {lr['median_translation_m']:.3f} m, "
                 f"{lr['median_rotation_deg']:.2f} deg; within 2 sigma "
                 f"{100 * lr['covariance']['translation']['within_2sigma']:.0f} % / "
                 f"{100 * lr['covariance']['rotation']['within_2sigma']:.0f} %")
    return lines


def relocalization_report(pred_n44: np.ndarray, gt_n44: np.ndarray, cov_n66: np.ndarray, reloc: Any, data: str,
                          no_estimate: int = 0, **extra: Any) -> dict[str, Any]:
    """Return the ``reloc-ros eval`` / ``replay`` report: accuracy plus covariance calibration.

    ``reloc`` is the :class:`~reloc_ros.runtime.engine.Relocalizer` that made
    the estimates (for the model's name and uncertainty method).
    """
    from reloc_ros.runtime import uncertainty as U

    report = accuracy_report(pred_n44, gt_n44, model=str(reloc.model_path), model_name=reloc.metadata.get("model"),
                             data=data, no_estimate=int(no_estimate), **extra)
    method = getattr(reloc, "covariance_method", reloc.uncertainty)
    report["covariance"] = {"method": method, **U.coverage(U.error_vectors(pred_n44, gt_n44), cov_n66)}
    report["verification"] = getattr(reloc, "verification", "off")
    return report


def read_model_dataset(meta: dict[str, Any], bags: Sequence[str | Path], source: Any = None,
                       progress: bool = False) -> Any:
    """Read the posed frames of ``bags`` preprocessed as the model's metadata says.

    ``source`` (a :class:`~reloc_ros.data.bag.BagSource`) defaults to the one
    the model was trained with.
    """
    from reloc_ros.data.bag import bag_source_from_metadata, read_bag_dataset

    source = bag_source_from_metadata(meta) if source is None else source
    return read_bag_dataset(bags, source, image_size=tuple(meta["input_size"]), preprocessing=meta["preprocessing"],
                            progress=progress)
