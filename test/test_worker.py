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

"""The latest-frame worker: bounded memory whatever the input rate, and one frame's failure costs that frame."""

import logging
import time

import pytest

from reloc_ros.runtime.worker import LatestFrameWorker


def test_worker_keeps_only_the_newest_frame_and_survives_failures():
    done = []

    def slow(item):
        if item == "bad":
            raise ValueError("bad frame")
        time.sleep(0.02)
        done.append(item)

    errors = []
    w = LatestFrameWorker(slow, on_error=lambda e, item: errors.append((str(e), item)))
    try:
        w.submit("bad")
        assert w.wait_idle(5.0)
        for i in range(200):  # much faster than 50 frames/s
            w.submit(i)
        assert w.wait_idle(10.0)
        assert done[-1] == 199  # the newest frame is always processed
        assert len(done) < 50  # most were dropped, not queued
        s = w.stats
        assert s.submitted == 201 and s.failed == 1 and s.processed == len(done)
        assert s.dropped == s.submitted - s.processed - s.failed
        assert errors == [("bad frame", "bad")]
    finally:
        w.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        w.submit(1)


def test_worker_survives_an_error_handler_that_fails(caplog):
    done = []

    def process(item):
        if item == "bad":
            raise ValueError("bad frame")
        done.append(item)

    def broken_handler(error, item):
        raise KeyError("the handler itself is broken")

    w = LatestFrameWorker(process, on_error=broken_handler)
    try:
        with caplog.at_level(logging.ERROR):
            w.submit("bad")
            assert w.wait_idle(5.0)
            w.submit("good")
            assert w.wait_idle(5.0)
        assert done == ["good"] and w.stats.failed == 1 and w.stats.processed == 1
        assert "error handler failed too" in caplog.text and "bad frame" in caplog.text
    finally:
        w.stop()
