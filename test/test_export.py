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

"""Model export: one TorchScript file that plain torch runs, with metadata, written atomically."""

from __future__ import annotations

import copy
from datetime import datetime
import json
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from reloc_ros import modelfile as MF
from reloc_ros import __version__
from reloc_ros.errors import RelocError
from reloc_ros.nets.backbones import IMAGENET_MEAN, IMAGENET_STD
from reloc_ros.training import export as E

from conftest import H, POS_MEAN, POS_SCALE, W, eager_reference, export, images_b3hw, trainer_metadata

# torch 2.13 marks torch.jit deprecated; the helpers below call it directly, as a user of the file would.
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*deprecated:DeprecationWarning")


class ConstNet(nn.Module):
    """Return fixed normalised outputs whatever the image (but still computed from it)."""

    def __init__(self, t_norm, q) -> None:
        super().__init__()
        self.register_buffer("t", torch.tensor(t_norm, dtype=torch.float32))
        self.register_buffer("q", torch.tensor(q, dtype=torch.float32))

    def forward(self, x):
        zero_b1 = x.mean(dim=(1, 2, 3)).unsqueeze(1) * 0
        return self.t + zero_b1, self.q + zero_b1


def identity_quaternion(zero_b1):
    return torch.cat([zero_b1.expand(-1, 3), zero_b1 + 1.0], dim=1)


class ChannelMeanNet(nn.Module):
    """Return the per-channel mean of the image the net receives as its 'position'."""

    def forward(self, x):
        zero_b1 = x.mean(dim=(1, 2, 3)).unsqueeze(1) * 0
        return x.mean(dim=(2, 3)), identity_quaternion(zero_b1)


class CountingNet(nn.Module):
    """Output depends on Python state that tracing freezes: the export check must catch it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        zero_b1 = x.mean(dim=(1, 2, 3)).unsqueeze(1) * 0
        return zero_b1.expand(-1, 3) + float(self.calls), identity_quaternion(zero_b1)


# --------------------------------------------------------------------------
# The exported file runs without reloc_ros and matches the eager wrapper
# --------------------------------------------------------------------------

PLAIN_TORCH_SCRIPT = """
import json, sys
class _NoRelocRos:  # reloc_ros may be pip-installed in site-packages: make any import of it fail
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "reloc_ros":
            raise ImportError("reloc_ros must not be needed to run an exported model")
sys.meta_path.insert(0, _NoRelocRos())
import numpy as np, torch
extra = {"reloc_ros/metadata.json": ""}
m = torch.jit.load(sys.argv[1], map_location="cpu", _extra_files=extra)
meta = json.loads(extra["reloc_ros/metadata.json"])
x = torch.from_numpy(np.load(sys.argv[2]))
with torch.no_grad():
    t, q = m(x)
    t_f, q_f = m(x.float())
    t_again, _ = m(x)
assert not [k for k in sys.modules if k.split(".")[0] == "reloc_ros"]
np.savez(sys.argv[3], t=t.numpy(), q=q.numpy(), t_f=t_f.numpy(), q_f=q_f.numpy(), t_again=t_again.numpy(),
         input_size=np.array(meta["input_size"]), reloc_ros_imported=np.array(False))
"""


def test_plain_torch_in_a_fresh_process_runs_the_model_like_the_eager_wrapper(tmp_path, tiny_net):
    tiny_net.train()  # the trainer's net is mid-training: export must use eval mode and leave the net alone
    path = export(tiny_net, tmp_path / "model.pt")
    assert tiny_net.training
    images = images_b3hw(3)
    np.save(tmp_path / "images.npy", images.numpy())
    (tmp_path / "run.py").write_text(PLAIN_TORCH_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-I", "run.py", str(path), "images.npy", "out.npz"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    out = np.load(tmp_path / "out.npz")
    t_ref, q_ref = eager_reference(tiny_net, images)
    np.testing.assert_allclose(out["t"], t_ref, atol=1e-5)
    np.testing.assert_allclose(out["q"], q_ref, atol=1e-6)
    np.testing.assert_allclose(out["t_f"], out["t"], atol=1e-6)  # float [0, 255] input == uint8 input
    np.testing.assert_allclose(out["q_f"], out["q"], atol=1e-6)
    np.testing.assert_array_equal(out["t_again"], out["t"])  # no dropout at inference
    assert out["input_size"].tolist() == [W, H]
    # The positions are not trivially equal: the three images give different poses.
    assert np.ptp(out["t"], axis=0).max() > 1e-4


def test_load_model_and_predict_match_the_eager_wrapper_for_any_batch_size(model_file, tiny_net):
    module, meta = MF.load_model(model_file)
    images = images_b3hw(5, seed=3)
    t_ref, q_ref = eager_reference(tiny_net, images)
    t_n3, q_n4 = E.predict(module, meta, images.permute(0, 2, 3, 1).numpy())
    assert t_n3.dtype == q_n4.dtype == np.float64 and t_n3.shape == (5, 3) and q_n4.shape == (5, 4)
    np.testing.assert_allclose(t_n3, t_ref, atol=1e-5)
    np.testing.assert_allclose(q_n4, q_ref, atol=1e-6)
    # One image at a time, (H, W, 3) without batch axis: same answers (the trace did not freeze B).
    for k in range(5):
        t_1, q_1 = E.predict(module, meta, images[k].permute(1, 2, 0).numpy())
        np.testing.assert_allclose(t_1[0], t_n3[k], atol=1e-5)
        np.testing.assert_allclose(q_1[0], q_n4[k], atol=1e-6)


def test_positions_come_out_in_metres_in_the_map_frame(tmp_path):
    # A net that says "normalised position 0" means "the mean position".
    path = export(ConstNet([0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]), tmp_path / "zero.pt")
    module, meta = MF.load_model(path)
    t_n3, _ = E.predict(module, meta, np.zeros((2, H, W, 3), np.uint8))
    np.testing.assert_allclose(t_n3, [POS_MEAN, POS_MEAN], atol=1e-5)
    # p = p_norm * scale + mean, per axis and with one isotropic scale.
    t_norm = np.array([1.0, -2.0, 0.5])
    for scale in (POS_SCALE, 4.0):
        path = export(ConstNet(t_norm.tolist(), [0.0, 0.0, 0.0, 1.0]), tmp_path / "m.pt", pos_scale=scale)
        module, meta = MF.load_model(path)
        t_n3, _ = E.predict(module, meta, np.zeros((1, H, W, 3), np.uint8))
        np.testing.assert_allclose(t_n3[0], t_norm * np.asarray(scale) + POS_MEAN, atol=1e-5)
        assert meta["pose_normalisation"]["scale"] == scale
        assert meta["pose_normalisation"]["mean"] == POS_MEAN


@pytest.mark.parametrize("q_raw", [[0.2, -0.4, 0.1, -2.0], [0.3, 0.1, -0.5, 0.7]])
def test_quaternions_come_out_unit_length_with_w_non_negative(tmp_path, q_raw):
    path = export(ConstNet([0.0, 0.0, 0.0], q_raw), tmp_path / "m.pt")
    module, meta = MF.load_model(path)
    with torch.no_grad():
        _, q_b4 = module(images_b3hw(2))
    q = np.asarray(q_raw) / np.linalg.norm(q_raw)
    expected = q if q[3] >= 0 else -q  # same rotation, canonical hemisphere, (x, y, z, w) order kept
    np.testing.assert_allclose(q_b4.numpy(), [expected, expected], atol=1e-6)
    _, q_n4 = E.predict(module, meta, np.zeros((2, H, W, 3), np.uint8))
    np.testing.assert_allclose(np.linalg.norm(q_n4, axis=1), 1.0, atol=1e-12)
    assert (q_n4[:, 3] >= 0).all()
    np.testing.assert_allclose(q_n4, [expected, expected], atol=1e-6)


def test_images_are_scaled_and_imagenet_normalised_inside_the_model(tmp_path):
    path = export(ChannelMeanNet(), tmp_path / "m.pt", pos_mean=[0.0, 0.0, 0.0], pos_scale=1.0)
    module, meta = MF.load_model(path)
    rgb = np.array([200, 30, 120], np.uint8)
    img = np.broadcast_to(rgb, (1, H, W, 3))
    expected = (rgb / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)  # RGB order, per channel
    t_u8, _ = E.predict(module, meta, img)
    t_float, _ = E.predict(module, meta, img.astype(np.float32))
    np.testing.assert_allclose(t_u8[0], expected, atol=1e-5)
    np.testing.assert_allclose(t_float[0], expected, atol=1e-5)
    assert meta["image_normalisation"]["mean"] == list(IMAGENET_MEAN)
    assert meta["image_normalisation"]["std"] == list(IMAGENET_STD)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_model_runs_on_cuda_with_cpu_images(model_file):
    cpu, meta = MF.load_model(model_file, "cpu")
    gpu, _ = MF.load_model(model_file, "cuda")
    images = images_b3hw(4).permute(0, 2, 3, 1).numpy()
    for a, b in zip(E.predict(cpu, meta, images), E.predict(gpu, meta, images)):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_load_model_rejects_an_unavailable_or_invalid_device(model_file):
    with pytest.raises(ValueError, match="device"):
        MF.load_model(model_file, "not-a-device")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            MF.load_model(model_file, "cuda")
        assert MF.pick_device("auto") == torch.device("cpu")  # auto falls back to the CPU
    else:
        assert MF.pick_device("auto", local_rank=0) == torch.device("cuda:0")


# --------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------

def test_metadata_round_trips_and_carries_every_mandatory_key(tmp_path, tiny_net):
    given = trainer_metadata(preprocessing="resize")
    given_copy = copy.deepcopy(given)
    path = export(tiny_net, tmp_path / "model.pt", metadata=given)
    assert given == given_copy  # the trainer's dict is not modified
    _, meta = MF.load_model(path)
    assert set(MF.REQUIRED_KEYS) <= set(meta)
    assert meta["format"] == "reloc_ros.model" and meta["format_version"] == 1
    assert meta["reloc_ros_version"] == __version__
    assert meta["model_kind"] == "apr" and meta["model"] == "tiny-apr"
    assert meta["input_size"] == [W, H] and meta["preprocessing"] == "resize"
    assert meta["frames"] == {"map_frame": "map", "camera_frame": "camera_optical_frame"}
    assert meta["training_data"] == {"bags": ["run1", "run2"], "n_images": 700, "image_topic": "/camera/image_raw"}
    assert meta["metrics"] == {"median_t_m": 0.25, "median_rot_deg": 3.5, "mean_pose_baseline_m": 1.9}
    assert meta["pose_normalisation"]["mean"] == POS_MEAN and meta["pose_normalisation"]["scale"] == POS_SCALE
    assert set(meta["outputs"]) == {"t_b3", "q_b4"}
    assert datetime.fromisoformat(meta["created"]).tzinfo is not None
    # Plain torch reads the same JSON, and read_metadata needs no network load.
    extra = {MF.METADATA_FILE: ""}
    torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra[MF.METADATA_FILE]) == meta == MF.read_metadata(path)


@pytest.mark.parametrize("bad, match", [
    ({"model": None}, "model"),
    ({"preprocessing": "stretch"}, "preprocessing"),
    ({"frames": {"map_frame": "map"}}, "frames"),
    ({"input_size": [64, 48]}, "input_size"),
    ({"metrics": {"when": object()}}, "JSON"),
])
def test_export_rejects_incomplete_or_invalid_metadata_and_writes_nothing(tmp_path, tiny_net, bad, match):
    with pytest.raises(ValueError, match=match):
        export(tiny_net, tmp_path / "model.pt", metadata=trainer_metadata(**bad))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kw, match", [
    ({"pos_scale": 0.0}, "pos_scale"),
    ({"pos_mean": [1.0, 2.0]}, "pos_mean"),
    ({"pos_mean": [1.0, float("nan"), 0.0]}, "pos_mean"),
    ({"input_size": (W, 0)}, "input_size"),
])
def test_export_rejects_bad_normalisation_or_size(tmp_path, tiny_net, kw, match):
    with pytest.raises(ValueError, match=match):
        export(tiny_net, tmp_path / "model.pt", **kw)
    assert list(tmp_path.iterdir()) == []


def test_export_rejects_a_net_with_the_wrong_output_contract(tmp_path):
    class OneHead(nn.Module):

        def forward(self, x):
            return x.mean(dim=(2, 3))

    with pytest.raises(ValueError, match=r"\(t_b3, q_b4\)"):
        export(OneHead(), tmp_path / "model.pt")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------
# Wrong input
# --------------------------------------------------------------------------

def test_wrongly_sized_input_raises_an_error_naming_the_expected_shape(model_file):
    module, meta = MF.load_model(model_file)
    expected = rf"\(B, 3, {H}, {W}\)"
    for bad in (torch.zeros(1, 3, H + 8, W, dtype=torch.uint8), torch.zeros(1, 1, H, W),
                torch.zeros(3, H, W, dtype=torch.uint8), torch.zeros(1, H, W, 3, dtype=torch.uint8)):
        with pytest.raises((ValueError, torch.jit.Error), match=expected):
            module(bad)
    with pytest.raises(ValueError, match=rf"\(B, {H}, {W}, 3\).*'crop' to {W}x{H}"):
        E.predict(module, meta, np.zeros((1, H, W + 2, 3), np.uint8))
    with pytest.raises(ValueError, match="dtype"):
        E.predict(module, meta, np.zeros((1, H, W, 3), np.int32))


# --------------------------------------------------------------------------
# Atomic writing
# --------------------------------------------------------------------------

def _no_work(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("export did work before checking that it can write the result")

    monkeypatch.setattr(torch.jit, "trace", fail)


def test_a_missing_directory_is_a_value_error_before_any_work(tmp_path, tiny_net, monkeypatch):
    _no_work(monkeypatch)
    with pytest.raises(ValueError, match="does not exist"):
        export(tiny_net, tmp_path / "missing" / "model.pt")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="'.*file' is not a directory"):
        export(tiny_net, tmp_path / "file" / "model.pt")
    with pytest.raises(ValueError, match="is a directory"):
        export(tiny_net, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_an_unwritable_directory_is_a_value_error_before_any_work(tmp_path, tiny_net, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode & os.W_OK else real_access(p, mode))
    _no_work(monkeypatch)
    with pytest.raises(ValueError, match="not writable"):
        export(tiny_net, tmp_path / "model.pt")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes to read-only directories")
def test_a_read_only_directory_is_a_value_error(tmp_path, tiny_net):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(ValueError, match="not writable"):
            export(tiny_net, ro / "model.pt")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_a_crash_while_saving_leaves_no_file_and_keeps_the_existing_model(tmp_path, tiny_net, monkeypatch):
    target = tmp_path / "model.pt"

    def crash(module, f, _extra_files=None):
        Path(f).write_bytes(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr(torch.jit, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        export(tiny_net, target)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    export(tiny_net, target)
    good = target.read_bytes()
    monkeypatch.setattr(torch.jit, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        export(ConstNet([0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]), target)
    assert target.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary left behind
    MF.load_model(target)


def test_a_model_that_does_not_reproduce_after_saving_is_not_written(tmp_path, model_file):
    good = model_file.read_bytes()
    with pytest.raises(RelocError, match="differs from the eager model"):
        export(CountingNet(), model_file)
    assert model_file.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_a_net_with_non_finite_outputs_is_refused(tmp_path):
    with pytest.raises(RelocError, match="non-finite"):
        export(ConstNet([float("nan"), 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]), tmp_path / "model.pt")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------
# MC dropout: the uncertainty entry point of APR models
# --------------------------------------------------------------------------

def test_apr_exports_mc_dropout_samples_centred_on_the_prediction(apr_file):
    module, meta = MF.load_model(apr_file)
    assert meta["mc_dropout"]["dropout"] == 0.5 and meta["mc_dropout"]["feature_dim"] == 512
    images = E.random_images(2, H, W, seed=3).permute(0, 2, 3, 1)
    t, q = E.predict(module, meta, images)
    t0, q0, ts, qs = E.mc_predict(module, meta, images, samples=3000, seed=1)
    assert np.allclose(t0, t) and np.allclose(q0, q)
    assert ts.shape == (2, 3000, 3) and qs.shape == (2, 3000, 4)
    assert np.allclose(np.linalg.norm(qs, axis=2), 1.0)
    spread = ts.std(axis=1)
    assert np.all(spread > 0)
    # Positions are linear in the dropped feature: with inverted-dropout scaling their mean is the prediction.
    assert np.all(np.abs(ts.mean(axis=1) - t) < 5 * spread / np.sqrt(3000))
    # Seeded masks: the same seed gives the same samples.
    assert np.array_equal(E.mc_predict(module, meta, images, 4, seed=7)[2], E.mc_predict(module, meta, images, 4, 7)[2])
    with pytest.raises(ValueError, match="samples must be an integer >= 2"):
        E.mc_predict(module, meta, images, samples=1)


def test_models_without_dropout_have_no_mc_entry_point(model_file):
    module, meta = MF.load_model(model_file)
    assert "mc_dropout" not in meta
    with pytest.raises(ValueError, match="no MC-dropout samples"):
        E.mc_predict(module, meta, np.zeros((1, H, W, 3), np.uint8), samples=4)
