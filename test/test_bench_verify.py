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

"""The verification benchmark in quick mode through the CLI: every row, sane shares, no confident wrong pose."""

import json
import math

from reloc_ros.bench.verify import QUICK, ROWS
from reloc_ros.cli import main


def test_bench_verify_quick_writes_the_ablation_and_no_wrong_proposal_ends_verified(tmp_path, capsys):
    out_json, out_md = tmp_path / "verify.json", tmp_path / "verify.md"
    assert main(["--quiet", "bench", "--suite", "verify", "--quick", "--json", str(out_json),
                 "--markdown", str(out_md)]) == 0
    results = json.loads(out_json.read_text())
    assert results["quick"] is True and results["suite"] == "verify"
    assert results["machine"]["cores"] >= 1

    scene = results["scenes"]["textured_room"]
    assert scene["keyframes"] > 0 and scene["points"] > 0 and scene["map_mb"] > 0
    rows = {r["row"]: r for r in scene["rows"]}
    assert list(rows) == list(ROWS)
    for r in rows.values():
        assert r["frames"] == QUICK.query_frames, r
        for key in ("posed_share", "verified_share", "failed_share", "verified_wrong_of_frames"):
            assert 0.0 <= r[key] <= 1.0, (key, r)
        assert math.isclose(r["posed_share"] + r["failed_share"], 1.0), r
        assert r["verified_share"] <= r["posed_share"] + 1e-12, r

    learned, mean = rows["learned only"], rows["baseline: mean pose"]
    for r in (learned, mean):
        assert (r["posed_share"], r["verified_share"], r["verified_wrong_share"]) == (1.0, 0.0, None), r
        assert all(0.0 <= v <= 1.0 for v in r["within_2sigma"].values()), r

    # The map verifies frames from good candidates (so the wrong-proposal check below is not vacuous),
    # and the verified poses are the refined ones, far closer than the 2-epoch model's.
    oracle = rows["verified, oracle candidates"]
    assert oracle["verified_share"] >= 0.5, oracle
    assert oracle["median_translation_m"] < min(0.25, learned["median_translation_m"]), (oracle, learned)
    assert oracle["median_inliers"] >= 20, oracle

    # The test: a proposal 2 m off ends failed (or, when the refinement reaches the truth, verified
    # and right), never as a confident wrong pose.
    wrong = rows["baseline: wrong proposals (model poses moved 2 m)"]
    assert wrong["verified_wrong_frames"] == 0, wrong
    assert wrong["failed_share"] > 0, wrong

    lat = results["latency"]["features"]
    assert set(lat) == {"sift", "orb"}
    for r in lat.values():
        ms = r["median_ms"]
        assert ms["total"] > 0 and all(ms[k] >= 0 for k in ("features", "matching", "ransac", "refinement")), r
        assert ms["total"] >= ms["features"], r

    cost = results["mapping_cost"]
    assert [r["frames"] for r in cost] == sorted(QUICK.cost_frames)
    assert all(r["seconds"] > 0 and r["map_mb"] > 0 for r in cost), cost
    assert cost[-1]["keyframes"] >= cost[0]["keyframes"]

    md = out_md.read_text()
    assert "| learned only |" in md and "| SIFT |" in md and "| ORB |" in md
    assert results["findings"] and all(f"- {f}" in md for f in results["findings"])
    assert "| learned only |" in capsys.readouterr().out
