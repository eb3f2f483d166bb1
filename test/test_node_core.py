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

"""The relocalization node's ROS-free decisions: parameter updates, stamps, per-frame choices, ~/relocalize."""

import array
from types import SimpleNamespace

import numpy as np
import pytest

from reloc_ros.geometry import covariance_from_std, make_pose
from reloc_ros.runtime import node_core as C
from reloc_ros.runtime.engine import Estimate
from reloc_ros.runtime.node_params import RELOCALIZATION_PARAMS, relocalization_options, spec_by_name
from reloc_ros.runtime.pipeline import localize_frame
from reloc_ros.runtime.recovery import OneShotRequest

S = 1_000_000_000
SPECS = spec_by_name(RELOCALIZATION_PARAMS)
OPTICAL_Q = [-0.5, 0.5, -0.5, 0.5]
T_BASE_CAM = make_pose([0.2, 0.0, 0.8], OPTICAL_Q)
COV = covariance_from_std(0.05, np.radians(1.0))


@pytest.fixture
def options(tmp_path):
    model = tmp_path / "model.pt"
    model.write_bytes(b"only checked to exist")

    def make(**values):
        return relocalization_options({"model_path": str(model), **values})
    return make


def _estimate(status="verified", confidence=0.9, stamp=5 * S):
    return Estimate(stamp, make_pose([2.0, 1.0, 1.0], OPTICAL_Q), COV.copy(), confidence, np.zeros((0, 4, 4)), {},
                    "map", "camera_optical_frame", status=status)


# -- parameters ---------------------------------------------------------------

def test_plain_value_turns_rclpy_arrays_and_tuples_into_lists():
    assert C.plain_value(array.array("q", [1, 2, 3])) == [1, 2, 3]
    assert C.plain_value(("a", "b")) == ["a", "b"]
    assert C.plain_value(2.5) == 2.5 and C.plain_value("x") == "x"


def test_parameter_update_accepts_valid_values_and_names_the_known_ones():
    reason, names = C.check_parameter_update(SPECS, [("max_rate_hz", 5.0), ("use_sim_time", True),
                                                     ("publish_tf", False)])
    assert reason is None
    assert names == ["max_rate_hz", "publish_tf"]  # parameters of other origin (use_sim_time) are not ours


def test_parameter_update_refuses_the_first_invalid_value_with_its_reason():
    reason, names = C.check_parameter_update(SPECS, [("publish_tf", False), ("max_rate_hz", -1.0),
                                                     ("min_confidence", 7.0)])
    assert reason is not None and "max_rate_hz" in reason and "min_confidence" not in reason
    assert names == []
    reason, _ = C.check_parameter_update(SPECS, [("image_transport", "theora")])
    assert reason is not None and "image_transport" in reason
    # An integer for a float parameter is fine once set at run time (only YAML overrides are typed by ROS).
    assert C.check_parameter_update(SPECS, [("max_rate_hz", 5)]) == (None, ["max_rate_hz"])


# -- input --------------------------------------------------------------------

def _image(sec=None, nanosec=0):
    header = SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=nanosec)) if sec is not None else None
    return SimpleNamespace(header=header)


def test_image_stamp_is_the_header_stamp():
    def clock():
        raise AssertionError("the clock is only for unstamped images")
    assert C.image_stamp_ns(_image(12, 345), clock=clock) == 12 * S + 345


def test_unstamped_or_unreadable_images_get_the_arrival_time():
    assert C.image_stamp_ns(_image(0, 0), clock=lambda: 777) == 777
    assert C.image_stamp_ns(SimpleNamespace(header=SimpleNamespace(stamp=object())), clock=lambda: 778) == 778
    assert C.image_stamp_ns(SimpleNamespace(), clock=lambda: 779) == 779


# -- per frame ----------------------------------------------------------------

def test_odom_lookup_only_for_confident_acting_frames_with_extrinsics(options):
    opts = options(min_confidence=0.5)
    assert C.wants_odom_correction(opts, 0.9, acts=True, have_extrinsics=True)
    assert not C.wants_odom_correction(opts, 0.4, acts=True, have_extrinsics=True)     # not confident
    assert not C.wants_odom_correction(opts, 0.9, acts=False, have_extrinsics=True)    # e.g. unverified
    assert not C.wants_odom_correction(opts, 0.9, acts=True, have_extrinsics=False)    # no base pose at all
    assert not C.wants_odom_correction(options(publish_tf=False), 0.9, acts=True, have_extrinsics=True)
    assert not C.wants_odom_correction(options(odom_frame=""), 0.9, acts=True, have_extrinsics=True)  # map -> base


def test_belief_lookup_only_for_recovery_without_own_tf(options):
    recovering = options(publish_tf=False, **{"initialpose.enabled": True})
    assert C.wants_belief(recovering, acts=True, have_extrinsics=True)
    assert not C.wants_belief(recovering, acts=False, have_extrinsics=True)
    assert not C.wants_belief(recovering, acts=True, have_extrinsics=False)
    assert not C.wants_belief(options(publish_tf=False), acts=True, have_extrinsics=True)  # recovery off
    # publish_tf: the node owns map -> odom, so TF's map -> base is its own output, not a belief.
    assert not C.wants_belief(options(publish_tf=True, **{"initialpose.enabled": True}), acts=True,
                              have_extrinsics=True)


def test_belief_covariance_from_a_recent_message_else_from_belief_std():
    amcl_cov = np.diag([0.04, 0.04, 0.0, 0.0, 0.0, 0.01])
    belief = (100 * S, amcl_cov)
    assert C.belief_covariance(100 * S + 4 * S, belief, (0.5, 0.2)) is amcl_cov
    assert C.belief_covariance(100 * S - 4 * S, belief, (0.5, 0.2)) is amcl_cov   # either side of the stamp
    fallback = np.diag([0.25] * 3 + [0.04] * 3)
    np.testing.assert_allclose(C.belief_covariance(100 * S + 6 * S, belief, (0.5, 0.2)), fallback)
    np.testing.assert_allclose(C.belief_covariance(100 * S, None, (0.5, 0.2)), fallback)
    np.testing.assert_allclose(C.belief_covariance(100 * S + 2 * S, belief, (0.5, 0.2), max_age_s=1.0), fallback)


def _notes(est, **kwargs):
    args = {"T_base_cam": T_BASE_CAM, "base_frame": "base_link", "camera_frame": "camera_optical_frame",
            "odom_frame": "odom", "T_odom_base": None, "publish_tf": True, "min_confidence": 0.5, "detector": None,
            "belief": None, "allow_unverified": False}
    args.update(kwargs)
    return localize_frame(est, **args).notes


def test_frame_problems_leave_out_low_confidence_and_unverified_skips():
    low = _notes(_estimate(confidence=0.2))
    assert low and C.frame_problems(low, "verified") == []
    unverified = _notes(_estimate("unverified"))
    assert unverified and C.frame_problems(unverified, "unverified") == []
    # A missing odom -> base_link at the image stamp is a problem worth a warning.
    missing_odom = _notes(_estimate())
    assert C.frame_problems(missing_odom, "verified") == missing_odom and "odom" in missing_odom[0]
    missing_extrinsics = _notes(_estimate(), T_base_cam=None)
    assert C.frame_problems(missing_extrinsics, "verified") == missing_extrinsics


# -- ~/relocalize ---------------------------------------------------------------

class FakeTime:
    """A monotonic clock that only moves when the waiting loop sleeps; ``on_sleep`` runs at each nap."""

    def __init__(self, on_sleep=None):
        self.ns = 1_000 * S
        self.naps = 0
        self.on_sleep = on_sleep

    def clock(self):
        return self.ns

    def sleep(self, seconds):
        self.naps += 1
        self.ns += int(seconds * S)
        if self.on_sleep is not None:
            self.on_sleep(self)


def test_wait_for_oneshot_returns_the_best_offered_frame():
    oneshot = OneShotRequest(frames=2, timeout_s=10.0, min_confidence=0.5)
    T = make_pose([1.0, 2.0, 0.0], [0.0, 0.0, 0.0, 1.0])

    def worker(t):  # the inference worker offers one frame per nap
        oneshot.offer(t.ns, T, COV, 0.6 + 0.1 * t.naps)
    fake = FakeTime(worker)
    oneshot.start(fake.clock())
    result = C.wait_for_oneshot(oneshot, lambda: True, clock=fake.clock, sleep=fake.sleep)
    assert result.success and result.confidence == pytest.approx(0.8) and fake.naps == 2


def test_wait_for_oneshot_times_out_without_frames():
    oneshot = OneShotRequest(frames=2, timeout_s=0.5, min_confidence=0.5)
    fake = FakeTime()
    oneshot.start(fake.clock())
    result = C.wait_for_oneshot(oneshot, lambda: True, poll_s=0.02, clock=fake.clock, sleep=fake.sleep)
    assert not result.success and "no frames seen" in result.message
    assert fake.naps == 25  # polled every 20 ms until the 0.5 s timeout


def test_wait_for_oneshot_gives_up_when_the_node_is_deactivated():
    oneshot = OneShotRequest(frames=2, timeout_s=10.0, min_confidence=0.5)
    fake = FakeTime()
    oneshot.start(fake.clock())
    assert C.wait_for_oneshot(oneshot, lambda: fake.naps < 3, clock=fake.clock, sleep=fake.sleep) is None
    assert fake.naps == 3


def test_oneshot_failure_message_says_which_frames_were_not_used_and_why():
    base = "timed out after 10 s: no frames seen (is the camera publishing?)"
    assert C.oneshot_failure_message(base, {}, allow_unverified=False) == base
    msg = C.oneshot_failure_message(base, {"unverified": 3, "failed": 1}, allow_unverified=False)
    assert msg == (base + " (1 failed, 3 unverified frame(s) not used: only verified poses answer ~/relocalize; "
                   "see allow_unverified)")
    msg = C.oneshot_failure_message(base, {"failed": 2}, allow_unverified=True, problem="no transform odom -> x")
    assert msg == (base + " (2 failed frame(s) not used: only verified or unverified poses answer ~/relocalize)"
                   " (last problem: no transform odom -> x)")


# -- configure ------------------------------------------------------------------

def test_map_frame_warning_only_when_the_parameter_overrides_the_model():
    assert C.map_frame_warning("", "map") == "" and C.map_frame_warning("map", "map") == ""
    warning = C.map_frame_warning("world", "map")
    assert "'world'" in warning and "'map'" in warning and "no transform is applied" in warning


def test_configure_report_says_what_is_published_and_warns_about_what_will_not_act(options):
    info, warnings = C.configure_report(options(), "map", "posenet on cpu", verifying=True)
    assert info == "configured: posenet on cpu; publishing map -> odom on /tf" and warnings == []
    info, warnings = C.configure_report(options(publish_tf=False, odom_frame=""), "map", "m", verifying=True)
    assert info == "configured: m; publishing map -> base_link (publish_tf off)" and warnings == []
    # Unverified poses with allow_unverified false: published, but they move nothing.
    _, warnings = C.configure_report(options(), "map", "m", verifying=False)
    assert len(warnings) == 1 and "poses are not verified (verify 'auto'" in warnings[0]
    assert C.configure_report(options(allow_unverified=True), "map", "m", verifying=False)[1] == []
    # Recovery while owning map -> odom has nothing to compare with.
    _, warnings = C.configure_report(options(**{"initialpose.enabled": True}), "map", "m", verifying=True)
    assert len(warnings) == 1 and warnings[0].startswith("initialpose.enabled with publish_tf true")
