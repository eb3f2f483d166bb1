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


"""The 3-D feature map: keyframes, map points and their observations (2-D keypoint + descriptor), and its storage.

A :class:`FeatureMap` is what the runtime verifier matches a query image
against: descriptors of the observations of a few keyframes near the learned
pose (:meth:`FeatureMap.nearest_keyframes`, or by image similarity with
:meth:`FeatureMap.retrieve`), whose point ids give 3-D map points for PnP.

Storage (:meth:`FeatureMap.to_bytes`) is an ``np.savez_compressed`` archive of
plain numeric arrays plus ``header``, a uint8 array holding UTF-8 JSON
(format name and version, feature, intrinsics, info, dtypes and shapes).
Nothing is pickled, and :meth:`FeatureMap.from_bytes` loads with
``allow_pickle=False`` and checks every array, so a crafted file can fail to
load but never run code.

Conventions: ``kf_poses_k44`` are float64 ``T_map_cam`` (camera optical frame,
z forward, x right, y down); keypoints are pixels of images of the map's
``intrinsics`` with pixel centres at integers.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import cv2
import numpy as np

from reloc_ros.data.types import Intrinsics
from reloc_ros.errors import RelocError
from reloc_ros.mapping.features import DESCRIPTOR_SHAPE, FEATURE_TYPES

log = logging.getLogger(__name__)

MAP_FORMAT = "reloc_ros_feature_map"
MAP_FORMAT_VERSION = 1
#: Size (width, height) of the grayscale thumbnails behind :func:`thumbnail_descriptor`.
THUMB_SIZE = (32, 24)
# A header larger than this is not one this code wrote (it holds a few dicts and numbers).
_MAX_HEADER_BYTES = 16 << 20
_ARRAYS = ("kf_poses_k44", "kf_stamps_ns", "kf_thumbs_kd", "points_p3", "obs_kf_m", "obs_point_m", "obs_xy_m2",
           "obs_desc_md")
# Without this many metres per radian of viewing-direction difference, nearest_keyframes' fallback
# ranks keyframes by a sum of both: 1 m of position counts as much as 57 deg of direction.
_FALLBACK_M_PER_RAD = 1.0


# Scale of the uint8 quantisation of stored SIFT descriptors (COLMAP's: 512, clipped to 255).
_SIFT_QUANT = 512.0


def thumbnail_descriptor(image_rgb: np.ndarray) -> np.ndarray:
    """Global descriptor (D,) float32 of an RGB image for cheap retrieval, D = 32 * 24.

    Grayscale, shrunk to 32x24 with area averaging (small shifts give small
    changes), zero-mean (invariant to overall brightness) and unit L2 norm, so a
    dot product is the cosine similarity. A constant image gives all zeros
    (similarity 0 to everything), never NaN. Any image size is accepted.
    """
    img = np.asarray(image_rgb)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"image must be uint8 RGB (H, W, 3), got shape {img.shape} dtype {img.dtype}")
    gray = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
    small = cv2.resize(gray, THUMB_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    small -= small.mean()
    norm = float(np.linalg.norm(small))
    # Constant images leave only rounding noise after the mean is removed: call that zero.
    return (small / norm if norm > 1e-3 else np.zeros_like(small)).astype(np.float32)


def digest(data: bytes) -> str:
    """SHA-256 (hex) of stored map bytes; apply it to the exact bytes written (compression is not canonical)."""
    return hashlib.sha256(bytes(data)).hexdigest()


def _intrinsics_dict(intr: Intrinsics) -> dict[str, Any]:
    return {"fx": float(intr.fx), "fy": float(intr.fy), "cx": float(intr.cx), "cy": float(intr.cy),
            "width": int(intr.width), "height": int(intr.height)}


@dataclass(frozen=True, eq=False)
class FeatureMap:
    """Keyframes, 3-D map points and their observations, built by :func:`reloc_ros.mapping.build.build_map`.

    K keyframes, P points, M observations:

    * ``kf_poses_k44`` float64 (K, 4, 4) ``T_map_cam``; ``kf_stamps_ns`` int64 (K,);
      ``kf_thumbs_kd`` float32 (K, D) :func:`thumbnail_descriptor` of each keyframe.
    * ``points_p3`` float64 (P, 3) map points in metres.
    * ``obs_kf_m`` int32 (M,) keyframe, ``obs_point_m`` int32 (M,) point,
      ``obs_xy_m2`` float32 (M, 2) keypoint pixel, ``obs_desc_md`` descriptor
      (float32 (M, 128) RootSIFT or uint8 (M, 32) ORB) of each observation.
    * ``info``: JSON-able build report (point source, counts, reprojection error, config, ...).

    Construction checks shapes, dtypes and index ranges (ValueError naming the
    problem) and keeps the observations sorted by keyframe (stable), so
    :meth:`observations` of a few keyframes costs only what it returns.
    """

    feature: str
    intrinsics: Intrinsics
    kf_poses_k44: np.ndarray
    kf_stamps_ns: np.ndarray
    kf_thumbs_kd: np.ndarray
    points_p3: np.ndarray
    obs_kf_m: np.ndarray
    obs_point_m: np.ndarray
    obs_xy_m2: np.ndarray
    obs_desc_md: np.ndarray
    info: dict = field(default_factory=dict)
    _kf_start: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.feature not in FEATURE_TYPES:
            raise ValueError(f"feature '{self.feature}' unknown; valid features: {', '.join(FEATURE_TYPES)}")
        if not isinstance(self.intrinsics, Intrinsics):
            raise ValueError(f"intrinsics must be a reloc_ros.data.types.Intrinsics, "
                             f"got {type(self.intrinsics).__name__}")
        width, desc_dtype = DESCRIPTOR_SHAPE[self.feature]
        dtypes = {"kf_poses_k44": np.float64, "kf_stamps_ns": np.int64, "kf_thumbs_kd": np.float32,
                  "points_p3": np.float64, "obs_kf_m": np.int32, "obs_point_m": np.int32, "obs_xy_m2": np.float32,
                  "obs_desc_md": desc_dtype}
        for name, dtype in dtypes.items():
            arr = np.asarray(getattr(self, name))
            # Only lossless-in-kind casts (float64 -> float32, int64 -> int32 after a range check below).
            if arr.size and arr.dtype != dtype and not np.can_cast(arr.dtype, dtype, casting="same_kind"):
                raise ValueError(f"{name} must be {np.dtype(dtype).name}, got dtype {arr.dtype}")
            if dtype is np.int32 and arr.size and (arr.min() < 0 or arr.max() > np.iinfo(np.int32).max):
                raise ValueError(f"{name} indices must be in [0, 2**31), got range [{arr.min()}, {arr.max()}]")
            object.__setattr__(self, name, np.ascontiguousarray(arr, dtype=dtype))
        k = self.kf_poses_k44.shape[0] if self.kf_poses_k44.ndim == 3 else -1
        p = self.points_p3.shape[0] if self.points_p3.ndim == 2 else -1
        m = self.obs_kf_m.shape[0] if self.obs_kf_m.ndim == 1 else -1
        d = self.kf_thumbs_kd.shape[1] if self.kf_thumbs_kd.ndim == 2 else -1
        expected = {"kf_poses_k44": (k, 4, 4), "kf_stamps_ns": (k,), "kf_thumbs_kd": (k, d), "points_p3": (p, 3),
                    "obs_kf_m": (m,), "obs_point_m": (m,), "obs_xy_m2": (m, 2), "obs_desc_md": (m, width)}
        for name, shape in expected.items():
            got = getattr(self, name).shape
            if -1 in shape or got != shape:
                raise ValueError(f"{name} has shape {got}; expected {tuple('?' if s < 0 else s for s in shape)} "
                                 f"for {max(k, 0)} keyframes, {max(p, 0)} points, {max(m, 0)} observations "
                                 f"and {self.feature} descriptors of width {width}")
        if k < 1:
            raise ValueError("a feature map needs at least one keyframe")
        if d < 1:
            raise ValueError(f"kf_thumbs_kd must have at least one column, got shape {self.kf_thumbs_kd.shape}")
        for name in ("kf_poses_k44", "points_p3", "kf_thumbs_kd", "obs_xy_m2"):
            arr = getattr(self, name)
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} holds non-finite values")
        if self.feature == "sift" and not np.all(np.isfinite(self.obs_desc_md)):
            raise ValueError("obs_desc_md holds non-finite values")
        R = self.kf_poses_k44[:, :3, :3]
        rigid = (np.abs(R @ np.swapaxes(R, 1, 2) - np.eye(3)).max(axis=(1, 2)) < 1e-5) & \
            (np.abs(self.kf_poses_k44[:, 3] - [0.0, 0.0, 0.0, 1.0]).max(axis=1) < 1e-9)
        if not rigid.all():
            raise ValueError(f"kf_poses_k44 are not rigid transforms at keyframes "
                             f"{np.flatnonzero(~rigid)[:10].tolist()}")
        for name, n_max in (("obs_kf_m", k), ("obs_point_m", p)):
            arr = getattr(self, name)
            if arr.size and (arr.min() < 0 or arr.max() >= n_max):
                raise ValueError(f"{name} indices must be in [0, {n_max}), got range [{arr.min()}, {arr.max()}]")
        if not isinstance(self.info, dict):
            raise ValueError(f"info must be a dict, got {type(self.info).__name__}")
        # Sorted by keyframe (stable, so each keyframe's order is kept): observations() slices.
        if m and np.any(np.diff(self.obs_kf_m) < 0):
            order = np.argsort(self.obs_kf_m, kind="stable")
            for name in ("obs_kf_m", "obs_point_m", "obs_xy_m2", "obs_desc_md"):
                object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name)[order]))
        object.__setattr__(self, "_kf_start", np.searchsorted(self.obs_kf_m, np.arange(k + 1)).astype(np.int64))

    # -- sizes ---------------------------------------------------------------

    @property
    def n_keyframes(self) -> int:
        return int(self.kf_poses_k44.shape[0])

    @property
    def n_points(self) -> int:
        return int(self.points_p3.shape[0])

    @property
    def n_observations(self) -> int:
        return int(self.obs_kf_m.shape[0])

    # -- queries -------------------------------------------------------------

    def observations(self, kf_indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Descriptors, point ids (int64) and keyframe ids (int64) of all observations of the given keyframes.

        In the order of ``kf_indices`` (each keyframe's observations together).
        Costs O(observations returned), not O(M). Raises ValueError on an index
        outside [0, K).
        """
        idx = np.asarray(kf_indices, dtype=np.int64).reshape(-1)
        k = self.n_keyframes
        if idx.size and (idx.min() < 0 or idx.max() >= k):
            raise ValueError(f"keyframe indices must be in [0, {k}), got {idx[(idx < 0) | (idx >= k)][:5].tolist()}")
        if idx.size == 0:
            return self.obs_desc_md[:0], np.zeros(0, np.int64), np.zeros(0, np.int64)
        slices = [slice(int(self._kf_start[i]), int(self._kf_start[i + 1])) for i in idx]
        desc = np.concatenate([self.obs_desc_md[s] for s in slices])
        pts = np.concatenate([self.obs_point_m[s] for s in slices]).astype(np.int64)
        kfs = np.repeat(idx, [s.stop - s.start for s in slices])
        return desc, pts, kfs

    def observation_xy(self, kf_index: int) -> np.ndarray:
        """Keypoint pixels (n, 2) float32 of one keyframe's observations, in :meth:`observations` order."""
        i = int(kf_index)
        if not 0 <= i < self.n_keyframes:
            raise ValueError(f"keyframe index must be in [0, {self.n_keyframes}), got {kf_index}")
        return self.obs_xy_m2[self._kf_start[i]:self._kf_start[i + 1]]

    def nearest_keyframes(self, T_map_cam_44: np.ndarray, k: int, max_angle_deg: float = 60.0) -> np.ndarray:
        """Return indices (int64) of the keyframes nearest in position to a pose, nearest first.

        Only keyframes whose optical axis is within ``max_angle_deg`` of the
        pose's count (a keyframe looking elsewhere sees other things); fewer
        than ``k`` are returned when fewer qualify. When none qualifies, the
        ``k`` best by distance plus direction difference (1 m per radian) are
        returned instead, so the caller always gets something to try.
        """
        T = np.asarray(T_map_cam_44, dtype=np.float64)
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            raise ValueError(f"T_map_cam_44 must be a finite 4x4 pose, got shape {T.shape}")
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if not (np.isfinite(max_angle_deg) and 0.0 <= max_angle_deg <= 180.0):
            raise ValueError(f"max_angle_deg must be in [0, 180], got {max_angle_deg}")
        dist_k = np.linalg.norm(self.kf_poses_k44[:, :3, 3] - T[:3, 3], axis=1)
        axis = T[:3, 2] / max(np.linalg.norm(T[:3, 2]), 1e-12)
        ang_k = np.arccos(np.clip(self.kf_poses_k44[:, :3, 2] @ axis, -1.0, 1.0))
        ok = np.flatnonzero(ang_k <= np.radians(max_angle_deg) + 1e-12)
        if ok.size:
            return ok[np.argsort(dist_k[ok], kind="stable")][:int(k)].astype(np.int64)
        score = dist_k + _FALLBACK_M_PER_RAD * ang_k
        return np.argsort(score, kind="stable")[:int(k)].astype(np.int64)

    def retrieve(self, image_rgb: np.ndarray, k: int) -> np.ndarray:
        """Return the ``k`` keyframes (int64) most similar by thumbnail cosine similarity, best first."""
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        sims = self.kf_thumbs_kd @ thumbnail_descriptor(image_rgb)
        return np.argsort(-sims, kind="stable")[:int(k)].astype(np.int64)

    def summary(self) -> dict[str, Any]:
        """Short JSON-able description (for model metadata): sizes, feature, intrinsics, quality figures."""
        info = self.info
        return {"format": MAP_FORMAT, "format_version": MAP_FORMAT_VERSION, "feature": self.feature,
                "keyframes": self.n_keyframes, "points": self.n_points, "observations": self.n_observations,
                "intrinsics": _intrinsics_dict(self.intrinsics), "point_source": info.get("point_source"),
                "reprojection_px_median": info.get("reprojection_px_median"),
                "reprojection_px_p90": info.get("reprojection_px_p90"),
                "track_length_median": info.get("track_length_median")}

    # -- storage -------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Serialise to an ``np.savez_compressed`` archive (no pickle); see the module docstring.

        SIFT descriptors are stored as uint8, ``round(512 x)`` clipped to
        255, as COLMAP stores them: RootSIFT components lie in [0, 1] and
        rarely exceed 0.5, so this loses nothing matching can tell, and the
        map (most of whose bytes are descriptors) is four times smaller.
        """
        arrays = {name: getattr(self, name) for name in _ARRAYS}
        if self.feature == "sift":
            arrays["obs_desc_md"] = np.clip(np.rint(self.obs_desc_md * _SIFT_QUANT), 0, 255).astype(np.uint8)
        header = {"format": MAP_FORMAT, "format_version": MAP_FORMAT_VERSION, "feature": self.feature,
                  "intrinsics": _intrinsics_dict(self.intrinsics), "info": self.info,
                  "arrays": {name: {"dtype": a.dtype.str, "shape": list(a.shape)} for name, a in arrays.items()}}
        try:
            text = json.dumps(header, allow_nan=False, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise RelocError(f"feature map info is not plain JSON ({exc})") from exc
        buf = io.BytesIO()
        np.savez_compressed(buf, header=np.frombuffer(text.encode("utf-8"), dtype=np.uint8), **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, what: str = "feature map") -> "FeatureMap":
        """Load a map written by :meth:`to_bytes`, checking everything; RelocError naming ``what`` if unusable."""
        raw = bytes(data)
        if not raw.startswith(b"PK"):
            raise RelocError(f"{what} is not a reloc_ros feature map (not a zip archive; {len(raw)} bytes)")
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
                names = set(npz.files)
                missing = [n for n in ("header", *_ARRAYS) if n not in names]
                if missing:
                    raise RelocError(f"{what} is not a reloc_ros feature map: arrays {missing} missing "
                                     f"(has {sorted(names)})")
                header = _parse_header(npz["header"], what)
                arrays = {}
                declared = header["arrays"]
                for name in _ARRAYS:
                    arr = npz[name]
                    spec = declared.get(name) if isinstance(declared, dict) else None
                    if not isinstance(spec, dict) or spec.get("dtype") != arr.dtype.str or \
                            list(spec.get("shape", [])) != list(arr.shape):
                        raise RelocError(f"{what}: array {name} is {arr.dtype.str} {list(arr.shape)} but the header "
                                         f"declares {spec}")
                    arrays[name] = arr
        except RelocError:
            raise
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error, MemoryError) as exc:
            raise RelocError(f"{what} is unreadable or corrupt ({type(exc).__name__}: {exc})") from exc
        width, desc_dtype = DESCRIPTOR_SHAPE[header["feature"]]
        expected_dtypes = {"kf_poses_k44": np.float64, "kf_stamps_ns": np.int64, "kf_thumbs_kd": np.float32,
                           "points_p3": np.float64, "obs_kf_m": np.int32, "obs_point_m": np.int32,
                           "obs_xy_m2": np.float32, "obs_desc_md": np.uint8}  # SIFT too, quantised (to_bytes)
        for name, dtype in expected_dtypes.items():
            if arrays[name].dtype != np.dtype(dtype):
                raise RelocError(f"{what}: array {name} has dtype {arrays[name].dtype}, expected "
                                 f"{np.dtype(dtype).name} for a {header['feature']} map")
        if header["feature"] == "sift":  # back to unit-norm RootSIFT, as detect() gives them
            d = arrays["obs_desc_md"].astype(np.float32) / _SIFT_QUANT
            arrays["obs_desc_md"] = (d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)).astype(
                desc_dtype)
        intr = header["intrinsics"]
        try:
            intrinsics = Intrinsics(float(intr["fx"]), float(intr["fy"]), float(intr["cx"]), float(intr["cy"]),
                                    int(intr["width"]), int(intr["height"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise RelocError(f"{what}: bad intrinsics {intr} ({exc})") from exc
        try:
            return cls(feature=header["feature"], intrinsics=intrinsics, info=header["info"], **arrays)
        except ValueError as exc:
            raise RelocError(f"{what} is inconsistent: {exc}") from exc


def _parse_header(arr: np.ndarray, what: str) -> dict[str, Any]:
    """Decode and check the JSON header array of a stored map."""
    if arr.dtype != np.uint8 or arr.ndim != 1 or arr.size > _MAX_HEADER_BYTES:
        raise RelocError(f"{what}: header must be a 1-D uint8 array of at most {_MAX_HEADER_BYTES} bytes, "
                         f"got {arr.dtype} {arr.shape}")
    try:
        header = json.loads(arr.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RelocError(f"{what}: header is not UTF-8 JSON ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != MAP_FORMAT:
        fmt = header.get("format") if isinstance(header, dict) else None
        raise RelocError(f"{what} is not a reloc_ros feature map (format {fmt!r}, expected {MAP_FORMAT!r})")
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RelocError(f"{what}: bad format_version {version!r}")
    if version > MAP_FORMAT_VERSION:
        raise RelocError(f"{what} has format version {version}, newer than the {MAP_FORMAT_VERSION} this reloc_ros "
                         "reads; upgrade reloc_ros")
    if header.get("feature") not in FEATURE_TYPES:
        raise RelocError(f"{what}: feature {header.get('feature')!r} unknown; valid: {', '.join(FEATURE_TYPES)}")
    for key in ("intrinsics", "info", "arrays"):
        if not isinstance(header.get(key), dict):
            raise RelocError(f"{what}: header entry '{key}' missing or not an object")
    return header


__all__ = ["FeatureMap", "MAP_FORMAT", "MAP_FORMAT_VERSION", "THUMB_SIZE", "digest", "thumbnail_descriptor"]
