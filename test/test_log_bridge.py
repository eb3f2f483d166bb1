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

"""The core's Python logging forwarded to a node's logger, and put back as it was."""

import logging

import pytest

from reloc_ros.runtime.log_bridge import RosLogHandler, attach_core_logging, detach_core_logging


class FakeRosLogger:
    """Records (severity, text) like an rclpy logger would print them."""

    def __init__(self):
        self.lines = []

    def debug(self, text):
        self.lines.append(("debug", text))

    def info(self, text):
        self.lines.append(("info", text))

    def warning(self, text):
        self.lines.append(("warning", text))

    def error(self, text):
        self.lines.append(("error", text))


@pytest.fixture
def core_logger():
    """Yield the "reloc_ros" logger, restored after the test whatever it did."""
    core = logging.getLogger("reloc_ros")
    saved = (core.level, core.propagate, list(core.handlers))
    yield core
    core.setLevel(saved[0])
    core.propagate = saved[1]
    core.handlers[:] = saved[2]


def test_records_go_to_the_matching_severity():
    ros = FakeRosLogger()
    handler = RosLogHandler(ros)
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL):
        handler.emit(logging.LogRecord("reloc_ros.x", level, __file__, 1, "at %d", (level,), None))
    assert ros.lines == [("debug", "at 10"), ("info", "at 20"), ("warning", "at 30"), ("error", "at 40"),
                         ("error", "at 50")]


def test_listeners_see_every_record_and_a_failing_logger_does_not_raise(monkeypatch):
    class Broken(FakeRosLogger):

        def warning(self, text):
            raise RuntimeError("context refused")

    handler = RosLogHandler(Broken())
    seen = []
    handler.listeners.append(lambda record, text: seen.append((record.levelno, text)))
    handled = []
    monkeypatch.setattr(handler, "handleError", lambda record: handled.append(record.getMessage()))
    handler.emit(logging.LogRecord("reloc_ros.x", logging.WARNING, __file__, 1, "careful", None, None))
    assert seen == [(logging.WARNING, "careful")] and handled == ["careful"]


def test_attach_routes_core_loggers_and_detach_restores_them(core_logger):
    core_logger.setLevel(logging.NOTSET)
    core_logger.propagate = True
    # A module logger made non-propagating (importing `launch` does that to loggers created after it).
    cut = logging.getLogger("reloc_ros.test_log_bridge_cut")
    cut.propagate = False
    ros = FakeRosLogger()
    state = attach_core_logging(ros)
    try:
        assert core_logger.level == logging.INFO and not core_logger.propagate
        assert cut.propagate
        logging.getLogger("reloc_ros.runtime.some_module").warning("no TF yet")
        cut.info("reconnected")
        logging.getLogger("reloc_ros.runtime.some_module").debug("below INFO: dropped")
        logging.getLogger("elsewhere").warning("not ours")
        assert ros.lines == [("warning", "no TF yet"), ("info", "reconnected")]
    finally:
        detach_core_logging(state)
    assert core_logger.level == logging.NOTSET and core_logger.propagate
    assert not cut.propagate
    assert not any(isinstance(h, RosLogHandler) for h in core_logger.handlers)
    logging.getLogger("reloc_ros.runtime.some_module").warning("after detach")
    assert len(ros.lines) == 2


def test_attach_keeps_a_more_verbose_level(core_logger):
    core_logger.setLevel(logging.DEBUG)
    ros = FakeRosLogger()
    state = attach_core_logging(ros)
    try:
        logging.getLogger("reloc_ros.x").debug("details")
    finally:
        detach_core_logging(state)
    assert ros.lines == [("debug", "details")] and core_logger.level == logging.DEBUG
