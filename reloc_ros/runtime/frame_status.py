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

"""A frame's verification status, for what acts on it and what reports it. ROS-free.

* :func:`acts_on`: the one rule for which frames may move the robot's belief
  (TF correction, ``/initialpose``, ``~/relocalize``).
* :func:`make_frame_status`: the ``~/status`` message of one frame (the node,
  and ``reloc-ros replay`` into its output bag), from the message classes
  given, so it is tested without ROS.
* :func:`verification_report`: the verification part of the node's
  ``/diagnostics`` over one period.
"""

from __future__ import annotations

import statistics
from typing import Any, Mapping, Sequence

from reloc_ros import conversions as conv
from reloc_ros.geometry import rotation_error_deg, translation_error
from reloc_ros.runtime.engine import STATUSES, Estimate

FRAME_STATUS_LEVELS = {"verified": "OK", "unverified": "WARN", "failed": "ERROR"}
"""``DiagnosticStatus`` level of each frame status on ``~/status``."""

_SHARE_KEYS = {"verified": "frames verified (%)", "unverified": "frames unverified (%)",
               "failed": "frames failed verification (%)"}


def acts_on(status: str, allow_unverified: bool) -> bool:
    """Whether a frame may move the robot's belief: verified, or unverified with ``allow_unverified``; never failed.

    The one rule for the TF correction and the kidnapped-robot detector
    (:func:`~reloc_ros.runtime.pipeline.localize_frame`) and the node's ``~/relocalize``.
    """
    return status == "verified" or (status == "unverified" and bool(allow_unverified))


def frame_status_values(est: Estimate) -> dict[str, Any]:
    """Return the key/values of one frame's ``~/status``: status, inliers, confidence, sigmas, verification shift.

    ``learned_to_verified_m`` / ``_deg`` (how far verification moved the learned pose) only when the frame
    is verified and the engine kept the learned pose.
    """
    sigma_m, sigma_deg = est.sigmas
    values: dict[str, Any] = {
        "status": est.status,
        "inliers": int(est.inliers),
        "confidence": float(est.confidence),
        "sigma_m": float(sigma_m),
        "sigma_deg": float(sigma_deg),
    }
    learned = est.learned_T_map_cam
    if est.status == "verified" and learned is not None:
        values["learned_to_verified_m"] = float(translation_error(learned, est.T_map_cam))
        values["learned_to_verified_deg"] = float(rotation_error_deg(learned, est.T_map_cam))
    return values


def make_frame_status(types: Mapping[str, Any], est: Estimate, node_name: str, hardware_id: str) -> Any:
    """``diagnostic_msgs/msg/DiagnosticArray`` of one frame for ``~/status``, stamped with the image stamp.

    One ``DiagnosticStatus`` named ``'<node_name>: frame'``: level OK (verified), WARN (unverified) or ERROR
    (failed); message ``'<status>: <status_detail>'``; ``hardware_id`` the model file; values from
    :func:`frame_status_values`. ``types`` maps message type names to classes (rclpy's from
    :func:`~reloc_ros.conversions.ros_message_types`, or a rosbags typestore's ``types``).
    """
    if est.status not in FRAME_STATUS_LEVELS:
        raise ValueError(f"unknown frame status {est.status!r}; expected one of {', '.join(FRAME_STATUS_LEVELS)}")
    detail = str(est.status_detail or "").strip()
    message = f"{est.status}: {detail}" if detail else est.status
    return conv.make_diagnostic_array(types, est.stamp_ns, f"{node_name}: frame", FRAME_STATUS_LEVELS[est.status],
                                      message, frame_status_values(est), hardware_id=str(hardware_id))


def verification_report(counts: Mapping[str, int], verified_inliers: Sequence[int],
                        verifying: bool) -> tuple[dict[str, Any], str]:
    """Verification figures for ``/diagnostics`` over one period, and a warning ('' when none).

    ``counts`` are the frames of each status since the last report, ``verified_inliers`` the inlier counts of
    the verified ones. Values: whether the node verifies at all, the share of each status (percent, 'n/a'
    without frames) and the median inliers of the verified frames. The warning: the node verifies but every
    frame of the period failed (so nothing was published).
    """
    unknown = sorted(set(counts) - set(STATUSES))
    if unknown:
        raise ValueError(f"unknown frame status(es) {', '.join(unknown)}; expected {', '.join(STATUSES)}")
    total = sum(int(counts.get(s, 0)) for s in STATUSES)
    values: dict[str, Any] = {"verifying": "yes" if verifying else "no (learned poses only: unverified)"}
    for s in STATUSES:
        values[_SHARE_KEYS[s]] = 100.0 * int(counts.get(s, 0)) / total if total else "n/a"
    values["median inliers (verified)"] = float(statistics.median(verified_inliers)) if verified_inliers else "n/a"
    warning = ""
    if verifying and total and int(counts.get("failed", 0)) == total:
        warning = (f"verification failed on all {total} frame(s) since the last report: no pose published "
                   f"(is the camera outside the mapped area, or the map / camera_info wrong?)")
    return values, warning
