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

"""Kidnapped-robot recovery: scripted sequences of visual estimates against a belief."""

import threading

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from reloc_ros.geometry import covariance_from_std, make_pose
from reloc_ros.runtime.recovery import Decision, KidnapDetector, OneShotRequest, RecoveryConfig

S = 1_000_000_000
VIS_COV = covariance_from_std(0.1, 0.05)                      # visual estimate: 10 cm, ~3 deg
BELIEF_COV = np.diag([0.04, 0.04, 0.0, 0.0, 0.0, 0.01])       # AMCL-like: zeros on axes it does not estimate


def pose(x=0.0, y=0.0, yaw_deg=0.0, z=0.0, roll_deg=0.0, pitch_deg=0.0):
    q = Rotation.from_euler("xyz", [roll_deg, pitch_deg, yaw_deg], degrees=True).as_quat()
    return make_pose([x, y, z], q)


BELIEF = (pose(1.0, 2.0, 30.0), BELIEF_COV)
KIDNAPPED = pose(6.0, 2.0, 30.0)  # 5 m away from the belief


def run(det, frames, cov=VIS_COV):
    """Frames: (t_s, T_map_base, confidence, belief); returns the decisions."""
    return [det.update(int(round(t * S)), T, cov, c, b) for t, T, c, b in frames]


def test_agreeing_sequence_never_reinitialises():
    rng = np.random.default_rng(0)
    det = KidnapDetector()
    frames = [(0.1 * k, pose(1.0 + rng.normal(0, 0.1), 2.0 + rng.normal(0, 0.1), 30 + rng.normal(0, 3)), 0.9, BELIEF)
              for k in range(50)]
    out = run(det, frames)
    assert not any(d.reinitialise for d in out)
    assert {d.state for d in out} == {"agree"}
    assert all(d.mahalanobis is not None and d.mahalanobis < det.gate for d in out)
    assert all(d.streak == 0 for d in out)


def test_kidnap_reinitialises_exactly_at_frame_n():
    det = KidnapDetector(RecoveryConfig(consecutive=3))
    out = run(det, [(0.1 * k, KIDNAPPED, 0.9, BELIEF) for k in range(4)])
    assert [d.reinitialise for d in out] == [False, False, True, False]
    assert [d.state for d in out] == ["disagree", "disagree", "reinitialise", "disagree"]
    assert [d.streak for d in out] == [1, 2, 3, 1]  # restarts from 0 after a re-initialisation
    d = out[2]
    assert d.translation_m == pytest.approx(5.0) and d.rotation_deg == pytest.approx(0.0, abs=1e-6)
    assert d.mahalanobis > det.gate
    assert "5.00 m" in d.reason and "3/3" in d.reason and "Mahalanobis" in d.reason
    assert isinstance(d, Decision)


def test_low_confidence_never_reinitialises_and_does_not_break_a_streak():
    det = KidnapDetector()
    out = run(det, [(0.1 * k, KIDNAPPED, 0.3, BELIEF) for k in range(20)])
    assert not any(d.reinitialise for d in out)
    assert {d.state for d in out} == {"low_confidence"}
    # Low-confidence frames neither count nor reset: disagree, low, disagree, low, disagree -> trigger.
    det = KidnapDetector()
    out = run(det, [(0.1 * k, KIDNAPPED, c, BELIEF) for k, c in enumerate([0.9, 0.2, 0.9, 0.49, 0.9])])
    assert [d.state for d in out] == ["disagree", "low_confidence", "disagree", "low_confidence", "reinitialise"]
    assert out[1].streak == 1 and out[3].streak == 2


def test_alternating_disagree_agree_never_reaches_n():
    det = KidnapDetector()
    out = run(det, [(0.1 * k, KIDNAPPED if k % 2 == 0 else BELIEF[0], 0.9, BELIEF) for k in range(30)])
    assert not any(d.reinitialise for d in out)
    assert max(d.streak for d in out) == 1


def test_disagreement_within_the_covariances_does_not_trigger():
    det = KidnapDetector()
    wide = covariance_from_std(3.0, 1.0)
    out = [det.update(k * S // 10, pose(3.0, 2.0, 50.0), wide, 0.9, BELIEF) for k in range(10)]
    assert {d.state for d in out} == {"agree"}
    assert out[0].translation_m == pytest.approx(2.0) and out[0].mahalanobis < det.gate


def test_beyond_the_gate_but_below_the_minimum_thresholds_does_not_trigger():
    # Overconfident estimates on both sides (1 cm, ~0.06 deg) and a tiny floor.
    tight_cov = np.diag([1e-4, 1e-4, 1e-4, 1e-6, 1e-6, 1e-6])
    tight = (pose(1.0, 2.0, 30.0), tight_cov)
    cfg = RecoveryConfig(belief_std_floor=(0.01, 0.001))
    for T in (pose(1.3, 2.0, 30.0), pose(1.0, 2.0, 40.0)):  # 0.3 m < 0.5 m; 10 deg < 15 deg
        det = KidnapDetector(cfg)
        out = run(det, [(0.1 * k, T, 0.9, tight) for k in range(10)], tight_cov)
        assert {d.state for d in out} == {"agree"}
        assert out[0].mahalanobis > det.gate  # the gate alone would have triggered
    # Past either threshold, it does.
    for T in (pose(1.6, 2.0, 30.0), pose(1.0, 2.0, 50.0)):
        det = KidnapDetector(cfg)
        assert run(det, [(0.1 * k, T, 0.9, tight) for k in range(3)], tight_cov)[-1].reinitialise


def test_rate_limit_between_reinitialisations():
    det = KidnapDetector(RecoveryConfig(min_interval_s=10.0))
    frames = [(0.5 * k, KIDNAPPED, 0.9, BELIEF) for k in range(3)]               # t = 0, 0.5, 1.0: first kidnap
    frames += [(1.5 + 0.5 * k, BELIEF[0], 0.9, BELIEF) for k in range(3)]        # belief corrected, agree
    frames += [(3.0 + 0.5 * k, KIDNAPPED, 0.9, BELIEF) for k in range(30)]       # kidnapped again at 3 s
    out = run(det, frames)
    times = [f[0] for f in frames]
    triggers = [t for t, d in zip(times, out) if d.reinitialise]
    assert triggers == [1.0, 11.0]  # the second waits until 10 s after the first
    limited = [t for t, d in zip(times, out) if d.state == "rate_limited" and t < 11.0]
    assert limited == [4.0 + 0.5 * k for k in range(14)]  # every frame from N on, until the interval passed
    assert "ago" in out[times.index(4.0)].reason


def test_streak_times_out():
    det = KidnapDetector(RecoveryConfig(streak_timeout_s=5.0))
    frames = [(0.0, KIDNAPPED, 0.9, BELIEF), (1.0, KIDNAPPED, 0.9, BELIEF)]
    frames += [(2.0 + k, KIDNAPPED, 0.1, BELIEF) for k in range(5)]  # low confidence t = 2..6
    frames += [(7.0, KIDNAPPED, 0.9, BELIEF), (7.5, KIDNAPPED, 0.9, BELIEF), (8.0, KIDNAPPED, 0.9, BELIEF)]
    out = run(det, frames)
    assert [d.streak for d in out[-3:]] == [1, 2, 3]  # 6 s after the last counted frame: starts again
    assert [d.reinitialise for d in out].index(True) == len(frames) - 1
    # Within the timeout the streak carries on across low-confidence frames.
    det = KidnapDetector(RecoveryConfig(streak_timeout_s=5.0))
    out = run(det, [(0.0, KIDNAPPED, 0.9, BELIEF), (1.0, KIDNAPPED, 0.9, BELIEF),
                    (2.0, KIDNAPPED, 0.1, BELIEF), (5.5, KIDNAPPED, 0.9, BELIEF)])
    assert out[-1].reinitialise


def test_stamps_going_backwards_reset_the_detector():
    det = KidnapDetector()
    out = run(det, [(100.0, KIDNAPPED, 0.9, BELIEF), (100.1, KIDNAPPED, 0.9, BELIEF),
                    (5.0, KIDNAPPED, 0.9, BELIEF)])  # bag loop
    assert [d.streak for d in out] == [1, 2, 1] and not any(d.reinitialise for d in out)
    # The rate limit belongs to the old timeline too: a kidnap right after the loop re-initialises.
    det = KidnapDetector(RecoveryConfig(min_interval_s=10.0))
    out = run(det, [(100.0 + 0.1 * k, KIDNAPPED, 0.9, BELIEF) for k in range(3)]
              + [(0.1 * k, KIDNAPPED, 0.9, BELIEF) for k in range(3)])
    assert [d.reinitialise for d in out] == [False, False, True, False, False, True]


def test_no_belief():
    det = KidnapDetector(RecoveryConfig(reinit_without_belief=True))
    out = run(det, [(0.1 * k, KIDNAPPED, 0.9, None) for k in range(3)])
    assert [d.state for d in out] == ["no_belief", "no_belief", "reinitialise"]
    assert out[0].mahalanobis is None and out[0].translation_m is None
    assert run(det, [(1.0, KIDNAPPED, 0.2, None)])[0].state == "low_confidence"
    det = KidnapDetector(RecoveryConfig(reinit_without_belief=False))
    out = run(det, [(0.1 * k, KIDNAPPED, 0.9, None) for k in range(10)])
    assert {d.state for d in out} == {"no_belief"} and not any(d.reinitialise for d in out)


def test_planar_ignores_z_roll_pitch_while_full_catches_them():
    level = (pose(1.0, 2.0, 30.0), covariance_from_std(0.1, 0.05))
    tilted = pose(1.0, 2.0, 30.0, z=1.0, roll_deg=30.0, pitch_deg=20.0)
    planar = run(KidnapDetector(RecoveryConfig(planar=True)), [(0.1 * k, tilted, 0.9, level) for k in range(5)])
    assert {d.state for d in planar} == {"agree"}
    full = run(KidnapDetector(RecoveryConfig(planar=False)), [(0.1 * k, tilted, 0.9, level) for k in range(3)])
    assert [d.state for d in full] == ["disagree", "disagree", "reinitialise"]
    assert full[0].translation_m == pytest.approx(1.0)


@pytest.mark.parametrize("planar", [True, False])
def test_yaw_wrap_around_agrees(planar):
    det = KidnapDetector(RecoveryConfig(planar=planar))
    out = run(det, [(0.1 * k, pose(1.0, 2.0, -179.0), 0.9, (pose(1.0, 2.0, 179.0), BELIEF_COV)) for k in range(5)])
    assert {d.state for d in out} == {"agree"}
    assert out[0].rotation_deg == pytest.approx(2.0, abs=1e-6)


def test_disabled_and_reset():
    out = run(KidnapDetector(RecoveryConfig(enabled=False)), [(0.1 * k, KIDNAPPED, 0.9, BELIEF) for k in range(5)])
    assert {d.state for d in out} == {"disabled"} and not any(d.reinitialise for d in out)
    det = KidnapDetector()
    run(det, [(0.0, KIDNAPPED, 0.9, BELIEF), (0.1, KIDNAPPED, 0.9, BELIEF)])
    assert det.streak == 2
    det.reset()
    assert det.streak == 0


@pytest.mark.parametrize("kwargs, match", [
    ({"consecutive": 0}, r"consecutive must be an integer >= 1, got 0"),
    ({"consecutive": 2.5}, r"consecutive .* got 2.5"),
    ({"min_confidence": 1.5}, r"min_confidence must be in \[0, 1\], got 1.5"),
    ({"gate_probability": 1.0}, r"gate_probability must be in \(0, 1\), got 1.0"),
    ({"min_translation_m": -0.1}, r"min_translation_m must be in \[0, inf\), got -0.1"),
    ({"min_rotation_deg": 200}, r"min_rotation_deg must be in \[0, 180\], got 200"),
    ({"min_interval_s": float("nan")}, r"min_interval_s must be in \[0, inf\), got nan"),
    ({"streak_timeout_s": 0}, r"streak_timeout_s must be in \(0, inf\), got 0"),
    ({"enabled": "yes"}, r"enabled must be true or false, got 'yes'"),
    ({"belief_std_floor": (0.1,)}, r"belief_std_floor must be two"),
    ({"belief_std_floor": (0.1, -1.0)}, r"belief_std_floor\[1\] \(rotation, rad\) must be in \[0, inf\), got -1.0"),
])
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RecoveryConfig(**kwargs)


def test_config_from_dict():
    cfg = RecoveryConfig.from_dict({"consecutive": 5, "belief_std_floor": [0.1, 0.05], "planar": False})
    assert cfg.consecutive == 5 and cfg.belief_std_floor == (0.1, 0.05) and not cfg.planar
    with pytest.raises(ValueError, match=r"unknown recovery parameter\(s\) consecutve; valid: enabled, consecutive"):
        RecoveryConfig.from_dict({"consecutve": 5})


def test_bad_estimates_raise():
    det = KidnapDetector()
    with pytest.raises(ValueError, match="confidence must be in"):
        det.update(0, KIDNAPPED, VIS_COV, float("nan"), BELIEF)
    with pytest.raises(ValueError, match="stamp_ns must be a non-negative integer"):
        det.update(0.5, KIDNAPPED, VIS_COV, 0.9, BELIEF)
    with pytest.raises(ValueError, match="belief covariance must be 6x6"):
        det.update(0, KIDNAPPED, VIS_COV, 0.9, (BELIEF[0], np.eye(3)))


# --------------------------------------------------------------------------
# One-shot relocalisation (Trigger service)
# --------------------------------------------------------------------------

def offer_all(req, frames):
    """Frames: (t_s, x, confidence, position std); returns the results."""
    return [req.offer(int(t * S), pose(x), covariance_from_std(sd, 0.05), c) for t, x, c, sd in frames]


def test_one_shot_picks_the_best_of_n_frames():
    req = OneShotRequest(frames=5, min_confidence=0.5)
    assert not req.active and req.offer(0, pose(), VIS_COV, 0.9) is None  # not armed: ignored
    req.start(0)
    assert req.active
    out = offer_all(req, [(0.1, 1.0, 0.6, 0.1), (0.2, 2.0, 0.9, 0.3), (0.3, 3.0, 0.7, 0.1),
                          (0.4, 4.0, 0.9, 0.2), (0.5, 5.0, 0.4, 0.1)])
    assert out[:4] == [None] * 4
    r = out[4]
    # Confidence 0.9 twice: the one with the smaller position covariance wins.
    assert r.success and r.stamp_ns == int(0.4 * S) and r.T_map_base[0, 3] == pytest.approx(4.0)
    assert r.confidence == pytest.approx(0.9) and r.cov_66[0, 0] == pytest.approx(0.04)
    assert "best of 5 frames" in r.message
    assert not req.active and req.result is r
    assert req.offer(int(0.6 * S), pose(), VIS_COV, 0.99) is None  # done: later frames are ignored


def test_one_shot_fails_when_no_frame_is_confident():
    req = OneShotRequest(frames=3, min_confidence=0.5)
    req.start(0)
    r = offer_all(req, [(0.1, 1.0, 0.3, 0.1), (0.2, 1.0, 0.1, 0.1), (0.3, 1.0, 0.2, 0.1)])[-1]
    assert not r.success and r.T_map_base is None and r.confidence == pytest.approx(0.3)
    assert "0.30 < 0.50" in r.message


def test_one_shot_times_out():
    req = OneShotRequest(frames=5, timeout_s=10.0)
    req.start(100 * S)
    offer_all(req, [(100.5, 1.0, 0.8, 0.1), (101.0, 1.0, 0.6, 0.1)])
    assert req.poll(105 * S) is None and req.active
    r = req.poll(110 * S)
    assert not r.success and "timed out after 10 s" in r.message and "2/5 frames" in r.message
    assert "0.80" in r.message and not req.active
    assert req.poll(120 * S) is None  # reported once
    req.start(200 * S)
    assert "no frames seen" in req.poll(210 * S).message


def test_one_shot_rearming_replaces_a_pending_request():
    req = OneShotRequest(frames=3)
    req.start(0)
    offer_all(req, [(0.1, 9.0, 1.0, 0.1), (0.2, 9.0, 1.0, 0.1)])
    req.start(int(0.25 * S))  # a new request: the frames so far do not count
    out = offer_all(req, [(0.3, 1.0, 0.7, 0.1), (0.4, 2.0, 0.8, 0.1)])
    assert out == [None, None] and req.active
    r = offer_all(req, [(0.5, 3.0, 0.6, 0.1)])[0]
    assert r.success and r.T_map_base[0, 3] == pytest.approx(2.0)


def test_one_shot_is_safe_across_threads():
    req = OneShotRequest(frames=100, timeout_s=1000.0)
    req.start(0)
    results = []

    def worker(seed):
        for k in range(25):
            r = req.offer(k, pose(float(seed)), VIS_COV, 0.5 + 0.01 * seed)
            if r is not None:
                results.append(r)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 1 and results[0].success and results[0].T_map_base[0, 3] == pytest.approx(3.0)


@pytest.mark.parametrize("kwargs, match", [
    ({"frames": 0}, "frames must be an integer >= 1, got 0"),
    ({"timeout_s": 0.0}, r"timeout_s must be in \(0, inf\), got 0.0"),
    ({"min_confidence": -0.1}, r"min_confidence must be in \[0, 1\], got -0.1"),
])
def test_one_shot_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OneShotRequest(**kwargs)
