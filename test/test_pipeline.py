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

"""Per-frame publishing logic: camera estimate -> base_link pose, map->odom (REP-105), notes, recovery."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from reloc_ros.geometry import covariance_from_std, invert_pose, make_pose
from reloc_ros.runtime.engine import Estimate
from reloc_ros.runtime.pipeline import localize_frame
from reloc_ros.runtime.recovery import KidnapDetector, RecoveryConfig

OPTICAL_Q = [-0.5, 0.5, -0.5, 0.5]  # camera_link -> camera_optical_frame (REP-103)
STAMP = 1_700_000_000_123_456_789


def yaw_q(deg):
    a = np.radians(deg) / 2
    return [0.0, 0.0, np.sin(a), np.cos(a)]


# A camera 0.3 m ahead of and 0.8 m above base_link, pitched down 10 deg: a real lever arm.
T_BASE_CAM = make_pose([0.3, 0.05, 0.8], Rotation.from_euler("y", 10, degrees=True).as_quat()) @ \
    make_pose([0.0, 0.0, 0.0], OPTICAL_Q)
T_MAP_BASE_TRUE = make_pose([2.0, -1.5, 0.0], yaw_q(35.0))
T_MAP_CAM = T_MAP_BASE_TRUE @ T_BASE_CAM
T_ODOM_BASE = make_pose([0.7, 0.4, 0.0], yaw_q(-20.0))
COV_CAM = covariance_from_std(0.05, np.radians(2.0))
HYPS = np.stack([T_MAP_CAM @ make_pose([0.1, 0.0, 0.0], [0, 0, 0, 1]),
                 T_MAP_CAM @ make_pose([0.0, 0.0, 0.2], Rotation.from_euler("x", 5, degrees=True).as_quat())])


def estimate(confidence=0.95, hypotheses=HYPS, map_frame="map", T_map_cam=T_MAP_CAM, cov=COV_CAM,
             status="verified"):
    return Estimate(STAMP, T_map_cam.copy(), cov.copy(), confidence, np.asarray(hypotheses), {}, map_frame,
                    "camera_optical_frame", status=status)


def frame(est=None, **kw):
    args = {"T_base_cam": T_BASE_CAM, "base_frame": "base_link", "camera_frame": "camera_optical_frame",
            "odom_frame": "odom", "T_odom_base": T_ODOM_BASE}
    args.update(kw)
    return localize_frame(estimate() if est is None else est, **args)


def left_perturbed(T, d_6):
    """T perturbed by (dp, dtheta) about the parent's axes: the covariance convention of geometry_msgs."""
    out = T.copy()
    out[:3, :3] = Rotation.from_rotvec(d_6[3:]).as_matrix() @ T[:3, :3]
    out[:3, 3] = T[:3, 3] + d_6[:3]
    return out


def numeric_jacobian(T_map_cam, T_base_cam, eps=1e-7):
    """d(base pose error) / d(camera pose error), both left perturbations, by finite differences."""
    T_cam_base = invert_pose(T_base_cam)
    base0 = T_map_cam @ T_cam_base
    J = np.zeros((6, 6))
    for i in range(6):
        d = np.zeros(6)
        d[i] = eps
        b = left_perturbed(T_map_cam, d) @ T_cam_base
        J[:3, i] = (b[:3, 3] - base0[:3, 3]) / eps
        J[3:, i] = Rotation.from_matrix(b[:3, :3] @ base0[:3, :3].T).as_rotvec() / eps
    return J


def test_base_pose_is_camera_pose_through_the_extrinsics():
    fr = frame()
    np.testing.assert_allclose(fr.T_map_base, T_MAP_CAM @ invert_pose(T_BASE_CAM), atol=1e-12)
    np.testing.assert_allclose(fr.T_map_base, T_MAP_BASE_TRUE, atol=1e-12)
    assert fr.notes == []


def test_base_covariance_is_propagated_through_the_lever_arm():
    fr = frame()
    J = numeric_jacobian(T_MAP_CAM, T_BASE_CAM)
    np.testing.assert_allclose(fr.cov_base, J @ COV_CAM @ J.T, atol=1e-8)
    np.testing.assert_array_equal(fr.cov_base, fr.cov_base.T)
    # Pure camera rotation uncertainty becomes base_link position uncertainty (0.3 m / 0.8 m lever arm).
    rot_only = np.diag([1e-8] * 3 + [np.radians(2.0) ** 2] * 3)
    fr2 = frame(estimate(cov=rot_only))
    assert np.trace(fr2.cov_base[:3, :3]) > 100 * np.trace(rot_only[:3, :3])
    np.testing.assert_allclose(fr2.cov_base[3:, 3:], rot_only[3:, 3:], atol=1e-15)


def test_tf_is_map_to_odom_and_chains_to_the_base_pose():
    fr = frame()
    parent, child, T_map_odom = fr.tf
    assert (parent, child) == ("map", "odom")
    # REP-105: map -> odom -> base_link reproduces the relocalized base pose.
    np.testing.assert_allclose(T_map_odom @ T_ODOM_BASE, fr.T_map_base, atol=1e-12)
    np.testing.assert_allclose(T_map_odom @ T_ODOM_BASE, T_MAP_BASE_TRUE, atol=1e-12)


def test_tf_parent_is_the_models_map_frame():
    fr = frame(estimate(map_frame="world"))
    assert fr.tf[:2] == ("world", "odom")


def test_no_odom_frame_publishes_map_to_base():
    fr = frame(odom_frame="", T_odom_base=None)
    parent, child, T = fr.tf
    assert (parent, child) == ("map", "base_link")
    np.testing.assert_allclose(T, T_MAP_BASE_TRUE, atol=1e-12)
    assert fr.notes == []


def test_no_extrinsics_leaves_only_the_camera_pose_and_says_why():
    det = KidnapDetector(RecoveryConfig(consecutive=1))
    belief = (T_MAP_BASE_TRUE @ make_pose([5.0, 0, 0], [0, 0, 0, 1]), covariance_from_std(0.1, 0.05))
    fr = frame(T_base_cam=None, detector=det, belief=belief)
    # Only the camera pose (the estimate's) is left; it is never passed off as the base pose.
    assert fr.T_map_base is None and fr.cov_base is None
    np.testing.assert_array_equal(fr.estimate.T_map_cam, T_MAP_CAM)
    np.testing.assert_array_equal(fr.hypotheses, HYPS)
    assert fr.tf is None
    assert len(fr.notes) == 1
    assert "base_link -> camera_optical_frame" in fr.notes[0]
    # Recovery is skipped too: a camera pose must never be sent as a base_link /initialpose.
    assert fr.decision is None
    assert det.streak == 0


def test_low_confidence_skips_tf_but_keeps_the_pose():
    fr = frame(estimate(confidence=0.3), min_confidence=0.5)
    assert fr.tf is None
    assert len(fr.notes) == 1 and "confidence 0.30 < min_confidence 0.50" in fr.notes[0]
    np.testing.assert_allclose(fr.T_map_base, T_MAP_BASE_TRUE, atol=1e-12)


def test_publish_tf_false_skips_tf_silently():
    fr = frame(publish_tf=False)
    assert fr.tf is None
    assert fr.notes == []
    np.testing.assert_allclose(fr.T_map_base, T_MAP_BASE_TRUE, atol=1e-12)


def test_missing_odom_transform_is_noted():
    fr = frame(T_odom_base=None)
    assert fr.tf is None
    assert len(fr.notes) == 1
    assert "odom -> base_link" in fr.notes[0] and "TF correction skipped" in fr.notes[0]
    np.testing.assert_allclose(fr.T_map_base, T_MAP_BASE_TRUE, atol=1e-12)


def test_hypotheses_are_mapped_to_base_poses():
    fr = frame()
    assert fr.hypotheses.shape == (2, 4, 4)
    for hyp_cam, hyp_base in zip(HYPS, fr.hypotheses):
        np.testing.assert_allclose(hyp_base, hyp_cam @ invert_pose(T_BASE_CAM), atol=1e-12)
    empty = frame(estimate(hypotheses=np.zeros((0, 4, 4))))
    assert empty.hypotheses.shape == (0, 4, 4)


@pytest.mark.parametrize("offset_m, reinit", [(5.0, True), (0.0, False)])
def test_detector_is_fed_the_base_pose_and_its_decision_returned(offset_m, reinit):
    det = KidnapDetector(RecoveryConfig(consecutive=1))
    belief = (make_pose([offset_m, 0, 0], [0, 0, 0, 1]) @ T_MAP_BASE_TRUE, covariance_from_std(0.1, 0.05))
    fr = frame(detector=det, belief=belief)
    assert fr.decision is not None
    assert fr.decision.reinitialise is reinit
    # With the belief exactly at the base pose the detector agrees: it was given base_link, not the camera
    # (the camera is 0.3 m ahead and its optical axes point elsewhere: that would disagree by > 15 deg).
    assert fr.decision.state == ("reinitialise" if reinit else "agree")
    if reinit:
        assert fr.decision.translation_m == pytest.approx(offset_m, abs=1e-9)


def test_no_detector_no_decision():
    assert frame().decision is None


def test_only_verified_poses_move_tf_and_recovery_unless_allowed():
    detector = KidnapDetector(RecoveryConfig(consecutive=1, reinit_without_belief=True))
    fr = frame(estimate(status="unverified"), detector=detector)
    assert fr.T_map_base is not None  # the pose itself is still there to publish
    assert fr.tf is None and fr.decision is None
    assert any("pose unverified" in n and "allow_unverified" in n for n in fr.notes)
    fr = frame(estimate(status="unverified"), detector=detector, allow_unverified=True)
    assert fr.tf is not None and fr.decision is not None


def test_a_failed_estimate_never_acts_even_when_unverified_ones_may():
    detector = KidnapDetector(RecoveryConfig(consecutive=1, reinit_without_belief=True))
    est = estimate(status="failed")
    assert not est.publishable
    fr = frame(est, detector=detector, allow_unverified=True)
    assert fr.tf is None and fr.decision is None
    assert any("pose failed" in n for n in fr.notes)


def test_a_diverged_estimate_reaches_the_detector_as_low_confidence():
    """A diverged model (sigma 1e8 m): its confidence was -8e-25, which the detector refused, ending the frame."""
    from reloc_ros.runtime.uncertainty import confidence

    cov = covariance_from_std(1e8, np.radians(1.0))
    fr = frame(estimate(confidence=confidence(cov), cov=cov), detector=KidnapDetector(RecoveryConfig()))
    assert fr.tf is None and fr.decision.state == "low_confidence" and not fr.decision.reinitialise
    assert any(n.startswith("confidence 0.00 < min_confidence") for n in fr.notes)


@pytest.mark.parametrize("bad", [2.0, -0.1, float("nan"), "0.5", True])
def test_min_confidence_must_be_a_probability(bad):
    with pytest.raises(ValueError, match=r"min_confidence must be a probability in \[0, 1\], got "):
        frame(min_confidence=bad)


def test_frame_errors_are_counted_by_kind_and_bugs_logged_with_a_traceback(caplog):
    import logging

    from reloc_ros.runtime.pipeline import FrameErrors

    errors = FrameErrors()
    with caplog.at_level(logging.WARNING):
        for e in (ValueError("bad data"), KeyError("bug"), ValueError("more bad data")):
            try:
                raise e
            except Exception as exc:  # noqa: BLE001 - what the per-frame guards do
                errors.record(exc, 1_500_000_000)
        errors.log_summary()
    assert dict(errors.counts) == {"error in the frame's processing (ValueError)": 2,
                                   "error in the frame's processing (KeyError)": 1}
    first = [r for r in caplog.records if "failed and is skipped" in r.getMessage()]
    assert [(r.levelno, bool(r.exc_info)) for r in first] == [(logging.WARNING, False), (logging.ERROR, True)]
    assert "the frame at 1.500 s" in first[0].getMessage()
    assert "2 frame(s) skipped: error in the frame's processing (ValueError)" in caplog.text
