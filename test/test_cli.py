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

"""The reloc-ros command line as a user runs it: synth -> extract, demo, bench, errors."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from reloc_ros.cli import main
from reloc_ros.data.layouts import read_tum_trajectory
from reloc_ros.data.synth import ground_truth
from reloc_ros.geometry import rotation_error_deg, translation_error


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_synth_then_extract_reproduces_ground_truth(tmp_path, capsys, storage):
    bag = tmp_path / "scene"
    assert main(["-q", "synth", str(bag), "--route", "test", "--frames", "12", "--size", "64x48",
                 "--storage", storage, "--depth", "--seed", "3"]) == 0
    assert f"wrote {bag}" in capsys.readouterr().out
    tum = tmp_path / "gt.tum"
    assert main(["-q", "extract", str(bag), "--tum", str(tum)]) == 0  # colour topic chosen over depth
    stamps, poses = read_tum_trajectory(tum)
    gt_stamps, gt_poses = ground_truth(route="test", frames=12, seed=3)
    assert np.array_equal(stamps, gt_stamps)
    assert translation_error(poses, gt_poses).max() < 1e-6
    assert rotation_error_deg(poses, gt_poses).max() < 1e-3


def test_synth_refuses_to_overwrite_and_bad_size(tmp_path, capsys):
    bag = tmp_path / "scene"
    bag.mkdir()
    assert main(["-q", "synth", str(bag), "--frames", "2"]) == 2
    assert "exists" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["synth", str(tmp_path / "x"), "--size", "160by120"])
    assert exc.value.code == 2 and "not WIDTHxHEIGHT" in capsys.readouterr().err


def test_demo_runs_the_main_job_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["-q", "demo", "--out", str(out), "--frames", "120", "--size", "160x120", "--epochs", "1",
            "--input-size", "32x24"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "120 posed frames" in text and "60 posed frames" in text and "mean-pose baseline" in text
    assert "feature map stored in" in text and "status:" in text
    assert (out / "routes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "plots" / "error_cdf.png").exists() and (out / "model.pt").exists()
    assert (out / "plots" / "calibration.png").exists()
    # The query bag went through the relocalizer as the node would run it: its outputs are a real bag.
    assert "replayed the query bag" in text and (out / "relocalized_bag" / "metadata.yaml").exists()
    _, mapping = read_tum_trajectory(out / "mapping_gt.tum")
    assert len(mapping) == 120
    report = json.loads((out / "report.json").read_text())
    st = report["status"]
    assert st["frames"] == 60 and report["model_name"] == "posenet"
    # A model trained for one epoch proposes badly; the map still verifies most frames, and accurately.
    assert st["shares"]["verified"] >= 0.8 and report["frames"] == st["counts"]["verified"]
    assert st.get("verified_wrong_share", 0.0) == 0.0 and report["median_translation_m"] < 0.1
    assert "median_translation_m" in report["mean_pose_baseline"]
    # The report is what `reloc-ros eval` says for the same files.
    assert main(["-q", "eval", str(out / "model.pt"), str(out / "query_bag"), "--json", str(tmp_path / "e.json")]) == 0
    again = json.loads((tmp_path / "e.json").read_text())
    for key in ("frames", "median_translation_m", "median_rotation_deg", "within", "covariance"):
        assert again[key] == report[key], key
    assert again["status"]["counts"] == st["counts"]
    # A second run reuses bags and model instead of failing on the existing paths.
    assert main(args) == 0


def test_bench_quick_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    res = subprocess.run([sys.executable, "-m", "reloc_ros.cli", "-q", "bench", "--quick", "--frames", "10",
                          "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    data = json.loads(out.read_text())
    assert json.loads(res.stdout) == data
    assert data["bag_rgb8_640x480"]["zero_copy_decode"] is True
    for key in ("bag_rgb8_640x480", "bag_jpeg_640x480"):
        assert data[key]["full_read"]["frames"] == 10 and data[key]["full_read"]["frames_per_s_median"] > 0
    assert data["synthetic_render"]["160x120"]["frames_per_s_median"] > 0


def _bench_quick(tmp_path, suite):
    """Run ``reloc-ros bench --suite SUITE --quick`` in a fresh process; return (results dict, markdown text)."""
    out, md = tmp_path / f"{suite}.json", tmp_path / f"{suite}.md"
    res = subprocess.run([sys.executable, "-m", "reloc_ros.cli", "-q", "bench", "--suite", suite, "--quick",
                          "--json", str(out), "--markdown", str(md)], capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(out.read_text()), md.read_text()


def test_bench_apr_quick_writes_tables(tmp_path):
    data, table = _bench_quick(tmp_path, "apr")
    variants = [r["variant"] for r in data["accuracy"]["rows"]]
    assert len(variants) == 7 and variants[-1].startswith("mean-pose baseline")
    assert {r["backbone"] for r in data["speed"]} == {"resnet18", "resnet34"}
    assert all(r["export_latency_ms_median"] > 0 for r in data["speed"])
    assert "| LRF-PoseNet (resize + LSTM) |" in table and "resnet34" in table


def test_bench_runtime_quick_measures_every_stage_and_drops_stale_frames(tmp_path):
    data, table = _bench_quick(tmp_path, "runtime")
    assert [r["backend"] for r in data["latency"]][:2] == ["torchscript", "onnx"]
    for row in data["latency"]:
        m = row["median_ms"]
        assert all(m[k] > 0 for k in ("decode", "preprocess", "inference", "postprocess", "other_outputs"))
        assert row["sustained"]["processed"] > 0
    mem = data["memory_10x_replay"]
    # 100 frames/s of input is more than a 224x224 ResNet-18 infers on a CPU: the worker drops, never queues.
    assert mem["submitted"] == mem["bag_frames"] * mem["passes"]
    assert mem["processed"] + mem["dropped"] == mem["submitted"] and mem["dropped"] > 0
    assert "| torchscript / cpu |" in table


def test_bench_full_quick_measures_every_method(tmp_path):
    data, table = _bench_quick(tmp_path, "full")
    rows = {r["method"]: r for r in data["scenes"]["room"]}
    assert set(rows) == {"mean-pose baseline", "nearest-neighbour retrieval",
                         "ORB + depth + PnP RANSAC (geometric reference)", "PoseNet", "LRF-PoseNet"}
    # The references behave as references: geometry with known depth beats retrieval, which beats the mean pose.
    med = {k: r["median_translation_m"] for k, r in rows.items()}
    assert med["ORB + depth + PnP RANSAC (geometric reference)"] < med["nearest-neighbour retrieval"]
    assert med["nearest-neighbour retrieval"] < med["mean-pose baseline"]
    for name in ("PoseNet", "LRF-PoseNet"):
        r = rows[name]
        assert r["train_seconds"] > 0 and r["model_mb"] > 1 and r["latency_ms_cpu"] > 0 and r["memory_mb"] > 0
        assert 0 <= r["calibration"]["translation"]["within_2sigma"] <= 1
    assert [r["mapping_frames"] for r in data["scaling"]["mapping_size"]] == [300, 3000]
    assert "| nearest-neighbour retrieval |" in table


def test_bench_heldout_quick_puts_validation_beside_the_query(tmp_path):
    from reloc_ros.bench.heldout import METHODS

    data, table = _bench_quick(tmp_path, "heldout")
    rows = {r["method"]: r for r in data["rows"]}
    assert list(rows) == ["mean mapping pose", "nearest-mapping-frame retrieval", *(m for m, _ in METHODS)]
    for r in rows.values():
        for fig in ("validation", "query"):
            assert r[fig]["median_translation_m"] >= 0 and 0 <= r[fig]["median_rotation_deg"] <= 180
        q, v = r["query"]["median_translation_m"], r["validation"]["median_translation_m"]
        assert r["query_over_validation"] == pytest.approx(q / v, abs=0.01)
    assert rows["mean mapping pose"]["times_better_than_mean_pose"] == 1.0
    assert rows["PoseNet, time-block validation"]["validation"]["split"] == "time blocks of the mapping run"
    assert rows["PoseNet"]["validation"]["split"] == "regions of place and view held out of the mapping run"
    assert rows["CamNet (ORB pairs, no depth)"]["config"]["similarity"] == "orb"
    # Validation frames of the default split lie further from the training path than time blocks do.
    spatial, time_blocks = data["validation_spatial_from_training"], data["validation_time_from_training"]
    assert spatial["median_distance_m"] > time_blocks["median_distance_m"]
    assert "| PoseNet + geometric loss (Ward et al.) |" in table and "query / validation" in table


def test_bench_camnet_quick_runs_the_ablation_and_the_scaling(tmp_path):
    data, table = _bench_quick(tmp_path, "camnet")
    methods = [r["method"] for r in data["ablation"]]
    assert methods[:2] == ["PoseNet", "LRF-PoseNet"] and len(methods) == 12  # 2 APRs, 2 CamNets x 5 stages
    assert methods[2] == "CamNet: retrieval only (nearest key frame)" and methods[7].startswith("CamNet-ORB:")
    assert all(r["median_translation_m"] >= 0 and r["train_seconds"] > 0 for r in data["ablation"])
    assert data["camnet"]["CamNet"]["database"]["keyframes"] > 0
    lat = data["stage_latency"][0]
    assert all(lat[s] > 0 for s in ("encoder", "retrieval", "pfr", "re_retrieval", "prp", "fusion", "whole_frame"))
    db = data["database_scaling"]
    assert [r["keyframes"] for r in db] == [1000, 10000] and db[1]["database_mb"] > 5 * db[0]["database_mb"]
    assert "| CamNet: full (+ 2 previous frames, the runtime) |" in table


# --------------------------------------------------------------------------
# Outputs that cannot be written are said before any work
# --------------------------------------------------------------------------

@pytest.mark.parametrize("made, out, onnx, said", [
    ("m.pt", "m.pt", False, r"cannot write the model '.*m\.pt': it is a directory"),
    ("m.pt.ckpt", "m.pt", False, r"cannot write the checkpoint '.*m\.pt\.ckpt': it is a directory"),
    ("m.onnx", "m.pt", True, r"cannot write the ONNX model '.*m\.onnx': it is a directory"),
    (None, "nope/m.pt", False, r"cannot write the model '.*m\.pt': directory '.*nope' does not exist"),
])
def test_train_checks_its_outputs_before_reading_the_bags(tmp_path, capsys, made, out, onnx, said):
    if made:
        (tmp_path / made).mkdir()   # a directory where a file is to be written
    argv = ["-q", "train", str(tmp_path / "no_such_bag"), "--out", str(tmp_path / out)] + (["--onnx"] if onnx else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert re.search(said, err), err   # not the missing bag: nothing was read


def test_train_with_an_unwritable_directory_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode & os.W_OK else real_access(p, mode))
    assert main(["-q", "train", str(tmp_path / "no_such_bag"), "--out", str(tmp_path / "m.pt")]) == 2
    assert re.search(r"cannot write the model '.*m\.pt': directory '.*' is not writable", capsys.readouterr().err)


def test_demo_checks_its_output_folder_before_any_work(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["-q", "demo", "--out", str(tmp_path / "f")]) == 2
    assert re.search(r"cannot write the output folder '.*f': it is a file, not a directory", capsys.readouterr().err)
    assert main(["-q", "demo", "--out", str(tmp_path / "f" / "demo")]) == 2
    assert re.search(r"'.*f' is a file, not a directory", capsys.readouterr().err)
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--size", "100000x100000"])
    assert exc.value.code == 2 and "at most 4096 pixels" in capsys.readouterr().err


def test_align_checks_its_outputs_and_lr_before_any_work(tmp_path, capsys):
    model = tmp_path / "no_such_model.pt"   # never read: the outputs are checked first
    assert main(["-q", "align", str(model), "--unlabelled", "b", "--out", str(tmp_path / "nope" / "a.pt")]) == 2
    assert re.search(r"cannot write the aligned model '.*a\.pt': directory '.*nope' does not exist",
                     capsys.readouterr().err)
    (tmp_path / "no_such_model_ud.pt").mkdir()   # the default output
    assert main(["-q", "align", str(model), "--unlabelled", "b"]) == 2
    assert "cannot write the aligned model" in capsys.readouterr().err
    assert main(["-q", "align", str(model), "--unlabelled", "b", "--out", str(tmp_path / "a.pt"), "--json",
                 str(tmp_path / "nope" / "r.json")]) == 2
    assert re.search(r"cannot write the report JSON '.*r\.json'", capsys.readouterr().err)
    for bad in ("nan", "-1e-5", "0"):
        with pytest.raises(SystemExit) as exc:
            main(["align", str(model), "--unlabelled", "b", "--lr", bad])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and f"'{bad}' is invalid: must be a finite number > 0" in err, err
