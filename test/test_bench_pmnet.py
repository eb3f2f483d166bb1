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

"""PMNet's benchmark in quick mode: the Table 5b rows, one shared NeRF-P, the tables."""

import json
import math

from reloc_ros.bench.pmnet import markdown_table, run_pmnet_benchmark

EXPECTED = [("PoseNet", None, None),
            ("PMNet", 1, {"pose", "image", "rvs"}),
            ("PMNet", 2, {"pose", "posemap", "rvs"}),
            ("PMNet", 3, {"pose", "image", "posemap"}),
            ("PMNet", 4, {"pose", "image", "posemap", "rvs"}),
            ("PMNet_ud", 5, {"image"}),
            ("PMNet_ud", 6, {"image", "posemap"})]


def test_pmnet_bench_quick_runs_table_5b_on_one_nerfp():
    results = run_pmnet_benchmark(quick=True)
    json.dumps(results)  # JSON-ready
    assert results["scene"] == "room"
    assert (results["mapping_frames"], results["query_frames"]) == (60, 20)
    assert "1e-3" in results["budget"]["optimizers"] and "1e-4" in results["budget"]["optimizers"]

    rows = results["rows"]
    assert [(r["method"], r["exp"]) for r in rows] == [(m, e) for m, e, _ in EXPECTED]
    for r, (_, _, losses) in zip(rows, EXPECTED):
        if losses is not None:
            assert set(r["losses"]) == losses, r
        for key in ("median_translation_m", "median_rotation_deg", "train_seconds"):
            assert math.isfinite(r[key]) and r[key] >= 0, r
        w = r["within_2sigma"]
        assert all(0.0 <= w[g] <= 1.0 for g in ("translation", "rotation")), r

    pm = [r for r in rows if r["method"] == "PMNet"]
    # The trainer stores the NeRF-P with its fit time in the cache and every later run reports that value:
    # identical seconds (and one cached NeRF-P) mean Exp. 1-4 shared one fit.
    assert len({r["nerfp_seconds"] for r in pm}) == 1
    assert len({(r["stage_seconds"]["nerfp_stage_rgb"], r["stage_seconds"]["nerfp_stage_pose"]) for r in pm}) == 1
    assert results["nerfp"]["fits"] == 1

    for r in rows[-2:]:
        assert math.isfinite(r["moved_median_m"]) and r["moved_median_m"] >= 0
        assert math.isfinite(r["render_match_db_before"]) and math.isfinite(r["render_match_db_after"])

    nq = results["nerfp"]
    assert nq["holdout_psnr_db"] > nq["holdout_psnr_mean_colour_db"]
    assert nq["frames_train"] > 0 and nq["frames_holdout"] > 0
    cpu = results["timing"][0]
    assert cpu["device"] == "cpu"
    assert {"nerfp_stage_rgb", "nerfp_stage_pose", "render", "aprnet", "align_exp5", "align_exp6"} <= set(cpu)
    grad = results["posemap_gradient"]
    assert [r["offset_m"] for r in grad] == [0.05, 0.1, 0.2, 0.5, 1.0, 2.0]
    assert all(0.0 <= r["toward_truth"] <= 1.0 and -1.0 <= r["posemap_cosine"] <= 1.0 for r in grad)
    assert grad[0]["posemap_cosine"] > grad[-1]["posemap_cosine"]  # PoseMaps differ more the farther the pose

    table = markdown_table(results)
    for name in ("PoseNet", "| PMNet |", "PMNet_ud", "NeRF-P stage 1", "APRNet epochs", "mean-colour"):
        assert name in table
