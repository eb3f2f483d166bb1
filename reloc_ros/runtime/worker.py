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

"""A background worker that keeps only the newest pending frame: bounded memory, never stale output.

:class:`LatestFrameWorker` runs the node's per-frame work on its own thread.
A frame that fails is counted and reported, never the end of the worker.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

logger = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    """Counters of a :class:`LatestFrameWorker` (read them from any thread)."""

    submitted: int = 0
    processed: int = 0
    dropped: int = 0
    failed: int = 0
    last_error: str = ""


class LatestFrameWorker:
    """Run ``process(item)`` on a background thread, keeping only the newest pending item.

    :meth:`submit` never blocks: it replaces a pending item that the worker
    has not started yet (counted as dropped). So with inputs faster than
    ``process``, memory holds at most one pending and one running item, and
    each result is from the newest frame available when the worker got free.
    Exceptions from ``process`` are counted, passed to ``on_error`` and do not
    stop the worker: one bad frame never takes the pipeline down.
    """

    def __init__(self, process: Callable[[Any], None], on_error: Callable[[BaseException, Any], None] | None = None,
                 name: str = "reloc_ros-worker") -> None:
        self._process = process
        self._on_error = on_error
        self._cond = threading.Condition()
        self._pending: Any = None
        self._has_pending = False
        self._running = True
        self._idle = True
        self.stats = WorkerStats()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> bool:
        """Queue ``item`` (replacing an unstarted one); return True if one was dropped."""
        with self._cond:
            if not self._running:
                raise RuntimeError("LatestFrameWorker is stopped")
            dropped = self._has_pending
            self._pending, self._has_pending = item, True
            self.stats.submitted += 1
            self.stats.dropped += int(dropped)
            self._cond.notify()
        return dropped

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._running and not self._has_pending:
                    self._idle = True
                    self._cond.notify_all()
                    self._cond.wait()
                if not self._running:
                    self._idle = True
                    self._cond.notify_all()
                    return
                item, self._pending, self._has_pending = self._pending, None, False
                self._idle = False
            try:
                self._process(item)
                self.stats.processed += 1
            except Exception as e:  # noqa: BLE001 - any failure of one frame is reported, never fatal
                self.stats.failed += 1
                self.stats.last_error = f"{type(e).__name__}: {e}"
                self._report(e, item)

    def _report(self, error: Exception, item: Any) -> None:
        """Hand a frame's failure to ``on_error``; a failing handler is logged, never the end of the worker."""
        if self._on_error is None:
            logger.warning("frame failed: %s", self.stats.last_error)
            return
        try:
            self._on_error(error, item)
        except Exception:  # noqa: BLE001 - the worker must outlive a broken handler; it is a bug: traceback
            logger.exception("frame failed (%s) and its error handler failed too", self.stats.last_error)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is pending or running; return False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._idle and not self._has_pending, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the running item (a pending one is discarded); idempotent."""
        with self._cond:
            self._running = False
            self._pending, self._has_pending = None, False
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
