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

"""Diagnostics: the ``diagnostic_msgs/DiagnosticArray`` a node publishes on ``/diagnostics``."""

from __future__ import annotations

from typing import Any, Mapping

from reloc_ros.conversions.messages import is_rosbags, message_class
from reloc_ros.conversions.stamps import make_header

DIAGNOSTIC_LEVELS = {"OK": 0, "WARN": 1, "ERROR": 2, "STALE": 3}
"""``diagnostic_msgs/DiagnosticStatus`` levels by name."""


def diagnostic_key_values(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(key, value)`` strings of a status' KeyValues: floats with 4 significant digits."""
    return [(str(k), f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in values.items()]


def make_diagnostic_array(types: Mapping[str, Any], stamp_ns: int, name: str, level: str, message: str,
                          values: Mapping[str, Any], hardware_id: str = "") -> Any:
    """``diagnostic_msgs/msg/DiagnosticArray`` with one status (what ``/diagnostics`` carries).

    ``level`` is one of OK, WARN, ERROR, STALE; ``values`` become KeyValue
    pairs (floats with 4 significant digits).
    """
    if level not in DIAGNOSTIC_LEVELS:
        raise ValueError(f"diagnostic level must be one of {', '.join(DIAGNOSTIC_LEVELS)}, got {level!r}")
    kv_cls = message_class(types, "diagnostic_msgs/msg/KeyValue")
    kvs = [kv_cls(key=k, value=v) for k, v in diagnostic_key_values(values)]
    status_cls = message_class(types, "diagnostic_msgs/msg/DiagnosticStatus")
    level_value = DIAGNOSTIC_LEVELS[level]
    # rclpy's `level` is a byte field (bytes of length 1); rosbags keeps it as an int.
    status = status_cls(level=level_value if is_rosbags(status_cls) else bytes([level_value]), name=str(name),
                        message=str(message), hardware_id=str(hardware_id), values=kvs)
    return message_class(types, "diagnostic_msgs/msg/DiagnosticArray")(header=make_header(types, stamp_ns, ""),
                                                                       status=[status])
