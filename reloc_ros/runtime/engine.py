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
:class:`LatestFrameWorker` keeps only the newest pending frame, so memory is
bounded whatever the input rate and the output is never stale by more than
one inference.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

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
        if len(tolerance) != 2 or not all(isinstance(v, (int, float)) and v > 0 for v in tolerance):
            raise ValueError(f"tolerance must be (metres, degrees), both > 0, got {tolerance!r}")
        if verify not in VERIFY_MODES:
            raise ValueError(f"unknown verify mode {verify!r}; valid: {', '.join(VERIFY_MODES)}")
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
        # The whole path: first calls of torch, OpenCV, SciPy (and the verification's) are slow.
        K = None if self._verifier is None else self._verifier.map.intrinsics
        warm = (self.input_size[1], self.input_size[0]) if K is None else (K.height, K.width)
        for _ in range(max(0, int(warmup))):
            self.relocalize(np.zeros((*warm, 3), np.uint8))
        self.reset_sequence()
        logger.info("loaded %s", self.describe())

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
            n = int(samples if samples is not None else unc.get("samples", U.DEFAULT_SAMPLES))
            if n < 2:
                raise ValueError(f"samples must be >= 2 for an MC-dropout covariance, got {n}")
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
        common = dict(timings_ms=timings, inliers=v.inliers, learned_T_map_cam=est.T_map_cam,
                      learned_covariance=est.covariance)
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


@dataclass
class WorkerStats:
    """Counters of a :class:`LatestFrameWorker` (read them from any thread)."""

    submitted: int = 0
    processed: int = 0
    dropped: int = 0
    failed: int = 0
    last_error: str = ""


class LatestFrameWorker:
    """Run ``process(item)`` on a background thread, keeping only the newest pending item.

    :meth:`submit` never blocks: it replaces a pending item that the worker
    has not started yet (counted as dropped). So with inputs faster than
    ``process``, memory holds at most one pending and one running item, and
    each result is from the newest frame available when the worker got free.
    Exceptions from ``process`` are counted, passed to ``on_error`` and do not
    stop the worker: one bad frame never takes the pipeline down.
    """

    def __init__(self, process: Callable[[Any], None], on_error: Callable[[BaseException, Any], None] | None = None,
                 name: str = "reloc_ros-worker") -> None:
        self._process = process
        self._on_error = on_error
        self._cond = threading.Condition()
        self._pending: Any = None
        self._has_pending = False
        self._running = True
        self._idle = True
        self.stats = WorkerStats()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> bool:
        """Queue ``item`` (replacing an unstarted one); return True if one was dropped."""
        with self._cond:
            if not self._running:
                raise RuntimeError("LatestFrameWorker is stopped")
            dropped = self._has_pending
            self._pending, self._has_pending = item, True
            self.stats.submitted += 1
            self.stats.dropped += int(dropped)
            self._cond.notify()
        return dropped

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._running and not self._has_pending:
                    self._idle = True
                    self._cond.notify_all()
                    self._cond.wait()
                if not self._running:
                    self._idle = True
                    self._cond.notify_all()
                    return
                item, self._pending, self._has_pending = self._pending, None, False
                self._idle = False
            try:
                self._process(item)
                self.stats.processed += 1
            except Exception as e:  # noqa: BLE001 - any failure of one frame is reported, never fatal
                self.stats.failed += 1
                self.stats.last_error = f"{type(e).__name__}: {e}"
                if self._on_error is not None:
                    self._on_error(e, item)
                else:
                    logger.warning("frame failed: %s", self.stats.last_error)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is pending or running; return False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._idle and not self._has_pending, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the running item (a pending one is discarded); idempotent."""
        with self._cond:
            self._running = False
            self._pending, self._has_pending = None, False
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
