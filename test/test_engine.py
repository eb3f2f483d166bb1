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

"""The Relocalizer engine: loading, preprocessing, covariance, backends, messages, threads, bad input."""

import logging
import threading

import numpy as np
import pytest
import torch

from reloc_ros import modelfile as MF
from reloc_ros import conversions as conv
from reloc_ros.errors import RelocError
from reloc_ros.geometry import is_rigid
from reloc_ros.nets.apr import APRConfig, build_apr
from reloc_ros.preprocess import preprocess_image
from reloc_ros.runtime import uncertainty as U
from reloc_ros.runtime.engine import Estimate, NoEstimate, Relocalizer
from reloc_ros.training import export as E
from reloc_ros.training import onnx_export as OX

W, H = 64, 48
CAL = U.Calibration(scale_t=3.0, floor_t=0.02, scale_r=2.0, floor_r=0.01, frames=40)


def _meta(**extra):
    return {"model": "posenet", "preprocessing": "resize",
            "frames": {"map_frame": "map", "camera_frame": "camera_optical_frame"}, "training_data": {},
            "metrics": {}, **extra}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    mc = E.export_torchscript(build_apr(APRConfig()), d / "mc.pt",
                              _meta(uncertainty={"method": "mc_dropout", "samples": 16,
                                                 "calibration": CAL.to_dict()}),
                              pos_mean=(1.0, 2.0, 0.5), pos_scale=2.0, input_size=(W, H))
    plain = E.export_torchscript(build_apr(APRConfig(dropout=0.0)), d / "plain.pt",
                                 _meta(metrics={"validation": {"median_translation_m": 0.3,
                                                               "median_rotation_deg": 6.0}}),
                                 pos_mean=(0.0, 0.0, 0.0), pos_scale=1.0, input_size=(W, H))
    bare = E.export_torchscript(build_apr(APRConfig(dropout=0.0)), d / "bare.pt", _meta(),
                                pos_mean=(0.0, 0.0, 0.0), pos_scale=1.0, input_size=(W, H))
    onnx = OX.export_onnx(mc, d / "mc.onnx")
    return {"mc": mc, "plain": plain, "bare": bare, "onnx": onnx}


@pytest.fixture(scope="module")
def reloc(models):
    return Relocalizer(models["mc"], device="cpu")


def _image(seed=0, size=(160, 120)):
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


def test_estimate_is_a_pose_with_an_honest_covariance(reloc):
    est = reloc.relocalize(_image(), stamp_ns=1_234_000_000)
    assert isinstance(est, Estimate) and est.stamp_ns == 1_234_000_000
    assert is_rigid(est.T_map_cam) and est.map_frame == "map" and est.camera_frame == "camera_optical_frame"
    assert np.allclose(est.covariance, est.covariance.T) and np.all(np.linalg.eigvalsh(est.covariance) > 0)
    assert 0.0 <= est.confidence <= 1.0
    assert est.hypotheses.shape == (8, 4, 4) and all(is_rigid(T) for T in est.hypotheses)
    assert set(est.timings_ms) == {"decode", "preprocess", "inference", "postprocess", "verification", "total"}
    assert est.timings_ms["verification"] == 0.0 and est.status == "unverified"  # no feature map in this file
    assert est.timings_ms["total"] == pytest.approx(sum(est.timings_ms[k] for k in
                                                        ("decode", "preprocess", "inference", "postprocess")))
    assert "calibrated on 40 frames" in reloc.describe() and "16 samples" in reloc.describe()


def test_pose_is_the_models_deterministic_prediction_and_covariance_its_calibrated_mc_spread(reloc, models):
    img = _image(1)
    est = reloc.relocalize(img)
    module, meta = MF.load_model(models["mc"])
    x = preprocess_image(img, "resize", (W, H))
    t, q = E.predict(module, meta, x)
    assert np.allclose(est.T_map_cam[:3, 3], t[0], atol=1e-5)
    # The covariance is the calibration applied to the spread of the engine's 16 fixed dropout masks.
    keep = torch.from_numpy(reloc._keep)
    with torch.no_grad():
        t0, q0, ts, qs = module.sample(torch.from_numpy(x)[None].permute(0, 3, 1, 2), keep)
    raw = U.sample_covariance(t0.double().numpy(), q0.double().numpy(), ts.double().numpy(), qs.double().numpy())
    assert np.allclose(est.covariance, CAL.apply(raw[0]), rtol=1e-4, atol=1e-9)
    # Deterministic: the same image gives the same answer, whatever came before.
    reloc.relocalize(_image(2))
    again = reloc.relocalize(img)
    assert np.array_equal(again.T_map_cam, est.T_map_cam) and np.array_equal(again.covariance, est.covariance)


def test_onnx_backend_matches_torchscript(reloc, models):
    onnx = Relocalizer(models["onnx"], device="cpu")
    assert onnx.backend_name == "onnx" and onnx.metadata["model"] == "posenet"
    img = _image(3)
    a, b = reloc.relocalize(img), onnx.relocalize(img)
    assert np.allclose(a.T_map_cam, b.T_map_cam, atol=1e-4)
    assert np.allclose(a.covariance, b.covariance, rtol=1e-3, atol=1e-8)


def test_model_without_mc_dropout_publishes_its_validation_error_with_a_warning(models, caplog):
    with caplog.at_level(logging.WARNING):
        plain = Relocalizer(models["plain"], device="cpu")
    assert "constant covariance" in caplog.text
    est = plain.relocalize(_image())
    sig_t = np.sqrt(np.diag(est.covariance)[:3])
    assert np.allclose(sig_t, 0.3 / 1.5382, rtol=1e-3)  # median of a 3-D Gaussian error norm = 1.538 sigma
    assert est.hypotheses.shape == (0, 4, 4)
    with pytest.raises(RelocError, match="neither MC-dropout samples nor validation metrics"):
        Relocalizer(models["bare"], device="cpu")


def _msgs(typestore, rgb):
    types = typestore.types
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    return {
        "rgb8": conv.make_image_msg(types, rgb, "rgb8", 5, "cam"),
        "bgr8": conv.make_image_msg(types, bgr, "bgr8", 5, "cam"),
        "png": conv.make_compressed_image_msg(types, rgb, "png", 5, "cam"),
    }


def test_messages_are_decoded_and_stamped_with_the_image_stamp(reloc, typestore):
    rgb = _image(4)
    ref = reloc.relocalize(rgb, 5)
    for name, msg in _msgs(typestore, rgb).items():
        est = reloc.relocalize_msg(msg)
        assert est.stamp_ns == 5, name
        assert np.allclose(est.T_map_cam, ref.T_map_cam, atol=1e-6), name
        assert est.timings_ms["decode"] > 0.0


def test_bad_images_raise_clear_errors(reloc, typestore):
    types = typestore.types
    msg = conv.make_image_msg(types, _image(), "rgb8", 5, "cam")
    msg.encoding = "bayer_weird8"
    with pytest.raises(ValueError, match="bayer_weird8"):
        reloc.relocalize_msg(msg)
    with pytest.raises(ValueError, match=r"RGB uint8 image \(H, W, 3\)"):
        reloc.relocalize(np.zeros((48, 64), np.uint8))
    with pytest.raises(ValueError, match=r"preprocessed uint8 images \(B, 48, 64, 3\)"):
        reloc.relocalize_preprocessed(np.zeros((1, 48, 60, 3), np.uint8), [0])
    with pytest.raises(ValueError, match="expected a sensor_msgs/Image or CompressedImage"):
        reloc.relocalize_msg(object())


def test_non_finite_output_is_no_estimate(reloc, monkeypatch):
    def nan_run(x, keep):
        b = len(x)
        return (np.full((b, 3), np.nan), np.tile([0.0, 0, 0, 1], (b, 1)), np.zeros((b, 16, 3)),
                np.tile([0.0, 0, 0, 1], (b, 16, 1)))

    monkeypatch.setattr(reloc._backend, "run", nan_run)
    with pytest.raises(NoEstimate, match="not finite"):
        reloc.relocalize(_image(), 7)
    (res,) = reloc.relocalize_preprocessed(np.zeros((1, H, W, 3), np.uint8), [7])
    assert isinstance(res, NoEstimate)


def test_bad_files_devices_and_options(models, tmp_path, caplog):
    with pytest.raises(ValueError, match="does not exist"):
        Relocalizer(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(RelocError, match="is not a reloc_ros model file"):
        Relocalizer(bad)
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        Relocalizer(models["mc"], backend="tensorrt")
    with pytest.raises(ValueError, match="samples must be >= 2"):
        Relocalizer(models["mc"], samples=1)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            Relocalizer(models["mc"], device="cuda")
        with caplog.at_level(logging.WARNING):
            r = Relocalizer(models["mc"], device="auto", warmup=0)
        assert r.device == "cpu" and "no CUDA device available" in caplog.text


def test_concurrent_calls_give_the_serial_answers(reloc):
    images = [_image(10 + i) for i in range(4)]
    serial = [reloc.relocalize(im).T_map_cam for im in images]
    out = [None] * 8

    def work(k):
        out[k] = reloc.relocalize(images[k % 4]).T_map_cam

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(8):
        assert np.array_equal(out[k], serial[k % 4])


# ---------------------------------------------------------------------------
# Broken model files and bad options: refused at load, with the file and the value named
# ---------------------------------------------------------------------------

class FixedSizeNet(torch.nn.Module):
    """A network that takes 32x32 inputs only (a flattening head, as many have)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc_t = torch.nn.Linear(3 * 32 * 32, 3)
        self.fc_q = torch.nn.Linear(3 * 32 * 32, 4)

    def forward(self, x):
        f = x.reshape(x.size(0), 3 * 32 * 32)
        return self.fc_t(f), self.fc_q(f)


def test_metadata_input_size_the_network_rejects_is_refused_at_load(tmp_path):
    from conftest import export, resave, trainer_metadata

    meta = trainer_metadata(metrics={"validation": {"median_translation_m": 0.3, "median_rotation_deg": 5.0}})
    good = export(FixedSizeNet(), tmp_path / "good.pt", input_size=(32, 32), metadata=meta)
    Relocalizer(good, device="cpu")  # consistent: loads and warms up
    bad = resave(good, tmp_path / "bad.pt", lambda m: m.__setitem__("input_size", [48, 40]))
    with pytest.raises(RelocError) as e:
        Relocalizer(bad, device="cpu")
    msg = str(e.value)
    assert len(msg.splitlines()) == 1
    assert f"model '{bad}'" in msg and "rejects the input size in its metadata (48x40" in msg
    assert "(B, 3, 32, 32)" in msg and "re-export it" in msg


def test_nan_at_warm_up_names_the_model_file_not_a_frame(models, monkeypatch):
    from reloc_ros.runtime import backends

    real = backends.TorchScriptBackend.run
    monkeypatch.setattr(backends.TorchScriptBackend, "run",
                        lambda self, x, keep: tuple(np.full_like(o, np.nan) for o in real(self, x, keep)))
    with pytest.raises(RelocError) as e:
        Relocalizer(models["mc"], device="cpu")
    msg = str(e.value)
    assert not isinstance(e.value, NoEstimate)
    assert f"model '{models['mc']}' returns a non-finite pose (NaN/inf) at warm-up" in msg
    assert "frame" not in msg and "0.000 s" not in msg


@pytest.mark.parametrize("kwargs, match", [
    ({"hypotheses": -1}, r"hypotheses must be >= 0 \(an integer\), got -1"),
    ({"warmup": -2}, r"warmup must be >= 0 \(an integer\), got -2"),
    ({"samples": 2.5}, r"samples must be >= 2 \(an integer, or None\), got 2.5"),
    ({"seed": -1}, r"seed must be >= 0 \(an integer\), got -1"),
    ({"threads": -4}, r"threads must be >= 0 \(an integer, or None\), got -4"),
    ({"tolerance": (float("inf"), 10.0)}, r"tolerance must be \(metres, degrees\), both finite and > 0, got \(inf"),
    ({"tolerance": (0.5, float("nan"))}, r"tolerance must be \(metres, degrees\), both finite and > 0"),
    ({"tolerance": (True, 10.0)}, r"tolerance must be"),
])
def test_bad_numeric_options_are_refused_before_loading(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Relocalizer(tmp_path / "not_even_there.pt", **kwargs)


def test_bad_samples_in_the_metadata_name_the_file(models, tmp_path):
    from conftest import resave

    bad = resave(models["mc"], tmp_path / "bad.pt", lambda m: m["uncertainty"].__setitem__("samples", 1))
    with pytest.raises(RelocError, match=rf"model '{bad}': its metadata's uncertainty.samples must be >= 2"):
        Relocalizer(bad, device="cpu")
