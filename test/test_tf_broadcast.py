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

"""map -> odom stamped ahead like AMCL's transform_tolerance, and re-broadcast between corrections."""

import numpy as np
import pytest

from reloc_ros.runtime.tf_broadcast import NS_PER_S, MapOdomBroadcast


def test_corrections_are_future_dated_and_the_last_one_is_held_for_rebroadcast():
    b = MapOdomBroadcast(tolerance_s=0.5, rebroadcast_hz=10.0)
    assert b.period_s == pytest.approx(0.1)
    assert b.rebroadcast(now_ns=5 * NS_PER_S) is None  # nothing to hold before the first correction
    T1 = np.eye(4)
    T1[0, 3] = 1.0
    assert b.correct(T1, 3 * NS_PER_S, "map", "odom") == 3 * NS_PER_S + NS_PER_S // 2
    T1[0, 3] = 99.0  # the caller's array changing later must not change what is held
    T, stamp, parent, child = b.rebroadcast(now_ns=4 * NS_PER_S)
    assert stamp == 4 * NS_PER_S + NS_PER_S // 2 and (parent, child) == ("map", "odom") and T[0, 3] == 1.0
    T2 = np.eye(4)
    T2[1, 3] = 2.0
    b.correct(T2, 6 * NS_PER_S, "map", "odom")
    assert b.rebroadcast(now_ns=7 * NS_PER_S)[0][1, 3] == 2.0  # the newest correction replaces the held one
    b.clear()
    assert b.rebroadcast(now_ns=8 * NS_PER_S) is None


def test_zero_rate_never_rebroadcasts_and_zero_tolerance_keeps_the_image_stamp():
    b = MapOdomBroadcast(tolerance_s=0.0, rebroadcast_hz=0.0)
    assert b.period_s is None
    assert b.correct(np.eye(4), 123, "map", "odom") == 123
    assert b.rebroadcast(now_ns=456) is None


@pytest.mark.parametrize("kw", [{"tolerance_s": -0.1, "rebroadcast_hz": 1.0},
                                {"tolerance_s": float("nan"), "rebroadcast_hz": 1.0},
                                {"tolerance_s": 0.5, "rebroadcast_hz": -1.0}])
def test_bad_settings_are_refused_naming_them(kw):
    with pytest.raises(ValueError, match="tolerance_s|rebroadcast_hz"):
        MapOdomBroadcast(**kw)
