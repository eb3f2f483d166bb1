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

"""The Relocalizer: one exported model file in, camera poses with honest covariances out. ROS-free.

``Relocalizer(path)`` loads a reloc_ros model file (TorchScript ``.pt``, or an
ONNX export with ONNX Runtime for CPU-only robots), validates its metadata,
picks the device, warms up, and then turns RGB images (or ``sensor_msgs``
``Image`` / ``CompressedImage`` messages, rclpy or rosbags classes alike) into
an :class:`Estimate`: ``T_map_cam``, its 6x6 covariance in the ROS layout, a
confidence, hypotheses and per-stage timings. Preprocessing follows the
model's metadata exactly (mode and size), as in training.

Uncertainty (see :mod:`reloc_ros.runtime.uncertainty`): models exported with
MC dropout give a covariance from ``samples`` dropout masks, drawn once from
``seed`` when the model is loaded (so the answer is a deterministic function
of the image: replays are reproducible and frames can be dropped without
changing the others), scaled by the calibration fitted on the validation
split. The masks are the hypotheses (up to ``hypotheses`` of them). A model
without MC dropout gets a constant covariance from its measured validation
error, with a warning, and no hypotheses.

The engine is thread-safe (one lock around the backend). For live input,
:class:`~reloc_ros.runtime.worker.LatestFrameWorker` keeps only the newest
pending frame, so memory is bounded whatever the input rate and the output is
never stale by more than one inference.

Loading runs ``warmup`` inferences on a black image of the model's input size:
a network that rejects that size (metadata and network disagree) or returns
NaN there is refused at load with a :class:`~reloc_ros.errors.RelocError`
naming the file, never a traceback on the first frame.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from reloc_ros.conversions import compressed_to_rgb8, image_to_rgb8, stamp_to_ns
from reloc_ros.data.types import Intrinsics
from reloc_ros.errors import RelocError
from reloc_ros.geometry import make_pose
from reloc_ros.preprocess import preprocess_image
from reloc_ros.runtime import uncertainty as U
from reloc_ros.runtime.backends import OnnxBackend, TorchScriptBackend

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "torchscript", "onnx")
"""``auto``: ONNX Runtime for ``.onnx`` files, TorchScript otherwise."""
STAGES = ("decode", "preprocess", "inference", "postprocess", "verification")
"""Timed stages of one frame, in order; ``total`` is their sum (``verification`` is 0 when it is off)."""
STATUSES = ("verified", "unverified", "failed")
"""Per-frame status: ``verified`` (the feature map confirmed and refined the pose), ``unverified`` (learned pose
only: no map, or verification off) or ``failed`` (the geometry does not confirm the learned pose: publish nothing)."""
VERIFY_MODES = ("auto", "on", "off")
"""``auto``: verify when the model file carries a feature map; ``on``: a model without one is an error."""
# The last verified pose is a candidate for the next frame only within this time (and with increasing stamps).
_SEQUENCE_GAP_NS = 1_000_000_000
# Median of the norm of a 3-D isotropic Gaussian vector, in units of its per-axis sigma (Maxwell distribution).
_MAXWELL_MEDIAN = 1.5382


class NoEstimate(RelocError):
    """This frame gave no usable pose (non-finite model output); the message says why."""


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_count(value: Any, name: str, minimum: int, optional: bool = False) -> int | None:
    """Return ``value`` as an int if it is an integer >= ``minimum`` (or None when ``optional``); else ValueError."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be >= {minimum} (an integer{', or None' if optional else ''}), got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Estimate:
    """One relocalization result.

    Attributes:
        stamp_ns: the input image's stamp (nanoseconds); outputs carry it.
        T_map_cam: ``(4, 4)`` camera (optical frame) pose in ``map_frame``.
        covariance: ``(6, 6)`` of that pose, ROS layout (x, y, z, rot X, rot Y,
            rot Z; rotations about the map axes), never zero.
        confidence: probability in [0, 1] that the pose is within the
            engine's tolerance (default 0.5 m and 10 deg) under the covariance.
        hypotheses: ``(K, 4, 4)`` alternative camera poses (MC-dropout samples
            for APR models; K may be 0).
        timings_ms: milliseconds per stage (:data:`STAGES`) and ``total``
            (for a batch, inference and postprocess are per image).
        map_frame, camera_frame: frame ids from the model's metadata.
        status: one of :data:`STATUSES`.
        status_detail: why, in words (inlier counts, or what the geometry rejected).
        inliers: PnP inliers behind a verified or failed pose (0 when not verified).
        learned_T_map_cam, learned_covariance: the model's own answer when verification ran (the published
            pose is the refined one), else None.
    """

    stamp_ns: int
    T_map_cam: np.ndarray
    covariance: np.ndarray
    confidence: float
    hypotheses: np.ndarray
    timings_ms: dict[str, float]
    map_frame: str
    camera_frame: str
    status: str = "unverified"
    status_detail: str = ""
    inliers: int = 0
    learned_T_map_cam: np.ndarray | None = None
    learned_covariance: np.ndarray | None = None

    @property
    def publishable(self) -> bool:
        """Whether a pose may be published for this frame at all (never for ``failed``)."""
        return self.status != "failed"

    @property
    def sigmas(self) -> tuple[float, float]:
        """(metres, degrees): RMS standard deviation of position and of rotation."""
        c = self.covariance
        return (math.sqrt(float(np.trace(c[:3, :3])) / 3.0), math.degrees(math.sqrt(float(np.trace(c[3:, 3:])) / 3.0)))


class Relocalizer:
    """Load an exported model and relocalize images; see the module docstring.

    Args:
        model_path: a reloc_ros model file (``.pt`` TorchScript or ``.onnx``).
        device: ``auto`` (CUDA if available, else CPU with a warning), ``cpu``,
            ``cuda`` or ``cuda:N`` (an error if CUDA is absent).
        backend: ``auto``, ``torchscript`` or ``onnx`` (:data:`BACKENDS`).
        samples: MC-dropout samples per frame (default
            :data:`~reloc_ros.runtime.uncertainty.DEFAULT_SAMPLES` or what the
            model was calibrated with).
        seed: seed of the dropout masks.
        tolerance: (metres, degrees) for :attr:`Estimate.confidence`.
        hypotheses: most hypotheses to return per frame.
        warmup: inferences run at load time (first calls are slow).
        threads: CPU threads for inference (default: the library's).
        verify: geometric verification against the model file's feature map (:data:`VERIFY_MODES`):
            ``auto`` verifies when the file carries a map, ``on`` refuses a file without one, ``off`` gives
            learned poses only (status ``unverified``).
        verify_config: thresholds of the verification (:class:`~reloc_ros.runtime.verify.VerifyConfig`).
    """

    def __init__(self, model_path: str | Path, device: str = "auto", backend: str = "auto",
                 samples: int | None = None, seed: int = 0,
                 tolerance: tuple[float, float] = U.DEFAULT_TOLERANCE, hypotheses: int = 8, warmup: int = 2,
                 threads: int | None = None, verify: str = "auto", verify_config: Any = None) -> None:
        path = Path(model_path)
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
        if not isinstance(device, str) or not device:
            raise ValueError(f"device must be a string such as auto, cpu, cuda or cuda:0, got {device!r}")
        if (isinstance(tolerance, (str, bytes)) or not hasattr(tolerance, "__len__") or len(tolerance) != 2
                or not all(_is_real(v) and math.isfinite(v) and v > 0 for v in tolerance)):
            raise ValueError(f"tolerance must be (metres, degrees), both finite and > 0, got {tolerance!r}")
        if verify not in VERIFY_MODES:
            raise ValueError(f"unknown verify mode {verify!r}; valid: {', '.join(VERIFY_MODES)}")
        check_count(samples, "samples", 2, optional=True)
        check_count(seed, "seed", 0)
        check_count(hypotheses, "hypotheses", 0)
        check_count(warmup, "warmup", 0)
        check_count(threads, "threads", 0, optional=True)  # 0 or None: the library's default
        if backend == "auto":
            backend = "onnx" if path.suffix.lower() == ".onnx" else "torchscript"
        self.backend_name = backend
        self._backend = (OnnxBackend if backend == "onnx" else TorchScriptBackend)(path, device, threads)
        self.metadata: dict[str, Any] = self._backend.meta
        self.model_path = path
        self.device = str(self._backend.device)
        self.input_size: tuple[int, int] = tuple(self.metadata["input_size"])  # type: ignore[assignment]
        self.preprocessing: str = self.metadata["preprocessing"]
        self.map_frame: str = self.metadata["frames"]["map_frame"]
        self.camera_frame: str = self.metadata["frames"]["camera_frame"]
        self.tolerance = (float(tolerance[0]), float(tolerance[1]))
        self.max_hypotheses = max(0, int(hypotheses))
        self._lock = threading.Lock()
        self._setup_uncertainty(samples, seed)
        self._setup_verification(verify, verify_config)
        self._warm_up(int(warmup))
        self.reset_sequence()
        logger.info("loaded %s", self.describe())
        if (self.metadata.get("quality") or {}).get("weak"):  # said by the trainer (evaluation.model_quality)
            from reloc_ros.modelfile import describe_quality

            logger.warning("model '%s': %s%s", path, describe_quality(self.metadata["quality"]),
                           "; verification against its feature map decides what is published" if self.verifying
                           else "; nothing verifies its poses (no feature map or verify off)")

    def _warm_up(self, n: int) -> None:
        """Check the network on its metadata's input size, then run the whole path ``n`` times on a black image.

        First calls of torch, OpenCV, SciPy (and the verification's) are slow. A network that rejects its
        metadata's input size, or returns NaN, is a broken file: ``RelocError`` naming it (these inferences
        are not frames of any input: no stamp is reported).
        """
        if n <= 0:
            return
        w, h = self.input_size
        try:
            (first,) = self.relocalize_preprocessed(np.zeros((1, h, w, 3), np.uint8), [0])
        except Exception as e:  # noqa: BLE001 - torch.jit.Error, RuntimeError, onnxruntime's errors: all say it
            cause = (str(e).strip().splitlines() or [type(e).__name__])[-1]
            kind = type(e).__name__ if type(e).__module__ == "builtins" else f"{type(e).__module__}.{type(e).__name__}"
            if "out of memory" in str(e).lower():
                raise RelocError(f"model '{self.model_path}': the warm-up inference ran out of memory on "
                                 f"{self.device} ({kind}: {cause}); free memory or use another device") from e
            raise RelocError(f"model '{self.model_path}': its network rejects the input size in its metadata "
                             f"({w}x{h}, preprocessing '{self.preprocessing}'): the warm-up inference failed "
                             f"with {kind}: {cause}. The file's metadata and network disagree: re-export it") from e
        nan = RelocError(f"model '{self.model_path}' returns a non-finite pose (NaN/inf) at warm-up, on a black "
                         f"{w}x{h} input: its network is broken (diverged training?); re-train or re-export it")
        if isinstance(first, NoEstimate):
            raise nan
        K = None if self._verifier is None else self._verifier.map.intrinsics
        warm = (h, w) if K is None else (K.height, K.width)
        for _ in range(n):
            try:
                self.relocalize(np.zeros((*warm, 3), np.uint8))
            except NoEstimate:
                raise nan from None

    # -- set-up -------------------------------------------------------------

    def _setup_uncertainty(self, samples: int | None, seed: int) -> None:
        unc = self.metadata.get("uncertainty") or {}
        self._keep: np.ndarray | None = None
        self._sequence = None
        if self._backend.camnet:
            from reloc_ros.runtime.camnet_runtime import SequenceState

            self._sequence = SequenceState()
            self._constant_cov = None
            self._calibration(unc, "spread of the consensus hypotheses")
            return
        if self._backend.mc:
            if samples is not None:
                n = int(samples)  # checked in __init__
            else:
                try:
                    n = check_count(unc.get("samples", U.DEFAULT_SAMPLES), "samples", 2)
                except ValueError as e:
                    raise RelocError(f"model '{self.model_path}': its metadata's uncertainty.{e}; give samples "
                                     f"explicitly or re-export it") from None
            mc = self.metadata["mc_dropout"]
            rng = np.random.default_rng(seed)
            self._keep = (rng.random((n, int(mc["feature_dim"]))) >= float(mc["dropout"])).astype(np.float32)
            self._calibration(unc, f"MC dropout ({n} samples)")
            self._constant_cov = None
            return
        val = (self.metadata.get("metrics") or {}).get("validation") or {}
        try:
            sig_t = float(val["median_translation_m"]) / _MAXWELL_MEDIAN
            sig_r = math.radians(float(val["median_rotation_deg"])) / _MAXWELL_MEDIAN
        except (KeyError, TypeError, ValueError):
            raise RelocError(f"model '{self.model_path}' has neither MC-dropout samples nor validation metrics: "
                             "reloc_ros cannot give it an honest covariance; re-train or re-export it") from None
        logger.warning("model '%s' has no MC-dropout uncertainty: publishing its validation error "
                       "(%.3f m, %.2f deg per axis) as a constant covariance", self.model_path, sig_t,
                       math.degrees(sig_r))
        self.calibration = None
        self._constant_cov = np.diag([max(sig_t, U.MIN_STD[0]) ** 2] * 3 + [max(sig_r, U.MIN_STD[1]) ** 2] * 3)
        self.uncertainty = "constant, from the validation error"

    def _calibration(self, unc: Mapping[str, Any], method: str) -> None:
        """Set the covariance calibration from the metadata's ``uncertainty`` entry (identity and a warning without)."""
        if "calibration" in unc:
            self.calibration = U.Calibration.from_dict(unc["calibration"])
            self.uncertainty = f"{method}, calibrated on {self.calibration.frames} frames"
            return
        logger.warning("model '%s' has no covariance calibration (exported outside the trainer): the raw %s is "
                       "published and is probably over-confident", self.model_path, method)
        self.calibration = U.Calibration()
        self.uncertainty = f"{method}, uncalibrated"

    def _setup_verification(self, mode: str, config: Any) -> None:
        """Load the model file's feature map into a :class:`~reloc_ros.runtime.verify.Verifier` (or say why not)."""
        from reloc_ros.runtime.verify import load_verifier

        self._last_verified: tuple[int, np.ndarray] | None = None
        self._verifier, self.verification = load_verifier(self.model_path, self.metadata, self.backend_name, mode,
                                                          config)

    @property
    def verifying(self) -> bool:
        """Whether frames are verified against a feature map."""
        return self._verifier is not None

    @property
    def covariance_method(self) -> str:
        """How the published covariances are made: the verified poses' and the learned ones'."""
        if self._verifier is None:
            return self.uncertainty
        frames = self._verifier.calibration.frames
        cal = f"calibrated on {frames} held-out mapping frames" if frames else "uncalibrated"
        return f"verified: refined-pose (PnP) covariance, {cal}; unverified: {self.uncertainty}"

    @property
    def feature_map(self) -> Any:
        """The loaded :class:`~reloc_ros.mapping.featuremap.FeatureMap`, or None."""
        return None if self._verifier is None else self._verifier.map

    def describe(self) -> str:
        """One line: model, input, backend, device, uncertainty, verification."""
        w, h = self.input_size
        return (f"{self.metadata.get('model')} ({self.metadata.get('model_kind')}) from {self.model_path}, "
                f"{self.preprocessing} {w}x{h}, {self.backend_name} on {self.device}; covariance: {self.uncertainty}"
                f"; verification: {self.verification}")

    # -- inference ----------------------------------------------------------

    def _infer(self, x_bhw3: np.ndarray) -> tuple[np.ndarray, ...]:
        with self._lock:
            return self._backend.run(x_bhw3, self._keep)

    def preprocess(self, rgb_hw3: np.ndarray) -> np.ndarray:
        """Return the model input ``(H, W, 3)`` uint8 for an RGB image, as the metadata says."""
        rgb = np.asarray(rgb_hw3)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or min(rgb.shape[:2]) < 2:
            raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {rgb.dtype} {rgb.shape}")
        return preprocess_image(rgb, self.preprocessing, self.input_size)

    def relocalize(self, rgb_hw3: np.ndarray, stamp_ns: int = 0, decode_ms: float = 0.0,
                   intrinsics: Intrinsics | None = None) -> Estimate:
        """Return the :class:`Estimate` for one RGB uint8 image; :class:`NoEstimate` if the model fails on it.

        With a feature map the learned pose is verified on the full image
        (``intrinsics``: the image's camera, from CameraInfo; without them the
        map's camera is assumed). ``ValueError`` when the image's camera is not
        the map's (at any resolution).
        """
        t0 = time.perf_counter()
        x = self.preprocess(rgb_hw3)[None]
        preprocess_ms = (time.perf_counter() - t0) * 1e3
        (est,) = self.relocalize_preprocessed(x, [stamp_ns], {"decode": float(decode_ms),
                                                              "preprocess": preprocess_ms})
        if isinstance(est, NoEstimate):
            raise est
        if self._verifier is not None:
            est = self._verify(est, np.asarray(rgb_hw3), intrinsics)
        return est

    def _verify(self, est: Estimate, rgb_hw3: np.ndarray, intrinsics: Intrinsics | None) -> Estimate:
        """Verify a learned estimate against the feature map; return the verified or failed estimate."""
        t0 = time.perf_counter()
        cands = [est.T_map_cam[None], est.hypotheses.reshape(-1, 4, 4)]
        last = self._last_verified
        if last is not None and 0 < est.stamp_ns - last[0] <= _SEQUENCE_GAP_NS:
            cands.append(last[1][None])
        v = self._verifier.verify(rgb_hw3, np.concatenate(cands), intrinsics)
        timings = dict(est.timings_ms)
        timings.update(v.timings_ms)
        timings["verification"] = (time.perf_counter() - t0) * 1e3
        timings["total"] = sum(timings[k] for k in STAGES)
        common = {"timings_ms": timings, "inliers": v.inliers, "learned_T_map_cam": est.T_map_cam,
                  "learned_covariance": est.covariance}
        if v.status != "verified":
            return dataclasses.replace(est, status="failed", status_detail=v.detail, **common)
        with self._lock:
            self._last_verified = (est.stamp_ns, v.T_map_cam)
        cov = self._verifier.calibration.apply(v.raw_covariance)
        return dataclasses.replace(est, T_map_cam=v.T_map_cam, covariance=cov,
                                   confidence=U.confidence(cov, self.tolerance), status="verified",
                                   status_detail=f"{v.detail} (key frames from the {v.source})", **common)

    def relocalize_preprocessed(self, x_bhw3: np.ndarray, stamps_ns: Any,
                                timings_ms: Mapping[str, float] | None = None) -> list[Estimate | NoEstimate]:
        """Relocalize a batch of images already preprocessed to the model input ``(B, H, W, 3)`` uint8.

        Returns one :class:`Estimate` per image, or a :class:`NoEstimate`
        (not raised) for an image whose output is not finite. ``timings_ms``
        seeds the decode/preprocess figures; inference and postprocess time
        are measured here (per image: the batch time divided by ``B``).
        """
        w, h = self.input_size
        x = np.asarray(x_bhw3)
        if x.ndim != 4 or x.shape[1:] != (h, w, 3) or x.dtype != np.uint8:
            raise ValueError(f"expected preprocessed uint8 images (B, {h}, {w}, 3), got {x.dtype} {x.shape}")
        stamps = [int(s) for s in stamps_ns]
        if len(stamps) != len(x):
            raise ValueError(f"{len(x)} images but {len(stamps)} stamps")
        if not x.flags.writeable:  # a zero-copy view of a message buffer: torch wants memory it may write
            x = x.copy()
        t1 = time.perf_counter()
        if self._sequence is not None:
            return self._relocalize_camnet(np.ascontiguousarray(x), stamps, timings_ms, t1)
        out = self._infer(np.ascontiguousarray(x))
        t2 = time.perf_counter()
        results: list[Estimate | NoEstimate] = []
        for i, stamp in enumerate(stamps):
            if not all(np.isfinite(o[i]).all() for o in out):
                results.append(NoEstimate(f"model output is not finite (NaN/inf) for the frame at "
                                          f"{stamp * 1e-9:.3f} s"))
                continue
            t_3, q_4 = out[0][i], out[1][i] / np.linalg.norm(out[1][i])
            if self._keep is not None:
                t_n3, q_n4 = out[2][i], out[3][i] / np.linalg.norm(out[3][i], axis=1, keepdims=True)
                raw = U.sample_covariance(t_3[None], q_4[None], t_n3[None], q_n4[None])[0]
                cov = self.calibration.apply(raw)
                k = self.max_hypotheses
                # One conversion for the pose and its hypotheses.
                poses = make_pose(np.concatenate([t_3[None], t_n3[:k]]), np.concatenate([q_4[None], q_n4[:k]]))
                T, hyp = poses[0], poses[1:]
            else:
                cov = self._constant_cov.copy()
                T, hyp = make_pose(t_3, q_4), np.zeros((0, 4, 4))
            results.append(Estimate(stamp, T, cov, U.confidence(cov, self.tolerance), hyp, {}, self.map_frame,
                                    self.camera_frame))
        return self._with_timings(results, timings_ms, (t2 - t1) * 1e3 / max(len(x), 1),
                                  (time.perf_counter() - t2) * 1e3 / max(len(x), 1))

    def _relocalize_camnet(self, x_bhw3: np.ndarray, stamps: list[int], timings_ms: Mapping[str, float] | None,
                           t1: float) -> list[Estimate | NoEstimate]:
        """CamNet: frames one by one in order, the previous ones as sequence hypotheses (camnet_runtime)."""
        from reloc_ros.runtime.camnet_runtime import run_frame

        torch = self._backend._torch
        results: list[Estimate | NoEstimate] = []
        post_s = 0.0
        for i, stamp in enumerate(stamps):
            with self._lock:
                r = run_frame(self._backend.module, torch.from_numpy(x_bhw3[i:i + 1]), stamp, self._sequence)
            t_post = time.perf_counter()
            if not (np.isfinite(r.T_map_cam).all() and np.isfinite(r.raw_covariance).all()):
                results.append(NoEstimate(f"model output is not finite (NaN/inf) for the frame at "
                                          f"{stamp * 1e-9:.3f} s"))
                continue
            cov = self.calibration.apply(r.raw_covariance)
            results.append(Estimate(stamp, r.T_map_cam, cov, U.confidence(cov, self.tolerance),
                                    r.hypotheses[:self.max_hypotheses], {}, self.map_frame, self.camera_frame))
            post_s += time.perf_counter() - t_post
        n = max(len(x_bhw3), 1)
        infer_ms = ((time.perf_counter() - t1) - post_s) * 1e3 / n
        return self._with_timings(results, timings_ms, infer_ms, post_s * 1e3 / n)

    def reset_sequence(self) -> None:
        """Forget the previous frames (CamNet's sequence hypotheses, the last verified pose).

        E.g. after the robot was carried away.
        """
        with self._lock:
            self._last_verified = None
            if self._sequence is not None:
                self._sequence.clear()

    @staticmethod
    def _with_timings(results: list[Estimate | NoEstimate], timings_ms: Mapping[str, float] | None,
                      inference_ms: float, postprocess_ms: float) -> list[Estimate | NoEstimate]:
        base = {"decode": 0.0, "preprocess": 0.0, "verification": 0.0, **(timings_ms or {}),
                "inference": inference_ms, "postprocess": postprocess_ms}
        base["total"] = sum(base[k] for k in STAGES)
        for est in results:
            if isinstance(est, Estimate):
                est.timings_ms.update(base)  # type: ignore[attr-defined]
        return results

    def relocalize_msg(self, msg: Any, intrinsics: Intrinsics | None = None) -> Estimate:
        """Decode a ``sensor_msgs/Image`` or ``CompressedImage`` and relocalize it, stamped with its header stamp.

        ``intrinsics``: the camera's (from its CameraInfo), for verification.
        ``ValueError`` for an encoding that cannot become RGB (the message says which are supported).
        """
        t0 = time.perf_counter()
        rgb = decode_image(msg)
        decode_ms = (time.perf_counter() - t0) * 1e3
        return self.relocalize(rgb, stamp_to_ns(msg.header.stamp), decode_ms, intrinsics)


def decode_image(msg: Any) -> np.ndarray:
    """Return RGB uint8 ``(H, W, 3)`` for an ``Image`` or ``CompressedImage`` message (rclpy or rosbags)."""
    if hasattr(msg, "encoding"):
        return image_to_rgb8(msg)
    if hasattr(msg, "format"):
        return compressed_to_rgb8(msg)
    raise ValueError(f"expected a sensor_msgs/Image or CompressedImage, got {type(msg).__name__}")
