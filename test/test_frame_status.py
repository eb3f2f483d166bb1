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

"""A frame's verification status: what may act on it, its ~/status message, the /diagnostics figures."""

import numpy as np
import pytest

from reloc_ros import conversions as conv
from reloc_ros.geometry import covariance_from_std, make_pose
from reloc_ros.runtime import frame_status as S
from reloc_ros.runtime.engine import STATUSES


def test_every_status_has_a_diagnostic_level():
    assert set(S.FRAME_STATUS_LEVELS) == set(STATUSES)


STAMP_NS = 1_700_000_123_456_789_012
T_LEARNED = make_pose([1.0, 2.0, 0.5], [0.0, 0.0, 0.0, 1.0])
# Verification moved the learned pose by (0.3, 0.4, 0) m and 10 deg about z.
T_VERIFIED = make_pose([1.3, 2.4, 0.5], [0.0, 0.0, np.sin(np.radians(5.0)), np.cos(np.radians(5.0))])
COV = covariance_from_std(0.1, np.radians(2.0))


@pytest.fixture(scope="module")
def ts():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE)


def _estimate(status, detail="", inliers=0, learned=None):
    from reloc_ros.runtime.engine import Estimate

    T = T_VERIFIED if status == "verified" else T_LEARNED
    return Estimate(STAMP_NS, T.copy(), COV.copy(), 0.8, np.zeros((0, 4, 4)), {}, "map", "camera_optical_frame",
                    status=status, status_detail=detail, inliers=inliers, learned_T_map_cam=learned,
                    learned_covariance=None if learned is None else COV.copy())


def _round_trip(ts, msg):
    typ = "diagnostic_msgs/msg/DiagnosticArray"
    return ts.deserialize_cdr(ts.serialize_cdr(msg, typ), typ)


def test_acts_on_only_verified_unless_allowed():
    assert S.acts_on("verified", False) and S.acts_on("verified", True)
    assert not S.acts_on("unverified", False) and S.acts_on("unverified", True)
    assert not S.acts_on("failed", False) and not S.acts_on("failed", True)   # never, whatever the setting


@pytest.mark.parametrize("status, detail, inliers, learned, level", [
    ("verified", "142 inliers of 300 matches", 142, T_LEARNED, 0),
    ("unverified", "model file has no feature map", 0, None, 1),
    ("failed", "12 inliers < 30", 12, T_LEARNED, 2),
])
def test_frame_status_round_trips_through_cdr(ts, status, detail, inliers, learned, level):
    est = _estimate(status, detail, inliers, learned)
    msg = S.make_frame_status(ts.types, est, "relocalization", "/models/lab.pt")
    back = _round_trip(ts, msg)
    assert conv.stamp_to_ns(back.header.stamp) == STAMP_NS   # the image stamp, not now()
    (st,) = back.status
    assert st.level == level and st.name == "relocalization: frame" and st.hardware_id == "/models/lab.pt"
    assert st.message == f"{status}: {detail}"
    values = {kv.key: kv.value for kv in st.values}
    assert values["status"] == status and values["inliers"] == str(inliers)
    assert values["confidence"] == "0.8"
    assert float(values["sigma_m"]) == pytest.approx(0.1, rel=1e-3)
    assert float(values["sigma_deg"]) == pytest.approx(2.0, rel=1e-3)
    if status == "verified":
        assert float(values["learned_to_verified_m"]) == pytest.approx(0.5, rel=1e-3)
        assert float(values["learned_to_verified_deg"]) == pytest.approx(10.0, rel=1e-3)
    else:   # no verified pose to compare with
        assert "learned_to_verified_m" not in values and "learned_to_verified_deg" not in values


def test_frame_status_without_detail_or_learned_pose(ts):
    (st,) = _round_trip(ts, S.make_frame_status(ts.types, _estimate("verified", inliers=50), "reloc", "m.pt")).status
    assert st.message == "verified" and st.level == 0
    assert "learned_to_verified_m" not in {kv.key for kv in st.values}   # the engine kept no learned pose
    bad = _estimate("unverified")
    object.__setattr__(bad, "status", "maybe")
    with pytest.raises(ValueError, match="unknown frame status 'maybe'"):
        S.make_frame_status(ts.types, bad, "reloc", "m.pt")


def test_verification_report_shares_inliers_and_all_failed_warning():
    values, warning = S.verification_report({"verified": 6, "unverified": 0, "failed": 2}, [100, 40, 60], True)
    assert values["verifying"] == "yes"
    assert (values["frames verified (%)"], values["frames unverified (%)"],
            values["frames failed verification (%)"]) == (75.0, 0.0, 25.0)
    assert values["median inliers (verified)"] == 60.0
    assert warning == ""

    values, warning = S.verification_report({"verified": 0, "unverified": 0, "failed": 5}, [], True)
    assert values["frames failed verification (%)"] == 100.0 and values["median inliers (verified)"] == "n/a"
    assert warning.startswith("verification failed on all 5 frame(s) since the last report: no pose published")

    # No frames: nothing to share, nothing to warn about (the node's "no frames" check says it).
    values, warning = S.verification_report(dict.fromkeys(STATUSES, 0), [], True)
    assert values["frames verified (%)"] == "n/a" and warning == ""

    # A node that does not verify: learned poses only, never the all-failed warning.
    values, warning = S.verification_report({"unverified": 4}, [], False)
    assert values["verifying"].startswith("no") and values["frames unverified (%)"] == 100.0 and warning == ""

    with pytest.raises(ValueError, match="unknown frame status"):
        S.verification_report({"rejected": 1}, [], True)


def test_verification_report_goes_into_a_diagnostic_array(ts):
    values, warning = S.verification_report({"verified": 1, "unverified": 1, "failed": 0}, [33], True)
    msg = conv.make_diagnostic_array(ts.types, 5, "relocalization: relocalization", "OK", "ok", values)
    (st,) = _round_trip(ts, msg).status
    got = {kv.key: kv.value for kv in st.values}
    assert got["frames verified (%)"] == "50" and got["median inliers (verified)"] == "33"
