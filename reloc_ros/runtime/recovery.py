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

"""Kidnapped-robot recovery: when to re-initialise the robot's localizer from a visual pose.

ROS-free state machines that a node drives:

* :class:`KidnapDetector` compares each visual map->base_link estimate with
  the robot's current belief (map->base_link from TF, e.g. AMCL's, with its
  covariance). When they disagree beyond what both covariances allow, for
  ``consecutive`` confident frames in a row, it asks for a re-initialisation
  (the node publishes the visual pose on ``/initialpose``). Low-confidence
  estimates never count, and re-initialisations are rate-limited.
* :class:`OneShotRequest` backs a ``std_srvs/Trigger`` service: relocalise
  from the best of the next few frames.

Stamps are integer nanoseconds of the images (ROS time, sim time included).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
import logging
import math
import numbers
import threading
from typing import Any, Mapping

import numpy as np
from scipy.stats import chi2

from reloc_ros.runtime.tf_math import (check_covariance, check_pose, planar_difference, pose_difference,
                                       select_planar)

_LOG = logging.getLogger(__name__)
_NS = 1_000_000_000

STATES = ("disabled", "low_confidence", "agree", "disagree", "no_belief", "rate_limited", "reinitialise")


def _finite_in(value: Any, name: str, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False,
               where: str = "") -> float:
    """Check a real number lies in a range; ``ValueError`` naming it, its value and the range."""
    rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{where}{name} must be a number in {rng}, got {value!r}")
    v = float(value)
    ok = math.isfinite(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        raise ValueError(f"{where}{name} must be in {rng}, got {value!r}")
    return v


def _check_stamp(stamp_ns: Any, name: str = "stamp_ns") -> int:
    if isinstance(stamp_ns, bool) or not isinstance(stamp_ns, numbers.Integral) or stamp_ns < 0:
        raise ValueError(f"{name} must be a non-negative integer number of nanoseconds, got {stamp_ns!r}")
    return int(stamp_ns)


def _check_confidence(confidence: Any) -> float:
    return _finite_in(confidence, "confidence", 0.0, 1.0)


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class RecoveryConfig:
    """When a disagreement between the visual pose and the robot's belief triggers a re-initialisation."""

    enabled: bool = True
    # N confident disagreeing frames in a row (hysteresis).
    consecutive: int = 3
    # Estimates below this never count (and never trigger).
    min_confidence: float = 0.5
    # Chi-square gate on the squared Mahalanobis distance of the disagreement under cov_visual + cov_belief.
    gate_probability: float = 0.999
    # AND the disagreement must exceed this translation ...
    min_translation_m: float = 0.5
    # ... OR this rotation (so tiny but overconfident mismatches don't re-initialise).
    min_rotation_deg: float = 15.0
    # Compare (x, y, yaw) only, as for a ground robot under Nav2/AMCL; False: full 6-DoF.
    planar: bool = True
    # Rate limit between two re-initialisations.
    min_interval_s: float = 10.0
    # A streak whose previous frame is older than this starts again.
    streak_timeout_s: float = 5.0
    # No belief at all (robot not localised yet): re-initialise after N confident frames.
    reinit_without_belief: bool = True
    # (m, rad) standard deviations added to the belief's variances: AMCL may publish
    # near-zero or zero variance on axes it does not estimate.
    belief_std_floor: tuple[float, float] = (0.05, 0.02)

    def __post_init__(self) -> None:
        where = "RecoveryConfig."
        for name in ("enabled", "planar", "reinit_without_belief"):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{where}{name} must be true or false, got {value!r}")
            object.__setattr__(self, name, bool(value))
        c = self.consecutive
        if isinstance(c, bool) or not isinstance(c, numbers.Integral) or c < 1:
            raise ValueError(f"{where}consecutive must be an integer >= 1, got {c!r}")
        object.__setattr__(self, "consecutive", int(c))
        for name, lo, hi, lo_open, hi_open in (
                ("min_confidence", 0.0, 1.0, False, False),
                ("gate_probability", 0.0, 1.0, True, True),
                ("min_translation_m", 0.0, math.inf, False, True),
                ("min_rotation_deg", 0.0, 180.0, False, False),
                ("min_interval_s", 0.0, math.inf, False, True),
                ("streak_timeout_s", 0.0, math.inf, True, True)):
            v = _finite_in(getattr(self, name), name, lo, hi, lo_open, hi_open, where)
            object.__setattr__(self, name, v)
        floor = self.belief_std_floor
        if isinstance(floor, (str, bytes)) or not hasattr(floor, "__len__") or len(floor) != 2:
            raise ValueError(f"{where}belief_std_floor must be two standard deviations "
                             f"(position m, rotation rad), each >= 0, got {floor!r}")
        f_t = _finite_in(floor[0], "belief_std_floor[0] (position, m)", 0.0, math.inf, hi_open=True, where=where)
        f_r = _finite_in(floor[1], "belief_std_floor[1] (rotation, rad)", 0.0, math.inf, hi_open=True, where=where)
        object.__setattr__(self, "belief_std_floor", (f_t, f_r))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RecoveryConfig:
        """Build from a mapping (YAML / ROS parameters); unknown keys raise ``ValueError`` listing valid ones."""
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise ValueError(f"unknown recovery parameter(s) {', '.join(map(str, unknown))}; "
                             f"valid: {', '.join(valid)}")
        kwargs = dict(values)
        if "belief_std_floor" in kwargs and isinstance(kwargs["belief_std_floor"], (list, np.ndarray)):
            kwargs["belief_std_floor"] = tuple(kwargs["belief_std_floor"])
        return cls(**kwargs)


# --------------------------------------------------------------------------
# Continuous kidnap detection
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    """What :meth:`KidnapDetector.update` concluded about one visual estimate.

    ``mahalanobis`` is the *squared* Mahalanobis distance of the disagreement
    (chi-square distributed with 3 or 6 degrees of freedom), the quantity the
    gate is applied to; ``None`` with it where there was nothing to compare.
    ``streak`` is the number of consecutive confident disagreeing frames
    counted so far (``consecutive`` on the frame that triggers, after which the
    detector starts again from 0).
    """

    reinitialise: bool
    state: str
    reason: str
    streak: int
    mahalanobis: float | None = None
    translation_m: float | None = None
    rotation_deg: float | None = None


class KidnapDetector:
    """Decide, frame by frame, whether the robot's belief is wrong enough to re-initialise it.

    Feed every visual estimate to :meth:`update` with the belief looked up at
    the same stamp; publish ``/initialpose`` when the decision says
    ``reinitialise``. Thread-safe.
    """

    def __init__(self, config: RecoveryConfig = RecoveryConfig()) -> None:
        if not isinstance(config, RecoveryConfig):
            raise ValueError(f"config must be a RecoveryConfig, got {type(config).__name__}")
        self.config = config
        self.dof = 3 if config.planar else 6
        self.gate = float(chi2.ppf(config.gate_probability, self.dof))
        f_t, f_r = config.belief_std_floor
        self._floor_66 = np.diag([f_t ** 2] * 3 + [f_r ** 2] * 3)
        self._lock = threading.Lock()
        self._streak = 0
        self._last_count_ns: int | None = None   # stamp of the last frame that counted in the streak
        self._last_reinit_ns: int | None = None
        self._last_stamp_ns: int | None = None

    @property
    def streak(self) -> int:
        """Consecutive confident disagreeing frames counted so far."""
        with self._lock:
            return self._streak

    def reset(self) -> None:
        """Forget the streak, the rate limit and the last stamp (e.g. after a map change)."""
        with self._lock:
            self._reset_locked()

    def _reset_locked(self) -> None:
        self._streak = 0
        self._last_count_ns = None
        self._last_reinit_ns = None
        self._last_stamp_ns = None

    def update(self, stamp_ns: int, T_map_base: np.ndarray, cov_66: np.ndarray, confidence: float,
               belief: tuple[np.ndarray, np.ndarray] | None) -> Decision:
        """Take one visual estimate and the belief (``(T_map_base, cov_66)`` or ``None``) at its stamp."""
        cfg = self.config
        if not cfg.enabled:
            return Decision(False, "disabled", "recovery disabled", 0)
        stamp = _check_stamp(stamp_ns)
        T_v = check_pose(T_map_base, "T_map_base")
        cov_v = check_covariance(cov_66, "cov_66")
        conf = _check_confidence(confidence)
        if belief is not None:
            if len(belief) != 2:
                raise ValueError("belief must be (T_map_base 4x4, covariance 6x6) or None")
            T_b = check_pose(belief[0], "belief pose")
            cov_b = check_covariance(belief[1], "belief covariance")
        with self._lock:
            if self._last_stamp_ns is not None and stamp < self._last_stamp_ns:
                # Bag loop or sim time reset: what we knew belongs to another timeline.
                _LOG.info("stamp went backwards (%d ns -> %d ns): recovery state reset",
                          self._last_stamp_ns, stamp)
                self._reset_locked()
            self._last_stamp_ns = stamp
            if (self._streak > 0 and self._last_count_ns is not None
                    and stamp - self._last_count_ns > cfg.streak_timeout_s * _NS):
                self._streak = 0
            n = cfg.consecutive

            if conf < cfg.min_confidence:
                return Decision(False, "low_confidence",
                                f"confidence {conf:.2f} < min_confidence {cfg.min_confidence:.2f}: ignored, "
                                f"{self._streak}/{n} frames", self._streak)

            if belief is None:
                if not cfg.reinit_without_belief:
                    self._streak = 0
                    return Decision(False, "no_belief",
                                    "no belief (map->base_link unknown) and reinit_without_belief is false", 0)
                return self._count_locked(stamp, "no belief (map->base_link unknown)", "no_belief",
                                          None, None, None)

            if cfg.planar:
                e = planar_difference(T_v, T_b)
                S = select_planar(cov_v) + select_planar(cov_b + self._floor_66)
                trans = math.hypot(e[0], e[1])
                rot = math.degrees(abs(e[2]))
            else:
                e = pose_difference(T_v, T_b)
                S = cov_v + cov_b + self._floor_66
                trans = float(np.linalg.norm(e[:3]))
                rot = math.degrees(float(np.linalg.norm(e[3:])))
            d2 = _squared_mahalanobis(e, S)
            beyond_gate = d2 > self.gate
            beyond_min = trans > cfg.min_translation_m or rot > cfg.min_rotation_deg
            what = f"visual pose {trans:.2f} m / {rot:.1f} deg from the belief"
            if not (beyond_gate and beyond_min):
                self._streak = 0
                if beyond_gate:
                    why = (f"beyond the gate (squared Mahalanobis {d2:.1f} > {self.gate:.1f}) but within "
                           f"{cfg.min_translation_m:g} m / {cfg.min_rotation_deg:g} deg")
                else:
                    why = f"within the covariances (squared Mahalanobis {d2:.1f} <= gate {self.gate:.1f})"
                return Decision(False, "agree", f"{what}, {why}: agree", 0, d2, trans, rot)
            what += f" (squared Mahalanobis {d2:.1f} > gate {self.gate:.1f})"
            return self._count_locked(stamp, what, "disagree", d2, trans, rot)

    def _count_locked(self, stamp: int, what: str, counting_state: str, d2: float | None,
                      trans: float | None, rot: float | None) -> Decision:
        """Count one confident disagreeing frame; trigger at N unless rate-limited."""
        cfg = self.config
        n = cfg.consecutive
        # Capped at N: while rate-limited, the first frame after the interval triggers.
        self._streak = min(self._streak + 1, n)
        self._last_count_ns = stamp
        progress = f"{self._streak}/{n} frames"
        if self._streak < n:
            return Decision(False, counting_state, f"{what}, {progress}", self._streak, d2, trans, rot)
        if self._last_reinit_ns is not None:
            since_s = (stamp - self._last_reinit_ns) / _NS
            if since_s < cfg.min_interval_s:
                return Decision(False, "rate_limited",
                                f"{what}, {progress}, but the last re-initialisation was {since_s:.1f} s ago "
                                f"(min_interval_s {cfg.min_interval_s:g})", self._streak, d2, trans, rot)
        self._last_reinit_ns = stamp
        self._streak = 0
        self._last_count_ns = None
        return Decision(True, "reinitialise", f"{what}, {progress}: re-initialising", n, d2, trans, rot)


def _squared_mahalanobis(e: np.ndarray, S: np.ndarray) -> float:
    """``e^T S^-1 e``; a pseudo-inverse where S is singular (a zero belief floor and singular inputs)."""
    try:
        L = np.linalg.cholesky(S)
        z = np.linalg.solve(L, e)
        return float(z @ z)
    except np.linalg.LinAlgError:
        return float(e @ np.linalg.pinv(S) @ e)


# --------------------------------------------------------------------------
# One-shot relocalisation on request
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class OneShotResult:
    """Outcome of a :class:`OneShotRequest`; ``message`` is what the Trigger response says."""

    success: bool
    message: str
    stamp_ns: int | None = None
    T_map_base: np.ndarray | None = None
    cov_66: np.ndarray | None = None
    confidence: float | None = None


class OneShotRequest:
    """Relocalise from the best of the next few frames, on request (backs a ``std_srvs/Trigger`` service).

    The service callback calls :meth:`start` and then :meth:`poll` (timeout)
    and :attr:`result` (done) from its thread, while the inference worker calls
    :meth:`offer` with every estimate from another; a lock makes that safe.
    """

    def __init__(self, frames: int = 5, timeout_s: float = 10.0, min_confidence: float = 0.5) -> None:
        if isinstance(frames, bool) or not isinstance(frames, numbers.Integral) or frames < 1:
            raise ValueError(f"frames must be an integer >= 1, got {frames!r}")
        self.frames = int(frames)
        self.timeout_s = _finite_in(timeout_s, "timeout_s", 0.0, math.inf, lo_open=True, hi_open=True)
        self.min_confidence = _finite_in(min_confidence, "min_confidence", 0.0, 1.0)
        self._lock = threading.Lock()
        self._active = False
        self._start_ns = 0
        self._seen = 0
        self._best: tuple[int, np.ndarray, np.ndarray, float] | None = None
        self._result: OneShotResult | None = None

    def start(self, now_ns: int) -> None:
        """(Re)arm: count frames from now; a new request replaces a pending one."""
        now = _check_stamp(now_ns, "now_ns")
        with self._lock:
            self._active = True
            self._start_ns = now
            self._seen = 0
            self._best = None
            self._result = None

    @property
    def active(self) -> bool:
        """Whether a request is waiting for frames."""
        with self._lock:
            return self._active

    @property
    def result(self) -> OneShotResult | None:
        """Outcome of the last finished request (``None`` while one is pending or none was made)."""
        with self._lock:
            return self._result

    def offer(self, stamp_ns: int, T_map_base: np.ndarray, cov_66: np.ndarray,
              confidence: float) -> OneShotResult | None:
        """Offer one estimate; returns the result once ``frames`` frames were offered, else ``None``.

        Every offered frame counts; the most confident one wins (ties: the
        smallest trace of the position covariance) if it reaches
        ``min_confidence``. ``None`` when no request is active.
        """
        stamp = _check_stamp(stamp_ns)
        T = check_pose(T_map_base, "T_map_base")
        cov = check_covariance(cov_66, "cov_66")
        conf = _check_confidence(confidence)
        with self._lock:
            if not self._active:
                return None
            self._seen += 1
            if self._best is None or self._better(conf, cov, self._best[3], self._best[2]):
                self._best = (stamp, T.copy(), cov.copy(), conf)
            if self._seen < self.frames:
                return None
            return self._finish_locked(self._decide(self._best, self._seen))

    @staticmethod
    def _better(conf: float, cov: np.ndarray, best_conf: float, best_cov: np.ndarray) -> bool:
        if conf != best_conf:
            return conf > best_conf
        return float(np.trace(cov[:3, :3])) < float(np.trace(best_cov[:3, :3]))

    def _decide(self, best: tuple[int, np.ndarray, np.ndarray, float], seen: int) -> OneShotResult:
        stamp, T, cov, conf = best
        if conf < self.min_confidence:
            return OneShotResult(False, f"no confident estimate in {seen} frames (best confidence "
                                        f"{conf:.2f} < {self.min_confidence:.2f})", confidence=conf)
        pos_std = math.sqrt(max(float(np.trace(cov[:3, :3])), 0.0))
        return OneShotResult(True, f"relocalised from the best of {seen} frames: confidence {conf:.2f}, "
                                   f"position std {pos_std:.2f} m", stamp, T, cov, conf)

    def _finish_locked(self, result: OneShotResult) -> OneShotResult:
        self._active = False
        self._best = None
        self._result = result
        return result

    def poll(self, now_ns: int) -> OneShotResult | None:
        """Failure result once ``timeout_s`` has passed since :meth:`start` without a result, else ``None``."""
        now = _check_stamp(now_ns, "now_ns")
        with self._lock:
            if not self._active or now - self._start_ns < self.timeout_s * _NS:
                return None
            if self._best is None:
                msg = f"timed out after {self.timeout_s:g} s: no frames seen (is the camera publishing?)"
                best_conf = None
            else:
                best_conf = self._best[3]
                msg = (f"timed out after {self.timeout_s:g} s: {self._seen}/{self.frames} frames seen, "
                       f"best confidence {best_conf:.2f}")
            return self._finish_locked(OneShotResult(False, msg, confidence=best_conf))
