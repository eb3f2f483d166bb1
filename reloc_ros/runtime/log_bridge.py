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

"""The core's Python ``logging`` forwarded to a node's logger. ROS-free.

The core logs with ``logging.getLogger(__name__)``; a node hands its rclpy
logger (anything with ``debug`` / ``info`` / ``warning`` / ``error``) to
:func:`attach_core_logging` so those records reach ``/rosout`` and the
console with the node's name, and undoes it with :func:`detach_core_logging`.
Used by both node shells (:mod:`reloc_ros.nodes`).
"""

from __future__ import annotations

import logging
from typing import Any


class RosLogHandler(logging.Handler):
    """Forward Python ``logging`` records of the core (``reloc_ros.*``) to a node's rclpy logger."""

    def __init__(self, ros_logger: Any) -> None:
        super().__init__()
        self.ros_logger = ros_logger
        self.setFormatter(logging.Formatter("%(message)s"))
        self.listeners: list = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            for listener in self.listeners:
                listener(record, text)
            # rclpy keys its log context by call site and refuses a second severity at the same
            # site: one call per severity.
            if record.levelno >= logging.ERROR:
                self.ros_logger.error(text)
            elif record.levelno >= logging.WARNING:
                self.ros_logger.warning(text)
            elif record.levelno >= logging.INFO:
                self.ros_logger.info(text)
            else:
                self.ros_logger.debug(text)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


def attach_core_logging(ros_logger: Any, level: int = logging.INFO) -> tuple:
    """Route the ``reloc_ros`` Python loggers to ``ros_logger``; return what :func:`detach_core_logging` needs."""
    core = logging.getLogger("reloc_ros")
    handler = RosLogHandler(ros_logger)
    old_level, old_propagate = core.level, core.propagate
    core.addHandler(handler)
    if core.level == logging.NOTSET or core.level > level:
        core.setLevel(level)
    core.propagate = False  # else Python's last-resort handler prints warnings a second time
    # Importing `launch` (launch_testing's pytest plugin does) makes every logger created afterwards
    # non-propagating: reconnect the core's module loggers to "reloc_ros".
    cut = [lg for name, lg in logging.root.manager.loggerDict.items()
           if name.startswith("reloc_ros.") and isinstance(lg, logging.Logger) and not lg.propagate]
    for lg in cut:
        lg.propagate = True
    return handler, old_level, old_propagate, cut


def detach_core_logging(state: tuple) -> None:
    """Undo :func:`attach_core_logging`."""
    handler, old_level, old_propagate, cut = state
    core = logging.getLogger("reloc_ros")
    core.removeHandler(handler)
    core.setLevel(old_level)
    core.propagate = old_propagate
    for lg in cut:
        lg.propagate = False
