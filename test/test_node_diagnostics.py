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

"""The relocalization node's counters (rate limit, frames, ~/relocalize skips) and its /diagnostics status."""

from types import SimpleNamespace

import numpy as np
import pytest

from reloc_ros.geometry import covariance_from_std, make_pose
from reloc_ros.runtime.engine import STAGES, Estimate
from reloc_ros.runtime.worker import WorkerStats
from reloc_ros.runtime.node_diagnostics import (DiagnosticsReport, NodeStats, PeriodStats, configure_failure_report,
                                                diagnostics_report, inactive_report)

S = 1_000_000_000
COV = covariance_from_std(0.05, np.radians(1.0))  # sigmas: 0.05 m, 1 deg


class Clock:
    """A settable monotonic clock (seconds)."""

    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t


def _estimate(status="verified", confidence=0.9, inliers=0, total_ms=10.0):
    timings = dict.fromkeys(STAGES, 1.0)
    timings["total"] = total_ms
    return Estimate(5 * S, make_pose([1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]), COV.copy(), confidence,
                    np.zeros((0, 4, 4)), timings, "map", "camera_optical_frame", status=status, inliers=inliers)


# -- rate limit -------------------------------------------------------------------

def test_rate_limit_keeps_at_most_one_image_per_period_of_image_time():
    stats = NodeStats()
    stamps = [100 * S + k * S // 10 for k in range(30)]    # 10 Hz of image time
    accepted = [s for s in stamps if stats.admit(s, min_period_ns=S // 2)[0]]
    assert accepted == stamps[::5]                          # 2 Hz
    period = stats.take_period(processed=0)
    assert period.rate_dropped == 24


def test_no_rate_limit_accepts_every_image():
    stats = NodeStats()
    assert all(stats.admit(100 * S + k, min_period_ns=0) == (True, False) for k in range(10))
    assert stats.take_period(processed=0).rate_dropped == 0


def test_stamps_going_back_restart_the_rate_limit():
    stats = NodeStats()
    assert stats.admit(500 * S, S) == (True, False)
    assert stats.admit(500 * S + S // 2, S) == (False, False)  # too soon
    # A bag loop: far back in time is accepted, and said so (the node clears TF and recovery state).
    assert stats.admit(10 * S, S) == (True, True)
    assert stats.admit(10 * S + S // 2, S) == (False, False)    # limited on the new timeline
    # Slightly out of order (less than a second back): accepted as it is, not a restart.
    assert stats.admit(10 * S - S // 2, S) == (True, False)


# -- frames and periods -----------------------------------------------------------

def test_period_counts_rates_statuses_and_timings_then_starts_again():
    clock = Clock(100.0)
    stats = NodeStats(clock)
    for k in range(8):
        stats.admit(100 * S + k * S, 0)
    stats.record(_estimate("verified", inliers=80, total_ms=10.0))
    stats.record(_estimate("verified", inliers=40, total_ms=30.0))
    stats.record(_estimate("unverified", confidence=0.3, total_ms=20.0))
    stats.record(_estimate("failed"))
    clock.t = 102.0
    period = stats.take_period(processed=3)
    assert period.in_rate_hz == pytest.approx(4.0) and period.out_rate_hz == pytest.approx(1.5)
    assert period.counts == {"verified": 2, "unverified": 1, "failed": 1}
    assert period.verified_inliers == [80, 40]
    assert [tm["total"] for tm in period.timings] == [10.0, 30.0, 20.0, 10.0]
    assert period.confidence == pytest.approx(0.9)    # the last estimate's
    assert period.sigmas == pytest.approx((0.05, 1.0))
    assert period.since_done_s == pytest.approx(2.0) and not period.last_failed
    # The next period starts from zero, but keeps the last estimate's figures.
    clock.t = 103.0
    nxt = stats.take_period(processed=5)
    assert nxt.in_rate_hz == 0.0 and nxt.out_rate_hz == pytest.approx(2.0)
    assert nxt.counts == {"verified": 0, "unverified": 0, "failed": 0} and nxt.timings == []
    assert nxt.verified_inliers == [] and nxt.confidence == pytest.approx(0.9)


def test_a_failed_frame_is_reported_until_the_next_estimate():
    clock = Clock()
    stats = NodeStats(clock)
    clock.t += 1.0
    stats.frame_failed()
    clock.t += 0.5
    period = stats.take_period(processed=0)
    assert period.last_failed and period.since_done_s == pytest.approx(0.5)
    stats.record(_estimate())
    assert not stats.take_period(processed=1).last_failed


def test_problem_is_kept_until_replaced_and_reset_forgets_it():
    stats = NodeStats()
    stats.set_problem("no transform odom -> base_link at the image stamp")
    assert stats.problem.startswith("no transform") and stats.take_period(0).problem == stats.problem
    stats.set_problem("")
    assert stats.problem == ""
    stats.set_problem("x")
    stats.reset()
    assert stats.problem == "" and stats.take_period(0).confidence is None


def test_oneshot_skips_are_counted_per_status_and_cleared_per_request():
    stats = NodeStats()
    for status in ("unverified", "failed", "unverified"):
        stats.count_oneshot_skipped(status)
    skipped = stats.oneshot_skipped()
    assert skipped == {"unverified": 2, "failed": 1}
    skipped["failed"] = 99                                 # a copy
    stats.reset()                                          # activate does not forget a request's counts
    assert stats.oneshot_skipped() == {"unverified": 2, "failed": 1}
    stats.clear_oneshot_skipped()
    assert stats.oneshot_skipped() == {}


# -- /diagnostics -------------------------------------------------------------------

RELOC = SimpleNamespace(model_path="/models/office.pt", device="cpu", uncertainty="mc-dropout", verifying=True)
INTRINSICS = SimpleNamespace(width=64, height=48)
TOPICS = {"image_topic": "/cam/image", "camera_info_topic": "/cam/camera_info"}


def _period(**kw):
    args = {"in_rate_hz": 10.0, "out_rate_hz": 5.0, "since_done_s": 0.1, "last_failed": False, "problem": "",
            "confidence": 0.8, "sigmas": (0.05, 1.0), "rate_dropped": 3,
            "timings": [{"decode": 1.0, "total": 9.0}, {"decode": 3.0, "total": 11.0}],
            "counts": {"verified": 3, "unverified": 0, "failed": 1}, "verified_inliers": [50, 70, 90]}
    args.update(kw)
    return PeriodStats(**args)


def _report(period=None, worker=None, reloc=RELOC, intrinsics=INTRINSICS):
    worker = WorkerStats(submitted=12, processed=10, dropped=2, failed=0) if worker is None else worker
    return diagnostics_report(period or _period(), worker, reloc, period_s=1.0, intrinsics=intrinsics, **TOPICS)


def test_ok_report_with_rates_latency_verification_and_model():
    rep = _report()
    assert rep.level == "OK" and rep.message == "relocalizing at 5.0 Hz, confidence 0.80, 75% verified"
    v = rep.values
    assert v["input rate (Hz)"] == 10.0 and v["processed rate (Hz)"] == 5.0 and v["processed"] == 10
    assert v["dropped (worker busy)"] == 2 and v["dropped (max_rate_hz)"] == 3 and v["failed"] == 0
    assert v["last error"] == "none"
    assert v["latency decode median (ms)"] == 2.0 and v["latency total median (ms)"] == 10.0
    assert v["latency inference median (ms)"] == "n/a"     # no estimate timed it
    assert v["frames verified (%)"] == 75.0 and v["median inliers (verified)"] == 70.0
    assert v["last confidence"] == 0.8 and v["sigma position (m)"] == 0.05 and v["sigma rotation (deg)"] == 1.0
    assert (v["model"], v["device"], v["uncertainty"]) == ("/models/office.pt", "cpu", "mc-dropout")
    assert v["image topic"] == "/cam/image" and v["camera_info"] == "64x48 from /cam/camera_info"


def test_report_levels_in_order_of_severity():
    assert (_report(reloc=None).level, _report(reloc=None).message) == ("ERROR", "model not loaded")
    assert "model" not in _report(reloc=None).values
    # Nothing done for more than two periods: is the camera there at all?
    idle = _report(_period(since_done_s=2.5), worker=WorkerStats())
    assert idle.level == "WARN" and idle.message == "no frames for 2.5 s: is anything publishing on /cam/image?"
    stalled = _report(_period(since_done_s=2.5))
    assert stalled.level == "WARN" and stalled.message == "no frames for 2.5 s on /cam/image"
    failed = _report(_period(last_failed=True), worker=WorkerStats(processed=3, failed=1, last_error="ValueError: x"))
    assert failed.level == "WARN" and failed.message == "last frame failed: ValueError: x"
    assert failed.values["last error"] == "ValueError: x"
    rejected = _report(_period(counts={"verified": 0, "unverified": 0, "failed": 4}, verified_inliers=[]))
    assert rejected.level == "WARN" and rejected.message.startswith("verification failed on all 4 frame(s)")
    problem = _report(_period(problem="no transform odom -> base_link at the image stamp"))
    assert problem.level == "WARN" and problem.message.startswith("no transform odom")


def test_report_before_any_frame_and_without_worker_or_camera_info():
    period = _period(confidence=None, sigmas=None, timings=[], counts={"verified": 0, "unverified": 0, "failed": 0},
                     verified_inliers=[], rate_dropped=0)
    rep = diagnostics_report(period, None, RELOC, period_s=1.0, intrinsics=None, **TOPICS)
    assert rep.level == "OK" and rep.message == "relocalizing at 5.0 Hz"
    v = rep.values
    assert v["processed"] == 0 and v["failed"] == 0 and v["last error"] == "none"
    assert v["last confidence"] == "n/a" and v["sigma position (m)"] == "n/a" and v["frames verified (%)"] == "n/a"
    assert v["camera_info"].startswith("none yet on /cam/camera_info")


def test_report_key_values_are_the_strings_diagnostic_msgs_carry():
    values = {"processed": 3, "input rate (Hz)": 2.5, "latency total median (ms)": 12.345678, "model": "a.pt"}
    rep = DiagnosticsReport("WARN", "last frame failed: x", values)
    assert rep.key_values() == [("processed", "3"), ("input rate (Hz)", "2.5"), ("latency total median (ms)", "12.35"),
                                ("model", "a.pt")]


def test_reports_name_the_camera_as_hardware_id_and_a_failed_configure_is_an_error():
    rep = diagnostics_report(_period(), None, RELOC, period_s=1.0, intrinsics=INTRINSICS, **TOPICS)
    assert rep.hardware_id == "/cam/image"
    failed = configure_failure_report("cannot load model '/m.pt': RelocError: not a model", "/m.pt")
    assert failed.level == "ERROR"
    assert failed.message == "configure failed: cannot load model '/m.pt': RelocError: not a model"
    assert dict(failed.key_values()) == {
        "state": "unconfigured", "model": "/m.pt", "reason": "cannot load model '/m.pt': RelocError: not a model"}
    assert configure_failure_report("bad parameter", "").values["model"] == "(none)"


def test_a_node_that_is_not_active_says_which_transition_it_waits_for():
    unconfigured, inactive = inactive_report(configured=False), inactive_report(configured=True)
    assert unconfigured.level == inactive.level == "OK"
    assert unconfigured.values == {"state": "unconfigured"} and "waiting for configure" in unconfigured.message
    assert inactive.values == {"state": "inactive"} and "waiting for activate" in inactive.message
