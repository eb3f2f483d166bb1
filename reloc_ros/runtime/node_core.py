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

"""The relocalization node's decisions that need no ROS: parameters, stamps, per-frame choices, ``~/relocalize``.

:mod:`reloc_ros.nodes.relocalization_node` is the rclpy shell around these:

* parameters: :func:`plain_value` (rclpy's arrays as lists) and
  :func:`check_parameter_update` (a ``set_parameters`` request, checked);
* input: :func:`image_stamp_ns` (the stamp the rate limit works on);
* per frame: :func:`wants_odom_correction` and :func:`wants_belief` (which TF
  lookups a frame needs), :func:`belief_covariance` (the robot's belief
  covariance at an image stamp) and :func:`frame_problems` (which notes of
  :func:`~reloc_ros.runtime.pipeline.localize_frame` are problems);
* ``~/relocalize``: :func:`wait_for_oneshot` and :func:`oneshot_failure_message`;
* configure: :func:`map_frame_warning` and :func:`configure_report` (what is logged).
"""

from __future__ import annotations

import array
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from reloc_ros import conversions as conv
from reloc_ros.runtime.node_params import ParamSpec, check_value
from reloc_ros.runtime.recovery import OneShotRequest, OneShotResult

if TYPE_CHECKING:
    from reloc_ros.runtime.node_params import RelocalizationOptions

NS_PER_S = 1_000_000_000
BELIEF_MAX_AGE_S = 5.0
"""A belief_pose_topic message is used for frames within this many seconds of its stamp."""
ONESHOT_POLL_S = 0.02
"""How often a ``~/relocalize`` request checks for its result."""


# --------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------

def plain_value(value: Any) -> Any:
    """Return a parameter value as plain Python: rclpy's ``array.array`` (and tuples) as lists, the rest as is."""
    return list(value) if isinstance(value, (array.array, tuple)) else value


def check_parameter_update(specs: Mapping[str, ParamSpec],
                           updates: Sequence[tuple[str, Any]]) -> tuple[str | None, list[str]]:
    """Check a ``set_parameters`` request: ``(reason, names)``.

    ``specs`` are the node's parameters by name, ``updates`` the ``(name, value)`` pairs set. ``reason`` is
    the first invalid value's error (``None`` when all are valid: names not in ``specs`` are not checked);
    ``names`` are the updated parameters that are in ``specs``, in request order (none when one is invalid).
    """
    for name, value in updates:
        spec = specs.get(name)
        if spec is None:
            continue
        try:
            check_value(spec, plain_value(value))
        except ValueError as exc:
            return str(exc), []
    return None, [name for name, _ in updates if name in specs]


# --------------------------------------------------------------------------
# Input and per-frame choices
# --------------------------------------------------------------------------

def image_stamp_ns(msg: Any, clock: Callable[[], int] = time.monotonic_ns) -> int:
    """Return the image's header stamp (ns); ``clock()`` when unstamped or unreadable, to rate-limit by arrival."""
    try:
        stamp = conv.stamp_to_ns(msg.header.stamp)
    except (ValueError, AttributeError):
        stamp = 0
    if stamp <= 0:
        stamp = clock()
    return stamp


def wants_odom_correction(opts: RelocalizationOptions, confidence: float, acts: bool,
                          have_extrinsics: bool) -> bool:
    """Whether a frame needs ``odom -> base`` at its stamp: it may act, is confident and the TF correction is on."""
    return bool(acts and have_extrinsics and opts.publish_tf and opts.odom_frame
                and confidence >= opts.min_confidence)


def wants_belief(opts: RelocalizationOptions, acts: bool, have_extrinsics: bool) -> bool:
    """Whether a frame needs the robot's belief (``map -> base`` from TF) for kidnapped-robot recovery.

    Never with ``publish_tf``: the node then owns ``map -> odom`` itself, so there is nothing independent
    to compare with.
    """
    return bool(acts and have_extrinsics and opts.recovery_enabled and not opts.publish_tf)


def belief_covariance(stamp_ns: int, belief: tuple[int, np.ndarray] | None, belief_std: tuple[float, float],
                      max_age_s: float = BELIEF_MAX_AGE_S) -> np.ndarray:
    """6x6 covariance of the robot's belief at ``stamp_ns``.

    ``belief`` is ``(stamp_ns, cov_66)`` of the latest ``belief_pose_topic`` message: its covariance when
    within ``max_age_s`` of the image stamp (either side), else the diagonal of ``belief_std``
    ``(metres, radians)``.
    """
    if belief is not None and abs(stamp_ns - belief[0]) < max_age_s * NS_PER_S:
        return belief[1]
    s_m, s_rad = belief_std
    return np.diag([s_m ** 2] * 3 + [s_rad ** 2] * 3)


def frame_problems(notes: Sequence[str], status: str) -> list[str]:
    """Return the notes of :func:`~reloc_ros.runtime.pipeline.localize_frame` that are problems (logged, reported).

    Low confidence is normal operation, and an unverified pose skipping the TF correction is reported on
    ``~/status`` and ``/diagnostics`` (and once at configure): neither is a problem of every frame.
    """
    return [n for n in notes if "confidence" not in n and not n.startswith(f"pose {status}:")]


# --------------------------------------------------------------------------
# ~/relocalize
# --------------------------------------------------------------------------

def wait_for_oneshot(oneshot: OneShotRequest, is_active: Callable[[], bool], poll_s: float = ONESHOT_POLL_S,
                     clock: Callable[[], int] = time.monotonic_ns,
                     sleep: Callable[[float], Any] = time.sleep) -> OneShotResult | None:
    """Wait for a started request's result (or its timeout); ``None`` when ``is_active()`` turns false first."""
    while True:
        sleep(poll_s)
        result = oneshot.result or oneshot.poll(clock())
        if result is not None:
            return result
        if not is_active():
            return None


def oneshot_failure_message(message: str, skipped: Mapping[str, int], allow_unverified: bool,
                            problem: str = "") -> str:
    """Return the failed ``~/relocalize`` answer: the request's message, the frames not used and why, the problem.

    ``skipped`` counts the frames of each status that could not answer (see
    :func:`~reloc_ros.runtime.frame_status.acts_on`); ``problem`` is the last frame's problem ('' when none).
    """
    if skipped:
        which = ", ".join(f"{n} {status}" for status, n in sorted(skipped.items()))
        allowed = "verified or unverified" if allow_unverified else "verified"
        message += (f" ({which} frame(s) not used: only {allowed} poses answer ~/relocalize"
                    f"{'' if allow_unverified else '; see allow_unverified'})")
    if problem:
        message += f" (last problem: {problem})"
    return message


# --------------------------------------------------------------------------
# Configure
# --------------------------------------------------------------------------

def map_frame_warning(map_frame: str, model_map_frame: str) -> str:
    """Return the warning when the ``map_frame`` parameter overrides the model's map frame ('' when not)."""
    if map_frame and map_frame != model_map_frame:
        return (f"map_frame '{map_frame}' differs from the model's map frame '{model_map_frame}': "
                f"poses are published in '{map_frame}' as they are (no transform is applied)")
    return ""


def configure_report(opts: RelocalizationOptions, map_frame: str, description: str,
                     verifying: bool) -> tuple[str, list[str]]:
    """Return what configure logs once it succeeded: ``(info, warnings)``.

    The info line says what the node publishes; the warnings: poses that are not verified will move nothing
    (without ``allow_unverified``), and recovery under ``publish_tf`` has no independent belief.
    """
    info = (f"configured: {description}; publishing {map_frame} -> "
            f"{opts.odom_frame or opts.base_frame} {'on /tf' if opts.publish_tf else '(publish_tf off)'}")
    warnings = []
    if not verifying and not opts.allow_unverified and (opts.publish_tf or opts.recovery_enabled):
        warnings.append(f"poses are not verified (verify '{opts.relocalizer_kwargs.get('verify')}', model without "
                        f"a feature map, or verification off): they are published on ~/pose, but with "
                        f"allow_unverified false no TF correction, re-initialisation or ~/relocalize answer comes "
                        f"from them. Use a model file with a feature map, or set allow_unverified true to act on "
                        f"learned-only poses.")
    if opts.recovery_enabled and opts.publish_tf:
        warnings.append("initialpose.enabled with publish_tf true: this node itself publishes map -> "
                        f"{opts.odom_frame or opts.base_frame}, so there is no independent belief to compare "
                        "with and recovery runs as if the robot were never localised. Under AMCL (or any other "
                        "localizer owning map -> odom) set publish_tf false.")
    return info, warnings
