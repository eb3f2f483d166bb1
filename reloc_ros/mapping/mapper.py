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

"""Build a model's feature map from its mapping bags, calibrate the verified covariance, store both in the file.

What ``reloc-ros train`` runs after training (unless ``--map none``) and
``reloc-ros map MODEL BAG...`` runs alone:

1. the posed frames of the bags at their recorded resolution (the same bag
   options as training: TF or pose topic, depth topic when given);
2. key frames thinned from them (:func:`~reloc_ros.mapping.build.select_keyframes`)
   and their local features, extracted once;
3. a **calibration map** without the key frames of held-out time blocks
   (15 % by default, in eight short blocks); the held-out frames, new viewpoints for that map, are
   verified against it with non-learned candidates (thumbnail retrieval) and
   their errors against the ground truth fit the covariance's scale and floor
   (:func:`~reloc_ros.runtime.verify.calibrate`);
4. the **final map** from all key frames, stored in the model file with the
   calibration (:func:`~reloc_ros.mapping.storage.embed_map`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from reloc_ros.errors import RelocError
from reloc_ros.mapping.build import MapConfig, build_map, extract_features, select_keyframes

logger = logging.getLogger(__name__)

MAP_MODES = ("auto", "none")
"""``reloc-ros train --map``: ``auto`` builds the feature map (the bags need CameraInfo), ``none`` does not."""
# Held-out frames verified to calibrate the covariance (more only costs time).
_MAX_CALIBRATION_FRAMES = 80
# Below these the map is too sparse to verify reliably; the build says so with the numbers.
_SPARSE_POINTS = 500
_SPARSE_POINTS_PER_KEYFRAME = 30


def check_camera_info(bags: Sequence[str | Path], image_topic: str | None) -> None:
    """Raise ``RelocError`` naming the topics when the bags have no CameraInfo for the image topic.

    Cheap (reads one message): run it before training, so a map that cannot
    be built is said before hours of work, not after.
    """
    from reloc_ros.data.bag import Bag, camera_info_topic, choose_image_topic

    with Bag(bags) as bag:
        topic = choose_image_topic(bag, image_topic)
        if camera_info_topic(bag, topic) is None:
            raise RelocError(f"no sensor_msgs/CameraInfo for '{topic}' in {bag.name} (looked for "
                             f"'{topic.rsplit('/', 1)[0]}/camera_info' or a single CameraInfo topic): the feature map "
                             "that verifies poses needs the camera's intrinsics. Record the camera_info topic with "
                             "the images, or train without a map: --map none (poses are then learned only)")


def _holdout(n: int, fraction: float, blocks: int = 8, seed: int = 0) -> np.ndarray:
    """Boolean mask of ``n`` frames in time order: ``blocks`` short contiguous blocks, ``fraction`` of them in all.

    Short blocks spread over the run: each held-out stretch is new to the
    calibration map (its key frames are gone) but still beside mapped
    viewpoints, as a query frame is; one long block would leave a gap that
    a single-pass mapping run never covers.
    """
    held = np.zeros(n, bool)
    if n < 2 * blocks or fraction <= 0:
        return held
    size = max(1, int(round(fraction * n / blocks)))
    rng = np.random.default_rng(seed)
    edges = np.linspace(0, n - size, blocks + 2)[1:-1].astype(int)
    for s in edges + rng.integers(0, max(1, size), blocks):
        held[s:min(n, s + size)] = True
    return held


def build_model_map(model_path: str | Path, bags: Sequence[str | Path], source: Any = None,
                    config: MapConfig | None = None, holdout: float = 0.15, progress: bool = True,
                    verify_config: Any = None) -> dict[str, Any]:
    """Build, calibrate and store the feature map of ``model_path`` from ``bags``; return its metadata entry.

    ``source`` (a :class:`~reloc_ros.data.bag.BagSource`) defaults to the
    bag options the model was trained with. Raises :class:`RelocError` when
    the bags have no CameraInfo or no point can be triangulated, and
    ``ValueError`` before any work when the model file cannot be rewritten.
    """
    from reloc_ros.data.bag import bag_source_from_metadata, read_bag_dataset
    from reloc_ros.mapping.storage import check_map_target, embed_map
    from reloc_ros.runtime.verify import Verifier, calibrate
    from reloc_ros.modelfile import read_metadata

    t0 = time.perf_counter()
    config = config or MapConfig()
    meta = read_metadata(model_path)
    check_map_target(model_path)
    source = bag_source_from_metadata(meta) if source is None else source
    check_camera_info(bags, source.image_topic)
    ds = read_bag_dataset(bags, source, image_size=None, progress=progress)
    if ds.intrinsics is None:
        raise RelocError(f"no CameraInfo in {ds.source}: the feature map needs the camera's intrinsics")
    if ds.map_frame != meta["frames"]["map_frame"]:
        raise RelocError(f"the bags' poses are in '{ds.map_frame}' but the model's in '{meta['frames']['map_frame']}'")
    kf = select_keyframes(ds.poses_n44, config)
    images = [ds.image(int(i)) for i in kf]
    depths = None if ds.depths is None else ds.depths[kf]
    logger.info("feature map: %d key frames of %d posed frames (%s)", len(kf), len(ds), config.feature)
    feats = extract_features(images, config, progress=progress)

    held_frames = _holdout(len(ds), holdout)
    held_kf = held_frames[kf]
    calibration = None
    cal_info: dict[str, Any] = {"calibration_frames": 0}
    if held_kf.any() and (~held_kf).sum() >= 2:
        keep = np.flatnonzero(~held_kf)
        cal_map = build_map([images[i] for i in keep], ds.poses_n44[kf[keep]], ds.intrinsics,
                            None if depths is None else depths[keep], config, ds.stamps_ns[kf[keep]],
                            features=[feats[i] for i in keep], progress=False)
        q = np.flatnonzero(held_frames)
        q = q[np.linspace(0, len(q) - 1, min(len(q), _MAX_CALIBRATION_FRAMES)).astype(int)]
        try:
            cal = calibrate(Verifier(cal_map, verify_config), [ds.image(int(i)) for i in q], ds.poses_n44[q],
                            ds.intrinsics, progress=progress)
            calibration = cal.to_dict()
            cal_info = {"calibration_frames": int(cal.frames), "calibration_candidates": int(len(q))}
        except RelocError as e:
            logger.warning("the verified covariance stays uncalibrated: %s", e)
            cal_info = {"calibration_frames": 0, "calibration_error": str(e)}
    else:
        logger.warning("too few key frames (%d) to hold any out: the verified covariance stays uncalibrated",
                       len(kf))
    fmap = build_map(images, ds.poses_n44[kf], ds.intrinsics, depths, config, ds.stamps_ns[kf], features=feats,
                     progress=progress)
    points, n_kf = len(fmap.points_p3), len(fmap.kf_poses_k44)
    per_kf = np.bincount(fmap.obs_kf_m, minlength=n_kf)
    sparse = points < _SPARSE_POINTS or float(np.median(per_kf)) < _SPARSE_POINTS_PER_KEYFRAME
    if sparse:
        logger.warning("the feature map is sparse: %d points, median %d per key frame (want >= %d and >= %d): "
                       "many frames will fail verification; record a mapping run with more texture or overlap%s",
                       points, int(np.median(per_kf)), _SPARSE_POINTS, _SPARSE_POINTS_PER_KEYFRAME,
                       ", or use --feature sift" if config.feature != "sift" else "")
    extra = {"bags": [str(b) for b in bags], "map_frame": ds.map_frame, "posed_frames": int(len(ds)),
             "sparse": bool(sparse), "config": asdict(config), "build_s": round(time.perf_counter() - t0, 1),
             **cal_info}
    return embed_map(model_path, fmap, calibration, extra)


def describe_map(entry: Mapping[str, Any], model: str | Path) -> str:
    """Return a few lines on a stored map (its metadata entry): size, camera, calibration, sparseness."""
    K = entry.get("intrinsics") or {}
    lines = [f"feature map stored in {model}: {entry.get('feature')} features, {entry.get('keyframes')} key frames, "
             f"{entry.get('points')} points ({entry.get('point_source')}), {entry.get('bytes', 0) / 1e6:.1f} MB, "
             f"camera {K.get('width')}x{K.get('height')}, built in {entry.get('build_s')} s"]
    if entry.get("calibration"):
        c = entry["calibration"]
        lines.append(f"verified covariance calibrated on {entry.get('calibration_frames')} held-out mapping frames: "
                     f"scale {c['scale_t']:.2f} (position) / {c['scale_r']:.2f} (rotation)")
    else:
        lines.append(f"verified covariance NOT calibrated: "
                     f"{entry.get('calibration_error', 'too few held-out frames')}")
    if entry.get("sparse"):
        lines.append("warning: the map is sparse; many frames will fail verification (see the log for the numbers)")
    return "\n".join(lines)
