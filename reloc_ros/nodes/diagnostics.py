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

"""The relocalization node's ``/diagnostics`` through ``diagnostic_updater`` (ROS 2's Python one, since Humble).

* :func:`make_updater`: an ``Updater`` on the node, with the image topic as
  hardware id, whose period is the node's ``diagnostic_updater.period``
  parameter (declared by the node first, with its descriptor).
* :class:`FramesTask`: what diagnostic_updater's ``TopicDiagnostic``
  checks, for the relocalized frames: their rate (``FrequencyStatus``) and
  the age of their image stamps (:class:`NodeClockTimeStampStatus`).
* :func:`fill_status`: a ROS-free
  :class:`~reloc_ros.runtime.node_diagnostics.DiagnosticsReport` into the
  status an updater task fills.
"""

from __future__ import annotations

from typing import Any

from diagnostic_updater import (CompositeDiagnosticTask, DiagnosticStatusWrapper, FrequencyStatus,
                                FrequencyStatusParam, TimeStampStatus, TimeStampStatusParam, Updater)

from reloc_ros.conversions import DIAGNOSTIC_LEVELS
from reloc_ros.runtime.node_diagnostics import FRAMES_TASK, DiagnosticsReport
from reloc_ros.runtime.node_params import DIAGNOSTICS_PERIOD_PARAM

FREQUENCY_TOLERANCE = 0.1
"""FrequencyStatus: a rate down to 10 % below ``diagnostics.min_rate_hz`` passes (diagnostic_updater's default)."""
FREQUENCY_WINDOW = 5
"""FrequencyStatus: the rate is measured over the last 5 updater periods (diagnostic_updater's default)."""


class UpdaterNode:
    """The node as diagnostic_updater's ``Updater`` sees it.

    The updater declares ``diagnostic_updater.period`` itself, with no
    descriptor, and a YAML ``period: 1`` (an integer) would then raise in the
    node's constructor. The node declares it first, as its other parameters
    (with range and description, and a bad override reported rather than
    raised), so here declaring a parameter the node has returns it.
    """

    def __init__(self, node: Any) -> None:
        self._node = node

    def declare_parameter(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Return the node's parameter ``name`` when it is declared already; otherwise declare it."""
        if self._node.has_parameter(name):
            return self._node.get_parameter(name)
        return self._node.declare_parameter(name, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._node, name)


class NodeClockTimeStampStatus(TimeStampStatus):
    """diagnostic_updater's ``TimeStampStatus``, measuring each stamp's delay on the node's clock.

    diagnostic_updater's own measures it against a new ROS-time clock, which
    is not the node's and so never sim time: under ``use_sim_time`` (a bag
    played with ``--clock``) every image stamp would look decades late.
    """

    def __init__(self, clock: Any, params: TimeStampStatusParam | None = None,
                 name: str = "Timestamp Status") -> None:
        super().__init__(params or TimeStampStatusParam(), name)
        self._clock = clock

    def tick(self, stamp: Any) -> None:
        """Record one stamp (seconds as a float, or an rclpy ``Time``): its delay behind the node's clock."""
        stamp_s = stamp if isinstance(stamp, float) else stamp.nanoseconds * 1e-9
        delay_s = self._clock.now().nanoseconds * 1e-9 - stamp_s
        with self.lock:
            if stamp_s == 0:
                self.zero_seen = True
                return
            if not self.deltas_valid or delay_s > self.max_delta:
                self.max_delta = delay_s
            if not self.deltas_valid or delay_s < self.min_delta:
                self.min_delta = delay_s
            self.deltas_valid = True


class FramesTask(CompositeDiagnosticTask):
    """Rate and image-stamp delay of the relocalized frames, as diagnostic_updater's ``TopicDiagnostic``."""

    def __init__(self, clock: Any, min_rate_hz: float) -> None:
        super().__init__(FRAMES_TASK)
        self.freq = FrequencyStatus(FrequencyStatusParam({"min": float(min_rate_hz)}, FREQUENCY_TOLERANCE,
                                                         FREQUENCY_WINDOW))
        self.stamp = NodeClockTimeStampStatus(clock)
        self.addTask(self.freq)
        self.addTask(self.stamp)

    def tick(self, stamp: Any) -> None:
        """Record one relocalized frame with its image stamp (an rclpy ``Time``)."""
        self.stamp.tick(stamp)
        self.freq.tick()


def make_updater(node: Any, hardware_id: str) -> Updater:
    """Make an ``Updater`` on ``node`` publishing every ``diagnostic_updater.period`` s, with ``hardware_id``."""
    updater = Updater(UpdaterNode(node), period=float(node.get_parameter(DIAGNOSTICS_PERIOD_PARAM).value))
    updater.setHardwareID(hardware_id)
    return updater


def fill_status(stat: DiagnosticStatusWrapper, report: DiagnosticsReport) -> DiagnosticStatusWrapper:
    """Put ``report`` (level, message, key/values, hardware id if it has one) into an updater task's status."""
    stat.summary(bytes([DIAGNOSTIC_LEVELS[report.level]]), report.message)  # rclpy's level: one byte
    if report.hardware_id:
        stat.hardware_id = report.hardware_id
    for key, value in report.key_values():
        stat.add(key, value)
    return stat
