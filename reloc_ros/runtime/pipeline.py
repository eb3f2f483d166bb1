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

"""From one camera :class:`~reloc_ros.runtime.engine.Estimate` to what a relocalizer publishes. ROS-free.

:func:`localize_frame` is the per-frame logic the node and ``reloc-ros
replay`` share: the camera pose becomes the ``base_frame`` pose through the
camera extrinsics (with the covariance propagated), the TF correction is
``map -> odom`` from that pose and ``odom -> base_frame`` at the image stamp
(REP-105: ``map -> odom -> base_link`` then yields the relocalized pose), or
``map -> base_frame`` directly when the robot has no odom frame, and the
kidnapped-robot detector decides whether to re-initialise. Whatever could
not be done is said in :attr:`FrameResult.notes`, never silently skipped.

:class:`FrameErrors` is the per-frame guard's bookkeeping, for the loops
that run many frames offline (``reloc-ros replay`` and ``eval``): an error of
one frame costs that frame only, is counted by kind and is logged, with its
traceback when it is not a data problem (a bug must stay visible).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
import logging
import numbers
from typing import Any

import numpy as np

from reloc_ros.geometry import compose, invert_pose
from reloc_ros.runtime.engine import Estimate
from reloc_ros.runtime.frame_status import acts_on
from reloc_ros.runtime.recovery import Decision, KidnapDetector
from reloc_ros.errors import RelocError
from reloc_ros.runtime.tf_math import base_pose_from_camera, map_to_odom

logger = logging.getLogger(__name__)

FRAME_ERROR = "error in the frame's processing"
"""Skip reason of a frame whose estimate, verification, TF math or recovery raised (the kind follows)."""


def check_probability(value: Any, name: str) -> float:
    """Return ``value`` as a float if it is a finite number in [0, 1]; else ``ValueError`` naming it and the range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


class FrameErrors:
    """Count the frames that failed with an exception, by kind; log the first of each kind as it happens.

    A ``ValueError`` or :class:`~reloc_ros.errors.RelocError` is a data problem (a warning); anything else is a
    bug and is logged at ERROR with its traceback. :meth:`log_summary` says at the end what each kind cost.
    """

    def __init__(self, log: logging.Logger = logger) -> None:
        self.counts: Counter = Counter()
        self._first: dict[str, str] = {}
        self._log = log

    def record(self, error: Exception, stamp_ns: int | None = None) -> str:
        """Count one failed frame (call it from the ``except`` block); return the skip reason."""
        kind = type(error).__name__
        reason = f"{FRAME_ERROR} ({kind})"
        when = "a frame" if stamp_ns is None else f"the frame at {stamp_ns * 1e-9:.3f} s"
        if reason not in self._first:
            expected = isinstance(error, (ValueError, RelocError))
            self._log.log(logging.WARNING if expected else logging.ERROR, "%s failed and is skipped (%s: %s); "
                          "the run goes on", when, kind, error, exc_info=not expected)
            self._first[reason] = f"{when}: {error}"
        self.counts[reason] += 1
        return reason

    def log_summary(self) -> None:
        """Warn once per kind: how many frames it cost, and the first."""
        for reason, n in self.counts.items():
            self._log.warning("%d frame(s) skipped: %s; the first, %s", n, reason, self._first[reason])


@dataclass(frozen=True)
class FrameResult:
    """What to publish for one frame.

    The camera pose (``estimate.T_map_cam``, ``estimate.covariance``) is
    always there. The ``base_frame`` pose needs the camera extrinsics: without
    them ``T_map_base`` is None and nothing that depends on it is published
    (a consumer of the robot pose must never receive a camera pose in its place).

    Attributes:
        estimate: the engine's camera estimate.
        T_map_base, cov_base: the ``base_frame`` pose in the map frame and its
            covariance, or None without extrinsics.
        hypotheses: ``(K, 4, 4)`` hypotheses as ``base_frame`` poses (camera
            poses without extrinsics).
        tf: ``(parent, child, T_parent_child)`` to broadcast, or None.
        decision: the kidnapped-robot detector's decision, or None.
        notes: one line per part that was skipped, and why.
    """

    estimate: Estimate
    T_map_base: np.ndarray | None
    cov_base: np.ndarray | None
    hypotheses: np.ndarray
    tf: tuple[str, str, np.ndarray] | None = None
    decision: Decision | None = None
    notes: list[str] = field(default_factory=list)


def localize_frame(est: Estimate, *, T_base_cam: np.ndarray | None, base_frame: str, camera_frame: str,
                   odom_frame: str = "odom", T_odom_base: np.ndarray | None = None, publish_tf: bool = True,
                   min_confidence: float = 0.5, detector: KidnapDetector | None = None,
                   belief: tuple[np.ndarray, np.ndarray] | None = None,
                   allow_unverified: bool = False) -> FrameResult:
    """Turn a camera estimate into the poses, TF and re-initialisation decision to publish.

    Args:
        est: the engine's estimate (camera pose in the map frame).
        T_base_cam: camera extrinsics (``base_frame -> camera_frame``), None if unknown.
        base_frame: the robot body frame id (TF child of the correction).
        camera_frame: the camera frame id (for the notes).
        odom_frame: ``''`` when the robot has no odom frame.
        T_odom_base: ``odom -> base_frame`` at the image stamp, None if unknown.
        publish_tf: whether a TF correction is wanted at all.
        min_confidence: below it, no TF correction (the pose is still published); a probability in [0, 1]
            (``ValueError`` otherwise).
        detector: kidnapped-robot detector to update, or None.
        belief: the robot's current ``map -> base_frame`` and its covariance, or None.
        allow_unverified: also act (TF correction, re-initialisation) on ``unverified`` (learned-only)
            estimates; by default only ``verified`` ones move the robot's belief. A ``failed`` estimate is
            never acted on (and its pose must not be published: see ``Estimate.publishable``).
    """
    check_probability(min_confidence, "min_confidence")
    notes: list[str] = []
    may_act = acts_on(est.status, allow_unverified)
    if T_base_cam is None:
        notes.append(f"no transform {base_frame} -> {camera_frame}: only the camera pose is published; the "
                     f"{base_frame} pose, TF correction and recovery are skipped")
        return FrameResult(est, None, None, est.hypotheses, notes=notes)
    T_map_base, cov_base = base_pose_from_camera(est.T_map_cam, est.covariance, T_base_cam)
    T_cam_base = invert_pose(T_base_cam)
    hyps = compose(est.hypotheses, T_cam_base) if len(est.hypotheses) else np.zeros((0, 4, 4))
    tf = None
    if not publish_tf:
        pass
    elif not may_act:
        notes.append(f"pose {est.status}: TF correction skipped (only verified poses move the map -> odom "
                     f"correction{'' if est.status == 'failed' else '; allow_unverified changes that'})")
    elif est.confidence < min_confidence:
        notes.append(f"confidence {est.confidence:.2f} < min_confidence {min_confidence:.2f}: TF correction "
                     f"skipped")
    elif not odom_frame:
        tf = ("map", base_frame, T_map_base)
    elif T_odom_base is None:
        notes.append(f"no transform {odom_frame} -> {base_frame} at the image stamp: TF correction skipped")
    else:
        tf = ("map", odom_frame, map_to_odom(T_map_base, T_odom_base))
    if tf is not None:
        tf = (est.map_frame, tf[1], tf[2])
    decision = None
    if detector is not None and may_act:
        decision = detector.update(est.stamp_ns, T_map_base, cov_base, est.confidence, belief)
    return FrameResult(est, T_map_base, cov_base, hyps, tf, decision, notes)
