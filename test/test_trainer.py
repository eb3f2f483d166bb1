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

"""Training from bags: learns for real, resumes to the same result, fails clearly, runs under torchrun."""

import logging
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
import torch

from reloc_ros.cli import main
from reloc_ros.data.bag import BagSource
from reloc_ros.data.synth import make_run, write_synthetic_bag
from reloc_ros.errors import RelocError
from reloc_ros.modelfile import read_metadata
from reloc_ros.runtime.engine import Relocalizer
from reloc_ros.training import apr_trainer
from reloc_ros.training.trainer import (EXIT_WEAK, TrainConfig, TrainResult, checkpoint_path_for, load_checkpoint,
                                        train, weak_model_refusal)

TINY = {"backbone": "resnet18", "input_size": (32, 24), "batch_size": 8, "epochs": 2, "min_frames": 10}


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp("bags")
    # The mapping run drives its loop twice, as real mapping runs revisit places: then a held-out
    # time block of one lap is still covered by the other.
    lap_m = make_run(route="train", frames=240, size=(80, 60)).curve.length_m
    write_synthetic_bag(root / "map", route="train", frames=240, size=(80, 60), progress=False,
                        speed_mps=2 * lap_m / 24.0)
    write_synthetic_bag(root / "query", route="test", frames=80, size=(80, 60), progress=False)
    write_synthetic_bag(root / "tiny", route="train", frames=30, size=(32, 24), progress=False)
    return root


def test_trained_model_beats_mean_pose_baseline_on_the_query_route(bags, tmp_path, capsys):
    """Go bag -> train -> export -> eval on a different route: a learned result, not 'it ran'."""
    out = tmp_path / "model.pt"
    assert main(["-q", "train", str(bags / "map"), "--map", "none", "--model", "posenet", "--out", str(out),
                 "--epochs", "16", "--input-size", "64x48", "--preprocessing", "resize", "--batch-size", "16",
                 "--lr", "1e-3", "--cache-dir", str(tmp_path / "cache")]) == 0
    report_path = tmp_path / "eval.json"
    assert main(["-q", "eval", str(out), str(bags / "query"), "--json", str(report_path),
                 "--plots", str(tmp_path / "plots"), "--tum", str(tmp_path / "pred.tum")]) == 0
    import json

    from reloc_ros.data.bag import read_bag_dataset
    from reloc_ros.evaluation import mean_pose_baseline

    report = json.loads(report_path.read_text())
    train_ds = read_bag_dataset(bags / "map", load_images=False)
    query_ds = read_bag_dataset(bags / "query", load_images=False)
    baseline = mean_pose_baseline(train_ds.poses_n44, query_ds.poses_n44)
    assert report["frames"] == 80
    assert report["median_translation_m"] <= 0.5 * baseline["median_translation_m"], (report, baseline)
    assert (tmp_path / "plots" / "error_cdf.png").exists() and (tmp_path / "pred.tum").exists()
    assert (tmp_path / "plots" / "calibration.png").exists()

    # Validation (regions of place and view held out of the mapping run) predicts the unseen query route:
    # its median error is within a factor 1.5 of the query's (measured: 0.70 m validation, 0.92 m query), and
    # the covariance calibrated on it covers the query's errors about as well as it covered validation's
    # (measured 2-sigma: translation 77 % on both, rotation 94 % validation, 84 % query; 41 frames).
    reloc = Relocalizer(out, device="cpu")
    assert reloc.calibration.frames > 0 and "calibrated" in reloc.uncertainty
    quality = reloc.metadata["quality"]
    assert quality["split"] == "regions of place and view held out of the mapping run" and not quality["weak"]
    ratio = report["median_translation_m"] / quality["model_median_m"]
    assert 1 / 1.5 <= ratio <= 1.5, (report["median_translation_m"], quality)
    validation = reloc.metadata["uncertainty"]["calibration"]["validation"]
    for g in ("translation", "rotation"):
        query_2sigma = report["covariance"][g]["within_2sigma"]
        assert query_2sigma >= 0.75 and abs(query_2sigma - validation[g]["within_2sigma"]) <= 0.15, (g, report)


def test_ctrl_c_leaves_a_checkpoint_and_resume_reaches_the_same_result(bags, tmp_path, monkeypatch):
    straight = tmp_path / "a.pt"
    train([bags / "tiny"], BagSource(), TrainConfig(**TINY), straight, progress=False)

    out = tmp_path / "b.pt"
    real_validate = apr_trainer.validate_poses
    calls = {"n": 0}

    def interrupt_in_epoch_two(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # Ctrl-C at the end of epoch 2's training steps
        return real_validate(*a, **k)

    monkeypatch.setattr(apr_trainer, "validate_poses", interrupt_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train([bags / "tiny"], BagSource(), TrainConfig(**TINY), out, progress=False)
    monkeypatch.setattr(apr_trainer, "validate_poses", real_validate)
    assert not out.exists() and load_checkpoint(checkpoint_path_for(out))["epoch"] == 1

    with pytest.raises(ValueError, match="checkpoint of an earlier run exists.*--resume"):
        train([bags / "tiny"], BagSource(), TrainConfig(**TINY), out, progress=False)
    with pytest.raises(ValueError, match="different configuration.*lr: 0.0005 -> 0.001"):
        train([bags / "tiny"], BagSource(), TrainConfig(**{**TINY, "lr": 1e-3}), out, resume=True, progress=False)
    train([bags / "tiny"], BagSource(), TrainConfig(**TINY), out, resume=True, progress=False)
    assert out.exists()
    a, b = load_checkpoint(checkpoint_path_for(straight)), load_checkpoint(checkpoint_path_for(out))
    assert a["epoch"] == b["epoch"] == 2
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_bad_inputs(bags, tmp_path):
    with pytest.raises(RelocError, match="only 30 posed frames.*at least 100"):
        train([bags / "tiny"], BagSource(), TrainConfig(**{**TINY, "min_frames": 100}), tmp_path / "m.pt",
              progress=False)
    with pytest.raises(ValueError, match="directory .* is missing or not writable"):
        train([bags / "tiny"], BagSource(), TrainConfig(**TINY), tmp_path / "nope" / "m.pt", progress=False)
    with pytest.raises(ValueError, match="model 'vgg' is not one of posenet, lrf-posenet"):
        TrainConfig(model="vgg").resolved()
    bad = tmp_path / "bad.pt.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(RelocError, match="not a readable checkpoint"):
        load_checkpoint(bad)
    torch.save({"something": torch.zeros(1)}, bad)
    with pytest.raises(RelocError, match="not a reloc_ros training checkpoint"):
        load_checkpoint(bad)


def test_config_file_and_command_line_precedence(bags, tmp_path, capsys):
    cfg = tmp_path / "train.yaml"
    cfg.write_text("model: lrf-posenet\nepochs: 5\ninput-size: 32x24\nbatch_size: 8\n")
    out = tmp_path / "x.pt"
    assert main(["-q", "train", str(bags / "tiny"), "--map", "none", "--config", str(cfg), "--out", str(out),
                 "--epochs", "1", "--cache-dir", str(tmp_path / "c"), "--onnx", "--allow-weak"]) == 0
    assert out.with_suffix(".onnx").exists()  # written beside, checked against the TorchScript output
    state = load_checkpoint(checkpoint_path_for(out))
    assert state["config"]["model"] == "lrf-posenet" and state["config"]["head"] == "lstm"
    assert state["config"]["epochs"] == 1  # the command line wins over the file
    assert state["config"]["input_size"] == [32, 24]
    cfg.write_text("learning_rate: 0.1\n")
    with pytest.raises(SystemExit):
        main(["train", str(bags / "tiny"), "--config", str(cfg), "--out", str(out)])
    assert "unknown option 'learning_rate'" in capsys.readouterr().err


def test_a_weak_model_is_written_flagged_and_the_trainer_fails(bags, tmp_path, capsys, caplog):
    """A learning rate too small to learn anything: the model answers about the mean pose and must not pass."""
    out = tmp_path / "weak.pt"
    code = main(["-q", "train", str(bags / "tiny"), "--map", "none", "--epochs", "1", "--lr", "1e-12",
                 "--input-size", "32x24", "--batch-size", "8", "--out", str(out), "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert code == EXIT_WEAK == 3
    assert "WEAK MODEL" in err and "--allow-weak" in err and "mean mapping pose" in err
    quality = read_metadata(out)["quality"]  # written all the same, and it says so
    assert quality["weak"] and quality["model_median_m"] > quality["margin"] * quality["mean_pose_median_m"]
    assert quality["split"] == "regions of place and view held out of the mapping run" and quality["frames"] > 0
    with caplog.at_level(logging.WARNING, logger="reloc_ros.runtime.engine"):
        Relocalizer(out, device="cpu", verify="off", warmup=1)
    assert "WEAK MODEL" in caplog.text  # eval, replay and the node say it at load
    result = TrainResult(out, out, quality=quality)
    assert weak_model_refusal(result, allow_weak=True) is None
    assert "WEAK MODEL" in weak_model_refusal(result, allow_weak=False)


def test_torchrun_two_processes_on_cpu(bags, tmp_path):
    """torch.distributed with gloo: two ranks share each epoch and rank 0 writes one model."""
    out = tmp_path / "ddp.pt"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
         "reloc_ros.cli", "-q", "train", str(bags / "tiny"), "--map", "none", "--out", str(out), "--epochs", "2",
         "--input-size", "32x24", "--batch-size", "8", "--cache-dir", str(tmp_path / "cache"), "--device", "cpu",
         "--allow-weak"],
        capture_output=True, text=True, timeout=600, env=env, cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    state = load_checkpoint(checkpoint_path_for(out))
    # 30 frames, ~26 for training: each of 2 ranks sees 13 per epoch (one batch of 8, one of 5).
    assert state["world_size"] == 2 and state["epoch"] == 2
    from reloc_ros.modelfile import load_model

    _, meta = load_model(out)
    assert meta["model"] == "posenet" and np.isfinite(meta["metrics"]["validation"]["median_translation_m"])
