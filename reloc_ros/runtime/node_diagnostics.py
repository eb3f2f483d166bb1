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

"""What the relocalization node counts and reports on ``/diagnostics``. ROS-free.

* :class:`NodeStats`: the node's thread-safe bookkeeping. The executor's
  image callback asks :meth:`NodeStats.admit` (the ``max_rate_hz`` limit on
  image stamps, and stamps going back in time), the inference worker
  :meth:`~NodeStats.record` s each estimate (or :meth:`~NodeStats.frame_failed`),
  the ``~/relocalize`` service counts the frames it could not use, and the
  diagnostics timer takes one period's figures with :meth:`~NodeStats.take_period`.
* :func:`diagnostics_report`: level, message and key/values of the node's
  ``relocalization`` status from those figures, the worker's counters and
  the engine; :func:`configure_failure_report` (ERROR) and
  :func:`inactive_report` while the node is not active.

The node publishes them with ``diagnostic_updater`` (an ``Updater`` whose
hardware id is the image topic; :data:`STATUS_TASK` is the status' task name,
so ``/diagnostics`` names it ``'<node name>: relocalization'``), beside the
updater's frequency and time-stamp checks of the relocalized frames
(:data:`FRAMES_TASK`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import statistics
import threading
import time
from typing import Any, Callable

from reloc_ros import conversions as conv
from reloc_ros.runtime.engine import STAGES, STATUSES, Estimate
from reloc_ros.runtime.frame_status import verification_report

NS_PER_S = 1_000_000_000
STATUS_TASK = "relocalization"
"""Task name of the node's main status: diagnostic_updater publishes it as ``'<node name>: relocalization'``."""
FRAMES_TASK = "relocalized frames"
"""Task name of the frequency and time-stamp checks of the relocalized frames (while the node is active)."""
STAMP_JUMP_BACK_NS = NS_PER_S
"""An image stamp this far before the last accepted one means time restarted (bag loop, sim time reset)."""


@dataclass(frozen=True)
class PeriodStats:
    """The node's figures since the previous ``/diagnostics`` report (:meth:`NodeStats.take_period`)."""

    in_rate_hz: float
    """Images received per second (before the rate limit)."""
    out_rate_hz: float
    """Frames relocalized per second (the worker's ``processed``)."""
    since_done_s: float
    """Seconds since the last frame was done (relocalized or failed), or since the stats were reset."""
    last_failed: bool
    """Whether the last frame done failed (an exception in the worker)."""
    problem: str
    """The last frame's problem ('' when none), as set by :meth:`NodeStats.set_problem`."""
    confidence: float | None
    """Confidence of the last estimate (``None`` before the first)."""
    sigmas: tuple[float, float] | None
    """(metres, degrees) of the last estimate (``None`` before the first)."""
    rate_dropped: int
    """Images dropped by ``max_rate_hz`` since the stats were reset."""
    timings: list[dict] = field(default_factory=list)
    """``Estimate.timings_ms`` of every estimate of the period."""
    counts: dict[str, int] = field(default_factory=dict)
    """Estimates of each status (``engine.STATUSES``) in the period."""
    verified_inliers: list[int] = field(default_factory=list)
    """Inlier counts of the verified estimates of the period."""


class NodeStats:
    """The relocalization node's counters, shared by the executor, the worker and the service threads.

    ``clock`` (seconds, monotonic) times the frames done; :meth:`take_period` is given its own ``now``.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._oneshot_skipped: dict[str, int] = {}
        self.reset()

    def reset(self) -> None:
        """Start counting again (activate). The one-shot counts are kept: each request clears them."""
        with self._lock:
            self._n_input = 0
            self._n_rate_dropped = 0
            self._last_accepted_ns: int | None = None
            self._timings: list[dict] = []
            self._last_confidence: float | None = None
            self._last_sigmas: tuple[float, float] | None = None
            self._last_failed = False
            self._last_done = self._clock()
            self._problem = ""
            self._diag_prev = (self._clock(), 0, 0)
            self._status_counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
            self._verified_inliers: list[int] = []

    # -- input ----------------------------------------------------------------

    def admit(self, stamp_ns: int, min_period_ns: int) -> tuple[bool, bool]:
        """Count one image and apply the rate limit to its stamp; return ``(accepted, stamps_went_back)``.

        An image is dropped when it comes less than ``min_period_ns`` (0: no limit) after the last accepted
        one. A stamp more than :data:`STAMP_JUMP_BACK_NS` before the last accepted one restarts the limit
        (``stamps_went_back``: the caller resets what depends on time) and is accepted.
        """
        with self._lock:
            self._n_input += 1
            last = self._last_accepted_ns
            jumped = last is not None and stamp_ns < last - STAMP_JUMP_BACK_NS
            if jumped:
                last = None
            if min_period_ns and last is not None and 0 <= stamp_ns - last < min_period_ns:
                self._n_rate_dropped += 1
                return False, False
            self._last_accepted_ns = stamp_ns
            return True, jumped

    # -- frames ---------------------------------------------------------------

    def record(self, est: Estimate) -> None:
        """Record one estimate: its timings, confidence, sigmas, status and (verified) inliers."""
        with self._lock:
            self._timings.append(dict(est.timings_ms))
            self._last_confidence = est.confidence
            self._last_sigmas = est.sigmas
            self._last_failed = False
            self._last_done = self._clock()
            if est.status in self._status_counts:
                self._status_counts[est.status] += 1
            if est.status == "verified":
                self._verified_inliers.append(int(est.inliers))

    def frame_failed(self) -> None:
        """Record one frame that failed with an exception (no estimate)."""
        with self._lock:
            self._last_failed = True
            self._last_done = self._clock()

    def set_problem(self, problem: str) -> None:
        """Set the last frame's problem ('' when none): the WARN message of ``/diagnostics``."""
        with self._lock:
            self._problem = problem

    @property
    def problem(self) -> str:
        """What went wrong with the last frame ('' when nothing did)."""
        with self._lock:
            return self._problem

    # -- ~/relocalize -----------------------------------------------------------

    def clear_oneshot_skipped(self) -> None:
        """Forget the frames skipped for the previous ``~/relocalize`` request (a new one starts)."""
        with self._lock:
            self._oneshot_skipped = {}

    def count_oneshot_skipped(self, status: str) -> None:
        """Count a frame of ``status`` that could not answer the pending ``~/relocalize`` request."""
        with self._lock:
            self._oneshot_skipped[status] = self._oneshot_skipped.get(status, 0) + 1

    def oneshot_skipped(self) -> dict[str, int]:
        """``{status: frames}`` skipped since the current request started (a copy)."""
        with self._lock:
            return dict(self._oneshot_skipped)

    # -- /diagnostics -----------------------------------------------------------

    def take_period(self, processed: int, now: float | None = None) -> PeriodStats:
        """Return the figures since the previous call (or reset), at ``now`` (``clock``'s seconds; default ``clock()``).

        ``processed`` is the worker's count of frames relocalized so far. Timings, status counts and inliers
        start again for the next period; the last estimate's figures and the problem are kept.
        """
        if now is None:
            now = self._clock()
        with self._lock:
            t0, n_in0, n_done0 = self._diag_prev
            elapsed = max(now - t0, 1e-9)
            in_rate = (self._n_input - n_in0) / elapsed
            out_rate = (processed - n_done0) / elapsed
            self._diag_prev = (now, self._n_input, processed)
            timings, self._timings = self._timings, []
            counts, self._status_counts = self._status_counts, dict.fromkeys(STATUSES, 0)
            inliers, self._verified_inliers = self._verified_inliers, []
            return PeriodStats(in_rate_hz=in_rate, out_rate_hz=out_rate, since_done_s=now - self._last_done,
                               last_failed=self._last_failed, problem=self._problem,
                               confidence=self._last_confidence, sigmas=self._last_sigmas,
                               rate_dropped=self._n_rate_dropped, timings=timings, counts=counts,
                               verified_inliers=inliers)


@dataclass(frozen=True)
class DiagnosticsReport:
    """The relocalization node's main ``/diagnostics`` status (task :data:`STATUS_TASK`)."""

    level: str
    """OK, WARN or ERROR (``conversions.DIAGNOSTIC_LEVELS``)."""
    message: str
    values: dict[str, Any]
    hardware_id: str = ""
    """What the status is about, as diagnostic tools group it: the camera's image topic ('' = the updater's)."""

    def key_values(self) -> list[tuple[str, str]]:
        """``(key, value)`` strings of the status' KeyValues: floats with 4 significant digits."""
        return conv.diagnostic_key_values(self.values)


def configure_failure_report(reason: str, model_path: str) -> DiagnosticsReport:
    """Return the ERROR status reported while unconfigured after a failed configure (bad parameters, no model)."""
    return DiagnosticsReport("ERROR", f"configure failed: {reason}",
                             {"state": "unconfigured", "model": model_path or "(none)", "reason": reason})


def inactive_report(configured: bool) -> DiagnosticsReport:
    """Return the status of a node that is not active (waiting for its lifecycle manager, or deactivated): OK."""
    state = "inactive" if configured else "unconfigured"
    return DiagnosticsReport("OK", f"not relocalizing: lifecycle state {state} (waiting for "
                             f"{'activate' if configured else 'configure'})", {"state": state})


def diagnostics_report(period: PeriodStats, worker_stats: Any, reloc: Any, *, period_s: float, image_topic: str,
                       camera_info_topic: str, intrinsics: Any) -> DiagnosticsReport:
    """Level, message and key/values of the node's ``/diagnostics`` over one period.

    Args:
        period: the node's figures (:meth:`NodeStats.take_period`).
        worker_stats: the inference worker's counters (``engine.WorkerStats``), or None while there is none.
        reloc: the engine (``model_path``, ``device``, ``uncertainty``, ``verifying``), or None when no model
            is loaded (ERROR).
        period_s: ``diagnostics_period_s``; no frame done for twice that is a WARN.
        image_topic: the image topic subscribed to (resolved), for the messages.
        camera_info_topic: the CameraInfo topic subscribed to (resolved).
        intrinsics: the latest valid CameraInfo's intrinsics (``width``, ``height``), or None.
    """
    stats = worker_stats
    processed = stats.processed if stats is not None else 0
    done = processed + (stats.failed if stats is not None else 0)
    conf, sigmas = period.confidence, period.sigmas
    verifying = bool(reloc.verifying) if reloc is not None else False
    verification, all_failed = verification_report(period.counts, period.verified_inliers, verifying)
    since_done = period.since_done_s
    if reloc is None:
        level, message = "ERROR", "model not loaded"
    elif since_done > 2 * period_s:
        level = "WARN"
        message = (f"no frames for {since_done:.1f} s: is anything publishing on {image_topic}?"
                   if done == 0 else f"no frames for {since_done:.1f} s on {image_topic}")
    elif period.last_failed:
        level, message = "WARN", f"last frame failed: {stats.last_error if stats is not None else '?'}"
    elif all_failed:
        level, message = "WARN", all_failed
    elif period.problem:
        level, message = "WARN", period.problem
    else:
        level = "OK"
        message = (f"relocalizing at {period.out_rate_hz:.1f} Hz"
                   + (f", confidence {conf:.2f}" if conf is not None else ""))
        if verifying and isinstance(verification["frames verified (%)"], float):
            message += f", {verification['frames verified (%)']:.0f}% verified"
    values: dict[str, Any] = {
        "input rate (Hz)": float(period.in_rate_hz),
        "processed rate (Hz)": float(period.out_rate_hz),
        "processed": processed,
        "dropped (worker busy)": stats.dropped if stats is not None else 0,
        "dropped (max_rate_hz)": period.rate_dropped,
        "failed": stats.failed if stats is not None else 0,
        "last error": (stats.last_error if stats is not None else "") or "none",
    }
    for stage in (*STAGES, "total"):
        vals = [tm[stage] for tm in period.timings if stage in tm]
        values[f"latency {stage} median (ms)"] = float(statistics.median(vals)) if vals else "n/a"
    values.update(verification)
    values["last confidence"] = float(conf) if conf is not None else "n/a"
    values["sigma position (m)"] = float(sigmas[0]) if sigmas else "n/a"
    values["sigma rotation (deg)"] = float(sigmas[1]) if sigmas else "n/a"
    if reloc is not None:
        values["model"] = str(reloc.model_path)
        values["device"] = reloc.device
        values["uncertainty"] = reloc.uncertainty
    values["image topic"] = image_topic
    values["camera_info"] = (f"{intrinsics.width}x{intrinsics.height} from {camera_info_topic}"
                             if intrinsics is not None else
                             f"none yet on {camera_info_topic} (the map's intrinsics are used when the "
                             f"image size matches)")
    return DiagnosticsReport(level, message, values, hardware_id=image_topic)
